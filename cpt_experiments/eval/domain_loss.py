"""Held-out loss per domain of a model, in nats/token and bits per byte, over fixed windows.

The one per-domain validation of the suite: ``DomainValidation`` calls it during training and the
pipeline calls it for the final loss of every stage on every domain of the experiment (also for a
stage reused from the cache that never saw some domain), so continual and baseline stages are
compared on exactly the same windows. Bits per byte make languages with different tokens-per-word
comparable (paper 1 compares English and German losses; §5 and Table 3).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from cpt_experiments.data.windows import TokenWindows
from cpt_experiments.errors import config_error

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ValSet:
    """The fixed validation windows of one domain and the UTF-8 bytes their targets decode to."""

    windows: np.ndarray  # (N, seq_len + 1) int64
    target_bytes: int


def bits_per_byte(total_nll_nats: float, total_bytes: int) -> float:
    """Bits per UTF-8 byte: ``total_nll_nats / (ln 2 * total_bytes)``.

    ``total_nll_nats`` is the summed negative log-likelihood (natural log) of a text and
    ``total_bytes`` its length in UTF-8 bytes. Unlike nats/token it does not depend on the
    tokenizer; it is the quantity lm-eval reports as ``bits_per_byte``.
    """
    if total_bytes <= 0:
        raise ValueError(f"total_bytes must be positive, got {total_bytes}")
    return float(total_nll_nats) / (math.log(2) * total_bytes)


def fixed_window_indices(num_windows: int, max_windows: int) -> np.ndarray:
    """``min(num_windows, max_windows)`` window indices evenly spaced over the split (no RNG).

    Evenly spaced rather than the first N, so the windows cover every part of the validation
    documents, not only the first few.
    """
    m = min(int(num_windows), int(max_windows))
    return np.unique(np.linspace(0, num_windows - 1, m).round().astype(np.int64)) if m > 0 else np.zeros(0, np.int64)


def make_valset(tokens: np.ndarray, seq_len: int, max_windows: int, tokenizer, *, key: str = "validation") -> ValSet:
    """Fixed windows of a validation token array plus the byte count of their target tokens."""
    tw = TokenWindows(tokens, seq_len)
    if len(tw) < 1:
        raise config_error(key, f"validation split has {len(tokens)} tokens, fewer than one window of {seq_len + 1}")
    if max_windows > len(tw):
        log.warning("train.val_windows: %d requested, but %s allows %d windows; using those", max_windows, key, len(tw))
    windows = tw.gather(fixed_window_indices(len(tw), max_windows))
    nbytes = sum(len(tokenizer.decode(w[1:].tolist()).encode("utf-8")) for w in windows)
    return ValSet(windows, max(1, nbytes))


@torch.no_grad()
def domain_losses(
    model: torch.nn.Module, valsets: Mapping[str, ValSet], batch_size: int = 16
) -> dict[str, dict[str, float]]:
    """``{domain: {"loss": nats/token, "bpb": bits/byte}}`` of ``model`` (a causal LM) on each valset."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out: dict[str, dict[str, float]] = {}
    for name, vs in valsets.items():
        total_nll, total_tokens = 0.0, 0
        for i in range(0, len(vs.windows), batch_size):
            batch = torch.from_numpy(vs.windows[i : i + batch_size]).to(device)
            logits = model(input_ids=batch[:, :-1]).logits  # (B, T, V)
            nll = F.cross_entropy(
                logits.float().reshape(-1, logits.size(-1)), batch[:, 1:].reshape(-1), reduction="sum"
            )
            total_nll += float(nll)
            total_tokens += batch[:, 1:].numel()
        out[name] = {"loss": total_nll / total_tokens, "bpb": bits_per_byte(total_nll, vs.target_bytes)}
    model.train(was_training)
    return out
