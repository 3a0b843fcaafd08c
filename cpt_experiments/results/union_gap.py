"""Paper 1's headline gap, continual pre-training − the union baseline, split into what data order costs and what
the union's single long schedule buys (beyond the paper; issue 19).

The union trains one cosine over all its tokens; the continual chain trains a cosine per stage (pre-train, then
re-warm + re-decay). ``union_cpt_schedule`` reads the union's exact windows under the chain's LR path
(``experiment.union.chain_schedule``), so, seed by seed,

    CPT − union = (CPT − union_cpt_schedule) + (union_cpt_schedule − union)
                =        data order             +     schedule

where "data order" is old-then-new (with replay) against mixed, plus the optimizer reset at the stage boundary,
and "schedule" is one cosine against the chain's two. Only seeds with all three models enter, so the terms add up.
"""

from __future__ import annotations

import pandas as pd

from cpt_experiments.errors import DataError
from cpt_experiments.results import comparisons

TERMS = ("total", "data_order", "schedule")
SPLIT_STAGE = "union_cpt_schedule"


def decomposition(
    fin: pd.DataFrame, experiment: str, variant: str, *, continual: str = "continual", union: str = "union"
) -> pd.DataFrame:
    """The three terms per domain, paired over the seeds all three models have (``comparisons.finals`` rows).

    Columns: experiment, variant, term (total | data_order | schedule), domain, kind (old | new | avg), diff_loss,
    diff_loss_std, diff_bpb, diff_bpb_std, n, seeds (nats/token and bits per byte; > 0 = the first model worse).
    Raises DataError when one of the three models has no finished stage."""
    sel = {
        name: {"experiment": experiment, "variant": variant, "stage": name} for name in (continual, union, SPLIT_STAGE)
    }
    seeds = set.intersection(*(set(comparisons.pick(fin, s)["seed"]) for s in sel.values()))
    if not seeds:
        raise DataError(f"runs: {experiment} {variant}: no seed has {continual}, {union} and {SPLIT_STAGE}")
    common = fin[fin["seed"].isin(seeds)]
    pairs = {"total": (continual, union), "data_order": (continual, SPLIT_STAGE), "schedule": (SPLIT_STAGE, union)}
    parts = []
    for term, (a, b) in pairs.items():
        d = comparisons.paired(common, sel[a], sel[b])
        parts.append(d.assign(experiment=experiment, variant=variant, term=term))
    out = pd.concat(parts, ignore_index=True)
    return out[
        ["experiment", "variant", "term", *[c for c in out.columns if c not in ("experiment", "variant", "term")]]
    ]


def decompositions(
    fin: pd.DataFrame, experiments: tuple[str, ...] = ("paper1_final", "paper1_budget_axis")
) -> pd.DataFrame:
    """``decomposition`` for every variant of ``experiments`` that has the schedule-split union (may be empty)."""
    has_split = fin[(fin["stage"] == SPLIT_STAGE) & fin["experiment"].isin(experiments)]
    parts = []
    for (experiment, variant), _ in has_split.groupby(["experiment", "variant"], sort=True):
        try:
            parts.append(decomposition(fin, experiment, variant))
        except DataError:
            continue
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["experiment", "variant", "term"])


def check_adds_up(dec: pd.DataFrame, tol: float = 1e-9) -> None:
    """DataError unless total = data_order + schedule (per variant and domain, mean over the same seeds)."""
    wide = dec.pivot_table(index=["experiment", "variant", "domain"], columns="term", values="diff_loss")
    bad = (wide["total"] - wide["data_order"] - wide["schedule"]).abs() > tol
    if bad.any():
        raise DataError(f"union gap decomposition does not add up for {list(wide.index[bad])[:1]}")
