"""Token cache: exact contents, reuse vs rebuild by key, caps, corruption, killed writers, dtype choice."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from cpt_experiments.data import token_cache as tc
from cpt_experiments.data.corpus import CorpusSpec
from cpt_experiments.data.splits import split_documents
from cpt_experiments.data.token_cache import build_token_cache, prepare_corpora, token_dtype
from cpt_experiments.data.tokenizer import tokenizer_hash, train_bpe
from cpt_experiments.errors import CacheError, ConfigError, DataError

WORDS = "alpha beta gamma delta epsilon river stone bridge walk talk history weather".split()


def make_rows(n: int) -> list[dict]:
    return [{"id": f"d{i}", "text": " ".join(WORDS[(i + j) % len(WORDS)] for j in range(5 + i % 7))} for i in range(n)]


@pytest.fixture(scope="module")
def tokenizer():
    return train_bpe([r["text"] for r in make_rows(60)], vocab_size=300)


@pytest.fixture
def toy_dir(tmp_path: Path) -> Path:
    """A 60-document toy corpus (not the session-wide synthetic ``data_dir``: these tests edit the file)."""
    d = tmp_path / "data"
    d.mkdir()
    rows = make_rows(60)
    rows[3]["text"] += " <|endoftext|> literal"  # must stay text, not become a separator
    (d / "toy.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return d


def spec(**overrides) -> CorpusSpec:
    cfg = {
        "name": "toy",
        "source": "local",
        "path": "toy.jsonl",
        "id_field": "id",
        "validation_fraction": 0.25,
        "max_validation_tokens": None,
    }
    return CorpusSpec.from_config({**cfg, **overrides})


def expected_tokens(s: CorpusSpec, split: str, toy_dir: Path, tok) -> list[int]:
    out: list[int] = []
    backend = tok.backend_tokenizer
    backend.encode_special_tokens = True  # the reference also reads a literal "<|endoftext|>" as text
    try:
        for _, text in split_documents(s, toy_dir, split):
            out += backend.encode(text, add_special_tokens=False).ids + [tok.eos_token_id]
    finally:
        backend.encode_special_tokens = False
    return out


@pytest.mark.parametrize("split", ["train", "validation"])
def test_build_writes_exact_tokens_and_manifest(tokenizer, toy_dir: Path, tmp_path: Path, split: str) -> None:
    s = spec()
    tf = build_token_cache(s, split, tokenizer, toy_dir, tmp_path / "cache", progress=False)
    want = expected_tokens(s, split, toy_dir, tokenizer)
    assert tf.built and tf.tokens.dtype == np.uint16
    assert tf.tokens.tolist() == want and tf.num_tokens == len(want)
    n_docs = len(list(split_documents(s, toy_dir, split)))
    m = tf.manifest
    assert (m["corpus"], m["split"], m["num_documents"], m["num_tokens"]) == ("toy", split, n_docs, len(want))
    assert m["dtype"] == "uint16" and m["vocab_size"] == len(tokenizer) and m["truncated"] is False
    assert m["tokenizer_hash"] == tokenizer_hash(tokenizer) and m["spec_hash"] == s.spec_hash()
    assert m["format_version"] == tc.FORMAT_VERSION and len(m["tokens_sha256"]) == 64
    assert int((tf.tokens == tokenizer.eos_token_id).sum()) == n_docs  # literal "<|endoftext|>" is text
    assert tf.path.name.startswith(f"toy-{split}-") and (tf.path / "manifest.json").is_file()
    with pytest.raises(ValueError):
        tf.tokens[0] = 1  # read-only memmap


def test_second_call_reuses_without_tokenizing(tokenizer, toy_dir: Path, tmp_path: Path, monkeypatch) -> None:
    first = build_token_cache(spec(), "train", tokenizer, toy_dir, tmp_path / "cache", progress=False)

    def boom(*a, **k):
        raise AssertionError("tokenized again")

    monkeypatch.setattr(tc, "encode_documents", boom)
    second = build_token_cache(spec(), "train", tokenizer, toy_dir, tmp_path / "cache", progress=False)
    assert not second.built and second.path == first.path
    assert np.array_equal(second.tokens, first.tokens)


def test_any_input_change_gives_a_new_key(tokenizer, toy_dir: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"

    def path(s=None, split="train", tok=tokenizer):
        return build_token_cache(s or spec(), split, tok, toy_dir, cache, progress=False).path

    base_train, base_val = path(), path(split="validation")
    assert path(spec(max_documents=30)) != base_train
    assert path(spec(max_tokens=50)) != base_train
    assert path(spec(split_salt="x")) != base_train
    other_tok = train_bpe([r["text"] for r in make_rows(60)], vocab_size=280)
    assert path(tok=other_tok) != base_train
    # A validation cap moves only the validation key; the train cap only the train key.
    assert path(spec(max_validation_tokens=40)) == base_train
    assert path(spec(max_validation_tokens=40), "validation") != base_val
    assert path(spec(max_tokens=50), "validation") == base_val
    with open(toy_dir / "toy.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"id": "late", "text": "a new document"}) + "\n")
    assert path() != base_train


def test_caps_cut_exactly(tokenizer, toy_dir: Path, tmp_path: Path) -> None:
    full = expected_tokens(spec(), "train", toy_dir, tokenizer)
    mid_doc = full.index(tokenizer.eos_token_id) + 3  # three tokens into the second document
    tf = build_token_cache(spec(max_tokens=mid_doc), "train", tokenizer, toy_dir, tmp_path / "c", progress=False)
    assert tf.num_tokens == mid_doc and tf.tokens.tolist() == full[:mid_doc]
    assert tf.manifest["truncated"] is True and tf.manifest["num_documents"] == 2
    val_full = expected_tokens(spec(), "validation", toy_dir, tokenizer)
    tf = build_token_cache(
        spec(max_validation_tokens=11), "validation", tokenizer, toy_dir, tmp_path / "c", progress=False
    )
    assert tf.tokens.tolist() == val_full[:11]
    cap_at_boundary = full.index(tokenizer.eos_token_id) + 1  # first document ends exactly at the cap
    tf = build_token_cache(
        spec(max_tokens=cap_at_boundary), "train", tokenizer, toy_dir, tmp_path / "c", progress=False
    )
    assert tf.manifest["truncated"] is False and tf.manifest["num_documents"] == 1


def _corrupt_truncate(p: Path) -> None:
    (p / "tokens.bin").write_bytes((p / "tokens.bin").read_bytes()[:-2])


def _corrupt_flip(p: Path) -> None:
    b = bytearray((p / "tokens.bin").read_bytes())
    b[10] ^= 0xFF
    (p / "tokens.bin").write_bytes(bytes(b))


def _corrupt_manifest_count(p: Path) -> None:
    m = json.loads((p / "manifest.json").read_text())
    m["num_tokens"] -= 1
    (p / "manifest.json").write_text(json.dumps(m))


def _corrupt_manifest_json(p: Path) -> None:
    (p / "manifest.json").write_text('{"num_tokens": 12,')


def _remove_manifest(p: Path) -> None:
    (p / "manifest.json").unlink()


@pytest.mark.parametrize(
    "corrupt", [_corrupt_truncate, _corrupt_flip, _corrupt_manifest_count, _corrupt_manifest_json, _remove_manifest]
)
def test_corrupt_cache_detected(tokenizer, toy_dir: Path, tmp_path: Path, caplog, corrupt) -> None:
    cache = tmp_path / "cache"
    good = build_token_cache(spec(), "train", tokenizer, toy_dir, cache, progress=False)
    want = good.tokens.tolist()
    corrupt(good.path)
    with pytest.raises(CacheError) as ei:
        build_token_cache(spec(), "train", tokenizer, toy_dir, cache, progress=False, rebuild_corrupt=False)
    assert str(good.path) in str(ei.value)
    with caplog.at_level(logging.WARNING, logger="cpt_experiments.data.token_cache"):
        again = build_token_cache(spec(), "train", tokenizer, toy_dir, cache, progress=False)
    assert "rebuilding corrupt token cache" in caplog.text
    assert again.built and again.tokens.tolist() == want


def test_killed_writer_leaves_nothing_valid(tokenizer, toy_dir: Path, tmp_path: Path, monkeypatch) -> None:
    cache = tmp_path / "cache"
    real = tc.encode_documents
    calls = {"n": 0}

    def dies_on_second_batch(tok, texts):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # what a Ctrl-C / SIGINT looks like mid-write
        return real(tok, texts)

    monkeypatch.setattr(tc, "BATCH_DOCS", 8)
    monkeypatch.setattr(tc, "encode_documents", dies_on_second_batch)
    with pytest.raises(KeyboardInterrupt):
        build_token_cache(spec(), "train", tokenizer, toy_dir, cache, progress=False)
    assert [p for p in (cache / "tokens").iterdir() if not p.name.startswith(".")] == []
    assert not list((cache / "tokens").glob("*/manifest.json"))
    monkeypatch.setattr(tc, "encode_documents", real)
    assert build_token_cache(spec(), "train", tokenizer, toy_dir, cache, progress=False).built


def test_dtype_choice(tokenizer, toy_dir: Path, tmp_path: Path, monkeypatch) -> None:
    assert token_dtype(65535) == np.uint16 and token_dtype(65536) == np.uint32 and token_dtype(50_277) == np.uint16
    small = build_token_cache(spec(), "train", tokenizer, toy_dir, tmp_path / "a", progress=False)
    monkeypatch.setattr(tc, "vocab_size_of", lambda tok: 100_000)  # a GPT-NeoX-sized vocab would not fit uint16
    big = build_token_cache(spec(), "train", tokenizer, toy_dir, tmp_path / "b", progress=False)
    assert big.tokens.dtype == np.uint32 and big.manifest["dtype"] == "uint32"
    small_bytes = (small.path / "tokens.bin").stat().st_size
    assert (big.path / "tokens.bin").stat().st_size == 4 * big.num_tokens == 2 * small_bytes
    assert big.tokens.tolist() == small.tokens.tolist()


def test_empty_split_is_an_error(tokenizer, toy_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="split 'validation' has no tokens"):
        build_token_cache(spec(validation_fraction=0.0), "validation", tokenizer, toy_dir, tmp_path, progress=False)
    assert [p for p in (tmp_path / "tokens").iterdir() if not p.name.startswith(".")] == []


def test_prepare_corpora_by_role(tokenizer, toy_dir: Path, tmp_path: Path) -> None:
    base = {"source": "local", "path": "toy.jsonl", "id_field": "id"}
    corpora = {
        "en_old": {**base, "name": "old", "validation_fraction": 0.25},
        "en_new": {**base, "name": "new", "validation_fraction": 0.0, "max_documents": 10},
    }
    out = prepare_corpora(corpora, tokenizer, toy_dir, tmp_path / "cache", progress=False)
    assert set(out) == {"en_old", "en_new"}
    assert set(out["en_old"]) == {"train", "validation"} and set(out["en_new"]) == {"train"}
    assert out["en_new"]["train"].manifest["num_documents"] == 10
    only = prepare_corpora(corpora, tokenizer, toy_dir, tmp_path / "cache", roles=["en_old"], progress=False)
    assert set(only) == {"en_old"} and not only["en_old"]["train"].built
    with pytest.raises(ConfigError, match=r"^corpora.de_new: no such role"):
        prepare_corpora(corpora, tokenizer, toy_dir, tmp_path / "cache", roles=["de_new"])
    with pytest.raises(ConfigError, match=r"^corpora.en_old.max_tokens"):
        prepare_corpora({"en_old": {**corpora["en_old"], "max_tokens": -3}}, tokenizer, toy_dir, tmp_path)
