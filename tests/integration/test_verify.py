"""``python -m cpt_experiments.verify``: passes on a results dir as a run records it, fails on each planted mismatch.

The fixture plans the quickstart (tokenizer trained, corpora tokenized, as a run does before training)
and records its snapshot and runs rows with the real writers; verify then rebuilds the hashes with a
fresh tokenizer cache and without tokenizing, so the test also proves both routes give the same hash.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import compose

from cpt_experiments import verify
from cpt_experiments.pipeline import records
from cpt_experiments.pipeline.audit import Auditor, audit, check_figures
from cpt_experiments.pipeline.context import typed_config
from cpt_experiments.pipeline.planning import plan_experiment
from cpt_experiments.results import schema, store

FIXTURE_RESULTS = Path(__file__).resolve().parents[1] / "fixtures" / "results"


@pytest.fixture(scope="module")
def recorded(tmp_path_factory, data_dir):
    """(results dir, git repo whose HEAD the rows name): the quickstart's snapshot and rows, nothing trained."""
    tmp = tmp_path_factory.mktemp("verify")
    repo = tmp / "repo"
    repo.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "x"], cwd=repo, check=True)
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    root, plain = typed_config(
        compose("experiment=quickstart", "scale=smoke", f"paths.data_dir={data_dir}", f"paths.output_dir={tmp}")
    )
    xp = plan_experiment(root)
    cfg_hash = records.config_hash(plain)
    rid = schema.run_id("quickstart", root.seed, cfg_hash)
    results = tmp / "results"
    info = records.RunInfo(results, rid, cfg_hash, sha, "quickstart", None, xp.ctx)
    records.write_config_snapshot(info, plain, xp.hashes)
    rows = [
        {"run_id": rid, "experiment": "quickstart", "stage": name, "status": "done", "stage_hash": xp.hashes[name],
         "parent_stage": s.parent, "parent_hash": xp.hashes.get(s.parent or ""),
         "config_hash": cfg_hash, "git_commit": sha, "tokenizer_hash": xp.ctx.tokenizer_hash[:16],
         "corpora": ",".join(f"{r}={xp.ctx.corpus_id(r)}" for r in sorted({*s.data, *s.replay.sources}))}
        for name, s in xp.stages.items()
    ]  # fmt: skip
    store.append(results, "runs", rows)
    return results, repo


@pytest.fixture(scope="module")
def auditor(recorded, data_dir, tmp_path_factory) -> Auditor:
    return Auditor(data_dir, tmp_path_factory.mktemp("verify_cache"), repo=recorded[1])


def _copy(results: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(results, tmp_path / "results"))


def _edit_runs(results: Path, stage: str, **values: str) -> None:
    runs = store.load(results, "runs")
    for col, value in values.items():
        runs.loc[runs["stage"] == stage, col] = value
    store.table_path(results, "runs").unlink()
    store.append(results, "runs", runs)


def test_every_recorded_stage_hash_is_rebuilt(recorded, auditor) -> None:
    report = audit(recorded[0], auditor)
    assert (report.problems, report.unchecked) == ([], [])
    assert report.rows == report.checked == 4  # pretrain, de_replay0, de_replay25, union


def test_a_changed_stage_hash_is_one_line_naming_the_row(recorded, auditor, tmp_path) -> None:
    results = _copy(recorded[0], tmp_path)
    _edit_runs(results, "de_replay25", stage_hash="0" * 20)
    snapshot = next((results / "configs").glob("*.yaml"))  # the snapshot agrees: only the rebuild can tell
    doc = yaml.safe_load(snapshot.read_text())
    doc["stage_hashes"]["de_replay25"] = "0" * 20
    snapshot.write_text(yaml.safe_dump(doc, sort_keys=False))
    (line,) = audit(results, auditor).problems
    assert "/de_replay25: stage_hash 00000000000000000000 is rebuilt as " in line
    assert "tokenizer and corpora unchanged" in line


def test_a_wrong_parent_hash_is_named(recorded, auditor, tmp_path) -> None:
    results = _copy(recorded[0], tmp_path)
    _edit_runs(results, "de_replay0", parent_hash="2" * 20)
    (line,) = audit(results, auditor).problems
    assert "/de_replay0: parent_hash 22222222222222222222 but its parent is rebuilt as " in line


def test_a_changed_corpus_is_named_as_the_cause(recorded, auditor, tmp_path) -> None:
    results = _copy(recorded[0], tmp_path)
    runs = store.load(results, "runs")
    old_ids = dict(zip(runs["stage"], runs["corpora"]))
    _edit_runs(results, "pretrain", stage_hash="1" * 20, corpora="en_old=wiki@123456789abc")
    problems = audit(results, auditor).problems
    assert len(problems) == 2  # the row against its snapshot, the row against the rebuild
    assert f"corpus en_old wiki@123456789abc -> {old_ids['pretrain'].split('=')[1]}" in problems[1]


def test_a_missing_snapshot_and_an_unknown_commit_are_mismatches(recorded, auditor, tmp_path) -> None:
    results = _copy(recorded[0], tmp_path)
    _edit_runs(results, "union", git_commit="f" * 40)
    shutil.rmtree(results / "configs")
    problems = audit(results, auditor).problems
    assert sum("no config snapshot" in p for p in problems) == 4
    assert [p for p in problems if "git_commit" in p] == [
        f"{results}/runs: {store.load(results, 'runs')['run_id'][0]}/union: git_commit {'f' * 40} is not in the "
        f"history of {recorded[1]}"
    ]


def test_a_failed_row_is_skipped(recorded, auditor, tmp_path) -> None:
    results = _copy(recorded[0], tmp_path)  # as pipeline.failures records a sweep member that failed
    store.append(results, "runs", [{"run_id": "quickstart-s0-bad", "experiment": "quickstart", "stage": "*",
                                    "status": "failed", "reason": "replay.ratio: must be in [0, 1)"}])  # fmt: skip
    report = audit(results, auditor)
    assert (report.rows, report.checked, report.problems) == (5, 4, [])


def test_main_exit_status(recorded, data_dir, tmp_path, capsys) -> None:
    results = recorded[0]
    cache = ["--cache-dir", str(tmp_path / "cache"), "--repo", str(recorded[1])]  # the rows' commits live there
    assert verify.main([str(results), "--data-dir", str(data_dir), *cache, "--no-figures"]) == 0
    assert "4 rows, 4 stage hashes rebuilt, 0 mismatches" in capsys.readouterr().out
    (tmp_path / "empty").mkdir()  # no corpora: every row unchecked, with the file it needs
    assert verify.main([str(results), "--data-dir", str(tmp_path / "empty"), *cache, "--no-figures"]) == 2
    out = capsys.readouterr().out
    assert "unchecked: " in out and "A_en_wikipedia.jsonl" in out and "(set CPT_DATA_DIR or --data-dir)" in out
    planted = _copy(results, tmp_path)
    _edit_runs(planted, "pretrain", git_commit="f" * 40)
    assert verify.main([str(planted), "--data-dir", str(data_dir), *cache, "--no-figures"]) == 1
    assert verify.main([str(tmp_path / "empty")]) == 2  # no runs table
    assert "runs.csv" in capsys.readouterr().err


def test_figures_are_redrawn_and_a_committed_figure_that_no_longer_draws_is_named(tmp_path) -> None:
    results = tmp_path / "results"
    (results / "figures").mkdir(parents=True)
    for table in ("runs", "curves"):  # no evals: the benchmark figure cannot be drawn
        shutil.copy(FIXTURE_RESULTS / f"{table}.csv", results)
    for name in ("loss_curves", "benchmarks"):
        (results / "figures" / f"{name}.png").write_bytes(b"")
    (line,) = check_figures(results, only=["loss_curves", "benchmarks"])
    assert line.startswith(f"{results}: figure benchmarks is committed in figures/ but not redrawn (skipped: ")
