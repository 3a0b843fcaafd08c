"""Paper 1's comparisons: each model's final loss and bits per byte per domain, seeds pooled per model,
paired differences seed by seed, and what a model cost against a baseline.

A *model* is a finished stage (status done or reused) named by ``MODEL`` = (experiment, variant, stage),
e.g. ``paper1_final / strong-replay0.25 / continual`` or the ``union`` stage of that run. Its final values
are the last validation point of the stage on every domain (``metrics.loss_matrix``: nats/token and bits
per byte), keyed by stage content (``stage_hash``), so a stage reused by a later run, which records no
curves of its own, reads the values its first run measured.

Aggregation follows ``results.groups``: each stage once per model, seeds pooled only inside one cell of
identical factors (a model name holding two cells is an error, not an average), std over ≥ 2 seeds only.
Differences are paired: model A minus model B for each seed both have, then mean, std and n.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from cpt_experiments.errors import DataError
from cpt_experiments.results import groups, metrics

#: A model is named by these runs columns.
MODEL = ["experiment", "variant", "stage"]
#: Final values per domain: nats/token and bits per byte (comparable across languages and tokenizers).
METRICS = ("loss", "bpb")
#: Cost columns of ``runs``: tokens, FLOPs and wall seconds of the stage alone and of its whole lineage.
COST = ("stage_tokens", "cumulative_tokens", "stage_flops", "cumulative_flops", "wall_s")
#: A model selector: runs column -> value, e.g. {"experiment": "paper1_final", "stage": "union"}.
Selector = Mapping[str, object]


def finals(curves: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, seed, domain): ``MODEL``, role, shift, replay_ratio, seed, stage_hash, cell,
    schedule and eta_max (as recorded), domain, ``kind`` (old | new | other: the domain's part in the stage's shift), loss, bpb and ``COST``;
    plus domain ``AVG`` (kind ``avg``) = the mean of the old and new values, where a stage has both.

    Raises DataError when no finished stage has a validation value.
    """
    values = []
    for m in METRICS:
        try:
            values.append(metrics.loss_matrix(curves, runs, metric=m).stack().rename(m))
        except DataError:
            if m == "loss":
                raise
    vals = pd.concat(values, axis=1).dropna(how="all").reset_index()
    vals["key"] = groups.content_key(
        vals.merge(runs[["run_id", "stage", "stage_hash"]], on=["run_id", "stage"], how="left")
    )
    by_key = vals.drop(columns=["run_id", "stage"]).drop_duplicates(["key", "domain"], keep="first")
    info = groups.annotate(runs)
    info = info[info["status"].isin(["done", "reused"])].copy()
    info["key"] = groups.content_key(info)
    info["variant"] = info["variant"].fillna("")
    cols = [*MODEL, "run_id", "role", "shift", "replay_ratio", "seed", "stage_hash", "cell", "key",
            "old_domain", "new_domain", "model", "params", "params_non_embedding", "schedule", "eta_max",
            *(c for c in COST if c in info.columns)]  # fmt: skip
    out = info[[c for c in cols if c in info.columns]].merge(by_key, on="key")
    if out.empty:
        raise DataError("curves: no final validation value for any finished stage in runs.csv")
    out["kind"] = [
        "old" if d == o else "new" if d == n else "other"
        for d, o, n in zip(out["domain"], out["old_domain"], out["new_domain"])
    ]
    # One measurement per model: a second run of the same variant reusing the stage adds nothing.
    out = out.sort_values(["experiment", "run_id", "stage"], kind="mergesort")
    out = out.drop_duplicates([*MODEL, "key", "domain"], keep="first")
    return pd.concat([out, _avg_rows(out)], ignore_index=True).drop(columns=["key"])


def _avg_rows(out: pd.DataFrame) -> pd.DataFrame:
    """Paper 1's AVG per stage: the mean of its old- and new-domain values (domain ``AVG``, kind ``avg``)."""
    both = out[out["kind"].isin(["old", "new"])]
    counts = both.groupby([*MODEL, "key"])["kind"].transform("nunique")
    both = both[counts == 2]
    if both.empty:
        return both
    first = both.drop_duplicates([*MODEL, "key"]).set_index([*MODEL, "key"])
    means = both.groupby([*MODEL, "key"])[[m for m in METRICS if m in both.columns]].mean()
    return first.drop(columns=list(means.columns)).join(means).reset_index().assign(domain="AVG", kind="avg")


def pick(fin: pd.DataFrame, selector: Selector) -> pd.DataFrame:
    """Rows of ``fin`` whose columns equal ``selector``'s values; DataError naming the selector if none."""
    keep = pd.Series(True, index=fin.index)
    for col, value in selector.items():
        if col not in fin.columns:
            raise DataError(f"runs: no column {col!r} to select {dict(selector)}")
        keep &= fin[col].map(groups.value_text) == groups.value_text(value)
    part = fin[keep]
    if part.empty:
        raise DataError(f"runs: no finished stage with final values matches {dict(selector)}")
    return part


def table(fin: pd.DataFrame, by: tuple[str, ...] = tuple(MODEL)) -> pd.DataFrame:
    """Mean, std (ddof=1; NaN for one seed) and n of loss and bpb per model (``by``) and domain.

    Columns: ``by``, domain, kind, role, shift, replay_ratio, loss, loss_std, bpb, bpb_std, n, seeds.
    """
    rows = []
    for key, part in fin.groupby([*by, "domain"], sort=True, dropna=False):
        groups.check_one_cell(part, "/".join(str(k) for k in key[:-1]), per=("seed", "domain"))
        first = part.iloc[0]
        row = dict(zip([*by, "domain"], key))
        row.update({c: first[c] for c in ("kind", "role", "shift", "replay_ratio") if c in part.columns})
        for m in METRICS:
            if m in part.columns:
                row[m], row[f"{m}_std"] = groups.spread(part[m])
        row["n"], row["seeds"] = part["seed"].nunique(), groups.seed_list(part["seed"])
        rows.append(row)
    return pd.DataFrame(rows)


def paired(fin: pd.DataFrame, a: Selector, b: Selector) -> pd.DataFrame:
    """Per domain: mean, std and n over seeds of value(A) − value(B), matched seed by seed, for loss and bpb.

    ``a`` and ``b`` select one model each (``pick``); only seeds both have enter; std is NaN for one
    common seed. Columns: domain, kind (A's), diff_loss, diff_loss_std, diff_bpb, diff_bpb_std, n, seeds.
    """
    pa, pb = pick(fin, a), pick(fin, b)
    groups.check_one_cell(pa, str(dict(a)), per=("seed", "domain"))
    groups.check_one_cell(pb, str(dict(b)), per=("seed", "domain"))
    both = pa.merge(pb, on=["seed", "domain"], suffixes=("", "_b"))
    if both.empty:
        raise DataError(f"runs: {dict(a)} and {dict(b)} share no (seed, domain)")
    rows = []
    for dom, part in both.groupby("domain", sort=True):
        row = {"domain": dom, "kind": part["kind"].iloc[0]}
        for m in METRICS:
            if m in part.columns:
                row[f"diff_{m}"], row[f"diff_{m}_std"] = groups.spread(part[m] - part[f"{m}_b"])
        row["n"], row["seeds"] = part["seed"].nunique(), groups.seed_list(part["seed"])
        rows.append(row)
    return pd.DataFrame(rows)


def cost(fin: pd.DataFrame, a: Selector, b: Selector) -> pd.DataFrame:
    """What model A cost relative to model B, mean over seeds both have: one row per ``COST`` column
    with A's value, B's value and A / B (e.g. a continual stage's own tokens over the union's)."""
    pa = pick(fin, a).drop_duplicates("seed").set_index("seed")
    pb = pick(fin, b).drop_duplicates("seed").set_index("seed")
    seeds = pa.index.intersection(pb.index)
    if seeds.empty:
        raise DataError(f"runs: {dict(a)} and {dict(b)} share no seed")
    rows = []
    for c in COST:
        if c in pa.columns and c in pb.columns:
            va, vb = pa.loc[seeds, c].astype(float).mean(), pb.loc[seeds, c].astype(float).mean()
            rows.append({"quantity": c, "a": va, "b": vb, "ratio": va / vb if vb else float("nan"), "n": len(seeds)})
    return pd.DataFrame(rows)


#: Task names of the members of a task family (BLiMP's paradigms and fields, the German pair files): their
#: scores are drawn through the family's group row, so counting them too would weigh one benchmark ~80 times.
FAMILY_MEMBER = r"^(cpt_blimp|cpt_multiblimp_de)_"
#: Benchmark rows read per task: accuracy for the minimal pairs and multiple choice, bits per byte for held-out text.
EVAL_METRICS = ("acc", "acc_norm", "bits_per_byte")


def evals_table(evals: pd.DataFrame, runs: pd.DataFrame, tasks: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Mean, std (ddof=1; NaN for one seed) and n of each evaluated model's scores, per model and task.

    Each evaluated stage counts once per model (a stage evaluated under two runs is one measurement);
    task-family members (BLiMP's paradigms) are left out unless named in ``tasks``. Columns: ``MODEL``,
    task, metric, value, value_std, n, seeds."""
    info = runs[["run_id", "stage", *[c for c in ("experiment", "variant", "stage_hash", "seed") if c in runs]]]
    rows = evals[evals["metric"].isin(EVAL_METRICS)].merge(info, on=["run_id", "stage"])
    rows = rows.assign(variant=rows["variant"].fillna(""))
    if tasks is not None:
        rows = rows[rows["task"].isin(tasks)]
    else:
        rows = rows[~rows["task"].str.match(FAMILY_MEMBER)]
    if rows.empty:
        raise DataError("evals: no benchmark rows of stages in runs.csv")
    rows = rows.sort_values(["experiment", "run_id"], kind="mergesort")
    rows = rows.drop_duplicates([*MODEL, "stage_hash", "task", "metric"], keep="first")
    g = rows.groupby([*MODEL, "task", "metric"], sort=True)
    out = groups.seed_stats(g, ["value"]).drop(columns="value_n")
    out["n"] = g["seed"].nunique()
    out["seeds"] = g["seed"].agg(groups.seed_list)
    return out.reset_index()


def evals_paired(
    evals: pd.DataFrame, runs: pd.DataFrame, a: Selector, b: Selector, task: str, metric: str = "acc"
) -> dict:
    """Benchmark score of model A − model B on ``task`` (``metric``), seed by seed: mean, std (NaN for one
    common seed), n and seeds. Raises DataError when the two share no evaluated seed."""
    info = runs[["run_id", "stage", "experiment", "variant", "seed"]].assign(variant=runs["variant"].fillna(""))
    rows = evals[(evals["task"] == task) & (evals["metric"] == metric)].merge(info, on=["run_id", "stage"])
    per = []
    for sel in (a, b):
        keep = pd.Series(True, index=rows.index)
        for col, value in sel.items():
            keep &= rows[col].map(groups.value_text) == groups.value_text(value)
        per.append(rows[keep].drop_duplicates("seed").set_index("seed")["value"].astype(float))
    both = per[0].index.intersection(per[1].index)
    if both.empty:
        raise DataError(f"evals: {dict(a)} and {dict(b)} share no seed scored on {task}/{metric}")
    diff, diff_std = groups.spread(per[0][both] - per[1][both])
    return {"diff": diff, "diff_std": diff_std, "n": len(both), "seeds": groups.seed_list(pd.Series(both))}
