"""The runs table never loses a reason nor replaces another run's rows; a success supersedes its failures."""

from __future__ import annotations

from pathlib import Path

import pytest

from cpt_experiments.errors import DataError
from cpt_experiments.pipeline import records
from cpt_experiments.results import failed_rows, store


def _done(run_id: str, stage: str, stage_hash: str, status: str = "done") -> dict:
    return {"run_id": run_id, "experiment": "x", "stage": stage, "status": status, "stage_hash": stage_hash}


def _failed(run_id: str, stage: str, reason: str) -> dict:
    attempt = failed_rows.attempt_id(stage, reason)
    return {
        "run_id": run_id,
        "experiment": "x",
        "stage": stage,
        "status": "failed",
        "reason": reason,
        "attempt": attempt,
    }


def _rows(results: Path) -> list[tuple]:
    runs = store.load(results, "runs")
    return [(r.run_id, r.stage, r.status, r.reason if isinstance(r.reason, str) else "") for r in runs.itertuples()]


def test_distinct_failures_keep_distinct_rows_and_the_same_failure_replaces_itself(tmp_path: Path) -> None:
    store.append(tmp_path, "runs", [_failed("r", "*", "paths.data_dir: A missing")])
    store.append(tmp_path, "runs", [_failed("r", "*", "paths.data_dir: B missing")])
    store.append(tmp_path, "runs", [_failed("r", "*", "paths.data_dir: B missing")])
    assert sorted(reason for *_, reason in _rows(tmp_path)) == [
        "paths.data_dir: A missing",
        "paths.data_dir: B missing",
    ]


def test_a_success_supersedes_its_failed_rows_only(tmp_path: Path) -> None:
    store.append(tmp_path, "runs", [_failed("r", "*", "before planning"), _failed("r", "b", "disk full")])
    store.append(tmp_path, "runs", [_failed("other", "b", "its own problem")])
    store.append(tmp_path, "runs", [_done("r", "a", "h_a")])
    # the run got past planning: its `*` failure goes; b's failure stays until b is recorded
    assert _rows(tmp_path) == [("other", "b", "failed", "its own problem"), ("r", "a", "done", ""),
                               ("r", "b", "failed", "disk full")]  # fmt: skip
    store.append(tmp_path, "runs", [_done("r", "b", "h_b", "reused")])
    assert _rows(tmp_path) == [("other", "b", "failed", "its own problem"), ("r", "a", "done", ""),
                               ("r", "b", "reused", "")]  # fmt: skip


def test_a_success_supersedes_the_failures_of_its_provisional_id(tmp_path: Path) -> None:
    store.append(tmp_path, "runs", [_failed("x-s0-config", "*", "data missing")])
    store.append(tmp_path, "runs", [_done("x-s0-run", "a", "h")], supersedes=["x-s0-config"])
    assert _rows(tmp_path) == [("x-s0-run", "a", "done", "")]


def test_rows_of_another_run_under_the_same_id_are_never_replaced(tmp_path: Path) -> None:
    store.append(tmp_path, "runs", [_done("r", "a", "1111")])
    store.append(tmp_path, "runs", [_done("r", "a", "1111", "reused")])  # the same run again: fine
    with pytest.raises(DataError) as err:
        store.append(tmp_path, "runs", [_done("r", "a", "2222")])
    assert "run r stage a has stage_hash 1111, the new row 2222; refusing" in str(err.value)
    assert "\n" not in str(err.value) and _rows(tmp_path) == [("r", "a", "reused", "")]


def test_run_hash_covers_the_stage_hashes_and_config_hash_ignores_paths() -> None:
    cfg = {"experiment": {"name": "x"}, "seed": 0, "paths": {"data_dir": "/a"}}
    moved = {**cfg, "paths": {"data_dir": "/b"}}
    assert records.config_hash(cfg) == records.config_hash(moved)  # the stage cache's run key, as before
    assert records.run_hash(cfg, {"a": "1"}) == records.run_hash(moved, {"a": "1"})
    assert records.run_hash(cfg, {"a": "1"}) != records.run_hash(cfg, {"a": "2"})  # other corpora: another run


def test_no_op_and_conflicting_overrides_warn() -> None:
    from cpt_experiments.pipeline.context import override_warnings

    got = override_warnings(["experiment.stages.pretrain.data={}", "seed=1", "replay.ratio=0.1", "seed=2", "seed=2"])
    assert got == [
        "experiment.stages.pretrain.data={} changes nothing: an empty mapping merges into experiment.stages.pretrain.data "
        "(to replace it: ~experiment.stages.pretrain.data +experiment.stages.pretrain.data={...})",
        "seed is given twice ('1', then '2'); only the last one counts",
    ]
    assert override_warnings(["experiment=quickstart", "+x.y=1", "~a.b"]) == []
