"""After a smoke experiment: automatic held-out evaluation, then ``evaluate`` by run id, offline."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import compose

from cpt_experiments.errors import ConfigError
from cpt_experiments.evaluate import evaluate
from cpt_experiments.results import store
from cpt_experiments.train import train

#: The pretrain -> continual smoke chain both runs below train (their pre-training stage is shared).
CHAIN = ("experiment=cpt", "experiment.union=null", "scale=smoke", "budget.pretrain_tokens=8192",
         "budget.continual_tokens=4096")  # fmt: skip


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, data_dir):
    """A pretrain -> continual smoke run with automatic held-out evaluation of the continual stage."""
    out = tmp_path_factory.mktemp("eval_run")
    cfg = compose(
        *CHAIN,
        "evaluation.auto=true",
        "evaluation.suite.limit=3",
        f"paths.data_dir={data_dir}",
        f"paths.output_dir={out}",
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
    return compose(f"paths.data_dir={data_dir}", f"paths.output_dir={out}", *overrides, config_name="evaluate")


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


@pytest.fixture(scope="module")
def swapped_run(smoke_run, data_dir):
    """The smoke run's chain with its de_new role swapped to the web-English corpus on the command line
    (the pre-training stage is shared with ``smoke_run``)."""
    out, _ = smoke_run
    cfg = compose(
        *CHAIN,
        "corpus@corpora.de_new=web_en",
        f"paths.data_dir={data_dir}",
        f"paths.output_dir={out}",
    )
    return train(cfg)


def _bpb(rows: list[dict]) -> float:
    (value,) = [r["value"] for r in rows if r["metric"] == "bits_per_byte"]
    return value


def test_evaluate_run_scores_its_own_swapped_corpus(smoke_run, swapped_run, data_dir, caplog):
    out, _ = smoke_run
    heldout = ["eval_suite=heldout", "eval_suite.tasks=[cpt_heldout_de_new]", "eval_suite.limit=3"]
    ckpt = swapped_run.stages["continual"]["checkpoint"]
    # This command's corpora are the defaults (de_new = German speeches); the run trained on web English.
    with caplog.at_level("WARNING"):
        by_run = evaluate(_eval_cfg(out, data_dir, f"run_id={swapped_run.run_id}", "stages=[continual]", *heldout))
    own = evaluate(_eval_cfg(out, data_dir, f"checkpoint={ckpt}", "corpus@corpora.de_new=web_en", *heldout))
    default = evaluate(_eval_cfg(out, data_dir, f"checkpoint={ckpt}", *heldout))
    assert _bpb(by_run) == pytest.approx(_bpb(own), rel=1e-9)
    assert abs(_bpb(by_run) - _bpb(default)) > 0.05
    assert {r["limit"] for r in by_run} == {3}
    warned = [r.getMessage() for r in caplog.records if r.getMessage().startswith("corpora.de_new:")]
    assert warned and "was trained on 'web_en', not on this command's 'bundestag_de'" in warned[0]


def test_evaluate_run_without_config_snapshot(smoke_run, data_dir, benchmark_dir, tmp_path):
    out, summary = smoke_run
    results = tmp_path / "results"
    results.mkdir()
    shutil.copy(out / "results" / "runs.csv", results / "runs.csv")  # the table without configs/
    run = [f"run_id={summary.run_id}", "stages=[continual]", f"paths.results_dir={results}"]
    with pytest.raises(ConfigError, match=r"^run_id: .*/configs/[0-9a-f]{64}\.yaml \(the config snapshot of .*\) not found; re-run") as err:  # fmt: skip
        evaluate(_eval_cfg(out, data_dir, *run, "eval_suite.tasks=[cpt_heldout_de_new]"))
    assert "\n" not in str(err.value)
    # A suite without held-out tasks needs no corpora, hence no snapshot.
    rows = evaluate(
        _eval_cfg(
            out,
            data_dir,
            *run,
            "eval_suite=offline_de",
            "eval_suite.tasks=[cpt_multiblimp_de]",
            "eval_suite.limit=2",
            f"paths.benchmark_dir={benchmark_dir}",
        )
    )
    assert "cpt_multiblimp_de" in {r["task"] for r in rows}


def test_evaluate_cpu_suite_mixes_heldout_and_minimal_pairs(smoke_run, data_dir, benchmark_dir):
    out, summary = smoke_run
    rows = evaluate(
        _eval_cfg(
            out,
            data_dir,
            f"run_id={summary.run_id}",
            "stages=[continual]",
            "eval_suite=cpu",
            "eval_suite.limit=2",
            "eval_suite.heldout_limit=3",
            f"paths.benchmark_dir={benchmark_dir}",
        )
    )
    limits = {r["task"]: r["limit"] for r in rows}
    heldout = {t for t in limits if t.startswith("cpt_heldout_")}
    assert heldout == {"cpt_heldout_en_old", "cpt_heldout_en_new", "cpt_heldout_de_new"}
    assert {limits[t] for t in heldout} == {3}
    # The suite gives the German pairs their own limit (task_limits), the other tasks eval_suite.limit.
    german = {t for t in limits if t.startswith("cpt_multiblimp_de")}
    assert {limits[t] for t in german} == {300} and {limits[t] for t in set(limits) - heldout - german} == {2}
    assert {"cpt_blimp", "cpt_blimp_field_syntax", "cpt_blimp_adjunct_island", "cpt_multiblimp_de"} <= set(limits)
    stored = store.load(out / "results", "evals")
    assert set(limits) <= set(stored[stored["stage"] == "continual"]["task"])
