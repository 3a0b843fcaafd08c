"""Failure isolation for sweeps: a failing member becomes a ``failed`` runs row with a one-line reason.

A Hydra multirun calls the task function once per member. If a member raised (or called
``sys.exit``, which Hydra's launchers do not catch), the sweep would stop there, or with the
joblib launcher die with no rows at all. Instead ``handle_failure`` marks the member (a ``FAILED``
file with its reason in its Hydra output directory) and returns, so the next member runs;
``SweepFailures`` (a Hydra callback) lists the failed members when the sweep ends and exits
non-zero. Only a failure while training or measuring a stage (``StageFailed``) becomes a ``failed``
runs row: a config, data or plan error is raised before any work and writes nothing into the
results. Rerunning the sweep retries only what is not done: finished stages come from the stage cache.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from cpt_experiments.atomic import atomic_write_text
from cpt_experiments.errors import CPTError
from cpt_experiments.pipeline import records
from cpt_experiments.results import failed_rows, store

log = logging.getLogger(__name__)

FAILED_MARKER = "FAILED"
SUMMARY_FILE = "summary.json"


class StageFailed(CPTError):
    """Training or measuring one stage failed; ``stage`` names it, ``cause`` is the original error."""

    def __init__(self, run_id: str, stage: str, cause: BaseException, config_hash: str | None = None) -> None:
        super().__init__(f"stage {stage}: {one_line(cause)}")
        self.run_id, self.stage, self.cause, self.config_hash = run_id, stage, cause, config_hash


def one_line(exc: BaseException) -> str:
    """The user-facing reason: a CPTError's own line, else the exception type and its first line."""
    if isinstance(exc, CPTError):
        return str(exc).replace("\n", " ")
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _identity(cfg: DictConfig | Any) -> tuple[str, int | None, str]:
    """Best-effort (experiment, seed, config hash) of a config that may not even validate.

    The hash is ``records.config_hash`` of the resolved config when it resolves (so a failed row
    names the run a fixed rerun would be), else of the unresolved one.
    """
    raw: dict[str, Any] = {}
    for resolve in (True, False):
        try:
            raw = OmegaConf.to_container(cfg, resolve=resolve) if isinstance(cfg, DictConfig) else dict(cfg)
            break
        except Exception:  # noqa: BLE001 - a broken config still gets a failure row
            continue
    exp = raw.get("experiment") or {}
    name = str(exp.get("name", "unknown")) if isinstance(exp, dict) else "unknown"
    seed = raw.get("seed")
    seed = seed if isinstance(seed, int) and not isinstance(seed, bool) else None
    return name, seed, records.config_hash(raw)


def _output_dir() -> Path | None:
    try:
        return Path(HydraConfig.get().runtime.output_dir)
    except ValueError:  # not running under Hydra (tests, notebooks)
        return None


def handle_failure(cfg: DictConfig, exc: BaseException) -> str:
    """Mark a failed run (FAILED file) and return its one-line reason; a failed stage is also a runs row.

    An error before any stage trained (config, data, tokenizer, plan) writes no results row: nothing
    ran, and a fixed rerun is a new config. Writing the row of a failed stage is best effort: an
    unwritable results directory must not hide the original error.
    """
    reason = one_line(exc)
    if isinstance(exc, StageFailed):
        _record_failed_stage(cfg, exc, reason)
    out = _output_dir()
    if out is not None:
        atomic_write_text(out / FAILED_MARKER, reason + "\n")
    return reason


def _record_failed_stage(cfg: DictConfig, exc: StageFailed, reason: str) -> None:
    experiment, seed, cfg_hash = _identity(cfg)
    row = {
        "run_id": exc.run_id, "experiment": experiment, "stage": exc.stage, "status": "failed",
        "reason": reason, "attempt": failed_rows.attempt_id(exc.stage, reason), "seed": seed,
        "config_hash": getattr(exc, "config_hash", None) or cfg_hash,
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }  # fmt: skip
    try:
        results_dir = OmegaConf.select(cfg, "paths.results_dir", throw_on_missing=False)
        if results_dir:
            store.append(results_dir, "runs", [row])
    except Exception as write_exc:  # noqa: BLE001 - keep the original failure visible
        log.warning("could not record the failure in the runs table: %s", one_line(write_exc))


def log_to_file(reason: str, exc: BaseException) -> None:
    """The failure (with the traceback of an unexpected error) into the run's log file only: the console
    gets the entry point's one ``error:`` line, once."""
    tb = None if isinstance(exc, CPTError) else (type(exc), exc, exc.__traceback__)
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, "%s", (reason,), tb)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def write_summary(summary: dict[str, Any]) -> None:
    """``summary.json`` in the job's Hydra directory: the run's fields (``run_id``, ``config_hash``, ``stages``:
    one ``{stage, status, hash, tokens, steps, wall_s, losses: {domain: {loss, bpb}}}`` each, losses in
    nats/token and bits/byte) and ``lines``, the printed table the sweep's end-of-sweep summary repeats."""
    out = _output_dir()
    if out is not None:
        atomic_write_text(out / SUMMARY_FILE, json.dumps(summary, indent=1, sort_keys=True) + "\n")


def _check_hydra_dir(config: DictConfig, path: str, what: str) -> None:
    """Hydra creates its run/sweep dir before the task runs: a failure there would be its traceback."""
    if not str(OmegaConf.select(config, "paths.output_dir", default="x")).strip():
        print(
            "error: paths.output_dir: is empty; give a folder (relative paths start at the launch dir)", file=sys.stderr
        )
        sys.exit(2)
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"error: paths.output_dir: {path} ({what}) cannot be created: {exc.strerror or exc}", file=sys.stderr)
        sys.exit(2)


class SweepFailures(Callback):
    """Before a run, its Hydra dir must be creatable (else one line, exit 2); at the end of a multirun: print
    every member's table and failure, exit 1 if any member failed."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        _check_hydra_dir(config, config.hydra.run.dir, "Hydra's run dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _check_hydra_dir(config, config.hydra.sweep.dir, "Hydra's sweep dir")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep = Path(config.hydra.sweep.dir)
        members = sorted((p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))
        failed = []
        print(f"\nsweep {sweep}: {len(members)} members", file=sys.stderr)
        for m in members:
            if (m / FAILED_MARKER).is_file():
                reason = (m / FAILED_MARKER).read_text().strip()
                failed.append(m.name)
                print(f"  member {m.name}: FAILED  {reason}", file=sys.stderr)
            elif (m / SUMMARY_FILE).is_file():
                for line in json.loads((m / SUMMARY_FILE).read_text()).get("lines", []):
                    print(f"  member {m.name}: {line}", file=sys.stderr)
            else:  # e.g. a worker killed before it could write either
                print(f"  member {m.name}: no summary (see {m})", file=sys.stderr)
        if failed:
            print(f"{len(failed)} of {len(members)} members failed; rerun the same command to retry them "
                  "(finished stages are reused)", file=sys.stderr)  # fmt: skip
            sys.exit(1)
