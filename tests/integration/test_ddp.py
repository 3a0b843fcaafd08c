"""Data parallel: two ranks read the single-process data order and replay quotas and train the same model.

The fast test runs both ranks' data modules in one process (the sharding is pure index arithmetic);
the slow one runs the whole pipeline as two gloo DDP processes on CPU (``trainer=ddp_cpu``) next to
a single-process run with the same global batch and compares weights, losses and token counts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

import cpt_experiments.pipeline.stage_runner as runner
from cpt_experiments.config import ReplayConfig
from cpt_experiments.data.mixing import MixturePlan
from cpt_experiments.data.mixture_sources import SourceSpec
from cpt_experiments.data.replay import Replay
from cpt_experiments.results import store
from cpt_experiments.training.datamodule import CPTDataModule
from cpt_experiments.training.trainer import world_size

REPO = Path(__file__).resolve().parents[2]
SEQ, GLOBAL, STEPS = 8, 8, 12


def _datamodule(micro: int, world: int, rank: int, step: int = 0) -> CPTDataModule:
    """The stage's data module as rank ``rank`` of ``world`` sees it at ``step`` (25% replay of A)."""
    weights = Replay.from_config(ReplayConfig(ratio=0.25, sources={"A": 1.0})).mix({"B": 1.0})
    plan = MixturePlan(
        [SourceSpec("B", 120, weights["B"]), SourceSpec("A", 90, weights["A"])],
        GLOBAL * STEPS,
        seed=3,
        batch_windows=GLOBAL,
    )
    tokens = {
        name: (np.arange(n * SEQ + 1) + d * 10**6).astype(np.uint32)
        for d, (name, n) in enumerate([("A", 90), ("B", 120)])
    }
    accumulate = GLOBAL // (micro * world)
    dm = CPTDataModule(tokens, plan, SEQ, micro, accumulate=accumulate)
    dm.trainer = SimpleNamespace(
        world_size=world, global_rank=rank, global_step=step, accumulate_grad_batches=accumulate
    )
    return dm


def _steps(dm: CPTDataModule) -> list[list[dict[str, torch.Tensor]]]:
    """The loader's micro-batches grouped by optimizer step."""
    batches = list(dm.train_dataloader())
    return [batches[i : i + dm.accumulate] for i in range(0, len(batches), dm.accumulate)]


@pytest.mark.parametrize("micro", [4, 2], ids=["no-accumulation", "accumulate-2"])
def test_two_ranks_read_the_single_process_order_and_quotas(micro):
    single = _steps(_datamodule(micro=4, world=1, rank=0))  # accumulate 2
    ranks = [_steps(_datamodule(micro=micro, world=2, rank=r)) for r in (0, 1)]
    assert len(single) == len(ranks[0]) == len(ranks[1]) == STEPS
    for step, reference in enumerate(single):
        ours = [b for r in ranks for b in r[step]]
        ref_pos = torch.cat([b["position"] for b in reference]).sort().values
        pos = torch.cat([b["position"] for b in ours])
        assert pos.unique().numel() == pos.numel()  # the ranks' shards are disjoint
        assert torch.equal(pos.sort().values, ref_pos)  # and together they are the step's global batch
        by_position = {int(p): t for b in reference for p, t in zip(b["position"], b["tokens"])}
        for b in ours:  # the same windows (tokens), hence the same replay quota per step
            for p, t in zip(b["position"], b["tokens"]):
                assert torch.equal(by_position[int(p)], t)
        assert sorted(torch.cat([b["source"] for b in ours]).tolist()) == sorted(
            torch.cat([b["source"] for b in reference]).tolist()
        )
    # A resume at step 5 gives each rank exactly the suffix of its stream.
    for r in (0, 1):
        resumed = _steps(_datamodule(micro=micro, world=2, rank=r, step=5))
        assert [[b["position"].tolist() for b in s] for s in resumed] == [
            [b["position"].tolist() for b in s] for s in ranks[r][5:]
        ]


def test_only_global_rank_zero_locks_and_writes_the_stage_cache(monkeypatch):
    """Rank 0 is read from the launcher's variables, and only when the trainer asks for several processes."""
    for var in runner.RANK_VARIABLES:
        monkeypatch.delenv(var, raising=False)
    assert runner.is_rank_zero(2)
    monkeypatch.setenv("LOCAL_RANK", "1")  # Lightning's launcher re-runs the command as rank 1
    assert not runner.is_rank_zero(2)
    monkeypatch.delenv("LOCAL_RANK")
    monkeypatch.setenv("SLURM_PROCID", "3")
    assert not runner.is_rank_zero(4)
    assert runner.is_rank_zero(1)  # a single-process job in a multi-task srun still owns its stages
    geometry = {"global_batch_windows": 8, "micro_batch": 4}
    for devices, world in ((1, 1), (2, 2)):
        cfg = SimpleNamespace(
            train=SimpleNamespace(**geometry),
            trainer=SimpleNamespace(devices=devices, num_nodes=1, accelerator="cpu"),
        )
        assert world_size(cfg.trainer) == world


def _source_counters(stage_root: Path) -> pd.DataFrame:
    """``train/tokens/<source>`` by step from the stage's CSV log (one version: no resume here)."""
    (log,) = stage_root.glob("logs/version_*/metrics.csv")
    df = pd.read_csv(log)
    cols = sorted(c for c in df.columns if c.startswith("train/tokens/"))
    assert cols, f"no per-source counters in {log}"
    return df.dropna(subset=cols)[["step", *cols]].astype("int64").sort_values("step").reset_index(drop=True)


def _run(out: Path, data_dir: Path, cache: Path, *overrides: str) -> None:
    args = [
        "experiment=cpt",
        "experiment.union=null",
        "scale=smoke",
        "replay=seen",
        "replay.ratio=0.25",
        "budget.pretrain_tokens=8192",
        "budget.continual_tokens=4096",
        "train.micro_batch=4",  # per rank: one process accumulates 2 micro-batches, two ranks 1 each
        "train.val_every_n_steps=4",
        f"paths.data_dir={data_dir}",
        f"paths.output_dir={out}",
        f"paths.cache_dir={cache}",
        f"paths.results_dir={out / 'results'}",
        *overrides,
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "cpt_experiments.train", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]


@pytest.mark.slow
def test_two_process_ddp_trains_what_one_process_trains(tmp_path, data_dir):
    cache = tmp_path / "cache"
    _run(tmp_path / "single", data_dir, cache, "trainer=cpu")
    _run(tmp_path / "ddp", data_dir, cache, "trainer=ddp_cpu")
    runs = {k: store.load(tmp_path / k / "results", "runs") for k in ("single", "ddp")}
    assert runs["ddp"][["stage", "stage_hash"]].equals(runs["single"][["stage", "stage_hash"]])
    assert len(runs["ddp"]) == 2 and (runs["ddp"]["status"] == "done").all()  # both ranks record, one row each
    for stage_hash in runs["single"]["stage_hash"]:
        roots = {k: tmp_path / k / "stages" / stage_hash for k in runs}
        done = {k: json.loads((r / "done.json").read_text()) for k, r in roots.items()}
        assert done["ddp"]["tokens_per_source"] == done["single"]["tokens_per_source"]
        a, b = (load_file(str(r / "final" / "model.safetensors")) for r in roots.values())
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-4)
        # The live per-source token counters (all-reduced over ranks): the replay quota step by step.
        counts = {k: _source_counters(r) for k, r in roots.items()}
        assert len(counts["single"]) == done["single"]["steps"] and counts["ddp"].equals(counts["single"])
    curves = {k: store.load(tmp_path / k / "results", "curves") for k in runs}
    key = ["stage", "split", "metric", "step"]
    both = pd.merge(curves["single"], curves["ddp"], on=key, suffixes=("_1", "_2"))
    val = both[(both["split"] != "train") & (both["metric"] == "loss")]
    assert len(val) >= 6 and (val["value_1"] - val["value_2"]).abs().max() < 1e-4
