"""What a run tells its user: the stage plan of a dry run, and the end-of-run table with units and next steps."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from cpt_experiments.pipeline.context import RunContext
from cpt_experiments.pipeline.stage_cache import stage_dir
from cpt_experiments.training.lm_module import build_optimizer
from cpt_experiments.training.model import build_model
from cpt_experiments.training.trainer import accumulation, gpu_missing, micro_batch, world_size


def _si(n: float) -> str:
    """12345678 -> '12.3M' (tokens, FLOPs)."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.1f}{unit}"
    return f"{n:.0f}"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def measure_tokens_per_s(ctx: RunContext, steps: int = 3) -> float | None:
    """Training throughput of this run's model on this machine, tokens/s (a few steps on random tokens).

    On the trainer's device (one GPU under bf16 autocast for ``trainer=gpu`` and a ``bf16`` precision); None
    when the trainer asks for a GPU this machine does not have (a dry run planned on a laptop).
    """
    tc = ctx.cfg.trainer
    if gpu_missing(tc):
        return None
    device = "cuda" if str(tc.accelerator) in ("gpu", "cuda") else "cpu"
    torch.manual_seed(0)
    model = build_model(ctx.model_cfg, ctx.vocab_size, attention=ctx.cfg.train.attention).to(device)
    optimizer = build_optimizer(model, ctx.optim_cfg)
    micro, seq = ctx.cfg.train.micro_batch, ctx.geometry.seq_len
    tokens = torch.randint(0, ctx.vocab_size, (micro, seq + 1), device=device)
    bf16 = device == "cuda" and str(tc.precision).startswith("bf16")

    def step() -> None:
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            logits = model(input_ids=tokens[:, :-1]).logits
        F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), tokens[:, 1:].reshape(-1)).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()  # warm-up: allocation and kernel selection
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    return micro * seq * steps / (time.perf_counter() - t0)


def trainer_line(cfg: Any) -> str:
    """How the stages would run: strategy, ranks, and the per-rank batch split of ``train.global_batch_windows``."""
    tc = cfg.trainer
    world = world_size(tc)
    devices = "every visible GPU (none here: counted as 1)" if tc.devices == -1 and world == 1 else f"{world} rank(s)"
    return (f"trainer {tc.accelerator}/{tc.strategy}, {devices}, {tc.precision}: {cfg.train.global_batch_windows} "
            f"windows per step = micro batch {micro_batch(cfg.train, tc)} x {world} x accumulate "
            f"{accumulation(cfg.train, tc)}")  # fmt: skip


def plan_lines(
    stages: Mapping[str, Any],
    hashes: Mapping[str, str],
    steps: Mapping[str, int],
    ctx: RunContext,
    tokens_per_s: float | None,
) -> list[str]:
    """The dry-run table: every stage, whether it trains or comes from the cache, its size and estimated time."""
    lines = [
        f"{'stage':<16}{'role':<10}{'parent':<14}{'hash':<10}{'action':<8}{'tokens':>9}{'steps':>8}{'est. time':>11}  data"
    ]
    total = 0.0
    for name, s in stages.items():
        cached = stage_dir(ctx.cfg.paths.stage_dir, hashes[name]).done_file.is_file()
        tokens = steps[name] * ctx.geometry.tokens_per_step
        eta = "-" if cached or not tokens_per_s else _duration(tokens / tokens_per_s)
        total += 0.0 if cached or not tokens_per_s else tokens / tokens_per_s
        mix = ", ".join(f"{r} {w:.0%}" for r, w in s.replay.mix(s.data, prefix="replay:").items())
        lines.append(f"{name:<16}{s.role:<10}{(s.parent or s.init_from or '-')[:13]:<14}{hashes[name][:8]:<10}"
                     f"{'cached' if cached else 'train':<8}{_si(tokens):>9}{steps[name]:>8}{eta:>11}  {mix}")  # fmt: skip
    if tokens_per_s:
        lines.append(f"estimated training time {_duration(total)} at a measured {_si(tokens_per_s)} tokens/s")
    elif gpu_missing(ctx.cfg.trainer):
        lines.append(f"no GPU visible: training time not estimated (trainer.accelerator={ctx.cfg.trainer.accelerator})")
    return lines


def summary_lines(
    run_id: str, stages: Mapping[str, Mapping[str, Any]], results_dir: str, config_hash: str
) -> list[str]:
    """The end-of-run table (losses in nats/token and bits per byte) and the next commands."""
    domains = sorted({d for s in stages.values() for d in s["final_val"]})
    head = f"{'stage':<16}{'status':<8}{'tokens':>9}{'steps':>7}{'wall':>8}" + "".join(
        f"{d + ' nats/bpb':>22}" for d in domains
    )
    lines = [f"run {run_id}", head]
    for name, s in stages.items():
        vals = "".join(
            f"{s['final_val'][d]['loss']:>13.3f} / {s['final_val'][d]['bpb']:<6.3f}"
            if d in s["final_val"]
            else f"{'-':>22}"
            for d in domains
        )
        lines.append(f"{name:<16}{s['status']:<8}{_si(s['tokens']):>9}{s['steps']:>7}{_duration(s['wall_s']):>8}{vals}")
    lines += [
        f"tables: {results_dir}/{{runs,curves}}.csv; config: {results_dir}/configs/{config_hash}.yaml",
        f"next:   python -m cpt_experiments.evaluate run_id={run_id} paths.results_dir={results_dir}",
        f"        python -m cpt_experiments.figures --results {results_dir}",
    ]
    return lines
