"""Every preset composes and validates; unknown keys and bad values fail before any training, in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import compose, run_cli
from hydra.errors import ConfigCompositionException

from cpt_experiments.config import EvaluateRoot, typed
from cpt_experiments.errors import ConfigError
from cpt_experiments.pipeline.context import typed_config
from cpt_experiments.pipeline.planning import build_stages
from cpt_experiments.pipeline.stage_plan import Geometry
from cpt_experiments.train import train
from cpt_experiments.training.model import count_parameters

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "conf"
EXPERIMENTS = sorted(
    str(p.relative_to(CONF / "experiment").with_suffix("")) for p in (CONF / "experiment").rglob("*.yaml")
)
SCALES = sorted(p.stem for p in (CONF / "scale").glob("*.yaml"))
# Every option of every group that is not an experiment or a scale, as `group=option` overrides.
GROUP_OPTIONS = sorted(
    f"{p.parent.name}={p.stem}"
    for p in CONF.glob("*/*.yaml")
    if p.parent.name not in ("experiment", "scale", "corpus", "schedule", "eval_suite", "callbacks")
)
# Groups mounted elsewhere in the tree, by their package.
GROUP_OPTIONS += [f"schedule@schedules.continual={p.stem}" for p in sorted((CONF / "schedule").glob("*.yaml"))]
GROUP_OPTIONS += [f"eval_suite@evaluation.suite={p.stem}" for p in sorted((CONF / "eval_suite").glob("*.yaml"))]
GROUP_OPTIONS += [f"corpus@corpora.en_new={p.stem}" for p in sorted((CONF / "corpus").glob("*.yaml"))]
GROUP_OPTIONS += [f"+callbacks={p.stem}" for p in sorted((CONF / "callbacks").glob("*.yaml"))]  # none by default


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_and_validates(experiment: str, scale: str) -> None:
    root, _ = typed_config(compose(f"experiment={experiment}", f"scale={scale}"))
    stages = build_stages(root.experiment)
    geometry = Geometry(root.model.seq_len, root.train.global_batch_windows)
    for name, stage in stages.items():
        steps = geometry.steps_for(stage.tokens, f"experiment.stages.{name}.tokens")
        stage.schedule.build(steps)  # the checks that need the stage length
        for role in [*stage.data, *stage.replay.sources]:
            assert role in root.corpora, f"{experiment}: stage {name} reads unknown role {role}"
    if "union" in stages:  # the derived baseline starts from random weights
        assert stages["union"].parent is None and stages["union"].init_from is None


@pytest.mark.parametrize("option", GROUP_OPTIONS)
def test_every_group_option_composes_and_validates(option: str) -> None:
    root, plain = typed_config(compose("experiment=cpt", "scale=smoke", option))
    build_stages(root.experiment)
    assert "init_from_hub" not in plain["model"]  # weights are a stage's business, never the model's


def test_paper_shapes_build_on_meta() -> None:
    root, _ = typed_config(compose("experiment=quickstart", "scale=paper"))
    assert root.model.name == "neox_405m"
    assert count_parameters(vars(root.model), 50277) == 405_334_016
    big, _ = typed_config(compose("experiment=quickstart", "scale=paper", "model=neox_10b"))
    assert count_parameters(vars(big.model), 50277) == 9_642_249_216


def test_evaluate_root_composes() -> None:
    """The evaluate root passes its typed schema, with the chosen suite at ``eval_suite`` (not merged into another)."""
    root, _ = typed(EvaluateRoot, compose("eval_suite=offline", "run_id=r", config_name="evaluate"))
    offline = yaml.safe_load((CONF / "eval_suite" / "offline.yaml").read_text())
    assert root.run_id == "r" and root.checkpoint is None
    assert root.eval_suite.tasks == offline["tasks"] and root.eval_suite.limit is None


@pytest.mark.parametrize("override", ["replay.ratio=lots", "seed=abc", "train.micro_batch=many", "replay.ratoi=0.1"])
def test_wrong_types_and_unknown_keys_fail_while_composing(override: str) -> None:
    with pytest.raises(ConfigCompositionException):
        compose("experiment=quickstart", "scale=smoke", override)


@pytest.mark.parametrize(
    ("override", "key"),
    [("+replay.ratoi=0.1", "replay.ratoi"), ("+optim.lr=3e-4", "optim.lr"),
     ("+model.init_from_hub=EleutherAI/pythia-410m", "model.init_from_hub"),
     ("+experiment.stages.pretrain.typo=1", "experiment.stages.pretrain.typo")],
)  # fmt: skip
def test_keys_added_with_plus_are_rejected_before_any_work(override: str, key: str) -> None:
    # Hydra lets `+` add a key even to a typed node; the typed config refuses it.
    cfg = compose("experiment=quickstart", "scale=smoke", override)
    with pytest.raises(ConfigError, match=rf"^{key}: (unknown key|Key '\w+' not in)"):
        typed_config(cfg)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("train.val_every_n_steps=0", "train.val_every_n_steps: must be in [1, 1e9], got 0"),
        ("train.checkpoint_every_n_steps=0", "train.checkpoint_every_n_steps: must be in [1, 1e9], got 0"),
        ("optim.betas=[0.9]", "optim.betas: must be two numbers"),
        ("budget.pretrain_tokens=0", "budget.pretrain_tokens: must be in [1, 1e15], got 0"),
    ],
)
def test_range_checks_name_the_key(override: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        typed_config(compose("experiment=quickstart", "scale=smoke", override))
    assert str(err.value).startswith(expected) and "\n" not in str(err.value)


def _smoke(tmp_path: Path, data_dir: Path, cache: Path, *overrides: str):
    return compose(
        "experiment=quickstart", "scale=smoke", f"paths.data_dir={data_dir}", f"paths.output_dir={tmp_path}",
        f"paths.cache_dir={cache}", *overrides,
    )  # fmt: skip


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (["schedules.continual.name=cosine_typo"], "experiment.stages.de_replay0.schedule.name: unknown schedule"),
        (["schedules.pretrain.warmup_frac=1.5"], "schedules.pretrain.warmup_frac: must be in [0, 1]"),
        (["lr.eta_max=-1.0"], "lr.eta_max: must be in (0, 10]"),
        (["lr.eta_min=0.0", "schedule@schedules.continual=constant"], "experiment.stages.de_replay0.schedule.lr"),
        (["budget.continual_tokens=100"], "experiment.stages.de_replay0.tokens: budget of 100 tokens is smaller than one batch"),
        (["experiment.stages.de_replay25.replay.ratio=1.0"], "experiment.stages.de_replay25.replay.ratio: must be in [0, 1)"),
        (["experiment.stages.de_replay25.replay.mode=old"], "experiment.stages.de_replay25.replay.mode: unknown replay mode"),
        (["experiment.stages.de_replay0.parent=nowhere"], "experiment.stages.de_replay0.parent: unknown parent stage"),
        (["+experiment.stages.extra={data: {fr_new: 1.0}, tokens: 4096, schedule: ${schedules.pretrain}}"],
         "experiment.stages.extra: unknown corpus role 'fr_new'"),
        (["+experiment.stages.hub={init_from: /nonexistent/ckpt, data: {de_new: 1.0}, tokens: 4096, schedule: ${schedules.pretrain}}"],
         "experiment.stages.hub.init_from: init checkpoint '/nonexistent/ckpt' not found"),
    ],
)  # fmt: skip
def test_bad_configs_fail_before_training(tmp_path, data_dir, smoke_cache, overrides, expected):
    cfg = _smoke(tmp_path, data_dir, smoke_cache, *overrides)
    with pytest.raises(ConfigError) as err:
        train(cfg)
    assert expected in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "stages").exists() or not any((tmp_path / "stages").glob("*/done.json"))


def test_no_experiment_chosen(tmp_path, data_dir):
    cfg = compose("scale=smoke", f"paths.data_dir={data_dir}", f"paths.output_dir={tmp_path}")
    with pytest.raises(ConfigError, match="experiment: choose an experiment preset"):
        train(cfg)


def test_init_checkpoint_vocabulary_mismatch(tmp_path, data_dir, smoke_cache):
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    small = GPTNeoXConfig(vocab_size=100, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                          intermediate_size=64, max_position_embeddings=64)  # fmt: skip
    GPTNeoXForCausalLM(small).save_pretrained(tmp_path / "ckpt")
    stage = (
        f"{{init_from: {tmp_path / 'ckpt'}, data: {{de_new: 1.0}}, tokens: 4096, schedule: ${{schedules.pretrain}}}}"
    )
    cfg = _smoke(tmp_path / "out", data_dir, smoke_cache, f"+experiment.stages.hub={stage}")
    with pytest.raises(
        ConfigError, match=r"experiment.stages.hub.init_from: tokenizer has 512 tokens but checkpoint .* has 100"
    ):
        train(cfg)


def test_cli_prints_one_line_error_and_exits_2(tmp_path, data_dir, smoke_cache, capsys):
    # In process (test_failures runs `python -m cpt_experiments.train` itself): Hydra's job, logging and exit.
    from cpt_experiments.train import cli

    code = run_cli(
        cli, "cpt-train", "experiment=quickstart", "scale=smoke", "budget.continual_tokens=10",
        f"paths.data_dir={data_dir}", f"paths.output_dir={tmp_path}", f"paths.cache_dir={smoke_cache}",
    )  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 2
    line = "experiment.stages.de_replay0.tokens: budget of 10 tokens is smaller than one batch"
    assert f"error: {line}" in err
    assert (out + err).count(line) == 1, out + err  # printed once
    assert "Traceback" not in err
    assert not list((tmp_path / "results").glob("*.csv*"))  # an error before any work writes no results row
    (log_file,) = (tmp_path / "hydra").glob("*/train.log")
    assert line in log_file.read_text()  # the job's log keeps it


def test_slurm_launcher_config_composes() -> None:
    cfg = compose("experiment=cpt", "scale=paper", "trainer=ddp", "hydra/launcher=slurm", return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher") and launcher.tasks_per_node == launcher.gpus_per_node == 8


@pytest.mark.parametrize("trainer", ["ddp", "fsdp"])
def test_dry_run_plans_a_gpu_cluster_config_on_any_machine(tmp_path, data_dir, smoke_cache, trainer) -> None:
    """`dry_run=true` builds no Lightning trainer, so a CPU login node plans `trainer=ddp|fsdp` (no GPU needed)."""
    summary = train(_smoke(tmp_path, data_dir, smoke_cache, f"trainer={trainer}", "dry_run=true"))
    assert summary.lines[1].startswith(f"trainer gpu/{trainer}, ")
    assert any(line.startswith("pretrain ") for line in summary.lines)
    assert not list((tmp_path / "stages").glob("*/done.json")) and not list((tmp_path / "results").glob("*.csv*"))


@pytest.mark.parametrize("scale", SCALES)
def test_ddp_cpu_splits_every_scale_s_batch_over_two_ranks(scale: str) -> None:
    """`trainer=ddp_cpu` at any scale: the micro batch shrinks so the fixed global batch splits over 2 ranks."""
    from cpt_experiments.training.trainer import accumulation, micro_batch

    root, _ = typed_config(compose("experiment=quickstart", f"scale={scale}", "trainer=ddp_cpu"))
    micro = micro_batch(root.train, root.trainer)
    assert micro <= root.train.micro_batch
    assert micro * 2 * accumulation(root.train, root.trainer) == root.train.global_batch_windows
