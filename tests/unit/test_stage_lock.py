"""The stage lock across processes: sweep members that ask for the same stage at once train it once.

Two forked processes call ``stage_runner.train_stage`` on one stage directory with training replaced
by a half-second fake; the lock, the done check and the reuse path are the real ones. (The two-member
joblib sweep in ``test_train_smoke``, slow tier, checks the same through the CLI and real training.)
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

import cpt_experiments.pipeline.stage_runner as runner
from cpt_experiments.pipeline.stage_cache import stage_dir


def _fake_train(job: runner.StageJob, run_key: str | None, resuming: bool, rank0: bool) -> runner.StageOutcome:
    with open(job.sd.root / "trainers.txt", "a") as fh:
        fh.write(f"{os.getpid()}\n")
    time.sleep(0.5)  # long enough that the other process reaches the lock while this one holds it
    job.sd.final_dir.mkdir(parents=True)
    (job.sd.final_dir / "config.json").write_text("{}")
    record = {"stage": job.stage.name, "hash": job.stage_hash, "steps": 1, "tokens": 16, "trained_by": [run_key]}
    job.sd.mark_done(record)
    return runner.StageOutcome("trained", job.sd.result())


def _job(root: Path, run_key: str) -> runner.StageJob:
    trainer = SimpleNamespace(devices=1, num_nodes=1)
    return runner.StageJob(
        stage=SimpleNamespace(name="pretrain"), stage_hash="abc123", sd=stage_dir(root, "abc123"), parent_sd=None,
        plan=None, train_sources={}, tokens_before=0, ctx=SimpleNamespace(cfg=SimpleNamespace(trainer=trainer)),
        spec={"stage": "pretrain"}, run_key=run_key,
    )  # fmt: skip


def _member(root: Path, run_key: str, start, statuses) -> None:
    start.wait()
    statuses.put((run_key, runner.train_stage(_job(root, run_key)).status))


def test_two_processes_on_one_stage_train_it_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "_train", _fake_train)  # inherited by the forked members
    fork = mp.get_context("fork")
    start, statuses = fork.Event(), fork.Queue()
    members = [fork.Process(target=_member, args=(tmp_path, key, start, statuses)) for key in ("run-a", "run-b")]
    for p in members:
        p.start()
    start.set()
    for p in members:
        p.join(timeout=60)
        assert p.exitcode == 0
    status = dict(statuses.get(timeout=5) for _ in members)
    trainers = (tmp_path / "abc123" / "trainers.txt").read_text().split()
    assert len(trainers) == 1, "both members trained the stage"
    assert sorted(status.values()) == ["reused", "trained"]
