"""Paper 2's claims table on real smoke-scale runs (tests/fixtures/paper2): paired differences per version,
the matched-token and matched-cost comparisons, each with the rule's verdict."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cpt_experiments.errors import DataError
from cpt_experiments.results import ledger, releases, store, verdicts, version_claims

FIXTURE = "tests/fixtures/paper2"


@pytest.fixture(scope="module")
def tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    runs, curves = store.load(FIXTURE, "runs"), store.load(FIXTURE, "curves")
    return releases.released(curves, runs), runs


def _loss(rel: pd.DataFrame, variant: str, seed: int, version: int) -> float:
    r = rel[(rel["variant"] == variant) & (rel["seed"] == seed) & (rel["version"] == version)]
    return float(r["loss"].iloc[0])


def test_matched_tokens_interpolates_ptfs_in_log_tokens_between_its_releases(tables) -> None:
    rel, runs = tables
    m = version_claims.matched(rel, runs, ("path_switching", "ps-cosine-f20"), "ptfs-cosine", "tokens")
    assert list(m["version"]) == [1, 2, 3]  # release 4 read more than PTFS's largest budget: no matched model
    # seed 1, release 2: the branch's lineage read 90,112 tokens, between PTFS v2 (81,920) and v3 (122,880).
    t = (np.log(90112) - np.log(81920)) / (np.log(122880) - np.log(81920))
    ref = {s: (1 - t) * _loss(rel, "ptfs-cosine", s, 2) + t * _loss(rel, "ptfs-cosine", s, 3) for s in (0, 1)}
    diffs = [_loss(rel, "ps-cosine-f20", s, 2) - ref[s] for s in (0, 1)]
    row = m.set_index("version").loc[2]
    assert row["diff"] == pytest.approx(np.mean(diffs)) and row["n"] == 2
    assert row["diff_std"] == pytest.approx(np.std(diffs, ddof=1))


def test_matched_cost_takes_ptfs_latest_release_within_the_same_total_cost(tables) -> None:
    rel, runs = tables
    m = version_claims.matched(rel, runs, ("path_switching", "ps-cosine-f20"), "ptfs-cosine", "cost").set_index(
        "version"
    )
    cost = ledger.per_seed(runs).set_index(["variant", "seed", "version"])["cumulative_cost"]
    assert cost[("ps-cosine-f20", 0, 4)] < cost[("ptfs-cosine", 0, 3)]  # 4 releases cost less than PTFS's 3
    assert cost[("ps-cosine-f20", 0, 4)] >= cost[("ptfs-cosine", 0, 2)]
    d = [_loss(rel, "ps-cosine-f20", s, 4) - _loss(rel, "ptfs-cosine", s, 2) for s in (0, 1)]
    assert m.loc[4, "diff"] == pytest.approx(np.mean(d))
    with pytest.raises(DataError, match="tokens | cost"):
        version_claims.matched(rel, runs, ("path_switching", "ps-cosine-f20"), "ptfs-cosine", "flops")


def test_claims_table_judges_every_row_by_the_rule(tables) -> None:
    rel, runs = tables
    ct = version_claims.table(rel, runs)
    assert {"1-gap", "2-cost", "3-undecayed", "5-v4", "5-tokens", "5-cost", "6-v4"} <= set(ct["group"])
    assert set(ct.loc[ct["group"] == "2-cost", "verdict"]) == {"by construction"}
    assert set(ct.loc[ct["n"] == 1, "verdict"]) <= {"indicative", "by construction"}  # one seed: no more
    gap = ct[ct["group"] == "1-gap"].set_index("version")
    d = releases.paired(rel, ("cpt_rewarm", "cpt_rewarm"), ("ptfs", "ptfs-cosine")).set_index("version")
    assert gap.loc[4, "ours"] == pytest.approx(d.loc[4, "diff"])
    assert gap.loc[4, "verdict"] == verdicts.verdict(d.loc[4, "diff"], d.loc[4, "diff_std"], 2, sign=+1)
    assert version_claims.branch_f("ps-knee-f45") == "f=0.45"
