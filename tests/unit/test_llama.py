"""LLaMA presets: parameter counts on the meta device, a forward pass, save/load as a Hugging Face folder."""

from __future__ import annotations

import pytest
import torch

from cpt_experiments.errors import ConfigError
from cpt_experiments.training.model import build_model, count_parameters, load_model_cfg, load_pretrained


def test_counts_of_the_presets():
    assert count_parameters(load_model_cfg("llama_d128"), 4096) == 1_852_544  # neox_d128: 1,841,920
    assert count_parameters(load_model_cfg("llama_1b2"), 32000) == 1_261_529_088


def test_build_forward_save_load(tmp_path):
    cfg = load_model_cfg("llama_d32")
    model = build_model(cfg, 128)
    assert type(model).__name__ == "LlamaForCausalLM"
    out = model(torch.randint(0, 128, (2, 16)), labels=torch.randint(0, 128, (2, 16)))
    assert torch.isfinite(out.loss)
    model.save_pretrained(tmp_path)
    loaded = load_pretrained(tmp_path, model_cfg=cfg, vocab_size=128)
    assert type(loaded).__name__ == "LlamaForCausalLM"
    with pytest.raises(ConfigError, match="model.arch"):
        load_pretrained(tmp_path, model_cfg={**cfg, "arch": "gpt_neox"})


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ({"arch": "mamba"}, "model.arch"),
        ({"rotary_pct": 0.25}, "model.rotary_pct"),
        ({"n_kv_heads": 3}, "model.n_kv_heads"),
    ],
)
def test_bad_llama_config(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        build_model({**load_model_cfg("llama_d32"), **override}, 128, device="meta")
