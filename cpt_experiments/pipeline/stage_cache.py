"""The stage cache: one directory per stage hash under ``paths.stage_dir``.

A finished stage is stored once and reused by every later run or sweep member with the same
hash, so a replay sweep trains its shared pre-training stage once. Layout of ``<stage_dir>/<hash>/``:

- ``spec.json``   the stage spec and hashing context (for humans and ``evaluate``);
- ``ckpt/last.ckpt``  the latest Lightning checkpoint (resume point, written atomically);
- ``logs/``       the CSV log of the stage (feeds the ``curves`` table);
- ``final/``      the deployable Hugging Face model + tokenizer (+ ``optimizer.pt``), written as a
                  whole directory atomically;
- ``done.json``   written last: its presence is what makes the stage count as finished. It holds
                  the stage's summary and the sha256 of every file in ``final/`` (``final_sha256``),
                  so a truncated or altered final model is detected before it is reused.

A file lock per hash makes two sweep members running at once train a stage only once: the
second waits, then finds ``done.json`` and reuses the result. Everything is written through
``cpt_experiments.atomic`` (temporary sibling + rename, umask modes); temporary siblings left by a
killed writer are removed by ``clean_stale_temps`` under the lock.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

from filelock import FileLock

from cpt_experiments.atomic import atomic_write_text, remove_stale_temps
from cpt_experiments.errors import CacheError
from cpt_experiments.hashing import sha256_file

log = logging.getLogger(__name__)

FINAL_SHA256 = "final_sha256"  # done.json key: {file name in final/: sha256 hex}


@dataclass(frozen=True)
class StageResult:
    """The summary of a finished stage, as ``done.json`` records it (less ``final_sha256``).

    ``stage``/``hash``: the stage's name and content hash; ``steps``: optimizer steps; ``tokens``:
    training tokens (steps x tokens per step); ``tokens_per_source`` (tokens), ``realised_fractions``
    (share of the stage's windows) and ``epochs_per_source`` (passes over the source's windows), each
    keyed by plan source name; ``wall_s``: seconds of training over every segment that led to these
    weights (resumes included); ``segments``: those segments (``start``/``end`` step, ``wall_s``,
    ``by`` run key); ``trained_by``: the run keys that trained at least one step; ``flops``: model
    FLOPs of the stage's training tokens.
    """

    stage: str
    hash: str
    steps: int
    tokens: int
    tokens_per_source: dict[str, int]
    realised_fractions: dict[str, float]
    epochs_per_source: dict[str, float]
    wall_s: float
    segments: list[dict[str, Any]]
    trained_by: list[str]
    flops: float

    #: Keys every ``done.json`` ever written holds (``StageDir.done_problem`` refuses a marker without one).
    REQUIRED: ClassVar[tuple[str, ...]] = ("stage", "hash", "steps", "tokens")

    @classmethod
    def from_summary(cls, doc: Mapping[str, Any]) -> StageResult:
        """From a ``done.json`` summary (``StageDir.summary``).

        Records written before resume segments existed have no ``segments``/``trained_by`` (read as
        empty); the optional keys default as their readers always defaulted them (0 s, 0 FLOPs).
        """
        return cls(
            stage=doc["stage"], hash=doc["hash"], steps=int(doc["steps"]), tokens=int(doc["tokens"]),
            tokens_per_source=dict(doc.get("tokens_per_source", {})),
            realised_fractions=dict(doc.get("realised_fractions", {})),
            epochs_per_source=dict(doc.get("epochs_per_source", {})),
            wall_s=float(doc.get("wall_s", 0.0)), segments=list(doc.get("segments", [])),
            trained_by=list(doc.get("trained_by", [])), flops=float(doc.get("flops", 0.0)),
        )  # fmt: skip

    def summary(self) -> dict[str, Any]:
        """The ``done.json`` summary (the same keys and values ``mark_done`` always wrote)."""
        # Shallow on purpose: the values go to json.dumps as they were computed (no deep copy, no casts).
        return {f.name: getattr(self, f.name) for f in fields(self)}


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
        """True when the stage finished and its record holds; CacheError (one line) if the record is broken."""
        if not self.done_file.is_file():
            return False
        problem = self.done_problem()
        if problem is not None:
            raise CacheError(f"{problem}; delete {self.root} to retrain")
        return True

    def done_problem(self) -> str | None:
        """Why the finished stage's record does not hold (one line), or None if it does.

        Checks that ``done.json`` parses, the final model exists and every file of ``final/`` has
        the sha256 recorded in ``done.json`` (stages finished before checksums were recorded are
        only checked for the model's presence).
        """
        try:
            doc = json.loads(self.done_file.read_text())
            recorded = doc.get(FINAL_SHA256) or {}
        except (OSError, ValueError, AttributeError) as exc:
            return f"{self.done_file}: unreadable stage marker ({type(exc).__name__})"
        lacking = [k for k in StageResult.REQUIRED if k not in doc]
        if lacking:  # a hand-edited or foreign marker: train the stage again rather than fail on reading it
            return f"{self.done_file}: stage marker lacks {lacking[0]!r}"
        if not (self.final_dir / "config.json").is_file():
            return f"{self.final_dir}: stage marked done but its final model is missing"
        for name, expected in sorted(recorded.items()):
            path = self.final_dir / name
            if not path.is_file():
                return f"{path}: missing from the finished stage"
            if sha256_file(path) != expected:
                return f"{path}: does not match its recorded sha256 (truncated or altered)"
        return None

    def summary(self) -> dict[str, Any]:
        """The stage summary of ``done.json`` (without the checksums of ``final/``)."""
        doc = json.loads(self.done_file.read_text())
        doc.pop(FINAL_SHA256, None)
        return doc

    def result(self) -> StageResult:
        """The finished stage's summary, typed (``StageResult.from_summary`` of ``summary``)."""
        return StageResult.from_summary(self.summary())

    def write_spec(self, spec: dict[str, Any]) -> None:
        atomic_write_text(self.spec_file, json.dumps(spec, indent=2, sort_keys=True, default=str))

    def mark_done(self, summary: dict[str, Any]) -> None:
        """Write ``done.json`` (last step of a stage): ``summary`` plus the sha256 of every file in ``final/``."""
        checksums = {p.name: sha256_file(p) for p in sorted(self.final_dir.iterdir()) if p.is_file()}
        doc = {**summary, FINAL_SHA256: checksums}
        atomic_write_text(self.done_file, json.dumps(doc, indent=2, sort_keys=True, default=str))

    def unmark_done(self) -> None:
        """Forget that the stage finished (``done.json`` first, so a kill never leaves done without final)."""
        self.done_file.unlink(missing_ok=True)
        shutil.rmtree(self.final_dir, ignore_errors=True)

    def clean_stale_temps(self) -> list[Path]:
        """Remove temporary siblings left by killed writers (call under the stage lock)."""
        removed = []
        for directory in (self.root, self.ckpt_dir, self.final_dir):
            removed += remove_stale_temps(directory)
        for path in removed:
            log.info("removed stale temporary %s", path)
        return removed


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
