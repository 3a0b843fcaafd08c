"""The re-warm spike on real smoke-scale runs (tests/fixtures/paper1): rise of the old-domain loss after a
stage boundary against the parent's last value, peak and end, seeds pooled per variant."""

from __future__ import annotations

import pytest

from cpt_experiments.errors import DataError
from cpt_experiments.results import dynamics


def test_rise_is_measured_against_the_parents_last_value(paper1_tables) -> None:
    runs, curves = paper1_tables
    r = dynamics.rises(curves, runs, "paper1_same_data").set_index("variant")
    assert set(r.index) == {"same-rewarm-0.003", "same-rewarm-0.006", "same-constant-eta_min"}
    row = runs[(runs["experiment"] == "paper1_same_data") & (runs["variant"] == "same-rewarm-0.006")]
    cont = row[row["stage"] == "continual"].iloc[0]
    own = curves[(curves["run_id"] == cont["run_id"]) & (curves["stage"] == "continual")]
    own = own[(own["split"] == cont["old_domain"]) & (own["metric"] == "loss")]
    pre = curves[(curves["run_id"] == cont["run_id"]) & (curves["stage"] == "pretrain")]
    pre = pre[(pre["split"] == cont["old_domain"]) & (pre["metric"] == "loss")].sort_values("step")
    assert r.loc["same-rewarm-0.006", "peak_rise"] == pytest.approx(own["value"].max() - pre["value"].iloc[-1])
    assert r.loc["same-rewarm-0.006", "final_rise"] <= r.loc["same-rewarm-0.006", "peak_rise"]
    assert (r["points"] >= 4).all()  # validated every 16 steps: the spike is sampled


def test_rise_table_pools_per_variant_and_names_a_missing_experiment(paper1_tables) -> None:
    runs, curves = paper1_tables
    t = dynamics.rise_table(curves, runs, "paper1_warmup").set_index("variant")
    assert set(t.index) == {"warmup0", "warmup0.02"} and set(t["n"]) == {1}
    with pytest.raises(DataError, match="paper1_nothing"):
        dynamics.rises(curves, runs, "paper1_nothing")
