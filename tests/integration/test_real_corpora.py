"""The three shipped corpora build train and validation caches (small caps) with consistent manifests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cpt_experiments.data.corpus import CorpusSpec, source_fingerprint, split_documents
from cpt_experiments.data.token_cache import prepare_corpora
from cpt_experiments.data.tokenizer import get_tokenizer, tokenizer_hash

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


@pytest.fixture(scope="module")
def corpora_cfg() -> dict:
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name=None, overrides=["+corpora=local"])
    corpora = OmegaConf.to_container(cfg.corpora, resolve=True)
    for c in corpora.values():
        c.update(max_documents=40, validation_fraction=0.2, max_validation_tokens=5_000)
    return corpora


def test_real_corpora_build_consistent_caches(shared_data_dir: Path, corpora_cfg: dict, tmp_path: Path) -> None:
    old = CorpusSpec.from_config(corpora_cfg["en_old"], key="corpora.en_old")
    tok = get_tokenizer({"kind": "bpe", "vocab_size": 512, "train_max_chars": 300_000}, old, shared_data_dir, tmp_path)
    out = prepare_corpora(corpora_cfg, tok, shared_data_dir, tmp_path, progress=False)
    assert set(out) == {"en_old", "en_new", "de_new"}
    for role, splits in out.items():
        spec = CorpusSpec.from_config(corpora_cfg[role], key=f"corpora.{role}")
        train_ids = {k for k, _ in split_documents(spec, shared_data_dir, "train")}
        val_ids = {k for k, _ in split_documents(spec, shared_data_dir, "validation")}
        assert train_ids and val_ids and not train_ids & val_ids and len(train_ids | val_ids) == 40
        for split, tf in splits.items():
            m = tf.manifest
            assert m["corpus"] == spec.name and m["split"] == split and m["dtype"] == "uint16"
            assert m["tokenizer_hash"] == tokenizer_hash(tok) and m["vocab_size"] == len(tok) == 512
            assert m["source_fingerprint"] == source_fingerprint(spec, shared_data_dir)
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
        chars = sum(len(t) for _, t in split_documents(spec, shared_data_dir, "train"))
        tf = out[role]["train"]
        return chars / (tf.num_tokens - tf.manifest["num_documents"])

    assert chars_per_token(de, "de_new") < chars_per_token(en, "en_old")
