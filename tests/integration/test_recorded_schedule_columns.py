"""The schedule columns of every committed runs row (``eta_max``, ``eta_min``, ``eta_const``, ``warmup_frac``)
are what the stage's typed schedule gives today: ``eta_max`` is ``peak_lr`` (before the typed schedules,
``records`` guessed it from the keys ``max_lr`` / ``lr`` / ``const_lr``), the others its ``spec()``."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from cpt_experiments.pipeline.audit import Auditor
from cpt_experiments.pipeline.context import typed_config
from cpt_experiments.pipeline.planning import build_stages
from cpt_experiments.results import store

RESULTS = Path(__file__).resolve().parents[2] / "results" / "cpu"
COLUMNS = {"eta_min": "min_lr", "eta_const": "const_lr", "warmup_frac": "warmup_frac"}


def _same(recorded: object, value: object) -> bool:
    if value is None:
        return recorded is None or (isinstance(recorded, float) and math.isnan(recorded))
    return recorded == value


# ~80 s on 2 cores (every snapshot typed); tests/unit/test_schedules.py checks peak_lr per schedule fast.
@pytest.mark.slow
@pytest.mark.parametrize("results", ["paper1", "paper2", "benchmarks"])
def test_committed_schedule_columns_come_from_the_typed_schedule(results: str, data_dir, tmp_path) -> None:
    runs = store.load(RESULTS / results, "runs")
    auditor = Auditor(data_dir, tmp_path)
    checked, stages_of = 0, {}
    for row in runs[runs["status"].isin(["done", "reused"])].itertuples():
        if row.config_hash not in stages_of:
            snap = yaml.safe_load((RESULTS / results / "configs" / f"{row.config_hash}.yaml").read_text())
            root, _ = typed_config(auditor.full_config(snap["config"]))
            stages_of[row.config_hash] = build_stages(root.experiment)
        sched = stages_of[row.config_hash][row.stage].schedule
        spec = sched.spec()
        assert row.schedule == spec["name"] and row.eta_max == sched.peak_lr, (results, row.run_id, row.stage)
        for column, key in COLUMNS.items():
            assert _same(getattr(row, column), spec.get(key)), (results, row.run_id, row.stage, column)
        checked += 1
    assert checked == len(runs[runs["status"].isin(["done", "reused"])]) > 0
