"""Concurrent writers: two processes running the same command on one stage cache and results folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cpt_experiments.atomic import is_temp_name
from cpt_experiments.results import store

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_two_processes_on_the_same_stages_train_each_once_and_record_one_row(tmp_path, data_dir):
    """Started together: each stage is trained by one process and reused by the other (the stage lock),
    both exit 0, and the tables hold one row per stage (the results lock and idempotent appends).

    Slow (two interpreters side by side); the default tier covers the stage lock with the two-member
    joblib sweep in test_train_smoke and idempotent rows with test_checkpoints' rerun of a finished run.
    """
    args = [
        "experiment=cpt",
        "experiment.union=null",
        "scale=smoke",
        "budget.pretrain_tokens=8192",
        "budget.continual_tokens=4096",
        f"paths.data_dir={data_dir}",
        f"paths.output_dir={tmp_path / 'out'}",
        f"paths.cache_dir={tmp_path / 'cache'}",
        f"paths.results_dir={tmp_path / 'results'}",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "cpt_experiments.train", *args],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out[-3000:]

    stages = sorted((tmp_path / "out" / "stages").glob("*/done.json"))
    assert len(stages) == 2
    for done_file in stages:
        done = json.loads(done_file.read_text())
        assert [(s["start"], s["end"]) for s in done["segments"]] == [(0, done["steps"])]
        versions = [v for v in (done_file.parent / "logs").glob("version_*") if (v / "metrics.csv").is_file()]
        assert len(versions) == 1, "a stage was trained by both processes"
    trained = sum(out.count(": training ") for out in outputs)
    reused = sum(out.count(": reused from ") for out in outputs)
    assert (trained, reused) == (2, 2)

    runs = store.load(tmp_path / "results", "runs")
    assert sorted(runs["stage"]) == ["continual", "pretrain"] and (runs["status"] == "done").all()
    curves = store.load(tmp_path / "results", "curves")
    assert not curves.duplicated(subset=["run_id", "stage", "split", "metric", "step"]).any()
    assert [p for p in (tmp_path / "out").rglob("*") if is_temp_name(p.name)] == []
