"""Ship the top-level ``conf/`` inside the wheel as ``cpt_experiments/conf`` (metadata is in pyproject.toml).

``conf/`` stays at the repository root for readers; an installed ``cpt-train`` finds its copy through
``cpt_experiments.files.CONF_DIR``. An editable install reads the checkout's ``conf/`` directly.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class BuildWithConf(build_py):
    """``build_py`` that also copies ``conf/**/*.yaml`` (git-ignored ``conf/local/`` left out) into the build."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):  # editable: the package reads the checkout's conf/
            return
        target = Path(self.build_lib) / "cpt_experiments" / "conf"
        shutil.rmtree(target, ignore_errors=True)
        for src in sorted((ROOT / "conf").rglob("*.yaml")):
            rel = src.relative_to(ROOT / "conf")
            if rel.parts[0] == "local":
                continue
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target / rel)


setup(cmdclass={"build_py": BuildWithConf})
