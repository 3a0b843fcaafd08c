"""Folders lm-eval imports code from: owner-only, verified against a manifest before every use.

lm-eval executes ``utils.py`` of a task folder (``!function utils.x`` in a task YAML) and indexes every
YAML it finds there, so a task folder is code. ``render_task_dir`` writes the files it is given into
``dest`` (mode 0700, files 0600, owned by this user) with ``.manifest.json``: file name -> sha256.
Before a folder is reused it must match exactly what would be written now: no other entry, every
file ours, owner-only and of the expected bytes (the comparison is with the in-memory files, so an
edited manifest changes nothing). Anything else is a warning naming the first difference, and the
folder is rendered again. Python's ``__pycache__`` (written when lm-eval imports ``utils.py``) is
deleted before every use: a planted ``.pyc`` with the source's size and mtime would otherwise run.
Without a cache folder (``cache_root=None`` and no ``$CPT_CACHE_DIR``) a private temporary folder
(``mkdtemp``: unpredictable name, 0700) is rendered afresh per process and removed at exit.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import shutil
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path

from cpt_experiments.atomic import disk_full_error, is_disk_full
from cpt_experiments.errors import CacheError
from cpt_experiments.hashing import sha256_file, text_hash

log = logging.getLogger(__name__)

MANIFEST = ".manifest.json"
_BYTECODE = "__pycache__"
_private_root: list[Path] = []  # this process's fresh temporary root, when no cache folder is given


def manifest_of(files: Mapping[str, str]) -> str:
    """The manifest text of ``files`` (name -> text): sorted name -> sha256 of the UTF-8 bytes."""
    digests = {name: text_hash(text) for name, text in sorted(files.items())}
    return json.dumps(digests, indent=2, sort_keys=True) + "\n"


def task_root(cache_dir: str | os.PathLike | None, name: str) -> Path:
    """``<cache_dir>/<name>`` (else ``$CPT_CACHE_DIR/<name>``), else a private per-process temporary folder."""
    root = cache_dir if cache_dir is not None else os.environ.get("CPT_CACHE_DIR") or None
    if root is not None:
        return Path(root).expanduser().resolve() / name
    if not _private_root:
        _private_root.append(Path(tempfile.mkdtemp(prefix="cpt-lm-eval-")))
        atexit.register(shutil.rmtree, _private_root[0], True)
    return _private_root[0] / name


def _owner_only(st: os.stat_result) -> bool:
    return st.st_uid == os.getuid() and not st.st_mode & 0o077


def folder_problem(dest: Path, files: Mapping[str, str]) -> str | None:
    """Why ``dest`` is not exactly ``files`` + manifest, owner-only and ours; None if it is."""
    st = os.lstat(dest)
    if not stat.S_ISDIR(st.st_mode):
        return "not a directory"
    if not _owner_only(st):
        return f"folder mode {stat.S_IMODE(st.st_mode):o} or owner uid {st.st_uid} is not owner-only"
    expected = {**files, MANIFEST: manifest_of(files)}
    present = {p.name for p in dest.iterdir()} - {_BYTECODE}
    extra = sorted(present - set(expected))
    if extra:
        return f"unexpected file {extra[0]}"
    missing = sorted(set(expected) - present)
    if missing:
        return f"missing {missing[0]}"
    for name, text in sorted(expected.items()):
        path = dest / name
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode) or not _owner_only(st):
            return f"{name} is not an owner-only regular file"
        if sha256_file(path) != text_hash(text):
            return f"{name} differs from its manifest hash"
    return None


def render_task_dir(dest: str | os.PathLike, files: Mapping[str, str]) -> Path:
    """``dest`` holding exactly ``files`` (name -> text), verified or rendered afresh; returns ``dest``.

    The parent folder is created owner-only; the new folder is renamed into place whole, so a
    concurrent reader sees the old verified folder or the new one.
    """
    dest = Path(dest)
    if any("/" in n or n in ("", ".", "..", MANIFEST, _BYTECODE) for n in files):
        raise ValueError(f"bad task file names: {sorted(files)}")
    try:
        _private_parent(dest.parent)
        if dest.exists() or dest.is_symlink():
            problem = folder_problem(dest, files)
            if problem is None:
                shutil.rmtree(dest / _BYTECODE, ignore_errors=True)
                return dest
            log.warning("%s: %s; rendering the task folder again", dest, problem)
        _publish(dest, files)
    except OSError as exc:
        if is_disk_full(exc):
            raise disk_full_error(dest) from exc
        raise CacheError(f"{dest}: cannot write the lm-eval task folder ({exc.strerror or exc})") from None
    return dest


def _private_parent(root: Path) -> None:
    """``root`` exists, is ours and owner-only: nobody else can swap a verified folder inside it."""
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = os.lstat(root)
    if st.st_uid != os.getuid() or not stat.S_ISDIR(st.st_mode):
        raise CacheError(f"{root}: belongs to uid {st.st_uid}, not to this user; lm-eval task folders need their own")
    if st.st_mode & 0o077:
        os.chmod(root, 0o700)


def _publish(dest: Path, files: Mapping[str, str]) -> None:
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))  # 0700
    try:
        for name, text in {**files, MANIFEST: manifest_of(files)}.items():
            fd = os.open(tmp / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
        if dest.exists() or dest.is_symlink():  # a bad folder (or a planted link) is moved aside, never followed
            old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
            os.replace(dest, old)
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)
        try:
            os.rename(tmp, dest)
        except OSError:  # another process published the same folder meanwhile: keep theirs if it verifies
            if folder_problem(dest, files) is not None:
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
