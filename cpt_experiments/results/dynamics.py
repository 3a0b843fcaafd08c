"""Paper 1's claims about the curve after a stage boundary rather than its end: how far the old-domain loss
rises after re-warming (the spike) and where it ends (paper 1 §6.1.1 Fig. 3, §7.1 Fig. 8).

For a stage S with parent P, on validation domain d (default: S's old domain):

* rise(t) = loss_S(d, t) − loss_P(d, end of P), for every validation point t of S;
* peak rise = max_t rise(t), at ``peak_tokens`` tokens after the boundary; final rise = rise at the end of S.

The parent's last value is read by content (``stage_hash``), so a parent reused from another run counts.
Seeds are pooled per (experiment, variant) after a per-seed computation: mean, std (ddof=1, NaN for one
seed) and n.
"""

from __future__ import annotations

import pandas as pd

from cpt_experiments.errors import DataError
from cpt_experiments.results import groups, metrics


def rises(
    curves: pd.DataFrame, runs: pd.DataFrame, experiment: str, *, stage: str = "continual", metric: str = "loss"
) -> pd.DataFrame:
    """One row per (variant, seed) of ``experiment``'s ``stage``: domain, peak_rise, peak_tokens, final_rise.

    Raises DataError when the experiment has no such stage with validation points and a measured parent.
    """
    rows = runs[(runs["experiment"] == experiment) & (runs["stage"] == stage) & runs["status"].isin(["done", "reused"])]
    parents = runs.set_index(["run_id", "stage"])["stage_hash"]
    last = metrics.losses_by_hash(metrics.loss_matrix(curves, runs, metric=metric), runs)
    val = curves[(curves["metric"] == metric) & (curves["split"] != "train")]
    val = val.merge(runs[["run_id", "stage", "stage_hash"]], on=["run_id", "stage"])
    out = []
    for r in rows.drop_duplicates("stage_hash").itertuples():
        domain = r.old_domain
        parent_hash = parents.get((r.run_id, r.parent_stage))
        base = last.get(parent_hash, pd.Series(dtype="float64")).get(domain, float("nan"))
        if pd.isna(base):
            continue
        own = val[(val["stage_hash"] == r.stage_hash) & (val["split"] == domain)].drop_duplicates("step")
        if own.empty:
            continue
        own = own.sort_values("step")
        rise = own["value"] - base
        start = float(r.cumulative_tokens) - float(r.stage_tokens)
        peak = rise.idxmax()
        out.append({"variant": "" if pd.isna(r.variant) else r.variant, "seed": r.seed, "domain": domain,
                    "peak_rise": float(rise.max()), "peak_tokens": float(own.loc[peak, "tokens"]) - start,
                    "final_rise": float(rise.iloc[-1]), "points": len(own)})  # fmt: skip
    if not out:
        raise DataError(f"runs/curves: no {stage!r} stage of {experiment} with validation points and a measured parent")
    return pd.DataFrame(out)


def rise_table(
    curves: pd.DataFrame, runs: pd.DataFrame, experiment: str, *, stage: str = "continual", metric: str = "loss"
) -> pd.DataFrame:
    """``rises`` pooled per variant: peak_rise, final_rise, peak_tokens (mean), their ``_std`` and n."""
    per_seed = rises(curves, runs, experiment, stage=stage, metric=metric)
    g = per_seed.groupby("variant", sort=True)
    stats = groups.seed_stats(g, ["peak_rise", "final_rise", "peak_tokens"])
    out = stats[["peak_rise", "final_rise", "peak_tokens", "peak_rise_std", "final_rise_std"]]
    out = out.assign(n=g["seed"].nunique(), domain=g["domain"].first())
    return out.reset_index()
