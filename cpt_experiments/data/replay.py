"""Replay of old data (paper 1, compute-equivalent): its settings, weights, and sources built from an earlier stage's plan.

Replay REPLACES that share of new tokens, so a stage's budget stays fixed (paper 1, §4.2). A ``seen``
source re-reads the windows an earlier stage consumed, in their original order by default; a
``fresh`` source draws old-corpus windows no earlier stage consumed. Pure numpy, no torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cpt_experiments.config import ReplayConfig
from cpt_experiments.data.mixing import MixturePlan
from cpt_experiments.data.mixture_sources import SourceSpec
from cpt_experiments.errors import config_error

REPLAY_MODES = ("seen", "fresh")


def mixture_weights(weights: Mapping[str, float], key: str) -> dict[str, float]:
    """A mixture ``role -> weight`` that sums to 1 and is not empty (each weight is typed and in [0, 1] by its
    schema: ``config.StageConfig.data``, ``config.ReplayConfig.sources``, ranges in ``ranges.RANGES``)."""
    if not weights:
        raise config_error(key, "must be a non-empty mapping corpus_role -> weight")
    total = sum(weights.values())
    if abs(total - 1.0) > 1e-6:
        raise config_error(key, f"weights must sum to 1, got {total:.6g}")
    return {str(name): float(w) for name, w in weights.items()}  # floats, as the stage hash has always seen them


@dataclass(frozen=True)
class Replay:
    """Replay of old data inside a stage (paper 1 §4.2, compute-equivalent: it replaces new tokens).

    ``ratio`` is the share of the stage's windows (= tokens) drawn from ``sources`` (role -> weight);
    ``mode`` ``seen`` re-reads windows an ancestor trained on (original order unless ``reshuffle``),
    ``fresh`` draws old-corpus windows no ancestor consumed. Build it with :meth:`from_config`, the
    one place replay settings are checked and normalised: a ratio of 0 is ``Replay()`` (no sources,
    so every 0% cell of a sweep hashes alike).
    """

    ratio: float = 0.0
    sources: Mapping[str, float] = field(default_factory=dict)
    mode: str = "seen"
    reshuffle: bool = False

    @classmethod
    def from_config(cls, cfg: ReplayConfig, key: str = "replay") -> Replay:
        """Replay of a stage from its typed node (``config.ReplayConfig``: types, defaults, the ratio's range
        [0, 1)); checks what those cannot: the mode and the sources' sum. Errors name ``<key>.<field>``."""
        if cfg.mode not in REPLAY_MODES:
            raise config_error(f"{key}.mode", f"unknown replay mode {cfg.mode!r} (known: {', '.join(REPLAY_MODES)})")
        if cfg.ratio == 0.0:
            return cls()
        return cls(cfg.ratio, mixture_weights(cfg.sources, f"{key}.sources"), cfg.mode, cfg.reshuffle)

    @property
    def active(self) -> bool:
        """True when the stage replays anything."""
        return self.ratio > 0.0

    def spec(self) -> dict[str, Any] | None:
        """Canonical form for hashing and records; None without replay."""
        if not self.active:
            return None
        return {"ratio": self.ratio, "sources": dict(self.sources), "mode": self.mode, "reshuffle": self.reshuffle}

    def mix(self, new: Mapping[str, float], prefix: str = "") -> dict[str, float]:
        """Source weights of a stage: ``new`` rescaled to ``1 - ratio``, replay sources (named ``prefix + role``) to ``ratio``.

        The stage's token budget stays fixed, so 5% replay on a 300B stage is 285B new + 15B old tokens.
        """
        total_new = sum(new.values())
        if not new or total_new <= 0:
            raise config_error("mixing.weights", "new-data weights must have a positive sum")
        out = {n: w / total_new * (1.0 - self.ratio) for n, w in new.items()}
        out.update({prefix + n: w * self.ratio for n, w in self.sources.items()})
        return out


def consumed_windows(plan: MixturePlan, source_name: str, num_positions: int | None = None) -> np.ndarray:
    """Window indices of ``source_name`` read in positions ``[0, num_positions)`` of ``plan``, in consumption order.

    Stage order is position order whatever the world size, and draws of one source are numbered in position order,
    so this is ``window_of_draw(d, 0..count-1)``."""
    if source_name not in plan.names:
        raise config_error("replay.source", f"{source_name!r} is not a source of the parent plan {plan.names}")
    n = plan.num_windows if num_positions is None else int(num_positions)
    count = plan.counts(0, n)[source_name]
    return plan.window_of_draw(plan.names.index(source_name), np.arange(count, dtype=np.int64))


def seen_replay_source(
    parent_plan: MixturePlan,
    source_name: str,
    weight: float,
    reshuffle: bool = False,
    seed: int = 0,
    *,
    num_positions: int | None = None,
    name: str | None = None,
) -> SourceSpec:
    """Replay exactly the windows the parent stage trained on, in their original order unless ``reshuffle``.

    The paper's 50% config re-read D0 in the original order; GPT-NeoX ``replay_config`` reshuffles by default."""
    idx = consumed_windows(parent_plan, source_name, num_positions)
    if idx.size == 0:
        raise config_error("replay.mode", f"seen: the parent stage consumed no windows of {source_name!r}")
    if reshuffle:
        idx = np.random.default_rng(seed).permutation(idx)
    base = parent_plan.sources[parent_plan.names.index(source_name)]
    return SourceSpec(name or source_name, base.num_windows, weight, idx)


def fresh_replay_source(
    parent_plans: MixturePlan | Sequence[MixturePlan],
    source_name: str,
    num_windows_total: int,
    weight: float,
    seed: int,
    *,
    num_positions: int | None = None,
    name: str | None = None,
    consumed_as: Sequence[str] | None = None,
    key: str = "replay.mode",
) -> SourceSpec:
    """Replay windows of the old corpus (``num_windows_total`` windows) that none of the earlier stages read, shuffled.

    ``parent_plans``: the plan of the parent, or of every ancestor that trained on ``source_name`` (a window
    consumed by any of them is not fresh). An ancestor without that source contributes nothing.
    ``consumed_as``: the source names under which the ancestors read this corpus (default: ``source_name``;
    e.g. ``("en_old", "replay:en_old")`` to count replayed windows as read too). ``key``: the config key an
    exhausted corpus is reported under."""
    plans = [parent_plans] if isinstance(parent_plans, MixturePlan) else list(parent_plans)
    unseen = np.ones(int(num_windows_total), dtype=bool)
    for plan in plans:
        for read_as in consumed_as or (source_name,):
            if read_as not in plan.names:
                continue
            idx = consumed_windows(plan, read_as, num_positions)
            if idx.size and idx.max() >= num_windows_total:
                raise config_error(
                    "replay.num_windows_total", f"{num_windows_total} is smaller than the parent's source"
                )
            unseen[idx] = False
    fresh = np.flatnonzero(unseen).astype(np.int64)
    if fresh.size == 0:
        raise config_error(key, f"fresh: earlier stages consumed all {num_windows_total} windows of {source_name!r}")
    return SourceSpec(
        name or source_name, int(num_windows_total), weight, np.random.default_rng(seed).permutation(fresh)
    )
