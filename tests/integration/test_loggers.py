"""Extra loggers are instantiated from `_target_` configs: one W&B run per trained stage, grouped by the cell
without the seed; TensorBoard runs named <run_id>/<stage> with hparams and final metrics; user callbacks from
the `callbacks` group; bad logger or trainer settings fail in one line before any work."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import compose
from omegaconf import OmegaConf

from cpt_experiments.errors import ConfigError, CPTError
from cpt_experiments.pipeline.stages import parse_graph
from cpt_experiments.pipeline.tracking import cell_group, stage_tags
from cpt_experiments.train import train


def _cfg(tmp: Path, data_dir: Path, *overrides: str):
    return compose(
        "experiment=cpt", "scale=smoke", "experiment.union=null", "budget.pretrain_tokens=2048",
        "budget.continual_tokens=1024", f"paths.data_dir={data_dir}", f"paths.output_dir={tmp / 'out'}",
        *overrides,
    )  # fmt: skip


def _wandb_runs(out: Path) -> list[bytes]:
    """The offline transaction logs (they hold each run's name, group, job type, tags and config), oldest first."""
    runs = sorted(out.glob("offline-run-*/run-*.wandb"), key=lambda p: p.stat().st_mtime)
    return [p.read_bytes() for p in runs]


def test_wandb_offline_one_run_per_trained_stage_grouped_by_cell(tmp_path, data_dir, smoke_cache, monkeypatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = _cfg(tmp_path, data_dir, "logger=wandb", f"paths.cache_dir={smoke_cache}")
    summary = train(cfg)
    runs = _wandb_runs(tmp_path / "out" / "wandb")
    assert len(runs) == 2, runs  # pretrain and continual: one W&B run each, not one shared run
    group = cell_group(OmegaConf.to_container(cfg, resolve=True)).encode()
    for stage, data in zip(("pretrain", "continual"), runs):
        assert f"{summary.run_id}/{stage}".encode() in data and group in data
        assert stage.encode() in data and b"seed:0" in data and b"shift:strong" in data
        assert b"stage/hash" in data and b"budget" not in data  # the stage's defining config, not every key
    train(cfg)  # everything reused: no new W&B runs
    assert len(_wandb_runs(tmp_path / "out" / "wandb")) == 2


def test_wandb_runs_of_two_seeds_share_a_group(tmp_path, data_dir, smoke_cache, monkeypatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    one_stage = ("logger=wandb", "~experiment.stages.continual", f"paths.cache_dir={smoke_cache}")
    cfgs = [_cfg(tmp_path, data_dir, *one_stage, f"seed={seed}") for seed in (0, 1)]
    for cfg in cfgs:
        train(cfg)
    groups = {cell_group(OmegaConf.to_container(cfg, resolve=True)) for cfg in cfgs}
    assert len(groups) == 1
    group = groups.pop().encode()
    runs = _wandb_runs(tmp_path / "out" / "wandb")
    assert len(runs) == 2 and all(group in data for data in runs)
    assert b"seed:0" in runs[0] and b"seed:1" in runs[1]


def test_cell_group_drops_only_the_seed(data_dir) -> None:
    def plain(*overrides: str) -> dict:
        cfg = compose("experiment=cpt", "scale=smoke", *overrides)
        return OmegaConf.to_container(cfg, resolve=True)

    base = plain()
    assert cell_group(base) == cell_group(plain("seed=3")) and cell_group(base).startswith("cpt/strong-replay0.0-")
    assert cell_group(base) != cell_group(plain("replay=seen", "replay.ratio=0.25"))
    stage = parse_graph({"c": {"data": {"de_new": 1.0}, "tokens": 4096, "schedule": {"name": "constant", "lr": 1e-3},
                               "replay": {"ratio": 0.25, "sources": {"en_old": 1.0}}}})["c"]  # fmt: skip
    assert stage_tags(plain("seed=3"), stage) == ("shift:strong", "replay:0.25", "seed:3")


def test_tensorboard_runs_named_by_run_and_stage_with_hparams_and_final_metrics(
    tmp_path, data_dir, smoke_cache
) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    one_stage = ("logger=tensorboard", "~experiment.stages.continual", f"paths.cache_dir={smoke_cache}")
    summary = train(_cfg(tmp_path, data_dir, *one_stage))
    run_dir = tmp_path / "out" / "tensorboard" / summary.run_id / "pretrain"
    assert (run_dir / "hparams.yaml").is_file()
    acc = EventAccumulator(str(run_dir))
    acc.Reload()
    content = acc.PluginTagToContent("hparams")  # what the HPARAMS tab reads
    assert {"_hparams_/experiment", "_hparams_/session_start_info"} <= set(content)
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    assert start.hparams["stage/name"].string_value == "pretrain" and "stage/hash" in start.hparams
    final = acc.Scalars("final/en_old/loss")  # the metric the hparams entry points at
    expected = summary.stages["pretrain"]["final_val"]["en_old"]["loss"]
    assert final and abs(final[-1].value - expected) < 1e-4


def test_a_callback_from_the_callbacks_group_runs_in_every_trained_stage(tmp_path, data_dir, smoke_cache) -> None:
    one_stage = ("+callbacks=lr_monitor", "~experiment.stages.continual", f"paths.cache_dir={smoke_cache}")
    summary = train(_cfg(tmp_path, data_dir, *one_stage))
    (metrics,) = (Path(summary.stages["pretrain"]["dir"]) / "logs").glob("version_*/metrics.csv")
    assert "lr-AdamW" in metrics.read_text().splitlines()[0]  # LearningRateMonitor logged into the CSV log


def test_a_bad_callback_names_its_key_before_any_work(tmp_path, data_dir) -> None:
    with pytest.raises(ConfigError, match=r"^callbacks.bad: "):
        train(_cfg(tmp_path, data_dir, "+callbacks.bad._target_=pytorch_lightning.callbacks.NoSuchCallback"))
    assert not (tmp_path / "out" / "cache" / "tokenizers").exists()


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
