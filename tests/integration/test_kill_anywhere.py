"""Kill anywhere: SIGKILL a smoke sweep at random moments, rerun it, and get the uninterrupted results.

A two-member replay sweep (pre-training shared, one continual stage per member) is started in a
subprocess and killed with SIGKILL (the whole process group) again and again: half of the kills at
a random moment of the training still to do (estimated from the reference's speed), half at a
random moment of the whole launch (start-up, planning, training, export, reusing finished stages,
recording rows). Then it runs to the end. The result must equal an uninterrupted run of the same
sweep: the same final weights, the same runs rows and curves, no duplicate rows, no finished stage
ever retrained or rewritten, and no temporary file left in the stage cache or in ``$TMPDIR``. The
kills and what they interrupted are printed (``-s``) and written to ``kills.json``.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from cpt_experiments.atomic import is_temp_name
from cpt_experiments.results import store

REPO = Path(__file__).resolve().parents[2]
KILLS = 12
STAGE_LINES = (": training ", ": resuming ", ": reused from ")  # the runner's log line when it takes a stage
SEED = 20240601
#: Columns of a runs row that describe the machine or the moment, not the result.
NOT_RESULTS = ["created_at", "wall_s", "checkpoint", "git_commit"]


def sweep_args(out: Path, data_dir: Path) -> list[str]:
    return [
        "-m",
        "experiment=cpt",
        "experiment.union=null",
        "scale=smoke",
        "replay=seen",
        "replay.ratio=0.0,0.25",
        "budget.pretrain_tokens=131072",  # 256 steps (the smoke English corpus holds 2077 windows)
        "budget.continual_tokens=65536",  # 128 steps per member
        "train.checkpoint_every_n_steps=32",
        "train.val_every_n_steps=64",
        f"paths.data_dir={data_dir}",
        f"paths.output_dir={out}",
        f"paths.cache_dir={out / 'cache'}",
        f"paths.results_dir={out / 'results'}",
    ]


class Sweep:
    """One launch of the sweep in its own process group, its output lines read as they come."""

    def __init__(self, args: list[str], tmpdir: Path) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "TMPDIR": str(tmpdir)}
        self.start = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cpt_experiments.train", *args],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list[tuple[float, str]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append((time.monotonic(), line))

    def first_line_after(self, since: float, *needles: str) -> float | None:
        return next((t for t, ln in list(self.lines) if t >= since and any(n in ln for n in needles)), None)

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self._reader.join(timeout=10)

    def wait(self, timeout: float) -> int:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return code

    def output(self) -> str:
        return "".join(ln for _, ln in self.lines)


def cache_state(out: Path) -> dict[str, dict]:
    """Per stage hash: its done.json text (None if unfinished), resume step, log versions."""
    state = {}
    for root in sorted((out / "stages").glob("*")) if (out / "stages").is_dir() else []:
        if not root.is_dir():
            continue
        ckpt = root / "ckpt" / "last.ckpt"
        step = None
        if ckpt.is_file():
            try:
                step = int(torch.load(ckpt, map_location="cpu", weights_only=True, mmap=True)["global_step"])
            except Exception:  # noqa: BLE001 - a bad checkpoint is what the runner must survive
                step = "unreadable"
        done, spec = root / "done.json", root / "spec.json"
        state[root.name] = {
            "stage": json.loads(spec.read_text())["stage"] if spec.is_file() else root.name[:8],
            "done": done.read_text() if done.is_file() else None,
            "ckpt_step": step,
            "log_versions": sorted(p.name for p in (root / "logs").glob("version_*")),
        }
    return state


def trained_steps(state: dict[str, dict]) -> int:
    """Steps already in the cache: finished stages whole, unfinished ones up to their checkpoint."""
    total = 0
    for s in state.values():
        if s["done"]:
            total += json.loads(s["done"])["steps"]
        elif isinstance(s["ckpt_step"], int):
            total += s["ckpt_step"]
    return total


def what_was_interrupted(before: dict, after: dict, output: str) -> str:
    """A label for the moment a kill hit, from what changed on disk and what the run printed."""
    newly_done = [h for h in after if after[h]["done"] and not before.get(h, {}).get("done")]
    moving = [h for h in after if not after[h]["done"] and after[h] != before.get(h)]
    if moving:
        s = after[moving[0]]
        return f"inside stage {s['stage']} (resume point left: step {s['ckpt_step'] or 0})"
    if newly_done:
        return f"after finishing {', '.join(after[h]['stage'] for h in newly_done)}"
    if "training " in output or "resuming " in output:
        return "mid-stage before its first checkpoint"
    if "reused from" in output or "runs: wrote" in output:
        return "recording / reusing finished stages"
    return "start-up and planning"


def final_weights(out: Path) -> dict[str, dict[str, torch.Tensor]]:
    return {p.parents[1].name: load_file(str(p)) for p in (out / "stages").glob("*/final/model.safetensors")}


def temp_files(*roots: Path) -> list[Path]:
    return [p for root in roots for p in root.rglob("*") if is_temp_name(p.name)]


@pytest.mark.slow
def test_kill_anywhere_then_rerun_gives_the_uninterrupted_results(tmp_path, data_dir, capsys):
    rng = random.Random(SEED)
    ref_out, out = tmp_path / "reference", tmp_path / "killed"
    ref_tmp, run_tmp = tmp_path / "tmpdir-ref", tmp_path / "tmpdir-run"
    ref_tmp.mkdir()
    run_tmp.mkdir()

    reference = Sweep(sweep_args(ref_out, data_dir), ref_tmp)
    assert reference.wait(timeout=900) == 0, reference.output()[-4000:]
    ref_seconds = time.monotonic() - reference.start
    startup = reference.first_line_after(reference.start, *STAGE_LINES) - reference.start
    total_steps = sum(json.loads(p.read_text())["steps"] for p in (ref_out / "stages").glob("*/done.json"))
    steps_per_s = total_steps / (ref_seconds - startup)

    kills: list[dict] = []
    history: dict[str, str] = {}  # stage hash -> its done.json, the first time it was seen
    versions_at_done: dict[str, list[str]] = {}
    attempts = 0
    while len(kills) < KILLS:
        attempts += 1
        assert attempts <= 3 * KILLS, f"only {len(kills)} of {KILLS} kills landed in {attempts - 1} launches"
        before = cache_state(out)
        remaining_s = (total_steps - trained_steps(before)) / steps_per_s
        run = Sweep(sweep_args(out, data_dir), run_tmp)
        # Even kills: at a random moment of the training still to do, counted from the run's first
        # stage line. Odd kills: at a random moment of the whole launch (start-up, planning, training,
        # export, reusing finished stages, recording rows).
        if len(kills) % 2 == 0:
            anchor, delay = None, rng.uniform(0.0, remaining_s)
        else:
            anchor, delay = run.start, rng.uniform(0.5, startup + remaining_s + 3.0)
        while run.proc.poll() is None:
            if anchor is None:
                anchor = run.first_line_after(run.start, *STAGE_LINES)
            if anchor is not None and time.monotonic() >= anchor + delay:
                break
            if time.monotonic() - run.start > 900:
                pytest.fail("a launch hung")
            time.sleep(0.02)
        if run.proc.poll() is not None:  # finished before the chosen moment: nothing to kill
            assert run.wait(timeout=60) == 0, run.output()[-4000:]
            continue
        run.kill()
        after = cache_state(out)
        kills.append(
            {
                "after_s": round(time.monotonic() - run.start, 2),
                "interrupted": what_was_interrupted(before, after, run.output()),
                "stages_done": sum(1 for s in after.values() if s["done"]),
            }
        )
        (tmp_path / "kills.json").write_text(json.dumps(kills, indent=2))
        # A finished stage is never retrained or rewritten: its record and its logs stay as they were.
        for stage_hash, s in after.items():
            if s["done"] is None:
                assert stage_hash not in history, f"stage {stage_hash} lost its done.json"
                continue
            history.setdefault(stage_hash, s["done"])
            versions_at_done.setdefault(stage_hash, s["log_versions"])
            assert s["done"] == history[stage_hash], f"stage {stage_hash} was finished twice"
            assert s["log_versions"] == versions_at_done[stage_hash], f"stage {stage_hash} trained after done"

    final = Sweep(sweep_args(out, data_dir), run_tmp)
    assert final.wait(timeout=900) == 0, final.output()[-4000:]
    for stage_hash, s in cache_state(out).items():
        if stage_hash in history:
            assert s["done"] == history[stage_hash], f"stage {stage_hash} was finished twice"

    # Same weights as the uninterrupted sweep, stage by stage.
    ref_w, run_w = final_weights(ref_out), final_weights(out)
    assert sorted(run_w) == sorted(ref_w) and len(ref_w) == 3
    for stage_hash, weights in ref_w.items():
        for k, v in weights.items():
            torch.testing.assert_close(run_w[stage_hash][k], v, rtol=0, atol=1e-6)
    # Each stage's segments chain from step 0 to its last step: no step trained twice into the result.
    for done_file in (out / "stages").glob("*/done.json"):
        done = json.loads(done_file.read_text())
        ends = [0] + [s["end"] for s in done["segments"]]
        assert [s["start"] for s in done["segments"]] == ends[:-1] and ends[-1] == done["steps"]
        assert done["wall_s"] == pytest.approx(sum(s["wall_s"] for s in done["segments"]))

    # The same rows, once each.
    for table, key in (("runs", ["run_id", "stage"]), ("curves", ["run_id", "stage", "split", "metric", "step"])):
        a, b = store.load(ref_out / "results", table), store.load(out / "results", table)
        assert not b.duplicated(subset=key).any(), f"duplicate {table} rows"
        if table == "runs":
            pd.testing.assert_frame_equal(a.drop(columns=NOT_RESULTS), b.drop(columns=NOT_RESULTS))
        else:
            a, b = (t[t["metric"].isin(["loss", "bpb", "lr"])].reset_index(drop=True) for t in (a, b))
            pd.testing.assert_frame_equal(a.drop(columns="value"), b.drop(columns="value"))
            assert (a["value"] - b["value"]).abs().max() < 1e-5

    # Nothing half-written left behind in the stage cache or in $TMPDIR. (Temporaries of the results
    # tables and token caches are those writers' to clean; they are reported below, not asserted.)
    assert temp_files(out / "stages", out / "hydra") == []
    # (torch creates an empty torchinductor_<user> directory there on import; files would be partial writes)
    assert [p for p in run_tmp.rglob("*") if not p.is_dir()] == []

    others = [str(p.relative_to(out)) for p in temp_files(out / "results", out / "cache")]
    report = {"kills": kills, "launches": attempts + 1, "reference_s": round(ref_seconds, 1), "other_temps": others}
    (tmp_path / "kills.json").write_text(json.dumps(report, indent=2))
    with capsys.disabled():
        print(
            f"\nkill-anywhere: {len(kills)} SIGKILLs over {attempts + 1} launches (reference sweep {ref_seconds:.0f} s)"
        )
        for k in kills:
            print(f"  killed after {k['after_s']:6.2f} s: {k['interrupted']}; stages done: {k['stages_done']}/3")
        print(f"  temporaries left by other writers (results tables, token caches): {others or 'none'}")
