"""The declared range of every numeric field of the typed config schemas (``config/``), checked before any work.

``RANGES`` maps a schema class name to its numeric fields: each is a ``Range`` (finite, bounds, integer or
not, whether null is allowed); a list or dict field's range applies to each element. ``check_ranges``
walks a resolved config with its schema (``config.typed`` calls it before the dataclasses are built) and refuses the first
value outside its range with one ``ConfigError`` line naming the full dotted key. The bounds are what the
code means by the field (a count is >= 1, a rate is > 0, a fraction is in [0, 1]); the upper bounds are
generous sanity limits, far above any preset, that turn a typo (``1e30``, an extra digit group) into an
error instead of an overflow or a run that never ends. ``tests/unit/test_config_ranges.py`` walks every
numeric field of every schema and tries NaN, ±inf, -1, 0 and a huge value. Cross-field rules of a schema
(e.g. ``d_model`` divisible by ``n_heads``) stay in its ``__post_init__`` or in the module that knows them.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass
from typing import Any

from cpt_experiments.errors import config_error


@dataclass(frozen=True)
class Range:
    """``lo``/``hi`` bounds (``lo_open``/``hi_open``: strict), ``integer`` values, ``null`` allowed."""

    lo: float
    hi: float
    lo_open: bool = False
    hi_open: bool = False
    integer: bool = False
    null: bool = False

    def accepts(self, value: Any) -> bool:
        if value is None:
            return self.null
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return False
        if self.integer and value != int(value):
            return False
        above = value > self.lo if self.lo_open else value >= self.lo
        below = value < self.hi if self.hi_open else value <= self.hi
        return above and below

    def describe(self) -> str:
        """``[1, 2**20]``, ``(0, 1]``, ... (``or null`` where allowed); non-finite values are always outside."""
        interval = f"{'(' if self.lo_open else '['}{_num(self.lo)}, {_num(self.hi)}{')' if self.hi_open else ']'}"
        return f"in {interval}" + (" or null" if self.null else "")


def _num(x: float) -> str:
    if float(x).is_integer() and abs(x) >= 2**16:
        n = int(abs(x))
        if n & (n - 1) == 0:
            return f"{'-' if x < 0 else ''}2**{n.bit_length() - 1}"
        if str(n).rstrip("0") == "1":
            return f"{'-' if x < 0 else ''}1e{len(str(n)) - 1}"
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def count(hi: float, lo: int = 1, null: bool = False) -> Range:
    """An integer count in [lo, hi]."""
    return Range(lo, hi, integer=True, null=null)


def real(lo: float, hi: float, lo_open: bool = False, hi_open: bool = False, null: bool = False) -> Range:
    """A finite real number in the interval."""
    return Range(lo, hi, lo_open, hi_open, null=null)


TOKENS = 10**15  # a token budget: paper scale is 1e11-1e12
STEPS = 10**9  # optimizer steps
LR = real(0.0, 10.0, null=True)  # an absolute learning rate (presets: 1e-5 .. 1e-2)
FRAC = real(0.0, 1.0, null=True)  # a fraction of a stage
WEIGHT = real(0.0, 1.0)  # a mixture weight (the weights of a mixture sum to 1: checked by its parser)

RANGES: dict[str, dict[str, Range]] = {
    "TrainConfig": {
        "global_batch_windows": count(2**24), "micro_batch": count(2**20),
        "checkpoint_every_n_steps": count(STEPS), "val_every_n_steps": count(STEPS), "val_early_steps": count(STEPS),
        "val_windows": count(10**7), "num_workers": count(1024, lo=0), "log_every_n_steps": count(STEPS),
        "torch_threads": count(4096, null=True),
    },
    "BudgetConfig": {
        "pretrain_tokens": count(TOKENS), "continual_tokens": count(TOKENS), "anneal_tokens": count(TOKENS),
        "version_tokens": count(TOKENS, null=True), "version_slice_tokens": count(TOKENS, null=True),
        "version_total_tokens": count(TOKENS), "version_branch_tokens": count(TOKENS),
    },
    "LRConfig": {"eta_max": real(0.0, 10.0, lo_open=True), "eta_min": real(0.0, 10.0), "eta_const": real(0.0, 10.0)},
    "ScheduleConfig": {
        "lr": LR, "max_lr": LR, "min_lr": LR, "const_lr": LR, "warmup_frac": FRAC, "cooldown_frac": FRAC,
        "anneal_frac": FRAC, "decay_frac": FRAC, "alpha": real(0.0, 1e9, lo_open=True, null=True),
        "num_repeats": count(10**6, null=True), "step_fracs": real(0.0, 1.0, hi_open=True),
        "step_factors": real(0.0, 1.0, lo_open=True), "cycle_fracs": real(0.0, 1.0, lo_open=True),
    },
    "ReplayConfig": {"ratio": real(0.0, 1.0, hi_open=True), "sources": WEIGHT},
    "StageConfig": {"data": WEIGHT, "tokens": count(TOKENS), "version": count(10**6, lo=0, null=True)},
    "ShiftConfig": {"data": WEIGHT},
    "OptimConfig": {
        "betas": real(0.0, 1.0, hi_open=True), "eps": real(0.0, 1.0, lo_open=True), "weight_decay": real(0.0, 10.0),
        "lr_scale": real(0.0, 1000.0, lo_open=True), "grad_clip_norm": real(0.0, 1e9, lo_open=True),
    },
    "ModelConfig": {
        "d_model": count(2**17), "n_layers": count(4096), "n_heads": count(4096), "seq_len": count(2**20),
        "vocab_size": count(2**24, null=True), "rotary_pct": real(0.0, 1.0, lo_open=True),
        "dropout": real(0.0, 1.0, hi_open=True), "d_ff": count(2**20, null=True),
        "rotary_base": real(0.0, 1e12, lo_open=True, null=True), "n_kv_heads": count(4096, null=True),
    },
    "TrainerConfig": {"num_nodes": count(10**5)},  # devices: see _check_devices
    "EvalSuiteConfig": {
        "num_fewshot": count(1000, lo=0, null=True), "limit": real(0.0, 1e9, lo_open=True, null=True),
        "task_limits": real(0.0, 1e9, lo_open=True, null=True), "batch_size": count(2**16),
        "batch_tokens": count(2**30, null=True), "heldout_limit": count(10**9, null=True),
    },
    "CorpusConfig": {
        "max_documents": count(10**12, lo=0, null=True), "max_tokens": count(TOKENS, lo=0, null=True),
        "max_validation_tokens": count(TOKENS, lo=0, null=True), "validation_fraction": real(0.0, 1.0, hi_open=True),
        "slice_index": count(10**6, null=True), "slice_count": count(10**6, null=True),
        "slice_fractions": real(0.0, 1e9, lo_open=True),
    },
    "TokenizerConfig": {
        "vocab_size": count(2**24, null=True), "min_frequency": count(10**9, null=True),
        "train_max_chars": count(10**15, null=True),
    },
    "TrainRoot": {"seed": Range(0, 2**32, hi_open=True, integer=True)},
    "EvaluateRoot": {"seed": Range(0, 2**32, hi_open=True, integer=True)},
}  # fmt: skip

#: Keys only one architecture reads (``model.arch``): set on the other they would change the stage hash
#: (hence the data order) while the model ignores them.
ARCH_ONLY: dict[str, str] = {"n_kv_heads": "llama"}


def check_ranges(schema: type, plain: Any, prefix: str = "") -> None:
    """Refuse the first value of ``plain`` (a resolved config of ``schema``, recursively) outside its declared
    range. Runs before the dataclasses are built, so their ``__post_init__`` cross-field rules see only
    in-range values. Fields typed ``Any`` (``ExperimentConfig.stages``) are checked where they are typed."""
    if not (dataclasses.is_dataclass(schema) and isinstance(plain, dict)):
        return
    declared = RANGES.get(schema.__name__, {})
    for name, tp in typing.get_type_hints(schema).items():
        value, key = plain.get(name), f"{prefix}{name}"
        if name in declared:
            _check(key, value, declared[name])
            continue
        sub, is_map = _nested(tp)
        if sub is not None and isinstance(value, dict):
            for k, v in value.items() if is_map else [(None, value)]:
                check_ranges(sub, v, f"{key}.{k}." if is_map else f"{key}.")
    if schema.__name__ == "TrainerConfig" and "devices" in plain:
        _check_devices(f"{prefix}devices", plain["devices"])
    if schema.__name__ == "ModelConfig":
        for name, arch in ARCH_ONLY.items():
            if plain.get(name) is not None and plain.get("arch", "gpt_neox") != arch:
                arch_now = plain.get("arch", "gpt_neox")
                raise config_error(f"{prefix}{name}", f"is read by arch={arch} only; {prefix}arch is {arch_now}")


def _nested(tp: Any) -> tuple[type | None, bool]:
    """(the dataclass inside ``tp``: ``X``, ``Optional[X]`` or ``Dict[str, X]``; whether it is a map)."""
    if dataclasses.is_dataclass(tp):
        return tp, False
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) is typing.Union and len(args) == 1:
        return _nested(args[0])
    if typing.get_origin(tp) is dict and args and dataclasses.is_dataclass(args[-1]):
        return args[-1], True
    return None, False


def _check(key: str, value: Any, rng: Range) -> None:
    if value is None:  # only Optional fields can be null (OmegaConf checks that): unused, or the default
        return
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else None
    if items is None:
        if not rng.accepts(value):
            raise config_error(key, f"must be {rng.describe()}, got {value!r}")
        return
    for sub, element in items:
        if not rng.accepts(element):
            raise config_error(f"{key}.{sub}", f"must be {rng.describe()}, got {element!r}")


def _check_devices(key: str, devices: Any) -> None:
    """``trainer.devices``: a count >= 1, -1 (all visible), ``auto``, or a non-empty list of device ids >= 0."""
    if isinstance(devices, str) and not devices.lstrip("-").isdigit():
        if devices != "auto":
            raise config_error(key, f"must be a count >= 1, -1 (all), 'auto' or a list of ids, got {devices!r}")
        return
    if isinstance(devices, list):
        if not devices or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**16 for d in devices):
            raise config_error(key, f"must be a non-empty list of device ids >= 0, got {devices!r}")
        return
    n = int(devices) if isinstance(devices, (int, str)) and not isinstance(devices, bool) else None
    if n is None or not (n == -1 or 1 <= n <= 2**16):
        raise config_error(key, f"must be a count >= 1, -1 (all), 'auto' or a list of ids, got {devices!r}")
