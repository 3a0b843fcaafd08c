"""Run identity: the same experiment on other corpora is another run (both keep their rows), a config error
records nothing, and a run's success supersedes the failure row a failed stage of it recorded."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import compose, write_synthetic_corpora

from cpt_experiments.errors import CPTError
from cpt_experiments.pipeline import experiment
from cpt_experiments.pipeline.experiment import train
from cpt_experiments.pipeline.failures import handle_failure
from cpt_experiments.results import store


def _cfg(data_dir: Path, out: Path):
    overrides = [
        "experiment=cpt", "scale=smoke", "experiment.union=null", "budget.pretrain_tokens=2048",
        "budget.continual_tokens=1024", f"paths.data_dir={data_dir}", f"paths.output_dir={out}",
        f"paths.results_dir={out.parent / 'results'}",
    ]  # fmt: skip
    return compose(*overrides)


def test_runs_on_other_corpora_keep_both_rows_and_a_success_supersedes_its_failure(
    tmp_path, data_dir, monkeypatch
) -> None:
    results = tmp_path / "results"
    empty = tmp_path / "no_corpora"
    empty.mkdir()
    broken = _cfg(empty, tmp_path / "a")
    with pytest.raises(CPTError) as err:
        train(broken)
    handle_failure(broken, err.value)  # a config/data error before any work: no row (issue 20)
    assert not (results / "runs.csv").exists()

    def boom(job):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(experiment, "train_stage", boom)
    cfg = _cfg(data_dir, tmp_path / "a")
    with pytest.raises(CPTError) as err:
        train(cfg)
    handle_failure(cfg, err.value)  # a failed stage: a `failed` row under the run's own id
    assert list(store.load(results, "runs")["status"]) == ["failed"]
    monkeypatch.undo()

    first = train(_cfg(data_dir, tmp_path / "a"))
    runs = store.load(results, "runs")
    assert "failed" not in set(runs["status"]), "the success left its failure row"

    other = write_synthetic_corpora(tmp_path / "other_data", seed=1)
    second = train(_cfg(other, tmp_path / "a"))
    assert first.run_id != second.run_id and first.config_hash != second.config_hash
    runs = store.load(results, "runs")
    assert sorted(runs["run_id"].unique()) == sorted([first.run_id, second.run_id])
    hashes = {rid: set(g["stage_hash"]) for rid, g in runs.groupby("run_id")}
    assert not hashes[first.run_id] & hashes[second.run_id] and len(runs) == 4
    for rid in (first.run_id, second.run_id):
        assert (results / "configs" / f"{runs[runs.run_id == rid].config_hash.iloc[0]}.yaml").is_file()
    assert set(store.load(results, "curves")["run_id"]) == {first.run_id, second.run_id}
