"""The results store: three tidy CSV tables (``runs``, ``curves``, ``evals``) and their schemas.

This module is the only writer of results tables. Column names and dtypes live in
``SCHEMAS`` (one place); ``results/README.md`` documents each column. ``append`` validates,
replaces the rows of a re-collected run, sorts deterministically and writes atomically under
a file lock, so collecting a run twice gives the same table byte for byte.

A table may be kept gzip-compressed (``<table>.csv.gz``, e.g. a committed ``curves`` table of many
sweeps): ``table_path`` finds either form, ``load`` reads it and ``append`` writes it back in the
form it found (a new table starts as plain CSV; ``gzip <table>.csv`` switches it over).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import logging
import os
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd
from filelock import FileLock

from cpt_experiments.atomic import atomic_path, remove_stale_temps
from cpt_experiments.errors import DataError, config_error

log = logging.getLogger(__name__)

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
#: a finished stage also supersedes the run's failed rows: ``_superseded``).
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


def table_path(results_dir: str | os.PathLike, table: str) -> Path:
    """The file of ``table`` under ``results_dir``: ``<table>.csv.gz`` if that exists, else ``<table>.csv``.

    Raises DataError naming both files if a table exists in both forms (which one holds the rows?)."""
    plain = Path(results_dir) / f"{_check_table(table)}.csv"
    packed = plain.with_name(plain.name + ".gz")
    if packed.exists():
        if plain.exists():
            raise DataError(f"{plain} and {packed}: table {table!r} exists twice; keep one (gunzip or delete)")
        return packed
    return plain


def run_id(experiment: str, seed: int, config_hash: str) -> str:
    """Deterministic run identifier: ``f"{experiment}-s{seed}-{config_hash[:7]}"``."""
    return f"{experiment}-s{int(seed)}-{config_hash[:7]}"


def attempt_id(stage: str, reason: str) -> str:
    """A failed row's ``attempt``: 12 hex digits of sha256(stage, reason). The same failure again
    replaces its row; another reason gets its own."""
    return hashlib.sha256(f"{stage}\0{reason}".encode()).hexdigest()[:12]


def validate(table: str, rows: pd.DataFrame | Iterable[Mapping]) -> pd.DataFrame:
    """Return ``rows`` as a typed frame with the table's columns in schema order.

    Missing optional columns are added empty. Raises ConfigError for an unknown table and
    DataError (one line, naming table and column) for an unknown or missing required column,
    an empty required cell, a value that does not convert to the column's dtype or a value
    outside a categorical column's choices.
    """
    schema = SCHEMAS[_check_table(table)]
    df = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    unknown = [c for c in df.columns if c not in schema]
    if unknown:
        raise DataError(f"{table}: unknown column {unknown[0]!r} (declare it in cpt_experiments.results.store.SCHEMAS)")
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


def append(
    results_dir: str | os.PathLike,
    table: str,
    rows: pd.DataFrame | Iterable[Mapping],
    supersedes: Iterable[str] = (),
) -> Path:
    """Validate ``rows`` and merge them into ``<results_dir>/<table>.csv``; return the file path.

    Idempotent: existing rows whose ``REPLACE_KEYS[table]`` values appear in ``rows`` are
    dropped first, so re-collecting a run (or a stage, or an eval task) replaces it. In ``runs``
    a finished (done/reused) row also supersedes every failed row of its run and stage, the run's
    failures before any stage (stage ``*``) and those of the run ids in ``supersedes``; failed rows
    replace only the same failure (``attempt``). A finished row never replaces one with another
    ``stage_hash``: that is another run's result under the same id, a DataError naming both. The
    result is sorted by ``ROW_KEYS[table]`` and written atomically (temp file + rename) while
    holding ``<table>.csv.lock``, so concurrent appenders never lose each other's rows.
    """
    new = validate(table, rows)
    new = new.drop_duplicates(subset=list(ROW_KEYS[table]), keep="last")
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    # One lock per table whatever its form, taken before the form is looked up.
    with FileLock(str(results_dir / f"{_check_table(table)}.csv.lock")):
        path = table_path(results_dir, table)
        remove_stale_temps(path.parent, prefix=f".{path.name}.")  # left by a writer killed mid-append
        if path.exists():
            old = load(results_dir, table)
            replaced = _keys(old, REPLACE_KEYS[table]).isin(set(_keys(new, REPLACE_KEYS[table])))
            if table == "runs":
                replaced |= _superseded(path, old, new, set(supersedes))
            merged = pd.concat([old[~replaced], new], ignore_index=True)
        else:
            merged = new
        merged = _sorted(table, merged)
        with atomic_path(path) as tmp:
            _write_csv(merged, tmp, compressed=path.suffix == ".gz")
    log.info("%s: wrote %d rows (%d new) to %s", table, len(merged), len(new), path)
    return path


def _keys(df: pd.DataFrame, columns: Iterable[str]) -> pd.Series:
    """One hashable key per row (missing cells as ""), comparable across frames."""
    cols = [df[c].astype("string").fillna("") for c in columns]
    return pd.Series(list(zip(*cols)), index=df.index, dtype=object)


def _superseded(path: Path, old: pd.DataFrame, new: pd.DataFrame, supersedes: set[str]) -> pd.Series:
    """``runs`` rows of ``old`` that finished rows of ``new`` supersede; refuses to replace another run's rows."""
    finished = new[new["status"] != "failed"]
    stage_of = _keys(old, ("run_id", "stage"))
    pairs = set(_keys(finished, ("run_id", "stage")))
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


def _sorted(table: str, df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(list(ROW_KEYS[table]), kind="mergesort", na_position="first").reset_index(drop=True)


def _write_csv(df: pd.DataFrame, path: Path, compressed: bool = False) -> None:
    # repr-exact floats (%.17g would add noise digits); read back with float_precision="round_trip".
    if compressed:  # gzip.compress writes no file name and mtime 0: the bytes depend on the rows alone
        path.write_bytes(gzip.compress(df.to_csv(index=False, lineterminator="\n").encode(), mtime=0))
    else:
        df.to_csv(path, index=False, lineterminator="\n")
    # mkstemp creates 0600 files; results are shared tables, so use the ordinary umask mode.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def load(results_dir: str | os.PathLike, table: str) -> pd.DataFrame:
    """Read ``<results_dir>/<table>.csv`` (or ``.csv.gz``) as a typed frame (schema dtypes, empty cell = missing).

    Raises DataError naming the path if the file is absent, cut mid-write or does not match the schema.
    """
    path = table_path(results_dir, table)
    if not path.is_file():
        raise DataError(f"{path}: results table {table!r} not found (collect a run first)")
    schema = SCHEMAS[table]
    try:
        with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as fh:
            text = fh.read()  # a cut gzip stream raises here (EOFError), before any row is parsed
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise DataError(f"{path}: unreadable gzip ({exc}); the file was cut or is not gzip — restore it") from None
    if text and not text.endswith(b"\n"):  # every write ends with a newline: one that does not was cut mid-row
        raise DataError(f"{path}: the last row is incomplete (the file was cut mid-write); restore it or recollect")
    try:
        raw = pd.read_csv(
            io.BytesIO(text),
            dtype={c: ("string" if t == STR else "object") for c, t in schema.items()},
            keep_default_na=False,
            na_values=[""],
            float_precision="round_trip",
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: unreadable CSV: {exc}".replace("\n", " ")) from None
    try:
        return validate(table, raw)
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from None


def check_tables(results_dir: str | os.PathLike) -> None:
    """Every table present in ``results_dir`` loads (before a run works toward appending to it); DataError
    naming the file otherwise."""
    for table in TABLES:
        if table_path(results_dir, table).is_file():
            load(results_dir, table)


def _check_table(table: str) -> str:
    if table not in SCHEMAS:
        raise config_error("table", f"unknown results table {table!r}; expected one of {', '.join(TABLES)}")
    return table
