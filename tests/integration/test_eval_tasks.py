"""The shipped offline task YAMLs and eval suites: every local task runs offline (tiny random model, a few
documents each) on hand-made benchmark files in the real files' schema, and, marked ``real_data``, on the
real benchmark files; suites name real tasks."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch
import yaml
from test_eval_harness import tiny_model_and_tokenizer

from cpt_experiments.errors import ConfigError, DataError
from cpt_experiments.eval.harness import (
    PLACEHOLDER,
    evaluate_model,
    local_task_files,
    render_offline_tasks,
)

REPO = Path(__file__).resolve().parents[2]
SUITE_DIR = REPO / "conf" / "eval_suite"
LIMIT = 4

EXPECTED_METRICS = {
    "cpt_lambada_openai": {"acc", "perplexity"},
    "cpt_hellaswag": {"acc", "acc_norm"},
    "cpt_arc_easy": {"acc", "acc_norm"},
    "cpt_piqa": {"acc", "acc_norm"},
    "cpt_wikitext": {"word_perplexity", "byte_perplexity", "bits_per_byte"},
    "cpt_arc_easy_de": {"acc", "acc_norm"},
    "cpt_mmlu_de": {"acc"},
}
# metadata.version of each task, kept equal to the stock task it copies.
EXPECTED_VERSIONS = {
    "cpt_lambada_openai": 1.0,
    "cpt_hellaswag": 1.0,
    "cpt_arc_easy": 1.0,
    "cpt_piqa": 1.0,
    "cpt_wikitext": 2.0,
    "cpt_arc_easy_de": 2.0,
    "cpt_mmlu_de": 0.0,
}


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():  # same as in test_eval_harness.py
    # The tiny model's matmuls are microseconds: a second thread only adds contention on a
    # shared 2-core machine (measured 25x slower forward passes under load).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_shipped_tasks_and_their_benchmark_files() -> None:
    files = local_task_files()
    assert set(files) == set(EXPECTED_METRICS)
    assert files["cpt_mmlu_de"] == ["mmlu_de_dev.jsonl", "mmlu_de_val.jsonl"]
    assert files["cpt_wikitext"] == ["wikitext2_raw_test.jsonl"]


@pytest.fixture(scope="module")
def offline_rows(benchmark_dir: Path, tmp_path_factory) -> list[dict]:
    model, tokenizer = tiny_model_and_tokenizer()
    # A cwd without the benchmark files: the rendered YAMLs must carry absolute paths.
    elsewhere = tmp_path_factory.mktemp("cwd")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(elsewhere)
        mp.setenv("CPT_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        # lm-eval bootstraps the perplexity stderr in a process pool unless this is set.
        mp.setenv("DISABLE_MULTIPROC", "1")
        return evaluate_model(
            model,
            tokenizer,
            sorted(EXPECTED_METRICS),
            benchmark_dir=benchmark_dir,
            limit=LIMIT,
            batch_size=8,
            offline=True,
            bootstrap_iters=100,
        )


@pytest.mark.real_data
def test_every_local_task_runs_on_the_real_benchmark_files(real_benchmark_dir: Path, tmp_path: Path) -> None:
    """The task YAMLs and their document hooks fit the real files (the hand-made ones only mimic them)."""
    model, tokenizer = tiny_model_and_tokenizer()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CPT_CACHE_DIR", str(tmp_path))
        mp.setenv("DISABLE_MULTIPROC", "1")
        rows = evaluate_model(
            model,
            tokenizer,
            sorted(EXPECTED_METRICS),
            benchmark_dir=real_benchmark_dir,
            limit=2,
            batch_size=8,
            offline=True,
            bootstrap_iters=10,
        )
    for task, metrics in EXPECTED_METRICS.items():
        got = {r["metric"]: r["value"] for r in rows if r["task"] == task}
        assert set(got) == metrics, task
        assert all(math.isfinite(v) and v >= 0.0 for v in got.values()), (task, got)


@pytest.mark.parametrize("task", sorted(EXPECTED_METRICS))
def test_local_task_runs_offline(offline_rows: list[dict], task: str) -> None:
    rows = [r for r in offline_rows if r["task"] == task]
    assert {r["metric"] for r in rows} == EXPECTED_METRICS[task]
    for r in rows:
        assert r["task_version"] == EXPECTED_VERSIONS[task]
        assert r["num_fewshot"] == 0 and r["limit"] == LIMIT
        if r["metric"].startswith("acc"):
            assert 0.0 <= r["value"] <= 1.0
            # acc is a mean over LIMIT documents: a multiple of 1/LIMIT.
            assert r["value"] * LIMIT == pytest.approx(round(r["value"] * LIMIT))
        else:
            assert r["value"] > 0.0 and math.isfinite(r["value"])
        if task == "cpt_wikitext":
            assert math.isnan(r["stderr"])  # lm-eval has no stderr for rolling perplexities
        else:
            assert r["stderr"] >= 0.0 and math.isfinite(r["stderr"])


def test_perplexities_of_a_random_model_are_near_uniform(offline_rows: list[dict]) -> None:
    # A random model predicts roughly uniformly over its 400 tokens: ln(400) nats/token, so a
    # byte costs log2(400) / (bytes per token) bits; byte-level BPE gives ~1-4 bytes/token.
    bpb = next(r["value"] for r in offline_rows if r["task"] == "cpt_wikitext" and r["metric"] == "bits_per_byte")
    assert math.log2(400) / 4 < bpb < math.log2(400) * 1.2
    ppl = {r["metric"]: r["value"] for r in offline_rows if r["task"] == "cpt_wikitext"}
    assert ppl["byte_perplexity"] == pytest.approx(2 ** ppl["bits_per_byte"], rel=1e-9)


def test_rendered_tasks_hold_absolute_paths_and_are_reused(benchmark_dir: Path, tmp_path: Path) -> None:
    first = render_offline_tasks(benchmark_dir, cache_root=tmp_path)
    assert render_offline_tasks(benchmark_dir, cache_root=tmp_path) == first
    text = (first / "cpt_piqa.yaml").read_text()
    assert PLACEHOLDER not in text
    assert f'validation: "{benchmark_dir.resolve()}/piqa_validation.jsonl"' in text
    assert (first / "utils.py").is_file()  # the !function helpers sit next to the YAMLs
    other = tmp_path / "bench2"
    other.mkdir()
    assert render_offline_tasks(other, cache_root=tmp_path) != first


def test_render_rejects_missing_benchmark_dir(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^paths\.benchmark_dir: not a directory"):
        render_offline_tasks(tmp_path / "missing", cache_root=tmp_path)


def test_missing_benchmark_file_names_the_file(tmp_path: Path) -> None:
    model, tokenizer = tiny_model_and_tokenizer()
    with pytest.raises(DataError, match=r"piqa_validation\.jsonl: benchmark file for task 'cpt_piqa'"):
        evaluate_model(model, tokenizer, ["cpt_piqa"], benchmark_dir=tmp_path, offline=True)


def _suite(name: str) -> dict:
    return yaml.safe_load((SUITE_DIR / f"{name}.yaml").read_text())


def test_every_suite_has_the_keys() -> None:
    names = sorted(p.stem for p in SUITE_DIR.glob("*.yaml"))
    assert {"paper_en", "paper_de", "offline_en", "offline_de", "offline", "heldout"} <= set(names)
    for name in names:
        suite = _suite(name)
        assert {"tasks", "num_fewshot", "limit", "batch_size", "offline"} <= set(suite), name
        assert suite["tasks"] and isinstance(suite["offline"], bool), name


def test_offline_suites_list_exactly_the_local_tasks() -> None:
    local = set(local_task_files())
    en, de, both = (set(_suite(n)["tasks"]) for n in ("offline_en", "offline_de", "offline"))
    assert both == local and en | de == local and not en & de
    assert all(_suite(n)["offline"] for n in ("offline_en", "offline_de", "offline", "heldout"))
    assert all(t.startswith("cpt_heldout_") for t in _suite("heldout")["tasks"])


def test_online_suites_name_stock_lm_eval_tasks() -> None:
    import lm_eval

    # One pass over the stock YAMLs for "task:"/"group:" lines is much cheaper than
    # TaskManager's full index (~9 s here).
    stock_dir = Path(lm_eval.__file__).parent / "tasks"
    declared = re.compile(r"^(?:task|group): *([\w.-]+) *$", re.MULTILINE)
    stock: set[str] = set()
    for path in stock_dir.rglob("*.yaml"):
        stock.update(declared.findall(path.read_text(errors="ignore")))
    wanted = {t for n in ("paper_en", "paper_en_5shot", "paper_de") for t in _suite(n)["tasks"]}
    assert wanted - stock == set()
    assert {"hellaswag_de", "arc_de", "m_mmlu_de", "mmlu"} <= wanted


def test_few_shot_uses_each_tasks_pool(benchmark_dir: Path) -> None:
    model, tokenizer = tiny_model_and_tokenizer()
    tasks = ["cpt_mmlu_de", "cpt_arc_easy_de", "cpt_arc_easy", "cpt_piqa"]
    rows = evaluate_model(model, tokenizer, tasks, benchmark_dir=benchmark_dir, num_fewshot=2, limit=2, offline=True)
    assert {r["task"] for r in rows} == set(tasks)
    assert {r["num_fewshot"] for r in rows} == {2}


@pytest.mark.slow
def test_stock_and_local_tasks_share_one_manager(benchmark_dir: Path) -> None:
    from cpt_experiments.eval.harness import get_task_manager

    rendered = render_offline_tasks(benchmark_dir)
    manager = get_task_manager(["hellaswag", "arc_de", "cpt_piqa"], [rendered], offline=False)
    assert {"hellaswag", "arc_de", "cpt_piqa"} <= set(manager.all_tasks)
    with pytest.raises(ConfigError, match=r"unknown lm-eval task 'hellaswag_xx' \(not among the local or stock"):
        get_task_manager(["hellaswag_xx"], [rendered], offline=False)


def test_absent_implied_benchmark_dir_is_fine_without_local_tasks(tmp_path: Path, monkeypatch) -> None:
    from cpt_experiments.eval.heldout import heldout_task_dir

    model, tokenizer = tiny_model_and_tokenizer()
    monkeypatch.delenv("CPT_BENCHMARK_DIR", raising=False)
    monkeypatch.setenv("CPT_DATA_DIR", str(tmp_path / "no_data_here"))
    names = heldout_task_dir({"x": ["Ein kurzer Text."]}, tmp_path / "tasks")
    rows = evaluate_model(model, tokenizer, names, extra_include_dirs=[tmp_path / "tasks"], offline=True)
    assert len(rows) == 3
    with pytest.raises(DataError, match=r"no_data_here/benchmarks/piqa_validation\.jsonl"):
        evaluate_model(model, tokenizer, ["cpt_piqa"], offline=True)
