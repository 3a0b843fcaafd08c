"""The speed-only switches compute the same thing: attention kernels, gradient checkpointing (CPU, fp32)."""

from __future__ import annotations

import warnings

import pytest
import torch

from cpt_experiments.config import ATTENTION_IMPLEMENTATIONS
from cpt_experiments.training.lm_module import CausalLMModule
from cpt_experiments.training.model import build_model, load_model_cfg

OPTIM = {"betas": [0.9, 0.95], "eps": 1e-8, "weight_decay": 0.1, "lr_scale": 1.0}


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _loss_and_grads(module: CausalLMModule, tokens: torch.Tensor) -> tuple[float, dict[str, torch.Tensor]]:
    loss = module._token_losses(tokens, reduction="mean")
    loss.backward()
    return loss.item(), {n: p.grad.clone() for n, p in module.model.named_parameters()}


def _tokens(vocab: int, seq_len: int, rows: int = 2) -> torch.Tensor:
    return torch.randint(0, vocab, (rows, seq_len + 1), generator=torch.Generator().manual_seed(7))


@pytest.mark.parametrize("name", ["neox_d128", "llama_d128"])
def test_sdpa_and_eager_attention_give_the_same_loss_and_gradients(name):
    cfg, vocab = load_model_cfg(name), 4096
    tokens = _tokens(vocab, cfg["seq_len"])  # the full context: the causal mask matters at every position
    results = {}
    for attention in ATTENTION_IMPLEMENTATIONS:
        torch.manual_seed(0)
        module = CausalLMModule(cfg, OPTIM, vocab, attention=attention)
        assert module.model.config._attn_implementation == attention  # the switch reaches the model
        results[attention] = _loss_and_grads(module, tokens)
    (loss_s, grads_s), (loss_e, grads_e) = results["sdpa"], results["eager"]
    assert abs(loss_s - loss_e) < 1e-5
    for n, g in grads_s.items():
        torch.testing.assert_close(g, grads_e[n], rtol=1e-4, atol=1e-6, msg=n)


def test_sdpa_is_the_default_and_the_weights_do_not_depend_on_the_attention():
    cfg = load_model_cfg("neox_d32")
    torch.manual_seed(0)
    default = build_model(cfg, 512)
    torch.manual_seed(0)
    eager = build_model(cfg, 512, attention="eager")
    assert default.config._attn_implementation == "sdpa"
    for (n, a), b in zip(default.state_dict().items(), eager.state_dict().values()):
        assert torch.equal(a, b), n


@pytest.mark.parametrize("name", ["neox_d32", "llama_d32"])
def test_gradient_checkpointing_gives_the_same_loss_and_gradients(name):
    cfg, vocab = load_model_cfg(name), 512
    tokens = _tokens(vocab, cfg["seq_len"], rows=4)
    results = {}
    for checkpointing in (False, True):
        torch.manual_seed(0)
        module = CausalLMModule(cfg, OPTIM, vocab, gradient_checkpointing=checkpointing)
        module.train()
        assert module.model.is_gradient_checkpointing == checkpointing
        results[checkpointing] = _loss_and_grads(module, tokens)
    assert results[True][0] == pytest.approx(results[False][0], abs=1e-6)
    for n, g in results[False][1].items():
        torch.testing.assert_close(results[True][1][n], g, rtol=1e-5, atol=1e-7, msg=n)


def test_unknown_attention_is_a_config_error_naming_the_key():
    from cpt_experiments.config import TrainConfig
    from cpt_experiments.errors import ConfigError

    fields = dict(global_batch_windows=8, micro_batch=8, checkpoint_every_n_steps=8, val_every_n_steps=8,
                  val_windows=8, num_workers=0, log_every_n_steps=8, torch_threads=1, compile=False,
                  gradient_checkpointing=False)  # fmt: skip
    with pytest.raises(ConfigError, match=r"^train.attention: must be one of sdpa, eager, got 'flash'$"):
        TrainConfig(attention="flash", **fields)
