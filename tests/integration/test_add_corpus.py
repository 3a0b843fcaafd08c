"""The README's "Add a corpus" recipe on a fresh clone: its YAML, a folder of the user's own, no ../shared."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
from conftest import compose

from cpt_experiments.data.corpus import CorpusSpec
from cpt_experiments.data.documents import resolve_path
from cpt_experiments.train import train

REPO = Path(__file__).resolve().parents[2]


def _readme_corpus_yaml() -> str:
    text = (REPO / "README.md").read_text()
    section = text.split("**Add a corpus**", 1)[1]
    match = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert match, "the README's add-a-corpus recipe lost its YAML block"
    return match.group(1)


def _user_corpus(folder: Path, source: Path, n_docs: int) -> None:
    """The user's file: the first documents of a synthetic corpus, under the recipe's file name."""
    folder.mkdir(parents=True)
    lines = source.read_text().splitlines()[:n_docs]
    (folder / "my_corpus.jsonl").write_text("\n".join(lines) + "\n")
    assert all("text" in json.loads(line) for line in lines)


def test_readme_recipe_trains_on_a_corpus_in_its_own_folder(tmp_path, data_dir, caplog) -> None:
    conf = tmp_path / "myconf" / "corpus"
    conf.mkdir(parents=True)
    (conf / "my_corpus.yaml").write_text(_readme_corpus_yaml())
    mydata = tmp_path / "mydata"
    _user_corpus(mydata, data_dir / "B_en_web_mix.jsonl", n_docs=80)  # ~4 validation documents, < 20k tokens
    overrides = [
        f"hydra.searchpath=[file://{tmp_path / 'myconf'}]", "corpus@corpora.en_new=my_corpus",
        f"corpora.en_new.data_dir={mydata}", "experiment=cpt", "shift=weak", "scale=smoke", "dry_run=true",
        f"paths.data_dir={data_dir}", f"paths.output_dir={tmp_path / 'out'}",
    ]  # fmt: skip
    cfg = compose(*overrides)
    with caplog.at_level(logging.WARNING):
        summary = train(cfg)
    assert summary.lines[0].startswith("dry run of cpt-")
    caches = {p.name.rsplit("-", 1)[0] for p in (tmp_path / "out" / "cache" / "tokens").iterdir()}
    assert {"my_corpus-train", "my_corpus-validation", "wiki_en-train"} <= caches  # the others from paths.data_dir
    small = [r.getMessage() for r in caplog.records if "validation split has only" in r.getMessage()]
    assert any(m.startswith("corpora.en_new: validation split has only ") for m in small), small


def test_corpus_path_is_absolute_or_relative_to_its_own_or_the_run_data_dir(tmp_path: Path) -> None:
    spec = CorpusSpec.from_config({"name": "c", "source": "local", "path": "c.jsonl"})
    assert resolve_path(spec, tmp_path / "run") == tmp_path / "run" / "c.jsonl"
    own = CorpusSpec.from_config({"name": "c", "source": "local", "path": "c.jsonl", "data_dir": str(tmp_path / "own")})
    assert resolve_path(own, tmp_path / "run") == tmp_path / "own" / "c.jsonl"
    absolute = CorpusSpec.from_config({"name": "c", "source": "local", "path": str(tmp_path / "abs.jsonl")})
    assert resolve_path(absolute, tmp_path / "run") == tmp_path / "abs.jsonl"
    assert own.spec_hash() == spec.spec_hash()  # a location, not content: moving the folder keeps the caches


@pytest.mark.parametrize("path", ["/data/mine.jsonl", "mine.jsonl"])
def test_scale_cpu_needs_paths_data_dir_only_for_relative_paths(path: str, monkeypatch) -> None:
    from cpt_experiments.data_dir import _reads_data_dir

    assert _reads_data_dir({"source": "local", "path": path}) == (not path.startswith("/"))
    assert not _reads_data_dir({"source": "local", "path": path, "data_dir": "/data"})
    assert not _reads_data_dir({"source": "hub", "hub": {"path": "org/x"}})
