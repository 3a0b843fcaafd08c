"""The union gap split into data order + schedule: paired by seed, adds up, refuses missing models."""

from __future__ import annotations

import pandas as pd
import pytest

from cpt_experiments.errors import DataError
from cpt_experiments.results import union_gap

# Final losses per (stage, seed) on the old and new domains; seed 2 lacks the schedule-split union.
LOSS = {
    ("continual", 0): (4.3, 3.0), ("continual", 1): (4.4, 3.1), ("continual", 2): (9.0, 9.0),
    ("union", 0): (4.0, 3.1), ("union", 1): (4.1, 3.1), ("union", 2): (1.0, 1.0),
    ("union_cpt_schedule", 0): (4.1, 3.2), ("union_cpt_schedule", 1): (4.1, 3.3),
}  # fmt: skip


def _fin() -> pd.DataFrame:
    rows = []
    for (stage, seed), (old, new) in LOSS.items():
        for domain, kind, loss in (("en", "old", old), ("de", "new", new), ("avg", "avg", (old + new) / 2)):
            rows.append({"experiment": "paper1_final", "variant": "strong-replay0.25", "stage": stage, "seed": seed,
                         "domain": domain, "kind": kind, "loss": loss, "bpb": loss / 2, "cell": stage})  # fmt: skip
    return pd.DataFrame(rows)


def test_terms_are_seed_paired_over_common_seeds_and_add_up():
    dec = union_gap.decomposition(_fin(), "paper1_final", "strong-replay0.25")
    assert set(dec["term"]) == set(union_gap.TERMS) and (dec["n"] == 2).all()  # seed 2 left out everywhere
    en = dec[dec["domain"] == "en"].set_index("term")["diff_loss"]
    assert en["total"] == pytest.approx(0.3)  # (0.3 + 0.3) / 2
    assert en["data_order"] == pytest.approx(0.25)  # (0.2 + 0.3) / 2
    assert en["schedule"] == pytest.approx(0.05)  # (0.1 + 0.0) / 2
    union_gap.check_adds_up(dec)


def test_missing_split_union_is_refused_and_skipped_by_the_sweep():
    fin = _fin()
    fin = fin[fin["stage"] != "union_cpt_schedule"]
    with pytest.raises(DataError, match="union_cpt_schedule"):
        union_gap.decomposition(fin, "paper1_final", "strong-replay0.25")
    assert union_gap.decompositions(fin).empty


def test_check_adds_up_catches_a_broken_split():
    dec = union_gap.decomposition(_fin(), "paper1_final", "strong-replay0.25")
    dec.loc[dec["term"] == "schedule", "diff_loss"] += 0.01
    with pytest.raises(DataError, match="does not add up"):
        union_gap.check_adds_up(dec)
