"""Typed config schemas (Hydra structured configs) for both entry points.

The YAML files in ``conf/`` hold the values; these dataclasses hold the shape: every key and its
type, and a default only where no YAML file sets one (``MISSING`` otherwise). ``register()`` puts the two root schemas in Hydra's ConfigStore, and
``conf/train.yaml`` / ``conf/evaluate.yaml`` extend them, so Hydra rejects an unknown key
(``+replay.ratoi=0.1``) or a value of the wrong type (``replay.ratio=lots``) while composing, before
any work starts. Every numeric field's range is declared in ``ranges.RANGES`` (a new numeric field declares its
range there) and checked by ``ranges.check_ranges`` when the pipeline turns the composed config
into objects; cross-field rules that types cannot express then run in ``__post_init__``
(``OmegaConf.to_object``). Both name the key they reject.
Schedules and stages are further validated by ``schedules.build_schedule`` and
``pipeline.stages``, which know the stage length and the graph.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from cpt_experiments.data_dir import default_data_dir
from cpt_experiments.errors import config_error
from cpt_experiments.files import CONF_DIR
from cpt_experiments.ranges import check_ranges

# OmegaConf reads these annotations at runtime, so they use typing's Dict/List/Optional.


@dataclass
class PathsConfig:
    """Where things live; relative paths resolve against the launch directory."""

    data_dir: str = MISSING  # local corpora (CPT_DATA_DIR)
    benchmark_dir: str = MISSING  # offline lm-eval JSONL files (CPT_BENCHMARK_DIR)
    output_dir: str = MISSING  # git-ignored: stage cache, token caches, Hydra run dirs
    cache_dir: str = MISSING  # tokenizers and token caches
    stage_dir: str = MISSING  # the stage cache
    results_dir: str = MISSING  # runs/curves/evals tables and configs/<config_hash>.yaml

    def __post_init__(self) -> None:
        # An empty output_dir makes /cache, /stages and /hydra at the filesystem root (derived paths).
        for f in dataclasses.fields(self):
            if not getattr(self, f.name).strip():
                raise config_error(
                    f"paths.{f.name}", "is empty; give a folder (relative paths start at the launch dir)"
                )


#: ``train.attention`` values: the ``attn_implementation`` of ``transformers`` that both architectures support.
ATTENTION_IMPLEMENTATIONS = ("sdpa", "eager")
#: Keys that change how fast a stage trains, not what it computes (rounding aside). They are outside the stage-hash
#: context (``pipeline.experiment.hash_stages``) and ``pipeline.records.config_hash`` leaves them out, so adding
#: them changed no hash of an earlier run. Precision is not among them: ``trainer.precision`` changes the
#: arithmetic (bf16 products) and is part of every stage hash.
SPEED_ONLY_KEYS = ("train.attention", "train.compile", "train.gradient_checkpointing")


@dataclass
class TrainConfig:
    """Batch geometry and bookkeeping shared by every stage of a run."""

    global_batch_windows: int = MISSING  # sequences per optimizer step over all ranks (part of the stage hash)
    micro_batch: int = MISSING  # sequences per rank and forward pass; accumulation is derived
    checkpoint_every_n_steps: int = MISSING  # resume granularity, optimizer steps
    val_every_n_steps: int = MISSING  # periodic per-domain validation, optimizer steps
    # Extra validation steps early in every stage (optimizer steps from the stage start), where the
    # re-warm spike and the first reaction to new data happen; empty = periodic only.
    val_early_steps: List[int] = field(default_factory=list)
    val_windows: int = MISSING  # fixed validation windows per domain
    num_workers: int = MISSING  # DataLoader worker processes
    log_every_n_steps: int = MISSING  # train metrics (loss, lr, tokens/s) are logged every n steps
    torch_threads: Optional[int] = MISSING  # intra-op threads; null = torch's default
    # Speed only (SPEED_ONLY_KEYS): the same computation up to float rounding, so none of these is part of a stage
    # hash or the run's config hash, and a stage started with one setting resumes or is reused under another.
    # Defaults here, not in conf/train/default.yaml: the config snapshots of runs recorded before these keys
    # existed must still compose (python -m cpt_experiments.verify), and a missing key means today's default.
    attention: str = "sdpa"  # sdpa (torch's fused scaled_dot_product_attention) | eager (transformers' matmuls)
    compile: bool = False  # torch.compile the model's training forward (first steps pay the compile time)
    gradient_checkpointing: bool = False  # recompute activations in backward: ~30% more compute, far less memory

    def __post_init__(self) -> None:
        for key in (
            "global_batch_windows",
            "micro_batch",
            "checkpoint_every_n_steps",
            "val_every_n_steps",
            "val_windows",
            "log_every_n_steps",
        ):
            if getattr(self, key) < 1:
                raise config_error(f"train.{key}", f"must be >= 1, got {getattr(self, key)}")
        if any(s < 1 for s in self.val_early_steps):
            raise config_error("train.val_early_steps", f"steps must be >= 1, got {list(self.val_early_steps)}")
        if self.num_workers < 0:
            raise config_error("train.num_workers", f"must be >= 0, got {self.num_workers}")
        if self.torch_threads is not None and self.torch_threads < 1:
            raise config_error("train.torch_threads", f"must be >= 1 or null, got {self.torch_threads}")
        if self.attention not in ATTENTION_IMPLEMENTATIONS:
            known = ", ".join(ATTENTION_IMPLEMENTATIONS)
            raise config_error("train.attention", f"must be one of {known}, got {self.attention!r}")


@dataclass
class BudgetConfig:
    """Token budgets per stage kind, set by the ``scale`` preset."""

    pretrain_tokens: int = MISSING
    continual_tokens: int = MISSING
    anneal_tokens: int = MISSING  # short decay branches (infinite schedules, path switching)
    # Paper 2's version stream (equal increments): new tokens per version (ΔT), the train tokens of one
    # slice (ΔT + 1: consecutive windows share a boundary token), the tokens of versions 1..i (PTFS
    # budgets, i·ΔT), and branch lengths per decay fraction f of one version (key f10 = 0.1, ...).
    version_tokens: Optional[int] = None
    version_slice_tokens: Optional[int] = None
    version_total_tokens: List[int] = field(default_factory=list)
    version_branch_tokens: Dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key in ("pretrain_tokens", "continual_tokens", "anneal_tokens"):
            if getattr(self, key) < 1:
                raise config_error(f"budget.{key}", f"must be a positive token count, got {getattr(self, key)}")
        if self.version_tokens is None:
            return
        if self.version_tokens < 1:
            raise config_error("budget.version_tokens", f"must be a positive token count, got {self.version_tokens}")
        if self.version_slice_tokens is None or self.version_slice_tokens <= self.version_tokens:
            raise config_error(
                "budget.version_slice_tokens", f"must exceed version_tokens={self.version_tokens} (ΔT + 1 at least)"
            )
        totals = list(self.version_total_tokens)
        if not totals or totals[0] != self.version_tokens or any(b <= a for a, b in zip(totals, totals[1:])):
            raise config_error(
                "budget.version_total_tokens", f"must start at version_tokens and increase, got {totals}"
            )
        for name, tokens in self.version_branch_tokens.items():
            if tokens < 1:
                raise config_error(f"budget.version_branch_tokens.{name}", f"must be positive, got {tokens}")


@dataclass
class LRConfig:
    """Peak, floor and constant learning rates the schedule presets interpolate (absolute LRs)."""

    eta_max: float = MISSING
    eta_min: float = MISSING
    eta_const: float = MISSING  # infinite schedules' constant phase: 0.55 x eta_max (paper 1, Table 14)


@dataclass
class ScheduleConfig:
    """One LR schedule: ``name`` picks the function, the other keys are its parameters (null = unused).

    Which keys a schedule takes is checked by ``schedules.build_schedule``; fractions are of the stage.
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


@dataclass
class OptimConfig:
    """AdamW as in paper 1's GPT-NeoX setup (§6.1): the LR itself comes from the stage's schedule."""

    betas: List[float] = MISSING
    eps: float = MISSING
    weight_decay: float = MISSING  # on >= 2-D parameters only
    lr_scale: float = MISSING  # per-group multiplier read by LRScheduleCallback
    grad_clip_norm: float = MISSING  # global L2 norm, passed as Trainer(gradient_clip_val=...)
    fused: Optional[bool] = MISSING  # null: the fused kernel on CPU/CUDA

    def __post_init__(self) -> None:
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise config_error("optim.betas", f"must be two numbers in [0, 1), got {list(self.betas)}")
        if not self.eps > 0:
            raise config_error("optim.eps", f"must be > 0, got {self.eps}")
        if self.weight_decay < 0:
            raise config_error("optim.weight_decay", f"must be >= 0, got {self.weight_decay}")
        if not (math.isfinite(self.grad_clip_norm) and self.grad_clip_norm > 0):
            raise config_error("optim.grad_clip_norm", f"must be > 0, got {self.grad_clip_norm}")


@dataclass
class ModelConfig:
    """A decoder shape (``training.model``): GPT-NeoX or LLaMA; the weights are always a stage's business."""

    name: str = MISSING
    arch: str = "gpt_neox"  # gpt_neox | llama (paper 2's LLaMA-1.2B); checked by training.model
    d_model: int = MISSING
    n_layers: int = MISSING
    n_heads: int = MISSING
    seq_len: int = MISSING  # context, tokens
    vocab_size: Optional[int] = None  # embedding rows; null: the tokenizer's size
    rotary_pct: float = MISSING  # fraction of each head's dims with rotary embeddings
    parallel_residual: bool = MISSING
    dropout: float = MISSING
    d_ff: Optional[int] = None  # MLP width; null: 4 * d_model (gpt_neox), 8/3 * d_model rounded to 32 (llama)
    rotary_base: Optional[float] = None  # null: 10000
    n_kv_heads: Optional[int] = None  # llama only: key/value heads (grouped-query attention); null: n_heads
    tie_embeddings: bool = False  # share input and output embeddings


@dataclass
class TrainerConfig:
    """The Lightning Trainer, built with ``hydra.utils.instantiate`` (``training.trainer.build_trainer``).

    ``kwargs`` passes any other ``Trainer`` argument (``+trainer.kwargs.profiler=simple``); an argument
    the Trainer does not take, or one the suite sets itself (max_steps, accumulate_grad_batches,
    gradient_clip_val, logger, callbacks, ...), is a one-line error before any work.
    """

    _target_: str = "pytorch_lightning.Trainer"
    accelerator: str = MISSING
    devices: Any = MISSING  # int, -1 (all visible) or a list of ids
    precision: str = MISSING
    strategy: str = MISSING
    num_nodes: int = MISSING
    kwargs: Dict[str, Any] = field(default_factory=dict)


@dataclass
class EvalSuiteConfig:
    """An lm-eval suite: task names and how to run them."""

    tasks: List[str] = MISSING
    num_fewshot: Optional[int] = 0
    limit: Optional[float] = None  # per task: the first n documents (>= 1) or a fraction (< 1); null: all
    task_limits: Dict[str, Optional[float]] = field(default_factory=dict)  # benchmark task -> own limit (null: all)
    batch_size: int = 8  # sequences per forward pass; with batch_tokens: the cap on them
    batch_tokens: Optional[int] = None  # padded tokens per forward pass (batch size by sequence length); null: off
    offline: bool = True  # only local task files, no hub
    heldout: bool = False  # render the cpt_heldout_<role> tasks among `tasks` from the corpora's validation documents
    heldout_limit: Optional[int] = None  # validation documents per role for the held-out tasks; null: `limit`

    def __post_init__(self) -> None:  # value ranges: ranges.RANGES (which knows where the suite sits)
        stray = sorted(t for t in self.task_limits if t not in self.tasks or t.startswith("cpt_heldout_"))
        if stray:
            problem = "use heldout_limit" if stray[0] in self.tasks else "is not among eval_suite.tasks"
            raise config_error(f"eval_suite.task_limits.{stray[0]}", problem)


@dataclass
class EvaluationConfig:
    """Evaluation after training: the stages marked ``evaluate: true``."""

    auto: bool = False
    suite: EvalSuiteConfig = MISSING


@dataclass
class TrainRoot:
    """Root of ``python -m cpt_experiments.train``."""

    seed: int = 0  # model init and data order; 0 <= seed < 2**32
    scale: str = MISSING
    allow_dirty_results: bool = False  # write into results/ from a tree with uncommitted changes
    dry_run: bool = False  # print the stage plan (cached or to train, tokens, steps, est. time) and stop
    paths: PathsConfig = MISSING
    corpora: Dict[str, Any] = MISSING  # role -> corpus (validated by data.corpus.CorpusSpec)
    tokenizer: Dict[str, Any] = MISSING  # validated by data.tokenizer.get_tokenizer
    model: ModelConfig = MISSING
    optim: OptimConfig = MISSING
    train: TrainConfig = MISSING
    trainer: TrainerConfig = MISSING
    # Extra loggers beside the always-on CSV log (which feeds the results tables): name -> a Lightning
    # logger config with `_target_`, instantiated once per trained stage (training.loggers).
    logger: Dict[str, Any] = field(default_factory=dict)
    # Extra Lightning callbacks of every trained stage: name -> a config with `_target_` (conf/callbacks/,
    # added with `+callbacks=lr_monitor`); not part of the run's identity, like the loggers.
    callbacks: Dict[str, Any] = field(default_factory=dict)
    shift: ShiftConfig = MISSING
    replay: ReplayConfig = MISSING
    lr: LRConfig = MISSING  # set by `scale`
    budget: BudgetConfig = MISSING  # set by `scale`
    schedules: Dict[str, ScheduleConfig] = field(default_factory=dict)
    evaluation: EvaluationConfig = MISSING
    experiment: Optional[ExperimentConfig] = None

    def __post_init__(self) -> None:
        if not 0 <= self.seed < 2**32:  # numpy and Lightning seed with 32 bits
            raise config_error("seed", f"must be in [0, 2**32), got {self.seed}")


@dataclass
class EvaluateRoot:
    """Root of ``python -m cpt_experiments.evaluate``: one checkpoint folder or a run's stages."""

    paths: PathsConfig = MISSING
    corpora: Dict[str, Any] = MISSING
    eval_suite: EvalSuiteConfig = MISSING
    checkpoint: Optional[str] = None  # an exported stage folder; rows get run_id "adhoc"
    run_id: Optional[str] = None  # every finished stage of this run in the runs table...
    stages: Optional[List[str]] = None  # ...or only these
    device: str = "cpu"
    seed: int = 0


def typed(schema: type, cfg: Any, key: str = "") -> tuple[Any, dict[str, Any]]:
    """``cfg`` merged into ``schema``: (the dataclass instance, the resolved plain dict).

    Merging rejects unknown keys and wrong types; instantiating runs the range checks. Every
    error is one ``ConfigError`` line naming the key (prefixed with ``key``, where ``cfg`` sits).
    """
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), cfg)
        plain = OmegaConf.to_container(merged, resolve=True, throw_on_missing=True)
        check_ranges(schema, plain, f"{key}." if key else "")  # every numeric field's range (cpt_experiments.ranges)
        obj = OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        where = ".".join(k for k in (key, str(getattr(exc, "full_key", None) or "")) if k) or "config"
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise config_error(where, msg) from None
    _reject_unknown(obj, plain, f"{key}." if key else "")
    return obj, plain


def _reject_unknown(obj: Any, plain: Any, prefix: str) -> None:
    """Hydra's ``+key=value`` adds keys even to a typed node, and ``to_object`` drops them silently;
    a typo such as ``+replay.ratoi=0.1`` must fail instead of training with the default."""
    if dataclasses.is_dataclass(obj) and isinstance(plain, dict):
        known = {f.name for f in dataclasses.fields(obj)}
        for key in plain:
            if key not in known:
                raise config_error(f"{prefix}{key}", f"unknown key (known: {', '.join(sorted(known))})")
            _reject_unknown(getattr(obj, key), plain[key], f"{prefix}{key}.")
    elif isinstance(obj, dict) and isinstance(plain, dict):
        for key, value in obj.items():
            _reject_unknown(value, plain.get(key), f"{prefix}{key}.")


def plain_dict(cfg: Any, key: str) -> dict[str, Any]:
    """``cfg`` as a plain dict: an OmegaConf node resolved, any mapping copied; ConfigError naming ``key`` otherwise."""
    if isinstance(cfg, DictConfig):
        cfg = OmegaConf.to_container(cfg, resolve=True)
    if not isinstance(cfg, Mapping):
        raise config_error(key, f"must be a mapping, got {type(cfg).__name__}")
    return dict(cfg)


def yaml_problem(conf_dir: Path = CONF_DIR) -> Optional[str]:
    """The first config file under ``conf_dir`` that is not valid YAML (syntax, a duplicate key), as one
    line naming the file and line; None if all load. Hydra would report it as a YAML traceback."""
    for path in sorted(conf_dir.rglob("*.yaml")):
        try:
            OmegaConf.load(path)
        except Exception as exc:  # noqa: BLE001 - yaml's and OmegaConf's errors alike
            mark = getattr(exc, "problem_mark", None)
            problem = getattr(exc, "problem", None) or (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            return f"{path}{f', line {mark.line + 1}' if mark else ''}: invalid YAML: {problem}"
    return None


def register() -> None:
    """Store the root schemas as ``train_schema`` and ``evaluate_schema`` and register the ``cpt_data_dir``
    and ``cpt_pid`` resolvers (idempotent)."""
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainRoot)
    cs.store(name="evaluate_schema", node=EvaluateRoot)
    OmegaConf.register_new_resolver("cpt_data_dir", default_data_dir, replace=True)
    # Run directories carry the process id: two runs started in the same second must not share one.
    # Cached (like Hydra's `now`): a multirun copies the launching process's resolver cache into every
    # member's config, so joblib workers see the launcher's pid and the sweep keeps one directory.
    OmegaConf.register_new_resolver("cpt_pid", os.getpid, replace=True, use_cache=True)
    # Budgets that are differences of others (e.g. a split's main path = split − anneal): ${cpt_minus:a,b}.
    OmegaConf.register_new_resolver("cpt_minus", _minus, replace=True)
    # Budgets that are multiples of others (e.g. the budget axis: k x the cpu budgets): ${cpt_times:a,k}.
    OmegaConf.register_new_resolver("cpt_times", _times, replace=True)


def _minus(a: int, b: int) -> int:
    """``a - b`` for integer budgets (resolver ``cpt_minus``); anything else is an error naming both values."""
    if any(isinstance(v, bool) or not isinstance(v, int) for v in (a, b)):
        raise ValueError(f"cpt_minus needs two integers, got {a!r} and {b!r}")
    return a - b


def _times(a: int, k: int) -> int:
    """``a * k`` for an integer budget and a positive integer multiplier (resolver ``cpt_times``)."""
    if any(isinstance(v, bool) or not isinstance(v, int) for v in (a, k)) or k < 1:
        raise ValueError(f"cpt_times needs an integer budget and an integer multiplier >= 1, got {a!r} and {k!r}")
    return a * k


register()
