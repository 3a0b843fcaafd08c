"""Fetching files into a data folder: sources, per-corpus caps, atomic writes and the fetch manifest.

Every source is read through the one loader (:func:`cpt_experiments.data.loader.open_dataset`), after one fast
reachability check (:func:`check_reachable`). Each file is written atomically (a killed fetch leaves only a
``.*.tmp-*`` file) and recorded in ``<data dir>/fetch_manifest.json`` (source, resolved revision, caps, rows, bytes,
sha256); a rerun skips a file whose entry matches its request and its bytes. A mirror (:meth:`Source.mirrored`)
reads every source from local copies laid out as ``DIR/<hub id>`` and ``DIR/<host>/<url path>``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from cpt_experiments.atomic import atomic_path, atomic_write_text
from cpt_experiments.data.loader import hub_revision, is_hub_id, open_dataset
from cpt_experiments.errors import CPTError, DataError
from cpt_experiments.hashing import HashingWriter, sha256_file

log = logging.getLogger("cpt_experiments.data.fetch")  # its lines keep the name of the command that prints them

MANIFEST = "fetch_manifest.json"
DEFAULT_MAX_WORDS = 4_000_000  # per corpus: ~5M tokens of a 4096-token BPE, above scale=cpu's 3.1M-token stage
URL_TIMEOUT_S = 10.0

Row = Callable[[int, Mapping[str, Any]], "dict[str, Any] | None"]  # (index, record) -> JSON row or None (skip)


@dataclasses.dataclass(frozen=True)
class Source:
    """A dataset for ``datasets.load_dataset``: a Hub id (``path``, ``name``, ``split``, ``revision``) or a
    builder (``json``/``csv``) reading ``url``."""

    path: str
    name: str | None = None
    split: str = "train"
    revision: str | None = None
    url: str | None = None

    def label(self) -> str:
        """How messages and the manifest name the source: its URL, or ``hub:<path>[/<name>] [<split>]``."""
        if self.url:
            return self.url
        return f"hub:{self.path}" + (f"/{self.name}" if self.name else "") + f" [{self.split}]"

    def mirrored(self, mirror: Path) -> Source:
        """The same source read from a local copy under ``mirror`` (``<hub id>/`` or ``<host>/<url path>``)."""
        if self.url:
            u = urlparse(self.url)
            local = mirror / u.netloc / u.path.lstrip("/")
            return dataclasses.replace(self, url=str(local))
        return dataclasses.replace(self, path=str(mirror / self.path), revision=None)


@dataclasses.dataclass(frozen=True)
class Item:
    """One output file: where it goes (relative to the data dir), where it comes from, how a record becomes a row."""

    file: str
    source: Source
    row: Row
    corpus: bool = False  # corpora are capped by --max-documents / --max-words; benchmarks are fetched whole


@dataclasses.dataclass(frozen=True)
class Caps:
    """Per-corpus caps: the first documents in stream order until either is reached (None = no cap)."""

    max_documents: int | None = None
    max_words: int | None = DEFAULT_MAX_WORDS  # whitespace-separated words, as counted in the data README


def _request(item: Item, caps: Caps) -> dict[str, Any]:
    """What a manifest entry must match for the file to be reused: the source and, for corpora, the caps."""
    return {"source": dataclasses.asdict(item.source), "caps": dataclasses.asdict(caps) if item.corpus else None}


def load_manifest(data_dir: Path) -> dict[str, Any]:
    """``fetch_manifest.json`` of ``data_dir`` (empty if absent); DataError naming the file if unreadable."""
    path = data_dir / MANIFEST
    if not path.exists():
        return {"version": 1, "files": {}}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        manifest = None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise DataError(f"{path}: not a fetch manifest; delete it to fetch every file again")
    return manifest


def up_to_date(data_dir: Path, item: Item, caps: Caps, manifest: Mapping[str, Any]) -> bool:
    """True if the file exists with the bytes its manifest entry records, for the same request."""
    entry = manifest["files"].get(item.file)
    path = data_dir / item.file
    if not entry or entry.get("request") != _request(item, caps) or not path.is_file():
        return False
    return path.stat().st_size == entry.get("bytes") and sha256_file(path) == entry.get("sha256")


def check_reachable(source: Source) -> str | None:
    """Fail in seconds, with the fix, when a remote source cannot be reached; the Hub revision if it is a Hub id."""
    import datasets

    remote = bool(source.url and urlparse(source.url).scheme in ("http", "https")) or is_hub_id(source.path)
    if not remote:
        return None
    if datasets.config.HF_HUB_OFFLINE:
        raise DataError(
            f"{source.label()}: fetching needs the network, but HF_HUB_OFFLINE or HF_DATASETS_OFFLINE is set; "
            "run `env -u HF_HUB_OFFLINE -u HF_DATASETS_OFFLINE python -m cpt_experiments.data.fetch ...` where "
            "the Hub is reachable, or read local copies with --mirror DIR"
        )
    if not source.url:
        return hub_revision(source.path, source.revision)
    try:  # one request, no retries: `datasets` would retry and then report a missing file
        urllib.request.urlopen(urllib.request.Request(source.url, method="HEAD"), timeout=URL_TIMEOUT_S).close()
    except Exception as exc:
        host = urlparse(source.url).netloc
        raise DataError(
            f"{source.url}: cannot reach {host} ({' '.join(str(exc).split())[:200]}); fetch where it is reachable "
            "and copy the data folder, or read local copies with --mirror DIR"
        ) from None
    return None


def fetch_item(item: Item, data_dir: Path, caps: Caps, mirror: Path | None, progress: bool) -> dict[str, Any]:
    """Write one file atomically and return its manifest entry."""
    from tqdm.auto import tqdm

    source = item.source.mirrored(mirror) if mirror else item.source
    revision = check_reachable(source)
    records = open_dataset(
        source.path, source.name, split=source.split, streaming=True, revision=source.revision, data_files=source.url
    )
    caps = caps if item.corpus else Caps(None, None)  # benchmarks are fetched whole
    unit, total = ("word", caps.max_words) if caps.max_words else ("row", caps.max_documents)
    rows = words = 0
    with (
        atomic_path(data_dir / item.file) as tmp,
        open(tmp, "wb") as fh,
        # disable=None: a bar on a terminal only; a log file (non-TTY) gets none
        tqdm(
            total=total, unit=unit, unit_scale=True, desc=item.file, disable=None if progress else True, leave=False
        ) as bar,
    ):
        out = HashingWriter(fh)  # the manifest's sha256, without reading the file back
        try:
            for index, record in enumerate(records):
                row = item.row(index, record)
                if row is None:
                    continue
                line = (json.dumps(row, ensure_ascii=False, default=str) + "\n").encode("utf-8")
                out.write(line)
                rows += 1
                n_words = len(row["text"].split()) if item.corpus else 0
                words += n_words
                bar.update(n_words if unit == "word" else 1)
                if (caps.max_documents and rows >= caps.max_documents) or (caps.max_words and words >= caps.max_words):
                    break  # the document that reaches the word cap is kept whole
        except CPTError:
            raise
        except Exception as exc:  # a network error mid-stream, a record without the expected fields
            why = " ".join(str(exc).split())[:300]
            raise DataError(f"{item.source.label()}: fetch of {item.file} failed: {type(exc).__name__}: {why}") from exc
        if rows == 0:
            raise DataError(f"{item.source.label()}: no rows for {item.file}")
        fh.flush()
        size = fh.tell()
    entry = {
        "request": _request(item, caps),
        "source": item.source.label(),
        "revision": revision or item.source.revision,
        "read_from": source.label() if mirror else None,
        "rows": rows,
        "bytes": size,
        "sha256": out.hexdigest(),
        "fetched_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if item.corpus:
        entry["words"] = words
    return entry


def fetch(
    data_dir: Path,
    items: list[Item],
    caps: Caps = Caps(),
    mirror: Path | None = None,
    progress: bool = True,
    force: bool = False,
) -> dict[str, str]:
    """Fetch every item not already up to date; returns file -> ``fetched`` | ``up to date``.

    The manifest is rewritten (atomically) after each file, so an interrupted fetch keeps what it finished.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    manifest = load_manifest(data_dir)
    status = {}
    for item in items:
        if not force and up_to_date(data_dir, item, caps, manifest):
            status[item.file] = "up to date"
            continue
        log.info("fetching %s from %s", item.file, item.source.label())
        entry = manifest["files"][item.file] = fetch_item(item, data_dir, caps, mirror, progress)
        atomic_write_text(data_dir / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        status[item.file] = "fetched"
        log.info("%s: %d rows, %d bytes", item.file, entry["rows"], entry["bytes"])
    return status
