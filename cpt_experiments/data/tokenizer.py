"""The tokenizer: a byte-level BPE trained once on the first-stage corpus, or a pretrained one by name or path.

As in Ibrahim et al. (2024), one tokenizer serves every stage and language: it is trained on the TRAIN split of
the old (English) corpus and reused unchanged for the new data, so a strong shift (German) also shows up as worse
compression. Trained tokenizers live in a content-addressed folder ``<cache_dir>/tokenizers/<key>/`` in Hugging
Face format, keyed by the trainer settings and the source fingerprint; the same settings reuse the folder.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from cpt_experiments.atomic import atomic_dir, remove_unlocked_temps
from cpt_experiments.config import TokenizerConfig, plain_dict, typed
from cpt_experiments.data.corpus import CorpusSpec
from cpt_experiments.data.documents import source_fingerprint
from cpt_experiments.data.splits import split_documents
from cpt_experiments.errors import CacheError, ConfigError, config_error
from cpt_experiments.hashing import content_hash

log = logging.getLogger(__name__)

EOS_TOKEN = "<|endoftext|>"
KINDS = ("bpe", "pretrained")
BPE_FORMAT_VERSION = 1  # bump when the trainer recipe below changes, so old folders are not reused
_META_FILE = "cpt_tokenizer.json"
_BPE_KEYS = ("vocab_size", "min_frequency", "train_corpus", "train_max_chars")  # the trainer's (and its corpus's)


def get_tokenizer(
    tok_cfg: TokenizerConfig | Mapping[str, Any] | Any,
    corpus_spec: CorpusSpec | None,
    data_dir: str | os.PathLike | None,
    cache_dir: str | os.PathLike,
) -> Any:
    """Return a ``PreTrainedTokenizerFast`` for ``tok_cfg`` (a ``config.TokenizerConfig``; a mapping or OmegaConf
    node is typed first, ``config.typed``).

    ``kind: bpe`` trains on the train split of ``corpus_spec`` (or reuses the cached result);
    ``kind: pretrained`` loads ``name_or_path`` with ``AutoTokenizer`` (``corpus_spec`` is ignored).
    """
    cfg = (
        tok_cfg
        if isinstance(tok_cfg, TokenizerConfig)
        else typed(TokenizerConfig, plain_dict(tok_cfg, "tokenizer"), "tokenizer")[0]
    )
    if cfg.kind not in KINDS:
        raise config_error("tokenizer.kind", f"unknown kind {cfg.kind!r}; one of {', '.join(KINDS)}")
    if cfg.kind == "pretrained":
        # Scale presets set tokenizer.vocab_size etc. for the BPE default; with a pretrained tokenizer they are moot.
        ignored = [k for k in _BPE_KEYS if getattr(cfg, k) is not None]
        if ignored:
            log.warning("pretrained tokenizer: ignoring BPE training keys %s", ", ".join(ignored))
        return load_pretrained(cfg.name_or_path)
    if cfg.name_or_path is not None:
        raise config_error("tokenizer.name_or_path", "only for kind: pretrained; a bpe tokenizer is trained")
    if corpus_spec is None:
        raise config_error("tokenizer.train_corpus", "a bpe tokenizer needs the corpus to train on")
    return _trained_bpe(_bpe_settings(cfg, corpus_spec, data_dir), corpus_spec, data_dir, cache_dir)


def _trained_bpe(
    settings: dict[str, Any], corpus_spec: CorpusSpec, data_dir: str | os.PathLike | None, cache_dir: str | os.PathLike
) -> Any:
    """The BPE tokenizer of ``settings`` from ``<cache_dir>/tokenizers/<key>/``, trained there first if absent."""
    from filelock import FileLock

    # A cache folder name (16 hex digits keep paths short). compact=False keeps the folders of trained tokenizers:
    # a retrain costs minutes at paper scale, and its hash feeds every stage hash.
    key = content_hash(settings, 16, compact=False)
    dest = Path(cache_dir) / "tokenizers" / key
    dest.parent.mkdir(parents=True, exist_ok=True)
    remove_unlocked_temps(dest.parent)  # what tokenizer trainings killed earlier left behind
    # Parallel sweep jobs share the cache: one trains, the others wait and reuse.
    with FileLock(str(dest.parent / f".{key}.lock")):
        if (dest / _META_FILE).is_file():
            try:
                tok = load_tokenizer_dir(dest)
                log.info("reusing tokenizer %s", dest)
                return tok
            except CacheError as exc:
                log.warning("rebuilding tokenizer: %s", exc)
        texts = _capped_texts(split_documents(corpus_spec, data_dir, "train"), settings["train_max_chars"])
        tok = train_bpe(texts, vocab_size=settings["vocab_size"], min_frequency=settings["min_frequency"])
        with atomic_dir(dest) as tmp:
            tok.save_pretrained(str(tmp))
            meta = {**settings, "corpus": corpus_spec.name, "tokenizer_hash": tokenizer_hash(tok)}
            (tmp / _META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True))
        log.info("trained tokenizer (vocab %d) on %s -> %s", settings["vocab_size"], corpus_spec.name, dest)
        return load_tokenizer_dir(dest)


def _bpe_settings(cfg: TokenizerConfig, corpus_spec: CorpusSpec, data_dir: str | os.PathLike | None) -> dict[str, Any]:
    """The BPE trainer settings plus the corpus identity: what a trained tokenizer's cache key hashes.

    ``vocab_size`` counts ids (at least 256 bytes + EOS), ``train_max_chars`` characters of train-split text.
    Types and ranges are the schema's; the settings have no defaults here (``conf/tokenizer/bpe.yaml`` has them).
    """
    for name in ("vocab_size", "min_frequency", "train_max_chars"):
        if getattr(cfg, name) is None:
            raise config_error(f"tokenizer.{name}", "missing; a bpe tokenizer needs it (conf/tokenizer/bpe.yaml)")
    if cfg.vocab_size < 257:
        raise config_error("tokenizer.vocab_size", f"must be at least 257 (256 bytes + EOS), got {cfg.vocab_size}")
    return {
        "kind": "bpe",
        "format_version": BPE_FORMAT_VERSION,
        "vocab_size": cfg.vocab_size,
        "min_frequency": cfg.min_frequency,
        "train_max_chars": cfg.train_max_chars,
        "corpus_spec": corpus_spec.spec_hash(exclude=("max_tokens", "max_validation_tokens")),
        "source_fingerprint": source_fingerprint(corpus_spec, data_dir),
    }


def _capped_texts(docs: Iterable[tuple[str, str]], max_chars: int) -> Iterator[str]:
    remaining = max_chars
    for _, text in docs:
        if remaining <= 0:
            return
        yield text[:remaining]
        remaining -= len(text)


def train_bpe(texts: Iterable[str], *, vocab_size: int, min_frequency: int = 2) -> Any:
    """Train a byte-level BPE (GPT-2 style pre-tokenization, all 256 bytes in the alphabet, EOS special).

    Returns a ``PreTrainedTokenizerFast`` whose ``eos_token`` (also bos and unk, as in GPT-NeoX) is ``<|endoftext|>``.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[EOS_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS_TOKEN, bos_token=EOS_TOKEN, unk_token=EOS_TOKEN)


def load_tokenizer_dir(path: str | os.PathLike) -> Any:
    """Load a tokenizer folder written by :func:`get_tokenizer`; CacheError naming the folder if unreadable."""
    from transformers import PreTrainedTokenizerFast

    path = Path(path)
    try:
        tok = PreTrainedTokenizerFast.from_pretrained(str(path))
    except Exception as exc:  # transformers raises OSError/ValueError/JSONDecodeError for broken folders
        raise CacheError(f"{path}: unreadable tokenizer folder ({type(exc).__name__})") from exc
    meta_file = path / _META_FILE
    if meta_file.is_file():
        try:
            expected = json.loads(meta_file.read_text()).get("tokenizer_hash")
        except (OSError, ValueError) as exc:
            raise CacheError(f"{meta_file}: unreadable tokenizer metadata") from exc
        if expected != tokenizer_hash(tok):
            raise CacheError(f"{path}: tokenizer files do not match the hash in {_META_FILE}")
    return tok


def load_pretrained(name_or_path: str | os.PathLike | None) -> Any:
    """Load a fast tokenizer by hub name or local path; it must define an EOS token (the document separator)."""
    from transformers import AutoTokenizer

    if not name_or_path:
        raise config_error("tokenizer.name_or_path", "missing; a hub name or a local folder")
    name = str(name_or_path)
    looks_local = os.path.isabs(name) or name.startswith((".", "~")) or os.path.exists(name)
    if looks_local and not Path(name).expanduser().is_dir():
        raise config_error("tokenizer.name_or_path", f"folder {name} does not exist")
    try:
        tok = AutoTokenizer.from_pretrained(str(Path(name).expanduser()) if looks_local else name, use_fast=True)
    except Exception as exc:
        raise config_error("tokenizer.name_or_path", f"cannot load {name!r}: {type(exc).__name__}: {exc}") from exc
    if not getattr(tok, "is_fast", False):
        raise config_error("tokenizer.name_or_path", f"{name!r} has no fast (Rust) tokenizer")
    if tok.eos_token_id is None:
        raise config_error("tokenizer.name_or_path", f"{name!r} defines no eos_token, needed to separate documents")
    return tok


def tokenizer_hash(tokenizer: Any) -> str:
    """sha256 (hex) of the canonical tokenizer JSON (model, pre-tokenizer, added tokens), stable across save/load.

    Runtime settings (``truncation``, ``padding``) are left out: they do not change which ids a text maps to.
    """
    backend = getattr(tokenizer, "backend_tokenizer", tokenizer)
    try:
        state = json.loads(backend.to_str())
    except AttributeError as exc:
        raise ConfigError(f"tokenizer: {type(tokenizer).__name__} is not a fast tokenizer") from exc
    state.pop("truncation", None)
    state.pop("padding", None)
    # compact=False, ensure_ascii=False: the bytes the recorded tokenizer hashes (part of every stage hash) hash.
    return content_hash(state, compact=False, ensure_ascii=False)


def vocab_size_of(tokenizer: Any) -> int:
    """Number of ids the tokenizer can emit (base vocabulary plus added tokens)."""
    return len(tokenizer)
