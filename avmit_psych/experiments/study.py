"""Running a planned study: which list a participant gets, which plan a session runs, and the
record that ties a data file to the plan it followed.

- :func:`assign_list`: participants get lists as they arrive, each to the list with the fewest
  participants so far (ties: the lowest list number), recorded once in the study folder's
  ``participants.csv`` (``participant, list, assigned_at, host``) under a file lock, so two
  sessions starting at once on a shared folder never get the same place twice.
- :func:`session_plan`: the participant's list and the session's planned trials
  (:func:`~avmit_psych.experiments.plan.load_study`).
- :func:`bind_data_file`: the data file's sidecar (``<data file>.json``) records the plan
  file and its SHA-256 when the session starts; a resumed session whose plan file changed since
  is refused, so a changed plan never silently misaligns a half-run session.
- :func:`resume_positions`: the positions already done, checked trial by trial: every row in
  the data file must show the stimulus the plan has at its position.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .. import _atomic
from ..dataset.schema import DatasetError

PARTICIPANTS_FILE = "participants.csv"
PARTICIPANTS_COLUMNS = ["participant", "list", "assigned_at", "host"]


@contextlib.contextmanager
def _locked(path: Path):
    """An exclusive lock on ``path`` for the block (blocking: assignments take milliseconds)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            import fcntl
            fcntl.flock(fd, fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - Windows
            import msvcrt
            msvcrt.locking(fd, msvcrt.LK_LOCK, 1)
        yield
    finally:
        os.close(fd)


def read_assignments(folder) -> pd.DataFrame:
    path = Path(folder) / PARTICIPANTS_FILE
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame(columns=PARTICIPANTS_COLUMNS)
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in PARTICIPANTS_COLUMNS if c not in table.columns]
    if missing:
        raise DatasetError(f"no column '{missing[0]}'", path=path, column=missing[0],
                           fix="this file is written by the experiment; restore it from a "
                               "backup rather than editing it")
    table = table[table["participant"].str.strip() != ""]
    bad = ~table["list"].str.fullmatch(r"\d+")
    if bad.any():
        i = int(bad.to_numpy().nonzero()[0][0])
        raise DatasetError(f"list '{table['list'].iloc[i]}' is not a list number", path=path,
                           row=i + 1, column="list", fix="restore the file from a backup")
    return table


def assign_list(study, participant: str) -> int:
    """The participant's list: the one recorded, else the list with the fewest participants
    so far (ties: the lowest number), recorded now."""
    folder = Path(study.folder)
    n_lists = int(study.design["n_lists"])
    with _locked(folder / ".participants.lock"):
        table = read_assignments(folder)
        mine = table[table["participant"] == participant]
        if len(mine):
            list_id = int(mine["list"].iloc[0])
            if not 1 <= list_id <= n_lists:
                raise DatasetError(f"participant {participant} is recorded on list {list_id}, "
                                   f"but the study has lists 1-{n_lists}",
                                   path=folder / PARTICIPANTS_FILE, column="list",
                                   fix="use the study folder the participant started in")
            return list_id
        counts = table["list"].astype(int).value_counts()
        list_id = min(range(1, n_lists + 1), key=lambda k: (int(counts.get(k, 0)), k))
        with _atomic.appending(folder / PARTICIPANTS_FILE) as (fh, new):
            if new:
                fh.write(",".join(PARTICIPANTS_COLUMNS) + "\n")
            fh.write(f"{participant},{list_id},{time.strftime('%Y-%m-%dT%H:%M:%S')},"
                     f"{socket.gethostname()}\n")
        return list_id


@dataclass
class SessionPlan:
    """One participant's session of a planned study."""

    study: object
    participant: str
    list_id: int
    session: int
    trials: pd.DataFrame
    plan_path: Path
    sha256: str

    @property
    def task(self) -> str:
        return str(self.study.design.get("task", "classify"))


def session_plan(study, participant: str, session: int) -> SessionPlan:
    """The participant's list (assigned on first use) and the trials planned for ``session``."""
    n_sessions = int(study.design["sessions"])
    if not 1 <= int(session) <= n_sessions:
        raise DatasetError(f"session {session} is not in the plan (sessions 1-{n_sessions})",
                           path=Path(study.folder) / "design.json",
                           fix=f"give --session between 1 and {n_sessions}")
    list_id = assign_list(study, participant)
    trials = study.read_plan(list_id, int(session))
    return SessionPlan(study, participant, list_id, int(session), trials,
                       Path(study.plan_path(list_id, int(session))),
                       study.plan_sha256(list_id, int(session)))


def sidecar_path(data_path) -> Path:
    return Path(str(data_path)[:-len(".csv")] + ".json" if str(data_path).endswith(".csv")
                else str(data_path) + ".json")


def bind_data_file(data_path, *, plan_file, plan_sha256: str, resuming: bool,
                   **facts) -> dict:
    """Record (first start) or check (resume) which plan a data file follows.

    The sidecar ``<data file>.json`` gets ``plan_file``, ``plan_sha256`` and ``facts`` (study,
    list, participant, session, task ...) when the session starts. On a resume the recorded
    hash must equal the plan's now, else :class:`DatasetError`: the plan changed since the
    session began, and running on would misalign the data with the plan.
    """
    sidecar = sidecar_path(data_path)
    if sidecar.exists():
        record = _read_sidecar(sidecar)
        if record.get("plan_sha256") != plan_sha256:
            raise DatasetError(
                f"the plan {plan_file} changed since this session began (recorded SHA-256 "
                f"{str(record.get('plan_sha256'))[:12]}..., now {plan_sha256[:12]}...); "
                f"resuming would show trials out of step with the data already recorded",
                path=sidecar, fix="restore the plan the session started with, or start the "
                                   "participant on a new session/study")
        return record
    if resuming:
        raise DatasetError("this data file has trials but no session record, so the plan it "
                           "followed cannot be checked", path=sidecar,
                           fix="restore the .json beside the data file, or use a new --data-dir")
    record = {"plan_file": str(plan_file), "plan_sha256": plan_sha256,
              "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "host": socket.gethostname(),
              **facts}
    _write_sidecar(sidecar, record)
    return record


def _read_sidecar(sidecar: Path) -> dict:
    try:
        return json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise DatasetError(f"unreadable session record ({err})", path=sidecar,
                           fix="restore it from a backup; it ties the data to its plan")


def _write_sidecar(sidecar: Path, record: dict) -> None:
    with _atomic.atomic_path(sidecar) as tmp:
        tmp.write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")


def update_sidecar(data_path, **facts) -> dict:
    """Add ``facts`` to a data file's sidecar (``<data file>.json``; made if absent), keeping
    what it holds (a resumed session's facts replace the earlier launch's); written
    atomically. For facts known only once the session is under way (the audio output)."""
    sidecar = sidecar_path(data_path)
    record = _read_sidecar(sidecar) if sidecar.exists() else {}
    record.update(facts)
    _write_sidecar(sidecar, record)
    return record


def resume_positions(completed: pd.DataFrame, trials: pd.DataFrame, *, path=None) -> set[int]:
    """Positions already run, each checked against the plan: the data row at position p must
    be the plan's stimulus at p (raises :class:`DatasetError` naming the row otherwise)."""
    if completed is None or not len(completed):
        return set()
    key = "position" if "position" in completed.columns else "trial"
    planned = dict(zip(trials["position"].astype(int), trials["stimulus_id"].astype(str)))
    done = set()
    for i, row in enumerate(completed.to_dict("records"), start=1):
        try:
            position = int(str(row[key]).strip())
        except ValueError:
            raise DatasetError(f"'{row[key]}' is not a position", path=path, row=i, column=key,
                               fix="the data file is damaged: restore it from a backup")
        if planned.get(position) != str(row["stimulus_id"]):
            raise DatasetError(
                f"position {position} showed '{row['stimulus_id']}' but the plan has "
                f"'{planned.get(position, 'nothing')}' there", path=path, row=i,
                column="stimulus_id",
                fix="resume with the plan (and config) the session started with")
        done.add(position)
    return done
