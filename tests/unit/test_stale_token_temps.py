"""Temporaries of killed tokenizer and token-cache writers are removed at the next start, never a live writer's."""

from __future__ import annotations

import os
from pathlib import Path

from filelock import FileLock

from cpt_experiments.atomic import remove_unlocked_temps


def _old(path: Path, is_dir: bool = True) -> Path:
    path.mkdir() if is_dir else path.write_bytes(b"x")
    os.utime(path, (1, 1))  # older than this process
    return path


def test_killed_writers_temporaries_go_live_ones_stay(tmp_path: Path) -> None:
    killed = tmp_path / ".wiki-train-0123.tmp-abc"
    killed.mkdir()
    (killed / "tokens.bin").write_bytes(b"partial")
    os.utime(killed, (1, 1))
    old_swap = _old(tmp_path / ".wiki-validation-4567.old-99", is_dir=False)
    live = _old(tmp_path / ".de-train-89ab.tmp-xyz")
    fresh = tmp_path / ".en-train-cdef.tmp-new"  # this process's own write: too young
    fresh.mkdir()
    entry = _old(tmp_path / "wiki-train-0123")  # a published cache entry is never touched
    with FileLock(str(tmp_path / ".de-train-89ab.lock")):  # someone is tokenizing de right now
        removed = remove_unlocked_temps(tmp_path)
    assert sorted(removed) == sorted([killed, old_swap])
    assert live.exists() and fresh.exists() and entry.exists() and not killed.exists()


def test_prepare_corpora_cleans_the_token_folder(tmp_path: Path, data_dir: Path) -> None:
    from cpt_experiments.data.token_cache import prepare_corpora

    tokens = tmp_path / "tokens"
    tokens.mkdir()
    killed = _old(tokens / ".A-train-0000.tmp-k")
    prepare_corpora({}, tokenizer=None, data_dir=data_dir, cache_dir=tmp_path, roles=[])
    assert not killed.exists()
