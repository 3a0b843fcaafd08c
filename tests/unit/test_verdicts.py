"""The verdict rule (results/README.md, "Verdicts"): a paired 95% t-interval read against the paper's claim."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from cpt_experiments.results import verdicts


def test_interval_is_the_paired_t_interval() -> None:
    lo, hi = verdicts.interval(0.1, 0.03, 3)
    assert (hi - lo) / 2 == pytest.approx(4.303 * 0.03 / math.sqrt(3))
    assert all(math.isnan(x) for x in verdicts.interval(0.1, float("nan"), 1))


@pytest.mark.parametrize(
    ("mean", "std", "n", "paper", "word"),
    [
        (0.30, 0.01, 3, 0.27, "holds"),  # the paper's side and within 0.02 of its value
        (1.80, 0.08, 3, 0.34, "holds in direction"),  # the side only (5× the paper's size)
        (-0.012, 0.019, 3, 0.02, "not resolved"),  # covers 0 (paper 1's weak claim 1)
        (-0.031, 0.007, 3, 0.05, "does not hold"),  # excludes 0 on the other side
        (0.5, float("nan"), 1, 0.3, "indicative"),  # one seed: never more
    ],
)
def test_sign_claims(mean: float, std: float, n: int, paper: float, word: str) -> None:
    assert verdicts.verdict(mean, std, n, paper=paper) == word


def test_sign_without_a_number_uses_the_stated_side() -> None:
    assert verdicts.verdict(-0.3, 0.01, 3, sign=-1) == "holds"  # no value to be near: the side decides
    with pytest.raises(ValueError, match="sign"):
        verdicts.verdict(-0.3, 0.01, 3, paper=0.0)


def test_at_most_and_parity_claims() -> None:
    assert verdicts.verdict(0.001, 0.002, 3, sense="at most", paper=0.0) == "holds"
    assert verdicts.verdict(0.082, 0.008, 3, sense="at most", paper=0.0) == "does not hold"
    assert verdicts.verdict(0.034, 0.015, 3, sense="at most", paper=0.0) == "not resolved"
    assert verdicts.verdict(-0.001, 0.004, 3, sense="parity") == "holds"
    assert verdicts.verdict(-0.029, 0.032, 3, sense="parity") == "not resolved"
    assert verdicts.verdict(0.2, 0.01, 3, sense="parity") == "does not hold"
    assert verdicts.verdict(0.4, float("nan"), 1, by_construction=True) == "by construction"


def test_a_readme_row_combines_its_comparisons_by_label() -> None:
    assert verdicts.combine(["a", "b"], ["holds", "holds"]) == "holds"
    assert verdicts.combine(["1%", "5%", "25%"], ["holds in direction", "holds", "holds in direction"]) == (
        "holds in direction (1%, 25%); holds (5%)"
    )
    t = pd.DataFrame({"group": ["g", "g", "h"], "label": ["x", "y", "z"], "verdict": ["holds", "not resolved",
                      "indicative"], "n": [3, 2, 1]})  # fmt: skip
    g = verdicts.by_group(t).set_index("group")
    assert g.loc["g", "verdict"] == "holds (x); not resolved (y)" and g.loc["g", "n"] == "2–3"
