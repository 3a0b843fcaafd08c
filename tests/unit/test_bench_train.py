"""``bench train``: both paths do the same work (same final loss), the JSON has what the GPU check reads."""

from __future__ import annotations

import json

import pytest
import torch

from cpt_experiments.bench import train as bench_train


def test_cpu_bench_runs_both_paths_to_the_same_loss(tmp_path, capsys):
    out = tmp_path / "bench.json"
    args = ["--model", "neox_d32", "--steps", "2", "--warmup", "1", "--rounds", "1", "--threads", "1"]
    assert bench_train.main([*args, "--peak-size", "256", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["precision"] == "32-true" and result["peak_dtype"] == "float32"
    lightning, bare = result["paths"]["lightning"], result["paths"]["bare"]
    assert lightning["last_loss"] == pytest.approx(bare["last_loss"], abs=1e-6)
    assert all(p["tokens_per_s"] > 0 and 0 < p["mfu"] for p in (lightning, bare))
    assert "matmul peak (256³)" in capsys.readouterr().out


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible")
def test_cuda_without_a_gpu_is_an_error_not_a_cpu_run(capsys):
    with pytest.raises(SystemExit) as exit_:
        bench_train.main(["--device", "cuda"])
    assert exit_.value.code == 2 and "no CUDA device is visible" in capsys.readouterr().err
