"""The document-level train/validation split of a corpus and its version slices.

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

import hashlib
import os
from collections.abc import Iterator

from cpt_experiments.data.corpus import CorpusSpec
from cpt_experiments.data.documents import iter_documents
from cpt_experiments.errors import config_error

SPLITS = ("train", "validation")


def _split_u(doc_key: str, spec: CorpusSpec) -> float:
    """The document's position in [0, 1): the first 8 bytes of ``sha256(split_salt + doc_key)`` over 2**64."""
    # Raw digest bytes to a number, once per document (not a content hash: hashing.text_hash would add a hex round trip).
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
