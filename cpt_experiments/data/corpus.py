"""Corpora as configs: where the text is, which fields to read, how much of it to use, how to split it.

A corpus is a :class:`CorpusSpec` built from a typed ``config.CorpusConfig`` (``conf/corpus/*.yaml``): a local
file under the data dir or a Hugging Face Hub dataset (:class:`HubSource`), with caps, the validation fraction and salt of the
document-level split, and optionally a version slice of the train split. :meth:`CorpusSpec.spec_hash` is the
spec's part of every cache key. Reading the documents: :mod:`cpt_experiments.data.documents`; the split and the
slices: :mod:`cpt_experiments.data.splits`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from cpt_experiments.config import CorpusConfig, plain_dict, typed
from cpt_experiments.errors import config_error
from cpt_experiments.hashing import content_hash

SOURCES = ("local", "hub")
FORMATS = {"jsonl": "json", "text": "text", "parquet": "parquet"}  # our name -> datasets builder name
TRAIN_ONLY_FIELDS = ("slice_index", "slice_count", "slice_fractions")  # shape the train split only


@dataclasses.dataclass(frozen=True)
class HubSource:
    """A dataset on the Hugging Face Hub (or any path ``datasets.load_dataset`` accepts as a repository); built from
    a ``config.HubConfig`` (its defaults)."""

    path: str
    """Dataset id, e.g. ``monology/pile-uncopyrighted``, or a local folder laid out like a hub repo."""
    name: str | None
    """Dataset config name, e.g. ``deu_Latn`` for FineWeb-2; None for the default config."""
    split: str
    """The hub split to read; our own train/validation split is made from it by document hash."""
    streaming: bool
    """Stream records instead of downloading and converting the whole split to Arrow first."""
    revision: str | None
    """Git revision of the dataset repo; pin it, otherwise the cache key cannot see upstream changes."""


@dataclasses.dataclass(frozen=True)
class CorpusSpec:
    """One corpus: its source, the fields to read, caps, and the document-level validation split.

    Frozen (hashable, safe to share); built only by :meth:`from_config` from a ``config.CorpusConfig``, whose
    field defaults are the only ones.
    """

    name: str
    """Short identifier; names cache directories, e.g. ``wiki_en``."""
    source: str
    """``local`` (a file under the data dir) or ``hub`` (``datasets.load_dataset`` on a dataset id)."""
    lang: str | None
    """Language code (informational), e.g. ``en``, ``de``."""
    path: str | None
    """Local source: file path, absolute or relative to ``data_dir`` (else to ``paths.data_dir``)."""
    data_dir: str | None
    """Local source: this corpus's own folder, instead of ``paths.data_dir`` (a location, not content: not hashed)."""
    format: str
    """Local source: ``jsonl`` | ``text`` (one document per line) | ``parquet``."""
    hub: HubSource | None
    """Hub source settings."""
    text_field: str
    """Record field holding the document text."""
    id_field: str | None
    """Record field holding a stable document id; None means the text itself identifies the document."""
    max_documents: int | None
    """Use only the first N non-empty documents in source order (before splitting); None = all."""
    max_tokens: int | None
    """Cap on train-split tokens (the token cache cuts exactly at this count); None = all."""
    max_validation_tokens: int | None
    """Cap on validation-split tokens; None = all."""
    validation_fraction: float
    """Expected fraction of documents in the validation split, in [0, 1)."""
    split_salt: str
    """Salt of the split hash; changing it draws a different validation set."""
    slice_index: int | None
    """Version slice: train only on bucket ``slice_index`` (1-based) of ``slice_count``; None = the whole train split."""
    slice_count: int | None
    """Number of disjoint train buckets the corpus is cut into (set together with ``slice_index``)."""
    slice_fractions: tuple[float, ...] | None
    """Relative bucket sizes (documents, in expectation), one per slice; None = equal buckets."""

    @classmethod
    def from_config(cls, cfg: CorpusConfig | Mapping[str, Any] | Any, key: str = "corpus") -> CorpusSpec:
        """The spec of a typed corpus config; a mapping or OmegaConf node is typed first (``config.typed``: keys,
        types, ranges). Raises a ConfigError naming ``<key>.<field>`` for what a schema cannot express."""
        c = cfg if isinstance(cfg, CorpusConfig) else typed(CorpusConfig, plain_dict(cfg, key), key)[0]
        values = {f.name: getattr(c, f.name) for f in dataclasses.fields(cls)}
        values["hub"] = HubSource(**dataclasses.asdict(c.hub)) if c.hub is not None else None
        values["slice_fractions"] = tuple(c.slice_fractions) if c.slice_fractions is not None else None
        spec = cls(**values)
        spec._check(key)
        return spec

    def _check(self, key: str) -> None:
        """Raise a ConfigError naming the first field that contradicts the others (types and ranges: the schema)."""
        if not self.name:
            raise config_error(f"{key}.name", "missing corpus name")
        if self.source not in SOURCES:
            raise config_error(f"{key}.source", f"unknown source {self.source!r}; one of {', '.join(SOURCES)}")
        if self.source == "local":
            if not self.path:
                raise config_error(f"{key}.path", "a local corpus needs a file path")
            if self.format not in FORMATS:
                raise config_error(f"{key}.format", f"unknown format {self.format!r}; one of {', '.join(FORMATS)}")
        elif self.hub is None or not self.hub.path:
            raise config_error(f"{key}.hub", "a hub corpus needs hub.path (dataset id)")
        if not self.text_field:
            raise config_error(f"{key}.text_field", "must be a non-empty field name")
        self._validate_slice(key)

    def _validate_slice(self, key: str) -> None:
        """Raise a ConfigError unless the slice fields are all unset or form a valid slice."""
        index, count, fracs = self.slice_index, self.slice_count, self.slice_fractions
        if index is None and count is None:
            if fracs is not None:
                raise config_error(f"{key}.slice_fractions", "set only together with slice_index and slice_count")
            return
        for name, value in (("slice_count", count), ("slice_index", index)):
            if value is None:  # types and ranges (>= 1): the schema
                raise config_error(f"{key}.{name}", "must be set when slicing (slice_index and slice_count together)")
        assert index is not None and count is not None
        if index > count:
            raise config_error(f"{key}.slice_index", f"{index} is beyond slice_count={count}")
        if fracs is not None and len(fracs) != count:
            raise config_error(f"{key}.slice_fractions", f"has {len(fracs)} entries, slice_count is {count}")

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
        # compact=False: the layout the recorded token-cache keys (and so the stage hashes) rest on.
        return content_hash(d, compact=False)
