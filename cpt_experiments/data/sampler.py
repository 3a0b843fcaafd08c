"""Rank-sharded, resumable batch sampler over the global positions of a mixture plan.

The global order is the plan's position order and does not depend on the world size.
With ``G = micro_batch * world_size * accumulate`` windows per optimizer step, step ``s`` consumes positions
``[s*G, (s+1)*G)``. Within the step, micro-batch ``j`` (0 <= j < accumulate) of rank ``r`` is

    positions ``s*G + (j*world_size + r)*micro_batch + [0, micro_batch)``

so the ranks' shards are disjoint, each micro-batch slot is a contiguous slice, and the union over ranks and
micro-batches is exactly the global order. Resuming at step ``s`` yields exactly the suffix of the uninterrupted
stream, so a resumed run neither repeats nor skips windows.
"""

from __future__ import annotations

from collections.abc import Iterator

from torch.utils.data import Sampler

from cpt_experiments.errors import config_error


def micro_batch_positions(
    step: int, micro_index: int, *, micro_batch: int, rank: int, world_size: int, accumulate: int
) -> range:
    """Global positions of rank ``rank``'s micro-batch ``micro_index`` in optimizer step ``step``."""
    global_batch = micro_batch * world_size * accumulate
    start = step * global_batch + (micro_index * world_size + rank) * micro_batch
    return range(start, start + micro_batch)


class PlanBatchSampler(Sampler[list[int]]):
    """Yields this rank's micro-batches (lists of global positions) for steps ``start_step .. num_steps - 1``.

    ``plan_len``: positions in the stage (windows). ``num_steps = plan_len // G``; a trailing partial step is
    never yielded. ``len()`` counts the micro-batches actually yielded (from ``start_step``);
    ``stage_micro_batches`` counts them from step 0.
    """

    def __init__(
        self,
        plan_len: int,
        micro_batch: int,
        *,
        rank: int = 0,
        world_size: int = 1,
        accumulate: int = 1,
        start_step: int = 0,
    ) -> None:
        for key, value in (
            ("data.micro_batch", micro_batch),
            ("trainer.world_size", world_size),
            ("trainer.accumulate_grad_batches", accumulate),
        ):
            if int(value) != value or value < 1:
                raise config_error(key, f"must be a positive integer, got {value!r}")
        if not 0 <= rank < world_size:
            raise config_error("trainer.global_rank", f"must lie in [0, {world_size}), got {rank!r}")
        self.plan_len = int(plan_len)
        self.micro_batch, self.rank, self.world_size = int(micro_batch), int(rank), int(world_size)
        self.accumulate = int(accumulate)
        self.global_batch = self.micro_batch * self.world_size * self.accumulate
        self.num_steps = self.plan_len // self.global_batch
        if self.num_steps < 1:
            raise config_error(
                "mixing.num_windows", f"{plan_len} windows are fewer than one step ({self.global_batch})"
            )
        if int(start_step) != start_step or not 0 <= start_step <= self.num_steps:
            raise config_error("resume.start_step", f"must lie in [0, {self.num_steps}], got {start_step!r}")
        self.start_step = int(start_step)

    @property
    def stage_micro_batches(self) -> int:
        """Micro-batches this rank sees over the whole stage, from step 0."""
        return self.num_steps * self.accumulate

    def __len__(self) -> int:
        return (self.num_steps - self.start_step) * self.accumulate

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start_step, self.num_steps):
            for j in range(self.accumulate):
                yield list(
                    micro_batch_positions(
                        step,
                        j,
                        micro_batch=self.micro_batch,
                        rank=self.rank,
                        world_size=self.world_size,
                        accumulate=self.accumulate,
                    )
                )
