"""Per-trial data files that survive crashes: one row per trial, flushed and fsynced.

Files are named ``sub-<id>_ses-<n>_task-<name>_beh.csv`` (``_run-<k>`` from the second run on)
in a data folder and are never overwritten. Opening a participant's session again resumes the
unfinished file (rows already there are kept and their trials skipped); a finished file (it has
a ``<file>.done`` marker) makes a new run instead. A row half-written when the process died is
cut off on reopening, so the file always parses.

One writer per session: before it reads or touches the data file, a :class:`TrialWriter` locks
the participant's session of its task (``.sub-<id>_ses-<n>_task-<name>.lock`` beside the data
files, any run) with ``flock`` and writes its process id, host, start time and command into the
lock file. A second launch for the same participant, session and task while the first process is
alive raises :class:`SessionBusy` naming that process, having changed nothing. The process keeps
the lock until the writer is closed (or the process ends; a finished writer keeps it so another
launch cannot start a new run meanwhile). A lock file whose process was killed is no longer
locked (the kernel releases ``flock`` locks of a dead process): the next launch takes it over,
says so on stderr (``TrialWriter.taken_over_from``) and resumes the file.
"""
from __future__ import annotations

import atexit
import csv
import io
import json
import os
import re
import socket
import sys
import time
from datetime import datetime
from pathlib import Path

import pandas as pd

from .._atomic import _process_alive
from ..dataset.schema import DatasetError

try:
    import fcntl
except ImportError:  # Windows: byte-range locks through msvcrt instead
    fcntl = None
    import msvcrt

PARTICIPANT_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


def check_participant(participant: str) -> str:
    participant = str(participant)
    if not PARTICIPANT_PATTERN.match(participant):
        raise DatasetError(f"participant id '{participant}' is not allowed",
                           fix="use 1-32 letters, digits, '-' or '_' (e.g. P01)")
    return participant


def check_session(session) -> int:
    try:
        value = int(session)
    except (TypeError, ValueError):
        value = -1
    if value < 1:
        raise DatasetError(f"session '{session}' is not a whole number >= 1",
                           fix="give --session 1 for the first session")
    return value


def data_path(data_dir, participant: str, session: int, task: str, run: int = 1) -> Path:
    run_part = "" if run == 1 else f"_run-{run}"
    return Path(data_dir) / f"sub-{participant}_ses-{session}_task-{task}{run_part}_beh.csv"


def _repair(path: Path) -> None:
    """Cut a trailing partial row (a crash mid-write) so the file parses."""
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return
    cut = data.rfind(b"\n")
    with open(path, "r+b") as fh:
        fh.truncate(cut + 1 if cut >= 0 else 0)
        fh.flush()
        os.fsync(fh.fileno())


def _unfinished_run(data_dir: Path, participant: str, session: int, task: str):
    """The first run of the session whose file has no ``.done`` marker: (path, run)."""
    run = 1
    while True:
        path = data_path(data_dir, participant, session, task, run)
        if not path.exists() or not Path(str(path) + ".done").exists():
            return path, run
        run += 1


# -- one writer per session -------------------------------------------------------------------
#: A lock written less than this long ago by another machine may belong to a live session
#: (flock on a network folder is not always seen across machines): the takeover warns loudly.
RECENT_LOCK_S = 12 * 3600
#: Windows locks one byte far beyond the lock file's text, so that the text stays readable.
_WINDOWS_LOCK_OFFSET = 1 << 30


class SessionBusy(DatasetError):
    """Another live process is writing this participant's session of this task.

    ``holder`` is what that process wrote into the lock file (pid, host, since, script, argv).
    """

    def __init__(self, problem: str, *, path, holder: dict, fix: str):
        super().__init__(problem, path=path, fix=fix)
        self.holder = holder


def lock_path(data_dir, participant: str, session: int, task: str) -> Path:
    """The lock file of a participant's session of a task (shared by all its runs)."""
    return Path(data_dir) / f".sub-{participant}_ses-{session}_task-{task}.lock"


def _this_process() -> dict:
    argv = list(sys.argv)
    script = argv[0] if argv else ""
    if script == "-c":
        script = "python -c"
    elif os.path.isabs(script):  # relative to the working folder when inside it
        try:
            relative = os.path.relpath(script)
            script = script if relative.startswith("..") else relative
        except ValueError:  # another drive (Windows)
            pass
    return {"pid": os.getpid(), "host": socket.gethostname(),
            "since": datetime.now().isoformat(timespec="seconds"), "since_unix": time.time(),
            "script": script or "python", "argv": argv}


def _describe(holder: dict, lock: Path) -> str:
    if not holder.get("pid"):
        return f"a process that has not named itself in {lock} holds its lock"
    return (f"process {holder['pid']} on host {holder.get('host', '?')} since "
            f"{holder.get('since', '?')} ({holder.get('script', '?')})")


def _try_lock(fd: int) -> bool:
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError:  # BlockingIOError (flock), PermissionError (msvcrt)
        return False
    return True


def _read_holder(fd: int) -> dict:
    os.lseek(fd, 0, os.SEEK_SET)
    data = b""
    while chunk := os.read(fd, 65536):
        data += chunk
    try:
        holder = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


class SessionLock:
    """This process's exclusive lock on one participant's session of one task.

    Held on an open file descriptor (``flock``; ``msvcrt.locking`` on Windows) until
    :meth:`release` or the end of the process; the kernel drops it when the process dies, so a
    lock file left by a killed process is free to take over. ``taken_over_from`` holds what such
    a file named (else None).
    """

    def __init__(self, path: Path, fd: int, taken_over_from: dict | None):
        self.path, self._fd, self.taken_over_from = path, fd, taken_over_from
        self._pid = os.getpid()
        self.owner = None        # the TrialWriter using it
        self.parked = False      # its writer finished: kept, and handed to the next writer here

    @classmethod
    def acquire(cls, path: Path, *, data_file: Path, participant: str, session: int,
                task: str) -> "SessionLock":
        session_name = f"participant {participant} session {session} (task {task})"
        for _ in range(20):
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            if not _try_lock(fd):
                # the holder writes its name right after locking: give it a moment to do so
                holder, deadline = _read_holder(fd), time.monotonic() + 2.0
                while not holder.get("pid") and time.monotonic() < deadline:
                    time.sleep(0.05)
                    holder = _read_holder(fd)
                os.close(fd)
                raise SessionBusy(
                    f"{session_name} is already running: {_describe(holder, path)}",
                    path=data_file, holder=holder,
                    fix="finish or close that session first; this launch changed nothing")
            try:  # a holder releasing removes the file: make sure ours is still the one there
                same = os.path.samestat(os.fstat(fd), os.stat(path)) if fcntl else True
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        else:
            raise DatasetError(f"could not lock {session_name}: its lock file keeps changing",
                               path=path, fix="check that nothing else deletes files there")
        previous = _read_holder(fd)
        me = _this_process()
        os.lseek(fd, 0, os.SEEK_SET)
        os.ftruncate(fd, 0)
        os.write(fd, (json.dumps(me, indent=1) + "\n").encode("utf-8"))
        os.fsync(fd)
        # a lock file naming a process (even one with our pid: an earlier, killed process)
        # that is not locked any more was left by a process that never released it
        taken = previous if previous.get("pid") else None
        if taken:
            print(f"warning: {data_file}: {_takeover_note(taken, session_name, me)}",
                  file=sys.stderr)
        return cls(path, fd, taken)

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        if os.getpid() != self._pid:  # a forked child: the lock is its parent's
            return
        if fcntl is not None:
            # remove the file while still holding the lock: an existing lock file then means
            # a process that ended without releasing (killed), which the next launch reports
            try:
                if os.path.samestat(os.fstat(fd), os.stat(self.path)):
                    os.unlink(self.path)
            except OSError:
                pass
            os.close(fd)
        else:
            try:
                os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
                msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
            except OSError:
                pass
            os.close(fd)
            try:
                os.unlink(self.path)
            except OSError:  # another process has it open (it is taking over): leave it
                pass


def _takeover_note(old: dict, session_name: str, me: dict) -> str:
    who = (f"process {old['pid']} on host {old.get('host', '?')} (started "
           f"{old.get('since', '?')}, {old.get('script', '?')})")
    if old.get("host") != me["host"]:
        age = me["since_unix"] - float(old.get("since_unix") or 0)
        note = (f"took over the lock of {session_name} left by {who}, another machine. Locks "
                "on a network folder are not always seen across machines; no lock was held "
                "as seen from here")
        if age < RECENT_LOCK_S:
            note += (f", but it was written only {age / 60:.0f} min ago: if that session is "
                     f"still running on {old.get('host')}, stop this one now (Escape)")
        return note + "; resuming the data file"
    alive = os.name != "nt" and _process_alive(int(old["pid"]))
    state = ("which is running but no longer holds the lock (its id was probably reused)"
             if alive else "which ended without closing the session (killed or crashed)")
    return f"took over the lock of {session_name} left by {who}, {state}; resuming the data file"


#: The session locks this process holds, by lock file.
_HELD: dict[str, SessionLock] = {}


@atexit.register
def _release_all() -> None:
    for lock in list(_HELD.values()):
        lock.release()
    _HELD.clear()


def _lock_session(writer, data_dir: Path, data_file: Path) -> SessionLock:
    path = lock_path(data_dir, writer.participant, writer.session, writer.task)
    key = os.path.abspath(path)
    lock = _HELD.get(key)
    if lock is None or not lock.parked:  # a second open writer here is refused like any other
        lock = SessionLock.acquire(path, data_file=data_file, participant=writer.participant,
                                   session=writer.session, task=writer.task)
        _HELD[key] = lock
    else:  # handed over from this process's finished writer: nothing was taken over
        lock.taken_over_from = None
    lock.owner, lock.parked = writer, False
    return lock


def _unlock_session(writer, lock: SessionLock) -> None:
    if lock.owner is writer:
        lock.release()
        _HELD.pop(os.path.abspath(lock.path), None)
        lock.owner = None


class TrialWriter:
    """Append trial rows to the participant's data file, one fsync per row.

    ``writer.completed`` holds the rows already in the file (for resuming); ``write(row)``
    appends one; ``finish()`` marks the file complete; ``close()`` ends the session's lock.
    Raises :class:`SessionBusy` (changing nothing) while another process writes the same
    participant's session of ``task``; ``writer.taken_over_from`` names the killed process
    whose lock it took over (else None).
    """

    def __init__(self, data_dir, participant: str, session, task: str, columns: list[str]):
        self.participant = check_participant(participant)
        self.session = check_session(session)
        self.task = task
        self.columns = list(columns)
        data_dir = Path(data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        self._fh = None
        self._lock = _lock_session(self, data_dir, _unfinished_run(
            data_dir, self.participant, self.session, task)[0])
        self.taken_over_from = self._lock.taken_over_from
        try:
            self._open(data_dir)
        except BaseException:
            self.close()
            raise

    def _open(self, data_dir: Path) -> None:
        path, run = _unfinished_run(data_dir, self.participant, self.session, self.task)
        self.path, self.run = path, run
        self.completed = pd.DataFrame(columns=self.columns)
        if path.exists() and path.stat().st_size:
            _repair(path)
            if path.stat().st_size:
                self.completed = pd.read_csv(path, dtype=str, keep_default_na=False)
                header = list(self.completed.columns)
                missing = [c for c in self.columns if c not in header]
                if missing:
                    raise DatasetError(f"the data file has no column '{missing[0]}'",
                                       path=path, column=missing[0],
                                       fix="resume with the same task and config, "
                                           "or use another --data-dir")
                self.columns = header
        self._fh = open(path, "a", encoding="utf-8", newline="")
        if self._fh.tell() == 0:
            self._writerow(self.columns)

    def _writerow(self, values) -> None:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(values)
        self._fh.write(buf.getvalue())
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def write(self, row: dict) -> None:
        unknown = [k for k in row if k not in self.columns]
        if unknown:
            raise ValueError(f"row has columns the file does not: {unknown}")
        self._writerow(["" if row.get(c) is None else row.get(c) for c in self.columns])

    def finish(self) -> None:
        """Mark the file complete. The session stays locked until close() (or the process
        ends), so that another launch cannot start a new run meanwhile; a new writer for the
        same session in this process takes the lock over."""
        marker = Path(str(self.path) + ".done")
        marker.write_text("complete\n")
        if self._fh is not None and not self._fh.closed:
            self._fh.close()
        if self._lock is not None and self._lock.owner is self:
            self._lock.parked = True

    def close(self) -> None:
        if self._fh is not None and not self._fh.closed:
            self._fh.close()
        if self._lock is not None:
            _unlock_session(self, self._lock)
            self._lock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
