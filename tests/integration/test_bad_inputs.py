"""Every row of the README's bad-input table: the input fails before any training with the documented line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import compose
from hydra.errors import HydraException

from cpt_experiments.errors import CPTError
from cpt_experiments.train import train

REPO = Path(__file__).resolve().parents[2]
ROW = re.compile(r"^\| (\d+) \| `(.+)` \| `(.+)` \|$")


def _rows() -> list[tuple[str, str]]:
    text = (REPO / "README.md").read_text()
    section = text.split("### Bad input", 1)[1].split("\n#", 1)[0]
    rows = [(m.group(2), m.group(3)) for line in section.splitlines() if (m := ROW.match(line))]
    assert len(rows) >= 40, "the README's bad-input table lost rows"
    return rows


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")  # tokenizer and token caches shared by the rows that get that far


@pytest.mark.parametrize(("override", "expected"), _rows(), ids=[o[:40] for o, _ in _rows()])
def test_bad_input_fails_before_training_with_one_line(tmp_path, data_dir, cache_dir, override, expected) -> None:
    overrides = [
        "experiment=quickstart", "scale=smoke", f"paths.data_dir={data_dir}", f"paths.output_dir={tmp_path}",
        f"paths.cache_dir={cache_dir}", override,
    ]  # fmt: skip
    try:
        cfg = compose(*overrides)
    except HydraException as exc:  # types, unknown keys and missing presets: Hydra's own message
        assert expected in f"{exc} {exc.__cause__}"
        return
    with pytest.raises(CPTError) as err:
        train(cfg)
    assert expected in str(err.value) and "\n" not in str(err.value)
    assert not any((tmp_path / "stages").glob("*/done.json")), "a stage trained before the error"
