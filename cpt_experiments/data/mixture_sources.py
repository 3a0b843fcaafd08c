"""The sources of a mixture plan: one ``SourceSpec`` per training source, and the checks a set of them must pass
(with the plan's budget, seed and batch) before ``mixing.MixturePlan`` lays them out. Pure numpy, no torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Union

import numpy as np

from cpt_experiments.errors import config_error

Order = Union[str, np.ndarray]


@dataclass(frozen=True, eq=False)
class SourceSpec:
    """One training source. ``num_windows``: windows in the underlying token array. ``weight``: share of windows
    (= tokens) in [0, 1]. ``order``: ``"shuffle"`` (seeded permutation, reshuffled per epoch), ``"sequential"``,
    or an explicit int array of window indices read cyclically (e.g. the windows a parent stage consumed)."""

    name: str
    num_windows: int
    weight: float
    order: Order = "shuffle"

    @property
    def available(self) -> int:
        """Distinct draws before the source repeats: ``len(order)`` for an explicit order, else ``num_windows``."""
        return len(self.order) if isinstance(self.order, np.ndarray) else int(self.num_windows)


def validate_sources(sources: list[SourceSpec], num_windows: int, seed: int, batch_windows: int) -> None:
    """ConfigError (``mixing.*`` key) unless ``sources`` and a budget of ``num_windows`` windows (a whole number of
    batches of ``batch_windows``) with ``seed`` make a plan: unique names, finite weights >= 0 summing to 1."""
    if not sources:
        raise config_error("mixing.sources", "at least one source is required")
    names = [s.name for s in sources]
    if len(set(names)) != len(names) or not all(names):
        raise config_error("mixing.sources", f"source names must be unique and non-empty, got {names}")
    if int(seed) != seed or seed < 0:
        raise config_error("mixing.seed", f"must be a non-negative integer, got {seed!r}")
    if int(batch_windows) != batch_windows or batch_windows < 1:
        raise config_error("mixing.batch_windows", f"must be a positive integer, got {batch_windows!r}")
    if num_windows < batch_windows:
        raise config_error(
            "mixing.num_windows", f"budget of {num_windows} windows is smaller than one batch ({batch_windows})"
        )
    if num_windows % batch_windows:
        lo = num_windows // batch_windows * batch_windows
        raise config_error(
            "mixing.num_windows",
            f"{num_windows} is not a multiple of the batch ({batch_windows} windows); use {lo} or {lo + batch_windows}",
        )
    for s in sources:
        if not math.isfinite(s.weight) or s.weight < 0:
            raise config_error(f"mixing.weights.{s.name}", f"must be a finite number >= 0, got {s.weight!r}")
        validate_order(s)
    total = sum(float(s.weight) for s in sources)
    if abs(total - 1.0) > 1e-6:
        raise config_error("mixing.weights", f"must sum to 1 (tolerance 1e-6), got {total:.9g}")


def validate_order(s: SourceSpec) -> None:
    """ConfigError (``mixing.sources.<name>.*``) for a bad ``order`` or a weighted source without windows."""
    key = f"mixing.sources.{s.name}"
    if isinstance(s.order, np.ndarray):
        o = s.order
        if o.ndim != 1 or not np.issubdtype(o.dtype, np.integer):
            raise config_error(f"{key}.order", "an explicit order must be a 1-D integer array of window indices")
        if o.size and (o.min() < 0 or o.max() >= s.num_windows):
            raise config_error(f"{key}.order", f"window indices must lie in [0, {s.num_windows})")
    elif s.order not in ("shuffle", "sequential"):
        raise config_error(f"{key}.order", f"must be 'shuffle', 'sequential' or an index array, got {s.order!r}")
    if s.weight > 0 and s.available < 1:
        raise config_error(f"{key}.num_windows", "a source with positive weight has no windows")
