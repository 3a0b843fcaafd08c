"""Corpus specs: document-level split, caps, the one datasets-based loader, bad input, shipped configs."""

from __future__ import annotations

import hashlib
import importlib
import json
from pathlib import Path

import pytest
from conftest import compose

from cpt_experiments.data.corpus import CorpusSpec
from cpt_experiments.data.documents import iter_documents, source_fingerprint
from cpt_experiments.data.splits import document_split, split_documents
from cpt_experiments.errors import ConfigError, DataError

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def local_spec(**overrides) -> CorpusSpec:
    cfg = {"name": "toy", "source": "local", "path": "toy.jsonl", "id_field": "id", "validation_fraction": 0.3}
    cfg.update(overrides)
    return CorpusSpec.from_config(cfg, key="corpora.en_old")


@pytest.fixture
def toy_dir(tmp_path: Path) -> Path:
    rows = [{"id": f"doc-{i}", "text": f"document number {i} says hello"} for i in range(200)]
    write_jsonl(tmp_path / "toy.jsonl", rows)
    return tmp_path


def test_documents_in_file_order_with_ids(toy_dir: Path) -> None:
    docs = list(iter_documents(local_spec(), toy_dir))
    assert len(docs) == 200
    assert docs[0] == ("doc-0", "document number 0 says hello")
    assert docs[199][0] == "doc-199"


def test_split_matches_sha256_rule_and_is_disjoint(toy_dir: Path) -> None:
    spec = local_spec()
    train = [k for k, _ in split_documents(spec, toy_dir, "train")]
    val = [k for k, _ in split_documents(spec, toy_dir, "validation")]
    assert not set(train) & set(val)
    assert sorted(train + val) == sorted(f"doc-{i}" for i in range(200))
    # The rule, restated independently: sha256(salt + key) as a fraction of 2**64 below 0.3.
    expected_val = [
        f"doc-{i}"
        for i in range(200)
        if int.from_bytes(hashlib.sha256(f"cpt-split-v1doc-{i}".encode()).digest()[:8], "big") / 2**64 < 0.3
    ]
    assert val == expected_val
    assert 40 <= len(val) <= 80  # binomial(200, 0.3): mean 60, sd 6.5
    assert [k for k, _ in split_documents(spec, toy_dir, "validation")] == val  # deterministic


def test_split_is_per_document_not_per_position(toy_dir: Path) -> None:
    full = local_spec()
    capped = local_spec(max_documents=50)
    val_capped = {k for k, _ in split_documents(capped, toy_dir, "validation")}
    val_full = {k for k, _ in split_documents(full, toy_dir, "validation")}
    assert val_capped == {k for k in val_full if int(k.split("-")[1]) < 50}
    other_salt = {k for k, _ in split_documents(local_spec(split_salt="other"), toy_dir, "validation")}
    assert other_salt != val_full


def test_text_identifies_document_without_id_field(toy_dir: Path) -> None:
    spec = local_spec(id_field=None)
    key, text = next(iter_documents(spec, toy_dir))
    assert key == text == "document number 0 says hello"
    assert document_split(key, spec) in ("train", "validation")


def test_max_documents_counts_non_empty_docs_in_order(tmp_path: Path) -> None:
    rows = [{"id": "a", "text": "one"}, {"id": "b", "text": "  "}, {"id": "c", "text": "two"}, {"id": "d", "text": "x"}]
    write_jsonl(tmp_path / "toy.jsonl", rows)
    assert list(iter_documents(local_spec(max_documents=2), tmp_path)) == [("a", "one"), ("c", "two")]


def test_text_and_parquet_formats(tmp_path: Path) -> None:
    (tmp_path / "toy.txt").write_text("first line\nsecond line\n", encoding="utf-8")
    spec = local_spec(path="toy.txt", format="text", id_field=None)
    assert [t for _, t in iter_documents(spec, tmp_path)] == ["first line", "second line"]
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"id": ["p1", "p2"], "body": ["alpha", "beta"]}), tmp_path / "toy.parquet")
    spec = local_spec(path=str(tmp_path / "toy.parquet"), format="parquet", text_field="body")
    assert list(iter_documents(spec, None)) == [("p1", "alpha"), ("p2", "beta")]


@pytest.mark.parametrize("streaming", [True, False])
def test_hub_path_through_same_loader_on_local_dataset_dir(tmp_path: Path, monkeypatch, streaming: bool) -> None:
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf_cache")  # non-streaming writes Arrow
    repo = tmp_path / "fake_hub_repo"
    repo.mkdir()
    write_jsonl(repo / "train.jsonl", [{"id": "h1", "text": "hub one"}, {"id": "h2", "text": "hub two"}])
    cfg = {
        "name": "hubtoy",
        "source": "hub",
        "hub": {"path": str(repo), "name": None, "split": "train", "streaming": streaming},
        "id_field": "id",
    }
    spec = CorpusSpec.from_config(cfg, key="corpora.en_new")
    assert list(iter_documents(spec, None)) == [("h1", "hub one"), ("h2", "hub two")]


def test_source_fingerprint_is_file_sha256_and_tracks_changes(toy_dir: Path) -> None:
    spec = local_spec()
    path = toy_dir / "toy.jsonl"
    assert source_fingerprint(spec, toy_dir) == hashlib.sha256(path.read_bytes()).hexdigest()
    path.write_text(path.read_text() + json.dumps({"id": "new", "text": "more"}) + "\n")
    assert source_fingerprint(spec, toy_dir) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_hub_fingerprint_depends_on_revision() -> None:
    def hub(rev):
        return CorpusSpec.from_config({"name": "h", "source": "hub", "hub": {"path": "org/ds", "revision": rev}})

    assert source_fingerprint(hub("v1"), None) == source_fingerprint(hub("v1"), None)
    assert source_fingerprint(hub("v1"), None) != source_fingerprint(hub("v2"), None)


# --- bad input: one-line errors naming the file or key ---------------------------------------------------------


def _one_line_error(excinfo) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg
    return msg


def test_missing_file_names_path_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(DataError) as ei:
        list(iter_documents(local_spec(path="nope.jsonl"), tmp_path))
    msg = _one_line_error(ei)
    assert str(tmp_path / "nope.jsonl") in msg
    for fix in (
        "CPT_DATA_DIR=",
        "paths.data_dir=",
        "python -m cpt_experiments.data.fetch --data-dir",
        "corpora=fetched",
    ):
        assert fix in msg
    with pytest.raises(DataError, match="python -m cpt_experiments.data.fetch"):
        source_fingerprint(local_spec(path="nope.jsonl"), tmp_path)


def test_gzip_copy_stands_in_for_a_missing_jsonl(tmp_path: Path) -> None:
    import gzip

    rows = [{"id": f"z{i}", "text": f"compressed document {i}"} for i in range(5)]
    data = "".join(json.dumps(r) + "\n" for r in rows).encode()
    (tmp_path / "toy.jsonl.gz").write_bytes(gzip.compress(data))
    spec = local_spec()  # path: toy.jsonl
    assert list(iter_documents(spec, tmp_path)) == [(r["id"], r["text"]) for r in rows]
    assert source_fingerprint(spec, tmp_path) == hashlib.sha256((tmp_path / "toy.jsonl.gz").read_bytes()).hexdigest()
    write_jsonl(tmp_path / "toy.jsonl", rows[:2])  # the plain file wins when both exist
    assert len(list(iter_documents(spec, tmp_path))) == 2


def _hub_spec(path: str) -> CorpusSpec:
    return CorpusSpec.from_config({"name": "h", "source": "hub", "hub": {"path": path}}, key="corpora.en_old")


def test_unreachable_hub_is_one_request_and_one_line_with_the_fix(monkeypatch) -> None:
    import datasets
    import huggingface_hub

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    calls = []

    def no_network(self, repo_id, **kwargs):
        calls.append((repo_id, kwargs.get("timeout")))
        raise OSError("[Errno -2] Name or service not known")

    monkeypatch.setattr(huggingface_hub.HfApi, "dataset_info", no_network)
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: pytest.fail("datasets would retry five times"))
    with pytest.raises(DataError) as ei:
        list(iter_documents(_hub_spec("org/unreachable-corpus"), None))
    msg = _one_line_error(ei)
    assert msg.startswith("hub:org/unreachable-corpus: cannot reach the Hugging Face Hub")
    assert "python -m cpt_experiments.data.fetch" in msg and "corpora=fetched" in msg
    assert calls == [("org/unreachable-corpus", 10.0)]


def test_missing_hub_dataset_is_named(monkeypatch) -> None:
    import datasets
    import huggingface_hub
    import huggingface_hub.errors as hf_errors
    from huggingface_hub.errors import RepositoryNotFoundError

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)

    def not_found(self, repo_id, **kwargs):
        # The exception huggingface_hub raises for a 404, built the way its HTTP layer builds it.
        http = importlib.import_module(hf_errors.Response.__module__.split(".")[0])  # httpx or its successor
        response = http.Response(404, request=http.Request("GET", f"https://huggingface.co/api/datasets/{repo_id}"))
        raise RepositoryNotFoundError("404 Client Error: Repository Not Found", response=response)

    monkeypatch.setattr(huggingface_hub.HfApi, "dataset_info", not_found)
    with pytest.raises(DataError, match=r"^hub:org/typo@v2: no such dataset or revision"):
        list(
            iter_documents(
                CorpusSpec.from_config({"name": "h", "source": "hub", "hub": {"path": "org/typo", "revision": "v2"}}),
                None,
            )
        )


def test_hub_with_offline_mode_fails_fast_with_the_fix(monkeypatch) -> None:
    import time

    import datasets

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    start = time.perf_counter()
    with pytest.raises(DataError) as ei:
        list(iter_documents(_hub_spec("org/not-in-any-cache"), None))
    msg = _one_line_error(ei)
    assert time.perf_counter() - start < 15
    assert "HF_HUB_OFFLINE" in msg and "python -m cpt_experiments.data.fetch" in msg


@pytest.mark.parametrize("content", [b"", b'{"id": "a", "text": ""}\n{"id": "b", "text": "   "}\n'])
def test_empty_corpus(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "toy.jsonl").write_bytes(content)
    with pytest.raises(DataError) as ei:
        list(iter_documents(local_spec(), tmp_path))
    assert "toy.jsonl" in _one_line_error(ei)


@pytest.mark.parametrize(
    "fmt,name,content",
    [
        ("jsonl", "bad.jsonl", b'{"id": "a", "text": "ok"}\n{"id": "b", "text": "caf\xe9 \xff"}\n'),
        ("text", "bad.txt", b"fine line\nbroken \xff\xfe line\n"),
    ],
)
def test_invalid_utf8_names_file(tmp_path: Path, fmt: str, name: str, content: bytes) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(DataError) as ei:
        list(iter_documents(local_spec(path=name, format=fmt, id_field=None), tmp_path))
    msg = _one_line_error(ei)
    assert name in msg and "UTF-8" in msg


def test_missing_text_field(tmp_path: Path) -> None:
    (tmp_path / "toy.jsonl").write_text('{"id": "a", "text": "fine"}\n{"id": "b", "body": "text elsewhere"}\n')
    with pytest.raises(DataError) as ei:
        list(iter_documents(local_spec(), tmp_path))
    msg = _one_line_error(ei)
    assert "toy.jsonl" in msg and "record 2 has no text field 'text'" in msg


def test_missing_id_field(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "toy.jsonl", [{"text": "no id here"}])
    with pytest.raises(DataError, match="no id field 'id'"):
        list(iter_documents(local_spec(), tmp_path))


@pytest.mark.parametrize(
    "override,key",
    [
        ({"source": "ftp"}, "corpora.en_old.source"),
        ({"format": "csv"}, "corpora.en_old.format"),
        ({"max_tokens": -1}, "corpora.en_old.max_tokens"),
        ({"max_documents": -5}, "corpora.en_old.max_documents"),
        ({"max_validation_tokens": 1.5}, "corpora.en_old.max_validation_tokens"),
        ({"validation_fraction": 1.0}, "corpora.en_old.validation_fraction"),
        ({"validation_fraction": -0.1}, "corpora.en_old.validation_fraction"),
        ({"max_tokns": 5}, "corpora.en_old.max_tokns"),
        ({"path": None}, "corpora.en_old.path"),
    ],
)
def test_bad_config_names_key(override: dict, key: str) -> None:
    with pytest.raises(ConfigError) as ei:
        local_spec(**override)
    assert _one_line_error(ei).startswith(key + ":")


def test_hub_without_path_is_config_error() -> None:
    with pytest.raises(ConfigError, match=r"^corpora.x.hub"):
        CorpusSpec.from_config({"name": "h", "source": "hub"}, key="corpora.x")


# --- shipped configs ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted((CONF_DIR / "corpus").glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_corpus_configs_are_valid(path: Path) -> None:
    from omegaconf import OmegaConf

    spec = CorpusSpec.from_config(OmegaConf.load(path), key=f"corpus.{path.stem}")
    assert spec.validation_fraction > 0


@pytest.mark.parametrize(
    "choice,names",
    [
        ("local", ("wiki_en", "web_en", "bundestag_de")),
        ("hub", ("pile", "slimpajama", "fineweb2_de")),
        ("fetched", ("pile_fetched", "slimpajama_fetched", "fineweb2_de_fetched")),
    ],
)
def test_corpora_role_sets_compose(choice: str, names: tuple[str, str, str]) -> None:
    cfg = compose(f"+corpora={choice}", config_name=None)
    assert (cfg.corpora.en_old.name, cfg.corpora.en_new.name, cfg.corpora.de_new.name) == names
    for role in ("en_old", "en_new", "de_new"):
        CorpusSpec.from_config(cfg.corpora[role], key=f"corpora.{role}")


# --- the synthetic corpora of the test suite (tests/conftest.py) -------------------------------------------------


def test_synthetic_corpora_fit_the_local_configs_and_differ_by_language(data_dir: Path, tmp_path: Path) -> None:
    """The stand-in for the real corpora that most integration tests train on: the shipped ``corpora=local``
    configs read it, it splits ~5% of documents off for validation, is deterministic, and English differs from
    German the way the real corpora do (vocabulary, letters)."""
    import re
    from collections import Counter

    from conftest import write_synthetic_corpora

    cfg = compose("+corpora=local", config_name=None)
    words: dict[str, Counter] = {}
    for role in ("en_old", "en_new", "de_new"):
        spec = CorpusSpec.from_config(cfg.corpora[role], key=f"corpora.{role}")
        docs = list(iter_documents(spec, data_dir))
        assert len(docs) >= 250 and len({k for k, _ in docs}) == len(docs)
        assert all(300 <= len(text.split()) <= 800 for _, text in docs)
        n_val = sum(1 for _ in split_documents(spec, data_dir, "validation"))
        assert 3 <= n_val <= 35  # binomial(300, 0.05): mean 15
        words[role] = Counter(w for _, text in docs for w in re.findall(r"[^\W\d_]+", text.lower()))
    en, de = set(words["en_old"]), set(words["de_new"])
    assert len(en & de) < 0.05 * len(en | de)
    umlauts = {role: sum(n for w, n in c.items() if any(ch in w for ch in "äöüß")) for role, c in words.items()}
    assert umlauts["en_old"] == umlauts["en_new"] == 0 < umlauts["de_new"]
    again = write_synthetic_corpora(tmp_path / "again")
    for name in ("A_en_wikipedia.jsonl", "B_en_web_mix.jsonl", "C_de_bundestag.jsonl"):
        assert (again / name).read_bytes() == (data_dir / name).read_bytes(), name


# --- the typed corpora of a run ----------------------------------------------------------------------------------


def test_train_root_types_corpora_once_and_keeps_them_as_composed_for_the_config_hash() -> None:
    """``TrainRoot`` holds ``config.CorpusConfig`` / ``TokenizerConfig`` objects (defaults filled), while the plain
    dict the config hash and the snapshot hash is the mapping as composed: no schema default is added to it."""
    from cpt_experiments.config import CorpusConfig, TokenizerConfig, typed
    from cpt_experiments.config.schemas import TrainRoot

    cfg = compose("experiment=quickstart", "scale=smoke", "paths.data_dir=/d", "paths.output_dir=/o")
    root, plain = typed(TrainRoot, cfg)
    assert isinstance(root.tokenizer, TokenizerConfig) and root.tokenizer.name_or_path is None
    assert all(isinstance(c, CorpusConfig) and c.slice_index is None for c in root.corpora.values())
    assert "name_or_path" not in plain["tokenizer"] and "slice_index" not in plain["corpora"]["en_old"]
    spec = CorpusSpec.from_config(root.corpora["en_old"], key="corpora.en_old")
    assert spec == CorpusSpec.from_config(plain["corpora"]["en_old"], key="corpora.en_old")


def test_a_bad_corpus_of_a_run_names_its_role() -> None:
    from cpt_experiments.config import typed
    from cpt_experiments.config.schemas import TrainRoot

    cfg = compose("experiment=quickstart", "scale=smoke", "paths.data_dir=/d", "paths.output_dir=/o")
    cfg.corpora.en_new.max_tokens = "lots"
    with pytest.raises(ConfigError, match=r"^corpora\.en_new\.max_tokens: "):
        typed(TrainRoot, cfg)


def test_heldout_task_folder_is_the_same_for_typed_and_composed_corpora(data_dir: Path, tmp_path: Path) -> None:
    """``pipeline.evaluation.heldout_tasks`` gets typed corpora from ``train`` and a snapshot's mappings from
    ``evaluate``: the same corpora name the same folder (its key hashes the specs)."""
    from cpt_experiments.config import typed
    from cpt_experiments.config.schemas import TrainRoot
    from cpt_experiments.pipeline.evaluation import heldout_tasks

    cfg = compose("experiment=quickstart", "scale=smoke", f"paths.data_dir={data_dir}", f"paths.output_dir={tmp_path}")
    root, plain = typed(TrainRoot, cfg)
    typed_out, names = heldout_tasks(str(data_dir), root.corpora, ["en_old"], 3, str(tmp_path))
    plain_out, _ = heldout_tasks(str(data_dir), plain["corpora"], ["en_old"], 3, str(tmp_path))
    assert typed_out == plain_out and names == ["cpt_heldout_en_old"]
