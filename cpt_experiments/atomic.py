"""Atomic file writes in shared directories: a temporary sibling, fsync, then ``os.replace``.

A reader never sees a half-written file: either the old content or the new one. The temporary
file lives in the destination directory (never ``$TMPDIR``), so the rename cannot turn into a
cross-filesystem copy. A killed writer leaves at most a ``.<name>.tmp-*`` (or ``.<name>.old-*``)
sibling, which no reader treats as valid and ``remove_stale_temps`` deletes later.

Published files and directories get the ordinary modes of the user's umask (``0666 & ~umask``,
``0777 & ~umask``): ``mkstemp``/``mkdtemp`` create them 0600/0700, which would lock a colleague
sharing the cache out. A full disk or quota becomes one ``CacheError`` line naming the file; the
previous version of the file is untouched.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from cpt_experiments.errors import CacheError

#: Wall-clock time (s since the epoch) this process imported the module: temporary files of this
#: suite that are older belong to an earlier or another process.
PROCESS_START = time.time()

_TEMP_NAME = re.compile(r"^\..+\.(tmp|old)-[^/]*$")
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
# Writers implemented in C++/Rust (torch, safetensors) report a full disk as text, without errno.
_DISK_FULL_TEXT = ("No space left on device", "Disk quota exceeded", "os error 28", "StorageFull", "QuotaExceeded")


def umask() -> int:
    """The process umask, read without changing it (``os.umask`` would briefly be 0 for other threads)."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    mask = os.umask(0o022)  # no /proc (macOS): the only portable way to read it
    os.umask(mask)
    return mask


def file_mode() -> int:
    """Mode of a new regular file under the umask (e.g. 0644 for umask 022, 0664 for 002)."""
    return 0o666 & ~umask()


def dir_mode() -> int:
    """Mode of a new directory under the umask (e.g. 0755 for umask 022, 0775 for 002)."""
    return 0o777 & ~umask()


def is_disk_full(exc: BaseException) -> bool:
    """True if ``exc`` (or its context) says the disk or the quota is full."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in _DISK_FULL:
            return True
        if any(text in str(exc) for text in _DISK_FULL_TEXT):
            return True
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return False


def disk_full_error(dest: str | os.PathLike) -> CacheError:
    """The one-line error for a write to ``dest`` that ran out of space."""
    return CacheError(f"{dest}: no space left on device while writing it; its previous version is intact")


def _fsync_dir(path: Path) -> None:
    # Makes the rename itself durable; not supported on every platform, hence best effort.
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``dest``; on success it is renamed onto ``dest``.

    The caller writes the file (any way it likes) at the yielded path. On an exception the
    temporary file is removed and ``dest`` is untouched; a full disk raises ``CacheError``.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.tmp-", dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        _fsync_file(tmp_path)
        os.chmod(tmp_path, file_mode())
        os.replace(tmp_path, dest)
        _fsync_dir(dest.parent)
    except Exception as exc:
        if is_disk_full(exc):
            raise disk_full_error(dest) from exc
        raise
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_bytes(dest: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``dest`` atomically."""
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(dest: str | os.PathLike, text: str) -> None:
    """Write UTF-8 ``text`` to ``dest`` atomically."""
    atomic_write_bytes(dest, text.encode("utf-8"))


def _publishable(root: Path) -> None:
    """Give ``root`` and everything under it the umask modes, and flush the files to disk."""
    fmode, dmode = file_mode(), dir_mode()
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        if path.is_dir():
            os.chmod(path, dmode)
        else:
            os.chmod(path, fmode)
            _fsync_file(path)


@contextlib.contextmanager
def atomic_dir(dest: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory next to ``dest``; on success it replaces ``dest``.

    Used for multi-file artefacts (a tokenizer, a stage's final model): the directory appears
    complete or not at all. An existing ``dest`` is replaced.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        yield tmp
        _publishable(tmp)
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
            os.replace(dest, old)
            os.replace(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dest)
        _fsync_dir(dest.parent)
    except Exception as exc:
        if is_disk_full(exc):
            raise disk_full_error(dest) from exc
        raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def is_temp_name(name: str) -> bool:
    """True for the temporary siblings this module creates (``.<name>.tmp-*``, ``.<name>.old-*``)."""
    return bool(_TEMP_NAME.match(name))


def remove_stale_temps(directory: str | os.PathLike, before: float = PROCESS_START, prefix: str = ".") -> list[Path]:
    """Delete this module's temporary siblings in ``directory`` last modified before ``before``.

    Only safe where no other live process writes them: under the directory's lock, or with
    ``prefix=f".{dest.name}."`` under the lock of ``dest`` (e.g. one table of a shared folder).
    The age check spares this process's own writes. Returns what was removed.
    """
    directory = Path(directory)
    removed: list[Path] = []
    if not directory.is_dir():
        return removed
    for path in directory.iterdir():
        if not (path.name.startswith(prefix) and is_temp_name(path.name)):
            continue
        try:
            if path.lstat().st_mtime >= before:
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        except FileNotFoundError:
            continue
        removed.append(path)
    return removed


def remove_unlocked_temps(directory: str | os.PathLike, before: float = PROCESS_START) -> list[Path]:
    """Delete killed writers' temporaries ``.<name>.tmp-*`` / ``.<name>.old-*`` in a folder of entries that
    are each written under the lock ``.<name>.lock`` (token caches, tokenizers): a temporary goes only when
    its entry's lock is free right now (no live writer) and it is older than ``before``. Returns what went."""
    from filelock import FileLock, Timeout

    directory = Path(directory)
    removed: list[Path] = []
    if not directory.is_dir():
        return removed
    names = {m.group(1) for p in directory.iterdir() if (m := _TEMP_OWNER.match(p.name))}
    for name in sorted(names):
        try:
            with FileLock(str(directory / f".{name}.lock"), timeout=0):
                removed += remove_stale_temps(directory, before, prefix=f".{name}.")
        except Timeout:  # a live writer of this entry: its temporary is not stale
            continue
    return removed


_TEMP_OWNER = re.compile(r"^\.(.+)\.(?:tmp|old)-[^/]*$")
