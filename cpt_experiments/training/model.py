"""Decoders from ``transformers`` (GPT-NeoX or LLaMA): build from a ``conf/model`` config, count, load pretrained.

The config of each family (``arch``: ``gpt_neox`` or ``llama``) and its checks are ``training.architectures``.
Checkpoints are plain Hugging Face models (``save_pretrained``/``from_pretrained``), so lm-eval
loads them and a run can start from a hub model such as ``EleutherAI/pythia-410m``.

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
from transformers import AutoModelForCausalLM, GPTNeoXForCausalLM, PretrainedConfig, PreTrainedModel

from cpt_experiments.errors import ConfigError, config_error
from cpt_experiments.files import CONF_DIR
from cpt_experiments.training.architectures import ARCHS, arch_of, hf_config
from cpt_experiments.training.flops import flops_per_token

log = logging.getLogger(__name__)

CONF_MODEL_DIR = CONF_DIR / "model"


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


def _check_matches_config(ckpt_config: PretrainedConfig, model_cfg: Mapping[str, Any], source: str) -> None:
    arch = arch_of(model_cfg)
    if ckpt_config.model_type != arch:
        raise config_error("model.arch", f"is {arch} but checkpoint {source} is a {ckpt_config.model_type} model")
    pairs = {
        "d_model": ckpt_config.hidden_size,
        "n_layers": ckpt_config.num_hidden_layers,
        "n_heads": ckpt_config.num_attention_heads,
        "vocab_size": ckpt_config.vocab_size,
    }
    for key, actual in pairs.items():
        wanted = model_cfg.get(key)
        if wanted is not None and wanted != actual:
            raise config_error(f"model.{key}", f"is {wanted} but checkpoint {source} has {actual}")
    seq_len = model_cfg.get("seq_len")
    if seq_len is not None and seq_len > ckpt_config.max_position_embeddings:
        raise config_error(
            "model.seq_len", f"{seq_len} exceeds checkpoint {source} context {ckpt_config.max_position_embeddings}"
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
