"""The cost ledger on a hand-made runs table: exact totals under both accountings, ratios to PTFS."""

from __future__ import annotations

import pandas as pd
import pytest

from cpt_experiments.errors import DataError
from cpt_experiments.results import ledger

DS = 100  # tokens per version increment


def _row(exp, stage, role, version, tokens, run="r1", seed=0, status="done", variant=None):
    return {"run_id": f"{exp}-{run}", "experiment": exp, "variant": variant, "seed": seed, "stage": stage,
            "stage_hash": f"{exp}:{stage}", "role": role, "version": version, "stage_tokens": tokens,
            "stage_flops": 6.0 * tokens, "status": status}  # fmt: skip


def _runs(alpha_tokens: int = 20) -> pd.DataFrame:
    rows = [_row("ptfs", f"v{i}", "ptfs", i, i * DS) for i in range(1, 5)]
    rows += [_row("cpt_rewarm", f"v{i}", "cpt", i, DS) for i in range(1, 5)]
    for i in range(1, 5):
        rows.append(_row("path_switching", f"main_v{i}", "main", i, DS))
        rows.append(_row("path_switching", f"branch_v{i}", "branch", i, alpha_tokens))
    # a second run reusing the main path is paid once; a failed stage not at all
    rows += [_row("path_switching", f"main_v{i}", "main", i, DS, run="r2", status="reused") for i in range(1, 5)]
    rows.append(_row("path_switching", "broken", "branch", 4, 10_000, status="failed"))
    return pd.DataFrame(rows)


def test_extra_accounting_totals_and_ratio():
    out = ledger.ledger(_runs(), accounting="extra").set_index(["strategy", "version"])
    assert out.loc[("ptfs", 4), "cumulative_cost"] == 10 * DS
    assert out.loc[("cpt_rewarm", 4), "cumulative_cost"] == 4 * DS
    assert out.loc[("path_switching", 4), "cumulative_cost"] == 4 * DS + 4 * 20
    assert out.loc[("path_switching", 2), "cost"] == DS + 20
    # 2(1 + α)/(N + 1) with α = 0.2, N = 4
    assert out.loc[("path_switching", 4), "ratio_to_ptfs"] == pytest.approx(2 * 1.2 / 5)
    assert out.loc[("cpt_rewarm", 4), "ratio_to_ptfs"] == pytest.approx(0.4)


def test_replace_accounting_drops_only_the_newest_branch():
    out = ledger.ledger(_runs(), accounting="replace").set_index(["strategy", "version"])
    assert out.loc[("path_switching", 4), "cumulative_cost"] == 4 * DS + 3 * 20
    assert out.loc[("path_switching", 1), "cumulative_cost"] == DS
    assert out.loc[("path_switching", 4), "ratio_to_ptfs"] == pytest.approx((4 + 3 * 0.2) / 10)
    assert out.loc[("ptfs", 4), "cumulative_cost"] == 10 * DS  # no branches: same as 'extra'


def test_alpha_045_gives_58_percent_under_extra_and_flops_unit():
    out = ledger.ledger(_runs(alpha_tokens=45), unit="flops").set_index(["strategy", "version"])
    assert out.loc[("path_switching", 4), "ratio_to_ptfs"] == pytest.approx(0.58)
    assert out.loc[("ptfs", 4), "cumulative_cost"] == 6.0 * 10 * DS


def test_bad_inputs_are_one_line_errors():
    with pytest.raises(DataError, match="unknown accounting"):
        ledger.ledger(_runs(), accounting="both")
    with pytest.raises(DataError, match="missing column"):
        ledger.ledger(_runs().drop(columns="version"))
    with pytest.raises(DataError, match="role ptfs"):
        ledger.ledger(_runs().query("experiment != 'ptfs'"))


def test_ptfs_schedule_families_share_one_baseline():
    knee = [_row("ptfs", f"v{i}", "ptfs", i, i * DS, run="knee", variant="ptfs-knee") for i in range(1, 5)]
    runs = pd.concat([_runs().assign(variant=lambda d: d["variant"].where(d["experiment"] != "ptfs", "ptfs-cosine")),
                      pd.DataFrame(knee).assign(stage_hash=lambda d: d["stage_hash"] + "-knee")])  # fmt: skip
    out = ledger.ledger(runs).set_index(["strategy", "variant", "version"])
    assert out.loc[("ptfs", "ptfs-knee", 4), "ratio_to_ptfs"] == 1.0
    assert out.loc[("cpt_rewarm", "", 4), "ratio_to_ptfs"] == pytest.approx(0.4)
    runs.loc[runs["variant"] == "ptfs-knee", "stage_tokens"] *= 2
    with pytest.raises(DataError, match="differ in cost"):
        ledger.ledger(runs)
