"""Extra loggers are instantiated from `_target_` configs: one W&B run per trained stage, grouped by run;
TensorBoard runs named <run_id>/<stage>; bad logger or trainer settings fail in one line before any work."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import compose

from cpt_experiments.errors import ConfigError, CPTError
from cpt_experiments.train import train


def _cfg(tmp: Path, data_dir: Path, *overrides: str):
    return compose(
        "experiment=cpt", "scale=smoke", "experiment.union=null", "budget.pretrain_tokens=2048",
        "budget.continual_tokens=1024", f"paths.data_dir={data_dir}", f"paths.output_dir={tmp / 'out'}",
        *overrides,
    )  # fmt: skip


def test_wandb_offline_one_run_per_trained_stage_grouped_by_run(tmp_path, data_dir, monkeypatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    summary = train(_cfg(tmp_path, data_dir, "logger=wandb"))
    runs = sorted((tmp_path / "out" / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 2, runs  # pretrain and continual: one W&B run each, not one shared run
    for stage, path in zip(("pretrain", "continual"), sorted(runs, key=lambda p: p.stat().st_mtime)):
        data = path.read_bytes()  # the offline transaction log holds the run's group, job type and name
        assert summary.run_id.encode() in data and f"{summary.run_id}/{stage}".encode() in data
        assert (b"pretrain" if stage == "pretrain" else b"continual") in data
    train(_cfg(tmp_path, data_dir, "logger=wandb"))  # everything reused: no new W&B runs
    assert len(list((tmp_path / "out" / "wandb").glob("offline-run-*/run-*.wandb"))) == 2


def test_tensorboard_runs_are_named_by_run_and_stage(tmp_path, data_dir) -> None:
    summary = train(_cfg(tmp_path, data_dir, "logger=tensorboard", "~experiment.stages.continual"))
    events = list((tmp_path / "out" / "tensorboard" / summary.run_id / "pretrain").glob("events.out.tfevents.*"))
    assert events and (tmp_path / "out" / "tensorboard" / summary.run_id / "pretrain" / "hparams.yaml").is_file()


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("+trainer.kwargs.bogus=1", r"^trainer: cannot build pytorch_lightning.Trainer: .*bogus"),
        ("+trainer.kwargs.max_steps=5", r"^trainer.kwargs.max_steps: is set by the suite"),
        ("trainer.precision=bogus", r"^trainer: cannot build pytorch_lightning.Trainer: .*bogus"),
    ],
)
def test_bad_trainer_settings_fail_before_any_work(tmp_path, data_dir, override: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        train(_cfg(tmp_path, data_dir, override))
    assert not (tmp_path / "out" / "cache" / "tokenizers").exists()  # before the tokenizer


def test_bad_logger_setting_names_the_logger(tmp_path, data_dir) -> None:
    with pytest.raises(CPTError, match=r"^stage pretrain: logger.tensorboard: .*bogus"):
        train(_cfg(tmp_path, data_dir, "logger=tensorboard", "+logger.tensorboard.bogus=1"))
