"""ARCHITECTURE.md against the code: the import rules (every import of the package walked with ``ast``),
the entry-point table and the callbacks of a stage."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "cpt_experiments"
ARCHITECTURE = (PACKAGE.parent / "ARCHITECTURE.md").read_text()

#: Layer of each top-level module or subpackage of cpt_experiments.
LAYER = {
    "errors": "base", "atomic": "base", "config": "base", "data_dir": "base", "files": "base", "hashing": "base",
    "ranges": "base",
    "schedules": "schedules", "data": "data", "results": "results", "eval": "eval",
    "training": "training", "pipeline": "pipeline", "figures": "figures", "bench": "bench",
    "train": "entry", "evaluate": "entry", "verify": "entry",
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
    "cpt_experiments.train", "cpt_experiments.evaluate", "cpt_experiments.verify", "cpt_experiments.figures.__main__",
    "cpt_experiments.bench.__main__",
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
    assert any(i.startswith("transformers") for i in _imports(MODULES["cpt_experiments.pipeline.planning"]))


# --- the entry-point table and the callbacks list ------------------------------------------------------------------


def _runnable() -> set[str]:
    """``python -m`` names of the modules that run as ``__main__`` (a package's ``__main__.py`` runs the package)."""
    out = set()
    for name, path in MODULES.items():
        source = path.read_text()
        if path.name == "__main__.py" or re.search(r"^if __name__ == .__main__.:", source, re.M):
            out.add(name.removesuffix(".__main__"))
    return out


def _documented_entry_points() -> dict[str, str]:
    """module -> console script ('' if none), from the table under "## Entry points"."""
    section = ARCHITECTURE.split("## Entry points", 1)[1].split("\n## ", 1)[0]
    return dict(re.findall(r"^\| `(cpt_experiments[\w.]*)` \| (?:`([\w-]+)`)? *\|", section, re.M))


def _console_scripts() -> dict[str, str]:
    """module -> console script, from ``[project.scripts]`` in pyproject.toml (tomllib is Python 3.11+)."""
    text = (PACKAGE.parent / "pyproject.toml").read_text()
    section = text.split("[project.scripts]", 1)[1].split("\n[", 1)[0]
    return {
        target.removesuffix(".__main__"): script
        for script, target in re.findall(r'^([\w-]+) = "([\w.]+):(?:main|cli)"', section, re.M)
    }


def test_entry_point_table_lists_every_runnable_module_and_its_console_script() -> None:
    documented = _documented_entry_points()
    assert documented, "no table under '## Entry points' in ARCHITECTURE.md"
    assert set(documented) == _runnable(), "ARCHITECTURE.md's entry points != the modules that run as __main__"
    assert {m: s for m, s in documented.items() if s} == _console_scripts()
    for module in documented:  # every command has a main() to call
        path = MODULES.get(f"{module}.__main__", MODULES.get(module))
        assert any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in ast.parse(path.read_text()).body)


def _callbacks_built() -> list[str]:
    """Class names in the list ``stage_runner._callbacks`` returns (a name resolves to its assignment in ``_train``)."""
    tree = ast.parse(MODULES["cpt_experiments.pipeline.stage_runner"].read_text())
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    assigned = {
        t.id: n.value
        for n in ast.walk(functions["_train"])
        if isinstance(n, ast.Assign)
        for t in n.targets
        if isinstance(t, ast.Name)
    }
    (returned,) = [n.value for n in ast.walk(functions["_callbacks"]) if isinstance(n, ast.Return)]
    return [ast.unparse((assigned[e.id] if isinstance(e, ast.Name) else e).func) for e in returned.elts]


def test_architecture_names_the_callbacks_the_runner_builds() -> None:
    match = re.search(r"and (\w+) callbacks: (.+?)\. Export", ARCHITECTURE, re.S)
    assert match, "ARCHITECTURE.md no longer lists a stage's callbacks ('and <n> callbacks: ... Export')"
    count, listed = match.group(1), re.findall(r"`(\w+)`", match.group(2))
    built = _callbacks_built()
    assert listed == built, f"ARCHITECTURE.md lists {listed}, stage_runner._callbacks builds {built}"
    assert count == ["one", "two", "three", "four", "five", "six", "seven", "eight"][len(built) - 1]


@pytest.mark.parametrize("module", ["train", "evaluate"])
def test_console_script_refuses_a_broken_preset_in_one_line(module, monkeypatch, capsys) -> None:
    # cpt-train / cpt-evaluate run `cli`, which checks the presets before Hydra (as python -m does).
    import importlib

    mod = importlib.import_module(f"cpt_experiments.{module}")
    monkeypatch.setattr(mod, "yaml_problem", lambda: "conf/x.yaml, line 3: invalid YAML: found duplicate key")
    monkeypatch.setattr(mod, "main", lambda: pytest.fail("Hydra ran despite the broken preset"))
    with pytest.raises(SystemExit) as exit_:
        mod.cli()
    assert exit_.value.code == 2 and capsys.readouterr().err.count("\n") == 1
