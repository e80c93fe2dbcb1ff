"""Per-trial data files that survive crashes: one row per trial, flushed and fsynced.

Files are named ``sub-<id>_ses-<n>_task-<name>_beh.csv`` (``_run-<k>`` from the second run on)
in a data folder and are never overwritten. Opening a participant's session again resumes the
unfinished file (rows already there are kept and their trials skipped); a finished file (it has
a ``<file>.done`` marker) makes a new run instead. A row half-written when the process died is
cut off on reopening, so the file always parses.
"""
from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path

import pandas as pd

from ..dataset.schema import DatasetError

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


class TrialWriter:
    """Append trial rows to the participant's data file, one fsync per row.

    ``writer.completed`` holds the rows already in the file (for resuming); ``write(row)``
    appends one; ``finish()`` marks the file complete.
    """

    def __init__(self, data_dir, participant: str, session, task: str, columns: list[str]):
        self.participant = check_participant(participant)
        self.session = check_session(session)
        self.task = task
        self.columns = list(columns)
        data_dir = Path(data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        run = 1
        while True:
            path = data_path(data_dir, self.participant, self.session, task, run)
            if not path.exists() or not Path(str(path) + ".done").exists():
                break
            run += 1
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
                                       path=path, fix="resume with the same task and config, "
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
        marker = Path(str(self.path) + ".done")
        marker.write_text("complete\n")
        self.close()

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
