"""Replay of old data (paper 1, compute-equivalent): weights, and sources built from an earlier stage's plan.

Replay REPLACES that share of new tokens, so a stage's budget stays fixed (papers.md A5). A ``seen``
source re-reads the windows an earlier stage consumed, in their original order by default; a
``fresh`` source draws old-corpus windows no earlier stage consumed. Pure numpy, no torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from cpt_experiments.data.mixing import MixturePlan, SourceSpec
from cpt_experiments.errors import config_error


def replay_weights(new: dict[str, float], replay: dict[str, float], replay_ratio: float) -> dict[str, float]:
    """New-data weights rescaled to sum to ``1 - replay_ratio`` and replay weights to ``replay_ratio``.

    The stage's token budget stays fixed, so 5% replay on a 300B stage is 285B new + 15B old tokens. Replay sources
    are kept (with weight 0) at ratio 0 so the source list is the same across a replay sweep."""
    if not math.isfinite(replay_ratio) or not 0.0 <= replay_ratio < 1.0:
        raise config_error("replay.ratio", f"must lie in [0, 1), got {replay_ratio!r}")
    overlap = sorted(set(new) & set(replay))
    if overlap:
        raise config_error("replay.sources", f"a source cannot be both new and replayed: {overlap}")
    for group, key in ((new, "mixing.weights"), (replay, "replay.weights")):
        for name, w in group.items():
            if not math.isfinite(w) or w < 0:
                raise config_error(f"{key}.{name}", f"must be a finite number >= 0, got {w!r}")
    if not new or sum(new.values()) <= 0:
        raise config_error("mixing.weights", "new-data weights must have a positive sum")
    if replay_ratio > 0 and (not replay or sum(replay.values()) <= 0):
        raise config_error("replay.weights", f"replay ratio {replay_ratio} needs replay sources with positive weight")
    total_new, total_replay = sum(new.values()), sum(replay.values())
    out = {n: w / total_new * (1.0 - replay_ratio) for n, w in new.items()}
    out.update({n: (w / total_replay * replay_ratio if replay_ratio > 0 else 0.0) for n, w in replay.items()})
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
) -> SourceSpec:
    """Replay windows of the old corpus (``num_windows_total`` windows) that none of the earlier stages read, shuffled.

    ``parent_plans``: the plan of the parent, or of every ancestor that trained on ``source_name`` (a window
    consumed by any of them is not fresh). An ancestor without that source contributes nothing."""
    plans = [parent_plans] if isinstance(parent_plans, MixturePlan) else list(parent_plans)
    unseen = np.ones(int(num_windows_total), dtype=bool)
    for plan in plans:
        if source_name not in plan.names:
            continue
        idx = consumed_windows(plan, source_name, num_positions)
        if idx.size and idx.max() >= num_windows_total:
            raise config_error("replay.num_windows_total", f"{num_windows_total} is smaller than the parent's source")
        unseen[idx] = False
    fresh = np.flatnonzero(unseen).astype(np.int64)
    if fresh.size == 0:
        raise config_error("replay.mode", f"fresh: earlier stages consumed all {num_windows_total} windows of {source_name!r}")
    return SourceSpec(name or source_name, int(num_windows_total), weight, np.random.default_rng(seed).permutation(fresh))
