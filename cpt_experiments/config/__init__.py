"""Typed config schemas (Hydra structured configs) for both entry points.

A package: ``schemas`` (paths, batch, model, optimizer, evaluation and the two roots), ``stages`` (the
stage graph, its schedules and replay), ``data`` (a corpus, its hub source, the tokenizer), ``convert`` (``typed``, ``plain_dict``, ``yaml_problem``) and
``resolvers`` (``register``); the names below are re-exported so ``from cpt_experiments.config import X`` works.

The YAML files in ``conf/`` hold the values; these dataclasses hold the shape: every key and its
type, and a default only where no YAML file sets one (``MISSING`` otherwise). ``register()`` puts the two root schemas in Hydra's ConfigStore, and
``conf/train.yaml`` / ``conf/evaluate.yaml`` extend them, so Hydra rejects an unknown key
(``+replay.ratoi=0.1``) or a value of the wrong type (``replay.ratio=lots``) while composing, before
any work starts. Every numeric field's range is declared in ``ranges.RANGES`` (a new numeric field declares its
range there) and checked by ``ranges.check_ranges`` when the pipeline turns the composed config
into objects; cross-field rules that types cannot express then run in ``__post_init__``
(``OmegaConf.to_object``). Both name the key they reject.
Schedules and stages are further validated by ``schedules.parse_schedule`` (one typed config per name) and
``pipeline.stages``, which know the stage length and the graph.
"""

from cpt_experiments.config.convert import plain_dict, typed, yaml_problem
from cpt_experiments.config.data import CorpusConfig, HubConfig, TokenizerConfig
from cpt_experiments.config.resolvers import register
from cpt_experiments.config.schemas import (
    ATTENTION_IMPLEMENTATIONS,
    SPEED_ONLY_KEYS,
    BudgetConfig,
    EvalSuiteConfig,
    EvaluateRoot,
    EvaluationConfig,
    LRConfig,
    ModelConfig,
    OptimConfig,
    PathsConfig,
    TrainConfig,
    TrainerConfig,
    TrainRoot,
)
from cpt_experiments.config.stages import (
    ExperimentConfig,
    ReplayConfig,
    ScheduleConfig,
    ShiftConfig,
    StageConfig,
    UnionConfig,
)
from cpt_experiments.files import CONF_DIR

__all__ = [
    "ATTENTION_IMPLEMENTATIONS", "CONF_DIR", "SPEED_ONLY_KEYS", "BudgetConfig", "CorpusConfig", "EvalSuiteConfig",
    "EvaluateRoot", "EvaluationConfig", "ExperimentConfig", "HubConfig", "LRConfig", "ModelConfig", "OptimConfig",
    "PathsConfig", "ReplayConfig", "ScheduleConfig", "ShiftConfig", "StageConfig", "TokenizerConfig", "TrainConfig",
    "TrainRoot", "TrainerConfig", "UnionConfig", "plain_dict", "register", "typed", "yaml_problem",
]  # fmt: skip

register()
