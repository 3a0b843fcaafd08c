"""Stop a stage whose loss became NaN or infinite, within a few steps, with a one-line reason.

A diverged stage would otherwise train to the end on garbage and be cached as done. The check
reads the loss every ``every_n_steps`` optimizer steps (one host sync each time, so not every step).
"""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl

from cpt_experiments.errors import CPTError


class TrainingDiverged(CPTError):
    """The training loss is NaN or infinite."""


class FiniteLoss(pl.Callback):
    """Raise ``TrainingDiverged`` when the training loss is not finite (checked every ``every_n_steps``)."""

    def __init__(self, every_n_steps: int = 4) -> None:
        self.every_n_steps = max(1, int(every_n_steps))

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:  # fmt: skip
        if trainer.global_step % self.every_n_steps:
            return
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is not None and not math.isfinite(float(loss)):
            lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else float("nan")
            raise TrainingDiverged(f"training loss is {float(loss)} at step {trainer.global_step} (lr {lr:.3g})")
