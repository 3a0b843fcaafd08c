"""The import rules of ARCHITECTURE.md, checked by walking every import of the package with ``ast``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "cpt_experiments"

#: Layer of each top-level module or subpackage of cpt_experiments.
LAYER = {
    "errors": "base", "atomic": "base", "config": "base", "ranges": "base",
    "schedules": "schedules", "data": "data", "results": "results", "eval": "eval",
    "training": "training", "pipeline": "pipeline", "figures": "figures", "bench": "bench",
    "train": "entry", "evaluate": "entry",
}  # fmt: skip

#: Which layers each layer may import (itself included).
ALLOWED = {
    "base": {"base"},
    "schedules": {"base", "schedules"},
    "data": {"base", "data"},
    "results": {"base", "results"},
    "eval": {"base", "data", "eval"},
    "training": {"base", "data", "eval", "schedules", "training"},
    "pipeline": {"base", "data", "eval", "schedules", "training", "results", "pipeline"},
    "figures": {"base", "results", "figures"},
    "bench": {"base", "data", "eval", "schedules", "training", "bench"},
    "entry": {"base", "pipeline"},
}

#: Third-party packages a layer must never import.
FORBIDDEN = {
    "schedules": {"torch", "pytorch_lightning", "lightning", "transformers"},
    "data": {"pytorch_lightning", "lightning"},
    "results": {"torch", "pytorch_lightning", "lightning", "transformers"},
    "eval": {"pytorch_lightning", "lightning"},
    "figures": {"torch", "pytorch_lightning", "lightning", "transformers", "lm_eval"},
}

#: Entry points (``python -m ...``): none may import another.
ENTRY_POINTS = {
    "cpt_experiments.train", "cpt_experiments.evaluate", "cpt_experiments.figures.__main__", "cpt_experiments.bench.__main__",
}  # fmt: skip


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Absolute names of every module imported anywhere in ``path`` (function-level imports too)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    here = _module_name(path).split(".")
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here if is_pkg else here[:-1]
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)  # `from pkg import module`
    return out


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
GRAPH = {name: {i for i in _imports(p) if i in MODULES and i != name} for name, p in MODULES.items()}


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return LAYER.get(parts[1]) if len(parts) > 1 else None


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _layer(m)))
def test_module_imports_only_allowed_layers(module: str) -> None:
    layer = _layer(module)
    bad = sorted(i for i in GRAPH[module] if _layer(i) and _layer(i) not in ALLOWED[layer])
    assert not bad, f"{module} ({layer}) imports {bad}; {layer} may import {sorted(ALLOWED[layer])}"
    third_party = {i.split(".")[0] for i in _imports(MODULES[module])}
    banned = sorted(third_party & FORBIDDEN.get(layer, set()))
    assert not banned, f"{module} ({layer}) imports {banned}"


def test_entry_points_never_import_each_other() -> None:
    for entry in ENTRY_POINTS:
        assert not (GRAPH[entry] & ENTRY_POINTS), f"{entry} imports {GRAPH[entry] & ENTRY_POINTS}"


def test_every_module_has_a_layer() -> None:
    assert all(_layer(m) for m in MODULES if m != "cpt_experiments"), sorted(m for m in MODULES if not _layer(m))


def test_no_import_cycles() -> None:
    # Imports of a package's __init__ by its own modules are not edges of a cycle we care about.
    graph = {m: {i for i in deps if not m.startswith(i + ".")} for m, deps in GRAPH.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(d) :] + [d]))
            if d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_the_rules_can_fail() -> None:
    """The walker sees function-level and relative imports (a rule nobody can break checks nothing)."""
    assert "cpt_experiments.eval.heldout" in GRAPH["cpt_experiments.pipeline.evaluation"]
    assert "cpt_experiments.figures.style" in GRAPH["cpt_experiments.figures.benchmarks"]
    assert any(i.startswith("transformers") for i in _imports(MODULES["cpt_experiments.pipeline.experiment"]))
