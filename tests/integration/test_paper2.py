"""Paper 2 presets: they compose at every scale, each strategy trains end to end at smoke scale on the
synthetic corpora, the path-switching main path trains once for all branches, and the ledger reads the runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import compose

from cpt_experiments.pipeline.context import typed_config
from cpt_experiments.pipeline.planning import build_stages, plan_experiment
from cpt_experiments.pipeline.stage_plan import Geometry
from cpt_experiments.results import ledger, store
from cpt_experiments.schedules.build import schedule_preview
from cpt_experiments.train import train

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "conf"
PRESETS = sorted(f"paper2/{p.stem}" for p in (CONF / "experiment" / "paper2").glob("*.yaml"))
SCALES = sorted(p.stem for p in (CONF / "scale").glob("*.yaml"))
# Tiny budgets: 4 steps of 8 x 64 tokens per version, 1-step branches (f10/f20), llama_d32.
FAST = [
    "model=llama_d32",
    "corpora/versions=wiki_sample",
    "budget.version_tokens=2048",
    "budget.version_slice_tokens=2049",
    "budget.version_total_tokens=[2048,4096,6144,8192]",
    "budget.version_branch_tokens={f10:512,f20:1024,f45:1024,f60:1536}",
    "train.val_every_n_steps=1000",
    "train.val_windows=2",
]


def _smoke(tmp: Path, data_dir: Path, smoke_cache: Path, *overrides: str):
    return compose(
        "scale=smoke", f"paths.data_dir={data_dir}", f"paths.output_dir={tmp / 'out'}", f"paths.cache_dir={smoke_cache}",
        f"paths.results_dir={tmp / 'results'}", *FAST, *overrides,
    )  # fmt: skip


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("preset", PRESETS)
def test_presets_compose_at_every_scale(preset: str, scale: str) -> None:
    root, _ = typed_config(compose(f"experiment={preset}", f"scale={scale}"))
    assert root.model.arch == "llama"
    stages = build_stages(root.experiment)
    geometry = Geometry(root.model.seq_len, root.train.global_batch_windows)
    for name, stage in stages.items():
        assert stage.version in (1, 2, 3, 4), name
        steps = geometry.steps_for(stage.tokens, f"experiment.stages.{name}.tokens")
        assert steps * geometry.tokens_per_step == stage.tokens  # exact token accounting: whole steps
        stage.schedule.build(steps)  # the checks that need the stage length
        assert set(stage.data) <= set(root.corpora)


@pytest.mark.parametrize("family", ["cosine", "knee", "multistep"])
def test_branch_family_and_fraction_select_schedule_and_length(family: str) -> None:
    root, _ = typed_config(
        compose("experiment=paper2/path_switching", "scale=cpu", f"experiment.params.family={family}",
                 "experiment.params.branch=f45")
    )  # fmt: skip
    stages = build_stages(root.experiment)
    assert stages["branch_v3"].schedule.shape == family
    assert stages["branch_v3"].tokens == root.budget.version_branch_tokens["f45"]
    assert stages["branch_v3"].tokens / root.budget.version_tokens == pytest.approx(0.45)
    assert stages["branch_v3"].parent == "main_v3" and stages["main_v4"].parent == "main_v3"


@pytest.mark.parametrize(("family", "at_85pct"), [("cosine", None), ("knee", 0.25), ("multistep", 0.316)])
def test_ptfs_family_selects_its_schedule(family: str, at_85pct: float | None) -> None:
    """knee: linear from η_max at 80% to η_min at 100%; multistep: ×0.316 from 80%, η_min from 90%."""
    root, _ = typed_config(compose("experiment=paper2/ptfs", "scale=cpu", f"experiment.params.family={family}"))
    stage = build_stages(root.experiment)["v4"]
    steps = stage.tokens // (root.model.seq_len * root.train.global_batch_windows)
    lrs = schedule_preview(stage.schedule, steps)
    eta_max, eta_min = root.lr.eta_max, root.lr.eta_min
    assert max(lrs) == pytest.approx(eta_max, rel=1e-5) and lrs[-1] == pytest.approx(eta_min, rel=0.1)
    if at_85pct is not None:  # knee: 1e-3 - 0.9e-3 * 0.25 = 7.75e-4 = η_max·(1 − 0.9·0.25)
        expected = eta_max * (1 - 0.9 * at_85pct) if family == "knee" else eta_max * at_85pct
        assert lrs[int(0.85 * steps)] == pytest.approx(expected, rel=0.02)
    if family == "multistep":
        assert lrs[int(0.95 * steps)] == pytest.approx(eta_min)


def test_ptfs_versions_read_exactly_their_slices(tmp_path, data_dir, smoke_cache) -> None:
    """PTFS version i draws every window of slices 1..i exactly once: ΔT tokens per slice, nothing else."""
    root, _ = typed_config(_smoke(tmp_path, data_dir, smoke_cache, "experiment=paper2/ptfs"))
    xp = plan_experiment(root)
    delta = root.budget.version_tokens
    windows_per_slice = delta // root.model.seq_len
    for i in range(1, 5):
        plan = xp.plans.plan(f"v{i}")
        assert plan.counts(0, plan.num_windows) == {f"v{j}": windows_per_slice for j in range(1, i + 1)}
        for j in range(1, i + 1):  # the slice holds exactly ΔT + 1 tokens = windows_per_slice windows
            assert xp.ctx.token_files[f"v{j}"]["train"].num_tokens == delta + 1
    slices = [np.asarray(xp.ctx.train_tokens(f"v{j}")) for j in range(1, 5)]
    assert len({s.tobytes() for s in slices}) == 4  # four different slices


def test_path_switching_trains_main_path_once(tmp_path, data_dir, smoke_cache) -> None:
    first = train(
        _smoke(tmp_path, data_dir, smoke_cache, "experiment=paper2/path_switching", "experiment.params.branch=f10")
    )
    assert sorted(first.trained()) == sorted(
        [f"main_v{i}" for i in range(1, 5)] + [f"branch_v{i}" for i in range(1, 5)]
    )
    second = train(
        _smoke(tmp_path, data_dir, smoke_cache, "experiment=paper2/path_switching", "experiment.params.branch=f20")
    )
    assert sorted(second.trained()) == [f"branch_v{i}" for i in range(1, 5)]  # main path reused
    runs = store.load(tmp_path / "results", "runs")
    ps = ledger.stage_costs(runs)
    assert len(ps[ps["role"] == "main"]) == 8  # recorded by both runs, hashed once per variant


@pytest.mark.parametrize("preset", ["paper2/ptfs", "paper2/cpt_rewarm", "paper2/cpt_const", "paper2/cpt_undecayed",
                                    "paper2/cpt_partial"])  # fmt: skip
def test_strategy_runs_end_to_end(tmp_path, data_dir, smoke_cache, preset) -> None:
    summary = train(_smoke(tmp_path, data_dir, smoke_cache, f"experiment={preset}"))
    assert summary.stages and all(s["status"] in ("done", "reused") for s in summary.stages.values())
    runs = store.load(tmp_path / "results", "runs")
    costs = ledger.stage_costs(runs)
    assert sorted(costs["version"].unique()) == [1, 2, 3, 4]


def test_the_x4_version_budget_scales_every_version_of_the_trained_regime() -> None:
    from cpt_experiments.pipeline.context import typed_config
    from cpt_experiments.pipeline.planning import build_stages

    one = compose("experiment=paper2/ptfs", "scale=cpu")
    four = compose("experiment=paper2/ptfs", "scale=cpu", "model=llama_d64", "budget=paper2_x4")
    (r1, _), (r4, _) = typed_config(one), typed_config(four)
    s1, s4 = build_stages(r1.experiment), build_stages(r4.experiment)
    assert r4.model.name == "llama_d64" and r4.model.tie_embeddings
    assert {n: 4 * s.tokens for n, s in s1.items()} == {n: s.tokens for n, s in s4.items()}
    assert r4.budget.version_slice_tokens == r4.budget.version_tokens + 1
