"""Lightning datamodule: the mixture-plan training stream of one stage (rank-sharded, resumable).

Validation is not here: per-domain losses are measured by ``eval.domain_loss`` (see ``DomainValidation``)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from cpt_experiments.data.mixing import MixturePlan
from cpt_experiments.data.sampler import PlanBatchSampler
from cpt_experiments.data.windows import TokenWindows
from cpt_experiments.errors import config_error

log = logging.getLogger(__name__)


class PlanDataset(Dataset):
    """Indexed by a LIST of global positions (one micro-batch), so the plan lookup and token reads are vectorised.

    Returns ``{"tokens": (B, T+1) int64, "source": (B,) int64, "position": (B,) int64}``."""

    def __init__(self, plan: MixturePlan, windows: list[TokenWindows]) -> None:
        self.plan, self.windows = plan, windows

    def __len__(self) -> int:
        return len(self.plan)

    def __getitem__(self, positions: list[int]) -> dict[str, torch.Tensor]:
        pos = np.asarray(positions, dtype=np.int64)
        src, win = self.plan.lookup(pos)
        tokens = np.empty((len(pos), self.windows[0].seq_len + 1), dtype=np.int64)  # (B, T+1)
        for d in np.unique(src):
            sel = src == d
            tokens[sel] = self.windows[int(d)].gather(win[sel])
        return {"tokens": torch.from_numpy(tokens), "source": torch.from_numpy(src), "position": torch.from_numpy(pos)}


class _StageLoader(DataLoader):
    """A DataLoader whose ``len`` is the whole stage's micro-batches even when it starts mid-stage.

    On a mid-epoch resume Lightning restores ``batch_progress`` and adds the batches already consumed to its fetch
    counter (``_TrainingEpochLoop.on_run_start``: ``data_fetcher.fetched += current.ready``), so it expects the
    loader to yield only the remainder while reporting the full epoch length; a shorter ``len`` would end the
    epoch early."""

    def __init__(self, *args: Any, stage_len: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._stage_len = stage_len

    def __len__(self) -> int:
        return self._stage_len

    # Lightning treats loaders with state_dict/load_state_dict as resumable (no mid-epoch warning). The position
    # needs no state of its own: it is trainer.global_step, restored before train_dataloader() is called.
    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        pass


class CPTDataModule(pl.LightningDataModule):
    """Training stream = ``plan`` over ``train_sources`` (name -> 1-D token array).

    The train loader starts at ``trainer.global_step`` (Lightning restores it before calling ``train_dataloader``),
    so a resumed run consumes exactly positions ``[step*G, end)``. The trainer must use
    ``use_distributed_sampler=False``: the sampler shards by ``trainer.global_rank`` itself. One epoch = the stage
    (``max_steps = len(plan) // plan.batch_windows``).
    """

    def __init__(
        self,
        train_sources: dict[str, np.ndarray],
        plan: MixturePlan,
        seq_len: int,
        micro_batch: int,
        accumulate: int = 1,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        missing = [n for n in plan.names if n not in train_sources]
        if missing:
            raise config_error("data.train_sources", f"no token array for plan sources {missing}")
        self.plan, self.seq_len = plan, int(seq_len)
        self.micro_batch, self.accumulate = int(micro_batch), int(accumulate)
        self.num_workers = int(num_workers)
        self.train_windows = [TokenWindows(train_sources[n], self.seq_len) for n in plan.names]
        for spec, w in zip(plan.sources, self.train_windows):
            if len(w) != spec.num_windows:
                raise config_error(
                    f"data.train_sources.{spec.name}",
                    f"has {len(w)} windows of {self.seq_len} tokens but the plan expects {spec.num_windows}",
                )
        self._loaded_step: int | None = None
        self.start_step = 0

    # ---- topology ---------------------------------------------------------------------------------------------
    def _topology(self) -> tuple[int, int, int]:
        """(world_size, rank, global_step) from the attached trainer, else a single process at the loaded step."""
        trainer = self.trainer
        if trainer is None:
            return 1, 0, self._loaded_step or 0
        acc = getattr(trainer, "accumulate_grad_batches", self.accumulate)
        if acc != self.accumulate:
            raise config_error("trainer.accumulate_grad_batches", f"is {acc} but the datamodule uses {self.accumulate}")
        if self._loaded_step is not None and self._loaded_step != trainer.global_step:
            log.warning(
                "datamodule state says step %d, trainer says %d; using the trainer's",
                self._loaded_step,
                trainer.global_step,
            )
        return trainer.world_size, trainer.global_rank, trainer.global_step

    def train_dataloader(self) -> DataLoader:
        world, rank, step = self._topology()
        global_batch = self.micro_batch * world * self.accumulate
        if global_batch != self.plan.batch_windows:
            raise config_error(
                "mixing.batch_windows",
                f"plan uses {self.plan.batch_windows} windows per step but micro_batch*world_size*accumulate = "
                f"{self.micro_batch}*{world}*{self.accumulate} = {global_batch}",
            )
        sampler = PlanBatchSampler(
            len(self.plan), self.micro_batch, rank=rank, world_size=world, accumulate=self.accumulate, start_step=step
        )
        self.start_step = step
        log.info(
            "train stream: plan %s, rank %d/%d, starting at step %d (position %d)",
            self.plan.fingerprint(),
            rank,
            world,
            step,
            step * global_batch,
        )
        return _StageLoader(
            PlanDataset(self.plan, self.train_windows),
            sampler=sampler,
            batch_size=None,
            num_workers=self.num_workers,
            stage_len=sampler.stage_micro_batches,
        )

    # ---- resume checks ----------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        step = self.trainer.global_step if self.trainer is not None else self.start_step
        return {
            "plan_fingerprint": self.plan.fingerprint(),
            "seq_len": self.seq_len,
            "batch_windows": self.plan.batch_windows,
            "global_step": int(step),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Refuse to resume a different stream: a new stage is a transition, never a dataloader resume."""
        mine = self.plan.fingerprint()
        if state_dict.get("plan_fingerprint") != mine:
            raise config_error(
                "resume.ckpt_path",
                f"checkpoint data plan {state_dict.get('plan_fingerprint')} differs from this run's plan {mine}; "
                "start a new stage as a transition (weights only) instead of a resume",
            )
        if state_dict.get("seq_len") != self.seq_len:
            raise config_error("data.seq_len", f"checkpoint used {state_dict.get('seq_len')}, this run {self.seq_len}")
        self._loaded_step = int(state_dict["global_step"])
