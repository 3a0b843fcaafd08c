"""Experiments as stage graphs: parse, validate, order, derive the union baseline, hash.

An experiment is a small DAG of training stages. Each stage names its data mixture, its
token budget, its LR schedule, where its weights come from (scratch, the parent's final
checkpoint, or a hub/local Hugging Face checkpoint) and what else it keeps from the parent
(optimizer moments: ``keep`` or ``reset``; the paper resets). Everything here is pure: no
torch, no files; the runner turns a :class:`Stage` into a training job.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cpt_experiments.data.replay import Replay, mixture_weights
from cpt_experiments.errors import config_error
from cpt_experiments.hashing import content_hash

OPTIMIZER_POLICIES = ("reset", "keep")
#: Which windows of its data roles a stage draws: all of them (shuffled), or only those no ancestor read
#: (paper 1's "re-warming on the same data": more of the pre-training distribution, never a repeat).
WINDOW_POLICIES = ("all", "unseen")
ROLES = ("pretrain", "continual", "union", "branch", "main", "ptfs", "cpt")
#: Hex digits of a stage hash: 20, not the full default, because every recorded ``stage_hash`` (runs rows, stage
#: cache folders, config snapshots) has 20; 80 bits leave no collision risk among a few thousand stages.
STAGE_HASH_LENGTH = 20


@dataclass(frozen=True)
class Stage:
    """One node of the stage graph. ``tokens`` is the stage's total token budget."""

    name: str
    data: Mapping[str, float]
    tokens: int
    schedule: Mapping[str, Any]
    parent: str | None = None
    init_from: str | None = None
    optimizer: str = "reset"
    replay: Replay = field(default_factory=Replay)
    role: str = "continual"
    version: int | None = None
    allow_repeat: bool = False
    evaluate: bool = False
    windows: str = "all"
    plan_of: str | None = None  # draw exactly this sibling's windows (same data and tokens; derived stages only)


def parse_stage(name: str, raw: Mapping[str, Any], key_prefix: str = "experiment.stages") -> Stage:
    """Check one stage mapping (keys and types come from ``config.StageConfig``) and build a :class:`Stage`.

    Errors name the config key. Schedule keys set to null are dropped (the schedule builder checks
    which ones its schedule takes).
    """
    key = f"{key_prefix}.{name}"
    data = mixture_weights(raw.get("data"), f"{key}.data")
    tokens = raw.get("tokens")
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens <= 0:
        raise config_error(f"{key}.tokens", f"must be a positive integer token budget, got {tokens!r}")
    schedule = raw.get("schedule")
    if not isinstance(schedule, Mapping) or not schedule.get("name"):
        raise config_error(f"{key}.schedule", "must be a schedule spec mapping with a 'name'")
    replay = Replay.from_config(raw.get("replay"), f"{key}.replay")
    optimizer = str(raw.get("optimizer") or "reset")
    if optimizer not in OPTIMIZER_POLICIES:
        raise config_error(f"{key}.optimizer", f"must be one of {', '.join(OPTIMIZER_POLICIES)}, got {optimizer!r}")
    parent, init_from = raw.get("parent"), raw.get("init_from")
    if parent and init_from:
        raise config_error(f"{key}.init_from", "a stage starts either from its parent or from init_from, not both")
    if optimizer == "keep" and not parent:
        raise config_error(f"{key}.optimizer", "'keep' needs a parent stage whose optimizer state can be kept")
    role = str(raw.get("role") or ("continual" if parent or init_from else "pretrain"))
    if role not in ROLES:
        raise config_error(f"{key}.role", f"unknown role {role!r} (known: {', '.join(ROLES)})")
    version = raw.get("version")
    windows = str(raw.get("windows") or "all")
    if windows not in WINDOW_POLICIES:
        raise config_error(f"{key}.windows", f"must be one of {', '.join(WINDOW_POLICIES)}, got {windows!r}")
    if windows == "unseen" and not parent:
        raise config_error(f"{key}.windows", "'unseen' needs a parent stage: without ancestors every window is unseen")
    return Stage(
        name=name,
        data=data,
        tokens=tokens,
        schedule={k: v for k, v in schedule.items() if v is not None},
        parent=str(parent) if parent else None,
        init_from=str(init_from) if init_from else None,
        optimizer=optimizer,
        replay=replay,
        role=role,
        version=int(version) if version is not None else None,
        allow_repeat=bool(raw.get("allow_repeat", False)),
        evaluate=bool(raw.get("evaluate", False)),
        windows=windows,
    )


def parse_graph(stages_raw: Mapping[str, Mapping[str, Any]], key: str = "experiment.stages") -> dict[str, Stage]:
    """Parse and validate all stages; returns them in topological order (parents first)."""
    if not isinstance(stages_raw, Mapping) or not stages_raw:
        raise config_error(key, "an experiment needs at least one stage")
    stages = {name: parse_stage(str(name), raw, key) for name, raw in stages_raw.items()}
    for s in stages.values():
        if s.parent is not None and s.parent not in stages:
            raise config_error(f"{key}.{s.name}.parent", f"unknown parent stage {s.parent!r}")
    return {name: stages[name] for name in topological_order(stages, key)}


def topological_order(stages: Mapping[str, Stage], key: str = "experiment.stages") -> list[str]:
    """Parents before children; a cycle raises naming one stage on it."""
    order: list[str] = []
    state: dict[str, int] = {}  # 1 = visiting, 2 = done

    def visit(name: str) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            raise config_error(f"{key}.{name}.parent", "the stage graph has a cycle through this stage")
        state[name] = 1
        parent = stages[name].parent
        if parent is not None:
            visit(parent)
        state[name] = 2
        order.append(name)

    for name in stages:
        visit(name)
    return order


def lineage(stages: Mapping[str, Stage], name: str) -> list[Stage]:
    """The chain root → ... → ``name``."""
    chain = [stages[name]]
    while chain[-1].parent is not None:
        chain.append(stages[chain[-1].parent])
    return chain[::-1]


def union_baseline(
    stages: Mapping[str, Stage], leaf: str, schedule: Mapping[str, Any], name: str = "union", allow_repeat: bool = False
) -> Stage:
    """The from-scratch baseline on all the data of the chain ending at ``leaf``.

    Same total tokens as the chain; each corpus weighted by the tokens the chain's stages budget
    for it as *data* (replay is ignored), so the data are mixed in proportion and the baseline is
    the same for every replay ratio of a sweep (paper 1: one union model on D0 ∪ D1, e.g. 300B
    Pile + 300B SlimPajama, compared with every replay variant).
    """
    chain = lineage(stages, leaf)
    per_corpus: dict[str, float] = {}
    for s in chain:
        for corpus, w in s.data.items():
            per_corpus[corpus] = per_corpus.get(corpus, 0.0) + w * s.tokens
    total = sum(s.tokens for s in chain)
    data = {k: v / total for k, v in sorted(per_corpus.items()) if v > 0}
    return Stage(
        name=name,
        data=data,
        tokens=total,
        schedule=dict(schedule),
        role="union",
        allow_repeat=allow_repeat,
        evaluate=chain[-1].evaluate,
    )


def chain_schedule_union(stages: Mapping[str, Stage], leaf: str, union: Stage, name: str) -> Stage:
    """``union``'s data and exact windows under the LR path of the chain ending at ``leaf`` (beyond paper 1).

    Every chain stage must be a ``warmup_cosine`` with the same peak, floor and warmup fraction (a
    pre-training cosine, then a re-warm + re-decay per continual stage); the result is one
    ``cosine_cycles`` schedule whose cycles have the chain stages' token shares. Then CPT − union =
    (CPT − this) + (this − union): what the data order (and the optimizer reset) costs, and what the
    single long schedule buys.
    """
    chain = lineage(stages, leaf)
    first = chain[0].schedule
    keys = ("max_lr", "min_lr", "warmup_frac")
    for s in chain:
        if s.schedule.get("name") != "warmup_cosine" or any(s.schedule.get(k) != first.get(k) for k in keys):
            raise config_error(
                "experiment.union.chain_schedule",
                f"needs every stage of the chain to {leaf!r} to be warmup_cosine with the same max_lr, min_lr and "
                f"warmup_frac; stage {s.name!r} has {dict(s.schedule)}",
            )
    schedule = {
        "name": "cosine_cycles",
        **{k: first[k] for k in keys},
        "cycle_fracs": [s.tokens / union.tokens for s in chain],
    }
    return Stage(
        name=name, data=dict(union.data), tokens=union.tokens, schedule=schedule, role="union",
        allow_repeat=union.allow_repeat, evaluate=union.evaluate, plan_of=union.name,
    )  # fmt: skip


def stage_hash(
    stage: Stage, context: Mapping[str, Any], parent_hash: str | None, plan_of_hash: str | None = None
) -> str:
    """Content hash of a stage: its own spec + everything that shapes its training + its parent's hash.

    ``context`` carries what is shared by all stages of a run and changes the result (model,
    optimizer, tokenizer hash, corpus specs, batch geometry, seed). The stage *name* is not part
    of the hash, so the same pre-training stage is shared across experiments and sweep members.
    """
    spec = {
        "data": dict(stage.data),
        "tokens": stage.tokens,
        "schedule": dict(stage.schedule),
        "init_from": stage.init_from,
        "optimizer": stage.optimizer,
        "replay": stage.replay.spec(),
        "allow_repeat": stage.allow_repeat,
        "parent": parent_hash,
        "context": context,
    }
    if stage.windows != "all":  # only then: every hash from before the option existed stays valid
        spec["windows"] = stage.windows
    if stage.plan_of is not None:  # the windows are another stage's: its hash fixes them
        spec["plan_of"] = plan_of_hash
    return content_hash(spec, STAGE_HASH_LENGTH)
