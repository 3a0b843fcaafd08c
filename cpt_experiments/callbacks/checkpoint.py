"""Periodic resume checkpoints: one atomically replaced ``last.ckpt`` per stage.

Lightning's ``ModelCheckpoint`` keeps top-k files and symlinks; a stage only ever needs the
latest resume point, and ``trainer.save_checkpoint`` already writes through a temporary file
and a rename (``lightning_fabric.utilities.cloud_io._atomic_save``), so a SIGKILL leaves either
the previous checkpoint or the new one.
"""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl


class ResumeCheckpoint(pl.Callback):
    """Save ``path`` every ``every_n_steps`` optimizer steps and at the end of training."""

    def __init__(self, path: str | Path, every_n_steps: int) -> None:
        if every_n_steps < 1:
            raise ValueError("train.checkpoint_every_n_steps: must be >= 1")
        self.path = Path(path)
        self.every_n_steps = int(every_n_steps)
        self._last_saved = -1

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx) -> None:
        # Only right after an optimizer step: a checkpoint taken mid-accumulation would lose the
        # partial gradients it does not store.
        if (batch_idx + 1) % trainer.accumulate_grad_batches != 0:
            return
        step = trainer.global_step
        if step != self._last_saved and step % self.every_n_steps == 0 and step > 0:
            self._save(trainer, step)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.global_step != self._last_saved:
            self._save(trainer, trainer.global_step)

    def _save(self, trainer: pl.Trainer, step: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        trainer.save_checkpoint(self.path)
        self._last_saved = step
