"""The one place that writes ``param_group["lr"]``: a stateless Lightning callback over a pure schedule."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl


class LRScheduleCallback(pl.Callback):
    """Set every param group's LR to ``schedule(trainer.global_step) * group.get("lr_scale", 1.0)``.

    ``schedule`` maps the number of completed optimizer steps in the stage to an absolute LR
    (a typed schedule's ``build``, ``cpt_experiments.schedules``). The write happens in ``on_train_batch_start``,
    i.e. before the forward/backward of every micro-batch; under gradient accumulation
    ``global_step`` only advances per optimizer step, so repeated writes are identical. The
    callback holds no state beyond ``global_step``, which Lightning checkpoints, so a resumed run
    applies exactly the LRs of an uninterrupted one. ``configure_optimizers`` must return no LR
    scheduler. ``lr_scale`` lets per-group rates (e.g. embeddings) share one schedule.

    The applied (unscaled) LR is logged under ``log_key`` at every step, so the logged value never
    depends on callback order (``LearningRateMonitor`` before this callback would log the previous
    step's rate); an empty ``log_key`` turns logging off. ``global_step`` counts every optimizer's
    steps, so this assumes one optimizer per step (automatic optimization), as in this suite.
    """

    def __init__(self, schedule: Callable[[int], float], log_key: str = "train/lr") -> None:
        super().__init__()
        self.schedule = schedule
        self.log_key = log_key

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        lr = float(self.schedule(trainer.global_step))
        for optimizer in trainer.optimizers:
            for group in optimizer.param_groups:
                group["lr"] = lr * group.get("lr_scale", 1.0)
        if self.log_key:
            pl_module.log(self.log_key, lr, on_step=True, on_epoch=False)
