"""Where results come from: random-init baselines, config snapshots beside the tables, dirty-tree refusal."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch
import yaml
from conftest import compose

from cpt_experiments.errors import ConfigError
from cpt_experiments.pipeline import records
from cpt_experiments.results import store
from cpt_experiments.train import train
from cpt_experiments.training.model import build_model, load_model_cfg, load_pretrained


@pytest.fixture(scope="module")
def checkpoint_run(tmp_path_factory, data_dir):
    """A chain that starts from a local pretrained checkpoint (like ``init_from: EleutherAI/pythia-410m``),
    with its derived union baseline; every LR is ~0 so final weights show where each stage started."""
    tmp = tmp_path_factory.mktemp("ckpt_run")
    torch.manual_seed(123)
    build_model(load_model_cfg("neox_d32"), 512).save_pretrained(tmp / "pretrained")
    cfg = compose(
        "experiment=quickstart", "scale=smoke", f"paths.data_dir={data_dir}", f"paths.output_dir={tmp}",
        "~experiment.stages.pretrain", "~experiment.stages.de_replay25",
        "experiment.stages.de_replay0.parent=null", f"+experiment.stages.de_replay0.init_from={tmp / 'pretrained'}",
        "schedule@schedules.pretrain=constant", "schedule@schedules.continual=constant", "lr.eta_min=1e-12",
        "budget.continual_tokens=1024",
    )  # fmt: skip
    return tmp, train(cfg)


def test_union_baseline_starts_from_random_weights_when_the_chain_starts_from_a_checkpoint(checkpoint_run) -> None:
    tmp, summary = checkpoint_run
    pretrained = load_pretrained(tmp / "pretrained").state_dict()
    cont = load_pretrained(summary.stages["de_replay0"]["checkpoint"]).state_dict()
    union = load_pretrained(summary.stages["union"]["checkpoint"]).state_dict()
    key = "gpt_neox.layers.0.attention.query_key_value.weight"
    torch.testing.assert_close(cont[key], pretrained[key], atol=1e-6, rtol=0)  # init_from loaded
    assert (union[key] - pretrained[key]).abs().max() > 0.01  # the baseline did not start from it


def test_run_writes_its_config_beside_the_tables(checkpoint_run) -> None:
    tmp, summary = checkpoint_run
    runs = store.load(tmp / "results", "runs")
    (config_hash,) = set(runs["config_hash"])
    snapshot = yaml.safe_load((tmp / "results" / "configs" / f"{config_hash}.yaml").read_text())
    assert snapshot["run_id"] == summary.run_id == runs["run_id"].iloc[0]
    assert snapshot["stage_hashes"] == dict(zip(runs["stage"], runs["stage_hash"]))
    assert snapshot["config"]["experiment"]["stages"]["de_replay0"]["init_from"] == str(tmp / "pretrained")
    assert "paths" not in snapshot["config"]  # machine-specific, not part of the run's identity
    row = runs.set_index("stage").loc["de_replay0"]
    assert row["init_from"] == str(tmp / "pretrained") and row["eta_end"] == pytest.approx(1e-12)
    assert row["corpora"].startswith("de_new=") and row["seq_len"] == 64 and row["global_batch_windows"] == 8


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True, capture_output=True
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository with a committed ``results/`` directory."""
    (tmp_path / "results" / "cpu").mkdir(parents=True)
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "results" / "cpu" / "runs.csv").write_text("run_id\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-qm", "init")
    return tmp_path


def test_dirty_tree_write_into_results_is_refused_before_any_work(repo, monkeypatch, data_dir) -> None:
    (repo / "code.py").write_text("x = 2\n")  # an uncommitted code change
    monkeypatch.setattr(records, "REPO_ROOT", repo)
    cfg = compose("experiment=quickstart", "scale=smoke", f"paths.data_dir={data_dir}",
                   f"paths.output_dir={repo / 'outputs'}", f"paths.results_dir={repo / 'results' / 'cpu'}")  # fmt: skip
    with pytest.raises(ConfigError, match=r"^paths.results_dir: .* uncommitted changes; commit first"):
        train(cfg)
    assert not (repo / "outputs").exists()  # refused before the tokenizer or any stage


def test_dirty_flag_and_what_counts_as_dirty(repo) -> None:
    results = repo / "results" / "cpu"
    sha = records.check_results_dir(results, allow_dirty=False, root=repo)
    assert len(sha) == 40  # clean
    (results / "runs.csv").write_text("run_id\nr\n")  # rows a sweep just wrote do not make it dirty
    assert records.check_results_dir(results, allow_dirty=False, root=repo) == sha
    (repo / "code.py").write_text("x = 3\n")
    assert records.check_results_dir(repo / "elsewhere", allow_dirty=False, root=repo) == sha + "+dirty"
    assert records.check_results_dir(results, allow_dirty=True, root=repo) == sha + "+dirty"
    with pytest.raises(ConfigError):
        records.check_results_dir(results, allow_dirty=False, root=repo)


def test_run_ends_with_a_table_with_units_paths_and_next_commands(checkpoint_run) -> None:
    tmp, summary = checkpoint_run
    head, rows = summary.lines[1], summary.lines[2:4]
    assert "tokens" in head and "wall" in head and "de_new nats/bpb" in head
    assert [r.split()[0] for r in rows] == ["de_replay0", "union"] and all(" / " in r for r in rows)
    assert summary.lines[-3].startswith(f"tables: {tmp / 'results'}") and summary.lines[-2].startswith("next:")
