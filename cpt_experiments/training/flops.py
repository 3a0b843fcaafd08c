"""Model FLOPs per token, model-FLOPs utilisation (MFU) and a measured matmul peak.

Training FLOPs per token (forward + backward = 3 × forward), PaLM (Chowdhery et al. 2022,
Appendix B) with the 6N term of Kaplan et al. 2020 (§2.1):

    flops/token = 6·N + 12·L·d·T

* N: parameters that take part in a matmul = all parameters minus the input-embedding table
  (a lookup). The untied output projection (d × V) is included: it is a real matmul, and at
  small scale it is a large share of the compute. Biases and LayerNorms are counted too
  (negligible).
* 12·L·d·T: attention scores QKᵀ and the weighted sum A·V, 2·T·d FLOPs each per token and layer
  in the forward pass, ×3 for training; T is the context (training window) length. Like PaLM, the
  causal mask's halving is not credited.

MFU = achieved model FLOPs/s ÷ peak FLOPs/s; activation recomputation is not counted as useful.
"""

from __future__ import annotations

import time

import torch


def flops_per_token(n_matmul_params: int, n_layers: int, d_model: int, seq_len: int) -> float:
    """Training FLOPs per token: ``6·N + 12·L·d·T`` (see module docstring)."""
    return 6.0 * n_matmul_params + 12.0 * n_layers * d_model * seq_len


def mfu(tokens_per_s: float, flops_per_token_: float, peak_flops_per_s: float) -> float:
    """Model FLOPs utilisation in [0, 1] (can exceed 1 only if the peak was underestimated)."""
    return tokens_per_s * flops_per_token_ / peak_flops_per_s


def measure_matmul_peak(
    n: int = 1024, seconds: float = 1.0, dtype: torch.dtype = torch.float32, device: str = "cpu"
) -> float:
    """Best observed FLOPs/s of an ``n×n @ n×n`` matmul, repeated for about ``seconds``.

    A practical peak for MFU: on CPUs the vendor number depends on clocks and the BLAS; on a GPU it is the
    bf16 (or other ``dtype``) tensor-core rate this card really reaches, e.g. ``n=8192, dtype=torch.bfloat16``.
    Uses the best single timing, so a shared machine's interruptions lower it less. On CUDA, kernels run
    asynchronously: each timing synchronises and covers 10 products, so the launch and sync cost ~1%.
    """
    cuda = torch.device(device).type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    reps = 10 if cuda else 1
    a = torch.randn(n, n, dtype=dtype, device=device)
    b = torch.randn(n, n, dtype=dtype, device=device)
    out = torch.empty(n, n, dtype=dtype, device=device)
    for _ in range(3 if cuda else 1):  # warm up the BLAS (thread pool, packing buffers) or the GPU clocks
        torch.mm(a, b, out=out)
    sync()
    best = float("inf")
    deadline = time.perf_counter() + seconds
    while True:
        start = time.perf_counter()
        for _ in range(reps):
            torch.mm(a, b, out=out)
        sync()
        elapsed = (time.perf_counter() - start) / reps
        best = min(best, elapsed)
        if time.perf_counter() >= deadline:
            break
    return 2.0 * n**3 / best
