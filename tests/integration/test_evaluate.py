"""After a smoke experiment: automatic held-out evaluation, then ``evaluate`` by run id, offline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from cpt_experiments.errors import ConfigError
from cpt_experiments.evaluate import evaluate
from cpt_experiments.results import store
from cpt_experiments.train import train

CONF = str(Path(__file__).resolve().parents[2] / "conf")


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, data_dir):
    """A pretrain -> continual smoke run with automatic held-out evaluation of the continual stage."""
    out = tmp_path_factory.mktemp("eval_run")
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                "experiment=cpt",
                "experiment.union=null",
                "scale=smoke",
                "budget.pretrain_tokens=8192",
                "budget.continual_tokens=4096",
                "evaluation.auto=true",
                "evaluation.suite.limit=3",
                f"paths.data_dir={data_dir}",
                f"paths.output_dir={out}",
            ],
        )
    return out, train(cfg)


def test_auto_evaluation_writes_heldout_rows_for_marked_stages(smoke_run):
    out, summary = smoke_run
    evals = store.load(out / "results", "evals")
    assert set(evals["stage"]) == {"continual"}  # only the stage marked `evaluate: true`
    assert set(evals["task"]) == {"cpt_heldout_en_old", "cpt_heldout_de_new"}
    bpb = evals[evals["metric"] == "bits_per_byte"].set_index("task")["value"]
    assert ((bpb > 0.5) & (bpb < 10)).all()
    # A better model on German (the continual stage) has lower German bits per byte than on English it forgot.
    assert (
        summary.stages["continual"]["final_val"]["de_new"]["loss"]
        < summary.stages["pretrain"]["final_val"]["de_new"]["loss"]
    )


def _eval_cfg(out: Path, data_dir: Path, *overrides: str):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose("evaluate", overrides=[f"paths.data_dir={data_dir}", f"paths.output_dir={out}", *overrides])


def test_evaluate_run_offline_benchmark_is_idempotent(smoke_run, data_dir, benchmark_dir):
    out, summary = smoke_run
    cfg = _eval_cfg(
        out,
        data_dir,
        f"run_id={summary.run_id}",
        "stages=[pretrain,continual]",
        "eval_suite=offline_en",
        "eval_suite.tasks=[cpt_arc_easy]",
        "eval_suite.limit=4",
        f"paths.benchmark_dir={benchmark_dir}",
    )
    rows = evaluate(cfg)
    assert {(r["stage"], r["task"]) for r in rows} == {("pretrain", "cpt_arc_easy"), ("continual", "cpt_arc_easy")}
    acc = [r for r in rows if r["metric"] == "acc"]
    assert all(0.0 <= r["value"] <= 1.0 and np.isfinite(r["stderr"]) and r["limit"] == 4 for r in acc)
    before = store.load(out / "results", "evals")
    evaluate(cfg)
    after = store.load(out / "results", "evals")
    assert len(after) == len(before) and set(after["task"]) >= {"cpt_arc_easy", "cpt_heldout_de_new"}


def test_evaluate_a_checkpoint_folder(smoke_run, data_dir):
    out, summary = smoke_run
    ckpt = summary.stages["pretrain"]["checkpoint"]
    rows = evaluate(
        _eval_cfg(out, data_dir, f"checkpoint={ckpt}", "eval_suite.tasks=[cpt_heldout_en_old]", "eval_suite.limit=2")
    )
    assert {r["run_id"] for r in rows} == {"adhoc"} and {r["task"] for r in rows} == {"cpt_heldout_en_old"}


@pytest.mark.parametrize(
    "overrides, message",
    [
        ([], "run_id: name a run"),
        (["run_id=nope-s0-0000000"], "run_id: no finished stages"),
        (["checkpoint=/nonexistent"], "checkpoint: /nonexistent is not an exported stage checkpoint"),
    ],
)
def test_evaluate_bad_selection(smoke_run, data_dir, overrides, message):
    out, _ = smoke_run
    with pytest.raises(ConfigError, match=message):
        evaluate(_eval_cfg(out, data_dir, *overrides))


def test_evaluate_unknown_stage(smoke_run, data_dir):
    out, summary = smoke_run
    with pytest.raises(ConfigError, match="stages: not finished stages of .*: nope"):
        evaluate(_eval_cfg(out, data_dir, f"run_id={summary.run_id}", "stages=[nope]"))
