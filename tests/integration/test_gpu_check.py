"""The prepared GPU check on a CPU machine: it refuses to run without CUDA, its axis members compose and plan
with ``trainer=gpu`` (dry run), its tables summarise, and ``--dry-run`` rehearses every step (slow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import compose

from cpt_experiments.bench import gpu_axis, gpu_check
from cpt_experiments.pipeline.context import typed_config
from cpt_experiments.pipeline.planning import build_stages
from cpt_experiments.pipeline.stage_plan import Geometry, steps_and_schedule
from cpt_experiments.training.trainer import check_trainer

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible")
def test_without_cuda_the_check_stops_at_once_and_writes_nothing(tmp_path, capsys):
    assert gpu_check.main([str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "gpu_check: error: no CUDA device is visible" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible")
def test_the_ci_script_fails_loudly_without_cuda(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable}
    proc = subprocess.run(
        [str(REPO / ".ci" / "gpu-check"), str(tmp_path / "out")], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 2 and "gpu_check: error: no CUDA device is visible" in proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("k", [1, 8])
def test_axis_members_compose_and_plan_with_the_gpu_trainer(tmp_path, k):
    cfg = compose(*gpu_axis.axis_overrides(k, 2), f"paths.output_dir={tmp_path}", "dry_run=true")
    root, _ = typed_config(cfg)
    assert (root.trainer.accelerator, root.trainer.precision, root.seed) == ("gpu", "bf16-mixed", 2)
    assert {r: c.name for r, c in root.corpora.items()} == {
        "en_old": "wiki_en_large",
        "de_new": "bundestag_de_large",
    }
    assert root.model.name == "neox_d128" and root.experiment.variant == f"strong-replay0.25-x{k}"
    stages = build_stages(root.experiment)
    assert {n: s.tokens for n, s in stages.items()} == {
        "pretrain": 3_145_728 * k, "continual": 2_097_152 * k, "new_only": 2_097_152 * k, "union": 5_242_880 * k
    }  # fmt: skip
    assert stages["continual"].replay.ratio == 0.25 and dict(stages["continual"].data) == {"de_new": 1.0}
    geometry = Geometry(root.model.seq_len, root.train.global_batch_windows)
    for stage in stages.values():
        steps_and_schedule(stage, geometry)
    check_trainer(root, build=False)  # the dry run's trainer check, without a GPU
    assert asdict(root.train)["attention"] == "sdpa"


def _tables(results: Path) -> None:
    results.mkdir()
    runs = [
        {
            "run_id": f"r{k}{s}",
            "stage": st,
            "variant": f"strong-replay0.25-x{k}",
            "seed": s,
            "status": "done",
            "stage_tokens": 100 * k,
            "steps": k,
            "wall_s": 1.0,
        }
        for k in (1, 2)
        for s in (0, 1)
        for st in ("a", "b")
    ]
    curves = [
        {
            "run_id": r["run_id"],
            "stage": r["stage"],
            "step": step,
            "tokens": 0,
            "split": dom,
            "metric": m,
            "value": (10.0 if step < r["steps"] else r["seed"] + r["steps"]) + (m == "bpb"),
        }
        for r in runs
        for step in (0, r["steps"])
        for dom in ("en_old", "de_new", "train")
        for m in ("loss", "bpb")
    ]
    pd.DataFrame(runs).to_csv(results / "runs.csv", index=False)
    pd.DataFrame(curves).to_csv(results / "curves.csv", index=False)  # fmt: skip


def test_summary_takes_each_stages_final_loss_and_means_over_seeds(tmp_path):
    _tables(tmp_path / "results")
    summary = gpu_axis.summarize(tmp_path / "results")
    assert len(summary) == 8 and list(summary["budget_x"].unique()) == [1, 2]
    assert (summary["loss_en_old"] == summary["seed"] + summary["steps"]).all()  # the final step, the loss
    means = gpu_axis.mean_table(summary)
    row = means[(means["budget_x"] == 2) & (means["stage"] == "a")].iloc[0]
    assert (row["seeds"], row["loss_de_new_mean"], row["loss_de_new_std"]) == (2, 2.5, pytest.approx(0.5**0.5))


@pytest.mark.slow
def test_dry_run_rehearses_every_step_on_the_cpu(tmp_path, monkeypatch):
    """bench, kill -9 + resume and a two-member axis at smoke size, as on the GPU (about 2 minutes on 2 cores)."""
    monkeypatch.chdir(REPO)
    assert gpu_check.main([str(tmp_path / "out"), "--dry-run"]) == 0
    report = tmp_path / "out" / "report"
    check = json.loads((report / "check.json").read_text())
    assert check["resume"]["passed"] and check["resume"]["killed_mid_stage"] and check["resume"]["max_abs_diff"] == 0
    assert check["bench"]["neox_d32"]["paths"]["lightning"]["tokens_per_s"] > 0
    assert [m["status"] for m in check["axis"]["members"]] == ["done", "done"]
    assert sorted(p.name for p in report.iterdir()) == ["axis_means.csv", "axis_summary.csv", "check.json",
                                                        "check.log", "curves.csv", "runs.csv"]  # fmt: skip
    assert "(b) resume check" in (report / "check.log").read_text()
    assert set(pd.read_csv(report / "axis_summary.csv")["budget_x"]) == {1, 2}
