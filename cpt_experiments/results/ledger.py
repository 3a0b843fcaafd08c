"""Paper 2's cost ledger: tokens or FLOPs per stage, per version and cumulative, per strategy, and the
ratio of each strategy's cumulative cost to PTFS's, computed from the ``runs`` table only (§4).

A *strategy* is one experiment (``runs.experiment``) and variant, e.g. ``ptfs``, ``cpt_undecayed``,
``path_switching`` / ``ps-cosine-f20``: all its stages are its cost, whatever their role (CPT variant (c)
pays for the main-path stages it starts from). Each stage counts once per ``stage_hash`` within a
strategy and seed (a stage reused by a second run is paid once), and seeds are averaged. With T(s) the
stage's ``stage_tokens`` (or ``stage_flops``) and v(s) its ``version``:

* accounting ``extra`` (A: a branch is extra steps on top of the main path):
  C(N) = Σ_{s: v(s) <= N} T(s);
* accounting ``replace`` (B: the release-N branch replaces the tail of the main path it forks from, so the
  newest branch costs nothing beyond the main path): C(N) = C_extra(N) − Σ_{s: role branch, v(s) = N} T(s).
  Strategies without branches have C_replace = C_extra.

With equal increments ΔS and branches of α·ΔS these give the two readings of the 58% figure:
C_PTFS(N) = N(N+1)/2·ΔS; path switching 2(1+α)/(N+1) (A) and (N + (N−1)α)/(N(N+1)/2) (B) of PTFS.
``ratio_to_ptfs`` = C_strategy(N) / C_PTFS(N) (PTFS: the experiment whose stages all have role ``ptfs``; its
schedule families share one cost, which is checked). Nothing is assumed: every number comes from the recorded
counts.
"""

from __future__ import annotations

import pandas as pd

from cpt_experiments.errors import DataError

ACCOUNTINGS = ("extra", "replace")
_KEYS = ["experiment", "variant", "seed"]


def stage_costs(runs: pd.DataFrame, *, unit: str = "tokens") -> pd.DataFrame:
    """One row per (strategy, seed, stage): experiment, variant, seed, stage, role, version, cost (``stage_<unit>``).

    Only stages with a ``version`` and status done/reused; each ``stage_hash`` once per strategy and seed.
    """
    col = f"stage_{unit}"
    needed = {"experiment", "variant", "seed", "stage", "stage_hash", "role", "version", "status", col}
    missing = sorted(needed - set(runs.columns))
    if missing:
        raise DataError(f"runs: missing column(s) {missing} for the cost ledger (unit={unit!r})")
    sel = runs[runs["status"].isin(["done", "reused"]) & runs["version"].notna()].copy()
    if sel.empty:
        raise DataError("runs: no finished stages with a version (paper 2 cost ledger)")
    if sel[col].isna().any():
        bad = sel[sel[col].isna()].iloc[0]
        raise DataError(f"runs: stage {bad['experiment']}/{bad['stage']} has no {col!r}")
    sel["variant"] = sel["variant"].fillna("")
    sel = sel.drop_duplicates([*_KEYS, "stage_hash"])
    sel["version"] = sel["version"].astype("int64")
    return sel[[*_KEYS, "stage", "role", "version"]].assign(cost=sel[col].astype("float64")).reset_index(drop=True)


def per_seed(runs: pd.DataFrame, *, unit: str = "tokens", accounting: str = "extra") -> pd.DataFrame:
    """Per strategy, seed and version: ``cost`` (stages of that version) and ``cumulative_cost`` (versions <= N
    under ``accounting``); columns experiment, variant, seed, version, cost, cumulative_cost."""
    if accounting not in ACCOUNTINGS:
        raise DataError(f"ledger: unknown accounting {accounting!r} (known: {', '.join(ACCOUNTINGS)})")
    stages = stage_costs(runs, unit=unit)
    per = stages.groupby([*_KEYS, "version"])["cost"].sum().rename("cost").reset_index()
    per = per.sort_values([*_KEYS, "version"])
    per["cumulative_cost"] = per.groupby(_KEYS)["cost"].cumsum()
    if accounting == "replace":
        branch = stages[stages["role"] == "branch"].groupby([*_KEYS, "version"])["cost"].sum().rename("newest")
        per = per.join(branch, on=[*_KEYS, "version"])
        per["cumulative_cost"] -= per["newest"].fillna(0.0)
        per = per.drop(columns="newest")
    return per.reset_index(drop=True)


def ledger(runs: pd.DataFrame, *, unit: str = "tokens", accounting: str = "extra") -> pd.DataFrame:
    """Per strategy and version: ``cost`` (stages of that version), ``cumulative_cost`` (versions <= N under
    ``accounting``) and ``ratio_to_ptfs``, means over seeds (``per_seed``); columns strategy, variant, version,
    cost, cumulative_cost, ratio_to_ptfs.
    """
    per = per_seed(runs, unit=unit, accounting=accounting)
    mean = per.groupby(["experiment", "variant", "version"])[["cost", "cumulative_cost"]].mean().reset_index()
    ptfs = _ptfs_experiments(stage_costs(runs, unit=unit))
    mean["strategy"] = mean["experiment"].where(~mean["experiment"].isin(ptfs), "ptfs")
    out = mean[["strategy", "variant", "version", "cost", "cumulative_cost"]]
    out = out.assign(ratio_to_ptfs=out["cumulative_cost"] / out["version"].map(_ptfs_cost(out)))
    return out.sort_values(["strategy", "variant", "version"]).reset_index(drop=True)


def _ptfs_cost(costs: pd.DataFrame) -> pd.Series:
    """C_PTFS(N) per version; PTFS variants (schedule families) must agree, else the ratio is ambiguous."""
    base = costs[costs["strategy"] == "ptfs"]
    if base.empty:
        raise DataError("runs: no PTFS experiment (all stages role ptfs): the cost ratio needs the PTFS baseline")
    per_version = base.groupby("version")["cumulative_cost"]
    if (per_version.nunique() > 1).any():
        raise DataError(
            f"runs: PTFS variants {sorted(base['variant'].unique())} differ in cost: the ratio is ambiguous"
        )
    return per_version.first()


def _ptfs_experiments(stages: pd.DataFrame) -> set[str]:
    roles = stages.groupby("experiment")["role"].agg(set)
    ptfs = {exp for exp, r in roles.items() if r == {"ptfs"}}
    if len(ptfs) > 1:
        raise DataError(f"runs: several PTFS experiments {sorted(ptfs)}: the ratio is ambiguous")
    return ptfs
