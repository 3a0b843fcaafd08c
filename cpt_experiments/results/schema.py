"""The results tables' schema: the columns and dtypes of ``runs``, ``curves`` and ``evals``, their keys, and the
validation that turns rows into a typed frame.

``SCHEMAS`` is the single source of the column types; ``results/README.md`` documents each column (a test checks
both agree). Reading and writing the tables is ``results.store``; which failed rows a finished row replaces is
``results.failed_rows``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pandas as pd

from cpt_experiments.errors import DataError, config_error

STR, INT, FLOAT, BOOL = "string", "Int64", "float64", "boolean"

#: Column -> pandas dtype for every table. Strings and ints are nullable (empty cell = missing).
SCHEMAS: dict[str, dict[str, str]] = {
    "runs": {
        "run_id": STR,
        "experiment": STR,
        "stage": STR,
        "parent_stage": STR,  # `stage` name of the parent within the same run_id; empty for a root
        "stage_hash": STR,  # identifies the stage's content across runs (a reused stage shares it)
        "parent_hash": STR,
        "role": STR,
        "status": STR,
        "reason": STR,  # one line: why a failed stage or run failed; empty otherwise
        "attempt": STR,  # failed rows: id of the failure (stage + reason), so distinct failures keep their rows
        "variant": STR,  # legend label of the ablation cell, e.g. "rewarm 3e-4"; optional
        "shift": STR,
        "old_corpus": STR,  # roles of the old data (the pre-training the stage's chain starts from)
        "new_corpus": STR,  # roles of the stage's data that are not old data
        "old_domain": STR,  # validation domain of the old data (forgetting is measured there)
        "new_domain": STR,  # validation domain of the new data (adaptation); = old_domain without shift
        "corpora": STR,  # role=<corpus name>@<content hash> for every corpus the stage read
        "replay_ratio": FLOAT,  # fraction of training tokens (windows) drawn from the old corpus
        "replay_mode": STR,
        "data_windows": STR,  # unseen: the data roles drew only windows no ancestor read; empty = all windows
        "init_from": STR,
        "optimizer_policy": STR,
        "schedule": STR,
        "eta_max": FLOAT,
        "eta_min": FLOAT,
        "eta_const": FLOAT,
        "warmup_frac": FLOAT,
        "eta_end": FLOAT,  # the LR of the stage's last update (what it really decayed to)
        "adam_beta1": FLOAT,
        "adam_beta2": FLOAT,
        "adam_eps": FLOAT,
        "weight_decay": FLOAT,
        "grad_clip": FLOAT,
        "global_batch_windows": INT,
        "seq_len": INT,
        "seed": INT,
        "scale": STR,
        "model": STR,
        "params": INT,  # model parameters (embeddings included, a tied table once): tokens per parameter
        "params_non_embedding": INT,  # without the embedding and unembedding tables (Kaplan et al.'s N)
        "version": INT,
        "tokenizer_hash": STR,
        "stage_tokens": INT,
        "cumulative_tokens": INT,
        "stage_flops": FLOAT,
        "cumulative_flops": FLOAT,
        "steps": INT,
        "wall_s": FLOAT,
        "config_hash": STR,
        "git_commit": STR,
        "dirty_allowed": BOOL,
        "checkpoint": STR,
        "created_at": STR,
    },
    "curves": {
        "run_id": STR,
        "stage": STR,
        "step": INT,
        "tokens": INT,
        "split": STR,
        "metric": STR,
        "value": FLOAT,
    },
    "evals": {
        "run_id": STR,
        "stage": STR,
        "checkpoint": STR,
        "task": STR,
        "task_version": STR,
        "num_fewshot": INT,
        "metric": STR,
        "value": FLOAT,
        "stderr": FLOAT,
        "limit": FLOAT,
    },
}

#: Columns that must be present (and non-empty) in every appended row.
REQUIRED: dict[str, tuple[str, ...]] = {
    "runs": ("run_id", "experiment", "stage", "status"),
    "curves": ("run_id", "stage", "step", "tokens", "split", "metric", "value"),
    "evals": ("run_id", "stage", "task", "metric", "value"),
}

#: Re-collecting rows with these key values replaces every existing row sharing them (for ``runs``
#: a finished stage also supersedes the run's failed rows: ``failed_rows.superseded``).
REPLACE_KEYS: dict[str, tuple[str, ...]] = {
    "runs": ("run_id", "stage", "attempt"),
    "curves": ("run_id", "stage"),
    "evals": ("run_id", "stage", "task"),
}

#: A row's identity within a table (duplicates in one append keep the last) and the sort order.
ROW_KEYS: dict[str, tuple[str, ...]] = {
    "runs": ("run_id", "stage", "attempt"),
    "curves": ("run_id", "stage", "split", "metric", "step"),
    "evals": ("run_id", "stage", "task", "metric", "num_fewshot"),
}

#: Allowed values of categorical columns (missing is always allowed unless the column is required).
CHOICES: dict[tuple[str, str], frozenset[str]] = {
    ("runs", "role"): frozenset({"pretrain", "continual", "union", "branch", "main", "ptfs", "cpt"}),
    ("runs", "status"): frozenset({"done", "reused", "failed", "running"}),
    ("runs", "shift"): frozenset({"none", "weak", "strong"}),
    ("runs", "replay_mode"): frozenset({"seen", "fresh", "none"}),
    ("runs", "data_windows"): frozenset({"unseen"}),
}

TABLES = tuple(SCHEMAS)


def run_id(experiment: str, seed: int, config_hash: str) -> str:
    """Deterministic run identifier: ``f"{experiment}-s{seed}-{config_hash[:7]}"``."""
    return f"{experiment}-s{int(seed)}-{config_hash[:7]}"


def validate(table: str, rows: pd.DataFrame | Iterable[Mapping]) -> pd.DataFrame:
    """Return ``rows`` as a typed frame with the table's columns in schema order.

    Missing optional columns are added empty. Raises ConfigError for an unknown table and
    DataError (one line, naming table and column) for an unknown or missing required column,
    an empty required cell, a value that does not convert to the column's dtype or a value
    outside a categorical column's choices.
    """
    schema = SCHEMAS[check_table(table)]
    df = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    unknown = [c for c in df.columns if c not in schema]
    if unknown:
        raise DataError(
            f"{table}: unknown column {unknown[0]!r} (declare it in cpt_experiments.results.schema.SCHEMAS)"
        )
    for col in REQUIRED[table]:
        if col not in df.columns:
            raise DataError(f"{table}: missing required column {col!r}")
    out = pd.DataFrame(index=range(len(df)))
    for col, dtype in schema.items():
        values = df[col].reset_index(drop=True) if col in df.columns else pd.Series([pd.NA] * len(df))
        out[col] = _convert(table, col, values, dtype)
    for col in REQUIRED[table]:
        if out[col].isna().any():
            raise DataError(
                f"{table}: required column {col!r} has an empty value in row {int(out[col].isna().argmax())}"
            )
    for (tab, col), allowed in CHOICES.items():
        if tab == table:
            bad = out[col].dropna()[~out[col].dropna().isin(allowed)]
            if len(bad):
                raise DataError(f"{table}: column {col!r} has value {bad.iloc[0]!r}; expected one of {sorted(allowed)}")
    return out


def _convert(table: str, col: str, values: pd.Series, dtype: str) -> pd.Series:
    try:
        if dtype == STR:
            # Store numbers written into string columns (e.g. task_version 1.0) as their text.
            return values.map(lambda v: v if _missing(v) else str(v)).astype(STR)
        if dtype == BOOL:
            return values.map(lambda v: pd.NA if _missing(v) else _to_bool(v)).astype(BOOL)
        if dtype == INT:
            numeric = pd.to_numeric(values.map(lambda v: pd.NA if _missing(v) else v), errors="raise")
            return numeric.astype(INT)
        return pd.to_numeric(values.map(lambda v: float("nan") if _missing(v) else v), errors="raise").astype(FLOAT)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{table}: column {col!r} does not convert to {dtype}: {exc}".replace("\n", " ")) from None


def _to_bool(v: object) -> bool:
    if isinstance(v, str):
        if v.lower() in ("true", "1"):
            return True
        if v.lower() in ("false", "0"):
            return False
        raise ValueError(f"not a boolean: {v!r}")
    return bool(v)


def _missing(v: object) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and v != v) or (isinstance(v, str) and v == "")


def keys_of(df: pd.DataFrame, columns: Iterable[str]) -> pd.Series:
    """One hashable key per row (missing cells as ""), comparable across frames."""
    cols = [df[c].astype("string").fillna("") for c in columns]
    return pd.Series(list(zip(*cols)), index=df.index, dtype=object)


def check_table(table: str) -> str:
    """``table`` if it is one of ``TABLES``; a ConfigError (key ``table``) otherwise."""
    if table not in SCHEMAS:
        raise config_error("table", f"unknown results table {table!r}; expected one of {', '.join(TABLES)}")
    return table
