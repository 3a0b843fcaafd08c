"""The run-level schemas: paths, batch geometry, budgets, optimizer, model, Trainer, evaluation and the two
roots (``TrainRoot``, ``EvaluateRoot``); the stage graph is in ``config.stages``."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from omegaconf import MISSING

from cpt_experiments.config.convert import typed
from cpt_experiments.config.data import CorpusConfig, TokenizerConfig
from cpt_experiments.config.stages import ExperimentConfig, ReplayConfig, ScheduleConfig, ShiftConfig
from cpt_experiments.errors import config_error

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
#: context (``pipeline.planning.hash_stages``) and ``pipeline.records.config_hash`` leaves them out, so adding
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
    arch: str = "gpt_neox"  # gpt_neox | llama (paper 2's LLaMA-1.2B); checked by training.architectures
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
    # role -> corpus, and the tokenizer: mappings as composed (the config hash hashes them so), typed once in
    # __post_init__ into config.data's CorpusConfig / TokenizerConfig, which is all the code downstream sees.
    corpora: Dict[str, Any] = MISSING
    tokenizer: Dict[str, Any] = MISSING
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
        self.corpora = {role: _typed_node(CorpusConfig, c, f"corpora.{role}") for role, c in self.corpora.items()}
        self.tokenizer = _typed_node(TokenizerConfig, self.tokenizer, "tokenizer")  # type: ignore[assignment]


def _typed_node(schema: type, node: Any, key: str) -> Any:
    """``node`` as a ``schema`` instance (an instance already is one), checked as ``config.typed`` checks."""
    return node if isinstance(node, schema) else typed(schema, node, key)[0]


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
