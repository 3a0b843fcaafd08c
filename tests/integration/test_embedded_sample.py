"""The embedded default data: with no CPT_DATA_DIR and no ../shared/data the smoke quickstart runs on the sample
that ships with the package; other scales stop before any work with the fix; the sample is what its README says."""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import re
from fnmatch import fnmatch
from pathlib import Path

import pytest
from conftest import compose

from cpt_experiments import data_dir as policy
from cpt_experiments.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "cpt_experiments" / "data" / "sample"
FILES = ("A_en_wikipedia.jsonl.gz", "B_en_web_mix.jsonl.gz", "C_de_bundestag.jsonl.gz")


@pytest.fixture
def fresh_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No CPT_DATA_DIR, no ../shared/data (whatever this machine has), the data-dir choice not yet logged."""
    monkeypatch.delenv("CPT_DATA_DIR", raising=False)
    monkeypatch.delenv("CPT_BENCHMARK_DIR", raising=False)
    monkeypatch.setattr(policy, "SHARED_DATA_DIR", str(tmp_path / "no" / "shared" / "data"))
    monkeypatch.setattr(policy, "_announced", set())
    monkeypatch.chdir(tmp_path)  # and no relative ../shared/data from the launch directory either
    return tmp_path


def compose_train(tmp: Path, *overrides: str):
    return compose(
        f"paths.output_dir={tmp / 'outputs'}",
        f"paths.cache_dir={tmp / 'cache'}",
        f"paths.results_dir={tmp / 'results'}",
        *overrides,
    )


def test_smoke_quickstart_runs_on_the_embedded_sample(fresh_machine: Path, caplog) -> None:
    from cpt_experiments.pipeline.context import typed_config
    from cpt_experiments.train import train

    # The smallest budgets that keep every stage (a few steps each): what is under test is the data choice.
    budgets = ("budget.pretrain_tokens=2048", "budget.continual_tokens=1024")
    cfg = compose_train(fresh_machine, "experiment=quickstart", "scale=smoke", *budgets)
    assert typed_config(cfg)[0].paths.data_dir == str(SAMPLE)
    policy._announced.clear()
    with caplog.at_level(logging.INFO, logger="cpt_experiments.data_dir"):
        summary = train(cfg)
    assert summary.trained() == ["pretrain", "de_replay0", "de_replay25", "union"]
    used = [r.getMessage() for r in caplog.records if r.name == "cpt_experiments.data_dir"]
    assert used == [
        f"paths.data_dir = {SAMPLE} (embedded sample for scale=smoke; CPT_DATA_DIR unset, no ../shared/data)"
    ]
    import pandas as pd

    runs = pd.read_csv(fresh_machine / "results" / "runs.csv")
    assert set(runs["stage"]) == {"pretrain", "de_replay0", "de_replay25", "union"}
    assert (runs["status"] == "done").all()


@pytest.mark.parametrize("scale", ["cpu"])
def test_other_scales_on_the_sample_stop_before_any_work_with_the_fix(fresh_machine: Path, scale: str) -> None:
    from cpt_experiments.pipeline.context import typed_config

    cfg = compose_train(fresh_machine, "experiment=quickstart", f"scale={scale}")
    with pytest.raises(ConfigError) as ei:
        typed_config(cfg)
    msg = str(ei.value)
    assert "\n" not in msg and msg.startswith(f"paths.data_dir: scale={scale} needs corpora")
    for fix in ("python -m cpt_experiments.data.fetch --data-dir DIR", "CPT_DATA_DIR=DIR", "paths.data_dir=DIR"):
        assert fix in msg
    assert not (fresh_machine / "outputs").exists() and not (fresh_machine / "cache").exists()


def test_hub_corpora_and_explicit_dirs_do_not_need_the_sample(fresh_machine: Path) -> None:
    from cpt_experiments.pipeline.context import typed_config

    # Hub corpora read no local file: the paper scale composes on a fresh machine.
    root, _ = typed_config(compose_train(fresh_machine, "experiment=quickstart", "scale=paper"))
    assert root.paths.data_dir == str(SAMPLE)
    root, _ = typed_config(compose_train(fresh_machine, "experiment=quickstart", "scale=cpu", "paths.data_dir=/d"))
    assert (root.paths.data_dir, root.paths.benchmark_dir) == ("/d", "/d/benchmarks")


def test_data_dir_default_order(fresh_machine: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert policy.default_data_dir("smoke") == str(SAMPLE)
    shared = fresh_machine / "shared" / "data"
    shared.mkdir(parents=True)
    monkeypatch.setattr(policy, "SHARED_DATA_DIR", str(shared))
    assert policy.default_data_dir("cpu") == str(shared)
    monkeypatch.setenv("CPT_DATA_DIR", "/somewhere/else")
    assert policy.default_data_dir("cpu") == "/somewhere/else"
    monkeypatch.setenv("CPT_DATA_DIR", "")  # empty counts as unset
    assert policy.default_data_dir("cpu") == str(shared)


def test_sample_is_what_its_readme_says_and_ships_as_package_data() -> None:
    readme = (SAMPLE / "README.md").read_text(encoding="utf-8")
    total = 0
    for name in FILES:
        row = next(line for line in readme.splitlines() if line.startswith(f"| `{name}`"))
        cells = [c.strip().strip("`") for c in row.strip("|").split("|")]
        docs, n_words, raw_bytes, gz_bytes, sha = int(cells[3]), cells[4], cells[5], cells[6], cells[7]
        raw = gzip.decompress((SAMPLE / name).read_bytes())
        lines = raw.decode("utf-8").splitlines()
        assert len(lines) == docs and f"{len(raw):,}" == raw_bytes and hashlib.sha256(raw).hexdigest() == sha
        assert f"{(SAMPLE / name).stat().st_size:,}" == gz_bytes
        assert f"{sum(len(json.loads(line)['text'].split()) for line in lines):,}" == n_words
        total += (SAMPLE / name).stat().st_size
    assert total <= 2_000_000 and f"Total {total:,} bytes compressed" in readme
    # pyproject's [tool.setuptools.package-data] line (a TOML array of strings is JSON); tomllib needs Python 3.11.
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    section = pyproject.split("[tool.setuptools.package-data]", 1)[1]
    shipped = json.loads(re.search(r'^"cpt_experiments" = (\[.*\])$', section, flags=re.M).group(1))
    for path in [*FILES, "README.md"]:
        assert any(fnmatch(f"data/sample/{path}", p) for p in shipped), path


@pytest.mark.real_data
def test_sample_is_every_kth_line_of_the_real_files(real_data_dir: Path) -> None:
    readme = (SAMPLE / "README.md").read_text(encoding="utf-8")
    for name in FILES:
        k = int(re.search(rf"awk 'NR % (\d+) == 1' \$D/{name.removesuffix('.gz')}", readme).group(1))
        source = (real_data_dir / name.removesuffix(".gz")).read_bytes().splitlines(keepends=True)
        expected = b"".join(line for i, line in enumerate(source, start=1) if i % k == 1)
        assert gzip.decompress((SAMPLE / name).read_bytes()) == expected, name
