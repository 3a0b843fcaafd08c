"""Failed-row bookkeeping of the ``runs`` table: a failure's ``attempt`` id, and which failed rows a finished row
supersedes (``store.append`` drops them; it refuses a finished row that would replace another run's result).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cpt_experiments.errors import DataError
from cpt_experiments.hashing import text_hash
from cpt_experiments.results.schema import keys_of


def attempt_id(stage: str, reason: str) -> str:
    """A failed row's ``attempt``: 12 hex digits of sha256(stage, reason). The same failure again
    replaces its row; another reason gets its own."""
    return text_hash(f"{stage}\0{reason}", 12)  # the recorded attempt ids have 12


def superseded(path: Path, old: pd.DataFrame, new: pd.DataFrame, supersedes: set[str]) -> pd.Series:
    """``runs`` rows of ``old`` that finished rows of ``new`` supersede; refuses to replace another run's rows."""
    finished = new[new["status"] != "failed"]
    stage_of = keys_of(old, ("run_id", "stage"))
    pairs = set(keys_of(finished, ("run_id", "stage")))
    for _, row in finished.iterrows():
        ours = old[(stage_of == (row["run_id"], row["stage"])) & (old["status"] != "failed")]
        theirs = ours["stage_hash"].dropna()
        if not pd.isna(row["stage_hash"]) and len(theirs) and theirs.iloc[0] != row["stage_hash"]:
            raise DataError(
                f"{path}: run {row['run_id']} stage {row['stage']} has stage_hash {theirs.iloc[0]}, the new row "
                f"{row['stage_hash']}; refusing to replace another run's rows (same run_id, other content)"
            )
    failed = old["status"] == "failed"
    runs = set(finished["run_id"]) | supersedes
    early = (old["stage"] == "*") & old["run_id"].isin(runs)
    return (failed & (stage_of.isin(pairs) | early)).fillna(False).astype(bool)
