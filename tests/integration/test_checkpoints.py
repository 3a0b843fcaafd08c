"""Resume checkpoints and stage records under hostile conditions, in process at scale=smoke.

Each case damages a stage cache the way a crash, a full disk, a bad copy or a planted file would,
reruns the same command, and checks it ends with the weights of an uninterrupted run (or refuses
with one line naming the file), without unpickling anything and without stray temporary files.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest
import torch
from conftest import compose
from safetensors.torch import load_file

import cpt_experiments.pipeline.stage_runner as runner
from cpt_experiments.atomic import is_temp_name
from cpt_experiments.errors import CacheError
from cpt_experiments.pipeline.stage_cache import FINAL_SHA256, sha256_file
from cpt_experiments.results import store
from cpt_experiments.train import train
from cpt_experiments.training.callbacks.checkpoint import AtomicCheckpointIO, checkpoint_problem

# 16 steps of 8 windows, a checkpoint every 4 steps: seconds per stage.
PRETRAIN = [
    "experiment=cpt",
    "experiment.union=null",
    "~experiment.stages.continual",
    "budget.pretrain_tokens=8192",
    "train.checkpoint_every_n_steps=4",
    "train.val_every_n_steps=8",
]
CRASH_STEP = 8


def compose_cfg(out: Path, data_dir: Path, cache: Path, *overrides: str):
    return compose(
        "scale=smoke",
        f"paths.data_dir={data_dir}",
        f"paths.output_dir={out / 'outputs'}",
        f"paths.cache_dir={cache}",
        f"paths.results_dir={out / 'results'}",
        *overrides,
    )


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data_dir, smoke_cache) -> dict:
    """One uninterrupted run of the pre-training stage: its stage dir, final weights and summary."""
    out = tmp_path_factory.mktemp("reference")
    summary = train(compose_cfg(out, data_dir, smoke_cache, *PRETRAIN))
    stage = summary.stages["pretrain"]
    return {"dir": Path(stage["dir"]), "weights": final_weights(Path(stage["dir"])), "summary": summary}


def final_weights(stage_root: Path) -> dict[str, torch.Tensor]:
    return load_file(str(stage_root / "final" / "model.safetensors"))


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6)


def cache_error_in(exc: BaseException) -> CacheError | None:
    """The CacheError an exception is or wraps (the pipeline may name the stage around it)."""
    while exc is not None:
        if isinstance(exc, CacheError):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def temp_leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if is_temp_name(p.name)]


def crash_after_checkpoint(monkeypatch, step: int = CRASH_STEP) -> None:
    """Make the next run raise right after writing its step-``step`` checkpoint."""

    class Crash(RuntimeError):
        pass

    class CrashingCheckpoint(runner.ResumeCheckpoint):
        def _save(self, trainer, at):
            super()._save(trainer, at)
            if at == step:
                raise Crash(f"simulated crash after the step-{step} checkpoint")

    monkeypatch.setattr(runner, "ResumeCheckpoint", CrashingCheckpoint)


def interrupted(tmp_path, data_dir, smoke_cache, monkeypatch) -> tuple:
    """A run that crashed after its step-8 checkpoint: (config, stage root)."""
    cfg = compose_cfg(tmp_path, data_dir, smoke_cache, *PRETRAIN)
    with monkeypatch.context() as m:
        crash_after_checkpoint(m)
        with pytest.raises(Exception, match="simulated crash"):
            train(cfg)
    (root,) = (tmp_path / "outputs" / "stages").glob("*/ckpt/last.ckpt")
    stage_root = root.parents[1]
    assert not (stage_root / "done.json").exists()
    return cfg, stage_root


class Evil:
    """A pickle that creates ``marker`` when unpickled with ``weights_only=False``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def plant(path: Path, marker: Path) -> None:
    """A structurally valid torch file (zip, CRCs) whose pickle runs a command."""
    torch.save({"state_dict": {}, "payload": Evil(marker)}, path)


# ---- checks of one file ----------------------------------------------------------------------


def test_checkpoint_problem_names_truncation_corruption_and_unsafe_pickles(tmp_path):
    good = tmp_path / "good.ckpt"
    torch.save({"state_dict": {"w": torch.arange(50_000.0)}, "global_step": 3}, good)
    assert checkpoint_problem(good) is None
    data = good.read_bytes()
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(data[: len(data) // 2])
    assert "BadZipFile" in checkpoint_problem(cut)
    flipped = tmp_path / "flipped.ckpt"
    flipped.write_bytes(data[: len(data) // 2] + bytes([data[len(data) // 2] ^ 0xFF]) + data[len(data) // 2 + 1 :])
    assert "CRC mismatch" in checkpoint_problem(flipped)  # torch.load alone would return wrong weights
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.ckpt"
    plant(evil, marker)
    assert "unsafe pickle refused" in checkpoint_problem(evil)
    with pytest.raises(Exception, match="Weights only load failed"):
        AtomicCheckpointIO().load_checkpoint(evil)
    assert not marker.exists()


def test_checkpoint_save_goes_through_the_destination_directory_only(tmp_path, monkeypatch):
    """Never via $TMPDIR (a cross-filesystem copy there is what truncated last.ckpt on a full disk)."""
    made: list[str | None] = []
    real = tempfile.mkstemp

    def spy(*args, **kwargs):
        made.append(kwargs.get("dir"))
        return real(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", spy)
    dest = tmp_path / "ckpt" / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.ones(3)}}, dest)
    assert made == [dest.parent]
    assert checkpoint_problem(dest) is None and [p.name for p in dest.parent.iterdir()] == ["last.ckpt"]


# ---- whole stages ------------------------------------------------------------------------------


def test_uninterrupted_run_bookkeeping(reference):
    done = json.loads((reference["dir"] / "done.json").read_text())
    assert [(s["start"], s["end"]) for s in done["segments"]] == [(0, 16)]
    assert done["wall_s"] == pytest.approx(done["segments"][0]["wall_s"]) and done["wall_s"] > 0
    assert done["trained_by"] == [done["segments"][0]["by"]]
    assert set(done[FINAL_SHA256]) >= {"model.safetensors", "optimizer.pt", "config.json"}
    assert reference["summary"].stages["pretrain"]["status"] == "done"
    assert temp_leftovers(reference["dir"]) == []


def test_truncated_last_ckpt_restarts_the_stage_with_a_warning(
    tmp_path, data_dir, smoke_cache, reference, monkeypatch, caplog
):
    cfg, stage_root = interrupted(tmp_path, data_dir, smoke_cache, monkeypatch)
    ckpt = stage_root / "ckpt" / "last.ckpt"
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])  # e.g. a copy cut short by a full disk
    with caplog.at_level(logging.WARNING, logger="cpt_experiments.pipeline.stage_runner"):
        summary = train(cfg)
    assert any(str(ckpt) in r.getMessage() and "restarting" in r.getMessage() for r in caplog.records)
    assert summary.stages["pretrain"]["status"] == "done"
    assert_same_weights(reference["weights"], final_weights(stage_root))
    done = json.loads((stage_root / "done.json").read_text())
    assert [(s["start"], s["end"]) for s in done["segments"]] == [(0, 16)]  # restarted from scratch


def test_planted_pickle_as_last_ckpt_is_never_unpickled(tmp_path, data_dir, smoke_cache, reference, monkeypatch):
    cfg, stage_root = interrupted(tmp_path, data_dir, smoke_cache, monkeypatch)
    marker = tmp_path / "pwned"
    plant(stage_root / "ckpt" / "last.ckpt", marker)
    summary = train(cfg)
    assert not marker.exists()
    assert summary.stages["pretrain"]["status"] == "done"
    assert_same_weights(reference["weights"], final_weights(stage_root))


def test_disk_full_during_a_save_is_one_line_and_the_previous_checkpoint_survives(
    tmp_path, data_dir, smoke_cache, reference, monkeypatch
):
    real_save = torch.save

    def filling_disk(obj, f, *args, **kwargs):
        if isinstance(obj, dict) and obj.get("global_step") == CRASH_STEP and hasattr(f, "write"):
            f.write(b"PK\x03\x04 half a checkpoint")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(obj, f, *args, **kwargs)

    cfg = compose_cfg(tmp_path, data_dir, smoke_cache, *PRETRAIN)
    with monkeypatch.context() as m:
        m.setattr(torch, "save", filling_disk)
        with pytest.raises(Exception) as info:
            train(cfg)
    error = cache_error_in(info.value)
    (ckpt,) = (tmp_path / "outputs" / "stages").glob("*/ckpt/last.ckpt")
    assert error is not None and str(ckpt) in str(error) and "no space left" in str(error)
    assert "\n" not in str(info.value)
    assert checkpoint_problem(ckpt) is None
    assert torch.load(ckpt, weights_only=True)["global_step"] == CRASH_STEP - 4  # the previous one, intact
    assert temp_leftovers(tmp_path / "outputs") == []

    # Space freed: the same command resumes from step 4 and ends where an uninterrupted run ends.
    summary = train(cfg)
    stage_root = ckpt.parents[1]
    assert summary.stages["pretrain"]["status"] == "done"
    assert_same_weights(reference["weights"], final_weights(stage_root))
    done = json.loads((stage_root / "done.json").read_text())
    assert [(s["start"], s["end"]) for s in done["segments"]] == [(0, 4), (4, 16)]
    assert done["wall_s"] == pytest.approx(sum(s["wall_s"] for s in done["segments"]))
    # Running the finished command again trains nothing; the stage still counts as this run's.
    again = train(cfg)
    assert again.stages["pretrain"]["status"] == "done"
    assert json.loads((stage_root / "done.json").read_text()) == done
    runs = store.load(tmp_path / "results", "runs")
    assert len(runs) == 1 and runs["status"].tolist() == ["done"]
    assert runs["wall_s"].iloc[0] == pytest.approx(done["wall_s"])


def copy_stage(reference: dict, out: Path) -> Path:
    """The reference's finished stage copied into another output dir (as a colleague's shared cache)."""
    dest = out / "outputs" / "stages" / reference["dir"].name
    shutil.copytree(reference["dir"], dest)
    return dest


def test_damaged_final_model_is_finished_again_from_its_checkpoint(tmp_path, data_dir, smoke_cache, reference, caplog):
    stage_root = copy_stage(reference, tmp_path)
    model = stage_root / "final" / "model.safetensors"
    model.write_bytes(model.read_bytes()[:1000])
    with caplog.at_level(logging.WARNING, logger="cpt_experiments.pipeline.stage_runner"):
        summary = train(compose_cfg(tmp_path, data_dir, smoke_cache, *PRETRAIN))
    assert any(str(model) in r.getMessage() for r in caplog.records)
    assert summary.stages["pretrain"]["status"] == "done"
    assert_same_weights(reference["weights"], final_weights(stage_root))
    done = json.loads((stage_root / "done.json").read_text())
    # Nothing retrained: the final checkpoint was re-exported (a zero-step segment).
    assert [(s["start"], s["end"]) for s in done["segments"]] == [(0, 16), (16, 16)]


@pytest.mark.parametrize("checksums", ["stale", "forged"])
def test_planted_optimizer_state_of_a_parent_is_never_unpickled(tmp_path, data_dir, smoke_cache, reference, checksums):
    """`optimizer: keep` reads the parent's optimizer.pt: a planted pickle there must not run."""
    stage_root = copy_stage(reference, tmp_path)
    marker = tmp_path / "pwned"
    planted = stage_root / "final" / "optimizer.pt"
    plant(planted, marker)
    if checksums == "forged":  # an attacker who can write the cache can rewrite done.json too
        done = json.loads((stage_root / "done.json").read_text())
        done[FINAL_SHA256]["optimizer.pt"] = sha256_file(planted)
        (stage_root / "done.json").write_text(json.dumps(done))
    overrides = [
        *[o for o in PRETRAIN if o != "~experiment.stages.continual"],
        "budget.continual_tokens=2048",
        "+experiment.stages.continual.optimizer=keep",
    ]
    cfg = compose_cfg(tmp_path, data_dir, smoke_cache, *overrides)
    if checksums == "stale":  # detected as altered: the parent is re-exported from its checkpoint
        summary = train(cfg)
        assert summary.stages["continual"]["status"] == "done"
        assert torch.load(planted, weights_only=True)["state"]
    else:  # a consistent record: the load itself refuses, naming the file
        with pytest.raises(Exception) as info:
            train(cfg)
        error = cache_error_in(info.value)
        assert error is not None and str(planted) in str(error) and "\n" not in str(info.value)
    assert not marker.exists()


def test_records_and_caches_are_group_readable_and_saves_are_quiet(tmp_path, data_dir, caplog):
    """Under a group umask every file the run writes (stage cache, token caches, tokenizer) is 0664/0775,
    and Lightning's "`weights_only` was not set" notice is gone (it came with every save)."""
    old = os.umask(0o002)
    try:
        with caplog.at_level(logging.INFO):
            train(compose_cfg(tmp_path, data_dir, tmp_path / "cache", *PRETRAIN))
    finally:
        os.umask(old)
    assert not [r for r in caplog.records if "weights_only" in r.getMessage()]
    checked = 0
    for root in (tmp_path / "outputs" / "stages", tmp_path / "cache"):
        for path in root.rglob("*"):
            want = 0o775 if path.is_dir() else 0o664
            assert stat.S_IMODE(path.stat().st_mode) == want, path
            checked += 1
    assert checked > 20
