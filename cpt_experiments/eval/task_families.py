"""Task families: one ordinary lm-eval task per benchmark file, and groups that average them.

BLiMP ships 67 paradigm files of the same shape; writing 67 task YAMLs by hand would be silly.
A *family* YAML in ``eval/tasks/`` (recognised by its top-level ``family:`` key) names a glob of
benchmark files and the lm-eval keys every member shares; at render time (with the benchmark
folder known) it becomes plain lm-eval YAMLs::

    family: cpt_blimp          # the group; members are cpt_blimp_<file stem>
    files: blimp/*.jsonl       # relative to paths.benchmark_dir
    subgroup_by: field         # optional: a field of each file's first row -> cpt_blimp_field_<value>
    task: {...}                # lm-eval task keys of every member (its data file is filled in)
    group: {...}               # lm-eval group keys of every group (aggregate_metric_list, metadata)

The members' results land in the ``evals`` table as tasks like any other, the groups' as their
aggregate rows. ``!function`` hooks in ``task`` are kept (a ``utils.py`` beside the YAML serves them).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cpt_experiments.errors import DataError

_FAMILY_LINE = re.compile(r"^family:\s*(\S+)\s*$", re.MULTILINE)
_NAME = re.compile(r"^[A-Za-z0-9_]+$")
_NOT_NAME = re.compile(r"[^A-Za-z0-9]+")


class FunctionRef(str):
    """An lm-eval ``!function module.name`` reference, kept verbatim through load and dump."""


class _Loader(yaml.SafeLoader):
    pass


class _Dumper(yaml.SafeDumper):
    pass


_Loader.add_constructor("!function", lambda loader, node: FunctionRef(loader.construct_scalar(node)))
_Dumper.add_representer(FunctionRef, lambda dumper, ref: dumper.represent_scalar("!function", str(ref)))


@dataclass(frozen=True)
class Family:
    """A parsed family YAML (see the module docstring for the keys)."""

    name: str
    files: str
    task: dict[str, Any]
    group: dict[str, Any]
    subgroup_by: str | None = None
    source: str = ""  # the template's file name, for messages


def load_yaml(text: str) -> Any:
    """A task YAML's content; ``!function x.y`` becomes ``FunctionRef("x.y")`` (safe loading otherwise)."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - SafeLoader plus the !function tag only


def family_name(text: str) -> str | None:
    """The family's group name if ``text`` is a family YAML, else ``None`` (cheap: no YAML parse)."""
    match = _FAMILY_LINE.search(text)
    return match.group(1) if match else None


def parse_family(text: str, source: str) -> Family:
    """Parse a family YAML; a malformed one is a DataError naming ``source``."""
    try:
        doc = load_yaml(text)
    except yaml.YAMLError as exc:
        raise DataError(f"{source}: not valid YAML ({str(exc).splitlines()[0]})") from None
    known = {"family", "files", "subgroup_by", "task", "group"}
    if not isinstance(doc, dict) or set(doc) - known or not {"family", "files", "task"} <= set(doc):
        got = sorted(doc) if isinstance(doc, dict) else type(doc).__name__
        raise DataError(f"{source}: a task family needs family, files, task (optional subgroup_by, group); got {got}")
    if not _NAME.match(str(doc["family"])):
        raise DataError(f"{source}: family name {doc['family']!r} must match [A-Za-z0-9_]+")
    if not isinstance(doc["task"], dict) or "test_split" not in doc["task"]:
        raise DataError(f"{source}: family task keys must be a mapping with test_split (the data file's split)")
    return Family(
        name=str(doc["family"]),
        files=str(doc["files"]),
        task=dict(doc["task"]),
        group=dict(doc.get("group") or {}),
        subgroup_by=doc.get("subgroup_by"),
        source=source,
    )


def member_files(family: Family, benchmark_dir: Path) -> list[Path]:
    """The benchmark files of the family's members, sorted by name (none if the folder lacks them)."""
    return sorted(p for p in benchmark_dir.glob(family.files) if p.is_file())


def _first_row(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        line = fh.readline()
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        raise DataError(f"{path}: first line is not a JSON object") from None
    if not isinstance(row, dict):
        raise DataError(f"{path}: first line is not a JSON object")
    return row


def slug(value: Any) -> str:
    """A value as a task-name part: runs of other characters become ``_`` (``syntax/semantics`` ->
    ``syntax_semantics``, so BLiMP's one odd spelling joins its field)."""
    return _NOT_NAME.sub("_", str(value)).strip("_").lower() or "none"


def _dump(doc: dict[str, Any], source: str) -> str:
    header = f"# Rendered from {source} by cpt_experiments.eval.task_families; do not edit.\n"
    return header + yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True)


def render_family(family: Family, benchmark_dir: Path) -> dict[str, str]:
    """File name -> YAML text of every member task and group, for the files present.

    Members are ``<family>_<file stem>``; with ``subgroup_by`` each member joins the group
    ``<family>_<subgroup_by>_<value>`` and the family group lists those groups (lm-eval
    aggregates a group over all its leaf tasks, so the family's score is the mean over members,
    not over subgroups). An empty glob renders nothing: the family is then unknown to lm-eval,
    and ``task_resolution`` reports the missing files when it is requested.
    """
    files = member_files(family, benchmark_dir)
    out: dict[str, str] = {}
    members: dict[str, list[str]] = {}
    for path in files:
        if not _NAME.match(path.stem):
            raise DataError(f"{path}: file name must match [A-Za-z0-9_]+.jsonl to name a task of {family.name}")
        task = f"{family.name}_{path.stem}"
        doc = {"task": task, **family.task}
        kwargs = dict(doc.get("dataset_kwargs") or {})
        kwargs["data_files"] = {str(family.task["test_split"]): str(path.resolve())}
        doc["dataset_kwargs"] = kwargs
        out[f"{task}.yaml"] = _dump(doc, family.source)
        key = ""
        if family.subgroup_by:
            row = _first_row(path)
            if family.subgroup_by not in row:
                raise DataError(f"{path}: no field {family.subgroup_by!r} (subgroup_by of {family.source})")
            key = f"{family.name}_{slug(family.subgroup_by)}_{slug(row[family.subgroup_by])}"
        members.setdefault(key, []).append(task)
    if not members:
        return {}
    if family.subgroup_by:
        for sub, tasks in sorted(members.items()):
            if f"{sub}.yaml" in out:
                raise DataError(f"{benchmark_dir}: group {sub} of {family.source} clashes with a member task")
            out[f"{sub}.yaml"] = _dump({"group": sub, "task": tasks, **family.group}, family.source)
        children = sorted(members)
    else:
        children = members[""]
    out[f"{family.name}.yaml"] = _dump({"group": family.name, "task": children, **family.group}, family.source)
    return out
