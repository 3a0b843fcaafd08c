"""The stage cache: one directory per stage hash under ``paths.stage_dir``.

A finished stage is stored once and reused by every later run or sweep member with the same
hash, so a replay sweep trains its shared pre-training stage once. Layout of ``<stage_dir>/<hash>/``:

- ``spec.json``   the stage spec and hashing context (for humans and ``evaluate``);
- ``ckpt/last.ckpt``  the latest Lightning checkpoint (resume point, written atomically);
- ``logs/``       the CSV log of the stage (feeds the ``curves`` table);
- ``final/``      the deployable Hugging Face model + tokenizer (+ ``optimizer.pt``), written as a
                  whole directory atomically;
- ``done.json``   written last: its presence is what makes the stage count as finished.

A file lock per hash makes two sweep members running at once train a stage only once: the
second waits, then finds ``done.json`` and reuses the result.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock

from cpt_experiments.atomic import atomic_write_text
from cpt_experiments.errors import CacheError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StageDir:
    """Paths of one cached stage."""

    root: Path

    @property
    def hash(self) -> str:
        return self.root.name

    @property
    def spec_file(self) -> Path:
        return self.root / "spec.json"

    @property
    def ckpt_dir(self) -> Path:
        return self.root / "ckpt"

    @property
    def last_ckpt(self) -> Path:
        return self.ckpt_dir / "last.ckpt"

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"

    @property
    def final_dir(self) -> Path:
        return self.root / "final"

    @property
    def done_file(self) -> Path:
        return self.root / "done.json"

    @property
    def lock_file(self) -> Path:
        return self.root.with_name(self.root.name + ".lock")

    def is_done(self) -> bool:
        """True when the stage finished: ``done.json`` parses and the final model exists."""
        if not self.done_file.is_file():
            return False
        try:
            json.loads(self.done_file.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise CacheError(
                f"{self.done_file}: unreadable stage marker ({exc}); delete the stage directory to retrain"
            ) from None
        if not (self.final_dir / "config.json").is_file():
            raise CacheError(
                f"{self.final_dir}: stage marked done but its final model is missing; delete {self.root} to retrain"
            )
        return True

    def summary(self) -> dict[str, Any]:
        """The content of ``done.json``."""
        return json.loads(self.done_file.read_text())

    def write_spec(self, spec: dict[str, Any]) -> None:
        atomic_write_text(self.spec_file, json.dumps(spec, indent=2, sort_keys=True, default=str))

    def mark_done(self, summary: dict[str, Any]) -> None:
        atomic_write_text(self.done_file, json.dumps(summary, indent=2, sort_keys=True, default=str))


def stage_dir(root: str | Path, stage_hash: str) -> StageDir:
    """The cache entry of ``stage_hash`` under ``root`` (not created)."""
    return StageDir(Path(root) / stage_hash)


@contextmanager
def locked(sd: StageDir, timeout_s: float = -1) -> Iterator[StageDir]:
    """Hold the stage's file lock (blocking by default) while training or checking it."""
    sd.root.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(sd.lock_file), timeout=timeout_s)
    with lock:
        sd.root.mkdir(parents=True, exist_ok=True)
        yield sd
