"""Rank-sharded sampler: disjoint shards, world-size-independent global order, exact resume suffix."""

from __future__ import annotations

import pytest

from cpt_experiments.data.sampler import PlanBatchSampler
from cpt_experiments.errors import ConfigError


def _global_stream(plan_len: int, micro: int, world: int, accumulate: int, start_step: int = 0) -> list[list[int]]:
    """Per optimizer step, the positions of all ranks' micro-batches concatenated in (micro-batch, rank) order."""
    per_rank = [
        list(PlanBatchSampler(plan_len, micro, rank=r, world_size=world, accumulate=accumulate, start_step=start_step))
        for r in range(world)
    ]
    steps = []
    for s in range(len(per_rank[0]) // accumulate):
        step = []
        for j in range(accumulate):
            for r in range(world):
                step += per_rank[r][s * accumulate + j]
        steps.append(step)
    return steps


@pytest.mark.parametrize(("world", "accumulate"), [(1, 4), (2, 2), (4, 1)])
def test_world_sizes_give_the_same_global_sequence(world: int, accumulate: int) -> None:
    steps = _global_stream(96, 3, world, accumulate)  # G = 12 windows per step, 8 steps
    assert steps == [list(range(s * 12, (s + 1) * 12)) for s in range(8)]


def test_rank_shards_are_disjoint_and_cover_the_stage() -> None:
    shards = [sum(PlanBatchSampler(100, 2, rank=r, world_size=4, accumulate=3), []) for r in range(4)]
    flat = sum(shards, [])
    assert len(flat) == len(set(flat)) == 96  # 4 steps of 24; the trailing 4 positions never yielded
    assert sorted(flat) == list(range(96))
    assert list(PlanBatchSampler(100, 2, rank=1, world_size=4, accumulate=3))[:2] == [[2, 3], [10, 11]]


@pytest.mark.parametrize("start_step", [0, 1, 3, 7, 8])
def test_resume_equals_suffix_of_uninterrupted_stream(start_step: int) -> None:
    for rank in range(2):
        full = list(PlanBatchSampler(128, 4, rank=rank, world_size=2, accumulate=2))
        resumed = PlanBatchSampler(128, 4, rank=rank, world_size=2, accumulate=2, start_step=start_step)
        assert list(resumed) == full[start_step * 2 :]
        assert len(resumed) == len(full) - start_step * 2 and resumed.stage_micro_batches == len(full)


def test_bad_sampler_arguments_raise() -> None:
    with pytest.raises(ConfigError, match=r"^trainer\.global_rank: "):
        PlanBatchSampler(64, 4, rank=2, world_size=2)
    with pytest.raises(ConfigError, match=r"^resume\.start_step: "):
        PlanBatchSampler(64, 4, start_step=17)
    with pytest.raises(ConfigError, match=r"^mixing\.num_windows: "):
        PlanBatchSampler(3, 4)
