"""The three shipped corpora build train and validation caches (small caps) with consistent manifests: on the
synthetic stand-in folder always, on the real corpora (marker ``real_data``) when they are present; and the
synthetic stand-ins keep the real files' names and fields."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import compose

from cpt_experiments.data.corpus import CorpusSpec
from cpt_experiments.data.documents import source_fingerprint
from cpt_experiments.data.splits import split_documents
from cpt_experiments.data.token_cache import prepare_corpora
from cpt_experiments.data.tokenizer import get_tokenizer, tokenizer_hash

BENCHMARK_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "benchmarks"


@pytest.fixture(scope="module")
def corpora_cfg() -> dict:
    from omegaconf import OmegaConf

    corpora = OmegaConf.to_container(compose("+corpora=local", config_name=None).corpora, resolve=True)
    for c in corpora.values():
        c.update(max_documents=40, validation_fraction=0.2, max_validation_tokens=5_000)
    return corpora


@pytest.fixture(params=["synthetic", pytest.param("real", marks=pytest.mark.real_data)])
def corpus_dir(request: pytest.FixtureRequest) -> Path:
    """The synthetic corpora, or the real ones (``real_data``: skipped when absent)."""
    return request.getfixturevalue("data_dir" if request.param == "synthetic" else "real_data_dir")


def test_corpora_build_consistent_caches(corpus_dir: Path, corpora_cfg: dict, tmp_path: Path) -> None:
    old = CorpusSpec.from_config(corpora_cfg["en_old"], key="corpora.en_old")
    tok = get_tokenizer(
        {"kind": "bpe", "vocab_size": 512, "min_frequency": 2, "train_max_chars": 300_000}, old, corpus_dir, tmp_path
    )
    out = prepare_corpora(corpora_cfg, tok, corpus_dir, tmp_path, progress=False)
    assert set(out) == {"en_old", "en_new", "de_new"}
    for role, splits in out.items():
        spec = CorpusSpec.from_config(corpora_cfg[role], key=f"corpora.{role}")
        train_ids = {k for k, _ in split_documents(spec, corpus_dir, "train")}
        val_ids = {k for k, _ in split_documents(spec, corpus_dir, "validation")}
        assert train_ids and val_ids and not train_ids & val_ids and len(train_ids | val_ids) == 40
        for split, tf in splits.items():
            m = tf.manifest
            assert m["corpus"] == spec.name and m["split"] == split and m["dtype"] == "uint16"
            assert m["tokenizer_hash"] == tokenizer_hash(tok) and m["vocab_size"] == len(tok) == 512
            assert m["source_fingerprint"] == source_fingerprint(spec, corpus_dir)
            assert tf.num_tokens == m["num_tokens"] == len(tf.tokens) > 0
            assert (tf.path / "tokens.bin").stat().st_size == 2 * tf.num_tokens
            assert int(tf.tokens.max()) < 512
            n_docs = len(train_ids if split == "train" else val_ids)
            eos = int(np.count_nonzero(tf.tokens == tok.eos_token_id))
            if m["truncated"]:
                assert split == "validation" and tf.num_tokens == 5_000 and m["num_documents"] <= n_docs
                assert eos == m["num_documents"] - 1
            else:
                assert m["num_documents"] == n_docs and eos == n_docs
    # German compresses worse with an English-trained tokenizer: fewer characters per token.
    de = CorpusSpec.from_config(corpora_cfg["de_new"])
    en = CorpusSpec.from_config(corpora_cfg["en_old"])

    def chars_per_token(spec: CorpusSpec, role: str) -> float:
        chars = sum(len(t) for _, t in split_documents(spec, corpus_dir, "train"))
        tf = out[role]["train"]
        return chars / (tf.num_tokens - tf.manifest["num_documents"])

    assert chars_per_token(de, "de_new") < chars_per_token(en, "en_old")


def _first_record(path: Path) -> dict:
    with open(path, encoding="utf-8") as fh:
        return json.loads(fh.readline())


def _schema(record: dict) -> dict[str, str]:
    """Field -> JSON type name, one level into objects (ARC's ``choices``); null counts as any type."""
    out = {}
    for key, value in record.items():
        out[key] = type(value).__name__ if value is not None else "null"
        if isinstance(value, dict):
            out.update({f"{key}.{k}": type(v).__name__ for k, v in value.items()})
    return out


@pytest.mark.real_data
def test_synthetic_stand_ins_keep_the_real_files_names_and_fields(data_dir: Path, real_data_dir: Path) -> None:
    """If the real files change shape, the synthetic ones (and the tests passing on them) must follow."""
    for name in ("A_en_wikipedia.jsonl", "B_en_web_mix.jsonl", "C_de_bundestag.jsonl"):
        real, synthetic = _first_record(real_data_dir / name), _first_record(data_dir / name)
        assert set(synthetic) <= set(real) and {"id", "text"} <= set(synthetic), name
        assert all(isinstance(synthetic[k], type(real[k])) for k in synthetic), name
    real_bench = real_data_dir / "benchmarks"
    fixtures = sorted(BENCHMARK_FIXTURES.rglob("*.jsonl"))  # task-family folders (blimp/, multiblimp_de/) too
    assert any(p.parent != BENCHMARK_FIXTURES for p in fixtures)
    for path in fixtures:
        name = path.relative_to(BENCHMARK_FIXTURES)
        real, synthetic = _schema(_first_record(real_bench / name)), _schema(_first_record(path))
        assert set(synthetic) == set(real), name
        assert all(synthetic[k] == real[k] for k in real if "null" not in (real[k], synthetic[k])), name
