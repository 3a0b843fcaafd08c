"""A failing sweep member is listed as failed with its reason; the other members still run; exit 1.

A member whose config is bad fails before any work and writes no results row; a member whose stage fails
while training is a `failed` runs row naming the stage.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import compose

from cpt_experiments.results import store

REPO = Path(__file__).resolve().parents[2]


# joblib (~60 s on 2 cores: worker start-up) is slow; the basic launcher covers the same isolation logic.
@pytest.mark.parametrize("launcher", ["basic", pytest.param("joblib", marks=pytest.mark.slow)])
def test_bad_member_fails_alone(tmp_path: Path, data_dir: Path, smoke_cache: Path, launcher: str) -> None:
    args = [
        sys.executable, "-m", "cpt_experiments.train", "-m", "experiment=cpt", "scale=smoke", "replay=seen",
        "replay.ratio=0.25,1.5", "experiment.union=null", "budget.pretrain_tokens=2048", "budget.continual_tokens=1024",
        f"paths.data_dir={data_dir}", f"paths.output_dir={tmp_path / 'out'}", f"paths.cache_dir={smoke_cache}",
    ]  # fmt: skip
    if launcher == "joblib":
        args += ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
    env = {**os.environ, "WANDB_MODE": "offline"}
    proc = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "member 1: FAILED  replay.ratio: must be in [0, 1), got 1.5" in proc.stderr
    assert "1 of 2 members failed" in proc.stderr and "Traceback" not in proc.stderr
    runs = store.load(tmp_path / "out" / "results", "runs")
    assert (runs["status"] != "failed").all()  # the bad config wrote nothing
    done = runs[runs["status"].isin(["done", "reused"])]
    assert sorted(done["stage"]) == ["continual", "pretrain"]  # the good member ran to the end


def test_training_time_failure_is_a_failed_row(tmp_path: Path, data_dir: Path, smoke_cache: Path, monkeypatch) -> None:
    """A stage that fails while training (here: its parent's export is unreadable) is a `failed` row."""
    from cpt_experiments.pipeline import experiment as xp
    from cpt_experiments.pipeline.failures import handle_failure
    from cpt_experiments.train import train

    cfg = compose(
        "experiment=cpt", "scale=smoke", "experiment.union=null", "budget.pretrain_tokens=2048",
        "budget.continual_tokens=1024", f"paths.data_dir={data_dir}", f"paths.output_dir={tmp_path}",
        f"paths.cache_dir={smoke_cache}",
    )  # fmt: skip

    def boom(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(xp, "train_stage", boom)
    with pytest.raises(Exception) as err:
        train(cfg)
    assert handle_failure(cfg, err.value) == "stage pretrain: RuntimeError: disk on fire"
    runs = store.load(tmp_path / "results", "runs")
    assert list(runs["status"]) == ["failed"] and list(runs["stage"]) == ["pretrain"]
