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
    """Save ``path`` every ``every_n_steps`` optimizer steps (with the logs flushed) and at the end of training."""

    def __init__(self, path: str | Path, every_n_steps: int) -> None:
        if every_n_steps < 1:
            raise ValueError("train.checkpoint_every_n_steps: must be >= 1")
        self.path = Path(path)
        self.every_n_steps = int(every_n_steps)
        self._last_saved = -1

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx: int) -> None:
        # Saved at the start of the batch after an optimizer step, not at the end of the stepping
        # batch: Lightning hands that batch's metrics to the loggers only after the callbacks'
        # on_train_batch_end, so a checkpoint taken there would be ahead of the flushed log and a
        # resume would leave a hole in the curves. Only at accumulation boundaries: partial
        # gradients are not part of a checkpoint.
        if batch_idx % trainer.accumulate_grad_batches != 0:
            return
        step = trainer.global_step
        if step > 0 and step != self._last_saved and step % self.every_n_steps == 0:
            self._save(trainer, step)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.global_step != self._last_saved:
            self._save(trainer, trainer.global_step)

    def _save(self, trainer: pl.Trainer, step: int) -> None:
        for logger in trainer.loggers:  # the log must be durable up to the checkpoint's step
            logger.save()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        trainer.save_checkpoint(self.path)
        self._last_saved = step
