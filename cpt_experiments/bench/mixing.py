"""Mixing-stream throughput: tokens/s the datamodule's train loader delivers (target >= 50x the trainer's 15k/s)."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from cpt_experiments.data.mixing import MixturePlan
from cpt_experiments.data.mixture_sources import SourceSpec
from cpt_experiments.data.replay import Replay
from cpt_experiments.data.windows import TokenWindows
from cpt_experiments.training.datamodule import CPTDataModule

TRAINER_TOKENS_PER_S = 15_000.0


def _synthetic_memmap(path: Path, num_tokens: int, seed: int) -> np.memmap:
    arr = np.memmap(path, dtype=np.uint16, mode="w+", shape=(num_tokens,))
    arr[:] = np.random.default_rng(seed).integers(0, 50_000, size=num_tokens, dtype=np.uint16)
    arr.flush()
    return np.memmap(path, dtype=np.uint16, mode="r", shape=(num_tokens,))


def bench_mixing(seconds: float = 3.0, *, num_tokens: int = 10_000_000) -> dict[str, float]:
    """Iterate a 3-source, 5%-replay stream (seq_len 256, batches of 16 windows) for ~``seconds``.

    Returns ``{"tokens_per_s", "batches_per_s", "x_trainer"}`` where tokens count inputs (16 * 256 per batch) and
    ``x_trainer`` is the ratio to the 15k tokens/s the trainer consumes."""
    seq_len, micro = 256, 16
    with tempfile.TemporaryDirectory() as tmp:
        arrays = {n: _synthetic_memmap(Path(tmp) / f"{n}.bin", num_tokens, i) for i, n in enumerate("ABC")}
        sizes = {n: len(TokenWindows(a, seq_len)) for n, a in arrays.items()}
        w = Replay(ratio=0.05, sources={"A": 1.0}).mix({"B": 0.7, "C": 0.3})
        num_windows = int(min(sizes[n] / w[n] for n in w)) // micro * micro
        plan = MixturePlan(
            [SourceSpec(n, sizes[n], w[n]) for n in ("B", "C", "A")], num_windows, seed=0, batch_windows=micro
        )
        dm = CPTDataModule(arrays, plan, seq_len, micro)
        batches = 0
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            for _ in dm.train_dataloader():
                batches += 1
                if batches % 32 == 0 and time.perf_counter() - start >= seconds:
                    break
        elapsed = time.perf_counter() - start
        del dm, arrays
    tokens_per_s = batches * micro * seq_len / elapsed
    return {
        "tokens_per_s": tokens_per_s,
        "batches_per_s": batches / elapsed,
        "x_trainer": tokens_per_s / TRAINER_TOKENS_PER_S,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cpt_experiments.bench mixing", description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args(argv)
    r = bench_mixing(args.seconds)
    print(
        f"mixing stream: {r['tokens_per_s']:,.0f} tokens/s, {r['batches_per_s']:,.1f} batches/s "
        f"= {r['x_trainer']:.0f}x the trainer's {TRAINER_TOKENS_PER_S:,.0f} tokens/s (target >= 50x)"
    )
    return 0
