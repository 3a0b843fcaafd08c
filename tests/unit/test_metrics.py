"""CPT metrics from hand-made runs/curves with exact expected values."""

from __future__ import annotations

import pandas as pd
import pytest

from cpt_experiments.errors import DataError
from cpt_experiments.results import metrics


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
    assert gap.loc[("c", "continual")].to_dict() == {"gap_old": 0.75, "gap_new": 0.0, "gap_avg": 0.375}
    s = metrics.summary(_curves(), _runs())
    assert s.loc[("c", "continual2"), "gap_avg"] == 3.125 - 2.75


def test_union_gap_is_nan_without_matching_baseline() -> None:
    runs = _runs()
    runs.loc[runs["role"] == "union", "scale"] = "big"
    gap = metrics.union_gap(metrics.stage_table(metrics.loss_matrix(_curves(), runs), runs))
    assert gap["gap_avg"].isna().all()


def _cost_runs(alpha_tokens: int) -> pd.DataFrame:
    rows = []
    for v in range(1, 5):
        rows.append(dict(run_id="p", stage=f"p{v}", role="ptfs", version=v, stage_tokens=100 * v, seed=0))
        rows.append(dict(run_id="c", stage=f"c{v}", role="cpt", version=v, stage_tokens=100, seed=0))
        rows.append(dict(run_id="s", stage=f"m{v}", role="main", version=v, stage_tokens=100, seed=0))
        rows.append(dict(run_id="s", stage=f"b{v}", role="branch", version=v, stage_tokens=alpha_tokens, seed=0))
    # a second path-switching run sharing the main path (same stage_hash) pays it once
    df = pd.DataFrame(rows).assign(status="done", variant=pd.NA, stage_hash=pd.NA)
    df.loc[df["role"] == "main", "stage_hash"] = [f"m{v}" for v in range(1, 5)]
    dup = df[df["role"] == "main"].assign(run_id="s2")
    return pd.concat([df, dup], ignore_index=True)


@pytest.mark.parametrize(("alpha_tokens", "expected"), [(45, 0.58), (100, 0.8), (0, 0.4)])
def test_cost_ratio_follows_accounting_a(alpha_tokens: int, expected: float) -> None:
    costs = metrics.cost_ratio(metrics.cumulative_cost(_cost_runs(alpha_tokens)))
    at4 = costs[costs["version"] == 4].set_index("strategy")
    assert at4.loc["ptfs", "cumulative_cost"] == 1000  # 100 + 200 + 300 + 400: quadratic in N
    assert at4.loc["cpt", "ratio_to_ptfs"] == pytest.approx(0.4)  # 2 / (N + 1)
    assert at4.loc["path_switching", "ratio_to_ptfs"] == pytest.approx(expected)  # 2(1 + α) / (N + 1)
    v2 = costs[costs["version"] == 2].set_index("strategy")
    assert v2.loc["cpt", "ratio_to_ptfs"] == pytest.approx(200 / 300)


def test_cost_needs_ptfs_and_versions() -> None:
    runs = _cost_runs(45)
    with pytest.raises(DataError, match="no stages with role ptfs"):
        metrics.cost_ratio(metrics.cumulative_cost(runs[runs["role"] != "ptfs"]))
    runs.loc[0, "version"] = pd.NA
    with pytest.raises(DataError, match="lacks 'version'"):
        metrics.cumulative_cost(runs)


def test_version_losses_use_released_stages() -> None:
    runs = pd.DataFrame([
        dict(run_id="s", stage="m1", role="main", version=1, seed=0, status="done", variant="PS"),
        dict(run_id="s", stage="b1", role="branch", version=1, seed=0, status="done", variant="PS"),
        dict(run_id="p", stage="p1", role="ptfs", version=1, seed=0, status="done", variant=pd.NA),
    ])  # fmt: skip
    curves = pd.DataFrame([
        dict(run_id=r, stage=s, step=1, tokens=1, split=d, metric="loss", value=v)
        for r, s, d, v in [("s", "m1", "en_new", 9.0), ("s", "b1", "en_new", 3.0), ("s", "b1", "en_old", 4.0), ("p", "p1", "en_new", 3.25)]
    ])  # fmt: skip
    out = metrics.version_losses(metrics.loss_matrix(curves, runs), runs).set_index("strategy")
    assert out.loc["path_switching", "loss"] == 3.5 and out.loc["ptfs", "loss"] == 3.25
    assert "main" not in out.index
