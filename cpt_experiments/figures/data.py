"""Data access shared by the figures: load tables, select rows, name variants; nothing is drawn here."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cpt_experiments.errors import DataError
from cpt_experiments.figures import MissingFigureData
from cpt_experiments.results import metrics, store


def load(results_dir: Path, table: str, figure: str) -> pd.DataFrame:
    """``store.load`` with a missing or empty table reported as MissingFigureData for ``figure``."""
    try:
        df = store.load(results_dir, table)
    except DataError as exc:
        raise MissingFigureData(f"{figure}: needs {table}.csv: {exc}") from None
    if df.empty:
        raise MissingFigureData(f"{figure}: {table}.csv in {results_dir} has no rows")
    return df


#: Benchmark score metrics, preferred first (lm-eval names). Perplexity-type rows (held-out
#: bits per byte, word perplexity) are not scores and never enter a benchmark average.
SCORE_METRICS = ("acc_norm", "acc", "exact_match", "f1", "mc2")


def benchmark_scores(evals: pd.DataFrame) -> pd.DataFrame:
    """One score row per (run, stage, task): the first of ``SCORE_METRICS`` the task reports."""
    rank = {m: i for i, m in enumerate(SCORE_METRICS)}
    scored = evals[evals["metric"].isin(SCORE_METRICS)].assign(_rank=lambda d: d["metric"].map(rank))
    best = scored.groupby("task")["_rank"].transform("min")
    return scored[scored["_rank"] == best].drop(columns="_rank")


def stage_table(results_dir: Path, figure: str) -> pd.DataFrame:
    """``metrics.stage_table`` over the loss matrix of the results in ``results_dir``."""
    runs, curves = load(results_dir, "runs", figure), load(results_dir, "curves", figure)
    try:
        return metrics.stage_table(metrics.loss_matrix(curves, runs), runs)
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
    other cells, so union and pre-training stages are always labelled by their factors.
    """
    shared = row.get("role") in ("union", "pretrain")
    if "variant" in row and pd.notna(row["variant"]) and not shared:
        return str(row["variant"])
    parts = [str(row[c]) for c in ("role", "schedule") if c in row and pd.notna(row[c])]
    if "eta_max" in row and pd.notna(row["eta_max"]):
        parts.append(f"η_max={row['eta_max']:g}")
    if "replay_ratio" in row and pd.notna(row["replay_ratio"]) and row["replay_ratio"] > 0:
        parts.append(f"replay {row['replay_ratio']:.0%}")
    return " ".join(parts) or str(row.get("run_id", "?"))


def follows_pretraining(stages: pd.DataFrame, runs: pd.DataFrame) -> pd.Series:
    """Mask of the stages (rows with run_id, stage) whose parent stage has role ``pretrain``."""
    idx = runs.set_index(["run_id", "stage"])
    role, parent = idx["role"], idx["parent_stage"]
    keys = zip(stages["run_id"], stages["stage"])
    return pd.Series(
        [role.get((rid, parent.get((rid, st)))) == "pretrain" for rid, st in keys], index=stages.index, dtype=bool
    )


def unique_stages(stages: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """One row per stage content (``stage_hash``): a stage shared by several runs is counted once."""
    hashes = runs.set_index(["run_id", "stage"])["stage_hash"]
    h = [hashes.get(k) for k in zip(stages["run_id"], stages["stage"])]
    return stages.assign(_hash=h).drop_duplicates(subset=["_hash"]).drop(columns="_hash")


def mean_std(df: pd.DataFrame, by: list[str], cols: list[str]) -> pd.DataFrame:
    """Mean, std (0 for one seed) and n over seeds, per ``by`` group; columns ``<col>``, ``<col>_std``, ``n``."""
    g = df.groupby(by, dropna=False)
    out = g[cols].mean()
    std = g[cols].std(ddof=1).fillna(0.0).add_suffix("_std")
    return out.join(std).join(g.size().rename("n")).reset_index()
