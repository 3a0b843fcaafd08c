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

from cpt_experiments.config import StageConfig
from cpt_experiments.config.convert import typed
from cpt_experiments.data.replay import Replay, mixture_weights
from cpt_experiments.errors import config_error
from cpt_experiments.hashing import content_hash
from cpt_experiments.schedules import ScheduleSpec, parse_schedule
from cpt_experiments.schedules.decaying import CosineCycles, WarmupCosine

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
    schedule: ScheduleSpec
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

    @classmethod
    def from_config(cls, name: str, cfg: StageConfig, key: str) -> Stage:
        """The stage node ``cfg`` (typed, defaulted and range-checked by ``config.StageConfig``: ``tokens`` >= 1,
        weights in [0, 1]) with the rules its types cannot express: the mixture's sum, the schedule, replay,
        the enums and the parent links.

        Errors name ``<key>.<field>``.
        """
        data = mixture_weights(cfg.data, f"{key}.data")  # each weight's range is the schema's; the sum is not
        schedule = parse_schedule(cfg.schedule, f"{key}.schedule")
        replay = Replay.from_config(cfg.replay, f"{key}.replay")
        if cfg.optimizer not in OPTIMIZER_POLICIES:
            raise config_error(
                f"{key}.optimizer", f"must be one of {', '.join(OPTIMIZER_POLICIES)}, got {cfg.optimizer!r}"
            )
        parent, init_from = cfg.parent or None, cfg.init_from or None
        if parent and init_from:
            raise config_error(f"{key}.init_from", "a stage starts either from its parent or from init_from, not both")
        if cfg.optimizer == "keep" and not parent:
            raise config_error(f"{key}.optimizer", "'keep' needs a parent stage whose optimizer state can be kept")
        role = cfg.role or ("continual" if parent or init_from else "pretrain")
        if role not in ROLES:
            raise config_error(f"{key}.role", f"unknown role {role!r} (known: {', '.join(ROLES)})")
        if cfg.windows not in WINDOW_POLICIES:
            raise config_error(f"{key}.windows", f"must be one of {', '.join(WINDOW_POLICIES)}, got {cfg.windows!r}")
        if cfg.windows == "unseen" and not parent:
            raise config_error(
                f"{key}.windows", "'unseen' needs a parent stage: without ancestors every window is unseen"
            )
        return cls(
            name=name, data=data, tokens=cfg.tokens, schedule=schedule, parent=parent, init_from=init_from,
            optimizer=cfg.optimizer, replay=replay, role=role, version=cfg.version, allow_repeat=cfg.allow_repeat,
            evaluate=cfg.evaluate, windows=cfg.windows,
        )  # fmt: skip


def parse_graph(
    stages_cfg: Mapping[str, StageConfig | Mapping[str, Any]], key: str = "experiment.stages"
) -> dict[str, Stage]:
    """Build and validate all stages; returns them in topological order (parents first).

    A plain mapping (tests, tools) is typed by ``config.StageConfig`` first, as a composed config is.
    """
    if not isinstance(stages_cfg, Mapping) or not stages_cfg:
        raise config_error(key, "an experiment needs at least one stage")
    stages = {}
    for name, cfg in stages_cfg.items():
        if not isinstance(cfg, StageConfig):
            cfg = typed(StageConfig, cfg, key=f"{key}.{name}")[0]
        stages[str(name)] = Stage.from_config(str(name), cfg, f"{key}.{name}")
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
    stages: Mapping[str, Stage], leaf: str, schedule: ScheduleSpec, name: str = "union", allow_repeat: bool = False
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
        schedule=schedule,
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
    for s in chain:
        sched = s.schedule
        if (
            not isinstance(sched, WarmupCosine)
            or not isinstance(first, WarmupCosine)
            or ((sched.max_lr, sched.min_lr, sched.warmup_frac) != (first.max_lr, first.min_lr, first.warmup_frac))
        ):
            raise config_error(
                "experiment.union.chain_schedule",
                f"needs every stage of the chain to {leaf!r} to be warmup_cosine with the same max_lr, min_lr and "
                f"warmup_frac; stage {s.name!r} has {sched.spec()}",
            )
    schedule = CosineCycles(
        max_lr=first.max_lr, min_lr=first.min_lr, warmup_frac=first.warmup_frac,
        cycle_fracs=tuple(s.tokens / union.tokens for s in chain), key="experiment.union.chain_schedule",
    )  # fmt: skip
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
        "schedule": stage.schedule.spec(),
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
