"""Tokenizer: BPE trained on the train split only, content-addressed reuse, stable hash, pretrained by path."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from cpt_experiments.data import tokenizer as tokmod
from cpt_experiments.data.corpus import CorpusSpec
from cpt_experiments.data.splits import document_split
from cpt_experiments.data.tokenizer import EOS_TOKEN, get_tokenizer, tokenizer_hash
from cpt_experiments.errors import ConfigError

BPE = {"kind": "bpe", "vocab_size": 320, "min_frequency": 2, "train_corpus": "en_old", "train_max_chars": 200_000}
WORDS = "the river flows past old stone bridges while people walk and talk about history and weather".split()


@pytest.fixture
def corpus(tmp_path: Path) -> tuple[CorpusSpec, Path]:
    """Train documents carry the word 'wombat', validation documents 'quokka' (each repeated, so mergeable)."""
    spec = CorpusSpec.from_config(
        {"name": "toy", "source": "local", "path": "toy.jsonl", "id_field": "id", "validation_fraction": 0.3}
    )
    rows = []
    for i in range(120):
        key = f"doc-{i}"
        marker = "quokka" if document_split(key, spec) == "validation" else "wombat"
        words = [WORDS[(i * 7 + j) % len(WORDS)] for j in range(40)]
        rows.append({"id": key, "text": " ".join(words) + f" {marker}" * 5 + " Grüße, café!"})
    (tmp_path / "toy.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return spec, tmp_path


def test_trains_on_train_split_only_and_roundtrips(corpus, tmp_path: Path) -> None:
    spec, data_dir = corpus
    tok = get_tokenizer(BPE, spec, data_dir, tmp_path / "cache")
    assert tok.eos_token == EOS_TOKEN and tok.convert_tokens_to_ids(EOS_TOKEN) == tok.eos_token_id
    assert len(tok) <= 320
    vocab = tok.get_vocab()
    assert "Ġwombat" in vocab  # byte-level BPE marks a leading space with Ġ
    assert "Ġquokka" not in vocab  # only in validation documents
    text = "Straße über naïve 日本 wombat\n\ttabs"
    assert tok.decode(tok(text)["input_ids"]) == text  # byte-level: lossless for any UTF-8


def test_reuses_cached_folder_and_hash_is_stable(corpus, tmp_path: Path, monkeypatch) -> None:
    spec, data_dir = corpus
    cache = tmp_path / "cache"
    first = get_tokenizer(BPE, spec, data_dir, cache)
    folders = _folders(cache)
    assert len(folders) == 1 and (folders[0] / "tokenizer.json").is_file()

    def no_training(*a, **k):
        raise AssertionError("retrained although the cache folder is valid")

    monkeypatch.setattr(tokmod, "train_bpe", no_training)
    second = get_tokenizer(BPE, spec, data_dir, cache)
    assert tokenizer_hash(second) == tokenizer_hash(first)
    assert second.get_vocab() == first.get_vocab()


def test_hash_equals_freshly_trained_and_differs_for_other_vocab(corpus, tmp_path: Path) -> None:
    spec, data_dir = corpus
    texts = [json.loads(line)["text"] for line in (data_dir / "toy.jsonl").read_text().splitlines()]
    fresh = tokmod.train_bpe(texts, vocab_size=300)
    reloaded = tokmod.load_tokenizer_dir(_save(fresh, tmp_path / "saved"))
    assert tokenizer_hash(reloaded) == tokenizer_hash(fresh)
    other = tokmod.train_bpe(texts, vocab_size=280)
    assert tokenizer_hash(other) != tokenizer_hash(fresh)


def _folders(cache: Path) -> list[Path]:
    return [p for p in (cache / "tokenizers").iterdir() if not p.name.startswith(".")]  # skip lock files


def _save(tok, path: Path) -> Path:
    tok.save_pretrained(str(path))
    return path


def test_settings_and_source_change_the_folder(corpus, tmp_path: Path) -> None:
    spec, data_dir = corpus
    cache = tmp_path / "cache"
    get_tokenizer(BPE, spec, data_dir, cache)
    get_tokenizer({**BPE, "vocab_size": 300}, spec, data_dir, cache)
    assert len(_folders(cache)) == 2
    with open(data_dir / "toy.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"id": "extra", "text": "one more document"}) + "\n")
    get_tokenizer(BPE, spec, data_dir, cache)
    assert len(_folders(cache)) == 3


def test_corrupt_folder_is_retrained(corpus, tmp_path: Path, caplog) -> None:
    spec, data_dir = corpus
    cache = tmp_path / "cache"
    good = tokenizer_hash(get_tokenizer(BPE, spec, data_dir, cache))
    (folder,) = _folders(cache)
    state = json.loads((folder / "tokenizer.json").read_text())
    state["model"]["vocab"]["Ġwombat"] = 9999  # silently different ids
    (folder / "tokenizer.json").write_text(json.dumps(state))
    with caplog.at_level(logging.WARNING, logger="cpt_experiments.data.tokenizer"):
        again = get_tokenizer(BPE, spec, data_dir, cache)
    assert "rebuilding tokenizer" in caplog.text
    assert tokenizer_hash(again) == good


def test_pretrained_by_local_path(corpus, tmp_path: Path) -> None:
    spec, data_dir = corpus
    trained = get_tokenizer(BPE, spec, data_dir, tmp_path / "cache")
    folder = _save(trained, tmp_path / "my_tokenizer")
    loaded = get_tokenizer({"kind": "pretrained", "name_or_path": str(folder)}, None, None, tmp_path / "cache")
    assert tokenizer_hash(loaded) == tokenizer_hash(trained)
    assert loaded.eos_token_id == trained.eos_token_id
    assert loaded("wombat river")["input_ids"] == trained("wombat river")["input_ids"]
    # A scale preset's BPE keys (vocab_size, ...) do not apply to a pretrained tokenizer and are ignored.
    with_bpe_keys = {"kind": "pretrained", "name_or_path": str(folder), "vocab_size": 4096, "train_corpus": "en_old"}
    assert tokenizer_hash(get_tokenizer(with_bpe_keys, None, None, tmp_path)) == tokenizer_hash(trained)


@pytest.mark.parametrize(
    "cfg,key",
    [
        ({"kind": "wordpiece"}, "tokenizer.kind"),
        ({}, "tokenizer.kind"),
        ({"kind": "pretrained", "name_or_path": "/nonexistent/tokenizer_dir"}, "tokenizer.name_or_path"),
        ({"kind": "pretrained"}, "tokenizer.name_or_path"),
        ({**BPE, "vocab_size": 100}, "tokenizer.vocab_size"),
        ({**BPE, "vocab_size": -4}, "tokenizer.vocab_size"),
        ({**BPE, "vocab": 4096}, "tokenizer.vocab"),
        ({**BPE, "name_or_path": "gpt2"}, "tokenizer.name_or_path"),
        ({k: v for k, v in BPE.items() if k != "min_frequency"}, "tokenizer.min_frequency"),  # no default in code
        ({**BPE, "vocab_size": "many"}, "tokenizer.vocab_size"),
    ],
)
def test_bad_config_names_key(corpus, tmp_path: Path, cfg: dict, key: str) -> None:
    spec, data_dir = corpus
    with pytest.raises(ConfigError) as ei:
        get_tokenizer(cfg, spec, data_dir, tmp_path / "cache")
    assert str(ei.value).startswith(key + ":") and "\n" not in str(ei.value)


def test_bpe_needs_a_corpus(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^tokenizer.train_corpus"):
        get_tokenizer(BPE, None, None, tmp_path)


def test_shipped_tokenizer_configs_parse() -> None:
    from omegaconf import OmegaConf

    conf = Path(__file__).resolve().parents[2] / "conf" / "tokenizer"
    bpe, neox = OmegaConf.load(conf / "bpe.yaml"), OmegaConf.load(conf / "neox.yaml")
    assert bpe.kind == "bpe" and bpe.train_corpus == "en_old" and bpe.vocab_size == 4096
    assert neox.kind == "pretrained" and neox.name_or_path == "EleutherAI/gpt-neox-20b"
