"""Every experiment preset composes at every scale; bad configs fail before training with one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from cpt_experiments.errors import ConfigError
from cpt_experiments.pipeline.experiment import build_stages
from cpt_experiments.pipeline.stage_plan import Geometry
from cpt_experiments.schedules import build_schedule
from cpt_experiments.train import train
from cpt_experiments.training.model import count_parameters

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "conf"
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
SCALES = sorted(p.stem for p in (CONF / "scale").glob("*.yaml"))


def _compose(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=list(overrides))


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_and_its_stages_build(experiment, scale):
    cfg = _compose(f"experiment={experiment}", f"scale={scale}")
    c = OmegaConf.to_container(cfg, resolve=True)
    stages = build_stages(c["experiment"])
    geometry = Geometry(int(c["model"]["seq_len"]), int(c["train"]["global_batch_windows"]))
    for name, stage in stages.items():
        steps = geometry.steps_for(stage.tokens, f"experiment.stages.{name}.tokens")
        f = build_schedule(stage.schedule, steps, key=f"experiment.stages.{name}.schedule")
        assert 0.0 <= f(0) <= f(max(1, steps // 100)) or stage.schedule["name"] != "warmup_cosine"
        for role in [*stage.data, *stage.replay.sources]:
            assert role in c["corpora"], f"{experiment}: stage {name} reads unknown role {role}"


def test_paper_scale_model_builds_on_meta_with_pythia_410m_size():
    cfg = _compose("experiment=quickstart", "scale=paper")
    n = count_parameters(OmegaConf.to_container(cfg.model, resolve=True), 50277)
    assert 3.5e8 < n < 4.5e8


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


def _smoke(tmp_path: Path, data_dir: Path, cache: Path, *overrides: str):
    return _compose(
        "experiment=quickstart",
        "scale=smoke",
        f"paths.data_dir={data_dir}",
        f"paths.output_dir={tmp_path}",
        f"paths.cache_dir={cache}",
        *overrides,
    )


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (["schedules.continual.name=cosine_typo"], "experiment.stages.de_replay0.schedule.name: unknown schedule"),
        (["schedules.pretrain.warmup_frac=1.5"], "experiment.stages.pretrain.schedule.warmup_frac"),
        (["lr.eta_max=-1.0"], "experiment.stages.pretrain.schedule.max_lr"),
        (
            [
                "lr.eta_min=0.0",
                "schedules.continual.name=constant",
                "~schedules.continual.max_lr",
                "~schedules.continual.min_lr",
                "~schedules.continual.warmup_frac",
                "+schedules.continual.lr=0.0",
            ],
            "experiment.stages.de_replay0.schedule.lr",
        ),
        (
            ["budget.continual_tokens=100"],
            "experiment.stages.de_replay0.tokens: budget of 100 tokens is smaller than one batch",
        ),
        (
            ["experiment.stages.de_replay25.replay.ratio=1.0"],
            "experiment.stages.de_replay25.replay.ratio: must be in [0, 1)",
        ),
        (["experiment.stages.de_replay0.parent=nowhere"], "experiment.stages.de_replay0.parent: unknown parent stage"),
        (
            ["+experiment.stages.extra={data: {fr_new: 1.0}, tokens: 4096, schedule: ${schedules.pretrain}}"],
            "experiment.stages.extra: unknown corpus role 'fr_new'",
        ),
        (
            [
                "+experiment.stages.hub={init_from: /nonexistent/ckpt, data: {de_new: 1.0}, tokens: 4096, schedule: ${schedules.pretrain}}"
            ],
            "experiment.stages.hub.init_from: init checkpoint '/nonexistent/ckpt' not found",
        ),
    ],
)
def test_bad_configs_fail_before_training(tmp_path, shared_data_dir, cache_dir, overrides, expected):
    cfg = _smoke(tmp_path, shared_data_dir, cache_dir, *overrides)
    with pytest.raises(ConfigError) as err:
        train(cfg)
    assert expected in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "stages").exists() or not any((tmp_path / "stages").glob("*/done.json"))


def test_no_experiment_chosen(tmp_path, shared_data_dir, cache_dir):
    cfg = _compose("scale=smoke", f"paths.data_dir={shared_data_dir}", f"paths.output_dir={tmp_path}")
    with pytest.raises(ConfigError, match="experiment: choose an experiment preset"):
        train(cfg)


def test_init_checkpoint_vocabulary_mismatch(tmp_path, shared_data_dir, cache_dir):
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    small = GPTNeoXConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    GPTNeoXForCausalLM(small).save_pretrained(tmp_path / "ckpt")
    cfg = _smoke(
        tmp_path / "out",
        shared_data_dir,
        cache_dir,
        f"+experiment.stages.hub={{init_from: {tmp_path / 'ckpt'}, data: {{de_new: 1.0}}, tokens: 4096, schedule: ${{schedules.pretrain}}}}",
    )
    with pytest.raises(
        ConfigError,
        match=r"experiment.stages.hub.init_from: tokenizer has 512 tokens but checkpoint .* has 100 embeddings",
    ):
        train(cfg)


def test_cli_prints_one_line_error_and_exits_2(tmp_path, shared_data_dir, cache_dir):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "cpt_experiments.train",
            "experiment=quickstart",
            "scale=smoke",
            "budget.continual_tokens=10",
            f"paths.data_dir={shared_data_dir}",
            f"paths.output_dir={tmp_path}",
            f"paths.cache_dir={cache_dir}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2
    assert "error: experiment.stages.de_replay0.tokens: budget of 10 tokens is smaller than one batch" in proc.stderr
    assert "Traceback" not in proc.stderr
