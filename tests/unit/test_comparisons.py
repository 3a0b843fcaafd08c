"""Paper 1's comparisons on real smoke-scale runs (tests/fixtures/paper1): final values per model and
domain, each stage once, seeds paired, configurations never pooled, cost ratios from the runs table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from cpt_experiments.errors import DataError
from cpt_experiments.results import comparisons, store

STRONG = {"experiment": "paper1_final", "variant": "strong-replay0.25"}


def _last(curves: pd.DataFrame, run_id: str, stage: str, domain: str, metric: str = "loss") -> float:
    part = curves[(curves["run_id"] == run_id) & (curves["stage"] == stage) & (curves["split"] == domain)]
    part = part[part["metric"] == metric]
    return float(part.sort_values("step")["value"].iloc[-1])


def test_final_values_are_the_last_validation_point_and_reused_stages_read_their_first_run(
    paper1_tables, paper1_finals
) -> None:
    runs, curves = paper1_tables
    row = runs[(runs["experiment"] == "paper1_final") & (runs["stage"] == "continual") & (runs["seed"] == 1)]
    row = row[row["variant"] == "strong-replay0.25"].iloc[0]
    got = paper1_finals[
        (paper1_finals["run_id"] == row["run_id"])
        & (paper1_finals["stage"] == "continual")
        & (paper1_finals["domain"] == "de_new")
    ]
    assert got["loss"].item() == pytest.approx(_last(curves, row["run_id"], "continual", "de_new"))
    assert got["bpb"].item() == pytest.approx(_last(curves, row["run_id"], "continual", "de_new", "bpb"))
    assert got["kind"].item() == "new"
    # One pre-training stage per seed is shared by the presets at the cpu budget: one row per model, the same values.
    pre = paper1_finals[paper1_finals["experiment"].isin(["paper1_final", "paper1_replay", "paper1_rewarm"])]
    pre = pre[(pre["stage"] == "pretrain") & (pre["domain"] == "en_old") & (pre["seed"] == 0)]
    assert pre["stage_hash"].nunique() == 1 and pre["loss"].nunique() == 1
    assert not pre.duplicated(comparisons.MODEL).any()


def test_table_pools_seeds_per_model_and_domain(paper1_finals) -> None:
    t = comparisons.table(paper1_finals)
    row = t[(t["experiment"] == "paper1_final") & (t["variant"] == "strong-replay0.25") & (t["stage"] == "union")]
    row = row[row["domain"] == "en_old"].iloc[0]
    vals = paper1_finals[
        (paper1_finals["experiment"] == "paper1_final") & (paper1_finals["variant"] == "strong-replay0.25")
    ]
    vals = vals[(vals["stage"] == "union") & (vals["domain"] == "en_old")]["loss"]
    assert row["n"] == 2 and row["seeds"] == "0,1"
    assert row["loss"] == pytest.approx(vals.mean()) and row["loss_std"] == pytest.approx(vals.std(ddof=1))


def test_paired_difference_is_seed_by_seed(paper1_finals) -> None:
    d = comparisons.paired(paper1_finals, {**STRONG, "stage": "continual"}, {**STRONG, "stage": "union"}).set_index(
        "domain"
    )
    a = paper1_finals[
        (paper1_finals["variant"] == "strong-replay0.25") & (paper1_finals["experiment"] == "paper1_final")
    ]
    per_seed = [
        a[(a["stage"] == "continual") & (a["seed"] == s) & (a["domain"] == "de_new")]["loss"].item()
        - a[(a["stage"] == "union") & (a["seed"] == s) & (a["domain"] == "de_new")]["loss"].item()
        for s in (0, 1)
    ]
    assert d.loc["de_new", "diff_loss"] == pytest.approx(sum(per_seed) / 2)
    assert d.loc["de_new", "diff_loss_std"] == pytest.approx(pd.Series(per_seed).std(ddof=1))
    assert d.loc["de_new", "n"] == 2 and d.loc["en_old", "kind"] == "old"
    # Across runs: the 0% replay model against the 10% one, matched by seed.
    across = comparisons.paired(
        paper1_finals,
        {"experiment": "paper1_replay", "variant": "strong-replay0.0", "stage": "continual"},
        {"experiment": "paper1_replay", "variant": "strong-replay0.1", "stage": "continual"},
    )
    assert set(across["n"]) == {2}


def test_a_selector_over_two_configurations_is_an_error(paper1_finals) -> None:
    with pytest.raises(DataError, match="configurations"):
        comparisons.paired(
            paper1_finals, {"experiment": "paper1_rewarm", "stage": "continual"}, {**STRONG, "stage": "union"}
        )
    with pytest.raises(DataError, match="no finished stage"):
        comparisons.pick(paper1_finals, {"experiment": "paper1_final", "variant": "strong-replay0.5"})


def test_cost_is_read_from_the_runs_table(paper1_tables, paper1_finals) -> None:
    runs, _ = paper1_tables
    c = comparisons.cost(paper1_finals, {**STRONG, "stage": "continual"}, {**STRONG, "stage": "union"}).set_index(
        "quantity"
    )
    sel = runs[(runs["experiment"] == "paper1_final") & (runs["variant"] == "strong-replay0.25")]
    cont = sel[sel["stage"] == "continual"]["stage_tokens"].iloc[0]
    union = sel[sel["stage"] == "union"]["stage_tokens"].iloc[0]
    assert c.loc["stage_tokens", "ratio"] == pytest.approx(cont / union)
    assert c.loc["cumulative_tokens", "ratio"] == pytest.approx(1.0)  # the union is as long as the whole chain


def test_avg_is_the_mean_of_the_old_and_new_domain(paper1_finals) -> None:
    one = paper1_finals[
        (paper1_finals["experiment"] == "paper1_final") & (paper1_finals["variant"] == "strong-replay0.25")
    ]
    one = one[(one["stage"] == "continual") & (one["seed"] == 0)].set_index("kind")
    assert one.loc["avg", "domain"] == "AVG"
    assert one.loc["avg", "loss"] == pytest.approx((one.loc["old", "loss"] + one.loc["new", "loss"]) / 2)
    assert one.loc["avg", "bpb"] == pytest.approx((one.loc["old", "bpb"] + one.loc["new", "bpb"]) / 2)


def test_evals_table_counts_each_evaluated_stage_once_per_model(paper1_tables) -> None:
    runs = paper1_tables[0]
    evals = store.load(Path(__file__).resolve().parents[1] / "fixtures" / "paper1", "evals")
    t = comparisons.evals_table(evals, runs).set_index([*comparisons.MODEL, "task"])
    row = t.loc[("paper1_final", "strong-replay0.25", "union", "cpt_blimp")]
    assert row["n"] == 2 and row["metric"] == "acc" and 0.0 < row["value"] < 1.0
    assert not any(task.startswith("cpt_blimp_") for task in t.index.get_level_values("task"))
    held = t.loc[("paper1_final", "strong-replay0.25", "pretrain", "cpt_heldout_en_old")]
    assert held["metric"] == "bits_per_byte"
