"""Folders lm-eval imports code from are owner-only and verified before every use: planted code never runs."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest
from test_eval_harness import tiny_model_and_tokenizer

from cpt_experiments.eval.harness import evaluate_model
from cpt_experiments.eval.heldout import render_heldout_tasks
from cpt_experiments.eval.task_dir import MANIFEST, render_task_dir, task_root
from cpt_experiments.eval.task_resolution import render_offline_tasks


def _plant(path: Path, marker: Path) -> None:
    """Append a line that would create ``marker`` if it ever ran."""
    path.chmod(0o600)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(f"\nopen({str(marker)!r}, 'w').write('planted code ran')\n")


def test_planted_utils_py_never_runs(benchmark_dir: Path, tmp_path: Path, caplog) -> None:
    cache = tmp_path / "cache"
    folder = render_offline_tasks(benchmark_dir, cache / "lm_eval_tasks")
    marker = tmp_path / "PWNED"
    _plant(folder / "utils.py", marker)
    model, tokenizer = tiny_model_and_tokenizer()
    with caplog.at_level(logging.WARNING):  # cpt_hellaswag's process_docs lives in utils.py
        rows = evaluate_model(
            model, tokenizer, ["cpt_hellaswag"], benchmark_dir=benchmark_dir, limit=2, offline=True, cache_dir=cache
        )
    assert rows and not marker.exists(), "code planted in the cached task folder ran"
    assert "utils.py differs from its manifest hash; rendering the task folder again" in caplog.text
    assert "planted" not in (folder / "utils.py").read_text()


def test_rendered_folder_is_owner_only_with_a_manifest(benchmark_dir: Path, tmp_path: Path) -> None:
    folder = render_offline_tasks(benchmark_dir, tmp_path / "tasks")
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700 and stat.S_IMODE(folder.parent.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in folder.iterdir())
    assert (folder / MANIFEST).is_file() and (folder / "utils.py").is_file()


@pytest.mark.parametrize("attack", ["extra_yaml", "pycache", "group_writable", "symlink", "edit_manifest", "missing"])
def test_every_tampering_is_undone_before_use(tmp_path: Path, attack: str, caplog) -> None:
    files = {"task.yaml": "task: t\n", "utils.py": "X = 1\n"}
    dest = render_task_dir(tmp_path / "root" / "abc", files)
    marker = tmp_path / "PWNED"
    if attack == "extra_yaml":  # lm-eval indexes every YAML of an include path
        (dest / "evil.yaml").write_text("task: evil\nprocess_docs: !function evil.run\n")
    elif attack == "pycache":  # a planted .pyc is silently removed, the folder stays
        (dest / "__pycache__").mkdir()
        (dest / "__pycache__" / "utils.cpython-311.pyc").write_bytes(b"planted")
    elif attack == "group_writable":
        dest.chmod(0o777)
    elif attack == "symlink":  # the folder replaced by a link to someone else's
        other = tmp_path / "other"
        other.mkdir()
        (other / "utils.py").write_text(f"open({str(marker)!r}, 'w')\n")
        os.rename(dest, tmp_path / "moved")
        dest.symlink_to(other)
    elif attack == "edit_manifest":  # a manifest that matches planted code changes nothing
        _plant(dest / "utils.py", marker)
        (dest / MANIFEST).write_text("{}\n")
    else:
        (dest / "utils.py").unlink()
    with caplog.at_level(logging.WARNING):
        assert render_task_dir(dest, files) == dest
    assert not dest.is_symlink() and sorted(p.name for p in dest.iterdir()) == sorted([*files, MANIFEST])
    assert all((dest / n).read_text() == t for n, t in files.items())
    assert ("rendering the task folder again" in caplog.text) == (attack != "pycache")
    assert not marker.exists()


def test_no_cache_dir_means_a_private_folder_not_a_shared_tmp_path(monkeypatch) -> None:
    monkeypatch.delenv("CPT_CACHE_DIR", raising=False)
    root = task_root(None, "lm_eval_tasks")
    assert root.parent.name.startswith("cpt-lm-eval-") and stat.S_IMODE(root.parent.stat().st_mode) == 0o700
    assert root == task_root(None, "lm_eval_tasks")  # one per process


def test_heldout_tasks_are_verified_too(tmp_path: Path, caplog) -> None:
    dest = tmp_path / "heldout_tasks" / "h"
    names = render_heldout_tasks({"en": ["Some text."]}, dest)
    (dest / "utils.py").write_text("import os\n")  # nothing of ours imports it, but nothing foreign may sit there
    with caplog.at_level(logging.WARNING):
        assert render_heldout_tasks({"en": ["Some text."]}, dest) == names
    assert "unexpected file utils.py" in caplog.text and not (dest / "utils.py").exists()
