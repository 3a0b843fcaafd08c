"""Training throughput: the suite's Lightning path vs a bare PyTorch loop, MFU and peak memory, on CPU or one GPU.

``python -m cpt_experiments.bench train [--device cpu|cuda] [--model neox_d128] [--steps 30] [--warmup 3]
[--micro-batch 16] [--rounds 2] [--precision P] [--attention sdpa|eager] [--compile] [--gradient-checkpointing]
[--json FILE]``

Both paths train the same model (``conf/model/<name>``; vocab 4096 unless the config fixes one) from the same
initial weights on the same random batches, in one process, alternating for ``--rounds`` rounds; the best
round of each counts (the machine may be shared). The Lightning path is what ``training.trainer`` builds:
the precision plugin (``32-true`` on CPU, ``bf16-mixed`` on CUDA by default), CSV logger, no checkpointing,
LRScheduleCallback, gradient clipping by ``gradient_clip_val``. The bare loop does the same work by hand: LR
write, forward and cross-entropy (under bf16 autocast where the precision says so), zero_grad, backward,
clip, AdamW step (fused on CPU and CUDA, as ``training.lm_module.build_optimizer`` picks). On CUDA every
timestamp synchronises the device, so a step's time is the GPU's, not the launch queue's.

MFU = model FLOPs/s (``training.flops``: 6N + 12·L·d·T per token; recomputation is not useful work) over the
best matmul rate measured in the same process: fp32 on CPU, bf16 ``--peak-size``³ products on a GPU (the
rate this card reaches, not the datasheet's). Peak memory: ``torch.cuda.max_memory_allocated`` per path.
Target: Lightning ≥ 95% of the bare loop. ``--device cuda`` without a visible GPU is an error, never a CPU run.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import logging
import statistics
import tempfile
import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from cpt_experiments.config import ATTENTION_IMPLEMENTATIONS
from cpt_experiments.training.flops import measure_matmul_peak, mfu
from cpt_experiments.training.lm_module import CausalLMModule, build_optimizer
from cpt_experiments.training.model import build_model, enable_checkpointing, load_model_cfg, model_flops_per_token

VOCAB = 4096
OPTIM = {"lr": 1e-3, "betas": [0.9, 0.95], "eps": 1e-8, "weight_decay": 0.1, "lr_scale": 1.0, "grad_clip_norm": 1.0}


def _schedule(step: int) -> float:
    """A cheap stand-in schedule (absolute LR): linear warmup over 10 steps to 1e-3."""
    return 1e-3 * min(1.0, (step + 1) / 10)


def _batches(n: int, micro_batch: int, seq_len: int, vocab: int) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(1234)
    return [
        {
            "tokens": torch.randint(0, vocab, (micro_batch, seq_len + 1), generator=g),
            "source": torch.randint(0, 2, (micro_batch,), generator=g),
            "position": torch.arange(i * micro_batch, (i + 1) * micro_batch),
        }
        for i in range(n)
    ]


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


class _StepTimer(pl.Callback):
    """Timestamps at every batch start and after the last batch: step k lasts ``stamps[k+1] - stamps[k]``."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.stamps: list[float] = []

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        _sync(self.device)
        self.stamps.append(time.perf_counter())

    def on_train_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        _sync(self.device)
        self.stamps.append(time.perf_counter())


def _step_seconds(stamps: list[float], warmup: int) -> list[float]:
    return [b - a for a, b in zip(stamps[warmup:], stamps[warmup + 1 :])]


def _lr_callback() -> pl.Callback:
    from cpt_experiments.training.callbacks.lr_schedule import LRScheduleCallback

    return LRScheduleCallback(_schedule)


def _speed(args: argparse.Namespace) -> dict[str, Any]:
    return {"attention": args.attention, "compile": args.compile, "gradient_checkpointing": args.gradient_checkpointing}


def run_lightning(cfg: dict, init_state: dict, batches: list, args: argparse.Namespace, log_dir: str):
    """(seconds of each timed step, last loss) of the suite's Lightning path."""
    micro_batch, window = batches[0]["tokens"].shape
    module = CausalLMModule(
        cfg, OPTIM, args.vocab, train_source_names=["a", "b"], init_state_dict=init_state,
        global_batch_tokens=micro_batch * (window - 1), **_speed(args),
    )  # fmt: skip
    timer = _StepTimer(args.device)
    trainer = pl.Trainer(
        max_steps=len(batches),
        accelerator="gpu" if args.device == "cuda" else "cpu",
        devices=1,
        precision=args.precision,
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
    return _step_seconds(timer.stamps, args.warmup), float(trainer.callback_metrics.get("train/loss", float("nan")))


def run_bare(cfg: dict, init_state: dict, batches: list, args: argparse.Namespace):
    """(seconds of each timed step, last loss) of a hand-written loop doing the same work."""
    device = args.device
    model = build_model(cfg, args.vocab, attention=args.attention)
    model.load_state_dict(init_state)
    model.to(device).train()
    if args.gradient_checkpointing:
        enable_checkpointing(model)
    if args.compile:
        model.compile()
    optimizer = build_optimizer(model, OPTIM)
    bf16 = args.precision.startswith("bf16")
    autocast = torch.autocast(device, dtype=torch.bfloat16) if bf16 else nullcontext()
    stamps = []
    for step, batch in enumerate(DataLoader(batches, batch_size=None)):
        _sync(device)
        stamps.append(time.perf_counter())
        for group in optimizer.param_groups:
            group["lr"] = _schedule(step) * group["lr_scale"]
        tokens = batch["tokens"].to(device, non_blocking=True)
        with autocast:
            logits = model(input_ids=tokens[:, :-1], use_cache=False).logits  # (B, T, V)
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), tokens[:, 1:].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), OPTIM["grad_clip_norm"])
        optimizer.step()
    _sync(device)
    stamps.append(time.perf_counter())
    return _step_seconds(stamps, args.warmup), loss.item()


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m cpt_experiments.bench train", description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="cuda: one GPU (an error without)")
    parser.add_argument("--model", default="neox_d128", help="conf/model name (neox_d32 isolates per-step overhead)")
    parser.add_argument("--steps", type=int, default=30, help="timed optimizer steps per path and round")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps before timing (compile happens here)")
    parser.add_argument("--micro-batch", type=int, default=16, help="sequences per step")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds; the best of each path counts")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--precision", help="Lightning precision; default 32-true on cpu, bf16-mixed on cuda")
    parser.add_argument("--attention", choices=ATTENTION_IMPLEMENTATIONS, default="sdpa", help="train.attention")
    parser.add_argument("--compile", action="store_true", help="train.compile: torch.compile the model")
    parser.add_argument("--gradient-checkpointing", action="store_true", help="train.gradient_checkpointing")
    parser.add_argument("--peak-size", type=int, help="n of the n³ matmul timed for the peak (1024 cpu, 8192 cuda)")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is visible (torch.cuda.is_available() is False)")
    args.precision = args.precision or ("bf16-mixed" if args.device == "cuda" else "32-true")
    args.peak_size = args.peak_size or (8192 if args.device == "cuda" else 1024)
    return args


@dataclass
class _Race:
    """Both paths' timings over every round: seconds per timed step, best round (s), last loss, peak memory (GiB)."""

    steps: dict[str, list[float]] = field(default_factory=lambda: {"lightning": [], "bare": []})
    best: dict[str, float] = field(default_factory=lambda: {"lightning": float("inf"), "bare": float("inf")})
    losses: dict[str, float] = field(default_factory=dict)
    peak_mem: dict[str, float] = field(default_factory=lambda: {"lightning": 0.0, "bare": 0.0})


def _initial_weights(cfg: dict, vocab: int, seq_len: int) -> tuple[dict[str, torch.Tensor], float, int]:
    """(initial state both paths start from, model FLOPs per token, parameter count) of the seeded model."""
    torch.manual_seed(0)
    reference = build_model(cfg, vocab)
    init_state = copy.deepcopy(reference.state_dict())
    return init_state, model_flops_per_token(reference, seq_len), sum(p.numel() for p in reference.parameters())


def _race(cfg: dict, init_state: dict, batches: list, args: argparse.Namespace, timed_tokens: int) -> _Race:
    """Alternate the two paths for ``--rounds`` rounds (the order flips each round), printing each round's rate."""
    cuda = args.device == "cuda"
    race = _Race()
    with tempfile.TemporaryDirectory() as log_dir:
        for r in range(args.rounds):
            for path in ("lightning", "bare") if r % 2 == 0 else ("bare", "lightning"):
                if cuda:  # each path's peak memory is its own, not what the other left cached
                    gc.collect()
                    torch.cuda.empty_cache()
                    torch.cuda.reset_peak_memory_stats()
                if path == "lightning":
                    step_s, race.losses[path] = run_lightning(cfg, init_state, batches, args, log_dir)
                else:
                    step_s, race.losses[path] = run_bare(cfg, init_state, batches, args)
                if cuda:
                    race.peak_mem[path] = max(race.peak_mem[path], torch.cuda.max_memory_allocated() / 2**30)
                race.steps[path] += step_s
                race.best[path] = min(race.best[path], sum(step_s))
                print(
                    f"  round {r + 1} {path:9s}: {timed_tokens / sum(step_s):9.0f} tokens/s  "
                    f"(last loss {race.losses[path]:.4f})"
                )
    return race


def _print_comparison(
    race: _Race, rates: dict[str, float], median_rates: dict[str, float], fpt: float, peak: float, cuda: bool
) -> float:
    """Print each path's tokens/s (best round, median step), MFU and memory, then the ratio and loss gap.

    Returns the Lightning / bare ratio of the best rounds (the target is >= 0.95).
    """
    for path, rate in rates.items():
        memory = f"  peak memory {race.peak_mem[path]:.2f} GiB" if cuda else ""
        print(
            f"{path:9s}: {rate:9.0f} tokens/s (best round)  {median_rates[path]:9.0f} tokens/s (median step)  "
            f"MFU {mfu(rate, fpt, peak):6.1%}{memory}"
        )
    ratio = rates["lightning"] / rates["bare"]
    median_ratio = median_rates["lightning"] / median_rates["bare"]
    verdict = "" if ratio >= 0.95 else "  BELOW TARGET"
    print(f"lightning / bare = {ratio:.3f} best round, {median_ratio:.3f} median step  (target ≥ 0.95){verdict}")
    loss_gap = race.losses["lightning"] - race.losses["bare"]
    print(f"final-loss difference lightning − bare: {loss_gap:+.2e} (same init, data and LR: should be ~0)")
    return ratio


def main(argv: list[str] | None = None) -> int:
    """Time both paths; print tokens/s, MFU and the Lightning / bare ratio (and write ``--json``)."""
    args = _parse(argv)
    torch.set_num_threads(args.threads)
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")

    cfg = load_model_cfg(args.model)
    seq_len = cfg["seq_len"]
    args.vocab = cfg.get("vocab_size") or VOCAB
    init_state, fpt, params = _initial_weights(cfg, args.vocab, seq_len)
    batches = _batches(args.warmup + args.steps, args.micro_batch, seq_len, args.vocab)
    timed_tokens = args.steps * args.micro_batch * seq_len

    cuda = args.device == "cuda"
    peak_dtype = torch.bfloat16 if cuda else torch.float32
    peak = measure_matmul_peak(args.peak_size, seconds=1.0, dtype=peak_dtype, device=args.device)
    where = torch.cuda.get_device_name() if cuda else f"cpu, {args.threads} threads"
    print(
        f"model {args.model}: {params:,} params, {fpt / 1e6:.2f} MFLOPs/token; micro-batch {args.micro_batch}×{seq_len}; "
        f"{args.steps} timed steps after {args.warmup} warmup; {where}; precision {args.precision}; {_speed(args)}"
    )
    print(f"{str(peak_dtype).removeprefix('torch.')} matmul peak ({args.peak_size}³): {peak / 1e12:.3f} TFLOP/s")
    race = _race(cfg, init_state, batches, args, timed_tokens)
    rates = {path: timed_tokens / seconds for path, seconds in race.best.items()}
    step_tokens = args.micro_batch * seq_len
    median_rates = {path: step_tokens / statistics.median(s) for path, s in race.steps.items()}
    ratio = _print_comparison(race, rates, median_rates, fpt, peak, cuda)
    if args.json:
        result = {
            "model": args.model, "params": params, "flops_per_token": fpt, "device": where, "precision": args.precision,
            **_speed(args), "micro_batch": args.micro_batch, "seq_len": seq_len, "steps": args.steps,
            "matmul_peak_flops": peak, "peak_dtype": str(peak_dtype).removeprefix("torch."),
            "paths": {p: {"tokens_per_s": rates[p], "median_step_tokens_per_s": median_rates[p],
                          "mfu": mfu(rates[p], fpt, peak), "peak_memory_gib": race.peak_mem[p] if cuda else None,
                          "last_loss": race.losses[p]} for p in rates},
            "lightning_over_bare": ratio,
        }  # fmt: skip
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return 0
