"""End to end at scale=smoke on the synthetic corpora: quickstart, stage reuse, sweeps, SIGKILL resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import compose

from cpt_experiments.pipeline.failures import StageFailed
from cpt_experiments.results import store
from cpt_experiments.train import train

REPO = Path(__file__).resolve().parents[2]


def compose_cfg(tmp: Path, data_dir: Path, *overrides: str):
    return compose(
        "scale=smoke",
        f"paths.data_dir={data_dir}",
        f"paths.output_dir={tmp / 'outputs'}",
        f"paths.cache_dir={tmp / 'cache'}",
        f"paths.results_dir={tmp / 'results'}",
        *overrides,
    )


def test_quickstart_end_to_end_then_reused(tmp_path, data_dir, smoke_cache):
    cfg = compose_cfg(
        tmp_path, data_dir, "experiment=quickstart", f"paths.cache_dir={smoke_cache}", "train.val_early_steps=[3,5]"
    )
    summary = train(cfg)
    assert set(summary.stages) == {"pretrain", "de_replay0", "de_replay25", "union"}
    assert summary.trained() == ["pretrain", "de_replay0", "de_replay25", "union"]

    runs = store.load(tmp_path / "results", "runs")
    assert sorted(runs["stage"]) == ["de_replay0", "de_replay25", "pretrain", "union"]
    by_stage = runs.set_index("stage")
    assert by_stage.loc["de_replay25", "replay_ratio"] == 0.25
    assert (
        by_stage.loc["union", "stage_tokens"]
        == by_stage.loc["pretrain", "stage_tokens"] + by_stage.loc["de_replay0", "stage_tokens"]
    )
    assert by_stage.loc["de_replay0", "cumulative_tokens"] == by_stage.loc["union", "stage_tokens"]
    # Checkpoints relative to paths.output_dir: a committed table holds no machine's absolute paths.
    assert all(
        not Path(c).is_absolute() and (tmp_path / "outputs" / c / "config.json").is_file() for c in runs["checkpoint"]
    )

    curves = store.load(tmp_path / "results", "curves")
    final = curves[(curves["metric"] == "loss") & curves["split"].isin(["en_old", "de_new"])]
    last = final.sort_values("step").groupby(["stage", "split"])["value"].last()
    assert last.notna().all() and len(last) == 8
    # Continuing on German lowers the German loss; replay keeps English loss lower than no replay.
    assert last["de_replay0", "de_new"] < last["pretrain", "de_new"]
    assert last["de_replay25", "en_old"] < last["de_replay0", "en_old"]
    # Validation at the early steps of every stage (stage-local steps) and periodically after them.
    val_steps = curves[curves["split"] == "en_old"].groupby("stage")["step"].agg(set)
    assert all({3, 5} <= steps and 4 not in steps for steps in val_steps), val_steps.to_dict()
    lr = curves[(curves["stage"] == "pretrain") & (curves["metric"] == "lr")].sort_values("step")
    assert lr["value"].iloc[0] < lr["value"].max()  # warmup from ~0 to the peak was applied and logged

    # The same command again trains nothing and rewrites the same rows (still "done": this run trained them).
    marks = {n: Path(s["dir"], "done.json").stat().st_mtime_ns for n, s in summary.stages.items()}
    again = train(cfg)
    assert {n: Path(s["dir"], "done.json").stat().st_mtime_ns for n, s in again.stages.items()} == marks
    assert {s["status"] for s in again.stages.values()} == {"done"}
    runs2 = store.load(tmp_path / "results", "runs")
    assert len(runs2) == 4


def test_sweep_members_share_the_pretraining_stage(tmp_path, data_dir, smoke_cache):
    common = [
        "experiment=cpt",
        "experiment.union=null",
        f"paths.cache_dir={smoke_cache}",
        "budget.continual_tokens=8192",
    ]
    first = train(compose_cfg(tmp_path, data_dir, *common, "replay=seen", "replay.ratio=0.25"))
    second = train(compose_cfg(tmp_path, data_dir, *common, "replay=seen", "replay.ratio=0.5", "shift=weak"))
    assert first.trained() == ["pretrain", "continual"]
    assert second.trained() == ["continual"]
    assert second.stages["pretrain"]["hash"] == first.stages["pretrain"]["hash"]
    runs = store.load(tmp_path / "results", "runs")
    assert len(runs["run_id"].unique()) == 2


def _run_cli(args: list[str], env_extra: dict[str, str] | None = None, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env_extra or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "cpt_experiments.train", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kw,
    )


# Both variants are slow-tier (the joblib one took 35-117 s): test_sweep_members_share_the_pretraining_stage
# covers sharing in process, tests/unit/test_stage_lock.py two processes racing for one stage under its lock,
# and test_failures the basic launcher's CLI multirun path.
@pytest.mark.slow
@pytest.mark.parametrize(
    "launcher", [["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"], []], ids=["joblib", "basic"]
)
def test_multirun_trains_shared_stage_once(tmp_path, data_dir, smoke_cache, launcher):
    """A two-member sweep (joblib: both at once in 2 processes): the shared stage is trained by one of them."""
    args = [
        "-m",
        *launcher,
        "experiment=cpt",
        "experiment.union=null",
        "scale=smoke",
        "replay=seen",
        "replay.ratio=0.0,0.25",
        "budget.pretrain_tokens=16384",
        "budget.continual_tokens=4096",
        f"paths.data_dir={data_dir}",
        f"paths.output_dir={tmp_path / 'out'}",
        f"paths.cache_dir={smoke_cache}",
        f"paths.results_dir={tmp_path / 'results'}",
    ]
    proc = _run_cli(args)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-3000:]
    runs = store.load(tmp_path / "results", "runs")
    pre = runs[runs["stage"] == "pretrain"]
    assert len(pre) == 2 and pre["stage_hash"].nunique() == 1
    assert sorted(pre["status"]) == ["done", "reused"]
    assert (runs[runs["stage"] == "continual"]["status"] == "done").all()
    # One sweep folder whatever the launcher (joblib workers once put theirs under their own pid), and its
    # end-of-sweep summary lists both members.
    sweeps = list((tmp_path / "out" / "hydra").glob("multirun-*"))
    assert len(sweeps) == 1 and sorted(p.name for p in sweeps[0].iterdir() if p.is_dir()) == ["0", "1"], sweeps
    assert f"sweep {sweeps[0]}: 2 members" in out, out[-3000:]
    assert all(f"member {m}: " in out for m in (0, 1)), out[-3000:]
    summary = json.loads((sweeps[0] / "0" / "summary.json").read_text())
    (cont,) = [s for s in summary["stages"] if s["stage"] == "continual"]
    assert cont["status"] == "done" and cont["tokens"] == 4096 and cont["wall_s"] > 0
    assert set(cont["losses"]) >= {"en_old", "de_new"} and cont["losses"]["de_new"]["loss"] > 0
    # Quiet in a log file (not a TTY): no tqdm or transformers bars, no per-stage Lightning banners or warnings.
    assert not any(
        s in out for s in ("tokenize ", "Loading weights", "Writing model shards", "LeafSpec", "fit` stopped")
    )
    assert out.count("GPU available") <= 3, out[-3000:]  # once per process at most (launcher + 2 workers)


def _final_state(stage_root: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(stage_root / "final" / "model.safetensors"))


@pytest.mark.slow
def test_sigkill_mid_stage_then_resume_matches_uninterrupted(tmp_path, data_dir, smoke_cache):
    """Kill -9 a run mid-stage, rerun the same command: same weights and losses as an uninterrupted run."""
    base = [
        "experiment=cpt",
        "experiment.union=null",
        "~experiment.stages.continual",
        "scale=smoke",
        "budget.pretrain_tokens=131072",
        "train.checkpoint_every_n_steps=10",
        f"paths.data_dir={data_dir}",
        f"paths.cache_dir={smoke_cache}",
    ]
    ref_dir, run_dir = tmp_path / "ref", tmp_path / "run"
    ref = _run_cli([*base, f"paths.output_dir={ref_dir}", f"paths.results_dir={ref_dir / 'results'}"])
    out, _ = ref.communicate(timeout=300)
    assert ref.returncode == 0, out[-3000:]

    killed = _run_cli([*base, f"paths.output_dir={run_dir}", f"paths.results_dir={run_dir / 'results'}"])
    deadline = time.time() + 240
    ckpts: list[Path] = []
    while time.time() < deadline and not ckpts:
        ckpts = list((run_dir / "stages").glob("*/ckpt/last.ckpt"))
        time.sleep(0.05)
    assert ckpts, "no checkpoint appeared"
    time.sleep(0.3)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    stage_root = ckpts[0].parents[1]
    assert not (stage_root / "done.json").exists(), "killed too late: stage already finished"

    resumed = _run_cli([*base, f"paths.output_dir={run_dir}", f"paths.results_dir={run_dir / 'results'}"])
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out[-3000:]
    ref_root = next((ref_dir / "stages").glob("*/done.json")).parent
    assert ref_root.name == stage_root.name
    a, b = _final_state(ref_root), _final_state(stage_root)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6)
    ra = store.load(ref_dir / "results", "curves")
    rb = store.load(run_dir / "results", "curves")
    key = ["split", "metric", "step"]
    merged = pd.merge(ra[ra["metric"] == "loss"], rb[rb["metric"] == "loss"], on=key, suffixes=("_a", "_b"))
    assert len(merged) == len(ra[ra["metric"] == "loss"])
    assert (merged["value_a"] - merged["value_b"]).abs().max() < 1e-5
    assert json.loads((stage_root / "done.json").read_text())["steps"] == 256


@pytest.mark.parametrize("micro_batch", [8, 4], ids=["no-accumulation", "accumulate-2"])
def test_interrupted_stage_resumes_to_the_uninterrupted_result(
    tmp_path, data_dir, smoke_cache, monkeypatch, micro_batch
):
    """In process: a crash after a checkpoint, then the same call again, gives the uninterrupted weights.

    (The SIGKILL variant below covers a hard kill in a subprocess; this one runs in seconds.)
    """
    import cpt_experiments.pipeline.stage_runner as runner

    overrides = [
        "experiment=cpt",
        "experiment.union=null",
        "~experiment.stages.continual",
        f"paths.cache_dir={smoke_cache}",
        "budget.pretrain_tokens=16384",
        "train.checkpoint_every_n_steps=8",
        f"train.micro_batch={micro_batch}",
    ]
    ref = train(compose_cfg(tmp_path / "ref", data_dir, *overrides))

    class Crash(RuntimeError):
        pass

    class CrashingCheckpoint(runner.ResumeCheckpoint):
        def _save(self, trainer, step):
            super()._save(trainer, step)
            if step == 16:
                raise Crash("simulated crash after the step-16 checkpoint")

    monkeypatch.setattr(runner, "ResumeCheckpoint", CrashingCheckpoint)
    cfg = compose_cfg(tmp_path / "run", data_dir, *overrides)
    with pytest.raises(StageFailed) as failed:
        train(cfg)
    assert isinstance(failed.value.cause, Crash) and failed.value.stage == "pretrain"
    stage_root = Path(ref.stages["pretrain"]["dir"].replace(str(tmp_path / "ref"), str(tmp_path / "run")))
    assert (stage_root / "ckpt" / "last.ckpt").is_file() and not (stage_root / "done.json").exists()
    monkeypatch.setattr(runner, "ResumeCheckpoint", CrashingCheckpoint.__mro__[1])
    resumed = train(cfg)
    assert resumed.trained() == ["pretrain"]
    a, b = _final_state(Path(ref.stages["pretrain"]["dir"])), _final_state(stage_root)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6)
    assert resumed.stages["pretrain"]["final_val"]["en_old"]["loss"] == pytest.approx(
        ref.stages["pretrain"]["final_val"]["en_old"]["loss"], abs=1e-6
    )
    # Two CSV versions (before and after the crash); the curves keep one value per step.
    assert len(list((stage_root / "logs").glob("version_*"))) == 2
    curves = store.load(tmp_path / "run" / "results", "curves")
    train_loss = curves[(curves["split"] == "train") & (curves["metric"] == "loss")]
    assert train_loss["step"].is_unique and len(train_loss) == 32
    ref_curves = store.load(tmp_path / "ref" / "results", "curves")
    key = ["split", "metric", "step"]
    both = pd.merge(ref_curves, curves, on=key, suffixes=("_ref", "_run"))
    both = both[both["metric"].isin(["loss", "lr"])]
    assert len(both) == len(ref_curves[ref_curves["metric"].isin(["loss", "lr"])])
    assert (both["value_ref"] - both["value_run"]).abs().max() < 1e-5


def test_optimizer_keep_policy_carries_the_parents_moments(tmp_path, data_dir, smoke_cache):
    """`optimizer: keep` starts from the parent's Adam moments (a different stage, other weights than reset)."""
    common = [
        "experiment=cpt",
        "experiment.union=null",
        f"paths.cache_dir={smoke_cache}",
        "budget.pretrain_tokens=8192",
        "budget.continual_tokens=4096",
    ]
    reset = train(compose_cfg(tmp_path, data_dir, *common))
    keep = train(compose_cfg(tmp_path, data_dir, *common, "+experiment.stages.continual.optimizer=keep"))
    assert keep.stages["pretrain"]["status"] == "reused"
    assert keep.stages["continual"]["hash"] != reset.stages["continual"]["hash"]
    a = _final_state(Path(reset.stages["continual"]["dir"]))
    b = _final_state(Path(keep.stages["continual"]["dir"]))
    assert any(not torch.equal(a[k], b[k]) for k in a)
    parent_opt = torch.load(Path(reset.stages["pretrain"]["dir"]) / "final" / "optimizer.pt", weights_only=False)
    assert parent_opt["state"], "the parent's optimizer moments were not exported"
