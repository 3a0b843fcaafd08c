"""Stage plans: replay from ancestors (seen / fresh), exact realised fractions, budget errors."""

from __future__ import annotations

import numpy as np
import pytest

from cpt_experiments.data.replay import consumed_windows
from cpt_experiments.errors import ConfigError
from cpt_experiments.pipeline.stage_plan import Geometry, PlanBuilder
from cpt_experiments.pipeline.stages import parse_graph

COS = {"name": "warmup_cosine", "max_lr": 1e-3, "min_lr": 1e-4, "warmup_frac": 0.01}
GEOM = Geometry(seq_len=8, global_batch_windows=4)  # 32 tokens per step


def builder(replay: dict, extra: dict | None = None) -> PlanBuilder:
    graph = {
        "pre": {"data": {"old": 1.0}, "tokens": 32 * 100, "schedule": COS},
        "cont": {"parent": "pre", "data": {"new": 1.0}, "tokens": 32 * 50, "schedule": COS, "replay": replay},
        **(extra or {}),
    }
    stages = parse_graph(graph)
    tokens = {"old": np.arange(8 * 1000 + 1, dtype=np.uint32), "new": np.arange(8 * 1000 + 1, dtype=np.uint32) + 10**6}
    return PlanBuilder(stages, {n: f"h{n}" for n in stages}, tokens, GEOM, seed=0)


def test_seen_replay_rereads_the_pretraining_windows_in_order():
    b = builder({"ratio": 0.25, "sources": {"old": 1.0}, "mode": "seen"})
    pre, cont = b.plan("pre"), b.plan("cont")
    assert cont.names == ["new", "replay:old"]
    seen = consumed_windows(pre, "old")
    replayed = consumed_windows(cont, "replay:old")
    assert len(replayed) == 50 * 4 // 4  # 25% of 200 windows
    np.testing.assert_array_equal(replayed, seen[: len(replayed)])
    assert cont.realised_fractions(0, len(cont)) == {"new": 0.75, "replay:old": 0.25}


def test_fresh_replay_never_reads_a_consumed_window():
    b = builder({"ratio": 0.5, "sources": {"old": 1.0}, "mode": "fresh"})
    seen = set(consumed_windows(b.plan("pre"), "old").tolist())
    fresh = consumed_windows(b.plan("cont"), "replay:old")
    assert len(fresh) == 100 and not seen & set(fresh.tolist())


def test_fresh_replay_excludes_every_ancestor_not_just_the_parent():
    extra = {
        "third": {
            "parent": "cont",
            "data": {"new": 1.0},
            "tokens": 32 * 50,
            "schedule": COS,
            "replay": {"ratio": 0.5, "sources": {"old": 1.0}, "mode": "fresh"},
        }
    }
    b = builder({"ratio": 0.0}, extra)
    seen = set(consumed_windows(b.plan("pre"), "old").tolist())
    assert not seen & set(consumed_windows(b.plan("third"), "replay:old").tolist())


def test_seen_replay_without_an_ancestor_on_that_corpus_is_an_error():
    b = builder({"ratio": 0.1, "sources": {"new": 1.0}, "mode": "seen"})
    with pytest.raises(ConfigError, match="experiment.stages.cont.replay.sources.new: 'seen' replay needs an ancestor"):
        b.plan("cont")


def test_source_too_small_names_the_stage():
    stages = parse_graph({"pre": {"data": {"old": 1.0}, "tokens": 32 * 100, "schedule": COS}})
    b = PlanBuilder(stages, {"pre": "h"}, {"old": np.arange(8 * 50 + 1, dtype=np.uint32)}, GEOM, seed=0)
    with pytest.raises(ConfigError, match=r"^experiment.stages.pre: mixing.sources.old"):
        b.plan("pre")


def test_unseen_windows_continue_on_the_old_corpus_without_repeating_any_window():
    """windows=unseen (paper 1, re-warming on the same data): none of the windows read as data or replay before."""
    extra = {
        "same": {"parent": "cont", "data": {"old": 1.0}, "tokens": 32 * 100, "schedule": COS, "windows": "unseen"},
        "again": {"parent": "cont", "data": {"old": 1.0}, "tokens": 32 * 100, "schedule": COS},
    }
    b = builder({"ratio": 0.5, "sources": {"old": 1.0}, "mode": "fresh"}, extra)
    before = set(consumed_windows(b.plan("pre"), "old").tolist()) | set(
        consumed_windows(b.plan("cont"), "replay:old").tolist()
    )
    unseen = consumed_windows(b.plan("same"), "old")
    assert len(unseen) == 400 and len(set(unseen.tolist())) == 400 and not before & set(unseen.tolist())
    assert before & set(consumed_windows(b.plan("again"), "old").tolist())  # the default may repeat: that is the test


def test_unseen_windows_errors_name_the_stage_key():
    extra = {"same": {"parent": "pre", "data": {"old": 1.0}, "tokens": 32 * 250, "schedule": COS, "windows": "unseen"}}
    b = builder({"ratio": 0.0}, extra)
    with pytest.raises(ConfigError, match=r"^experiment.stages.same"):
        b.plan("same")  # 1000 windows, 400 read by pre: 600 unseen < 1000 needed
    with pytest.raises(ConfigError, match=r"experiment.stages.x.windows: must be one of all, unseen"):
        parse_graph({"x": {"data": {"old": 1.0}, "tokens": 32, "schedule": COS, "windows": "fresh"}})
    with pytest.raises(ConfigError, match=r"experiment.stages.x.windows: 'unseen' needs a parent"):
        parse_graph({"x": {"data": {"old": 1.0}, "tokens": 32, "schedule": COS, "windows": "unseen"}})
