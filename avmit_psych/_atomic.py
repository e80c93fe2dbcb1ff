"""Writing files so that a half-written file never appears under its final name.

Every writer goes through :func:`atomic_path`: the data go to a temporary name beside the
target (``.<name>.<host>~<pid>.tmp<suffix>``), are fsynced, renamed onto the target, and the
folder is fsynced, so after a crash or a power cut the final name holds either the old file, the
complete new one, or nothing, never a prefix. A temporary left by a killed process is removed by
:func:`remove_stale_temporaries` once its process is gone. The host is in the name because
workers on several machines (Dask) write into one shared folder: a process can only tell whether
a writer on its own machine is alive, so another machine's temporary is left alone until it is
older than :data:`FOREIGN_STALE_S`.

Test hook (used by tests/test_durability.py to SIGKILL a real writer between its write and its
rename): when ``AVMIT_PSYCH_HOLD_BEFORE_RENAME`` holds a glob pattern (``fnmatch``) that matches
the target's file name, :func:`atomic_path` writes and fsyncs the temporary, creates the file
named by ``AVMIT_PSYCH_HOLD_MARKER`` (its text: the temporary's path) and then waits forever
instead of renaming. Unset (the normal case), it costs one ``os.environ`` look-up per file.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
from pathlib import Path

HOLD_ENV = "AVMIT_PSYCH_HOLD_BEFORE_RENAME"
HOLD_MARKER_ENV = "AVMIT_PSYCH_HOLD_MARKER"

#: ``.<final name>.<host>~<pid>.tmp<suffix>``: the temporary names :func:`atomic_path` uses
#: (``.<final name>.<pid>.tmp<suffix>``, without the host, from earlier versions: this machine).
_TEMPORARY = re.compile(
    r"^\.(?P<name>.+)\.(?:(?P<host>[A-Za-z0-9_-]+)~)?(?P<pid>\d+)\.tmp(?P<suffix>[^/]*)$")
#: Another machine's temporary older than this (s) is taken to be a dead writer's.
FOREIGN_STALE_S = 6 * 3600


def _host() -> str:
    import socket
    return re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname()) or "host"


def writer_of(tmp) -> tuple[str | None, int] | None:
    """(host, pid) of the process that wrote temporary ``tmp`` (host None: an older name,
    written on this machine), or None when ``tmp`` is not one of our temporaries."""
    m = _TEMPORARY.match(Path(tmp).name)
    return (m.group("host"), int(m.group("pid"))) if m else None


def fsync_file(fh) -> None:
    fh.flush()
    os.fsync(fh.fileno())


def fsync_dir(path) -> None:
    """fsync a folder, so that the names created, renamed or removed in it are on disk.

    A no-op where folders cannot be opened for fsync (Windows)."""
    if os.name == "nt":
        return
    _fsync_path(Path(path))


def fsync_tree(path) -> None:
    """fsync a file, or every file and folder under a folder (for multi-file outputs)."""
    path = Path(path)
    if path.is_dir():
        for sub, _, files in os.walk(path):
            for name in files:
                _fsync_path(Path(sub) / name)
            fsync_dir(sub)
    else:
        _fsync_path(path)


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_folder(folder) -> Path:
    """``mkdir -p`` that also fsyncs the parent of every folder it creates."""
    folder = Path(folder)
    missing = []
    p = folder
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    folder.mkdir(parents=True, exist_ok=True)
    for created in reversed(missing):
        fsync_dir(created.parent)
    return folder


def replace(src, dst) -> None:
    """``os.replace(src, dst)`` made durable: ``src`` is fsynced before the rename, the folder
    (both folders, if they differ) after it."""
    src, dst = Path(src), Path(dst)
    fsync_tree(src)
    os.replace(src, dst)
    fsync_dir(dst.parent)
    if src.parent.resolve() != dst.parent.resolve():
        fsync_dir(src.parent)


def remove(path) -> None:
    """Remove a file (or folder) and fsync its folder, so the removal survives a power cut."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
    fsync_dir(path.parent)


@contextlib.contextmanager
def appending(path):
    """Open a line-oriented text file (a journal, a history) for appending rows durably.

    Yields ``(fh, new)``; ``new`` says the file was absent or empty (write a header). A last
    line torn by a crash is ended first, so it cannot swallow the first row appended now; the
    file is fsynced after the block, and its folder too when the file is new.
    """
    path = Path(path)
    new = not path.exists() or path.stat().st_size == 0
    torn = False
    if not new:
        with open(path, "rb") as fh:
            fh.seek(-1, os.SEEK_END)
            torn = fh.read(1) != b"\n"
    else:
        make_folder(path.parent)
    with open(path, "a", encoding="utf-8", newline="") as fh:
        if torn:
            fh.write("\n")
        yield fh, new
        fsync_file(fh)
    if new:
        fsync_dir(path.parent)


def temporary_name(path, suffix: str = "") -> Path:
    path = Path(path)
    return path.with_name(f".{path.name}.{_host()}~{os.getpid()}.tmp{suffix}")


@contextlib.contextmanager
def atomic_path(path, *, suffix: str = ""):
    """Yield a temporary path beside ``path``; when the block succeeds, fsync what was written
    there (a file, or a folder and everything in it), rename it onto ``path`` and fsync the
    folder; when the block fails, remove it. ``suffix`` keeps an extension some writers insist
    on (e.g. ``.weights.h5``, ``.npz``)."""
    path = Path(path)
    make_folder(path.parent)
    tmp = temporary_name(path, suffix)
    try:
        yield tmp
        fsync_tree(tmp)
        _hold_if_asked(path, tmp)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def _hold_if_asked(path: Path, tmp: Path) -> None:
    """The test hook described in the module docstring."""
    pattern = os.environ.get(HOLD_ENV)
    if not pattern:
        return
    import fnmatch
    import time
    if not fnmatch.fnmatch(path.name, pattern):
        return
    marker = os.environ.get(HOLD_MARKER_ENV)
    if marker:
        Path(marker).write_text(str(tmp))
    while True:  # until the test kills this process
        time.sleep(3600)


def _process_alive(pid: int) -> bool:
    """Whether process ``pid`` may still be writing: it exists and is not a zombie (killed but
    not yet reaped, as a killed run's workers are until init collects them)."""
    if pid == os.getpid():
        return False  # an earlier, killed process that had our pid (callers clean up first)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's process
        pass
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc (macOS): trust os.kill
    return state not in (b"Z", b"X")


def remove_stale_temporaries(root, pattern: str = "*") -> int:
    """Delete the temporaries under ``root`` whose names match ``pattern`` (a glob on the
    final name, e.g. ``*.tfrecord``) and whose writing process is gone (killed mid-write).

    Returns how many were removed. Temporaries of another process still running are left
    alone; so are another machine's, until they are :data:`FOREIGN_STALE_S` old. Call this
    before the calling process itself writes under ``root``.
    """
    import fnmatch
    import time
    here = _host()
    removed = 0
    root = Path(root)
    if not root.exists():
        return 0
    for tmp in root.rglob(".*.tmp*"):
        m = _TEMPORARY.match(tmp.name)
        if not m or not fnmatch.fnmatch(m.group("name"), pattern):
            continue
        host = m.group("host")
        if host is not None and host != here:
            try:
                if time.time() - tmp.lstat().st_mtime < FOREIGN_STALE_S:
                    continue
            except FileNotFoundError:
                continue
        elif _process_alive(int(m.group("pid"))):
            continue
        remove(tmp)
        removed += 1
    return removed


def sha256_file(path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    import hashlib
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
