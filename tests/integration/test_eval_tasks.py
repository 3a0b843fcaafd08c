"""The shipped offline task YAMLs and eval suites: every local task (and task family) runs offline (tiny
random model, a few documents each) on hand-made benchmark files in the real files' schema, and, marked
``real_data``, on the real benchmark files; suites name real tasks. The list of tasks, their metrics and
versions are read from the task folder, so a new task YAML is tested without editing this file."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import yaml
from test_eval_harness import tiny_model_and_tokenizer

from cpt_experiments.errors import ConfigError, DataError
from cpt_experiments.eval.harness import evaluate_model
from cpt_experiments.eval.task_families import load_yaml, member_files, parse_family
from cpt_experiments.eval.task_resolution import PLACEHOLDER, TASK_TEMPLATE_DIR, local_task_files, render_offline_tasks

REPO = Path(__file__).resolve().parents[2]
SUITE_DIR = REPO / "conf" / "eval_suite"
LIMIT = 4


def _declared() -> dict[str, dict]:
    """Every shipped task or task family, read from the task folder: metrics, metadata.version, header."""
    out = {}
    for path in sorted(TASK_TEMPLATE_DIR.glob("*.yaml")):
        text = path.read_text()
        doc = load_yaml(text)
        header = " ".join(line for line in text.splitlines() if line.startswith("#"))
        spec = doc["task"] if "family" in doc else doc
        entry = {
            "metrics": {m["metric"] for m in spec["metric_list"]},
            "version": float(spec["metadata"]["version"]),
            "header": header,
        }
        if "family" in doc:
            entry.update(group_version=float(doc["group"]["metadata"]["version"]), files=doc["files"])
        out[doc["family"] if "family" in doc else doc["task"]] = entry
    return out


DECLARED = _declared()
FAMILIES = sorted(t for t, d in DECLARED.items() if "files" in d)
TASKS = sorted(t for t in DECLARED if t not in FAMILIES)


def test_shipped_tasks_and_their_benchmark_files(benchmark_dir: Path) -> None:
    files = local_task_files()
    assert set(files) == set(DECLARED) and FAMILIES and TASKS
    assert all(t.startswith("cpt_") for t in files)
    assert files["cpt_mmlu_de"] == ["mmlu_de_dev.jsonl", "mmlu_de_val.jsonl"]
    assert files["cpt_wikitext"] == ["wikitext2_raw_test.jsonl"]
    assert files["cpt_blimp"] == ["blimp/*.jsonl"]
    # The hand-made benchmark folder has every file a task reads (a family: at least two members).
    for task in TASKS:
        assert all((benchmark_dir / f).is_file() for f in files[task]), task
    for family in FAMILIES:
        assert len(list(benchmark_dir.glob(DECLARED[family]["files"]))) >= 2, family


@pytest.mark.parametrize("task", sorted(DECLARED))
def test_versions_match_the_stock_task_named_in_the_header(task: str) -> None:
    """A copy of a stock task keeps its version: the header says "(v1.0)" (a family: "tasks v1.0, group v2.0")."""
    d = DECLARED[task]
    if "files" in d:
        match = re.search(r"tasks v(\d+\.\d+), group v(\d+\.\d+)", d["header"])
        if match:
            assert (d["version"], d["group_version"]) == (float(match[1]), float(match[2]))
        return
    match = re.search(r"`[\w.]+`[^()]*\(v(\d+\.\d+)", d["header"])
    assert match, f"{task}: the header names no stock task and version"
    assert d["version"] == float(match[1])


pytestmark = pytest.mark.usefixtures("one_torch_thread")


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
            sorted(DECLARED),
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
            sorted(DECLARED),
            benchmark_dir=real_benchmark_dir,
            limit=2,
            batch_size=512,
            batch_tokens=4096,
            offline=True,
            bootstrap_iters=10,
        )
    for task, declared in DECLARED.items():
        got = {r["metric"]: r["value"] for r in rows if r["task"] == task}
        assert set(got) == declared["metrics"], task
        assert all(math.isfinite(v) and v >= 0.0 for v in got.values()), (task, got)
    blimp = parse_family((TASK_TEMPLATE_DIR / "cpt_blimp.yaml").read_text(), "cpt_blimp.yaml")
    assert len(member_files(blimp, real_benchmark_dir)) == 67
    fields = {r["task"] for r in rows if r["task"].startswith("cpt_blimp_field_")}
    assert fields == {f"cpt_blimp_field_{f}" for f in ("morphology", "semantics", "syntax", "syntax_semantics")}


@pytest.mark.parametrize("task", TASKS)
def test_local_task_runs_offline(offline_rows: list[dict], task: str) -> None:
    rows = [r for r in offline_rows if r["task"] == task]
    assert {r["metric"] for r in rows} == DECLARED[task]["metrics"]
    for r in rows:
        assert r["task_version"] == DECLARED[task]["version"]
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


@pytest.mark.parametrize("family", FAMILIES)
def test_task_family_runs_offline(offline_rows: list[dict], benchmark_dir: Path, family: str) -> None:
    """One task per benchmark file present, with the member version, plus the family's group row."""
    d = DECLARED[family]
    group = [r for r in offline_rows if r["task"] == family]
    assert {r["metric"] for r in group} == d["metrics"]
    assert all(r["task_version"] == d["group_version"] for r in group)
    related = [r for r in offline_rows if r["task"].startswith(f"{family}_")]
    members = {r["task"] for r in related if r["task_version"] == d["version"]}
    assert members == {f"{family}_{p.stem}" for p in benchmark_dir.glob(d["files"])}
    for r in related:
        assert 0.0 <= r["value"] <= 1.0 and math.isfinite(r["stderr"])
        assert r["limit"] == LIMIT and r["num_fewshot"] == 0


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
    with pytest.raises(
        DataError,
        match=r"piqa_validation\.jsonl: benchmark file for task 'cpt_piqa' not found; fetch them with `cpt-fetch ",
    ):
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
    from cpt_experiments.eval.task_resolution import get_task_manager

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


def test_cpu_suite_is_heldout_plus_minimal_pairs() -> None:
    suite = _suite("cpu")
    heldout = [t for t in suite["tasks"] if t.startswith("cpt_heldout_")]
    assert suite["heldout"] and heldout == _suite("heldout")["tasks"]
    assert set(suite["tasks"]) - set(heldout) == {"cpt_blimp", "cpt_multiblimp_de"}
    assert suite["batch_tokens"] and suite["heldout_limit"] and suite["limit"]
    assert set(suite.get("task_limits", {})) <= set(suite["tasks"]) - set(heldout)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"limit": 0}, r"^eval_suite\.limit: must be in \(0, 1e9\] or null, got 0"),
        ({"task_limits": {"cpt_nope": 5}}, r"^eval_suite\.task_limits\.cpt_nope: is not among eval_suite\.tasks"),
        (
            {"task_limits": {"cpt_heldout_en_old": 5}},
            r"^eval_suite\.task_limits\.cpt_heldout_en_old: use heldout_limit",
        ),
        ({"batch_tokens": 0}, r"^eval_suite\.batch_tokens: must be in \[1, 2\*\*30\]"),
        ({"heldout_limit": 0}, r"^eval_suite\.heldout_limit: must be in \[1, 1e9\]"),
    ],
)
def test_suite_settings_are_checked(overrides: dict, message: str) -> None:
    from cpt_experiments.config import EvalSuiteConfig, typed

    with pytest.raises(ConfigError, match=message):
        typed(EvalSuiteConfig, {**_suite("cpu"), **overrides}, key="eval_suite")
