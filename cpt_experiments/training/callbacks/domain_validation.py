"""Periodic validation loss per domain, measured at optimizer-step boundaries.

Runs outside Lightning's validation loop on purpose: Lightning schedules validation by its batch
counter, which shifts by one after a resume from a mid-stage checkpoint, whereas this callback
keys on ``trainer.global_step`` (restored exactly), so a resumed stage validates at the same
updates as an uninterrupted one. Values go straight to the loggers, labelled with that step.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pytorch_lightning as pl

from cpt_experiments.eval.domain_loss import ValSet, domain_losses


class DomainValidation(pl.Callback):
    """Log ``val/<domain>/loss`` (nats/token) and ``val/<domain>/bpb`` every ``every_n_steps`` updates,
    and at each of ``early_steps`` (updates since the stage start: the re-warm spike is a few dozen
    updates long, shorter than a useful periodic interval)."""

    def __init__(
        self, valsets: Mapping[str, ValSet], every_n_steps: int, batch_size: int = 16, early_steps: Iterable[int] = ()
    ) -> None:
        self.valsets = dict(valsets)
        self.every_n_steps = int(every_n_steps)
        self.batch_size = int(batch_size)
        self.early_steps = frozenset(int(s) for s in early_steps)

    def due(self, step: int) -> bool:
        """Whether to validate before update ``step`` (= after ``step`` updates of this stage)."""
        return step > 0 and (step % self.every_n_steps == 0 or step in self.early_steps)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx: int) -> None:
        if not self.valsets or batch_idx % trainer.accumulate_grad_batches != 0:
            return
        if self.due(trainer.global_step):
            self.validate(trainer, pl_module)

    def validate(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, dict[str, float]]:
        """Measure every domain now and hand the values to the loggers (rank zero only)."""
        model = getattr(pl_module, "model", pl_module)
        losses = domain_losses(model, self.valsets, batch_size=self.batch_size)
        if trainer.is_global_zero:
            metrics = {f"val/{d}/{k}": v for d, m in losses.items() for k, v in m.items()}
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=trainer.global_step)
        return losses
