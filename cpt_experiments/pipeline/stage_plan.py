"""A stage's plan: its step count, its LR schedule and its deterministic mixture plan (with replay).

The one place that turns a stage into what training needs: ``PlanBuilder.stage_plan(name)`` derives
the optimizer steps from the token budget and the batch geometry, builds the schedule for exactly
those steps, and the mixture plan of every window. The plan is a pure function of the stage spec,
the token caches and the seed, so a child stage that replays ``seen`` data rebuilds its ancestor's
plan instead of storing it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from cpt_experiments.data.mixing import MixturePlan
from cpt_experiments.data.mixture_sources import SourceSpec
from cpt_experiments.data.replay import fresh_replay_source, seen_replay_source
from cpt_experiments.data.windows import TokenWindows
from cpt_experiments.errors import ConfigError, config_error
from cpt_experiments.hashing import text_hash
from cpt_experiments.pipeline.stages import Stage, lineage
from cpt_experiments.schedules import Schedule

REPLAY_PREFIX = "replay:"


@dataclass(frozen=True)
class Geometry:
    """Batch geometry shared by all stages of a run."""

    seq_len: int  # tokens per training window (model context)
    global_batch_windows: int  # windows per optimizer step, all ranks together

    @property
    def tokens_per_step(self) -> int:
        return self.seq_len * self.global_batch_windows

    def steps_for(self, tokens: int, key: str) -> int:
        """Optimizer steps that fit in a token budget; a budget under one batch is an error."""
        steps = tokens // self.tokens_per_step
        if steps < 1:
            raise config_error(
                key, f"budget of {tokens} tokens is smaller than one batch ({self.tokens_per_step} tokens)"
            )
        return steps


@dataclass(frozen=True)
class StagePlan:
    """What training one stage needs from its spec: steps, the LR schedule over them, the window plan."""

    steps: int  # optimizer steps of the stage
    schedule: Schedule  # step -> absolute LR, built for exactly `steps`
    mixture: MixturePlan  # global window position -> (source, window); len = steps x global batch


def steps_and_schedule(stage: Stage, geometry: Geometry, key_prefix: str = "experiment.stages") -> tuple[int, Schedule]:
    """A stage's optimizer steps (from its token budget) and its LR schedule built for exactly those steps.

    Needs no data, so the pipeline calls it before tokenizing anything to reject bad budgets and
    schedules early; ``PlanBuilder.stage_plan`` calls it again for the plan it trains with.
    """
    key = f"{key_prefix}.{stage.name}"
    steps = geometry.steps_for(stage.tokens, f"{key}.tokens")
    return steps, stage.schedule.build(steps)  # its errors name the schedule node it was parsed from


def plan_seed(seed: int, stage_hash: str) -> int:
    """Per-stage mixing seed: the run seed and the stage's content, so sibling stages differ."""
    return int(text_hash(f"{seed}:{stage_hash}", 8), 16)  # 32 bits: numpy and Lightning seed with 32


class PlanBuilder:
    """Builds (and memoises) the plans of an experiment's stages; building one validates it."""

    def __init__(
        self,
        stages: Mapping[str, Stage],
        hashes: Mapping[str, str],
        train_tokens: Mapping[str, np.ndarray],
        geometry: Geometry,
        seed: int,
        key_prefix: str = "experiment.stages",
    ) -> None:
        self.stages = stages
        self.hashes = hashes
        self.train_tokens = train_tokens
        self.geometry = geometry
        self.seed = seed
        self.key_prefix = key_prefix
        self._stage_plans: dict[str, StagePlan] = {}

    def num_windows(self, role: str) -> int:
        return len(TokenWindows(self.train_tokens[role], self.geometry.seq_len))

    def stage_plan(self, name: str) -> StagePlan:
        """Steps, schedule and mixture plan of stage ``name`` (the schedule is checked against the steps)."""
        if name not in self._stage_plans:
            steps, schedule = steps_and_schedule(self.stages[name], self.geometry, self.key_prefix)
            self._stage_plans[name] = StagePlan(steps, schedule, self._build(self.stages[name], steps))
        return self._stage_plans[name]

    def plan(self, name: str) -> MixturePlan:
        """The mixture plan of stage ``name`` (source names: corpus roles, ``replay:<role>``)."""
        return self.stage_plan(name).mixture

    def _build(self, stage: Stage, steps: int) -> MixturePlan:
        key = f"{self.key_prefix}.{stage.name}"
        if stage.plan_of is not None:  # a derived stage that reads exactly its sibling's windows, in order
            return self.plan(stage.plan_of)
        seed = plan_seed(self.seed, self.hashes[stage.name])
        weights = stage.replay.mix(stage.data, prefix=REPLAY_PREFIX)
        sources = []
        for name, w in weights.items():
            if w <= 0:
                continue
            if name.startswith(REPLAY_PREFIX):
                role = name.removeprefix(REPLAY_PREFIX)
                sources.append(self._replay_source(stage, role, w, seed, f"{key}.replay.sources.{role}"))
            elif stage.windows == "unseen":
                sources.append(self._unseen_source(stage, name, w, seed, f"{key}.windows"))
            else:
                sources.append(SourceSpec(name=name, num_windows=self.num_windows(name), weight=w, order="shuffle"))
        try:
            return MixturePlan(
                sources,
                steps * self.geometry.global_batch_windows,
                seed=seed,
                batch_windows=self.geometry.global_batch_windows,
                allow_repeat=stage.allow_repeat,
            )
        except ConfigError as exc:
            # The mixer names its own keys (mixing.sources.<role>); say which stage it was.
            raise config_error(key, str(exc)) from None

    def _ancestor_plans(self, stage: Stage, role: str) -> list[MixturePlan]:
        """Plans of the ancestors (root first) that trained on ``role`` as new data."""
        chain = lineage(self.stages, stage.name)[:-1]
        return [self.plan(s.name) for s in chain if role in s.data and s.data[role] > 0]

    def _unseen_source(self, stage: Stage, role: str, weight: float, seed: int, key: str) -> SourceSpec:
        """Windows of ``role`` that no ancestor read, as data or as replay, in a seeded shuffle."""
        plans = [self.plan(s.name) for s in lineage(self.stages, stage.name)[:-1]]
        return fresh_replay_source(
            plans,
            role,
            self.num_windows(role),
            weight,
            seed,
            name=role,
            consumed_as=(role, REPLAY_PREFIX + role),
            key=key,
        )

    def _replay_source(self, stage: Stage, role: str, weight: float, seed: int, key: str) -> SourceSpec:
        ancestors = self._ancestor_plans(stage, role)
        name = REPLAY_PREFIX + role
        if stage.replay.mode == "seen":
            if not ancestors:
                raise config_error(
                    key, f"'seen' replay needs an ancestor stage that trained on {role!r}; use replay.mode=fresh"
                )
            # The nearest ancestor's consumption order: the data the model saw last (paper 1 replays
            # the pre-training samples in their original order).
            return seen_replay_source(
                ancestors[-1], role, weight, reshuffle=stage.replay.reshuffle, seed=seed, name=name
            )
        # Fresh: old-corpus windows that no ancestor consumed (not just the parent), shuffled.
        return fresh_replay_source(ancestors, role, self.num_windows(role), weight, seed, name=name)
