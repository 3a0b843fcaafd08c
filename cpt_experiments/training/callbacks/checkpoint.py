"""Resume checkpoints: one atomically replaced, verifiable ``last.ckpt`` per stage.

Lightning's ``ModelCheckpoint`` keeps top-k files and symlinks; a stage only ever needs the latest
resume point. Lightning's own writer (``lightning_fabric.utilities.cloud_io._atomic_save``) goes
through a temporary file in ``$TMPDIR`` and a move, which across filesystems (common on clusters)
is a copy straight onto the destination: a full disk or a kill mid-copy leaves a truncated
``last.ckpt`` and a stray file in ``$TMPDIR``. ``AtomicCheckpointIO`` writes a temporary sibling
in the destination directory instead, fsyncs it and renames it (``cpt_experiments.atomic``), and
loads with ``weights_only=True`` (no arbitrary unpickling). ``checkpoint_problem`` verifies a
checkpoint before a resume: complete zip, every member's CRC32, and a safe unpickle.

``ResumeCheckpoint`` also carries the stage's training history through resumes: the segments
(start/end step, wall time, which run trained them) that led to the checkpoint, so a resumed stage
reports its whole training time and who trained it.
"""

from __future__ import annotations

import pickle
import time
import zipfile
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.plugins.io import TorchCheckpointIO

from cpt_experiments.atomic import atomic_path, disk_full_error, is_disk_full
from cpt_experiments.errors import CacheError


def _reason(exc: BaseException) -> str:
    """One line saying why a load failed (torch's weights-only refusal names the culprit further down)."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    if lines and lines[0].startswith("Weights only load failed"):
        culprit = next((ln for ln in lines[1:] if "GLOBAL" in ln or "global" in ln), "not plain tensors and types")
        return f"unsafe pickle refused: {culprit}"
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def checkpoint_problem(path: str | Path) -> str | None:
    """Why ``path`` cannot be resumed from (one line), or None for a complete, safe checkpoint.

    Checks the zip structure (a truncated file has no central directory), every member's CRC32
    (torch writes them, but its reader does not check them) and that the pickle loads with
    ``weights_only=True`` (tensor data memory-mapped, not read twice).
    """
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
        if bad is not None:
            return f"CRC mismatch in member {bad} (corrupted)"
        torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # noqa: BLE001 - any failure means the file cannot be resumed from
        return _reason(exc)
    return None


def load_plain(path: str | Path) -> Any:
    """``torch.load(path, weights_only=True)`` on CPU; a truncated or unsafe file is a one-line CacheError."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CacheError(
            f"{path}: refused to load ({_reason(exc)}); delete its stage directory to retrain it"
        ) from None


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` into a temporary sibling + fsync + rename; ``torch.load`` with ``weights_only=True``."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        # A Python file object: a full disk then surfaces as OSError(ENOSPC) (a path would give
        # torch's errno-less "unexpected pos" RuntimeError), which atomic_path turns into CacheError.
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            torch.save(checkpoint, fh)

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        return super().load_checkpoint(path, map_location=map_location or "cpu", weights_only=weights_only is not False)


class ResumeCheckpoint(pl.Callback):
    """Save ``path`` every ``every_n_steps`` optimizer steps (with the logs flushed) and at the end of training.

    ``run_key`` names the run that trains this segment (the suite uses the run's config hash); it
    is recorded with the segment in the checkpoint, as is the segment's wall time.
    """

    def __init__(self, path: str | Path, every_n_steps: int, run_key: str | None = None) -> None:
        if every_n_steps < 1:
            raise ValueError("train.checkpoint_every_n_steps: must be >= 1")
        self.path = Path(path)
        self.every_n_steps = int(every_n_steps)
        self.run_key = run_key
        self._last_saved = -1
        self._t0 = time.monotonic()
        self._step = 0  # global step of the latest save (what state_dict describes)
        self.start_step = 0  # global step this segment started from (the restored checkpoint's)
        self.earlier: list[dict[str, Any]] = []  # segments the restored checkpoint descends from

    @property
    def state_key(self) -> str:
        # Fixed, so a checkpoint stays loadable when the callback is subclassed (tests do).
        return "ResumeCheckpoint"

    # ---- history -----------------------------------------------------------------------------

    def segments(self, step: int) -> list[dict[str, Any]]:
        """Earlier segments plus this one up to ``step``: ``{"start", "end", "wall_s", "by"}`` each."""
        now = {"start": self.start_step, "end": int(step), "wall_s": time.monotonic() - self._t0, "by": self.run_key}
        return [*self.earlier, now]

    @staticmethod
    def trained_by(segments: list[dict[str, Any]]) -> list[str]:
        """Sorted run keys of the segments that trained at least one step."""
        return sorted({s["by"] for s in segments if s["by"] and s["end"] > s["start"]})

    def state_dict(self) -> dict[str, Any]:
        return {"segments": self.segments(self._step)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.earlier = [dict(s) for s in state_dict.get("segments", [])]
        self.start_step = int(self.earlier[-1]["end"]) if self.earlier else 0

    # ---- hooks -------------------------------------------------------------------------------

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._t0 = time.monotonic()  # the segment's wall time includes restoring the checkpoint
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:  # a user's own plugin is kept
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.earlier:  # a fresh stage, or a checkpoint written before segments were recorded
            self.start_step = trainer.global_step

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
        try:
            for logger in trainer.loggers:  # the log must be durable up to the checkpoint's step
                logger.save()
        except Exception as exc:
            if is_disk_full(exc) and not isinstance(exc, CacheError):
                raise disk_full_error(getattr(trainer.loggers[0], "log_dir", self.path.parent)) from exc
            raise
        self._step = step
        # weights_only=False: the full resume state (optimizer, loops, callbacks); saying so also
        # silences Lightning's "`weights_only` was not set" notice at every save.
        trainer.save_checkpoint(self.path, weights_only=False)
        self._last_saved = step
