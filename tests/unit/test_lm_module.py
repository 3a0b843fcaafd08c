"""CausalLMModule: param groups, training, optimizer-state transfer, token counters."""

from __future__ import annotations

import math
import warnings

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from cpt_experiments.config import OptimConfig
from cpt_experiments.errors import ConfigError
from cpt_experiments.training.callbacks.lr_schedule import LRScheduleCallback
from cpt_experiments.training.lm_module import CausalLMModule, param_groups
from cpt_experiments.training.model import load_model_cfg

VOCAB = 256
T = 64  # smoke context
OPTIM = {"betas": [0.9, 0.95], "eps": 1e-8, "weight_decay": 0.1, "lr_scale": 1.0}


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _module(**kwargs) -> CausalLMModule:
    torch.manual_seed(0)
    kwargs.setdefault("optim_cfg", OPTIM)
    return CausalLMModule(load_model_cfg("neox_d32"), vocab_size=VOCAB, **kwargs)


def _train_batches(n: int, seed: int = 0, rows: int = 4) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [
        {
            "tokens": torch.randint(0, VOCAB, (rows, T + 1), generator=g),
            "source": torch.tensor([0, 0, 0, 1][:rows]),  # 3 rows of "a", 1 of "b" in every batch
            "position": torch.arange(rows),
        }
        for _ in range(n)
    ]


def _trainer(max_steps: int, **kwargs) -> pl.Trainer:
    kwargs.setdefault("logger", False)
    kwargs.setdefault("enable_checkpointing", False)
    return pl.Trainer(
        max_steps=max_steps,
        accelerator="cpu",
        enable_progress_bar=False,
        enable_model_summary=False,
        gradient_clip_val=OPTIM.get("grad_clip_norm", 1.0),
        num_sanity_val_steps=0,
        **kwargs,
    )


def _loader(batches) -> DataLoader:
    return DataLoader(batches, batch_size=None)


def test_weight_decay_groups_cover_every_parameter_once():
    module = _module()
    decay, no_decay = module.configure_optimizers().param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert decay["betas"] == (0.9, 0.95) and decay["eps"] == 1e-8 and decay["lr_scale"] == 1.0
    assert all(p.dim() >= 2 for p in decay["params"]) and all(p.dim() < 2 for p in no_decay["params"])
    ids = [id(p) for p in decay["params"] + no_decay["params"]]
    assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in module.parameters()}
    decayed = {id(p) for p in decay["params"]}
    names = {n for n, p in module.model.named_parameters() if id(p) in decayed}
    assert "gpt_neox.embed_in.weight" in names and "lm_head.weight" in names  # embeddings decayed, as in GPT-NeoX
    assert not any("layernorm" in n or n.endswith(".bias") for n in names)
    assert len(param_groups(module.model, OPTIM)) == 2


def test_fused_adamw_is_the_cpu_default_and_can_be_turned_off():
    assert _module().configure_optimizers().defaults["fused"] is True
    assert _module(optim_cfg={**OPTIM, "fused": False}).configure_optimizers().defaults["fused"] is False


def test_bad_optim_config_is_config_error():
    # Optimizer settings are validated once, by the typed config (config.OptimConfig).
    with pytest.raises(ConfigError, match=r"^optim\.betas: must be two numbers"):
        OptimConfig(**{**OPTIM, "betas": [0.9], "grad_clip_norm": 1.0, "fused": None})


def test_fit_reduces_loss_on_repeated_batch_and_logs_counters():
    module = _module(train_source_names=["a", "b"])
    batch = _train_batches(1)[0]
    with torch.no_grad():
        before = module._token_losses(batch["tokens"], "mean").item()
    assert abs(before - math.log(VOCAB)) < 0.35
    trainer = _trainer(12, log_every_n_steps=1, callbacks=[LRScheduleCallback(lambda step: 3e-3)])
    trainer.fit(module, train_dataloaders=_loader([batch] * 12))
    with torch.no_grad():
        after = module._token_losses(batch["tokens"], "mean").item()
    assert after < before - 0.5
    metrics = trainer.callback_metrics
    assert metrics["train/tokens"].item() == 12 * 4 * T  # derived: (global_step + 1) × B·T
    assert metrics["train/tokens/a"].item() == 12 * 3 * T and metrics["train/tokens/b"].item() == 12 * T
    assert metrics["train/flops"].item() == pytest.approx(12 * 4 * T * module.flops_per_token, rel=1e-12)
    assert metrics["train/tokens_per_s"].item() > 0


def test_cumulative_tokens_include_earlier_stages_and_follow_log_steps():
    module = _module(tokens_before=1_000_000_000, global_batch_tokens=1000)
    trainer = _trainer(3, log_every_n_steps=2)
    trainer.fit(module, train_dataloaders=_loader(_train_batches(3)))
    # counters are logged on logger steps only (step 2 of 3); float64 keeps them exact beyond 2**24
    assert trainer.callback_metrics["train/tokens"].item() == 1_000_002_000


def test_keep_optimizer_state_reapplies_config_hyperparameters():
    parent = _module()
    _trainer(3).fit(parent, train_dataloaders=_loader(_train_batches(3)))
    state = parent.trainer.optimizers[0].state_dict()
    for group in state["param_groups"]:  # pretend the parent ran with other hyperparameters
        group.update(betas=(0.5, 0.6), eps=1e-3, weight_decay=0.7, lr_scale=9.0, lr=1.0)
    child_cfg = {**OPTIM, "betas": [0.8, 0.9], "eps": 1e-7, "weight_decay": 0.05, "lr_scale": 0.5}
    child = _module(optim_cfg=child_cfg, init_state_dict=parent.model.state_dict(), init_optimizer_state=state)
    seen = {}

    class Spy(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            opt = trainer.optimizers[0]
            keys = ("betas", "eps", "weight_decay", "lr_scale", "lr")
            seen["groups"] = [{k: g[k] for k in keys} for g in opt.param_groups]
            p = opt.param_groups[0]["params"][0]
            seen["step"] = float(opt.state[p]["step"])

    _trainer(1, callbacks=[Spy()]).fit(child, train_dataloaders=_loader(_train_batches(1, seed=1)))
    decay, no_decay = seen["groups"]
    # the parent's LR (1.0) is not carried over: the placeholder 0 stays until a schedule writes one
    assert decay == {"betas": (0.8, 0.9), "eps": 1e-7, "weight_decay": 0.05, "lr_scale": 0.5, "lr": 0.0}
    assert no_decay["weight_decay"] == 0.0 and no_decay["betas"] == (0.8, 0.9)
    assert seen["step"] == 3.0  # moments (and their step count) came from the parent


def test_optimizer_state_for_other_model_is_config_error():
    parent = _module()
    _trainer(1).fit(parent, train_dataloaders=_loader(_train_batches(1)))
    state = parent.trainer.optimizers[0].state_dict()
    state["param_groups"] = state["param_groups"][:1]
    child = _module(init_optimizer_state=state)
    with pytest.raises(ConfigError, match=r"^init_optimizer_state: does not fit"):
        _trainer(1).fit(child, train_dataloaders=_loader(_train_batches(1)))


def test_source_counters_survive_checkpoint_resume(tmp_path):
    module = _module(train_source_names=["a", "b"])
    trainer = _trainer(4)
    trainer.fit(module, train_dataloaders=_loader(_train_batches(8)))
    ckpt = tmp_path / "step4.ckpt"
    trainer.save_checkpoint(ckpt)
    assert torch.load(ckpt, weights_only=False)["cpt_source_tokens"] == {"a": 4 * 3 * T, "b": 4 * T}

    resumed = _module(train_source_names=["a", "b"])
    trainer = _trainer(6, log_every_n_steps=1)
    trainer.fit(resumed, train_dataloaders=_loader(_train_batches(8)), ckpt_path=ckpt)
    assert resumed.source_tokens.tolist() == [6 * 3 * T, 6 * T]
    assert trainer.callback_metrics["train/tokens/a"].item() == 6 * 3 * T


def test_export_hf_round_trip(tmp_path):
    from transformers import GPTNeoXForCausalLM

    module = _module(train_source_names=["a"])
    out = module.export_hf(tmp_path / "export")
    loaded = GPTNeoXForCausalLM.from_pretrained(out)
    assert set(loaded.state_dict()) == set(module.model.state_dict())  # no training-only buffers leak
    torch.testing.assert_close(loaded.lm_head.weight, module.model.lm_head.weight)


def test_init_state_dict_of_other_shape_is_config_error():
    other = CausalLMModule({**load_model_cfg("neox_d32"), "n_layers": 1}, OPTIM, VOCAB)
    with pytest.raises(ConfigError, match=r"^init_state_dict: does not fit model neox_d32: "):
        _module(init_state_dict=other.model.state_dict())


def test_windows_longer_than_context_are_config_error():
    module = _module()
    with pytest.raises(ConfigError, match=r"^model\.seq_len: is 64 but batches hold 65-token windows"):
        module._token_losses(torch.zeros(2, T + 2, dtype=torch.long), "mean")
