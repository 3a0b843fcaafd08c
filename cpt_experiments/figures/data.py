"""Data access shared by the figures: load tables, select rows, aggregate cells, name them; nothing is drawn here.

Every figure selects its rows explicitly (experiment -> stage names, roles) and aggregates them
with ``results.groups``: each stage once (by ``stage_hash``), seeds pooled only within a cell.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd

from cpt_experiments.errors import DataError
from cpt_experiments.figures import MissingFigureData
from cpt_experiments.results import comparisons, groups, labels, metrics, store, union_gap


def load(results_dir: Path, table: str, figure: str) -> pd.DataFrame:
    """``store.load`` with a missing or empty table reported as MissingFigureData for ``figure``."""
    try:
        df = store.load(results_dir, table)
    except DataError as exc:
        raise MissingFigureData(f"{figure}: needs {table}.csv: {exc}") from None
    if df.empty:
        raise MissingFigureData(f"{figure}: {table}.csv in {results_dir} has no rows")
    return df


def runs_table(results_dir: Path, figure: str, *, shared_roles: Iterable[str] = groups.SHARED_ROLES) -> pd.DataFrame:
    """The ``runs`` table with each stage's ``cell`` and ``chain_corpora`` (``groups.annotate``).

    The schedule-split union (``union_gap.SPLIT_STAGE``, role union) is left out: it is not the union baseline the
    figures draw beside a continual stage, only one term of ``results.union_gap`` (the notebook shows it)."""
    runs = load(results_dir, "runs", figure)
    return groups.annotate(runs[runs["stage"] != union_gap.SPLIT_STAGE], shared_roles=shared_roles)


#: Benchmark score metrics, preferred first (lm-eval names). Perplexity-type rows (held-out
#: bits per byte, word perplexity) are not scores and never enter a benchmark average.
SCORE_METRICS = ("acc_norm", "acc", "exact_match", "f1", "mc2")


def benchmark_scores(evals: pd.DataFrame) -> pd.DataFrame:
    """One score row per (run, stage, task): the first of ``SCORE_METRICS`` the task reports."""
    rank = {m: i for i, m in enumerate(SCORE_METRICS)}
    evals = evals[~evals["task"].str.match(comparisons.FAMILY_MEMBER)]
    scored = evals[evals["metric"].isin(SCORE_METRICS)].assign(_rank=lambda d: d["metric"].map(rank))
    best = scored.groupby("task")["_rank"].transform("min")
    return scored[scored["_rank"] == best].drop(columns="_rank")


#: Axis label of each validation metric.
UNITS = {"loss": "loss (nats/token)", "bpb": "bits per byte"}


def best_metric(results_dir: Path, figure: str) -> str:
    """``bpb`` when the curves have bits-per-byte rows (comparable across languages), else ``loss``."""
    curves = load(results_dir, "curves", figure)
    return "bpb" if (curves["metric"] == "bpb").any() else "loss"


def stage_table(results_dir: Path, figure: str, metric: str = "loss") -> pd.DataFrame:
    """``metrics.stage_table`` over the final-``metric`` matrix of the results in ``results_dir`` (rows carry
    ``cell``; its ``*_loss`` columns then hold that metric)."""
    runs, curves = load(results_dir, "runs", figure), load(results_dir, "curves", figure)
    runs = runs[runs["stage"] != union_gap.SPLIT_STAGE]  # as in runs_table: not the union the figures draw
    try:
        return metrics.stage_table(metrics.loss_matrix(curves, runs, metric=metric), runs)
    except DataError as exc:
        raise MissingFigureData(f"{figure}: {exc}") from None


def from_finals(results_dir: Path, figure: str, compute: Callable[[pd.DataFrame], pd.DataFrame]) -> pd.DataFrame:
    """``compute`` applied to ``comparisons.finals`` of the tables in ``results_dir``; its DataError (runs
    that are not there) becomes MissingFigureData for ``figure``."""
    runs, curves = load(results_dir, "runs", figure), load(results_dir, "curves", figure)
    try:
        return compute(comparisons.finals(curves, runs))
    except DataError as exc:
        raise MissingFigureData(f"{figure}: {exc}") from None


def require(df: pd.DataFrame, what: str, figure: str) -> pd.DataFrame:
    """Return ``df`` or raise MissingFigureData saying ``what`` is missing."""
    if df.empty:
        raise MissingFigureData(f"{figure}: no {what}")
    return df


def label(row: pd.Series) -> str:
    """Legend label of a stage row: its ``variant``, else schedule / η_max / replay built from factors.

    A run's ``variant`` names its ablation cell, not the baselines or the pre-training it shares with
    other cells, so union and pre-training stages are always labelled by their factors. An
    aggregated cell's variant is in ``label_variant``.
    """
    shared = row.get("role") in groups.SHARED_ROLES
    variant = row.get("label_variant", row.get("variant"))
    if variant is not None and pd.notna(variant) and not shared:
        return str(variant)
    parts = [str(row[c]) for c in ("role", "schedule") if c in row and pd.notna(row[c])]
    if "eta_max" in row and pd.notna(row["eta_max"]):
        parts.append(f"η_max={row['eta_max']:g}")
    if "replay_ratio" in row and pd.notna(row["replay_ratio"]) and row["replay_ratio"] > 0:
        parts.append(f"replay {row['replay_ratio']:.0%}")
    return " ".join(parts) or str(row.get("run_id", "?"))


#: Factors implied by others a label already shows (the replay mode by the ratio, domains by corpora).
IMPLIED = ("replay_mode", "parent_stage", "old_domain", "new_domain", "old_corpus", "new_corpus")


def cell_names(cells: pd.DataFrame) -> list[str]:
    """One distinct name per aggregated cell: the factors that differ among ``cells``
    (``labels.describe``), or its ``label`` when nothing differs."""
    cols = [c for c in labels.varying(cells) if c not in IMPLIED]
    names = [labels.describe(r, cols, cells) if cols else label(r) for _, r in cells.iterrows()]
    return labels.disambiguate(cells, names)


#: Names of the shared baselines; other roles are named by what differs among their cells.
SHARED_NAMES = {"pretrain": "pre-training", "union": "union"}


def role_names(cells: pd.DataFrame) -> list[str]:
    """A name per cell, told apart only from the cells of the same role ("union", "pre-training", "η_max=0.001")."""
    names = pd.Series("", index=cells.index, dtype="object")
    for role, part in cells.groupby("role", sort=False, dropna=False):
        own = cell_names(part) if len(part) > 1 else [label(part.iloc[0])]
        if role in SHARED_NAMES:
            # A stage in a baseline role under another name is named by it ("new_only": from scratch on D1 alone).
            stages = part["stage"] if "stage" in part else pd.Series(role, index=part.index)
            base = [SHARED_NAMES[role] if st == role else str(st) for st in stages]
            own = [b + (f" ({o})" if len(part) > 1 else "") for b, o in zip(base, own)]
        names[part.index] = own
    return list(names)


def comparison_names(cells: pd.DataFrame) -> list[str]:
    """ "<shift>: <role_names within that shift>" per cell, e.g. "weak: union", "weak: replay 5%"."""
    names = pd.Series("", index=cells.index, dtype="object")
    for shift, part in cells.groupby("shift", sort=False, dropna=False):
        names[part.index] = [f"{shift}: {n}" for n in role_names(part)]
    return list(names)


def with_n(text: str, n: Iterable[int]) -> str:
    """``text`` with the number of seeds behind it: "rewarm 3e-4 (n=2)"."""
    return f"{text} ({labels.n_text(n)})"


def follows_pretraining(stages: pd.DataFrame, runs: pd.DataFrame) -> pd.Series:
    """Mask of the stages (rows with run_id, stage) whose parent stage has role ``pretrain``."""
    idx = runs.set_index(["run_id", "stage"])
    role, parent = idx["role"], idx["parent_stage"]
    keys = zip(stages["run_id"], stages["stage"])
    return pd.Series(
        [role.get((rid, parent.get((rid, st)))) == "pretrain" for rid, st in keys], index=stages.index, dtype=bool
    )


def parents(stages: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """The ``runs`` rows of the parent stages (within each run) of ``stages``."""
    links = stages[["run_id", "parent_stage"]].dropna().rename(columns={"parent_stage": "stage"})
    return runs.merge(links.drop_duplicates(), on=["run_id", "stage"])


def run_unions(stages: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """The union stages of ``table`` recorded in the runs of ``stages`` whose chain read the same corpora as one
    of ``stages`` (the baseline each continual stage is drawn against: same data, same total tokens)."""
    union = table[(table["role"] == "union") & table["run_id"].isin(set(stages["run_id"]))]
    return union[union["chain_corpora"].fillna("").isin(set(stages["chain_corpora"].fillna("")))]


def stage_curves(curves: pd.DataFrame, runs: pd.DataFrame, prefer: pd.DataFrame | None = None) -> pd.DataFrame:
    """``curves`` keyed by stage content: a ``key`` column (stage_hash, else run_id/stage), one copy per series.

    A reused stage is recorded under several runs, each measuring the domains of its own
    experiment (or none: a reused stage may have no curves). Per (key, split, metric) the rows
    of one recording are kept: the first of ``prefer``'s (run_id, stage) rows that has them,
    else the first by sort order, so a series is never the mix of two recordings.
    """
    inst = curves[["run_id", "stage"]].drop_duplicates().sort_values(["run_id", "stage"])
    first = set() if prefer is None else set(zip(prefer["run_id"], prefer["stage"]))
    inst = inst.assign(_rank=[0 if k in first else 1 for k in zip(inst["run_id"], inst["stage"])])
    inst = inst.sort_values("_rank", kind="mergesort").assign(_order=range(len(inst)))
    hashes = runs[["run_id", "stage", "stage_hash"]].drop_duplicates(["run_id", "stage"])
    inst = inst.merge(hashes, on=["run_id", "stage"], how="left")
    inst = inst.assign(key=groups.content_key(inst)).drop(columns="stage_hash")
    keyed = curves.merge(inst, on=["run_id", "stage"])
    best = keyed.groupby(["key", "split", "metric"])["_order"].transform("min")
    return keyed[keyed["_order"] == best].drop(columns=["_rank", "_order"])


def cell_curves(curves: pd.DataFrame, runs: pd.DataFrame, members: pd.DataFrame) -> pd.DataFrame:
    """Mean ± std over seeds of each cell's curves: columns cell, split, metric, tokens, value, std, n.

    ``members`` are annotated ``runs`` rows (with ``cell``); each stage counts once (``groups.dedupe``)
    and the std is NaN where fewer than two seeds reached that point.
    """
    members = groups.dedupe(members)
    keyed = stage_curves(curves, runs, prefer=members)
    parts = members.assign(key=groups.content_key(members))[["key", "cell", "seed"]]
    joined = keyed.merge(parts, on="key")
    g = joined.groupby(["cell", "split", "metric", "tokens"], sort=True)
    return groups.seed_stats(g, ["value"]).rename(columns={"value_std": "std", "value_n": "n"}).reset_index()


def from_boundary(mean: pd.DataFrame, cells: pd.DataFrame) -> pd.DataFrame:
    """``mean`` plus, for each cell whose parent cell is drawn, the parent's last validation point as the
    cell's first, so a line starts at the stage boundary and the jump after it (re-warming, new data) shows."""
    drawn = set(cells["cell"])
    val = mean[(mean["split"] != "train")]
    extra = []
    for cell in cells["cell"]:
        parent = cell.split(" < ", 1)[1] if " < " in cell else None
        if parent not in drawn:
            continue
        last = val[val["cell"] == parent]
        last = last[last["tokens"] == last.groupby(["split", "metric"])["tokens"].transform("max")]
        extra.append(last.assign(cell=cell, std=float("nan"), n=1))  # a joint, not a measurement of the cell: no band
    return pd.concat([mean, *extra], ignore_index=True) if extra else mean


def strategy_key(row: pd.Series) -> str:
    """``style.STRATEGIES`` key of a paper-1 stage row (or aggregated cell): the shared baselines by role,
    the D1-only model by stage, a constant-η_min or re-warm run by its variant, else CPT by its replay ratio."""
    stage, role = row.get("stage"), row.get("role")
    if stage == "new_only":
        return "new_only"
    if role in ("union", "pretrain"):
        return str(role)
    variant = str(row.get("label_variant", row.get("variant")) or "")
    if "constant" in variant:
        return "constant"
    m = re.search(r"rewarm-([0-9.e+-]+)$", variant)
    if m:
        return f"rewarm-{float(m.group(1)):g}"
    ratio = row.get("replay_ratio")
    if ratio is not None and pd.notna(ratio):
        return f"replay-{float(ratio):g}"
    return variant or str(role)
