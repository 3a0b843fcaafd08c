"""A periodic progress line during a stage: step, tokens, loss, tokens/s and ETA (no progress bar).

A line every ``every_s`` seconds of wall time (and at the end) reads well in a terminal, in a
SLURM log and in a Hydra job log alike, where a progress bar would print thousands of lines.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pytorch_lightning as pl

log = logging.getLogger(__name__)


def _eta(seconds: float) -> str:
    seconds = int(max(0.0, seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


class ProgressLine(pl.Callback):
    """Log ``stage <name>: step k/T (p%), tokens, loss, tokens/s, ETA`` every ``every_s`` seconds."""

    def __init__(self, stage: str, total_steps: int, tokens_per_step: int, every_s: float = 30.0) -> None:
        self.stage, self.total_steps, self.tokens_per_step = stage, int(total_steps), int(tokens_per_step)
        self.every_s = float(every_s)
        self._start: tuple[float, int] | None = None  # (time, step) when this segment started
        self._last = 0.0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = (time.perf_counter(), trainer.global_step)
        self._last = self._start[0]

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:  # fmt: skip
        now = time.perf_counter()
        if now - self._last >= self.every_s and trainer.is_global_zero:
            self._last = now
            self._report(trainer, outputs, now)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero:
            self._report(trainer, None, time.perf_counter())

    def _report(self, trainer: pl.Trainer, outputs: Any, now: float) -> None:
        assert self._start is not None
        step = trainer.global_step
        done = step - self._start[1]
        rate = done * self.tokens_per_step / max(now - self._start[0], 1e-9)  # tokens/s of this segment
        eta = _eta((self.total_steps - step) * self.tokens_per_step / rate) if rate > 0 else "?"
        loss = outputs.get("loss") if isinstance(outputs, dict) else None
        loss_text = f", loss {float(loss):.3f}" if loss is not None else ""
        log.info(
            "stage %s: step %d/%d (%.0f%%), %.2fM tokens%s, %.0f tokens/s, ETA %s",
            self.stage, step, self.total_steps, 100 * step / max(self.total_steps, 1),
            step * self.tokens_per_step / 1e6, loss_text, rate, eta,
        )  # fmt: skip
