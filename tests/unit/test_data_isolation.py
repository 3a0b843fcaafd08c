"""The suite never reads the real corpora by accident: data discovery points at the synthetic folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cpt_experiments.data_dir import default_data_dir


def test_data_discovery_points_at_the_synthetic_folder(data_dir: Path) -> None:
    # A config composed without paths.data_dir (and every subprocess) reads synthetic text, never ../shared/data.
    assert os.environ["CPT_DATA_DIR"] == str(data_dir)
    assert Path(default_data_dir("cpu")) == data_dir
    assert "shared" not in data_dir.parts


@pytest.mark.real_data
def test_real_data_tests_see_the_real_corpora(real_data_dir: Path) -> None:
    assert Path(os.environ["CPT_DATA_DIR"]) == real_data_dir
    assert Path(default_data_dir("cpu")) == real_data_dir
