"""Held-out loss per domain of a model, in nats/token and bits per byte, over fixed windows.

The final loss of every stage is measured here for every domain of the experiment (also for a
stage reused from the cache that never saw some domain), so continual and baseline stages are
compared on exactly the same windows. Bits per byte make languages with different
tokens-per-word comparable: bpb = (nats/token x tokens) / (ln 2 x UTF-8 bytes of those tokens).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from cpt_experiments.data.windows import TokenWindows


@dataclass(frozen=True)
class ValSet:
    """The fixed validation windows of one domain and the UTF-8 bytes their targets decode to."""

    windows: np.ndarray  # (N, seq_len + 1) int64
    target_bytes: int


def fixed_windows(tokens: np.ndarray, seq_len: int, max_windows: int) -> np.ndarray:
    """The first ``max_windows`` windows of a validation token file, as an int64 array."""
    tw = TokenWindows(tokens, seq_len)
    n = min(len(tw), max_windows)
    if n < 1:
        raise ValueError(f"validation split has fewer than {seq_len + 1} tokens")
    return np.stack([np.asarray(tw[i], dtype=np.int64) for i in range(n)])


def make_valset(tokens: np.ndarray, seq_len: int, max_windows: int, tokenizer) -> ValSet:
    """Fixed windows plus the byte count of their target tokens (for bits per byte)."""
    windows = fixed_windows(tokens, seq_len, max_windows)
    nbytes = sum(len(tokenizer.decode(w[1:].tolist()).encode("utf-8")) for w in windows)
    return ValSet(windows, max(1, nbytes))


@torch.no_grad()
def domain_losses(model: torch.nn.Module, valsets: Mapping[str, ValSet], batch_size: int = 16) -> dict[str, dict[str, float]]:
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
            nll = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), batch[:, 1:].reshape(-1), reduction="sum")
            total_nll += float(nll)
            total_tokens += batch[:, 1:].numel()
        loss = total_nll / total_tokens
        out[name] = {"loss": loss, "bpb": total_nll / (math.log(2) * vs.target_bytes)}
    model.train(was_training)
    return out
