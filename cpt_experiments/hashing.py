"""Content hashes: the one canonical JSON, the one JSON content hash and the one file/stream sha256.

Every hash the suite records (stage hashes, config and run hashes, tokenizer hashes, token-cache keys) and
every content-addressed cache folder is built here, so two call sites can never disagree on the bytes.

Two JSON byte layouts exist because digests of both are recorded: ``compact=True`` (no whitespace, the stage,
config and run hashes) and ``compact=False`` (``json.dumps(obj, sort_keys=True)``'s ``", "`` and ``": "``
separators, which the token-cache keys, corpus spec hashes and source fingerprints were first hashed with).
Switching a recorded digest's layout would change every stage hash built on it, so each such call site
keeps its layout and says so.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from typing import Any, BinaryIO

#: Hex digits of a content hash unless a call site passes its own: the full sha256 (256 bits).
DEFAULT_LENGTH = 64

_CHUNK = 1 << 22  # 4 MiB reads: about 1 GB/s from a warm page cache


def canonical_json(obj: Any, *, compact: bool = True, ensure_ascii: bool = True) -> str:
    """Deterministic JSON of ``obj``: sorted keys; ``compact`` drops the whitespace after separators.

    Objects JSON cannot encode are written as ``str(obj)`` (a ``Path``, a numpy scalar).
    """
    separators = (",", ":") if compact else (", ", ": ")
    return json.dumps(obj, sort_keys=True, separators=separators, ensure_ascii=ensure_ascii, default=str)


def text_hash(text: str, length: int = DEFAULT_LENGTH) -> str:
    """sha256 (hex, first ``length`` digits) of ``text``'s UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def content_hash(obj: Any, length: int = DEFAULT_LENGTH, *, compact: bool = True, ensure_ascii: bool = True) -> str:
    """sha256 (hex, first ``length`` digits) of ``canonical_json(obj, compact=..., ensure_ascii=...)``."""
    return text_hash(canonical_json(obj, compact=compact, ensure_ascii=ensure_ascii), length)


class HashingWriter:
    """A binary file wrapper that hashes what it writes: the sha256 of a file produced in one pass."""

    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh
        self._digest = hashlib.sha256()

    def write(self, chunk: bytes) -> int:
        self._digest.update(chunk)
        return self._fh.write(chunk)

    def hexdigest(self) -> str:
        """sha256 (hex) of every byte written so far."""
        return self._digest.hexdigest()


def sha256_chunks(chunks: Iterable[bytes]) -> str:
    """sha256 (hex) of the concatenated ``chunks``."""
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    """sha256 (hex) of a file's bytes, read in 4 MiB chunks."""
    with open(path, "rb") as fh:
        return sha256_chunks(iter(lambda: fh.read(_CHUNK), b""))
