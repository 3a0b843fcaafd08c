"""Plan an experiment: typed config -> validated stage graph, content hashes and a ``StagePlan`` per stage.

``plan_experiment`` checks everything that needs no training (budgets, mixtures, schedules, the trainer,
the model shape, init checkpoints) so a bad config fails before hours of tokenizing or training.
``build_stages`` and ``stage_hashes`` are also what ``verify`` uses to rebuild a recorded stage hash
from a config snapshot without tokenizing anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

from cpt_experiments.config import ExperimentConfig, TrainRoot
from cpt_experiments.errors import config_error
from cpt_experiments.pipeline.context import RunContext, prepare_run
from cpt_experiments.pipeline.stage_plan import Geometry, PlanBuilder, steps_and_schedule
from cpt_experiments.pipeline.stages import (
    Stage,
    chain_schedule_union,
    lineage,
    parse_graph,
    stage_hash,
    union_baseline,
)
from cpt_experiments.schedules import parse_schedule
from cpt_experiments.training.architectures import hf_config
from cpt_experiments.training.trainer import check_trainer


@dataclass
class ExperimentPlan:
    """A validated experiment, ready to train: its stages, their hashes and plans, the shared context."""

    stages: dict[str, Stage]
    hashes: dict[str, str]
    plans: PlanBuilder
    ctx: RunContext
    todo: list[str]  # the stages this run trains and records, in order (``experiment.only`` and ancestors)


def build_stages(exp: ExperimentConfig) -> dict[str, Stage]:
    """Parse the experiment's stages and add the derived union baseline, if requested."""
    stages = parse_graph(exp.stages)
    union = exp.union
    if union is not None:
        if union.leaf not in stages:
            raise config_error("experiment.union.leaf", f"unknown stage {union.leaf!r}")
        if union.name in stages:
            raise config_error("experiment.union.name", f"stage {union.name!r} already exists")
        schedule = parse_schedule(union.schedule, "experiment.union.schedule")
        stages[union.name] = union_baseline(
            stages, union.leaf, schedule, name=union.name, allow_repeat=union.allow_repeat
        )
        if union.chain_schedule is not None:
            if union.chain_schedule in stages:
                raise config_error("experiment.union.chain_schedule", f"stage {union.chain_schedule!r} already exists")
            stages[union.chain_schedule] = chain_schedule_union(
                stages, union.leaf, stages[union.name], union.chain_schedule
            )
    return stages


def stages_to_run(stages: Mapping[str, Stage], only: list[str] | None) -> list[str]:
    """The stages a run trains and records, in order: all, or ``experiment.only`` and their ancestors."""
    if only is None:
        return list(stages)
    for name in only:
        if name not in stages:
            raise config_error("experiment.only", f"unknown stage {name!r}; stages: {', '.join(stages)}")
    needed = {s.name for name in only for s in lineage(stages, name)}
    return [name for name in stages if name in needed]


def hash_stages(stages: Mapping[str, Stage], ctx: RunContext) -> dict[str, str]:
    """Content hash of every stage: its spec, what shapes its training, and its parent's hash."""
    train_keys = {r: ctx.token_files[r]["train"].manifest["cache_key"] for r in ctx.roles}
    return stage_hashes(stages, ctx.cfg, ctx.tokenizer_hash, train_keys, ctx.geometry)


def stage_hashes(
    stages: Mapping[str, Stage], cfg: TrainRoot, tok_hash: str, train_keys: Mapping[str, str], geometry: Geometry
) -> dict[str, str]:
    """``hash_stages`` from its inputs: ``train_keys`` maps each role read to its train token cache key
    (``data.token_cache.cache_key``), so ``verify`` can hash a plan without tokenizing anything."""
    hashes: dict[str, str] = {}
    for s in stages.values():
        context = {
            "model": asdict(cfg.model), "optim": asdict(cfg.optim), "tokenizer": tok_hash, "seed": cfg.seed,
            "corpora": {r: train_keys[r] for r in sorted({*s.data, *s.replay.sources})},
            "seq_len": geometry.seq_len, "global_batch_windows": geometry.global_batch_windows,
            "precision": cfg.trainer.precision,  # bf16 products change the result; the speed-only train.* keys don't
        }  # fmt: skip
        plan_of = hashes[s.plan_of] if s.plan_of else None
        hashes[s.name] = stage_hash(s, context, hashes[s.parent] if s.parent else None, plan_of)
    return hashes


def check_init_checkpoint(name_or_path: str, vocab_size: int, key: str) -> None:
    """The init checkpoint exists (local dir or hub id) and its embeddings fit the tokenizer."""
    from transformers import AutoConfig

    try:
        hf_cfg = AutoConfig.from_pretrained(name_or_path)
    except (OSError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise config_error(key, f"init checkpoint {name_or_path!r} not found: {first}") from None
    if getattr(hf_cfg, "vocab_size", vocab_size) < vocab_size:
        raise config_error(
            key, f"tokenizer has {vocab_size} tokens but checkpoint {name_or_path!r} has {hf_cfg.vocab_size} embeddings"
        )


def plan_experiment(cfg: TrainRoot) -> ExperimentPlan:
    """Build and validate every stage (budget, mixture, schedule, init checkpoint) before training anything."""
    assert cfg.experiment is not None  # typed_config guarantees it
    stages = build_stages(cfg.experiment)
    todo = stages_to_run(stages, cfg.experiment.only)  # an unknown name fails here, before any work
    # Before the tokenizer and token caches, which can take hours at paper scale. A dry run builds no
    # trainer, so a GPU/cluster config can be planned on a CPU login node.
    check_trainer(cfg, build=not cfg.dry_run)
    hf_config(asdict(cfg.model), cfg.model.vocab_size or 1024)  # the model shape (vocab checked later)
    geometry = Geometry(cfg.model.seq_len, cfg.train.global_batch_windows)
    for stage in stages.values():  # budgets and schedules need no data
        steps_and_schedule(stage, geometry)
    ctx = prepare_run(cfg, stages)
    hashes = hash_stages(stages, ctx)
    plans = PlanBuilder(stages, hashes, {r: ctx.train_tokens(r) for r in ctx.roles}, ctx.geometry, cfg.seed)
    for name, stage in stages.items():
        plans.stage_plan(name)
        if stage.init_from:
            check_init_checkpoint(stage.init_from, ctx.vocab_size, f"experiment.stages.{name}.init_from")
    return ExperimentPlan(stages, hashes, plans, ctx, todo)
