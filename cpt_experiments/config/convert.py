"""Composed config -> typed objects (``typed``, ``plain_dict``) and the YAML check of ``conf/`` (``yaml_problem``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from cpt_experiments.errors import config_error
from cpt_experiments.files import CONF_DIR
from cpt_experiments.ranges import check_ranges


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
