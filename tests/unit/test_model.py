"""GPT-NeoX configs: parameter counts, validation errors, save/load round trip, FLOPs formula."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from cpt_experiments.errors import ConfigError
from cpt_experiments.training.architectures import resolve_vocab_size
from cpt_experiments.training.flops import flops_per_token, mfu
from cpt_experiments.training.model import (
    build_model,
    count_parameters,
    describe,
    load_model_cfg,
    load_pretrained,
    main,
    model_flops_per_token,
    parameter_counts,
)

NEOX_TOKENIZER_VOCAB = 50277  # GPT-NeoX-20B tokenizer


def test_smoke_and_cpu_parameter_counts():
    # 2 layers·(12·32² + 13·32) + final LN = 25,472; untied embeddings 2·512·32 = 32,768
    assert count_parameters(load_model_cfg("neox_d32"), vocab_size=512) == 58_240
    cpu = count_parameters(load_model_cfg("neox_d128"), vocab_size=4096)
    assert cpu == 1_841_920  # 2·4096·128 embeddings + 4 layers·(12·128² + 13·128) + final LN


@pytest.mark.parametrize(
    ("name", "vocab", "total", "non_embedding"),
    [
        ("neox_d32", 512, 58_240, 25_472),  # untied: both 512x32 tables left out
        ("neox_d128", 4096, 1_841_920, 793_344),  # untied: 2·4096·128 left out
        ("neox_d64", 4096, 362_240, 100_096),  # tied: the one 4096x64 table counted once in the total, left out once
        ("llama_d64", 4096, 368_960, 106_816),  # tied, SwiGLU d_ff 192: paper 2's trained regime
    ],
)
def test_non_embedding_parameter_counts(name, vocab, total, non_embedding):
    assert parameter_counts(load_model_cfg(name), vocab_size=vocab) == (total, non_embedding)


@pytest.mark.parametrize(
    ("name", "expected"),
    # paper 1, §6.1 and §6.4: the GPT-NeoX configs give these totals with padded vocabularies 50,304 / 50,688.
    [("neox_405m", 405_334_016), ("neox_10b", 9_642_249_216)],
)
def test_paper_shapes_build_on_meta_with_paper_counts(name, expected):
    cfg = load_model_cfg(name)
    model = build_model(cfg, NEOX_TOKENIZER_VOCAB, device="meta")
    assert all(p.is_meta for p in model.parameters())
    assert sum(p.numel() for p in model.parameters()) == expected


def test_cli_prints_counts(capsys):
    assert main(["neox_405m"]) == 0
    assert "405,334,016 params" in capsys.readouterr().out
    assert "non-embedding" in describe("neox_d128")


def test_loss_at_init_is_near_log_vocab():
    torch.manual_seed(0)
    vocab = 512
    model = build_model(load_model_cfg("neox_d32"), vocab)
    tokens = torch.randint(0, vocab, (4, 65))
    with torch.no_grad():
        logits = model(input_ids=tokens[:, :-1]).logits  # (B, T, V)
    assert logits.shape == (4, 64, vocab)
    loss = F.cross_entropy(logits.reshape(-1, vocab), tokens[:, 1:].reshape(-1)).item()
    # small_init gives logits with std ≈ 0.6, adding ≈ σ²/2 ≈ 0.2 nats over the uniform ln V.
    assert math.log(vocab) - 0.05 < loss < math.log(vocab) + 0.35


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    cfg = load_model_cfg("neox_d32")
    model = build_model(cfg, 300).eval()
    model.save_pretrained(tmp_path / "ckpt")
    loaded = load_pretrained(tmp_path / "ckpt", vocab_size=300, model_cfg=cfg).eval()
    tokens = torch.randint(0, 300, (2, 16))
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=tokens).logits, model(input_ids=tokens).logits)
    # the model config never loads weights: building it again gives a fresh random init
    fresh = build_model(cfg, 300)
    assert not torch.equal(fresh.lm_head.weight, model.lm_head.weight)


def test_vocab_mismatch_errors(tmp_path):
    cfg = load_model_cfg("neox_d32")
    build_model(cfg, 300).save_pretrained(tmp_path / "ckpt")
    with pytest.raises(ConfigError, match=r"^model\.vocab_size: tokenizer has 301 tokens but checkpoint .* 300"):
        load_pretrained(tmp_path / "ckpt", vocab_size=301)
    with pytest.raises(ConfigError, match=r"^model\.vocab_size: is 512 but checkpoint"):
        load_pretrained(tmp_path / "ckpt", model_cfg={**cfg, "vocab_size": 512})
    with pytest.raises(ConfigError, match=r"^model\.vocab_size: 4096 is smaller than the tokenizer vocabulary"):
        resolve_vocab_size(load_model_cfg("neox_d128"), NEOX_TOKENIZER_VOCAB)
    assert resolve_vocab_size({"vocab_size": 50304}, NEOX_TOKENIZER_VOCAB) == 50304  # padding is fine
    assert resolve_vocab_size({"vocab_size": None}, 1234) == 1234


def test_missing_checkpoint_is_one_line_config_error(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_pretrained(tmp_path / "nope")
    assert str(info.value).startswith("init_from: cannot load")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("override", "pattern"),
    [
        ({"d_model": 30, "n_heads": 4}, r"^model\.d_model: 30 is not divisible by model\.n_heads=4$"),
        ({"n_layers": 0}, r"^model\.n_layers: must be a positive integer"),
        ({"seq_len": None}, r"^model\.seq_len: must be a positive integer"),
        ({"rotary_pct": 1.5}, r"^model\.rotary_pct: must be in \(0, 1\]"),
        ({"dropout": 1.0}, r"^model\.dropout: must be in \[0, 1\)"),
    ],
)
def test_bad_shapes_raise_config_error(override, pattern):
    with pytest.raises(ConfigError, match=pattern):
        build_model({**load_model_cfg("neox_d32"), **override}, 100, device="meta")


def test_unknown_config_name():
    with pytest.raises(ConfigError, match=r"^model: no config .*known: .*neox_d32"):
        load_model_cfg("nope")


def test_flops_formula_exact():
    # PaLM App. B: 6·N + 12·L·d·T
    assert flops_per_token(1000, n_layers=2, d_model=8, seq_len=16) == 6 * 1000 + 12 * 2 * 8 * 16
    model = build_model(load_model_cfg("neox_405m"), NEOX_TOKENIZER_VOCAB, device="meta")
    n_matmul = 405_334_016 - 50304 * 1024  # everything except the input-embedding lookup
    assert model_flops_per_token(model, 2048) == 6 * n_matmul + 12 * 24 * 1024 * 2048
    assert mfu(tokens_per_s=1000.0, flops_per_token_=2e6, peak_flops_per_s=4e9) == 0.5
