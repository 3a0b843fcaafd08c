"""CPT metrics from hand-made runs/curves with exact expected values."""

from __future__ import annotations

import pandas as pd
import pytest

from cpt_experiments.errors import DataError
from cpt_experiments.figures import data
from cpt_experiments.results import groups, metrics


def _runs() -> pd.DataFrame:
    base = dict(
        experiment="e",
        seed=0,
        scale="tiny",
        model="m",
        status="done",
        replay_ratio=0.0,
        old_domain="en_old",
        new_domain="en_new",
    )
    rows = [
        dict(base, run_id="pre", stage="pretrain", role="pretrain", stage_hash="hp", shift="none"),
        # continual run whose (reused) pretrain stage has no curves of its own: found by stage_hash
        dict(base, run_id="c", stage="pretrain", role="pretrain", stage_hash="hp", shift="weak", status="reused"),
        dict(
            base,
            run_id="c",
            stage="continual",
            parent_stage="pretrain",
            role="continual",
            stage_hash="hc",
            shift="weak",
        ),
        dict(
            base,
            run_id="c",
            stage="continual2",
            parent_stage="continual",
            role="continual",
            stage_hash="hc2",
            shift="weak",
        ),
        dict(base, run_id="u0", stage="union", role="union", shift="weak", seed=0),
        dict(base, run_id="u1", stage="union", role="union", shift="weak", seed=1),
        dict(base, run_id="f", stage="x", role="continual", shift="weak", status="failed"),
    ]
    df = pd.DataFrame(rows)
    for col in ("variant", "schedule", "eta_max", "version", "parent_stage"):
        if col not in df:
            df[col] = pd.NA
    return df


def _curves() -> pd.DataFrame:
    rows = []

    def add(rid, stage, step, **losses):
        for dom, v in losses.items():
            rows.append(dict(run_id=rid, stage=stage, step=step, tokens=step * 10, split=dom, metric="loss", value=v))
        rows.append(dict(run_id=rid, stage=stage, step=step, tokens=step * 10, split="train", metric="loss", value=9.0))

    add("pre", "pretrain", 5, en_old=3.5, en_new=3.9)
    add("pre", "pretrain", 10, en_old=3.0, en_new=3.5)  # last step: the pre-training reference
    add("c", "continual", 10, en_old=3.25, en_new=3.0)
    add("c", "continual2", 20, en_old=3.5, en_new=2.75)
    add("u0", "union", 20, en_old=2.75, en_new=3.0)
    add("u1", "union", 20, en_old=2.25, en_new=3.0)
    add("f", "x", 3, en_old=1.0, en_new=1.0)
    return pd.DataFrame(rows)


def test_loss_matrix_takes_last_val_step_and_skips_failed_stages() -> None:
    m = metrics.loss_matrix(_curves(), _runs())
    assert list(m.columns) == ["en_new", "en_old"]
    assert m.loc[("pre", "pretrain")].to_dict() == {"en_new": 3.5, "en_old": 3.0}
    assert ("f", "x") not in m.index and len(m) == 5


def test_forgetting_adaptation_avg_and_union_gap_exact() -> None:
    table = metrics.stage_table(metrics.loss_matrix(_curves(), _runs()), _runs())
    f = metrics.forgetting(table)
    a = metrics.adaptation(table)
    assert f.to_dict() == {("c", "continual"): 0.25, ("c", "continual2"): 0.5}  # 3.25-3.0, 3.5-3.0
    assert a.to_dict() == {("c", "continual"): 0.5, ("c", "continual2"): 0.75}  # 3.5-3.0, 3.5-2.75
    t = table.set_index(["run_id", "stage"])
    assert t.loc[("c", "continual"), "avg"] == 3.125 and t.loc[("c", "continual2"), "root_stage"] == "pretrain"
    gap = metrics.union_gap(table)  # union mean over seeds: old 2.5, new 3.0, avg 2.75
    assert gap.loc[("c", "continual")].to_dict() == {"gap_old": 0.75, "gap_new": 0.0, "gap_avg": 0.375, "union_n": 2}
    s = metrics.summary(_curves(), _runs())
    assert s.loc[("c", "continual2"), "gap_avg"] == 3.125 - 2.75


def test_union_gap_is_nan_without_matching_baseline() -> None:
    runs = _runs()
    runs.loc[runs["role"] == "union", "scale"] = "big"
    gap = metrics.union_gap(metrics.stage_table(metrics.loss_matrix(_curves(), runs), runs))
    assert gap["gap_avg"].isna().all()


# --- one aggregation path (results/groups.py): reused stages once, seeds only within a cell ---------

WEB, NEWS, WIKI = "en_new=web@b2", "en_new=news@d4", "en_old=wiki@a1"


def _cell_runs() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Runs/curves with a continual stage reused by three runs, a second seed, another corpus, another
    experiment holding a stage with the same factors, and union stages shared by several runs."""
    base = dict(experiment="cpt", scale="tiny", model="m", status="done", old_domain="en_old", new_domain="en_new",
                old_corpus="en_old", schedule="cos", eta_max=1e-3, replay_ratio=0.0, shift="weak")  # fmt: skip
    rows, curves = [], []

    def run(rid, seed, stages):
        rows.append(dict(base, run_id=rid, seed=seed, stage="pretrain", role="pretrain", stage_hash=f"p{seed}",
                         corpora=WIKI, shift="none", new_domain="en_old"))  # fmt: skip
        for stage, h, role, corpora, old, new in stages:
            parent = "pretrain" if role == "continual" else None
            rows.append(dict(base, run_id=rid, seed=seed, stage=stage, role=role, stage_hash=h, corpora=corpora,
                             parent_stage=parent, new_corpus="en_new"))  # fmt: skip
            for dom, v in (("en_old", old), ("en_new", new)):
                curves.append(dict(run_id=rid, stage=stage, step=8, tokens=80, split=dom, metric="loss", value=v))
        for dom, v in (("en_old", 3.0 + 0.1 * seed), ("en_new", 4.0)):
            curves.append(dict(run_id=rid, stage="pretrain", step=8, tokens=80, split=dom, metric="loss", value=v))

    union0 = ("union", "u0", "union", f"{WEB},{WIKI}", 2.0, 3.0)
    # Seed 0's continual stage c0 and union u0 are recorded by three runs (config hashes differ, content not).
    for rid in ("cpt-a", "cpt-b", "cpt-c"):
        run(rid, 0, [("continual", "c0", "continual", WEB, 3.5, 3.0), union0])
    run(
        "cpt-d",
        1,
        [("continual", "c1", "continual", WEB, 3.7, 3.2), ("union", "u1", "union", f"{WEB},{WIKI}", 3.0, 3.0)],
    )
    run("cpt-e", 0, [("continual", "n0", "continual", NEWS, 4.5, 3.5)])  # en_new filled by another corpus
    run("rc-a", 0, [("continual", "x0", "continual", WEB, 9.0, 9.0)])
    rows[-1]["experiment"] = rows[-2]["experiment"] = "repeated_cosine"  # same factors, another experiment
    df = pd.DataFrame(rows)
    for col in ("variant", "version", "parent_stage", "replay_mode"):
        df[col] = df[col] if col in df else pd.NA
    return df, pd.DataFrame(curves)


def test_cell_summary_counts_reused_stages_once_and_pools_only_seeds() -> None:
    runs, curves = _cell_runs()
    cells = metrics.cell_summary(curves, runs).set_index(["experiment", "chain_corpora"])
    web = cells.loc[("cpt", f"{WEB},{WIKI}")]
    # c0 (3 runs) and c1 count once each: mean of 3.5 and 3.7, not (3 × 3.5 + 3.7) / 4.
    assert web["n"] == 2 and web["seeds"] == "0,1" and web["old_loss"] == pytest.approx(3.6)
    assert web["old_loss_std"] == pytest.approx(0.2 / 2**0.5)
    news = cells.loc[("cpt", f"{NEWS},{WIKI}")]
    assert news["n"] == 1 and news["old_loss"] == 4.5 and pd.isna(news["old_loss_std"])  # never pooled with web
    other = cells.loc[("repeated_cosine", f"{WEB},{WIKI}")]
    assert other["n"] == 1 and other["old_loss"] == 9.0  # another experiment is another cell
    only = metrics.cell_summary(curves, runs, {"cpt": ["continual"]})
    assert set(only["experiment"]) == {"cpt"} and len(only) == 2


def test_union_gap_averages_each_union_stage_once_over_its_own_seeds_and_corpora() -> None:
    runs, curves = _cell_runs()
    table = metrics.stage_table(metrics.loss_matrix(curves, runs), runs)
    ref = metrics.union_reference(table)
    assert len(ref) == 1 and ref["n"].item() == 2 and ref["old_loss"].item() == 2.5  # (2 + 3) / 2, not (3·2 + 3) / 4
    gap = metrics.union_gap(table)
    assert gap.loc[("cpt-a", "continual"), "gap_old"] == 1.0 and gap.loc[("cpt-a", "continual"), "union_n"] == 2
    assert gap.loc[("cpt-d", "continual"), "gap_old"] == pytest.approx(1.2)
    assert gap.loc[("cpt-e", "continual")].isna()[["gap_old", "gap_avg"]].all()  # no union on the news corpus
    runs.loc[runs["stage_hash"] == "u1", "scale"] = "big"  # another size is not this cell's baseline
    gap = metrics.union_gap(metrics.stage_table(metrics.loss_matrix(curves, runs), runs))
    assert gap.loc[("cpt-a", "continual"), "gap_old"] == 1.5 and gap.loc[("cpt-a", "continual"), "union_n"] == 1


def test_union_gap_refuses_an_ambiguous_baseline_outside_the_run() -> None:
    runs, curves = _cell_runs()
    runs.loc[runs["stage_hash"] == "u1", "eta_max"] = 5e-4  # a second union cell with the same data
    table = metrics.stage_table(metrics.loss_matrix(curves, runs), runs)
    cpt = table[table["experiment"] == "cpt"]
    gap = metrics.union_gap(cpt)  # each run recorded its own union: that one is used, over its own seed only
    assert gap.loc[("cpt-a", "continual"), "gap_old"] == 1.5
    assert gap.loc[("cpt-d", "continual"), "gap_old"] == pytest.approx(0.7)
    # rc-a recorded no union and two union cells hold its data: no silent pick, no silent average.
    with pytest.raises(DataError, match="2 different union baselines match continual stage rc-a/continual"):
        metrics.union_gap(table)


def test_aggregate_refuses_two_stages_of_one_seed_in_a_cell() -> None:
    runs, curves = _cell_runs()
    runs.loc[runs["run_id"] == "cpt-c", "stage_hash"] = ["p0", "c0-other", "u0"]  # same factors, other content
    with pytest.raises(DataError, match=r"cpt-a/continual, cpt-c/continual have the same factors and seed 0"):
        metrics.cell_summary(curves, runs)


def test_missing_corpora_pool_only_with_missing() -> None:
    rows = pd.DataFrame(
        [dict(run_id=f"r{i}", stage="s", experiment="e", role="continual", seed=i, stage_hash=f"h{i}", x=float(i),
              corpora=c) for i, c in enumerate([pd.NA, pd.NA, WEB])]
    )  # fmt: skip
    cells = groups.aggregate(groups.annotate(rows), ["x"])
    assert sorted(cells["n"]) == [1, 2]  # the two unrecorded ones are "unknown but equal"; the recorded one is apart
    assert cells.loc[cells["n"] == 2, "x"].item() == 0.5 and pd.isna(cells.loc[cells["n"] == 1, "x_std"].item())


def test_a_stage_shared_by_two_experiments_counts_for_both_with_each_seed_once() -> None:
    """A user's own results: ``cpt`` seed 0 and ``quickstart`` seeds 0, 2, 3 share seed 0's pre-training (one
    stage_hash recorded under both). The quickstart pre-training cell has three seeds, not two."""
    base = dict(scale="tiny", model="m", status="done", old_domain="en_old", new_domain="en_de", schedule="cos",
                eta_max=1e-3, corpora=WIKI)  # fmt: skip
    rows, curves = [], []
    for exp, seed in (("cpt", 0), ("quickstart", 0), ("quickstart", 2), ("quickstart", 3)):
        rid = f"{exp}-s{seed}"
        rows.append(dict(base, experiment=exp, run_id=rid, seed=seed, stage="pretrain", role="pretrain",
                         stage_hash=f"p{seed}", shift="none"))  # fmt: skip
        rows.append(dict(base, experiment=exp, run_id=rid, seed=seed, stage="continual", role="continual",
                         parent_stage="pretrain", stage_hash=f"{exp}-c{seed}", shift="strong"))  # fmt: skip
        for stage in ("pretrain", "continual"):
            curves.append(dict(run_id=rid, stage=stage, step=8, tokens=80, split="en_old", metric="loss",
                               value=3.0 + seed))  # fmt: skip
    runs = groups.annotate(pd.DataFrame(rows))
    cells = groups.aggregate(runs, []).set_index(["role", "experiment"])
    assert cells.loc[("pretrain", "cpt"), "seeds"] == "0,2,3"  # one cell: the shared stage's first recorder names it
    assert (cells.index.get_level_values("role") == "pretrain").sum() == 1
    assert cells.loc[("continual", "quickstart"), "n"] == 3 and cells.loc[("continual", "cpt"), "n"] == 1
    # The children of the merged pre-training still tell the experiments apart, and the curves pool each seed once.
    mean = data.cell_curves(pd.DataFrame(curves), runs, runs)
    pre = mean[mean["cell"] == runs.loc[runs["role"] == "pretrain", "cell"].iloc[0]]
    assert pre["n"].item() == 3 and pre["value"].item() == pytest.approx((3 + 5 + 6) / 3)
