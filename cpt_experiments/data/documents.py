"""Reading a corpus: its file (or Hub dataset) as ``(doc_key, text)`` documents, and the identity of its source.

:func:`iter_documents` yields the first ``max_documents`` non-empty documents in source order through the one
loader (:func:`load_records` -> :func:`cpt_experiments.data.loader.open_dataset`); every failure is a DataError
naming the file. A local ``x.jsonl`` that is missing is read from ``x.jsonl.gz`` if that exists (the embedded
sample). :func:`source_fingerprint` (file bytes, or the Hub coordinates) keys the tokenizer and token caches.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from cpt_experiments.data.corpus import FORMATS, CorpusSpec
from cpt_experiments.data.loader import one_line, open_dataset
from cpt_experiments.errors import DataError, config_error
from cpt_experiments.hashing import content_hash, sha256_file

DATA_FIX = (
    "point CPT_DATA_DIR=DIR or paths.data_dir=DIR at the folder that holds it, or fetch the hub stand-ins "
    "with `python -m cpt_experiments.data.fetch --data-dir DIR` and train with corpora=fetched paths.data_dir=DIR"
)
"""How to get corpus files; quoted by every 'not found' error."""


def resolve_path(spec: CorpusSpec, data_dir: str | os.PathLike | None) -> Path:
    """Absolute path of a local corpus file: ``spec.path`` if absolute, else relative to the corpus's own
    ``data_dir`` if set, else to the run's ``data_dir`` (``paths.data_dir``)."""
    if spec.source != "local" or spec.path is None:
        raise config_error(f"corpus {spec.name}.path", "only local corpora have a file path")
    path = Path(spec.path).expanduser()
    data_dir = spec.data_dir or data_dir
    if not path.is_absolute():
        if data_dir is None:
            raise config_error("paths.data_dir", f"needed to resolve relative corpus path {spec.path!r}")
        path = Path(data_dir).expanduser() / path
    # A gzip-compressed copy stands in for a missing plain file (the embedded sample ships `A_en_wikipedia.jsonl.gz`
    # for the configs' `A_en_wikipedia.jsonl`); `datasets` decompresses by extension, streaming included.
    gz = path.with_name(path.name + ".gz")
    if not path.exists() and path.suffix != ".gz" and gz.is_file():
        return gz
    if path.is_dir():  # datasets/open() would raise IsADirectoryError deep inside
        raise DataError(f"{path}: is a directory, not a corpus file (corpus {spec.name!r}: set its path to a file)")
    return path


def missing_file_error(path: Path, what: str) -> DataError:
    """The one-line error for a data file that is not there, naming the file and the fix."""
    return DataError(f"{path}: {what} not found; {DATA_FIX}")


def load_records(spec: CorpusSpec, data_dir: str | os.PathLike | None) -> Iterable[Mapping[str, Any]]:
    """Open the corpus as an iterable of records through ``datasets.load_dataset`` (lazy where streaming)."""
    if spec.source == "local":
        path = resolve_path(spec, data_dir)
        if not path.is_file():
            raise missing_file_error(path, f"corpus file of {spec.name!r}")
        # Streaming reads the file directly; no Arrow copy of the corpus lands in the datasets cache.
        return open_dataset(FORMATS[spec.format], data_files=str(path), split="train", streaming=True)
    hub = spec.hub
    assert hub is not None
    return open_dataset(hub.path, hub.name, split=hub.split, streaming=hub.streaming, revision=hub.revision)


def _source_label(spec: CorpusSpec, data_dir: str | os.PathLike | None) -> str:
    """What error messages name the corpus by: its resolved file, or ``hub:<path>[/<name>]``."""
    if spec.source == "local":
        return str(resolve_path(spec, data_dir))
    assert spec.hub is not None
    return f"hub:{spec.hub.path}" + (f"/{spec.hub.name}" if spec.hub.name else "")


def iter_documents(spec: CorpusSpec, data_dir: str | os.PathLike | None) -> Iterator[tuple[str, str]]:
    """Yield ``(doc_key, text)`` in source order: the first ``max_documents`` non-empty documents.

    ``doc_key`` is the ``id_field`` value as a string, or the text itself when there is no id field.
    Raises DataError naming the file for a missing file or field, undecodable bytes, or no usable text.
    """
    label = _source_label(spec, data_dir)
    if spec.max_documents == 0:
        raise DataError(f"{label}: max_documents is 0, corpus {spec.name!r} would be empty")
    seen = 0
    try:
        for number, record in enumerate(load_records(spec, data_dir), start=1):
            # The json builder unifies schemas across records, so a field missing from one record reads as None.
            text = record.get(spec.text_field)
            if text is None:
                raise DataError(f"{label}: record {number} has no text field {spec.text_field!r}")
            if not isinstance(text, str):
                raise DataError(f"{label}: field {spec.text_field!r} holds {type(text).__name__}, not text")
            if not text.strip():
                continue
            if spec.id_field is None:
                doc_key = text
            elif record.get(spec.id_field) is None:
                raise DataError(f"{label}: record {number} has no id field {spec.id_field!r}")
            else:
                doc_key = str(record[spec.id_field])
            yield doc_key, text
            seen += 1
            if spec.max_documents is not None and seen >= spec.max_documents:
                break
    except DataError:
        raise
    except Exception as exc:  # datasets/pyarrow wrap decode errors in several types; keep the file name
        surrogate = _lone_surrogate(Path(label)) if spec.source == "local" else None
        raise (DataError(f"{label}: {surrogate}") if surrogate else _as_data_error(exc, label)) from exc
    if seen == 0:
        raise DataError(f"{label}: corpus {spec.name!r} has no documents with text")


_SURROGATE = re.compile(
    rb"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})|(?<![0-9a-fA-F]{4})\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)


def _lone_surrogate(path: Path) -> str | None:
    """Where a JSONL file holds a lone UTF-16 surrogate escape (``\\ud800`` without its pair): not text, and
    pyarrow's JSON reader reports it as "Trailing data at position ...". Only run after a read failed."""
    try:
        if path.suffix != ".jsonl" or path.stat().st_size > 1 << 30:
            return None
        with open(path, "rb") as fh:
            for number, line in enumerate(fh, start=1):
                if m := _SURROGATE.search(line):
                    return (
                        f"line {number}: lone surrogate escape {m.group().decode()} (half of a UTF-16 pair, not text)"
                    )
    except OSError:
        return None
    return None


def _as_data_error(exc: BaseException, label: str) -> DataError:
    """A one-line DataError for whatever ``datasets``/pyarrow raised, judged by the whole exception chain."""
    chain: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and e not in chain:
        chain.append(e)
        e = e.__cause__ or e.__context__
    if any(isinstance(c, UnicodeDecodeError) for c in chain) or "utf-8" in str(exc).lower():
        return DataError(f"{label}: not valid UTF-8 text ({one_line(chain[-1])})")
    if isinstance(exc, StopIteration) or any(isinstance(c, StopIteration) for c in chain):
        return DataError(f"{label}: empty file, no documents")  # the json builder raises this on 0 bytes
    if isinstance(exc, FileNotFoundError):
        return DataError(f"{label}: not found ({one_line(exc)})")
    return DataError(f"{label}: cannot read corpus: {type(chain[-1]).__name__}: {one_line(chain[-1])}")


_FILE_DIGESTS: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256: hash each file once


def source_fingerprint(spec: CorpusSpec, data_dir: str | os.PathLike | None) -> str:
    """Identity of the source data: sha256 of the local file bytes, or of (path, name, split, revision) on the hub.

    Local digests are memoised per (path, size, mtime) for the life of the process (a 25 MB file takes ~0.05 s).
    """
    if spec.source == "hub":
        assert spec.hub is not None
        ident = {"path": spec.hub.path, "name": spec.hub.name, "split": spec.hub.split, "revision": spec.hub.revision}
        # compact=False: the layout this fingerprint was first recorded with; it feeds every token-cache key and
        # so every stage hash of a hub corpus.
        return content_hash(ident, compact=False)
    path = resolve_path(spec, data_dir).resolve()
    try:
        st = path.stat()
    except FileNotFoundError:
        raise missing_file_error(path, f"corpus file of {spec.name!r}") from None
    memo_key = (str(path), st.st_size, st.st_mtime_ns)
    if memo_key not in _FILE_DIGESTS:
        try:
            _FILE_DIGESTS[memo_key] = sha256_file(path)
        except OSError as exc:
            raise DataError(f"{path}: unreadable corpus file of {spec.name!r} ({exc.strerror or exc})") from None
    return _FILE_DIGESTS[memo_key]
