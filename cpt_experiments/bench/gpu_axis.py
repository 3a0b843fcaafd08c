"""The GPU check's science part: the cpu model's final comparison (``experiment=paper1/final``) on the strong
shift with the large corpora at k × the cpu budgets, several seeds, as concurrent training processes.

One member = one ``python -m cpt_experiments.train`` process (pre-train 3,145,728·k tokens, continual and
new-only 2,097,152·k, union 5,242,880·k; 25% seen replay). The cpu model's 16 × 256-token steps are far too
small to fill an H100, so members run side by side (``jobs`` at a time) on the one GPU. Members still
running at the deadline are killed (SIGKILL; their stages resume from checkpoints on a rerun) and reported
as unfinished: the time budget holds whatever the throughput turns out to be.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

CPU_PRETRAIN_TOKENS = 3_145_728  # scale=cpu budgets (conf/scale/cpu.yaml)
CPU_CONTINUAL_TOKENS = 2_097_152
DOMAINS = ("en_old", "de_new")  # the strong shift's two domains (en_new is dropped: no file to carry)


def axis_overrides(k: int, seed: int, *, smoke: bool = False) -> list[str]:
    """Hydra overrides of member (k × the cpu budgets, seed); ``smoke``: the CPU rehearsal at smoke size."""
    if smoke:  # the embedded/synthetic corpora, the smoke model, trainer=cpu: seconds per member
        base = [
            "scale=smoke",
            "trainer=cpu",
            f"budget.pretrain_tokens={4096 * k}",
            f"budget.continual_tokens={2048 * k}",
        ]
    else:
        base = [
            "scale=cpu", "trainer=gpu", "corpus@corpora.en_old=wiki_en_large", "corpus@corpora.de_new=bundestag_de_large",
            f"budget.pretrain_tokens={CPU_PRETRAIN_TOKENS * k}", f"budget.continual_tokens={CPU_CONTINUAL_TOKENS * k}",
        ]  # fmt: skip
    return [
        "experiment=paper1/final", *base, "~corpora.en_new", "shift=strong", "replay.ratio=0.25",
        f"experiment.variant=strong-replay0.25-x{k}", f"seed={seed}",
    ]  # fmt: skip


@dataclass
class Member:
    """One (budget multiple, seed) training process and what became of it."""

    k: int
    seed: int
    status: str = "pending"  # pending | running | done | failed (rc) | killed at the deadline
    wall_s: float = 0.0
    proc: subprocess.Popen | None = field(default=None, repr=False)
    started: float = 0.0

    @property
    def name(self) -> str:
        return f"x{self.k}_s{self.seed}"


def run_members(
    members: list[Member],
    common: list[str],
    env: dict[str, str],
    log_dir: Path,
    jobs: int,
    deadline: float,
    smoke: bool = False,
) -> None:
    """Run every member (``jobs`` at a time, in list order) until done or ``deadline`` (``time.monotonic``).

    ``common``: overrides every member gets after its own (paths); each member logs to ``log_dir/<name>.log``.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    pending, running = list(members), []
    while pending or running:
        while pending and len(running) < jobs and time.monotonic() < deadline:
            m = pending.pop(0)
            log = open(log_dir / f"{m.name}.log", "w")  # noqa: SIM115 - closed with the process
            cmd = [sys.executable, "-m", "cpt_experiments.train", *axis_overrides(m.k, m.seed, smoke=smoke), *common]
            m.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
            m.started, m.status = time.monotonic(), "running"
            running.append(m)
            print(f"  started {m.name}", flush=True)
        for m in list(running):
            rc = m.proc.poll()
            if rc is None and time.monotonic() < deadline:
                continue
            if rc is None:  # the deadline: kill the whole process group (data loader workers included)
                os.killpg(m.proc.pid, signal.SIGKILL)
                m.proc.wait()
                m.status = "killed at the deadline"
            else:
                m.status = "done" if rc == 0 else f"failed (rc {rc})"
            m.wall_s = time.monotonic() - m.started
            running.remove(m)
            print(f"  {m.name}: {m.status} after {m.wall_s:.0f} s", flush=True)
        if pending and time.monotonic() >= deadline:
            for m in pending:
                m.status = "not started (deadline)"
            pending = []
        time.sleep(0.5)


def _table(results_dir: Path, name: str) -> pd.DataFrame:
    for path in (results_dir / f"{name}.csv", results_dir / f"{name}.csv.gz"):
        if path.is_file():
            return pd.read_csv(path)
    raise FileNotFoundError(f"{results_dir}: no {name}.csv (did any member finish?)")


def summarize(results_dir: Path) -> pd.DataFrame:
    """One row per finished stage: budget multiple, seed, stage, tokens, seconds, tokens/s, final loss per domain
    (nats/token)."""
    runs, curves = _table(results_dir, "runs"), _table(results_dir, "curves")
    runs = runs[runs["status"].isin(["done", "reused"])]
    final = curves[curves["split"].isin(DOMAINS) & (curves["metric"] == "loss")]
    final = final[final["step"] == final.groupby(["run_id", "stage"])["step"].transform("max")]
    losses = final.pivot_table(index=["run_id", "stage"], columns="split", values="value", aggfunc="last")
    losses.columns = [f"loss_{c}" for c in losses.columns]
    out = runs[["run_id", "stage", "variant", "seed", "stage_tokens", "steps", "wall_s"]].merge(
        losses.reset_index(), on=["run_id", "stage"], how="left"
    )
    out.insert(0, "budget_x", out.pop("variant").str.extract(r"-x(\d+)$", expand=False).astype(int))
    out["tokens_per_s"] = out["stage_tokens"] / out["wall_s"]  # training only (start-up and evaluation excluded)
    return out.sort_values(["budget_x", "seed", "stage"]).reset_index(drop=True)


def mean_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds of each stage's final losses, per budget multiple."""
    cols = [c for c in summary.columns if c.startswith("loss_")]
    grouped = summary.groupby(["budget_x", "stage"])
    table = grouped[cols].agg(["mean", "std"])
    table.columns = [f"{c}_{s}" for c, s in table.columns]
    table.insert(0, "seeds", grouped["seed"].nunique())
    return table.reset_index()
