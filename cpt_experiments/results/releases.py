"""Paper 2: the model released at each version, per strategy: final losses, seed spread, paired differences.

A *strategy* is one experiment and variant of the runs table (``ptfs`` / ``ptfs-knee``,
``cpt_rewarm`` / ``cpt_rewarm``, ``path_switching`` / ``ps-cosine-f20`` …). Version i's released
model is the strategy's stage with ``version`` = i and a role in ``RELEASED_ROLES`` (the main path is
never released). Its loss is the final validation loss (nats/token) and bits per byte on the validation
split of version role ``VERSION_ROLE`` (``v<i>`` in ``conf/corpora/versions``). The version roles share one
validation set, recorded under each role, so every version and strategy is scored on the same data.

Aggregation follows ``results.groups``: each stage once per strategy (a stage reused by a second run
of the strategy is one measurement; a stage two strategies share, such as PTFS v1 = CPT v1, counts
for each), seeds pooled only inside one cell of identical factors, std over ≥ 2 distinct seeds only.
Only ``runs`` and ``curves`` are read, so a notebook or figure gets the same numbers as this module.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from cpt_experiments.errors import DataError
from cpt_experiments.results import groups

#: Roles whose stages are released models (PTFS versions, CPT updates, path-switching branches).
RELEASED_ROLES = ("ptfs", "cpt", "branch")
#: Validation metrics read per released stage: nats/token and bits per byte.
METRICS = ("loss", "bpb")
#: The corpus role of version i (conf/corpora/versions), whose validation split scores version i's release.
VERSION_ROLE = "v{version}"
#: A strategy is identified by these two runs columns.
STRATEGY = ["experiment", "variant"]


def released(curves: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """One row per released stage and seed: experiment, variant, seed, version, stage, stage_hash, cell, loss, bpb.

    ``loss``/``bpb`` = the ``curves`` value at the stage's last validation step on split ``VERSION_ROLE``.
    Stages that did not finish (status other than done/reused) are left out, and so are the branches of
    experiments without versions (paper 1's infinite-schedule anneals share the role ``branch`` but release no
    version). Raises DataError when no released stage has a validation value.
    """
    info = groups.annotate(runs)
    info = info[info["role"].isin(RELEASED_ROLES) & info["status"].isin(["done", "reused"])].copy()
    versioned = set(info.loc[info["version"].notna(), "experiment"])
    info = info[(info["role"] != "branch") | info["experiment"].isin(versioned)]
    if info.empty:
        raise DataError(f"runs: no finished stage with a role in {list(RELEASED_ROLES)} (paper 2)")
    if info["version"].isna().any():
        bad = info[info["version"].isna()].iloc[0]
        raise DataError(f"runs: released stage {bad['run_id']}/{bad['stage']} has no 'version'")
    info["variant"] = info["variant"].fillna("")
    info["domain"] = [VERSION_ROLE.format(version=int(v)) for v in info["version"]]
    val = curves[curves["metric"].isin(METRICS) & (curves["split"] != "train")]
    last = val[val["step"] == val.groupby(["run_id", "stage"])["step"].transform("max")]
    final = last.pivot_table(index=["run_id", "stage", "split"], columns="metric", values="value", aggfunc="mean")
    keys = pd.MultiIndex.from_arrays([info["run_id"], info["stage"], info["domain"]])
    found = final.reindex(keys)
    for m in METRICS:
        info[m] = found[m].to_numpy() if m in found.columns else float("nan")
    info = info[info["loss"].notna()]
    if info.empty:
        raise DataError(f"curves: no final validation loss on split {VERSION_ROLE} of any released stage")
    info["version"] = info["version"].astype("int64")
    # One measurement per stage and strategy: a second run reusing the stage adds nothing.
    info = info.sort_values(["experiment", "run_id", "stage"], kind="mergesort")
    info = info.drop_duplicates([*STRATEGY, "stage_hash"], keep="first")
    return info[[*STRATEGY, "seed", "version", "stage", "run_id", "stage_hash", "cell", *METRICS]].reset_index(
        drop=True
    )


def table(rel: pd.DataFrame) -> pd.DataFrame:
    """Mean, std (ddof=1; NaN for one seed) and n of loss and bpb per strategy and version.

    Raises DataError when one strategy/version holds two cells (a setting the variant does not name
    differs, e.g. another scale) or one seed twice (two different stages with one seed).
    """
    rows = []
    for (exp, variant, version), part in rel.groupby([*STRATEGY, "version"], sort=True):
        groups.check_one_cell(part, f"{exp}/{variant} version {version}")
        row = {"experiment": exp, "variant": variant, "version": version, "n": part["seed"].nunique()}
        for m in METRICS:
            row[m], row[f"{m}_std"] = groups.spread(part[m])
        row["seeds"] = groups.seed_list(part["seed"])
        rows.append(row)
    return pd.DataFrame(rows)


def paired(
    rel: pd.DataFrame, strategy: Sequence[str], baseline: Sequence[str], *, metric: str = "loss"
) -> pd.DataFrame:
    """Per version: mean, std and n over seeds of ``metric``(strategy) − ``metric``(baseline), seed by seed.

    ``strategy``/``baseline`` are (experiment, variant) pairs. Only seeds both have enter; the std is
    NaN for one common seed. Columns: version, diff, diff_std, n, seeds.
    """
    a, b = (_one(rel, s) for s in (strategy, baseline))
    both = a.merge(b, on=["version", "seed"], suffixes=("", "_base"))
    if both.empty:
        raise DataError(f"runs: {'/'.join(strategy)} and {'/'.join(baseline)} share no (version, seed)")
    rows = []
    for version, part in both.groupby("version", sort=True):
        d = part[metric] - part[f"{metric}_base"]
        diff, diff_std = groups.spread(d)
        rows.append({"version": version, "diff": diff, "diff_std": diff_std, "n": int(d.notna().sum()),
                     "seeds": groups.seed_list(part["seed"])})  # fmt: skip
    return pd.DataFrame(rows)


def _one(rel: pd.DataFrame, strategy: Sequence[str]) -> pd.DataFrame:
    exp, variant = strategy
    part = rel[(rel["experiment"] == exp) & (rel["variant"] == variant)]
    if part.empty:
        known = sorted({f"{e}/{v}" for e, v in zip(rel["experiment"], rel["variant"])})
        raise DataError(f"runs: no released stages of {exp}/{variant} (known: {', '.join(known)})")
    return part[["version", "seed", *METRICS]]


def family(variant: str) -> str:
    """Schedule family of a strategy's variant: ``ptfs-knee`` → knee, ``ps-multistep-f20`` → multistep; cosine else.

    CPT variants (``cpt_rewarm`` …) use cosine decays, so they are compared with cosine PTFS.
    """
    parts = variant.split("-")
    return parts[1] if parts[0] in ("ptfs", "ps") and len(parts) > 1 else "cosine"


def against_ptfs(rel: pd.DataFrame, *, metric: str = "loss", ptfs: str = "ptfs") -> pd.DataFrame:
    """Paired difference (strategy − PTFS of the same family, seed by seed) for every other strategy and version.

    Columns: experiment, variant, baseline (the PTFS variant), version, diff, diff_std, n, seeds; strategies
    whose family has no PTFS run, or that share no seed with it, are left out. > 0 = worse than PTFS.
    """
    bases = set(rel.loc[rel["experiment"] == ptfs, "variant"])
    frames = []
    for (exp, variant), _ in rel[rel["experiment"] != ptfs].groupby(STRATEGY, sort=True):
        base = next((b for b in sorted(bases) if family(b) == family(variant)), None)
        if base is None:
            continue
        try:
            d = paired(rel, (exp, variant), (ptfs, base), metric=metric)
        except DataError:  # no common seed
            continue
        frames.append(d.assign(experiment=exp, variant=variant, baseline=base))
    if not frames:
        raise DataError(f"runs: no strategy shares a seed with a {ptfs} run of its schedule family")
    out = pd.concat(frames, ignore_index=True)
    return out[["experiment", "variant", "baseline", "version", "diff", "diff_std", "n", "seeds"]]
