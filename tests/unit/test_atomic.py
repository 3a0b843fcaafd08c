"""Atomic writes: temporary siblings only, umask modes, a full disk as one line, stale temporaries removed."""

from __future__ import annotations

import errno
import os
import stat
import time
from pathlib import Path

import pytest

from cpt_experiments import atomic
from cpt_experiments.atomic import atomic_dir, atomic_path, atomic_write_text, remove_stale_temps
from cpt_experiments.errors import CacheError


@pytest.fixture
def group_umask():
    """umask 002 (a group sharing a cache) for the test, restored afterwards."""
    old = os.umask(0o002)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_umask_is_read_without_changing_it(group_umask):
    assert atomic.umask() == 0o002
    assert atomic.file_mode() == 0o664 and atomic.dir_mode() == 0o775
    assert os.umask(0o002) == 0o002  # unchanged by reading it


def test_atomic_write_publishes_with_the_umask_mode_and_leaves_no_temporary(tmp_path, group_umask):
    dest = tmp_path / "sub" / "table.csv"
    atomic_write_text(dest, "a\n")
    assert dest.read_text() == "a\n"
    assert mode(dest) == 0o664  # mkstemp's 0600 would lock a colleague out
    assert [p.name for p in dest.parent.iterdir()] == ["table.csv"]


def test_failed_write_keeps_the_previous_version(tmp_path):
    dest = tmp_path / "f.txt"
    atomic_write_text(dest, "old")
    with pytest.raises(ZeroDivisionError), atomic_path(dest) as tmp:
        tmp.write_text("half")
        _ = 1 / 0
    assert dest.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_disk_full_is_one_line_naming_the_file_and_keeps_the_previous_version(tmp_path):
    dest = tmp_path / "last.ckpt"
    atomic_write_text(dest, "good")
    with pytest.raises(CacheError) as info, atomic_path(dest) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(b"partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    msg = str(info.value)
    assert str(dest) in msg and "no space left" in msg and "\n" not in msg
    assert dest.read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_disk_full_is_recognised_in_errno_less_messages():
    assert atomic.is_disk_full(RuntimeError("Error while serializing: IoError(Os { code: 28, kind: StorageFull })"))
    wrapped = RuntimeError("unexpected pos 704 vs 598")
    wrapped.__context__ = OSError(errno.EDQUOT, "Disk quota exceeded")
    assert atomic.is_disk_full(wrapped)
    assert not atomic.is_disk_full(RuntimeError("shape mismatch"))


def test_atomic_dir_publishes_every_entry_with_the_umask_modes(tmp_path, group_umask):
    dest = tmp_path / "final"
    with atomic_dir(dest) as tmp:
        private = tmp / "model.safetensors"
        private.write_bytes(b"w")
        os.chmod(private, 0o600)  # as some writers (and mkstemp) create files
        (tmp / "sub").mkdir()
        (tmp / "sub" / "x.json").write_text("{}")
    assert mode(dest) == 0o775 and mode(dest / "sub") == 0o775
    assert mode(dest / "model.safetensors") == 0o664 and mode(dest / "sub" / "x.json") == 0o664
    with atomic_dir(dest) as tmp:  # an existing directory is replaced as a whole
        (tmp / "other").write_text("2")
    assert sorted(p.name for p in dest.iterdir()) == ["other"]
    assert [p.name for p in tmp_path.iterdir()] == ["final"]


def test_disk_full_inside_atomic_dir_keeps_the_previous_directory(tmp_path):
    dest = tmp_path / "final"
    with atomic_dir(dest) as tmp:
        (tmp / "a").write_text("old")
    with pytest.raises(CacheError, match="no space left"), atomic_dir(dest) as tmp:
        (tmp / "a").write_text("new")
        raise RuntimeError('IoError(Os { code: 28, kind: StorageFull, message: "No space left on device" })')
    assert (dest / "a").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["final"]


def test_remove_stale_temps_removes_only_old_temporaries_of_this_module(tmp_path):
    old_file = tmp_path / ".last.ckpt.tmp-abc123"
    old_dir = tmp_path / ".final.tmp-xyz"
    old_swap = tmp_path / ".final.old-4242"
    for p in (old_file,):
        p.write_bytes(b"x" * 10)
    old_dir.mkdir()
    (old_dir / "model.safetensors").write_bytes(b"x")
    old_swap.mkdir()
    keep = [tmp_path / "last.ckpt", tmp_path / ".hidden", tmp_path / "x.tmp-1", tmp_path / ".fresh.tmp-new"]
    for p in keep:
        p.write_text("k")
    past = time.time() - 3600
    for p in (old_file, old_dir, old_swap):
        os.utime(p, (past, past))
    removed = remove_stale_temps(tmp_path, before=time.time() - 60)
    assert sorted(p.name for p in removed) == sorted(p.name for p in (old_file, old_dir, old_swap))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in keep)
    # By default only files older than this process go: the fresh temporary above is ours.
    assert remove_stale_temps(tmp_path) == []
    assert remove_stale_temps(tmp_path / "missing") == []


def test_remove_stale_temps_of_one_destination_only(tmp_path):
    """Under one file's lock only that file's temporaries may go (another table may be mid-write)."""
    mine, other = tmp_path / ".runs.csv.tmp-a1", tmp_path / ".curves.csv.tmp-b2"
    for p in (mine, other):
        p.write_text("half")
        os.utime(p, (time.time() - 600, time.time() - 600))
    assert remove_stale_temps(tmp_path, before=time.time(), prefix=".runs.csv.") == [mine]
    assert other.exists()
