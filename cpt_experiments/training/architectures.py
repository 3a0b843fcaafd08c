"""The two decoder families of ``conf/model``: a config checked and translated to its ``transformers`` config.

``arch`` picks the family: ``gpt_neox`` (paper 1, the default) or ``llama`` (paper 2's LLaMA-1.2B, §4):
pre-norm RMSNorm, SwiGLU MLP, rotary on every head dim, no biases; ``n_kv_heads`` enables grouped-query
attention and ``tie_embeddings`` shares the embedding tables. A LLaMA config must say ``rotary_pct: 1.0`` and
``parallel_residual: false`` (the keys are shared with GPT-NeoX; other values would be silently ignored).

Config keys (``conf/model/*.yaml``): ``name``, ``d_model``, ``n_layers``, ``n_heads``, ``seq_len``
(context, tokens), ``vocab_size`` (embedding rows; null takes the tokenizer's), ``rotary_pct``
(fraction of each head's dims that get rotary embeddings), ``parallel_residual``, ``dropout``,
Optional: ``d_ff`` (MLP width, default
4·d_model), ``rotary_base`` (default 10000).

Building, loading and counting a model from these configs is ``training.model``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, LlamaConfig, LlamaForCausalLM, PretrainedConfig

from cpt_experiments.errors import config_error

_REQUIRED_KEYS = ("d_model", "n_layers", "n_heads", "seq_len")
ARCHS = {"gpt_neox": GPTNeoXForCausalLM, "llama": LlamaForCausalLM}
"""``model.arch`` -> the ``transformers`` class; its ``model_type`` is the key of a saved checkpoint's config."""


def _get(cfg: Mapping[str, Any], key: str, default: Any = None) -> Any:
    value = cfg.get(key, default)
    return default if value is None else value


def _positive_int(cfg: Mapping[str, Any], key: str) -> int:
    value = cfg.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise config_error(f"model.{key}", f"must be a positive integer, got {value!r}")
    return value


def resolve_vocab_size(model_cfg: Mapping[str, Any], tokenizer_vocab_size: int) -> int:
    """Embedding rows for a model: ``model.vocab_size`` if set, else the tokenizer's size.

    A model vocabulary larger than the tokenizer's is allowed (GPT-NeoX pads it to a multiple of
    128, e.g. Pythia has 50,304 rows for a 50,277-token tokenizer); a smaller one is an error
    because token ids would index past the embedding table.
    """
    if tokenizer_vocab_size <= 0:
        raise config_error("tokenizer.vocab_size", f"must be positive, got {tokenizer_vocab_size}")
    model_vocab = model_cfg.get("vocab_size")
    if model_vocab is None:
        return int(tokenizer_vocab_size)
    if model_vocab < tokenizer_vocab_size:
        raise config_error(
            "model.vocab_size",
            f"{model_vocab} is smaller than the tokenizer vocabulary ({tokenizer_vocab_size}); "
            "set model.vocab_size: null or use the model's own tokenizer",
        )
    return int(model_vocab)


def arch_of(model_cfg: Mapping[str, Any]) -> str:
    """``model.arch`` (default ``gpt_neox``), checked against :data:`ARCHS`."""
    arch = _get(model_cfg, "arch", "gpt_neox")
    if arch not in ARCHS:
        raise config_error("model.arch", f"unknown architecture {arch!r} (known: {', '.join(ARCHS)})")
    return str(arch)


def hf_config(model_cfg: Mapping[str, Any], vocab_size: int) -> PretrainedConfig:
    """Validate ``model_cfg`` and translate it to the ``transformers`` config of its ``arch``."""
    return llama_config(model_cfg, vocab_size) if arch_of(model_cfg) == "llama" else neox_config(model_cfg, vocab_size)


def _check_shape(model_cfg: Mapping[str, Any]) -> tuple[int, int]:
    for key in _REQUIRED_KEYS:
        _positive_int(model_cfg, key)
    d_model, n_heads = model_cfg["d_model"], model_cfg["n_heads"]
    if d_model % n_heads:
        raise config_error("model.d_model", f"{d_model} is not divisible by model.n_heads={n_heads}")
    dropout = float(_get(model_cfg, "dropout", 0.0))
    if not 0.0 <= dropout < 1.0:
        raise config_error("model.dropout", f"must be in [0, 1), got {dropout}")
    return d_model, n_heads


def llama_d_ff(d_model: int) -> int:
    """LLaMA's SwiGLU width: 2/3 of 4·d_model (same MLP parameters as a 4·d GELU MLP), rounded up to 32."""
    return -(-(8 * d_model // 3) // 32) * 32


def llama_config(model_cfg: Mapping[str, Any], vocab_size: int) -> LlamaConfig:
    """Validate ``model_cfg`` (``arch: llama``) and translate it to a ``LlamaConfig``."""
    d_model, n_heads = _check_shape(model_cfg)
    if float(_get(model_cfg, "rotary_pct", 1.0)) != 1.0:
        raise config_error("model.rotary_pct", "must be 1.0 for arch=llama (rotary on every head dim)")
    if bool(_get(model_cfg, "parallel_residual", False)):
        raise config_error("model.parallel_residual", "must be false for arch=llama (sequential residual)")
    n_kv = int(_get(model_cfg, "n_kv_heads", n_heads))
    if n_kv < 1 or n_heads % n_kv:
        raise config_error("model.n_kv_heads", f"must divide model.n_heads={n_heads}, got {n_kv}")
    dropout = float(_get(model_cfg, "dropout", 0.0))
    return LlamaConfig(
        vocab_size=resolve_vocab_size(model_cfg, vocab_size),
        hidden_size=d_model,
        num_hidden_layers=model_cfg["n_layers"],
        num_attention_heads=n_heads,
        num_key_value_heads=n_kv,
        intermediate_size=int(_get(model_cfg, "d_ff", llama_d_ff(d_model))),
        max_position_embeddings=model_cfg["seq_len"],
        rope_parameters={"rope_type": "default", "rope_theta": float(_get(model_cfg, "rotary_base", 10000.0))},
        attention_dropout=dropout,
        initializer_range=0.02,  # LLaMA's own init (transformers' default)
        tie_word_embeddings=bool(_get(model_cfg, "tie_embeddings", False)),
        use_cache=False,
    )


def neox_config(model_cfg: Mapping[str, Any], vocab_size: int) -> PretrainedConfig:
    """Validate ``model_cfg`` and translate it to a ``GPTNeoXConfig`` (``vocab_size`` = tokenizer's).

    An ``arch: llama`` config is handed to :func:`llama_config`, so callers that only check the
    shape before any work (``pipeline.planning``) check the right architecture.
    """
    if arch_of(model_cfg) != "gpt_neox":
        return hf_config(model_cfg, vocab_size)
    for key in _REQUIRED_KEYS:
        _positive_int(model_cfg, key)
    d_model, n_heads = model_cfg["d_model"], model_cfg["n_heads"]
    if d_model % n_heads:
        raise config_error("model.d_model", f"{d_model} is not divisible by model.n_heads={n_heads}")
    rotary_pct = float(model_cfg["rotary_pct"])
    if not 0.0 < rotary_pct <= 1.0:
        raise config_error("model.rotary_pct", f"must be in (0, 1], got {rotary_pct}")
    if (d_model // n_heads) * rotary_pct < 2:
        raise config_error("model.rotary_pct", f"rotates fewer than 2 of the {d_model // n_heads} head dims")
    dropout = float(model_cfg["dropout"])
    if not 0.0 <= dropout < 1.0:
        raise config_error("model.dropout", f"must be in [0, 1), got {dropout}")
    d_ff = _get(model_cfg, "d_ff", 4 * d_model)  # null: GPT-NeoX's 4 x d_model
    return GPTNeoXConfig(
        vocab_size=resolve_vocab_size(model_cfg, vocab_size),
        hidden_size=d_model,
        num_hidden_layers=model_cfg["n_layers"],
        num_attention_heads=n_heads,
        intermediate_size=int(d_ff),
        max_position_embeddings=model_cfg["seq_len"],
        rope_parameters={
            "rope_type": "default",
            "rope_theta": float(_get(model_cfg, "rotary_base", 10000.0)),  # null: GPT-NeoX's 10000
            "partial_rotary_factor": rotary_pct,
        },
        use_parallel_residual=bool(model_cfg["parallel_residual"]),
        attention_dropout=dropout,
        hidden_dropout=dropout,
        # GPT-NeoX "small_init" (Nguyen & Salazar 2019): std = sqrt(2 / (5 d)), GPT-NeoX's default (paper 1, §6.1).
        initializer_range=math.sqrt(2.0 / (5.0 * d_model)),
        # Tied: one table for input and output (the small regime-axis models, where the vocabulary dominates).
        tie_word_embeddings=bool(_get(model_cfg, "tie_embeddings", False)),
        use_cache=False,
    )
