"""Content-addressed token cache: one flat token file per (corpus, split, tokenizer).

Each split is tokenized once into ``<cache_dir>/tokens/<corpus>-<split>-<key16>/`` holding ``tokens.bin`` (every
document's ids followed by EOS, concatenated; the nanoGPT memmap contract) and ``manifest.json``. The key hashes
everything that decides the bytes: the split-relevant corpus spec, the source fingerprint, the tokenizer hash and
the format version, so the same inputs reuse the folder and any change lands in a new one. The folder is written
whole with ``atomic_dir``: a killed writer leaves only a ``.*.tmp-*`` sibling that no reader considers.

Caps: ``max_tokens`` (train) and ``max_validation_tokens`` (validation) cut the token stream EXACTLY at the cap,
so the last document may be partial and then has no trailing EOS (``manifest["truncated"]`` is true). Exact
counts make token budgets exact; the cut document is still in its own split, so no leakage follows.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cpt_experiments.atomic import atomic_dir, remove_unlocked_temps
from cpt_experiments.data.corpus import CorpusSpec
from cpt_experiments.data.documents import source_fingerprint
from cpt_experiments.data.splits import SPLITS, split_documents
from cpt_experiments.data.tokenizer import tokenizer_hash, vocab_size_of
from cpt_experiments.errors import CacheError, DataError, config_error
from cpt_experiments.hashing import HashingWriter, content_hash, sha256_file

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
TOKENS_FILE = "tokens.bin"
MANIFEST_FILE = "manifest.json"
BATCH_DOCS = 64  # documents per encode_batch call: enough to keep both Rust worker threads busy


@dataclasses.dataclass(frozen=True)
class TokenFile:
    """A validated token cache folder; ``tokens`` is a read-only memmap of ``num_tokens`` ids."""

    path: Path
    manifest: dict[str, Any]
    tokens: np.memmap
    num_tokens: int
    built: bool
    """True if this call tokenized the corpus, False if an existing cache was reused."""


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 when every id fits (vocab ≤ 65535), else uint32; halves the file for small vocabularies."""
    return np.dtype(np.uint16) if vocab_size <= 65535 else np.dtype(np.uint32)


def _split_cap(spec: CorpusSpec, split: str) -> int | None:
    return spec.max_tokens if split == "train" else spec.max_validation_tokens


def cache_key(spec: CorpusSpec, split: str, tokenizer: Any, data_dir: str | os.PathLike | None) -> str:
    """sha256 (hex) of everything that determines the token bytes of this split."""
    other_cap = "max_validation_tokens" if split == "train" else "max_tokens"  # one split's cap can't move the other
    material = {
        "format_version": FORMAT_VERSION,
        "split": split,
        "spec": spec.spec_hash(exclude=(other_cap, "lang")),
        "source_fingerprint": source_fingerprint(spec, data_dir),
        "tokenizer_hash": tokenizer_hash(tokenizer),
    }
    # compact=False: the layout the recorded keys were made with; the train key is part of every stage hash.
    return content_hash(material, compact=False)


def cache_path(spec: CorpusSpec, split: str, key: str, cache_dir: str | os.PathLike) -> Path:
    """``<cache_dir>/tokens/<corpus>-<split>-<key16>``."""
    safe_name = re.sub(r"[^A-Za-z0-9_.-]+", "_", spec.name)
    return Path(cache_dir) / "tokens" / f"{safe_name}-{split}-{key[:16]}"


def encode_documents(tokenizer: Any, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each text via the fast backend's batch encoder, without special-token handling.

    A literal ``<|endoftext|>`` inside a document is encoded as plain text, so only our separators are EOS.
    """
    backend = tokenizer.backend_tokenizer
    previous = backend.encode_special_tokens
    backend.encode_special_tokens = True
    try:
        encodings = backend.encode_batch_fast(list(texts), add_special_tokens=False)
    finally:
        backend.encode_special_tokens = previous
    return [e.ids for e in encodings]


def _batches(docs: Iterable[tuple[str, str]], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for _, text in docs:
        batch.append(text)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _empty_split(spec: CorpusSpec, split: str, data_dir: str | os.PathLike | None, cap: int | None) -> str:
    """Why ``split`` got no tokens; names the cause when every document has the same id (the split is by id)."""
    from cpt_experiments.data.documents import iter_documents

    keys = {key for key, _ in iter_documents(spec, data_dir)} if spec.id_field else set()
    if len(keys) == 1:
        return (
            f"corpus {spec.name!r}: every document has the same {spec.id_field!r} ({next(iter(keys))!r}); the "
            f"train/validation split is by document id, so split {split!r} is empty: give documents distinct ids"
        )
    return (
        f"corpus {spec.name!r}: split {split!r} has no tokens "
        f"(validation_fraction={spec.validation_fraction}, max_documents={spec.max_documents}, cap={cap})"
    )


def _write_tokens(
    spec: CorpusSpec, split: str, tokenizer: Any, data_dir: str | os.PathLike | None, out: Path, progress: bool
) -> dict[str, Any]:
    """Tokenize the split into ``out`` (binary); return the counts and checksum for the manifest."""
    from tqdm.auto import tqdm

    vocab_size = vocab_size_of(tokenizer)
    dtype = token_dtype(vocab_size)
    eos = tokenizer.eos_token_id
    if eos is None:
        raise config_error("tokenizer", "has no eos_token; documents need a separator")
    cap = _split_cap(spec, split)
    num_tokens = num_documents = 0
    truncated = False
    # disable=None: a bar on a terminal only; a log file (non-TTY) gets none
    bar = tqdm(
        total=cap, unit="tok", desc=f"tokenize {spec.name}/{split}", disable=None if progress else True, leave=False
    )
    with open(out, "wb") as raw:
        fh = HashingWriter(raw)  # the manifest's tokens_sha256 in the same pass
        for texts in _batches(split_documents(spec, data_dir, split), BATCH_DOCS):
            for ids in encode_documents(tokenizer, texts):
                ids.append(eos)
                if cap is not None and num_tokens + len(ids) >= cap:
                    truncated = num_tokens + len(ids) > cap
                    ids = ids[: cap - num_tokens]
                chunk = np.asarray(ids, dtype=dtype).tobytes()
                fh.write(chunk)
                num_tokens += len(ids)
                num_documents += 1
                bar.update(len(ids))
                if cap is not None and num_tokens >= cap:
                    break
            if cap is not None and num_tokens >= cap:
                break
    bar.close()
    if num_tokens == 0:
        raise DataError(_empty_split(spec, split, data_dir, cap))
    return {
        "num_tokens": num_tokens,
        "num_documents": num_documents,
        "truncated": truncated,
        "dtype": dtype.name,
        "vocab_size": vocab_size,
        "eos_token_id": eos,
        "tokens_sha256": fh.hexdigest(),
    }


def load_token_file(path: str | os.PathLike, expected_key: str | None = None) -> TokenFile:
    """Open and validate a cache folder (manifest, size, checksum); CacheError naming the path if invalid."""
    path = Path(path)
    manifest_file, tokens_file = path / MANIFEST_FILE, path / TOKENS_FILE
    try:
        manifest = json.loads(manifest_file.read_text())
        num_tokens = int(manifest["num_tokens"])
        dtype = np.dtype(manifest["dtype"])
        expected_sha = manifest["tokens_sha256"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CacheError(f"{manifest_file}: missing or unreadable manifest ({type(exc).__name__})") from exc
    if manifest.get("format_version") != FORMAT_VERSION:
        raise CacheError(f"{manifest_file}: format_version {manifest.get('format_version')!r} != {FORMAT_VERSION}")
    if expected_key is not None and manifest.get("cache_key") != expected_key:
        raise CacheError(f"{manifest_file}: cache_key does not match the folder's inputs")
    size = tokens_file.stat().st_size if tokens_file.is_file() else -1
    if size != num_tokens * dtype.itemsize:
        raise CacheError(f"{tokens_file}: {size} bytes, manifest says {num_tokens} x {dtype.itemsize}")
    # sha256 of a 20 MB token file takes ~30 ms, cheap next to any training run, so always verify.
    if sha256_file(tokens_file) != expected_sha:
        raise CacheError(f"{tokens_file}: checksum mismatch (corrupted)")
    tokens = np.memmap(tokens_file, dtype=dtype, mode="r", shape=(num_tokens,))
    return TokenFile(path=path, manifest=manifest, tokens=tokens, num_tokens=num_tokens, built=False)


def build_token_cache(
    spec: CorpusSpec,
    split: str,
    tokenizer: Any,
    data_dir: str | os.PathLike | None,
    cache_dir: str | os.PathLike,
    progress: bool = True,
    rebuild_corrupt: bool = True,
) -> TokenFile:
    """Return the token file of ``spec``'s ``split``, tokenizing only if no valid cache with the same key exists.

    A corrupt cache is rebuilt with a warning, or with ``rebuild_corrupt=False`` raises CacheError naming it.
    Concurrent builders of the same key (e.g. a Hydra multirun) serialise on a file lock.
    """
    from filelock import FileLock

    if split not in SPLITS:
        raise config_error("split", f"unknown split {split!r}; one of {', '.join(SPLITS)}")
    key = cache_key(spec, split, tokenizer, data_dir)
    dest = cache_path(spec, split, key, cache_dir)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(dest.parent / f".{dest.name}.lock")):
        if dest.exists():
            try:
                cached = load_token_file(dest, expected_key=key)
                log.info("token cache hit: %s (%d tokens)", dest, cached.num_tokens)
                return cached
            except CacheError as exc:
                if not rebuild_corrupt:
                    raise
                log.warning("rebuilding corrupt token cache: %s", exc)
        with atomic_dir(dest) as tmp:
            stats = _write_tokens(spec, split, tokenizer, data_dir, tmp / TOKENS_FILE, progress)
            manifest = {
                "format_version": FORMAT_VERSION,
                "cache_key": key,
                "corpus": spec.name,
                "lang": spec.lang,
                "split": split,
                **stats,
                "tokenizer_hash": tokenizer_hash(tokenizer),
                "source_fingerprint": source_fingerprint(spec, data_dir),
                "spec_hash": spec.spec_hash(),
                "spec": spec.to_dict(),
            }
            (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True))
        log.info("token cache built: %s (%d tokens, %d docs)", dest, stats["num_tokens"], stats["num_documents"])
    return dataclasses.replace(load_token_file(dest, expected_key=key), built=True)


def prepare_corpora(
    corpora_cfg: Mapping[str, Any],
    tokenizer: Any,
    data_dir: str | os.PathLike | None,
    cache_dir: str | os.PathLike,
    roles: Iterable[str] | None = None,
    progress: bool = True,
) -> dict[str, dict[str, TokenFile]]:
    """Build (or reuse) train and validation caches for each role: ``{role: {"train": ..., "validation": ...}}``.

    First removes the temporaries killed writers left in ``<cache_dir>/tokens`` (entries not being written now).

    ``corpora_cfg`` is ``cfg.corpora`` (role -> corpus config). A corpus with ``validation_fraction: 0`` gets
    only a train entry.
    """
    # Temporaries of writers killed mid-tokenization (``.<entry>.tmp-*``) go at the next start.
    for path in remove_unlocked_temps(Path(cache_dir) / "tokens"):
        log.info("removed a killed writer's temporary %s", path)
    available = list(corpora_cfg.keys())
    wanted = available if roles is None else list(roles)
    out: dict[str, dict[str, TokenFile]] = {}
    for role in wanted:
        if role not in corpora_cfg:
            raise config_error(f"corpora.{role}", f"no such role; configured roles: {', '.join(available)}")
        spec = CorpusSpec.from_config(corpora_cfg[role], key=f"corpora.{role}")
        splits = SPLITS if spec.validation_fraction > 0 else ("train",)
        out[role] = {s: build_token_cache(spec, s, tokenizer, data_dir, cache_dir, progress=progress) for s in splits}
    return out
