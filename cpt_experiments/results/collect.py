"""Turn a finished stage (its CSV logs and summary) into rows of the ``curves`` table.

Each (re)start of a stage logs into a new ``logs/version_<k>/metrics.csv``; a resumed run logs
some steps again, so for every (step, split, metric) the value of the latest version wins.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

#: Lightning log key -> (split, metric). Validation keys are ``val/<domain>/<metric>``.
TRAIN_KEYS = {
    "train/loss": "loss",
    "train/lr": "lr",
    "train/tokens_per_s": "tokens_per_s",
}


def _versions(log_dir: Path) -> list[Path]:
    files = [p for p in log_dir.glob("version_*/metrics.csv") if p.is_file()]
    return sorted(files, key=lambda p: int(p.parent.name.split("_")[-1]))


def read_stage_logs(log_dir: Path) -> pd.DataFrame:
    """Long table (step, split, metric, value) of a stage's logs, latest version winning."""
    frames = []
    for order, path in enumerate(_versions(log_dir)):
        try:
            df = pd.read_csv(path)
        except pd.errors.EmptyDataError:
            continue
        if "step" not in df.columns:
            continue
        long = df.melt(id_vars=["step"], var_name="key", value_name="value").dropna(subset=["value"])
        long["order"] = order
        frames.append(long)
    if not frames:
        return pd.DataFrame(columns=["step", "split", "metric", "value"])
    long = pd.concat(frames, ignore_index=True)
    rows = []
    for key, (split, metric) in ((k, _split_metric(k)) for k in long["key"].unique()):
        if split is None:
            continue
        part = long[long["key"] == key].assign(split=split, metric=metric)
        rows.append(part)
    if not rows:
        return pd.DataFrame(columns=["step", "split", "metric", "value"])
    out = pd.concat(rows, ignore_index=True).sort_values(["order"])
    out = out.drop_duplicates(subset=["step", "split", "metric"], keep="last")
    return out[["step", "split", "metric", "value"]].sort_values(["split", "metric", "step"]).reset_index(drop=True)


def _split_metric(key: str) -> tuple[str | None, str | None]:
    if key in TRAIN_KEYS:
        return "train", TRAIN_KEYS[key]
    parts = key.split("/")
    if len(parts) == 3 and parts[0] == "val":
        return parts[1], parts[2]
    return None, None


def curve_rows(
    run_id: str,
    stage: str,
    log_dir: Path,
    *,
    tokens_before: int,
    tokens_per_step: int,
    final_step: int,
    final_val: Mapping[str, Mapping[str, float]],
) -> list[dict[str, Any]]:
    """Rows for ``curves``: logged train/val metrics plus the final per-domain losses.

    The log's ``step`` is the number of optimizer updates done when the value was logged
    (:class:`~cpt_experiments.training.loggers.UpdateStepCSVLogger`). In the table, a train row's ``step``
    is the 0-based index of the update whose batch it describes, and a validation row's ``step``
    the number of updates before it; ``tokens`` is cumulative from the root of the stage chain
    (consumed batches x tokens per batch), so consecutive stages share one x axis.
    """
    logs = read_stage_logs(log_dir)
    rows: list[dict[str, Any]] = []
    for r in logs.itertuples(index=False):
        updates = int(r.step)
        step = updates - 1 if r.split == "train" else updates
        if step < 0:
            continue
        rows.append(
            {
                "run_id": run_id,
                "stage": stage,
                "step": step,
                "tokens": tokens_before + updates * tokens_per_step,
                "split": r.split,
                "metric": r.metric,
                "value": float(r.value),
            }
        )
    final_tokens = tokens_before + final_step * tokens_per_step
    for domain, metrics in final_val.items():
        for metric, value in metrics.items():
            rows.append(
                {
                    "run_id": run_id,
                    "stage": stage,
                    "step": final_step,
                    "tokens": final_tokens,
                    "split": domain,
                    "metric": metric,
                    "value": float(value),
                }
            )
    return rows
