"""Training throughput: the suite's Lightning path vs a bare PyTorch loop, plus MFU.

``python -m cpt_experiments.bench train [--steps 30] [--warmup 3] [--micro-batch 16] [--rounds 2]``

Both paths train the ``neox_d128`` model (vocab 4096, context 256) from the same initial weights on the
same synthetic batches, in one process, alternating for ``--rounds`` rounds; the best round of
each counts (the machine may be shared). The Lightning path is configured as the trainer builds
it: CPU, fp32, CSV logger, no checkpointing, no progress bar, LRScheduleCallback and gradient
clipping by ``gradient_clip_val``. The bare loop does the same work by hand: LR write, forward,
cross-entropy, zero_grad, backward, clip, AdamW step. MFU is measured against the best fp32 matmul
throughput observed in the same process. Target: Lightning ≥ 95% of the bare loop.
"""

from __future__ import annotations

import argparse
import copy
import logging
import statistics
import tempfile
import time
import warnings
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from cpt_experiments.training.flops import measure_matmul_peak, mfu
from cpt_experiments.training.lm_module import CausalLMModule, build_optimizer
from cpt_experiments.training.model import build_model, load_model_cfg, model_flops_per_token

VOCAB = 4096
OPTIM = {"lr": 1e-3, "betas": [0.9, 0.95], "eps": 1e-8, "weight_decay": 0.1, "lr_scale": 1.0, "grad_clip_norm": 1.0}


def _schedule(step: int) -> float:
    """A cheap stand-in schedule (absolute LR): linear warmup over 10 steps to 1e-3."""
    return 1e-3 * min(1.0, (step + 1) / 10)


def _batches(n: int, micro_batch: int, seq_len: int) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(1234)
    return [
        {
            "tokens": torch.randint(0, VOCAB, (micro_batch, seq_len + 1), generator=g),
            "source": torch.randint(0, 2, (micro_batch,), generator=g),
            "position": torch.arange(i * micro_batch, (i + 1) * micro_batch),
        }
        for i in range(n)
    ]


class _StepTimer(pl.Callback):
    """Timestamps at every batch start and after the last batch: step k lasts ``stamps[k+1] - stamps[k]``."""

    def __init__(self) -> None:
        self.stamps: list[float] = []

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        self.stamps.append(time.perf_counter())

    def on_train_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        self.stamps.append(time.perf_counter())


def _step_seconds(stamps: list[float], warmup: int) -> list[float]:
    return [b - a for a, b in zip(stamps[warmup:], stamps[warmup + 1 :])]


def _lr_callback() -> pl.Callback:
    from cpt_experiments.training.callbacks.lr_schedule import LRScheduleCallback

    return LRScheduleCallback(_schedule)


def run_lightning(cfg: dict, init_state: dict, batches: list, warmup: int, log_dir: str) -> tuple[list[float], float]:
    """(seconds of each timed step, last loss) of the suite's Lightning path."""
    micro_batch, window = batches[0]["tokens"].shape
    module = CausalLMModule(
        cfg,
        OPTIM,
        VOCAB,
        train_source_names=["a", "b"],
        init_state_dict=init_state,
        global_batch_tokens=micro_batch * (window - 1),
    )
    timer = _StepTimer()
    trainer = pl.Trainer(
        max_steps=len(batches),
        accelerator="cpu",
        devices=1,
        precision="32-true",
        logger=pl.loggers.CSVLogger(log_dir),
        log_every_n_steps=8,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        gradient_clip_val=OPTIM["grad_clip_norm"],
        use_distributed_sampler=False,
        callbacks=[_lr_callback(), timer],
    )
    trainer.fit(module, train_dataloaders=DataLoader(batches, batch_size=None))
    return _step_seconds(timer.stamps, warmup), float(trainer.callback_metrics.get("train/loss", float("nan")))


def run_bare(cfg: dict, init_state: dict, batches: list, warmup: int) -> tuple[list[float], float]:
    """(seconds of each timed step, last loss) of a hand-written loop doing the same work."""
    model = build_model(cfg, VOCAB)
    model.load_state_dict(init_state)
    model.train()
    optimizer = build_optimizer(model, OPTIM)
    stamps = []
    for step, batch in enumerate(DataLoader(batches, batch_size=None)):
        stamps.append(time.perf_counter())
        for group in optimizer.param_groups:
            group["lr"] = _schedule(step) * group["lr_scale"]
        tokens = batch["tokens"]
        logits = model(input_ids=tokens[:, :-1], use_cache=False).logits  # (B, T, V)
        loss = F.cross_entropy(logits.reshape(-1, VOCAB), tokens[:, 1:].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), OPTIM["grad_clip_norm"])
        optimizer.step()
    stamps.append(time.perf_counter())
    return _step_seconds(stamps, warmup), loss.item()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cpt_experiments.bench train", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="neox_d128", help="conf/model name (neox_d32 isolates per-step overhead)")
    parser.add_argument("--steps", type=int, default=30, help="timed optimizer steps per path and round")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps before timing")
    parser.add_argument("--micro-batch", type=int, default=16, help="sequences per step")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds; the best of each path counts")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--peak-size", type=int, default=1024, help="n of the n×n fp32 matmul timed for the peak")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")

    cfg = load_model_cfg(args.model)
    seq_len = cfg["seq_len"]
    torch.manual_seed(0)
    reference = build_model(cfg, VOCAB)
    init_state = copy.deepcopy(reference.state_dict())
    fpt = model_flops_per_token(reference, seq_len)
    batches = _batches(args.warmup + args.steps, args.micro_batch, seq_len)
    timed_tokens = args.steps * args.micro_batch * seq_len

    peak = measure_matmul_peak(args.peak_size, seconds=1.0)
    print(
        f"model {args.model}: {sum(p.numel() for p in reference.parameters()):,} params, {fpt / 1e6:.2f} MFLOPs/token; "
        f"micro-batch {args.micro_batch}×{seq_len}; {args.steps} timed steps after {args.warmup} warmup; "
        f"{args.threads} threads"
    )
    print(f"fp32 matmul peak ({args.peak_size}³): {peak / 1e9:.1f} GFLOP/s")
    steps: dict[str, list[float]] = {"lightning": [], "bare": []}
    best = {"lightning": float("inf"), "bare": float("inf")}
    losses = {}
    with tempfile.TemporaryDirectory() as log_dir:
        for r in range(args.rounds):
            order = ("lightning", "bare") if r % 2 == 0 else ("bare", "lightning")
            for path in order:
                if path == "lightning":
                    step_s, losses[path] = run_lightning(cfg, init_state, batches, args.warmup, log_dir)
                else:
                    step_s, losses[path] = run_bare(cfg, init_state, batches, args.warmup)
                steps[path] += step_s
                best[path] = min(best[path], sum(step_s))
                rate = timed_tokens / sum(step_s)
                print(f"  round {r + 1} {path:9s}: {rate:9.0f} tokens/s  (last loss {losses[path]:.4f})")
    rates = {path: timed_tokens / seconds for path, seconds in best.items()}
    step_tokens = args.micro_batch * seq_len
    median_rates = {path: step_tokens / statistics.median(s) for path, s in steps.items()}
    for path, rate in rates.items():
        print(
            f"{path:9s}: {rate:9.0f} tokens/s (best round)  {median_rates[path]:9.0f} tokens/s (median step)  "
            f"MFU {mfu(rate, fpt, peak):6.1%}"
        )
    ratio = rates["lightning"] / rates["bare"]
    median_ratio = median_rates["lightning"] / median_rates["bare"]
    verdict = "" if ratio >= 0.95 else "  BELOW TARGET"
    print(f"lightning / bare = {ratio:.3f} best round, {median_ratio:.3f} median step  (target ≥ 0.95){verdict}")
    loss_gap = losses["lightning"] - losses["bare"]
    print(f"final-loss difference lightning − bare: {loss_gap:+.2e} (same init, data and LR: should be ~0)")
    return 0
