"""Paper 1 presets: compute-matched infinite vs cosine splits, and stages that read only unseen windows,
end to end at smoke scale on the synthetic corpora."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import compose

from cpt_experiments.data.replay import consumed_windows
from cpt_experiments.pipeline.context import typed_config
from cpt_experiments.pipeline.planning import build_stages, plan_experiment
from cpt_experiments.pipeline.stages import lineage
from cpt_experiments.results import store
from cpt_experiments.train import train
from cpt_experiments.training.model import parameter_counts

FAST = ["train.val_every_n_steps=1000", "train.val_windows=2", "budget.pretrain_tokens=8192",
        "budget.continual_tokens=4096", "budget.anneal_tokens=1024"]  # fmt: skip


def _smoke(tmp: Path, data_dir: Path, cache: Path, *overrides: str):
    return compose(
        "scale=smoke", f"paths.data_dir={data_dir}", f"paths.output_dir={tmp / 'out'}", f"paths.cache_dir={cache}",
        f"paths.results_dir={tmp / 'results'}", *FAST, *overrides,
    )  # fmt: skip


def test_infinite_releases_are_compute_matched_with_the_repeated_cosine() -> None:
    inf, _ = typed_config(compose("experiment=paper1/infinite_splits", "scale=cpu"))
    cos, _ = typed_config(compose("experiment=paper1/cosine_splits", "scale=cpu"))
    split = cos.budget.continual_tokens
    inf_stages, cos_stages = build_stages(inf.experiment), build_stages(cos.experiment)
    for i in (1, 2, 3):
        anneal = sum(s.tokens for s in lineage(inf_stages, f"s{i}_anneal"))
        cosine = sum(s.tokens for s in lineage(cos_stages, f"s{i}"))
        assert anneal == cosine == i * split
    assert inf_stages["s2_head"].parent == "s1_tail" and inf_stages["s1_anneal"].parent == "s1_head"


def test_infinite_splits_train_end_to_end_and_never_reread_a_window(tmp_path, data_dir, smoke_cache) -> None:
    cfg = _smoke(tmp_path, data_dir, smoke_cache, "experiment=paper1/infinite_splits", "corpora/splits=wiki_sample")
    xp = plan_experiment(typed_config(cfg)[0])
    head = set(consumed_windows(xp.plans.plan("s1_head"), "s1").tolist())
    for branch in ("s1_tail", "s1_anneal"):  # both continue the head on windows of s1 it never read
        read = consumed_windows(xp.plans.plan(branch), "s1")
        assert len(read) and not head & set(read.tolist())
    summary = train(cfg)
    assert all(s["status"] == "done" for s in summary.stages.values()) and len(summary.stages) == 8
    runs = store.load(tmp_path / "results", "runs").set_index("stage")
    assert runs.loc["s1_anneal", "data_windows"] == "unseen" and pd.isna(runs.loc["s1_head", "data_windows"])
    # Tokens per parameter need the model's size in every row: neox_d32 with the 512-token smoke vocabulary.
    total, non_embedding = parameter_counts(asdict(typed_config(cfg)[0].model), 512)
    assert (runs["params"] == total).all() and (runs["params_non_embedding"] == non_embedding).all()


def test_same_data_continues_on_unseen_windows_of_the_pretraining_corpus(tmp_path, data_dir, smoke_cache) -> None:
    cfg = _smoke(tmp_path, data_dir, smoke_cache, "experiment=paper1/same_data", "corpus@corpora.en_old=wiki_en")
    xp = plan_experiment(typed_config(cfg)[0])
    pre = consumed_windows(xp.plans.plan("pretrain"), "en_old")
    cont = consumed_windows(xp.plans.plan("continual"), "en_old")
    assert len(np.unique(cont)) == len(cont) and not set(pre.tolist()) & set(cont.tolist())


@pytest.mark.parametrize("preset", ["warmup", "rewarm", "replay", "final", "shift_continuum"])
def test_paper1_presets_share_one_pretraining_stage(preset: str) -> None:
    """Every paper-1 preset on the local corpora starts from the same pre-training stage (trained once)."""
    root, _ = typed_config(compose(f"experiment=paper1/{preset}", "scale=cpu"))
    pre = build_stages(root.experiment)["pretrain"]
    assert pre.data == {"en_old": 1.0} and pre.tokens == root.budget.pretrain_tokens and pre.parent is None


def test_budget_axis_scales_every_stage_by_k_at_a_fixed_model() -> None:
    one, _ = typed_config(compose("experiment=paper1/budget_axis", "scale=cpu", "shift=strong"))
    four, _ = typed_config(
        compose("experiment=paper1/budget_axis", "scale=cpu", "shift=strong", "experiment.params.k=4")
    )
    s1, s4 = build_stages(one.experiment), build_stages(four.experiment)
    assert one.model == four.model and one.model.name == "neox_d64"
    assert {n: s.tokens for n, s in s1.items()} == {
        "pretrain": 3_145_728, "continual": 2_097_152, "union": 5_242_880, "union_cpt_schedule": 5_242_880,
    }  # fmt: skip
    assert all(s4[n].tokens == 4 * s.tokens for n, s in s1.items())
    assert "k4" in four.experiment.variant


def test_only_the_schedule_split_union_trains_on_the_unions_exact_windows(tmp_path, data_dir, smoke_cache) -> None:
    overrides = ["experiment=paper1/final", "shift=strong", "replay.ratio=0.25",
                 "experiment.union.chain_schedule=union_cpt_schedule", "experiment.only=[union_cpt_schedule]"]  # fmt: skip
    cfg = _smoke(tmp_path, data_dir, smoke_cache, *overrides)
    xp = plan_experiment(typed_config(cfg)[0])
    assert xp.plans.plan("union_cpt_schedule") is xp.plans.plan("union")  # same windows, same order
    lrs = [xp.plans.stage_plan("union_cpt_schedule").schedule(n) for n in range(xp.plans.stage_plan("union").steps)]
    boundary = xp.plans.stage_plan("pretrain").steps
    assert lrs[boundary] == 0.0 and lrs[boundary - 1] < lrs[boundary + 2]  # the re-warm of the chain's continual stage
    summary = train(cfg)
    assert list(summary.stages) == ["union_cpt_schedule"]  # nothing else of the graph trains
    runs = store.load(tmp_path / "results", "runs")
    assert runs["stage"].tolist() == ["union_cpt_schedule"] and runs["role"].tolist() == ["union"]
