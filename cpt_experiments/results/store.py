"""The results store: reading and writing the three tidy CSV tables (``runs``, ``curves``, ``evals``).

This module is the only writer of results tables. Column names and dtypes live in
``results.schema.SCHEMAS`` (one place); ``results/README.md`` documents each column. ``append`` validates,
replaces the rows of a re-collected run, sorts deterministically and writes atomically under
a file lock, so collecting a run twice gives the same table byte for byte.

A table may be kept gzip-compressed (``<table>.csv.gz``, e.g. a committed ``curves`` table of many
sweeps): ``table_path`` finds either form, ``load`` reads it and ``append`` writes it back in the
form it found (a new table starts as plain CSV; ``gzip <table>.csv`` switches it over).
"""

from __future__ import annotations

import gzip
import io
import logging
import os
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd
from filelock import FileLock

from cpt_experiments.atomic import atomic_path, remove_stale_temps
from cpt_experiments.errors import DataError
from cpt_experiments.results.failed_rows import superseded
from cpt_experiments.results.schema import REPLACE_KEYS, ROW_KEYS, SCHEMAS, STR, TABLES, check_table, keys_of, validate

log = logging.getLogger(__name__)


def table_path(results_dir: str | os.PathLike, table: str) -> Path:
    """The file of ``table`` under ``results_dir``: ``<table>.csv.gz`` if that exists, else ``<table>.csv``.

    Raises DataError naming both files if a table exists in both forms (which one holds the rows?)."""
    plain = Path(results_dir) / f"{check_table(table)}.csv"
    packed = plain.with_name(plain.name + ".gz")
    if packed.exists():
        if plain.exists():
            raise DataError(f"{plain} and {packed}: table {table!r} exists twice; keep one (gunzip or delete)")
        return packed
    return plain


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
    with FileLock(str(results_dir / f"{check_table(table)}.csv.lock")):
        path = table_path(results_dir, table)
        remove_stale_temps(path.parent, prefix=f".{path.name}.")  # left by a writer killed mid-append
        if path.exists():
            old = load(results_dir, table)
            replaced = keys_of(old, REPLACE_KEYS[table]).isin(set(keys_of(new, REPLACE_KEYS[table])))
            if table == "runs":
                replaced |= superseded(path, old, new, set(supersedes))
            merged = pd.concat([old[~replaced], new], ignore_index=True)
        else:
            merged = new
        merged = _sorted(table, merged)
        with atomic_path(path) as tmp:
            _write_csv(merged, tmp, compressed=path.suffix == ".gz")
    log.info("%s: wrote %d rows (%d new) to %s", table, len(merged), len(new), path)
    return path


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
