"""The mixing-stream benchmark runs (it imported a helper that no longer existed, and nothing noticed)."""

from __future__ import annotations

from cpt_experiments.bench.mixing import bench_mixing


def test_bench_mixing_streams_batches_and_reports_the_ratio_to_the_trainer() -> None:
    out = bench_mixing(seconds=0.05, num_tokens=200_000)
    assert out["batches_per_s"] > 0
    assert out["x_trainer"] == out["tokens_per_s"] / 15_000.0
