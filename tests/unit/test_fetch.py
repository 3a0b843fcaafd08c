"""``python -m cpt_experiments.data.fetch``: every file goes through the corpus loader (``datasets.load_dataset``)
on a local mirror standing in for the Hub and GitHub; the local schema, manifest, caps, idempotence, atomic
files, and a fast one-line failure without network."""

from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path

import pytest
import yaml
from conftest import compose

from cpt_experiments.data import download as D
from cpt_experiments.data import fetch as F
from cpt_experiments.data import fetch_benchmarks as B
from cpt_experiments.data import fetch_corpora as C
from cpt_experiments.data.corpus import CorpusSpec
from cpt_experiments.data.documents import iter_documents
from cpt_experiments.data.splits import split_documents
from cpt_experiments.errors import DataError

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "benchmarks"
TASKS = REPO / "cpt_experiments" / "eval" / "tasks"


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def hub_configs(repo: Path, configs: dict[str, dict[str, list[dict]]]) -> None:
    """A local folder laid out like a Hub dataset repo with named configs (README ``configs:`` metadata)."""
    meta = []
    for config, splits in configs.items():
        files = []
        for split, rows in splits.items():
            write_jsonl(repo / config / f"{split}.jsonl", rows)
            files.append({"split": split, "path": f"{config}/{split}.jsonl"})
        meta.append({"config_name": config, "data_files": files})
    (repo / "README.md").write_text("---\n" + yaml.safe_dump({"configs": meta}) + "---\n", encoding="utf-8")


def words(n: int, tag: str) -> str:
    return " ".join(f"{tag}{k}" for k in range(n))


@pytest.fixture
def mirror(tmp_path: Path) -> Path:
    """Stand-ins for the Hub datasets and GitHub files, in the upstream schemas (not ours)."""
    m = tmp_path / "mirror"
    pile = [{"text": f"pile {i} " + words(48, "w"), "meta": {"pile_set_name": "Wiki"}} for i in range(40)]
    pile.insert(3, {"text": "   ", "meta": {"pile_set_name": "Empty"}})  # empty documents are skipped
    write_jsonl(m / "monology/pile-uncopyrighted/train.jsonl", pile)
    write_jsonl(m / "DKYoon/SlimPajama-6B/train.jsonl", [{"text": f"slim {i} " + words(98, "s")} for i in range(30)])
    de = [{"id": f"<urn:uuid:{i}>", "text": f"deutsch {i} " + words(18, "d"), "url": "https://x"} for i in range(60)]
    hub_configs(m / "HuggingFaceFW/fineweb-2", {"deu_Latn": {"train": de}})
    hub_configs(m / "EleutherAI/lambada_openai", {"default": {"test": [{"text": "a passage ending in word"}]}})
    page = " = Some Article = \n Text of the article . \n"
    hub_configs(m / "EleutherAI/wikitext_document_level", {"wikitext-2-raw-v1": {"test": [{"page": page}]}})
    hs = {"ind": 4, "activity_label": "Baking", "ctx_a": "A man bakes.", "ctx_b": "he", "ctx": "A man bakes. he"}
    hs |= {"endings": ["a", "b", "c", "d"], "source_id": "x", "split": "val", "split_type": "indomain", "label": "2"}
    write_jsonl(m / "Rowan/hellaswag/validation.jsonl", [hs])
    write_jsonl(m / "baber/piqa/validation.jsonl", [{"goal": "g", "sol1": "s1", "sol2": "s2", "label": 1}])
    arc = {"id": "Mercury_1", "question": "q?", "choices": {"text": ["x", "y"], "label": ["A", "B"]}, "answerKey": "B"}
    hub_configs(m / "allenai/ai2_arc", {"ARC-Easy": {"test": [arc]}})
    blimp = {"sentence_good": "Who left?", "sentence_bad": "Who left it?", "field": "syntax"}
    blimp |= {"linguistics_term": "island_effects", "UID": "adjunct_island", "simple_LM_method": True}
    blimp |= {"one_prefix_method": False, "two_prefix_method": False, "lexically_identical": True, "pair_id": 7}
    hub_configs(m / "nyu-mll/blimp", {"adjunct_island": {"train": [blimp]}, "causative": {"train": [blimp]}})
    okapi = [
        {"answer": "A", "id": "ARC-Easy/test/1", "instruction": "Frage?", "option_a": "a", "option_b": "b"},
        {"answer": "E", "id": "ARC-Easy/test/2", "instruction": "F?", "option_a": "a", "option_e": "e"},
    ]
    for item in B.benchmark_items():
        u = item.source.url
        if u and "m_ai2_arc" in u or u and "m_mmlu" in u:
            path = m / "raw.githubusercontent.com" / u.split("://", 1)[1].split("/", 1)[1]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(okapi, ensure_ascii=False, indent=2), encoding="utf-8")  # a JSON array
        elif u:
            path = m / "raw.githubusercontent.com" / u.split("://", 1)[1].split("/", 1)[1]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(
                'sen_str,swapped_sen_str,leaf_rule\n"Er geht , sagt sie .","Er , sagt geht sie .",[0] -> [1]\n'
            )
    return m


BENCHMARK_FILES = [
    "benchmarks/lambada_openai_test.jsonl",
    "benchmarks/wikitext2_raw_test.jsonl",
    "benchmarks/hellaswag_validation.jsonl",
    "benchmarks/piqa_validation.jsonl",
    "benchmarks/arc_easy_test.jsonl",
    "benchmarks/arc_easy_de_test.jsonl",
    "benchmarks/mmlu_de_val.jsonl",
    "benchmarks/blimp/adjunct_island.jsonl",
    "benchmarks/multiblimp_de/word_order_nsubj.jsonl",
]


def all_items() -> list[D.Item]:
    return C.corpus_items() + B.benchmark_items()


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_fetch_from_mirror_writes_the_local_schema_and_a_manifest(tmp_path: Path, mirror: Path) -> None:
    data = tmp_path / "data"
    items = F.select(all_items(), ["corpora", *BENCHMARK_FILES])
    status = D.fetch(data, items, D.Caps(max_words=None), mirror=mirror, progress=False)
    assert set(status.values()) == {"fetched"} and len(status) == 3 + len(BENCHMARK_FILES)

    # Benchmarks: the fields (and types) of the files the offline tasks read, i.e. of the test fixtures.
    for name in BENCHMARK_FILES:
        fixture = read_rows(FIXTURES / name.removeprefix("benchmarks/"))[0]
        for row in read_rows(data / name):
            assert list(row) == list(fixture), name
            both = [k for k in row if row[k] is not None and fixture[k] is not None]
            assert [type(row[k]) for k in both] == [type(fixture[k]) for k in both], name
    assert read_rows(data / "benchmarks/blimp/adjunct_island.jsonl")[0]["pairID"] == "7"
    assert read_rows(data / "benchmarks/wikitext2_raw_test.jsonl")[0]["title"] == "Some Article"
    assert [r["option_e"] for r in read_rows(data / "benchmarks/arc_easy_de_test.jsonl")] == [None, "e"]
    pair = read_rows(data / "benchmarks/multiblimp_de/word_order_nsubj.jsonl")[0]
    assert (pair["sentence_bad"], pair["UID"], pair["pairID"]) == ("Er , sagt geht sie .", "word_order_nsubj", "0")

    # Corpora: `text` (+ `id` where the corpus has one), and corpora=fetched reads them with the usual split.
    pile = read_rows(data / "hub/pile.jsonl")
    assert len(pile) == 40 and pile[0] == {"text": "pile 0 " + words(48, "w")}
    assert read_rows(data / "hub/fineweb2_de.jsonl")[0]["id"] == "<urn:uuid:0>"
    from omegaconf import OmegaConf

    for name in ("pile_fetched", "slimpajama_fetched", "fineweb2_de_fetched"):
        spec = CorpusSpec.from_config(OmegaConf.load(REPO / "conf/corpus" / f"{name}.yaml"))
        assert len(list(iter_documents(spec, data))) in (30, 40, 60)
        assert next(split_documents(spec, data, "train"))

    manifest = json.loads((data / D.MANIFEST).read_text())
    for item in items:
        entry = manifest["files"][item.file]
        raw = (data / item.file).read_bytes()
        assert entry["bytes"] == len(raw) and entry["sha256"] == hashlib.sha256(raw).hexdigest()
        assert entry["rows"] == len(raw.splitlines())
        assert entry["source"] == item.source.label() and str(mirror) in entry["read_from"]
    assert manifest["files"]["hub/pile.jsonl"]["source"] == "hub:monology/pile-uncopyrighted [train]"
    assert manifest["files"]["hub/pile.jsonl"]["words"] == 40 * 50
    assert not list(data.rglob(".*tmp-*"))


def test_corpus_caps_stop_at_words_or_documents(tmp_path: Path, mirror: Path) -> None:
    items = F.select(all_items(), ["hub/*"])
    D.fetch(tmp_path / "w", items, D.Caps(max_words=120), mirror=mirror, progress=False)
    # The cap is reached inside a document: it is kept whole, so the file ends at the first document at or past it.
    assert len(read_rows(tmp_path / "w/hub/pile.jsonl")) == 3  # 50 words each
    assert len(read_rows(tmp_path / "w/hub/slimpajama.jsonl")) == 2  # 100 words each
    D.fetch(tmp_path / "d", items, D.Caps(max_documents=5, max_words=None), mirror=mirror, progress=False)
    assert [len(read_rows(tmp_path / "d" / it.file)) for it in items] == [5, 5, 5]


def test_rerun_skips_matching_files_and_refetches_what_changed(tmp_path: Path, mirror: Path) -> None:
    data = tmp_path / "data"
    items = F.select(all_items(), ["hub/*", "benchmarks/piqa_validation.jsonl"])
    caps = D.Caps(max_words=500)
    D.fetch(data, items, caps, mirror=mirror, progress=False)
    stamps = {it.file: (data / it.file).stat().st_mtime_ns for it in items}

    assert set(D.fetch(data, items, caps, mirror=mirror, progress=False).values()) == {"up to date"}
    assert {it.file: (data / it.file).stat().st_mtime_ns for it in items} == stamps

    # Other caps: the corpora again, not the benchmark. A file whose bytes differ from its entry, or one without an
    # entry (killed between the rename and the manifest write), is fetched again.
    status = D.fetch(data, items, D.Caps(max_words=1000), mirror=mirror, progress=False)
    assert status["hub/pile.jsonl"] == "fetched" and status["benchmarks/piqa_validation.jsonl"] == "up to date"
    with open(data / "hub/pile.jsonl", "ab") as fh:
        fh.write(b"\n")
    manifest = json.loads((data / D.MANIFEST).read_text())
    del manifest["files"]["hub/slimpajama.jsonl"]
    (data / D.MANIFEST).write_text(json.dumps(manifest))
    status = D.fetch(data, items, D.Caps(max_words=1000), mirror=mirror, progress=False)
    assert status == {
        "hub/pile.jsonl": "fetched",
        "hub/slimpajama.jsonl": "fetched",
        "hub/fineweb2_de.jsonl": "up to date",
        "benchmarks/piqa_validation.jsonl": "up to date",
    }
    assert D.fetch(data, items, D.Caps(max_words=1000), mirror=mirror, progress=False, force=True) == dict.fromkeys(
        status, "fetched"
    )


def test_interrupted_fetch_leaves_no_file_that_looks_complete(tmp_path: Path, mirror: Path) -> None:
    data = tmp_path / "data"
    (pile,) = F.select(C.corpus_items(), ["hub/pile.jsonl"])

    def dies_midway(i, record):
        if i == 10:
            raise KeyboardInterrupt  # as Ctrl-C would, mid-stream
        return pile.row(i, record)

    broken = D.Item(pile.file, pile.source, dies_midway, corpus=True)
    with pytest.raises(KeyboardInterrupt):
        D.fetch(data, [broken], mirror=mirror, progress=False)
    assert not (data / pile.file).exists() and not (data / D.MANIFEST).exists()
    assert not list(data.rglob("*.tmp-*"))
    # kill -9 cannot clean up: its temporary sibling is ignored and the next run writes the real file.
    (data / "hub" / ".pile.jsonl.tmp-dead").write_text('{"text": "half"}\n')
    assert D.fetch(data, [pile], mirror=mirror, progress=False) == {pile.file: "fetched"}
    assert len(read_rows(data / pile.file)) == 40


def test_offline_fails_fast_with_one_line_before_any_download(tmp_path, monkeypatch, capsys) -> None:
    import datasets

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: pytest.fail("load_dataset must not be reached"))
    start = time.perf_counter()
    assert F.main(["--data-dir", str(tmp_path), "--only", "corpora", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert time.perf_counter() - start < 10
    assert "\n" not in err and err.startswith("error: hub:monology/pile-uncopyrighted")
    assert "HF_HUB_OFFLINE" in err and "--mirror" in err
    assert not list(tmp_path.iterdir())


def test_unreachable_sources_fail_fast_without_retries(monkeypatch) -> None:
    import datasets
    import huggingface_hub

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    calls = []

    def no_network(*args, **kwargs):
        calls.append(args)
        raise OSError("[Errno -2] Name or service not known")

    monkeypatch.setattr(huggingface_hub.HfApi, "dataset_info", no_network)
    monkeypatch.setattr(D.urllib.request, "urlopen", no_network)
    with pytest.raises(DataError, match=r"^hub:org/unreachable-\w+: cannot reach the Hugging Face Hub .*fetch"):
        D.check_reachable(D.Source(f"org/unreachable-{time.time_ns()}"))
    with pytest.raises(DataError, match=r"cannot reach raw.githubusercontent.com .*--mirror"):
        D.check_reachable(D.Source("json", url=f"{B.OKAPI_MMLU}/de_val.json"))
    assert len(calls) == 2  # one request each, no retries
    assert D.check_reachable(D.Source("json", url="/local/file.json")) is None


def test_every_file_an_offline_task_reads_is_fetched() -> None:
    """A task added to cpt_experiments/eval/tasks must come with its source here."""
    files = {it.file for it in B.benchmark_items()}
    for task in sorted(TASKS.glob("*.yaml")):
        text = task.read_text(encoding="utf-8")
        for name in re.findall(r"@CPT_BENCHMARK_DIR@/([^\"'\s]+)", text):
            assert f"benchmarks/{name}" in files, f"{task.name} reads {name}"
        for pattern in re.findall(r"^files:\s*(\S+)", text, flags=re.M):
            local = sorted(p.relative_to(FIXTURES).as_posix() for p in FIXTURES.glob(pattern))
            assert local and all(f"benchmarks/{name}" in files for name in local), f"{task.name}: {pattern}"
    assert len([f for f in files if f.startswith("benchmarks/blimp/")]) == 67


def test_fetched_corpus_configs_match_what_fetch_writes() -> None:
    fetched = compose("+corpora=fetched", config_name=None).corpora
    hub = compose("+corpora=hub", config_name=None).corpora
    by_file = {it.file: it for it in C.corpus_items()}
    for role in ("en_old", "en_new", "de_new"):
        local = CorpusSpec.from_config(fetched[role], key=f"corpora.{role}")
        remote = CorpusSpec.from_config(hub[role], key=f"corpora.{role}")
        assert local.path == C.fetched_file(remote) and local.path in by_file
        assert (local.lang, local.text_field, local.id_field) == (
            remote.lang,
            "text",
            "id" if remote.id_field else None,
        )


def test_bad_invocations_are_one_line_errors(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.delenv("CPT_DATA_DIR", raising=False)
    assert F.main(["--only", "corpora"]) == 2
    assert "pass --data-dir DIR" in capsys.readouterr().err
    assert F.main(["--data-dir", str(tmp_path), "--only", "nothing/*"]) == 2
    assert "matches no file" in capsys.readouterr().err
    assert F.main(["--corpus", "wiki_en", "--list"]) == 2
    assert "not a hub corpus" in capsys.readouterr().err
    (tmp_path / D.MANIFEST).write_text("[1, 2]")
    assert F.main(["--data-dir", str(tmp_path), "--only", "corpora"]) == 2
    assert "not a fetch manifest" in capsys.readouterr().err


def test_cli_fetches_then_reports_up_to_date(tmp_path, mirror, capsys) -> None:
    argv = ["--data-dir", str(tmp_path / "d"), "--mirror", str(mirror), "--only", "benchmarks/piqa*", "--no-progress"]
    assert F.main(argv) == 0
    assert "1 files fetched, 0 up to date" in capsys.readouterr().out
    assert F.main(argv) == 0
    assert "0 files fetched, 1 up to date" in capsys.readouterr().out
    assert F.main([*argv[2:], "--data-dir", str(F.SAMPLE_DIR)]) == 2  # never into the package's own sample
    assert "embedded sample" in capsys.readouterr().err


@pytest.mark.real_data
def test_real_benchmark_files_round_trip_byte_for_byte(tmp_path: Path, real_benchmark_dir: Path) -> None:
    """The shared benchmark files, served as the upstream sources, come back identical: the conversions write
    exactly the local schema (field order, types, JSON layout)."""
    mirror, names = tmp_path / "mirror", []
    for item in B.benchmark_items():
        name = item.file.removeprefix("benchmarks/")
        if name.startswith("multiblimp_de/"):
            continue  # upstream is a CSV with other columns; covered by the mirror test above
        if name.startswith("blimp/") and name not in ("blimp/adjunct_island.jsonl", "blimp/passive_1.jsonl"):
            continue  # same conversion for all 67 paradigms; two keep the test fast
        local = real_benchmark_dir / name
        src = item.source.mirrored(mirror)
        if src.url:
            dest = Path(src.url)
        elif src.name:  # a config of a Hub repo: declared in the repo's README below
            dest = Path(src.path) / src.name / f"{src.split}.jsonl"
        else:
            dest = Path(src.path) / f"{src.split}.jsonl"
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(local.read_bytes())
        names.append((item, local))
    for repo in {Path(it.source.mirrored(mirror).path) for it, _ in names if it.source.name}:
        configs = [
            {
                "config_name": d.name,
                "data_files": [{"split": f.stem, "path": f"{d.name}/{f.name}"} for f in d.glob("*")],
            }
            for d in sorted(repo.iterdir())
            if d.is_dir()
        ]
        (repo / "README.md").write_text("---\n" + yaml.safe_dump({"configs": configs}) + "---\n", encoding="utf-8")
    data = tmp_path / "data"
    D.fetch(data, [it for it, _ in names], mirror=mirror, progress=False)
    for item, local in names:
        assert (data / item.file).read_bytes() == local.read_bytes(), item.file
