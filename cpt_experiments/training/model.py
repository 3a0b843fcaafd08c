"""Decoders from ``transformers`` (GPT-NeoX or LLaMA): build from a ``conf/model`` config, count, load pretrained.

``arch`` picks the family: ``gpt_neox`` (paper 1, the default) or ``llama`` (paper 2's LLaMA-1.2B, §4):
pre-norm RMSNorm, SwiGLU MLP, rotary on every head dim, no biases; ``n_kv_heads`` enables grouped-query
attention and ``tie_embeddings`` shares the embedding tables. A LLaMA config must say ``rotary_pct: 1.0`` and
``parallel_residual: false`` (the keys are shared with GPT-NeoX; other values would be silently ignored).

Checkpoints are plain Hugging Face models (``save_pretrained``/``from_pretrained``), so lm-eval
loads them and a run can start from a hub model such as ``EleutherAI/pythia-410m``.

Config keys (``conf/model/*.yaml``): ``name``, ``d_model``, ``n_layers``, ``n_heads``, ``seq_len``
(context, tokens), ``vocab_size`` (embedding rows; null takes the tokenizer's), ``rotary_pct``
(fraction of each head's dims that get rotary embeddings), ``parallel_residual``, ``dropout``,
Optional: ``d_ff`` (MLP width, default
4·d_model), ``rotary_base`` (default 10000).

CLI: ``python -m cpt_experiments.training.model neox_405m [llama_1b2 ...]`` prints parameter counts and
FLOPs/token of the named configs, built on the meta device (no memory, no download).
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    GPTNeoXConfig,
    GPTNeoXForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    PretrainedConfig,
    PreTrainedModel,
)

from cpt_experiments.errors import ConfigError, config_error
from cpt_experiments.files import CONF_DIR
from cpt_experiments.training.flops import flops_per_token

log = logging.getLogger(__name__)

CONF_MODEL_DIR = CONF_DIR / "model"

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


def _apply_wang_init(model: GPTNeoXForCausalLM) -> None:
    """GPT-NeoX "wang_init" for the residual output projections: std = 2 / (n_layers · sqrt(d))."""
    cfg = model.config
    std = 2.0 / (cfg.num_hidden_layers * math.sqrt(cfg.hidden_size))
    with torch.no_grad():
        for layer in model.gpt_neox.layers:
            for proj in (layer.attention.dense, layer.mlp.dense_4h_to_h):
                proj.weight.normal_(0.0, std)


def build_model(
    model_cfg: Mapping[str, Any], vocab_size: int, device: str | torch.device = "cpu", attention: str = "sdpa"
) -> PreTrainedModel:
    """A freshly initialised causal LM (GPT-NeoX or LLaMA, by ``arch``) for ``model_cfg`` and a tokenizer of ``vocab_size`` tokens.

    Always random weights: a pretrained start is a stage's ``init_from`` (``load_pretrained``), never
    a property of the model config. ``device="meta"`` builds the shape only (no memory). ``attention``
    (``train.attention``) picks the kernel, not the math: the weights and init are the same for every value.
    """
    config = hf_config(model_cfg, vocab_size)
    with torch.device(device):
        model = ARCHS[arch_of(model_cfg)](config)
    model.set_attn_implementation(attention)  # transformers' default is sdpa already; eager stays selectable
    if torch.device(device).type != "meta" and isinstance(model, GPTNeoXForCausalLM):
        _apply_wang_init(model)
    return model


def enable_checkpointing(model: PreTrainedModel) -> None:
    """Recompute each decoder layer's activations in backward (``train.gradient_checkpointing``).

    Non-reentrant: the variant that works under autocast and ``torch.compile``. ``transformers`` 5.2x renamed
    the method (``activation_checkpointing_enable``); older 5.x releases (e.g. 5.17) have only the old name.
    """
    enable = getattr(model, "activation_checkpointing_enable", None)
    if enable is not None:
        enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def _check_matches_config(hf_config: PretrainedConfig, model_cfg: Mapping[str, Any], source: str) -> None:
    arch = arch_of(model_cfg)
    if hf_config.model_type != arch:
        raise config_error("model.arch", f"is {arch} but checkpoint {source} is a {hf_config.model_type} model")
    pairs = {
        "d_model": hf_config.hidden_size,
        "n_layers": hf_config.num_hidden_layers,
        "n_heads": hf_config.num_attention_heads,
        "vocab_size": hf_config.vocab_size,
    }
    for key, actual in pairs.items():
        wanted = model_cfg.get(key)
        if wanted is not None and wanted != actual:
            raise config_error(f"model.{key}", f"is {wanted} but checkpoint {source} has {actual}")
    seq_len = model_cfg.get("seq_len")
    if seq_len is not None and seq_len > hf_config.max_position_embeddings:
        raise config_error(
            "model.seq_len", f"{seq_len} exceeds checkpoint {source} context {hf_config.max_position_embeddings}"
        )


def load_pretrained(
    name_or_path: str | Path,
    *,
    vocab_size: int | None = None,
    model_cfg: Mapping[str, Any] | None = None,
    device: str | torch.device = "cpu",
    key: str = "init_from",
) -> PreTrainedModel:
    """Load a causal-LM checkpoint (GPT-NeoX or LLaMA) through ``from_pretrained`` (hub name or local directory).

    ``vocab_size`` (the tokenizer's) must fit the checkpoint's embedding table, and every
    non-null shape key of ``model_cfg`` must equal the checkpoint's; otherwise a ConfigError
    (a missing checkpoint names ``key``, the config key that asked for it).
    """
    source = str(name_or_path)
    try:
        model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    except OSError as exc:  # missing dir / no network: keep the message to one line
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise config_error(key, f"cannot load {source!r}: {first_line}") from exc
    if model_cfg is not None:
        _check_matches_config(model.config, model_cfg, source)
    if vocab_size is not None and vocab_size > model.config.vocab_size:
        raise config_error(
            "model.vocab_size",
            f"tokenizer has {vocab_size} tokens but checkpoint {source} has {model.config.vocab_size} embeddings",
        )
    model.config.use_cache = False
    return model.to(device)


def embedding_parameters(model: PreTrainedModel) -> int:
    """Parameters of the input-embedding table (a lookup: no matmul FLOPs)."""
    return model.get_input_embeddings().weight.numel()


def count_parameters(model_cfg: Mapping[str, Any], vocab_size: int) -> int:
    """Total parameters (embeddings included) of ``model_cfg``, built on the meta device."""
    return parameter_counts(model_cfg, vocab_size)[0]


def non_embedding_parameters(model: PreTrainedModel) -> int:
    """Parameters outside the token-embedding and unembedding tables (a tied table is one table)."""
    total = sum(p.numel() for p in model.parameters())
    tied = model.get_output_embeddings().weight is model.get_input_embeddings().weight
    return total - embedding_parameters(model) * (1 if tied else 2)


def parameter_counts(model_cfg: Mapping[str, Any], vocab_size: int) -> tuple[int, int]:
    """(total, non-embedding) parameters of ``model_cfg`` on the meta device.

    Total counts a tied embedding table once; non-embedding leaves out the input embedding and the
    output projection (the tied table, or both untied tables), as in Kaplan et al.'s N.
    """
    model = build_model(model_cfg, vocab_size, device="meta")
    return sum(p.numel() for p in model.parameters()), non_embedding_parameters(model)


def model_flops_per_token(model: PreTrainedModel, seq_len: int) -> float:
    """Training FLOPs per token of ``model`` at context ``seq_len`` (see ``flops.flops_per_token``).

    Matmul parameters = all parameters minus the input lookup table; a tied output projection shares
    that table's storage (``parameters()`` lists it once) but still costs a matmul, so it is added back.
    """
    n_matmul = sum(p.numel() for p in model.parameters()) - embedding_parameters(model)
    if model.get_output_embeddings().weight is model.get_input_embeddings().weight:
        n_matmul += embedding_parameters(model)
    cfg = model.config
    return flops_per_token(n_matmul, cfg.num_hidden_layers, cfg.hidden_size, seq_len)


def load_model_cfg(name: str) -> dict[str, Any]:
    """Read ``conf/model/<name>.yaml`` as a plain dict."""
    from omegaconf import OmegaConf

    path = CONF_MODEL_DIR / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in CONF_MODEL_DIR.glob("*.yaml")))
        raise config_error("model", f"no config {path}; known: {known}")
    return OmegaConf.to_container(OmegaConf.load(path), resolve=True)  # type: ignore[return-value]


def describe(name: str, tokenizer_vocab_size: int | None = None) -> str:
    """One line: parameter counts and FLOPs/token of ``conf/model/<name>.yaml`` (meta device).

    ``tokenizer_vocab_size`` defaults to the config's ``vocab_size``, or 50,277 (GPT-NeoX-20B
    tokenizer) when that is null.
    """
    cfg = load_model_cfg(name)
    vocab = tokenizer_vocab_size or cfg.get("vocab_size") or 50277
    model = build_model(cfg, vocab, device="meta")
    total = sum(p.numel() for p in model.parameters())
    fpt = model_flops_per_token(model, cfg["seq_len"])
    return (
        f"{name} ({arch_of(cfg)}): {total:,} params ({non_embedding_parameters(model):,} non-embedding), "
        f"vocab {model.config.vocab_size}, "
        f"{fpt / 1e9:.3f} GFLOPs/token at context {cfg['seq_len']}"
    )


def main(argv: list[str] | None = None) -> int:
    names = list(sys.argv[1:] if argv is None else argv) or ["neox_405m", "neox_10b"]
    try:
        for name in names:
            print(describe(name))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
