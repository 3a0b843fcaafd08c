"""The one content-hash module: its two JSON layouts are the bytes the recorded hashes were made from."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from cpt_experiments.hashing import (
    DEFAULT_LENGTH,
    HashingWriter,
    canonical_json,
    content_hash,
    sha256_chunks,
    sha256_file,
    text_hash,
)

OBJ = {"b": [1, 2.5, None], "a": {"ü": "x", "k": True}}


def test_compact_layout_is_the_stage_hash_layout() -> None:
    assert canonical_json(OBJ) == '{"a":{"k":true,"\\u00fc":"x"},"b":[1,2.5,null]}'
    expected = hashlib.sha256(json.dumps(OBJ, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert content_hash(OBJ) == expected and len(content_hash(OBJ)) == DEFAULT_LENGTH == 64
    assert content_hash(OBJ, 20) == expected[:20]


def test_spaced_layout_is_json_dumps_sort_keys() -> None:
    """``compact=False`` is ``json.dumps(obj, sort_keys=True)`` byte for byte (token-cache keys, spec hashes)."""
    assert canonical_json(OBJ, compact=False) == json.dumps(OBJ, sort_keys=True)
    assert content_hash(OBJ, compact=False) == hashlib.sha256(json.dumps(OBJ, sort_keys=True).encode()).hexdigest()
    raw = json.dumps(OBJ, sort_keys=True, ensure_ascii=False).encode("utf-8")  # the tokenizer hash's bytes
    assert content_hash(OBJ, compact=False, ensure_ascii=False) == hashlib.sha256(raw).hexdigest()


def test_unencodable_values_hash_as_their_str() -> None:
    assert canonical_json({"p": Path("/a/b")}) == '{"p":"/a/b"}'


def test_file_stream_and_text_hashes_agree(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    with open(path, "wb") as fh:
        out = HashingWriter(fh)
        for chunk in (b"abc", b"", "défg".encode()):
            out.write(chunk)
    expected = hashlib.sha256("abcdéfg".encode()).hexdigest()
    assert out.hexdigest() == sha256_file(path) == sha256_chunks([b"abc", "défg".encode()]) == expected
    assert text_hash("abcdéfg") == expected and text_hash("abcdéfg", 12) == expected[:12]
