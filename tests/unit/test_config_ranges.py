"""Every numeric field of the typed schemas declares its range, and NaN, ±inf, -1, 0 and a huge value are each
either inside it (a documented meaning) or a one-line ConfigError naming the key, when the config is typed."""

from __future__ import annotations

import copy
import dataclasses
import math
import re
import typing
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import compose
from omegaconf import OmegaConf

from cpt_experiments import config
from cpt_experiments.errors import ConfigError
from cpt_experiments.ranges import RANGES

PROBES = {int: [-1, 0, 2**62], float: [math.nan, math.inf, -math.inf, -1.0, 0.0, 1e300]}
PROBES[int] += [math.nan, math.inf, -math.inf]  # an int field given a float: a type error naming the key
SCHEMAS = [
    c for c in vars(config).values() if dataclasses.is_dataclass(c) and c.__module__.startswith(f"{config.__name__}.")
]


def _numeric(tp: typing.Any) -> tuple[type, str] | None:
    """(int | float, "scalar" | "list" | "dict") if the annotation is a number, or a list or dict of numbers."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) is typing.Union and len(args) == 1:
        return _numeric(args[0])
    if tp in (int, float):
        return tp, "scalar"
    if typing.get_origin(tp) in (list, dict):
        inner = _numeric(typing.get_args(tp)[-1])
        return (inner[0], typing.get_origin(tp).__name__) if inner and inner[1] == "scalar" else None
    return None


def _nested(tp: typing.Any) -> type | None:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) in (typing.Union, dict) and args:
        return _nested(args[-1])
    return tp if dataclasses.is_dataclass(tp) else None


def test_every_numeric_field_declares_its_range() -> None:
    missing = [
        f"{cls.__name__}.{name}"
        for cls in SCHEMAS
        for name, tp in typing.get_type_hints(cls).items()
        if _numeric(tp) and name not in RANGES.get(cls.__name__, {})
    ]
    assert not missing, f"numeric fields without a declared range in cpt_experiments.ranges.RANGES: {missing}"


def _compose(name: str, overrides: list[str]) -> dict:
    return OmegaConf.to_container(compose(*overrides, config_name=name), resolve=True)


ROOTS = {
    "train": (config.TrainRoot, ["experiment=paper2/cpt_const", "scale=smoke", "paths.data_dir=/d", "paths.output_dir=/o"]),
    "evaluate": (config.EvaluateRoot, ["paths.data_dir=/d", "paths.output_dir=/o", "checkpoint=/c"]),
}  # fmt: skip


def _walk(schema: type, node: dict, prefix: tuple) -> Iterator[tuple[tuple, type, dict, str, type, str]]:
    """(owner path, owner schema, owner node, field, number type, kind) of every numeric field in ``node``."""
    # ExperimentConfig.stages is typed Any for Hydra; its values are StageConfigs. TrainRoot's corpora and tokenizer
    # are mappings as composed (the config hash hashes them so), typed in its __post_init__.
    hints = typing.get_type_hints(schema)
    if schema is config.ExperimentConfig:
        hints["stages"] = dict[str, config.StageConfig]
    if schema is config.TrainRoot:
        hints.update(corpora=dict[str, config.CorpusConfig], tokenizer=config.TokenizerConfig)
    for name, tp in hints.items():
        if (num := _numeric(tp)) is not None:
            yield prefix, schema, node, name, *num
        elif (sub := _nested(tp)) is not None and isinstance(node.get(name), dict):
            is_map = typing.get_origin(tp) is dict
            for key in list(node[name])[:1] if is_map else [None]:  # the first entry of a map stands for all
                child = node[name][key] if is_map else node[name]
                yield from _walk(sub, child, (*prefix, name) + ((key,) if is_map else ()))


def _cases() -> Iterator:
    for root, (schema, overrides) in ROOTS.items():
        for path, owner, node, field, number, kind in _walk(schema, _compose(root, overrides), ()):
            for probe in PROBES[number]:
                key = ".".join(map(str, (*path, field)))
                yield pytest.param(path, owner, node, field, kind, probe, id=f"{root}:{key}={probe}")


@pytest.mark.parametrize(("path", "owner", "node", "field", "kind", "probe"), list(_cases()))
def test_probe_is_in_range_or_one_line_naming_the_key(path, owner, node, field, kind, probe) -> None:
    # The owning schema is typed where it sits (the key prefix), as config.typed does for the whole root.
    node = copy.deepcopy(node)
    current = node.get(field)
    if kind == "list":
        node[field] = [probe]
    elif kind == "dict":
        tasks = [t for t in node.get("tasks", []) if not t.startswith("cpt_heldout_")]  # task_limits: a suite task
        node[field] = {next(iter(current)) if current else (tasks[0] if tasks else "x"): probe}
    else:
        node[field] = probe
    key = ".".join(map(str, (*path, field)))
    rng = RANGES[owner.__name__][field]
    accepted = rng.accepts(probe) and not (isinstance(probe, float) and rng.integer)
    try:
        config.typed(owner, node, key=".".join(map(str, path)))
    except ConfigError as exc:
        assert "\n" not in str(exc)
        if not accepted:
            assert str(exc).startswith(key), f"{key}={probe}: {exc}"
        return
    assert accepted, f"{key}={probe} outside its declared range was accepted"


def test_the_walk_reaches_every_schema_with_numbers() -> None:
    owners = {c.values[1].__name__ for c in _cases()}
    assert owners == {c.__name__ for c in SCHEMAS if any(_numeric(t) for t in typing.get_type_hints(c).values())}


@pytest.mark.parametrize("devices", [0, -2, "0", [], [-1], "gpu", True])
def test_trainer_devices(devices) -> None:
    cfg = _compose("train", ROOTS["train"][1])
    cfg["trainer"]["devices"] = devices
    with pytest.raises(ConfigError, match=r"^trainer\.devices: must be"):
        config.typed(config.TrainRoot, cfg)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "experiment:\n  stages:\n    a: {data: {en_old: 1.0}\n",
            r"broken\.yaml, line \d+: invalid YAML: expected ',' or '\}'",
        ),
        ("stages:\n  a: 1\n  a: 2\n", r"broken\.yaml, line 3: invalid YAML: found duplicate key a"),
        ("a: [1, 2\n", r"broken\.yaml, line \d+: invalid YAML: expected ',' or '\]'"),
    ],
)
def test_a_broken_preset_is_one_line_naming_the_file(tmp_path: Path, text: str, expected: str) -> None:
    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "fine.yaml").write_text("a: 1\n")
    (tmp_path / "experiment" / "broken.yaml").write_text(text)
    problem = config.yaml_problem(tmp_path)
    assert problem is not None and "\n" not in problem and re.search(expected, problem), problem
    assert config.yaml_problem(config.CONF_DIR) is None  # the shipped presets all load
