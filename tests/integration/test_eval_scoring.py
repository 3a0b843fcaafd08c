"""Token-budget scoring (``eval.lm.score_requests``) against stock HFLM and a direct computation with a tiny
random GPT-NeoX: same log-likelihoods and greedy flags whatever the batch geometry, left truncation included."""

from __future__ import annotations

import random

import pytest
import torch
from test_eval_harness import CONTEXT, PARAGRAPHS, direct_loglikelihood, tiny_model_and_tokenizer

from cpt_experiments.eval.lm import batch_capacity, score_requests, windowed_hflm

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _requests() -> list[tuple]:
    """Short and long (left-truncated) requests, an empty-context one (EOS), a duplicate and a greedy one."""
    model, tokenizer = tiny_model_and_tokenizer()
    tokens = tokenizer(" ".join(PARAGRAPHS), add_special_tokens=False)["input_ids"]
    rng = random.Random(0)
    out = []
    for i in range(14):
        n_ctx, n_cont = rng.randint(1, 2 * CONTEXT), rng.randint(1, CONTEXT)
        start = rng.randint(0, len(tokens) - n_ctx - n_cont)
        ctx, cont = tokens[start : start + n_ctx], tokens[start + n_ctx : start + n_ctx + n_cont]
        out.append((("ctx", str(i)), ctx, cont))
    out.append((("", "sentence"), [tokenizer.eos_token_id], tokens[:12]))
    out.append(out[3])  # scored once, reported twice
    # The model's own greedy continuation of a short context: is_greedy must come out True.
    ctx = tokens[:5]
    greedy = []
    with torch.no_grad():
        for _ in range(3):
            greedy.append(int(model(torch.tensor([ctx + greedy])).logits[0, -1].argmax()))
    out.append((("greedy", ""), ctx, greedy))
    return out


@pytest.mark.parametrize("batch_tokens", [1, 200, 100_000])
def test_scores_match_stock_hflm_and_direct_computation(batch_tokens: int) -> None:
    model, tokenizer = tiny_model_and_tokenizer()
    requests = _requests()
    assert any(len(c) + len(t) > CONTEXT + 1 for _, c, t in requests)  # left truncation is exercised
    ours = score_requests(
        lambda x: model(x).logits, requests, max_length=CONTEXT, batch_tokens=batch_tokens, max_batch=64
    )
    stock = windowed_hflm()(pretrained=model, tokenizer=tokenizer, batch_size=4, max_length=CONTEXT)
    reference = stock._loglikelihood_tokens(requests)
    assert len(ours) == len(requests)
    for (_, ctx, cont), (lp, greedy), (ref_lp, ref_greedy) in zip(requests, ours, reference, strict=True):
        assert lp == pytest.approx(ref_lp, abs=1e-3)
        assert lp == pytest.approx(direct_loglikelihood(model, ctx, cont, CONTEXT), abs=1e-3)
        assert greedy == ref_greedy
    assert ours[-1][1] is True and ours[3] == ours[-2]


def test_budget_model_wrapper_matches_stock_batching() -> None:
    """The same HFLM subclass with and without ``batch_tokens``, through lm-eval's own request path."""
    model, tokenizer = tiny_model_and_tokenizer()
    requests = _requests()
    cls = windowed_hflm()
    stock = cls(pretrained=model, tokenizer=tokenizer, batch_size=4, max_length=CONTEXT)
    budget = cls(pretrained=model, tokenizer=tokenizer, batch_size=64, batch_tokens=300, max_length=CONTEXT)
    for (lp, greedy), (ref_lp, ref_greedy) in zip(
        budget._loglikelihood_tokens(requests), stock._loglikelihood_tokens(requests), strict=True
    ):
        assert lp == pytest.approx(ref_lp, abs=1e-3) and greedy == ref_greedy


def test_batch_capacity() -> None:
    assert batch_capacity(15, 4096, 10_000) == 273
    assert batch_capacity(256, 4096, 10_000) == 16
    assert batch_capacity(300, 256, 10_000) == 1  # a sequence longer than the budget still runs alone
    assert batch_capacity(1, 4096, 64) == 64
