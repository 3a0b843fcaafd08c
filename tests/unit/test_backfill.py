"""Parameter counts filled into old runs rows from their config snapshots, only where the snapshot fits the row."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cpt_experiments.errors import DataError
from cpt_experiments.pipeline.backfill import backfill_params
from cpt_experiments.results import store
from cpt_experiments.training.model import build_model, load_model_cfg, model_flops_per_token

SMOKE_TOTAL, SMOKE_NON_EMBEDDING = 58_240, 25_472  # neox_d32 with the 512-token smoke vocabulary


def _results(tmp_path: Path, rows: list[dict]) -> Path:
    model = load_model_cfg("neox_d32")
    snapshot = {"run_id": "r", "config_hash": "abc", "config": {"model": model, "tokenizer": {"vocab_size": 512}}}
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "abc.yaml").write_text(yaml.safe_dump(snapshot))
    base = {"run_id": "r", "experiment": "x", "status": "done", "config_hash": "abc", "stage_tokens": 1000}
    store.append(tmp_path, "runs", [{**base, **row} for row in rows])
    return tmp_path


def _fpt() -> float:
    return model_flops_per_token(build_model(load_model_cfg("neox_d32"), 512, device="meta"), 64)  # neox_d32 context


def test_fills_both_counts_where_the_snapshot_fits(tmp_path):
    d = _results(tmp_path, [{"stage": "a", "params": SMOKE_TOTAL}, {"stage": "b", "stage_flops": 1000 * _fpt()}])
    assert backfill_params(d) == 2
    runs = store.load(d, "runs").set_index("stage")
    assert runs["params"].tolist() == [SMOKE_TOTAL] * 2
    assert runs["params_non_embedding"].tolist() == [SMOKE_NON_EMBEDDING] * 2
    assert backfill_params(d) == 0  # idempotent


@pytest.mark.parametrize(
    ("row", "message"),
    [({"params": 12345}, "params 12345 but its snapshot's model has 58240"), ({"stage_flops": 5.0}, "FLOPs/token")],
)
def test_refuses_a_snapshot_that_does_not_describe_the_row(tmp_path, row, message):
    d = _results(tmp_path, [{"stage": "a", **row}])
    before = (d / "runs.csv").read_bytes()
    with pytest.raises(DataError, match=message):
        backfill_params(d)
    assert (d / "runs.csv").read_bytes() == before  # nothing written


def test_absolute_checkpoints_become_paths_under_the_output_dir(tmp_path):
    from cpt_experiments.pipeline.backfill import relative_checkpoints

    d = _results(tmp_path, [{"stage": "a", "params": SMOKE_TOTAL, "checkpoint": "/home/x/out/stages/abc123/final"},
                            {"stage": "b", "params": SMOKE_TOTAL, "checkpoint": "stages/def/final"}])  # fmt: skip
    assert relative_checkpoints(d) == 1
    assert store.load(d, "runs")["checkpoint"].tolist() == ["stages/abc123/final", "stages/def/final"]
    assert relative_checkpoints(d) == 0
