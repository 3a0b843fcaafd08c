"""The built wheel ships the Hydra configs, and its console scripts find them from any directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import run_cli

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = {"cpt-train", "cpt-evaluate", "cpt-figures", "cpt-fetch"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip wheel`` of a copy of the checkout (offline, no build isolation; the copy keeps build/ out of the tree)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md"):
        shutil.copy2(REPO / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "local")
    for name in ("conf", "cpt_experiments"):
        shutil.copytree(REPO / name, src / name, ignore=ignore)
    out = tmp_path_factory.mktemp("dist")
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(src)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (whl,) = out.glob("cpt_experiments-*.whl")
    return whl


def test_wheel_ships_every_config_file_and_the_console_scripts(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"cpt_experiments/conf/{p.relative_to(REPO / 'conf')}" for p in (REPO / "conf").rglob("*.yaml")}
    expected = {n for n in expected if not n.startswith("cpt_experiments/conf/local/")}
    assert expected and not expected - names, sorted(expected - names)[:5]
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert all(f"{s} = " in text for s in SCRIPTS), text


@pytest.mark.slow
def test_installed_cpt_train_plans_the_quickstart_from_another_directory(wheel: Path, tmp_path: Path) -> None:
    """A non-editable install (``pip install --target``) run from outside the checkout: help, then a dry run."""
    site = tmp_path / "site"
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    env = {**os.environ, "PYTHONPATH": str(site), "CPT_OUTPUT_DIR": str(tmp_path / "out")}
    env.pop("CPT_DATA_DIR", None)  # the installed embedded sample serves scale=smoke
    run = tmp_path / "elsewhere"
    run.mkdir()
    script = str(site / "bin" / "cpt-train")
    helped = subprocess.run([sys.executable, script, "--help"], cwd=run, env=env, capture_output=True, text=True)
    assert helped.returncode == 0 and "cpt-train experiment=quickstart scale=smoke" in helped.stdout, helped.stderr
    args = [sys.executable, script, "experiment=quickstart", "scale=smoke", "dry_run=true"]
    proc = subprocess.run(args, cwd=run, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "dry run of quickstart-s0-" in proc.stdout + proc.stderr
    assert str(site / "cpt_experiments") in proc.stdout + proc.stderr  # it read the installed package and sample


def test_bash_completion_of_the_installed_command_lists_config_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """``cpt-train -sc query=bash`` (what Hydra's completion script calls) completes a config group, from a
    directory outside the checkout. In process: the console script's own start is the slow test above."""
    from cpt_experiments.train import main

    monkeypatch.setenv("COMP_LINE", "cpt-train experiment=quick")
    monkeypatch.setenv("COMP_POINT", "26")
    monkeypatch.chdir(tmp_path)
    code = run_cli(main, "cpt-train", "-sc", "query=bash")
    out, err = capsys.readouterr()
    assert code == 0, err[-2000:]
    assert "experiment=quickstart" in out.split()
