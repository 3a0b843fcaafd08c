"""The stage-graph schemas: a stage, its LR schedule and replay, the derived union baseline, the experiment
that holds them, and paper 1's shift."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from omegaconf import MISSING

from cpt_experiments.config.convert import typed
from cpt_experiments.errors import config_error

# OmegaConf reads these annotations at runtime, so they use typing's Dict/List/Optional.


@dataclass
class ScheduleConfig:
    """One LR schedule: ``name`` picks the function, the other keys are its parameters (null = unused).

    Which keys a schedule takes is checked by ``schedules.parse_schedule`` (one typed config per name); fractions are of the stage.
    """

    name: str = MISSING
    lr: Optional[float] = None
    max_lr: Optional[float] = None
    min_lr: Optional[float] = None
    const_lr: Optional[float] = None
    warmup_frac: Optional[float] = None
    cooldown_frac: Optional[float] = None
    anneal_frac: Optional[float] = None
    decay_frac: Optional[float] = None
    cooldown_shape: Optional[str] = None
    decay_shape: Optional[str] = None
    shape: Optional[str] = None
    alpha: Optional[float] = None
    num_repeats: Optional[int] = None
    step_fracs: Optional[List[float]] = None
    step_factors: Optional[List[float]] = None
    cycle_fracs: Optional[List[float]] = None  # cosine_cycles: each cycle's share of the stage's steps


@dataclass
class ReplayConfig:
    """Replay of old data inside a stage; normalised and range-checked by ``data.replay.Replay``."""

    ratio: float = 0.0  # share of the stage's tokens drawn from `sources`, in [0, 1)
    mode: str = "seen"  # seen: windows an ancestor trained on; fresh: windows no ancestor read
    sources: Dict[str, float] = field(default_factory=dict)  # corpus role -> weight (sums to 1)
    reshuffle: bool = False  # seen mode: permute instead of the original order


@dataclass
class StageConfig:
    """One node of an experiment's stage graph (see ``pipeline.stages``)."""

    data: Dict[str, float] = MISSING  # corpus role -> weight of the new data (sums to 1)
    tokens: int = MISSING  # the stage's total token budget (replay included)
    schedule: ScheduleConfig = MISSING
    parent: Optional[str] = None  # start from this stage's final weights
    init_from: Optional[str] = None  # or from a hub id / local Hugging Face folder
    optimizer: str = "reset"  # reset | keep (the parent's AdamW moments)
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    role: Optional[str] = None  # pretrain | continual | union | branch | main | ptfs | cpt; default by parent
    version: Optional[int] = None  # paper 2: the release this stage belongs to
    allow_repeat: bool = False  # let a source repeat windows when it is smaller than its quota
    evaluate: bool = False  # run the evaluation suite on it when evaluation.auto
    windows: str = "all"  # all | unseen: the data roles draw only windows no ancestor read (as data or replay)


@dataclass
class UnionConfig:
    """The derived union baseline: from scratch on all the data of the chain ending at ``leaf``."""

    leaf: str = MISSING
    schedule: ScheduleConfig = MISSING  # usually the pre-training schedule (from scratch)
    name: str = "union"
    allow_repeat: bool = False
    # Also derive this stage (beyond paper 1): the union's data and exact windows under the chain's own LR path
    # (a cosine per chain stage, restarted at each boundary), so CPT − union splits into data order + schedule.
    chain_schedule: Optional[str] = None


@dataclass
class ExperimentConfig:
    """A stage graph; ``params`` holds a preset's own knobs (e.g. ``params.cooldown_shape``).

    ``stages`` maps a stage name to a ``StageConfig``. It is typed as ``Any`` for Hydra (whose
    ``+experiment.stages.<new>={...}`` cannot assign a mapping into a dict of dataclasses) and
    checked against ``StageConfig`` here, when the config becomes objects.
    """

    name: str = MISSING
    stages: Dict[str, Any] = MISSING
    variant: Optional[str] = None  # legend label of the ablation cell
    union: Optional[UnionConfig] = None
    params: Dict[str, Any] = field(default_factory=dict)
    only: Optional[List[str]] = None  # train (or reuse) and record only these stages and their ancestors; null = all

    def __post_init__(self) -> None:
        if not self.stages:
            raise config_error("experiment.stages", "an experiment needs at least one stage")
        self.stages = {
            name: stage
            if isinstance(stage, StageConfig)
            else typed(StageConfig, stage, key=f"experiment.stages.{name}")[0]
            for name, stage in self.stages.items()
        }


@dataclass
class ShiftConfig:
    """Paper 1's distribution shift of the continual stage: a label and the new-data mixture."""

    name: str = MISSING  # none | weak | strong (a label; rows record the shift measured from the corpora)
    data: Dict[str, float] = MISSING
