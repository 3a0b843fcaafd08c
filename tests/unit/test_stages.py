"""Stage graphs: parsing errors, ordering, the derived union baseline, content hashes."""

from __future__ import annotations

import pytest

from cpt_experiments.config import StageConfig
from cpt_experiments.config.convert import typed
from cpt_experiments.errors import ConfigError
from cpt_experiments.pipeline.stages import (
    Stage,
    chain_schedule_union,
    lineage,
    parse_graph,
    stage_hash,
    union_baseline,
)
from cpt_experiments.schedules import parse_schedule

COS = {"name": "warmup_cosine", "max_lr": 1e-3, "min_lr": 1e-4, "warmup_frac": 0.01}


def graph(**overrides):
    g = {
        "pre": {"data": {"en_old": 1.0}, "tokens": 1000, "schedule": COS},
        "cont": {
            "parent": "pre",
            "data": {"de_new": 1.0},
            "tokens": 500,
            "schedule": COS,
            "replay": {"ratio": 0.25, "sources": {"en_old": 1.0}, "mode": "seen"},
        },
    }
    for k, v in overrides.items():
        g[k] = v
    return g


def test_parse_orders_parents_first_and_fills_roles():
    stages = parse_graph({"cont": graph()["cont"], "pre": graph()["pre"]})
    assert list(stages) == ["pre", "cont"]
    assert stages["pre"].role == "pretrain" and stages["cont"].role == "continual"
    assert [s.name for s in lineage(stages, "cont")] == ["pre", "cont"]


@pytest.mark.parametrize(
    "patch, key",
    [
        (
            {"cont": {"parent": "nope", "data": {"x": 1.0}, "tokens": 1, "schedule": COS}},
            "experiment.stages.cont.parent",
        ),
        (
            {"pre": {"parent": "cont", "data": {"x": 1.0}, "tokens": 1, "schedule": COS}},
            "parent: the stage graph has a cycle",
        ),
        (
            {"pre": {"data": {"a": 0.7, "b": 0.7}, "tokens": 1, "schedule": COS}},
            "experiment.stages.pre.data: weights must sum to 1",
        ),
        (
            {"pre": {"data": {"a": -0.5, "b": 1.5}, "tokens": 1, "schedule": COS}},
            "experiment.stages.pre.data.a: must be in [0, 1]",  # the schema's range (ranges.RANGES)
        ),
        (
            {"pre": {"data": {"a": 1.0}, "tokens": 0, "schedule": COS}},
            "experiment.stages.pre.tokens: must be in [1, ",  # the schema's range
        ),
        ({"pre": {"data": {"a": 1.0}, "tokens": 5, "schedule": {"max_lr": 1}}}, "experiment.stages.pre.schedule"),
        (
            {"pre": {"data": {"a": 1.0}, "tokens": 5, "schedule": COS, "optimizer": "keep"}},
            "experiment.stages.pre.optimizer",
        ),
        (
            {
                "cont": {
                    "parent": "pre",
                    "data": {"a": 1.0},
                    "tokens": 5,
                    "schedule": COS,
                    "replay": {"ratio": 1.0, "sources": {"a": 1}},
                }
            },
            "experiment.stages.cont.replay.ratio: must be in [0, 1)",
        ),
        (
            {"cont": {"parent": "pre", "data": {"a": 1.0}, "tokens": 5, "schedule": COS, "replay": {"ratio": -0.1}}},
            "experiment.stages.cont.replay.ratio",
        ),
        (
            {
                "cont": {
                    "parent": "pre",
                    "data": {"a": 1.0},
                    "tokens": 5,
                    "schedule": COS,
                    "replay": {"ratio": 0.1, "sources": {"a": 1}, "mode": "old"},
                }
            },
            "experiment.stages.cont.replay.mode: unknown replay mode",
        ),
        (
            {"cont": {"parent": "pre", "init_from": "x", "data": {"a": 1.0}, "tokens": 5, "schedule": COS}},
            "experiment.stages.cont.init_from",
        ),
    ],
)
def test_bad_graphs_name_the_key(patch, key):
    with pytest.raises(ConfigError) as err:
        parse_graph(graph(**patch))
    msg = str(err.value)
    assert key in msg and "\n" not in msg


def test_union_baseline_mixes_data_in_proportion_and_ignores_replay():
    stages = parse_graph(graph())
    union = union_baseline(stages, "cont", parse_schedule(COS))
    assert union.tokens == 1500
    assert union.data == pytest.approx({"de_new": 500 / 1500, "en_old": 1000 / 1500})
    assert union.parent is None and union.role == "union"
    # Same union whatever the replay ratio: one baseline serves a whole replay sweep.
    other = graph()
    other["cont"]["replay"]["ratio"] = 0.05
    assert union_baseline(parse_graph(other), "cont", parse_schedule(COS)).data == union.data


def test_hash_stable_and_sensitive_to_what_matters():
    stages = parse_graph(graph())
    ctx = {"model": {"d": 32}, "seed": 0}
    h_pre = stage_hash(stages["pre"], ctx, None)
    assert h_pre == stage_hash(parse_graph(graph())["pre"], dict(ctx), None)
    # The name does not matter (a shared pre-training stage is reused across experiments)...
    renamed = parse_graph({"other": graph()["pre"]})["other"]
    assert stage_hash(renamed, ctx, None) == h_pre
    # ...its content, context and parent do.
    assert stage_hash(stages["pre"], {**ctx, "seed": 1}, None) != h_pre
    more = graph()
    more["pre"]["tokens"] = 2000
    assert stage_hash(parse_graph(more)["pre"], ctx, None) != h_pre
    h_cont = stage_hash(stages["cont"], ctx, h_pre)
    assert stage_hash(stages["cont"], ctx, "other-parent") != h_cont
    lr = graph()
    lr["cont"]["schedule"] = {**COS, "max_lr": 2e-3}
    assert stage_hash(parse_graph(lr)["cont"], ctx, h_pre) != h_cont


def test_windows_all_keeps_every_existing_hash_and_unseen_changes_it():
    def stage(**extra) -> Stage:
        raw = {"data": {"old": 1.0}, "tokens": 64, "schedule": {"name": "constant", "lr": 1e-3}, "parent": "p", **extra}
        return Stage.from_config("s", typed(StageConfig, raw, key="s")[0], "s")

    default, explicit, unseen = stage(), stage(windows="all"), stage(windows="unseen")
    # The hash this spec had before `windows` existed (computed at commit 084e938): cached stages stay valid.
    assert stage_hash(default, {}, "ph") == stage_hash(explicit, {}, "ph") == "f2fae34ec62ebf5602ef"
    assert stage_hash(unseen, {}, "ph") != stage_hash(default, {}, "ph")


def test_chain_schedule_union_reads_the_unions_windows_under_the_chains_lr_path():
    stages = parse_graph(graph())
    union = union_baseline(stages, "cont", parse_schedule(COS))
    split = chain_schedule_union(stages, "cont", union, "union_cpt_schedule")
    assert (split.data, split.tokens, split.plan_of, split.role) == (union.data, union.tokens, "union", "union")
    assert split.schedule.spec() == {**COS, "name": "cosine_cycles", "cycle_fracs": [1000 / 1500, 500 / 1500]}
    # Its hash depends on whose windows it reads; the union's own hash is untouched by the option.
    ctx = {"seed": 0}
    assert stage_hash(split, ctx, None, "u1") != stage_hash(split, ctx, None, "u2")


def test_chain_schedule_union_needs_one_cosine_shape_along_the_chain():
    g = graph()
    g["cont"]["schedule"] = {**COS, "max_lr": 5e-4}
    stages = parse_graph(g)
    with pytest.raises(ConfigError, match="experiment.union.chain_schedule"):
        chain_schedule_union(stages, "cont", union_baseline(stages, "cont", parse_schedule(COS)), "u2")


def test_the_stage_schedule_is_typed_and_checked_when_the_graph_is_built():
    stages = parse_graph(graph())
    assert stages["pre"].schedule.peak_lr == COS["max_lr"] and stages["pre"].schedule.spec() == COS
    # Rejected once, at parse time (before any step count is known), naming the full key.
    bad = graph(pre={"data": {"en_old": 1.0}, "tokens": 1000, "schedule": {**COS, "cycle_fracs": [1.0]}})
    with pytest.raises(ConfigError, match=r"^experiment\.stages\.pre\.schedule\.cycle_fracs: unknown key"):
        parse_graph(bad)
    # A typo'd stage key is the schema's error (config.StageConfig), not a second parser's.
    with pytest.raises(ConfigError, match=r"^experiment\.stages\.pre\.tokenz: "):
        parse_graph(graph(pre={**graph()["pre"], "tokenz": 5}))
