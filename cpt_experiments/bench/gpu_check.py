"""The prepared GPU check: one command, a fixed time budget, everything written under OUT_DIR.

``python -m cpt_experiments.bench gpu_check OUT_DIR [--dry-run]`` (or ``.ci/gpu-check OUT_DIR``) runs, on one GPU:

(a) ``bench train --device cuda`` for ``neox_405m`` (micro-batch 8 × 2048) and the cpu model ``neox_d128``;
(b) the smoke quickstart end to end with ``trainer=gpu``, SIGKILLed mid-stage (as soon as its first
    checkpoint exists) and rerun, its final weights compared with an uninterrupted GPU run of the same
    config (and, if they differ, with a second uninterrupted run: the GPU's own run-to-run noise);
(c) ``gpu_axis``: the cpu model's final comparison on the strong shift (large corpora, 25% replay) at
    ``GPU_CHECK_BUDGETS`` (default ``1 2 4 8``) × the cpu budgets and ``GPU_CHECK_SEEDS`` (``0 1 2``),
    ``GPU_CHECK_JOBS`` (12) training processes at a time, cut at the deadline.

Time budget: ``GPU_CHECK_BUDGET_S`` (default 540 s = 9 min, for one H100): (a) and (b) take a few minutes at
most (each step has its own timeout), (c) gets what is left minus 20 s, and every step's seconds are printed and
recorded. Extra overrides for every axis member: ``GPU_CHECK_AXIS_OVERRIDES`` (e.g. other corpus paths).
Data: ``CPT_DATA_DIR`` must hold ``large/A_en_wikipedia_large.jsonl.gz`` and ``large/C_de_bundestag_large.jsonl.gz``
(or what the overrides name); (b) uses the package's embedded sample. The small results (at most 8 files,
for a transfer) are in ``OUT_DIR/report``: ``check.json`` (environment, timings, bench numbers, resume
verdict, axis members), ``axis_summary.csv``, ``axis_means.csv``, the axis ``runs.csv`` and ``curves.csv``.

Without CUDA it stops at once (exit 2). ``--dry-run`` rehearses every step on the CPU at smoke size (tiny
bench, ``trainer=cpu``, the smoke model on the embedded sample): what a CPU test runs.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from cpt_experiments.bench import gpu_axis
from cpt_experiments.files import SAMPLE_DATA_DIR

NEEDED_MODULES = ("hydra", "omegaconf", "datasets", "pytorch_lightning", "transformers", "tokenizers", "pandas")
LARGE_FILES = ("large/A_en_wikipedia_large.jsonl.gz", "large/C_de_bundestag_large.jsonl.gz")
RESUME_BASE = [
    "experiment=quickstart",
    "scale=smoke",
    "budget.pretrain_tokens=131072",
    "train.checkpoint_every_n_steps=8",
]


def _env(out: Path) -> dict[str, str]:
    """Child environment: every cache and temporary file under ``out`` (nothing written elsewhere)."""
    tmp = out / "tmp"
    for d in ("inductor", "triton", "hf", "mpl"):
        (tmp / d).mkdir(parents=True, exist_ok=True)
    return {
        **os.environ, "PYTHONUNBUFFERED": "1", "TMPDIR": str(tmp), "TORCHINDUCTOR_CACHE_DIR": str(tmp / "inductor"),
        "TRITON_CACHE_DIR": str(tmp / "triton"), "HF_HOME": str(tmp / "hf"), "MPLCONFIGDIR": str(tmp / "mpl"),
        "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "WANDB_MODE": "offline", "TOKENIZERS_PARALLELISM": "false",
        "CUBLAS_WORKSPACE_CONFIG": ":4096:8",  # deterministic cuBLAS for the resume comparison
    }  # fmt: skip


def _run(cmd: list[str], env: dict[str, str], log: Path, timeout: float) -> tuple[int, float]:
    """Run ``cmd`` (output to ``log``) within ``timeout`` seconds; (exit code, seconds); 124 on timeout."""
    start = time.monotonic()
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            rc = proc.wait(timeout=max(1.0, timeout))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            rc = 124
    return rc, time.monotonic() - start


class _Tee:
    """What the check prints goes to the console and to ``report/check.log`` (the children log to their own files)."""

    def __init__(self, *streams: Any) -> None:
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
            stream.flush()
        return len(text)

    def flush(self) -> None:
        for stream in self.streams:
            stream.flush()


def _train_cmd(*overrides: str) -> list[str]:
    return [sys.executable, "-m", "cpt_experiments.train", *overrides]


def _paths(root: Path) -> list[str]:
    return [f"paths.output_dir={root}", f"paths.results_dir={root / 'results'}", f"paths.cache_dir={root / 'cache'}"]


def bench(out: Path, env: dict[str, str], dry: bool, report: dict[str, Any]) -> None:
    """(a) Lightning vs bare loop, tokens/s, MFU, peak memory: neox_405m and the cpu model."""
    runs = {"neox_405m": ["--micro-batch", "8", "--steps", "10", "--warmup", "3", "--threads", "8"],
            "neox_d128": ["--micro-batch", "16", "--steps", "200", "--warmup", "20", "--threads", "8"]}  # fmt: skip
    if dry:
        runs = {"neox_d32": ["--steps", "2", "--warmup", "1", "--rounds", "1", "--peak-size", "256"]}
    device = ["--device", "cpu"] if dry else ["--device", "cuda"]
    for model, args in runs.items():
        result = out / "bench" / f"{model}.json"
        result.parent.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable,
            "-m",
            "cpt_experiments.bench",
            "train",
            *device,
            "--model",
            model,
            *args,
            "--json",
            str(result),
        ]
        rc, seconds = _run(cmd, env, out / "bench" / f"{model}.log", timeout=150)
        print(f"(a) bench {model}: rc {rc}, {seconds:.0f} s", flush=True)
        entry = json.loads(result.read_text()) if rc == 0 else {"error": f"rc {rc}, see bench/{model}.log"}
        report["bench"][model] = {**entry, "seconds": seconds}


def _weights(root: Path) -> dict[str, dict[str, torch.Tensor]]:
    return {p.parents[1].name: load_file(str(p)) for p in sorted(root.glob("stages/*/final/model.safetensors"))}


def _max_diff(a: dict[str, dict[str, torch.Tensor]], b: dict[str, dict[str, torch.Tensor]]) -> float:
    if sorted(a) != sorted(b):
        return float("inf")  # other stage hashes, or a stage missing
    return max(float((a[h][k].float() - b[h][k].float()).abs().max()) for h in a for k in a[h])


def resume(out: Path, env: dict[str, str], dry: bool, report: dict[str, Any]) -> None:
    """(b) Kill -9 the smoke quickstart mid-stage, rerun it; compare with uninterrupted runs."""
    root = out / "resume"
    base = [*RESUME_BASE, "trainer=cpu" if dry else "trainer=gpu", f"paths.data_dir={SAMPLE_DATA_DIR}"]
    if not dry:
        base.append("+trainer.kwargs.deterministic=warn")  # deterministic kernels where torch has them
    rc, seconds = _run(_train_cmd(*base, *_paths(root / "reference")), env, root / "reference.log", timeout=120)
    print(f"(b) reference run: rc {rc}, {seconds:.0f} s", flush=True)
    entry: dict[str, Any] = {"reference_rc": rc, "reference_s": seconds}
    start = time.monotonic()
    with open(root / "killed.log", "w") as fh:
        cmd = _train_cmd(*base, *_paths(root / "run"))
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        while proc.poll() is None and not list(root.glob("run/stages/*/ckpt/last.ckpt")):
            if time.monotonic() - start > 120:
                break
            time.sleep(0.01)
        killed = proc.poll() is None
        if killed:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    stages = list(root.glob("run/stages/*/ckpt/last.ckpt"))
    mid_stage = killed and bool(stages) and not (stages[0].parents[1] / "done.json").exists()
    entry.update(killed_mid_stage=mid_stage, killed_after_s=time.monotonic() - start)
    rc, seconds = _run(_train_cmd(*base, *_paths(root / "run")), env, root / "resumed.log", timeout=120)
    print(f"(b) killed mid-stage: {mid_stage}; resumed run: rc {rc}, {seconds:.0f} s", flush=True)
    entry.update(resumed_rc=rc, resumed_s=seconds)
    ref, run = _weights(root / "reference"), _weights(root / "run")
    entry["max_abs_diff"] = _max_diff(ref, run)
    entry["stages"] = len(ref)
    if entry["max_abs_diff"] > 1e-6:  # not bitwise: how far apart do two uninterrupted GPU runs end?
        rc, _ = _run(_train_cmd(*base, *_paths(root / "reference2")), env, root / "reference2.log", timeout=120)
        entry["noise_max_abs_diff"] = _max_diff(ref, _weights(root / "reference2")) if rc == 0 else None
    noise = entry.get("noise_max_abs_diff") or 0.0
    # Bitwise where the kernels are deterministic; else no further from the reference than GPU noise goes (4x
    # the spread of two uninterrupted runs). A resume that lost state (LR position, moments, data order) is far off.
    entry["passed"] = bool(mid_stage and entry["max_abs_diff"] <= max(1e-6, 4 * noise) and len(ref) == 4)
    print(f"(b) resume check: {json.dumps(entry)}", flush=True)
    report["resume"] = entry


def axis(out: Path, env: dict[str, str], dry: bool, report: dict[str, Any], deadline: float) -> None:
    """(c) The budget axis: build the token caches once (a dry run), then the members until the deadline."""
    root = out / "axis"
    budgets = [int(k) for k in os.environ.get("GPU_CHECK_BUDGETS", "1 2" if dry else "1 2 4 8").split()]
    seeds = [int(s) for s in os.environ.get("GPU_CHECK_SEEDS", "0" if dry else "0 1 2").split()]
    jobs = int(os.environ.get("GPU_CHECK_JOBS", "2" if dry else "12"))
    common = [*_paths(root), *os.environ.get("GPU_CHECK_AXIS_OVERRIDES", "").split()]
    if dry:
        common.append(f"paths.data_dir={SAMPLE_DATA_DIR}")
    prep = _train_cmd(*gpu_axis.axis_overrides(max(budgets), seeds[0], smoke=dry), *common, "dry_run=true")
    prep_env = {**env, "TOKENIZERS_PARALLELISM": "true"}  # one process tokenizes: let it use every core
    rc, seconds = _run(prep, prep_env, root / "prepare.log", timeout=max(1.0, deadline - time.monotonic()))
    print(f"(c) tokenizer and token caches: rc {rc}, {seconds:.0f} s", flush=True)
    report["axis"] = {"prepare_rc": rc, "prepare_s": seconds, "budgets": budgets, "seeds": seeds, "jobs": jobs}
    if rc != 0:
        return
    members = [gpu_axis.Member(k, s) for k in budgets for s in seeds]
    gpu_axis.run_members(members, common, env, root / "logs", jobs, deadline, smoke=dry)
    report["axis"]["members"] = [{"name": m.name, "status": m.status, "wall_s": m.wall_s} for m in members]
    try:
        summary = gpu_axis.summarize(root / "results")
    except (FileNotFoundError, KeyError, ValueError) as exc:  # no member got as far as a row
        report["axis"]["summary_error"] = f"{type(exc).__name__}: {exc}"
        print(f"(c) no axis table: {report['axis']['summary_error']}", flush=True)
        return
    summary.to_csv(out / "report" / "axis_summary.csv", index=False)
    gpu_axis.mean_table(summary).to_csv(out / "report" / "axis_means.csv", index=False)
    for name in ("runs.csv", "curves.csv"):
        shutil.copy(root / "results" / name, out / "report" / name)
    print(gpu_axis.mean_table(summary).to_string(index=False), flush=True)


def preflight(dry: bool) -> list[str]:
    """Problems that make the check pointless, each one line (empty: go)."""
    problems = [f"python module {m!r} is missing" for m in NEEDED_MODULES if importlib.util.find_spec(m) is None]
    if not dry and not torch.cuda.is_available():
        problems.insert(0, "no CUDA device is visible (torch.cuda.is_available() is False); --dry-run rehearses on CPU")
    data = Path(os.environ.get("CPT_DATA_DIR", "../shared/data"))
    if not dry and not os.environ.get("GPU_CHECK_AXIS_OVERRIDES"):
        problems += [f"{data / f} not found (set CPT_DATA_DIR)" for f in LARGE_FILES if not (data / f).is_file()]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cpt_experiments.bench gpu_check", description=__doc__.splitlines()[0]
    )
    parser.add_argument("out_dir", type=Path, help="everything the check writes goes under this folder")
    parser.add_argument("--dry-run", action="store_true", help="rehearse every step on the CPU at smoke size")
    args = parser.parse_args(argv)
    problems = preflight(args.dry_run)
    if problems:
        for p in problems:
            print(f"gpu_check: error: {p}", file=sys.stderr)
        return 2
    out = args.out_dir.resolve()
    (out / "report").mkdir(parents=True, exist_ok=True)
    console = sys.stdout
    with open(out / "report" / "check.log", "w") as log:
        sys.stdout = _Tee(console, log)
        try:
            return _check(out, args.dry_run)
        finally:
            sys.stdout = console


def _check(out: Path, dry: bool) -> int:
    """Every step in order, each timed and recorded in ``report/check.json``; 0 if the bench and resume held."""
    start = time.monotonic()
    deadline = start + float(os.environ.get("GPU_CHECK_BUDGET_S", "540")) - 20.0
    env = _env(out)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() and not dry else "cpu (dry run)"
    report: dict[str, Any] = {"device": device, "torch": torch.__version__, "dry_run": dry, "bench": {}}
    print(f"gpu_check on {device}; torch {torch.__version__}; budget ends in {deadline - start:.0f} s", flush=True)
    steps = [("bench", lambda: bench(out, env, dry, report)),
             ("resume", lambda: resume(out, env, dry, report)),
             ("axis", lambda: axis(out, env, dry, report, deadline))]  # fmt: skip
    timings = report.setdefault("seconds", {})
    for name, step in steps:
        t0 = time.monotonic()
        if name in os.environ.get("GPU_CHECK_SKIP", "").split():
            continue
        try:
            step()
        finally:
            timings[name] = time.monotonic() - t0
            (out / "report" / "check.json").write_text(json.dumps(report, indent=2, default=str))
    timings["total"] = time.monotonic() - start
    (out / "report" / "check.json").write_text(json.dumps(report, indent=2, default=str))
    print(f"gpu_check: {json.dumps(timings)}; report in {out / 'report'}", flush=True)
    ok = report.get("resume", {}).get("passed", True) and all("error" not in b for b in report["bench"].values())
    return 0 if ok else 1
