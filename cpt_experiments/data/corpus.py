"""Corpora as configs: where the text is, how much of it to use, and the document-level train/validation split.

A corpus is a :class:`CorpusSpec` built from a Hydra group ``conf/corpus/*.yaml``. Local files and Hugging Face
Hub datasets go through one loader (:func:`load_records` -> :func:`open_dataset`, i.e. ``datasets.load_dataset``),
so a local JSONL file and a streamed hub dataset behave the same downstream; ``python -m cpt_experiments.data.fetch``
uses the same loader. A local ``x.jsonl`` that is missing is read from ``x.jsonl.gz`` if that exists (the embedded
sample). A Hub id is checked with one request first (:func:`hub_revision`), so no network fails in seconds with
the fix instead of after ``datasets``' five retries.

The split is by document: ``sha256(split_salt + doc_key)`` mapped to [0, 1) below ``validation_fraction`` means
validation. It depends on nothing but the salt and the document's key, so no validation document can reach
training whatever the caps, order or number of documents.

Version slices (paper 2, §3: N versions of one data distribution): ``slice_index``/``slice_count`` (and optionally
``slice_fractions``) restrict the *train* split to one of ``slice_count`` disjoint buckets. The bucket comes from the
same hash: a train document has ``u >= validation_fraction``; ``(u - validation_fraction) / (1 - validation_fraction)``
is uniform in [0, 1) and falls in exactly one interval of the cumulative fractions, so the slices are disjoint and
cover the train split by construction, need no counting pass, and do not move when caps change. Each slice is its own
corpus role (``v1..vN``) with its own train token cache (``max_tokens`` cuts it to the version's exact size); the
validation split ignores the slice fields, so every slice shares one validation set (and one cache folder).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from cpt_experiments.config import plain_dict
from cpt_experiments.errors import DataError, config_error
from cpt_experiments.files import sha256_file

log = logging.getLogger(__name__)

SOURCES = ("local", "hub")
FORMATS = {"jsonl": "json", "text": "text", "parquet": "parquet"}  # our name -> datasets builder name
SPLITS = ("train", "validation")
TRAIN_ONLY_FIELDS = ("slice_index", "slice_count", "slice_fractions")


@dataclasses.dataclass(frozen=True)
class HubSource:
    """A dataset on the Hugging Face Hub (or any path ``datasets.load_dataset`` accepts as a repository)."""

    path: str
    """Dataset id, e.g. ``monology/pile-uncopyrighted``, or a local folder laid out like a hub repo."""
    name: str | None = None
    """Dataset config name, e.g. ``deu_Latn`` for FineWeb-2; None for the default config."""
    split: str = "train"
    """The hub split to read; our own train/validation split is made from it by document hash."""
    streaming: bool = True
    """Stream records instead of downloading and converting the whole split to Arrow first."""
    revision: str | None = None
    """Git revision of the dataset repo; pin it, otherwise the cache key cannot see upstream changes."""


@dataclasses.dataclass(frozen=True)
class CorpusSpec:
    """One corpus: its source, the fields to read, caps, and the document-level validation split."""

    name: str
    """Short identifier; names cache directories, e.g. ``wiki_en``."""
    source: str
    """``local`` (a file under the data dir) or ``hub`` (``datasets.load_dataset`` on a dataset id)."""
    lang: str | None = None
    """Language code (informational), e.g. ``en``, ``de``."""
    path: str | None = None
    """Local source: file path, absolute or relative to ``data_dir`` (else to ``paths.data_dir``)."""
    data_dir: str | None = None
    """Local source: this corpus's own folder, instead of ``paths.data_dir`` (a location, not content: not hashed)."""
    format: str = "jsonl"
    """Local source: ``jsonl`` | ``text`` (one document per line) | ``parquet``."""
    hub: HubSource | None = None
    """Hub source settings."""
    text_field: str = "text"
    """Record field holding the document text."""
    id_field: str | None = None
    """Record field holding a stable document id; None means the text itself identifies the document."""
    max_documents: int | None = None
    """Use only the first N non-empty documents in source order (before splitting); None = all."""
    max_tokens: int | None = None
    """Cap on train-split tokens (the token cache cuts exactly at this count); None = all."""
    max_validation_tokens: int | None = 200_000
    """Cap on validation-split tokens; None = all."""
    validation_fraction: float = 0.05
    """Expected fraction of documents in the validation split, in [0, 1)."""
    split_salt: str = "cpt-split-v1"
    """Salt of the split hash; changing it draws a different validation set."""
    slice_index: int | None = None
    """Version slice: train only on bucket ``slice_index`` (1-based) of ``slice_count``; None = the whole train split."""
    slice_count: int | None = None
    """Number of disjoint train buckets the corpus is cut into (set together with ``slice_index``)."""
    slice_fractions: tuple[float, ...] | None = None
    """Relative bucket sizes (documents, in expectation), one per slice; None = equal buckets."""

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | Any, key: str = "corpus") -> CorpusSpec:
        """Build and validate a spec from a dict or OmegaConf node; errors name ``<key>.<field>``."""
        data = plain_dict(cfg, key)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise config_error(f"{key}.{unknown[0]}", f"unknown corpus key (known: {', '.join(sorted(known))})")
        if "name" not in data or not data["name"]:
            raise config_error(f"{key}.name", "missing corpus name")
        if "source" not in data:
            raise config_error(f"{key}.source", f"missing; one of {', '.join(SOURCES)}")
        hub = data.get("hub")
        if hub is not None:
            if not isinstance(hub, Mapping):
                raise config_error(f"{key}.hub", "must be a mapping with path, name, split, streaming, revision")
            hub_known = {f.name for f in dataclasses.fields(HubSource)}
            bad = sorted(set(hub) - hub_known)
            if bad:
                raise config_error(f"{key}.hub.{bad[0]}", f"unknown hub key (known: {', '.join(sorted(hub_known))})")
            if not hub.get("path"):
                raise config_error(f"{key}.hub.path", "missing dataset id")
            data["hub"] = HubSource(**hub)
        fracs = data.get("slice_fractions")
        if fracs is not None:
            if isinstance(fracs, (str, bytes)) or not isinstance(fracs, Iterable):
                raise config_error(f"{key}.slice_fractions", f"must be a list of positive numbers, got {fracs!r}")
            data["slice_fractions"] = tuple(fracs)
        spec = cls(**data)
        spec.validate(key)
        return spec

    def validate(self, key: str = "corpus") -> None:
        """Raise a ConfigError naming the first invalid field."""
        if self.source not in SOURCES:
            raise config_error(f"{key}.source", f"unknown source {self.source!r}; one of {', '.join(SOURCES)}")
        if self.source == "local":
            if not self.path:
                raise config_error(f"{key}.path", "a local corpus needs a file path")
            if self.format not in FORMATS:
                raise config_error(f"{key}.format", f"unknown format {self.format!r}; one of {', '.join(FORMATS)}")
        elif self.hub is None:
            raise config_error(f"{key}.hub", "a hub corpus needs hub.path (dataset id)")
        for cap in ("max_documents", "max_tokens", "max_validation_tokens"):
            value = getattr(self, cap)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise config_error(f"{key}.{cap}", f"must be a non-negative integer or null, got {value!r}")
        frac = self.validation_fraction
        if isinstance(frac, bool) or not isinstance(frac, (int, float)) or not 0.0 <= frac < 1.0:
            raise config_error(f"{key}.validation_fraction", f"must be in [0, 1), got {frac!r}")
        if not self.text_field:
            raise config_error(f"{key}.text_field", "must be a non-empty field name")
        self._validate_slice(key)

    def _validate_slice(self, key: str) -> None:
        index, count, fracs = self.slice_index, self.slice_count, self.slice_fractions
        if index is None and count is None:
            if fracs is not None:
                raise config_error(f"{key}.slice_fractions", "set only together with slice_index and slice_count")
            return
        for name, value in (("slice_count", count), ("slice_index", index)):
            if value is None or isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise config_error(f"{key}.{name}", f"must be a positive integer when slicing, got {value!r}")
        assert index is not None and count is not None
        if index > count:
            raise config_error(f"{key}.slice_index", f"{index} is beyond slice_count={count}")
        if fracs is not None:
            if len(fracs) != count:
                raise config_error(f"{key}.slice_fractions", f"has {len(fracs)} entries, slice_count is {count}")
            if not all(isinstance(f, (int, float)) and not isinstance(f, bool) and f > 0 for f in fracs):
                raise config_error(f"{key}.slice_fractions", f"must be positive numbers, got {list(fracs)}")

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (JSON-serialisable); the input of :meth:`spec_hash`."""
        return dataclasses.asdict(self)

    def spec_hash(self, exclude: Iterable[str] = ()) -> str:
        """sha256 (hex) of the canonical JSON of the spec without the ``exclude`` fields.

        The slice fields shape only the train split, so they travel with the train cap: excluding
        ``max_tokens`` (what the validation cache key does) excludes them too, and every slice of a
        corpus hashes to the same validation cache.
        """
        drop = {*exclude, "data_dir"}  # where the file lies is no content (the token cache hashes the bytes)
        if "max_tokens" in drop:
            drop |= set(TRAIN_ONLY_FIELDS)
        d = {k: v for k, v in self.to_dict().items() if k not in drop}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()


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


DATA_FIX = (
    "point CPT_DATA_DIR=DIR or paths.data_dir=DIR at the folder that holds it, or fetch the hub stand-ins "
    "with `python -m cpt_experiments.data.fetch --data-dir DIR` and train with corpora=fetched paths.data_dir=DIR"
)
"""How to get corpus files; quoted by every 'not found' error."""
HUB_FIX = (
    "without network, fetch the data where the Hub is reachable (`python -m cpt_experiments.data.fetch "
    "--data-dir DIR`), copy DIR here and train with corpora=fetched paths.data_dir=DIR"
)
"""How to train without reaching the Hub; quoted by every Hub error."""
HUB_TIMEOUT_S = 10.0
"""Seconds to wait for the one reachability request before a Hub dataset is opened."""
_HUB_REVISIONS: dict[tuple[str, str | None], str] = {}


def missing_file_error(path: Path, what: str) -> DataError:
    """The one-line error for a data file that is not there, naming the file and the fix."""
    return DataError(f"{path}: {what} not found; {DATA_FIX}")


def is_hub_id(path: str) -> bool:
    """True if ``datasets.load_dataset(path)`` would go to the Hub: not a local folder/file, not a builder name."""
    from datasets.packaged_modules import _PACKAGED_DATASETS_MODULES

    return path not in _PACKAGED_DATASETS_MODULES and not Path(path).expanduser().exists()


def hub_revision(path: str, revision: str | None = None) -> str | None:
    """The commit a Hub dataset resolves to, asked once per process with one request and no retries.

    Why: ``datasets`` retries an unreachable Hub five times with back-off (~25 s) and then reports a
    misleading file error; this check fails in seconds with the fix instead. Returns None for a local folder,
    a builder name (``json``) or when ``HF_HUB_OFFLINE``/``HF_DATASETS_OFFLINE`` is set (``datasets`` may then
    still serve a non-streamed dataset from its cache, and itself fails fast if it cannot).
    Raises DataError when the Hub is unreachable or does not have the dataset or revision.
    """
    import datasets

    if not is_hub_id(path) or datasets.config.HF_HUB_OFFLINE:
        return None
    if (path, revision) in _HUB_REVISIONS:
        return _HUB_REVISIONS[path, revision]
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

    label = f"hub:{path}" + (f"@{revision}" if revision else "")
    try:
        sha = HfApi().dataset_info(path, revision=revision, timeout=HUB_TIMEOUT_S).sha
    except (RepositoryNotFoundError, RevisionNotFoundError) as exc:
        raise DataError(
            f"{label}: no such dataset or revision on the Hub, or it is gated/private "
            f"(check hub.path and hub.revision; for a gated dataset run `hf auth login`): {_one_line(exc)}"
        ) from None
    except HfHubHTTPError as exc:
        raise DataError(f"{label}: the Hub refused the request ({_one_line(exc)}); {HUB_FIX}") from None
    except Exception as exc:  # DNS, refused connection, timeout, proxy: whatever the HTTP client raises
        raise DataError(f"{label}: cannot reach the Hugging Face Hub ({_one_line(exc)}); {HUB_FIX}") from None
    _HUB_REVISIONS[path, revision] = sha or ""
    return sha


def open_dataset(
    path: str,
    name: str | None = None,
    *,
    split: str,
    streaming: bool = True,
    revision: str | None = None,
    data_files: str | list[str] | None = None,
) -> Any:
    """``datasets.load_dataset`` for corpora and fetched files: a local builder (``json`` + ``data_files``), a
    local folder laid out like a Hub repository, or a Hub id (checked first with :func:`hub_revision`)."""
    import datasets

    hub_revision(path, revision)
    kwargs: dict[str, Any] = {"split": split, "streaming": streaming}
    if revision is not None:
        kwargs["revision"] = revision
    if data_files is not None:
        kwargs["data_files"] = data_files
    try:
        return datasets.load_dataset(path, name, **kwargs)
    except ConnectionError as exc:  # offline mode (no request was made) or the Hub went away after the check
        label = f"hub:{path}" + (f"/{name}" if name else "")
        if datasets.config.HF_HUB_OFFLINE:
            raise DataError(
                f"{label}: HF_HUB_OFFLINE or HF_DATASETS_OFFLINE is set and the dataset is not in the local cache; "
                f"unset them where the Hub is reachable, or {HUB_FIX}"
            ) from None
        raise DataError(f"{label}: {_one_line(exc)}; {HUB_FIX}") from None


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
    chain: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and e not in chain:
        chain.append(e)
        e = e.__cause__ or e.__context__
    if any(isinstance(c, UnicodeDecodeError) for c in chain) or "utf-8" in str(exc).lower():
        return DataError(f"{label}: not valid UTF-8 text ({_one_line(chain[-1])})")
    if isinstance(exc, StopIteration) or any(isinstance(c, StopIteration) for c in chain):
        return DataError(f"{label}: empty file, no documents")  # the json builder raises this on 0 bytes
    if isinstance(exc, FileNotFoundError):
        return DataError(f"{label}: not found ({_one_line(exc)})")
    return DataError(f"{label}: cannot read corpus: {type(chain[-1]).__name__}: {_one_line(chain[-1])}")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]


def _split_u(doc_key: str, spec: CorpusSpec) -> float:
    digest = hashlib.sha256((spec.split_salt + doc_key).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def document_split(doc_key: str, spec: CorpusSpec) -> str:
    """``"validation"`` if ``sha256(split_salt + doc_key)`` as a number in [0, 1) is below the fraction."""
    return "validation" if _split_u(doc_key, spec) < spec.validation_fraction else "train"


def document_slice(doc_key: str, spec: CorpusSpec) -> int | None:
    """The 1-based version slice of a train document (None for a validation document or an unsliced spec).

    With ``v = validation_fraction`` and ``s = (u - v) / (1 - v)`` uniform in [0, 1) over train documents, the slice
    is the k with ``c_{k-1} <= s < c_k``, ``c`` the cumulative normalised ``slice_fractions`` (equal by default).
    """
    if spec.slice_count is None:
        return None
    u, v = _split_u(doc_key, spec), spec.validation_fraction
    if u < v:
        return None
    s = (u - v) / (1.0 - v)
    fracs = spec.slice_fractions or (1.0,) * spec.slice_count
    total, cum = float(sum(fracs)), 0.0
    for k, f in enumerate(fracs, start=1):
        cum += f
        if s < cum / total:
            return k
    return spec.slice_count  # s rounds to the last edge (float error only)


def split_documents(spec: CorpusSpec, data_dir: str | os.PathLike | None, split: str) -> Iterator[tuple[str, str]]:
    """Yield the ``(doc_key, text)`` pairs of one split (``train`` or ``validation``) in source order.

    For a sliced spec the train split holds only the documents of slice ``slice_index``; validation is shared.
    """
    if split not in SPLITS:
        raise config_error("split", f"unknown split {split!r}; one of {', '.join(SPLITS)}")
    sliced = split == "train" and spec.slice_index is not None
    for doc_key, text in iter_documents(spec, data_dir):
        if document_split(doc_key, spec) == split and (not sliced or document_slice(doc_key, spec) == spec.slice_index):
            yield doc_key, text


_FILE_DIGESTS: dict[tuple[str, int, int], str] = {}


def source_fingerprint(spec: CorpusSpec, data_dir: str | os.PathLike | None) -> str:
    """Identity of the source data: sha256 of the local file bytes, or of (path, name, split, revision) on the hub.

    Local digests are memoised per (path, size, mtime) for the life of the process (a 25 MB file takes ~0.05 s).
    """
    if spec.source == "hub":
        assert spec.hub is not None
        ident = {"path": spec.hub.path, "name": spec.hub.name, "split": spec.hub.split, "revision": spec.hub.revision}
        return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()
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
