"""The one per-domain validation: token-weighted nats/token, bits per byte, evenly spaced fixed windows."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

from cpt_experiments.errors import ConfigError
from cpt_experiments.eval.domain_loss import bits_per_byte, domain_losses, fixed_window_indices, make_valset

VOCAB, SEQ = 64, 8


class _ByteTokenizer:
    """Token t decodes to t+1 ASCII letters, so byte counts are known exactly."""

    def decode(self, ids: list[int]) -> str:
        return "".join("a" * (i % 3 + 1) for i in ids)


def _model() -> GPTNeoXForCausalLM:
    torch.manual_seed(0)
    cfg = GPTNeoXConfig(
        vocab_size=VOCAB,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=SEQ,
    )
    return GPTNeoXForCausalLM(cfg).eval()


def test_fixed_windows_are_evenly_spaced_and_deterministic() -> None:
    assert fixed_window_indices(100, 5).tolist() == [0, 25, 50, 74, 99]
    assert fixed_window_indices(3, 10).tolist() == [0, 1, 2]
    assert fixed_window_indices(0, 10).size == 0


def test_losses_are_token_weighted_over_all_windows_and_bpb_counts_target_bytes() -> None:
    rng = np.random.default_rng(0)
    tokens = {"en": rng.integers(0, VOCAB, 5 * SEQ + 1), "de": rng.integers(0, VOCAB, 3 * SEQ + 1)}
    tok = _ByteTokenizer()
    valsets = {d: make_valset(t, SEQ, max_windows=4, tokenizer=tok) for d, t in tokens.items()}
    model = _model()
    out = domain_losses(model, valsets, batch_size=3)  # batches of 3 split the windows unevenly
    for d, vs in valsets.items():
        w = torch.from_numpy(vs.windows)
        with torch.no_grad():
            logits = model(input_ids=w[:, :-1]).logits
        nll = F.cross_entropy(logits.reshape(-1, VOCAB), w[:, 1:].reshape(-1), reduction="sum").item()
        expected_bytes = sum(i % 3 + 1 for i in vs.windows[:, 1:].ravel().tolist())
        assert vs.target_bytes == expected_bytes
        assert out[d]["loss"] == pytest.approx(nll / w[:, 1:].numel(), rel=1e-5)
        assert out[d]["bpb"] == pytest.approx(nll / (math.log(2) * expected_bytes), rel=1e-5)
    assert valsets["de"].windows.shape == (3, SEQ + 1)


def test_bits_per_byte_and_bad_inputs() -> None:
    assert bits_per_byte(math.log(2) * 10, 5) == pytest.approx(2.0)
    with pytest.raises(ValueError):
        bits_per_byte(1.0, 0)
    with pytest.raises(ConfigError, match=r"^corpora.de_new: validation split has 4 tokens"):
        make_valset(np.arange(4), SEQ, 4, _ByteTokenizer(), key="corpora.de_new")
