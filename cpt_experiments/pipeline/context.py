"""What every stage of a run shares: the typed config, tokenizer, token caches, batch geometry, valsets.

``typed_config`` turns a composed Hydra config into the typed ``config.TrainRoot`` (the one
validation of keys, types and ranges); ``prepare_run`` then builds the data side of a run:
tokenizer, token caches of every role the stages use, and the fixed validation windows.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from cpt_experiments.config import TrainRoot, typed
from cpt_experiments.data.corpus import CorpusSpec
from cpt_experiments.data.token_cache import TokenFile, build_token_cache, prepare_corpora
from cpt_experiments.data.tokenizer import get_tokenizer, tokenizer_hash
from cpt_experiments.errors import config_error
from cpt_experiments.eval.domain_loss import ValSet, make_valset
from cpt_experiments.files import SAMPLE_DATA_DIR
from cpt_experiments.pipeline.stage_plan import Geometry
from cpt_experiments.pipeline.stages import Stage
from cpt_experiments.training.architectures import resolve_vocab_size
from cpt_experiments.training.model import parameter_counts

log = logging.getLogger(__name__)


def typed_config(cfg: DictConfig | Mapping[str, Any]) -> tuple[TrainRoot, dict[str, Any]]:
    """The composed config as a typed ``TrainRoot`` (keys, types and ranges checked) and as a resolved dict."""
    root, plain = typed(TrainRoot, cfg)
    if root.experiment is None:
        raise config_error("experiment", "choose an experiment preset, e.g. experiment=quickstart")
    return root, plain


def override_warnings(overrides: Sequence[str]) -> list[str]:
    """Warnings for command-line overrides that change nothing or contradict each other.

    ``key={}`` merges an empty mapping into the existing one (a no-op: it does not clear it), and a key
    given twice keeps only its last value.
    """
    out, seen = [], {}
    for item in overrides:
        key, sep, value = item.lstrip("+").partition("=")
        if not sep or key.startswith(("~", "hydra.")):
            continue
        if value.strip() in ("{}", "{ }"):
            out.append(
                f"{key}={{}} changes nothing: an empty mapping merges into {key} (to replace it: ~{key} +{key}={{...}})"
            )
        if key in seen and seen[key] != value:
            out.append(f"{key} is given twice ({seen[key]!r}, then {value!r}); only the last one counts")
        seen[key] = value
    return out


def roles_of(stages: Mapping[str, Stage]) -> list[str]:
    """Corpus roles the stages read (as data or replay), in first-use order."""
    roles: list[str] = []
    for s in stages.values():
        for r in [*s.data, *s.replay.sources]:
            if r not in roles:
                roles.append(r)
    return roles


@dataclass
class RunContext:
    """Everything a stage of this run needs besides its own spec and plan."""

    cfg: TrainRoot
    tokenizer: Any
    tokenizer_hash: str
    vocab_size: int  # embedding rows of the model
    geometry: Geometry
    roles: list[str]  # corpus roles the experiment reads
    token_files: dict[str, dict[str, TokenFile]]  # role -> split -> token cache
    valsets: dict[str, ValSet]  # role -> fixed validation windows (roles with a validation split)

    @property
    def model_cfg(self) -> dict[str, Any]:
        return asdict(self.cfg.model)

    @functools.cached_property
    def param_counts(self) -> tuple[int, int]:
        """(total, non-embedding) parameters of the model, built on the meta device once per run."""
        return parameter_counts(self.model_cfg, self.vocab_size)

    @property
    def params(self) -> int:
        """The model's parameters (a tied embedding table once)."""
        return self.param_counts[0]

    @property
    def params_non_embedding(self) -> int:
        """The model's parameters without the embedding and unembedding tables."""
        return self.param_counts[1]

    @property
    def optim_cfg(self) -> dict[str, Any]:
        return asdict(self.cfg.optim)

    def train_tokens(self, role: str) -> np.ndarray:
        return self.token_files[role]["train"].tokens

    def corpus_id(self, role: str) -> str:
        """``<corpus name>@<train cache key>``: which corpus filled ``role``, and its exact content."""
        manifest = self.token_files[role]["train"].manifest
        return f"{manifest['spec']['name']}@{manifest['cache_key'][:12]}"


def run_tokenizer(cfg: TrainRoot) -> Any:
    """The run's tokenizer: trained on ``tokenizer.train_corpus`` (or reused from ``paths.cache_dir``), or pretrained."""
    train_role = cfg.tokenizer.train_corpus
    if train_role is not None and train_role not in cfg.corpora:
        raise config_error("tokenizer.train_corpus", f"no corpus role {train_role!r} (known: {', '.join(cfg.corpora)})")
    tok_spec = CorpusSpec.from_config(cfg.corpora[train_role], key=f"corpora.{train_role}") if train_role else None
    return get_tokenizer(cfg.tokenizer, tok_spec, cfg.paths.data_dir, cfg.paths.cache_dir)


def prepare_run(cfg: TrainRoot, stages: Mapping[str, Stage]) -> RunContext:
    """Build the tokenizer, the token caches of every role the stages use, and the validation windows
    of every configured role."""
    if cfg.train.torch_threads:
        torch.set_num_threads(cfg.train.torch_threads)
    roles = roles_of(stages)
    for s in stages.values():
        for r in [*s.data, *s.replay.sources]:
            if r not in cfg.corpora:
                raise config_error(
                    f"experiment.stages.{s.name}", f"unknown corpus role {r!r} (known: {', '.join(cfg.corpora)})"
                )
    for role in roles:  # a trained-on role without validation data would silently lose its measurement
        spec = CorpusSpec.from_config(cfg.corpora[role], key=f"corpora.{role}")
        if spec.validation_fraction <= 0:
            raise config_error(
                f"corpora.{role}.validation_fraction",
                "is 0, but the experiment trains on this role: its loss (forgetting / adaptation) could not be measured",
            )
    paths = cfg.paths
    tokenizer = run_tokenizer(cfg)
    vocab_size = resolve_vocab_size(asdict(cfg.model), len(tokenizer))
    token_files = prepare_corpora(cfg.corpora, tokenizer, paths.data_dir, paths.cache_dir, roles=roles)
    # Every configured role is a validation domain, not only those this experiment trains on: a
    # stage shared by sweep members then has the same curves whichever member trained it.
    val_tokens = {r: files["validation"].tokens for r, files in token_files.items() if "validation" in files}
    for role in cfg.corpora:
        spec = CorpusSpec.from_config(cfg.corpora[role], key=f"corpora.{role}")
        if role not in token_files and spec.validation_fraction > 0:
            val_tokens[role] = build_token_cache(spec, "validation", tokenizer, paths.data_dir, paths.cache_dir).tokens
    _warn_small_validation(cfg, val_tokens)
    geometry = Geometry(cfg.model.seq_len, cfg.train.global_batch_windows)
    valsets = {
        r: make_valset(
            val_tokens[r], geometry.seq_len, cfg.train.val_windows, tokenizer, key=f"corpora.{r}.max_validation_tokens"
        )
        for r in cfg.corpora
        if r in val_tokens
    }
    return RunContext(cfg, tokenizer, tokenizer_hash(tokenizer), vocab_size, geometry, roles, token_files, valsets)


SMALL_VALIDATION_TOKENS = 20_000  # a validation split this small measures its domain with a noisy loss


def _warn_small_validation(cfg: TrainRoot, val_tokens: Mapping[str, np.ndarray]) -> None:
    """Warn for a validation split under ~20k tokens, unless its cap asked for it or it is the embedded sample."""
    for role, tokens in val_tokens.items():
        spec = CorpusSpec.from_config(cfg.corpora[role], key=f"corpora.{role}")
        cap = spec.max_validation_tokens
        sample = spec.source == "local" and not spec.data_dir and cfg.paths.data_dir == str(SAMPLE_DATA_DIR)
        if len(tokens) < SMALL_VALIDATION_TOKENS and (cap is None or cap >= SMALL_VALIDATION_TOKENS) and not sample:
            log.warning(
                "corpora.%s: validation split has only %d tokens (< %d), so its loss is noisy; raise "
                "corpora.%s.validation_fraction or add documents", role, len(tokens), SMALL_VALIDATION_TOKENS, role,
            )  # fmt: skip
