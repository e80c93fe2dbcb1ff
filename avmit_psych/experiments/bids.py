"""The experiment's data as a BIDS behavioural dataset, and back.

``python -m avmit_psych.experiments bids --data DIR --out BIDS/`` (or :func:`export_bids`)
reads the data folder of the human-vs-DNN experiment (``sub-<id>_ses-<n>_task-<task>_beh.csv``
trials files with their ``.json`` session records, written by
:class:`~avmit_psych.experiments.datafile.TrialWriter`; the headphone screen's
``task-headphonecheck`` files too) and writes::

    BIDS/
      dataset_description.json   Name, BIDSVersion, DatasetType raw, GeneratedBy avmit_psych
      README.md                  what the dataset is, how it was made, the conventions below
      participants.tsv / .json   participant_id (sub-<label>) and source_participant
      task-<task>_beh.json       per task: TaskName, TaskDescription, Instructions and the
                                 description of every column its files share
      sub-<label>/ses-<label>/beh/sub-<label>_ses-<label>_task-<task>[_run-<k>]_beh.tsv
                                 the trials, tab-separated, ``n/a`` for a missing value
      sub-<label>/ses-<label>/beh/..._beh.json
                                 the session's record (the data file's sidecar: the plan and
                                 its SHA-256, the list, the audio output ...), the source file,
                                 whether the session finished, and any column of that file
                                 only

Every column is described (Description; Units for times: s, ms; Levels for categorical
columns, the levels present in the data) from the tables in
:mod:`avmit_psych.dataset.schema` (``TRIALS_COLUMN_DESCRIPTIONS``,
``HEADPHONE_CHECK_COLUMN_DESCRIPTIONS``); a column no table describes is kept with a generic
description. BIDS labels keep only letters and digits: participant ``P_01`` is ``sub-P01``;
``participants.tsv`` maps each label to the id the experiment recorded (``source_participant``),
which the files' ``participant`` column keeps too. Two ids that become the same label (or
labels differing only in case, which clash on macOS and Windows) are an error, as is a file
holding several participants, sessions or tasks, or a value that is not what its column
holds (a number, true/false). The dataset is written into a temporary folder beside ``--out``
and renamed when complete: an error or an interruption leaves no dataset behind. ``--validate``
runs the official validator (``bids-validator-deno``) on it before it is published.

:func:`read_beh_tsv` reads a ``*_beh.tsv`` back into the trials layout (``n/a`` -> empty, the
source participant ids); ``python -m avmit_psych.analysis compare --humans BIDS/`` uses it.

Why not psychopy-bids
---------------------
The ``psychopy-bids`` plugin (``BIDSHandler``, ``BIDSBehEvent``) is made to log events from
inside a running PsychoPy experiment, one handler per subject, session and task. Tried on this
export (version 2026.1.3) its output passes the validator but does not fit: every description
it writes is a placeholder ("RECOMMENDED. Free-form natural language description.") that we
would overwrite anyway; it asks GitHub for the BIDS and HED versions and downloads the licence
(2-s time-outs offline, a BIDS version that changes with the day of the export); it records
the exporting machine's PsychoPy and operating system as the stimulus presentation; it drops
columns that are empty in every row (``error``, ``list`` in a complete session) and leaves
empty strings instead of ``n/a``; it numbers runs by the files already on disk; and it writes
straight into the dataset, so an error leaves half a dataset. The trials are already recorded
(by :class:`~avmit_psych.experiments.datafile.TrialWriter`), so this module writes the BIDS
files itself: a TSV and a few JSON files each, all checked by the official validator in
``tests/test_bids.py``. (A live experiment that wants to log BIDS events as it runs can still
use the plugin.)
"""
from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import __version__
from .._atomic import fsync_dir, fsync_tree, make_folder
from ..dataset.schema import (BEH_COLUMN_DESCRIPTIONS, GENERIC_COLUMN_DESCRIPTION,
                              HEADPHONE_CHECK_COLUMN_DESCRIPTIONS, HEADPHONE_CHECK_REQUIRED,
                              TRIALS_COLUMN_DESCRIPTIONS, TRIALS_REQUIRED, ColumnDescription,
                              DatasetError, column_descriptions, read_csv)
from . import headphones

#: The BIDS specification the datasets follow (the validator's rules for ``beh`` are those of
#: 1.10 and 1.11 alike).
BIDS_VERSION = "1.10.0"
#: A missing value in a BIDS TSV.
NA = "n/a"
#: The trials contract (ARCHITECTURE.md): the columns compare needs to read a file back.
TRIALS_CONTRACT = TRIALS_REQUIRED
#: Columns a headphone-screen file must have (files from before the Huggins test have no
#: stimulus_seed).
HEADPHONE_REQUIRED = HEADPHONE_CHECK_REQUIRED
DEFAULT_NAME = "AVMIT human-vs-DNN experiment"

#: What the participant was asked (the texts of experiments/human_vs_dnn.py and
#: experiments.headphones; tests/test_bids.py checks they are still the ones shown).
TASKS = {
    "classify": {
        "TaskDescription": "Audiovisual action recognition: a 3-s video of an action (from "
                           "the AVMIT test set, possibly manipulated: sound shifted or noisy, "
                           "pixel noise, sound of another class, one modality only) is shown, "
                           "then the participant picks which of the 16 AVMIT action classes "
                           "it showed (a 4x4 grid of labelled buttons, mouse or keys, with "
                           "confirmation).",
        "Instructions": "Watch and listen to each short video, then answer. Which action was "
                        "it? Click it (or press its key), then OK.",
    },
    "correspondence": {
        "TaskDescription": "Audiovisual correspondence: a 3-s video is shown whose sound "
                           "comes from the same video or, in a semantic swap, from a video of "
                           "another action class; the participant says whether sound and "
                           "picture show the same action (two keys).",
        "Instructions": "Watch and listen to each short video, then answer. Do sound and "
                        "picture show the same action? F = same     J = different",
    },
    "headphonecheck": {
        "TaskDescription": "Headphone screen before the main task: Woods et al. (2017) "
                           "antiphase test and/or Milne et al. (2021) Huggins-pitch test, "
                           "3-alternative forced choice, six trials an attempt.",
        "Instructions": " / ".join(f"{test}: {text}" for test, text in
                                   headphones.INSTRUCTIONS.items()).replace("\n\n", " "),
    },
}

_TRUE = {"true", "1", "yes", "t"}
_FALSE = {"false", "0", "no", "f"}
_RUN = re.compile(r"_run-(\d+)_beh\.csv$")
_TASK_IN_NAME = re.compile(r"_task-([A-Za-z0-9]+)")
_ENTITY = re.compile(r"(?:^|_)(sub|ses|task|run)-([A-Za-z0-9]+)")


# --------------------------------------------------------------------------------------------
# Labels
# --------------------------------------------------------------------------------------------
def bids_label(value) -> str:
    """A BIDS label: the letters and digits of ``value`` (``P_01`` -> ``P01``)."""
    return re.sub(r"[^A-Za-z0-9]", "", str(value).strip())


def _session_value(value) -> str:
    """A session as written (``1``, ``1.0`` and ``01`` are one session)."""
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if np.isfinite(number) and number == int(number) else text


# --------------------------------------------------------------------------------------------
# Reading the data folder
# --------------------------------------------------------------------------------------------
@dataclass
class SourceFile:
    """One data file of the experiment, checked, with where it goes in the dataset."""

    path: Path
    table: pd.DataFrame
    participant: str
    session: str
    task: str
    run: int
    record: dict = field(default_factory=dict)
    complete: bool = False
    status: str = ""

    @property
    def subject_label(self) -> str:
        return bids_label(self.participant)

    @property
    def session_label(self) -> str:
        return bids_label(self.session)

    @property
    def task_label(self) -> str:
        return bids_label(self.task)


def _single_value(table: pd.DataFrame, column: str, path: Path) -> str:
    values = table[column].astype(str).str.strip()
    first = values.iloc[0]
    other = (values != first).to_numpy()
    if first == "":
        raise DatasetError(f"empty {column}", path=path, row=1, column=column,
                           fix=f"every row needs the {column} (the experiment writes it)")
    if other.any():
        i = int(np.flatnonzero(other)[0])
        raise DatasetError(
            f"the file holds more than one {column} ('{first}' in row 1, '{values.iloc[i]}' "
            f"here)", path=path, row=i + 1, column=column,
            fix=f"one participant, session and task per file, as the experiment writes them: "
                f"split the file by {column}")
    return first


def _check_kinds(table: pd.DataFrame, descriptions: dict, path: Path) -> None:
    """Numbers where a number belongs and true/false where a truth value does."""
    for column in table.columns:
        desc = descriptions.get(column)
        if desc is None or desc.kind not in ("number", "integer", "bool"):
            continue
        text = table[column].astype(str).str.strip()
        if desc.kind == "bool":
            bad = ~text.str.lower().isin(_TRUE | _FALSE | {""})
            expected, fix = "True or False", "write True or False (or 1/0), or leave it empty"
        else:
            numbers = pd.to_numeric(text.where(text != "", "nan"), errors="coerce")
            bad = numbers.isna() & ~text.str.lower().isin({"", "nan"})
            if desc.kind == "integer":
                finite = numbers.notna() & np.isfinite(numbers.fillna(0))
                bad |= finite & (numbers.fillna(0) != np.round(numbers.fillna(0)))
                expected = "a whole number"
            else:
                expected = "a number"
            fix = "correct that cell (leave it empty when the value is missing)"
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise DatasetError(f"expected {expected}, got '{table[column].iloc[i]}'", path=path,
                               row=i + 1, column=column, fix=fix)


def _missing(table: pd.DataFrame, column: str, path: Path, fix: str):
    import difflib
    known = set(TRIALS_COLUMN_DESCRIPTIONS) | set(HEADPHONE_CHECK_COLUMN_DESCRIPTIONS)
    unknown = [str(c) for c in table.columns if c not in known]   # a misspelt name, maybe
    close = difflib.get_close_matches(column, unknown, n=1, cutoff=0.6)
    raise DatasetError(f"required column '{column}' is missing", path=path, column=column,
                       fix=f"a column is named '{close[0]}': rename it to '{column}'" if close
                       else fix)


def _task_of(table: pd.DataFrame, path: Path) -> str:
    if "task" in table.columns:
        return _single_value(table, "task", path)
    match = _TASK_IN_NAME.search(path.name)   # the headphone screen's files name their task
    if match and match.group(1) in BEH_COLUMN_DESCRIPTIONS:
        return match.group(1)
    _missing(table, "task", path, f"give the experiment's trials files (columns "
                                  f"{', '.join(TRIALS_CONTRACT)})")


def read_source_file(path) -> SourceFile | None:
    """One data file of the experiment, checked; None when it holds no trials (a session that
    ended before its first trial leaves a header-only file)."""
    path = Path(path)
    try:
        table = read_csv(path)
    except DatasetError as err:
        if err.problem in ("the file is empty", "the file has a header but no data rows"):
            return None
        raise
    if "participant" not in table.columns:
        _missing(table, "participant", path, "give the experiment's data files (each row names "
                                             "its participant), not other CSVs")
    task = _task_of(table, path)
    required = HEADPHONE_REQUIRED if task == "headphonecheck" else TRIALS_CONTRACT
    missing = [c for c in required if c not in table.columns]
    if missing:
        _missing(table, missing[0], path, f"a {task} file has the columns "
                                          f"{', '.join(required)}")
    descriptions = column_descriptions(task)
    _check_kinds(table, descriptions, path)
    participant = _single_value(table, "participant", path)
    session = _session_value(_single_value(table, "session", path))
    for column, value in (("participant", participant), ("session", session),
                          ("task", task)):
        if not bids_label(value):
            raise DatasetError(f"{column} '{value}' has no letter or digit, so it has no BIDS "
                               f"label", path=path, row=1, column=column,
                               fix=f"give the {column} a name with letters or digits")
    run = int(_RUN.search(path.name).group(1)) if _RUN.search(path.name) else 1
    from .study import sidecar_path
    record = {}
    sidecar = sidecar_path(path)
    if sidecar.exists():
        try:
            record = json.loads(sidecar.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise DatasetError(f"unreadable session record ({err})", path=sidecar,
                               fix="restore it from a backup (it ties the data to its plan)")
        if not isinstance(record, dict):
            raise DatasetError("the session record is not a JSON object", path=sidecar,
                               fix="restore it from a backup")
    status_file = path.with_name(f"sub-{participant}_ses-{session}_{task}-status.txt")
    status = status_file.read_text(encoding="utf-8").strip() if status_file.exists() else ""
    return SourceFile(path, table, participant, session, task, run, record,
                      Path(str(path) + ".done").exists(), status)


def read_data_folder(data_dir) -> tuple[list[SourceFile], list[str]]:
    """Every data file under ``data_dir`` (CSV files, recursively, hidden ones left out),
    checked; and notes on the files left out (no trials)."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DatasetError("not a folder" if data_dir.exists() else "folder not found",
                           path=data_dir, fix="give the experiment's data folder (--data-dir "
                                              "of the experiment; a study's STUDY/data)")
    paths = sorted(p for p in data_dir.rglob("*.csv")
                   if not any(part.startswith(".") for part in p.relative_to(data_dir).parts))
    if not paths:
        raise DatasetError("the folder holds no CSV files", path=data_dir,
                           fix="give the experiment's data folder (a study's STUDY/data)")
    files, notes = [], []
    for path in paths:
        source = read_source_file(path)
        if source is None:
            notes.append(f"{path}: left out, no trials (a session that ended before its first "
                         f"trial)")
            continue
        files.append(source)
    if not files:
        raise DatasetError("no data file holds a trial", path=data_dir,
                           fix="give the data folder of sessions that ran")
    _check_labels(files)
    return files, notes


def _check_labels(files: list[SourceFile]) -> None:
    """Two source ids never share a BIDS label (nor labels that differ only in case), and two
    files never share a BIDS file name."""
    for kind, key, scope in (("participant", "participant", lambda f: ()),
                             ("session", "session", lambda f: (f.participant,)),
                             ("task", "task", lambda f: ())):
        seen: dict[tuple, SourceFile] = {}
        for f in files:
            value = getattr(f, key)
            label = (*scope(f), bids_label(value).lower())
            first = seen.setdefault(label, f)
            if getattr(first, key) != value:
                a, b = bids_label(getattr(first, key)), bids_label(value)
                clash = f"both become the BIDS label '{b}'" if a == b else \
                    f"become the BIDS labels '{a}' and '{b}', which clash on macOS and Windows"
                raise DatasetError(
                    f"{kind}s '{getattr(first, key)}' ({first.path.name}) and '{value}' {clash}",
                    path=f.path, row=1, column=key,
                    fix=f"BIDS labels keep only letters and digits (case aside): give one of "
                        f"the two a {kind} id that differs in its letters or digits")
    groups: dict[tuple, list[SourceFile]] = {}
    for f in files:
        groups.setdefault((f.subject_label, f.session_label, f.task_label), []).append(f)
    for group in groups.values():
        runs: dict[int, SourceFile] = {}
        for f in sorted(group, key=lambda f: str(f.path)):
            if f.run in runs:
                raise DatasetError(
                    f"this file and {runs[f.run].path} are both run {f.run} of participant "
                    f"{f.participant}, session {f.session}, task {f.task}", path=f.path,
                    fix="keep one copy of the session's data file (or give the data folder "
                        "of one study)")
            runs[f.run] = f


# --------------------------------------------------------------------------------------------
# Sidecars from the schema's column descriptions
# --------------------------------------------------------------------------------------------
def _is_true(value: str) -> bool | None:
    text = value.strip().lower()
    return True if text in _TRUE else (False if text in _FALSE else None)


def column_sidecar(name: str, task: str, values=()) -> dict:
    """A column's BIDS description (Description, Units, Levels) for a file of ``task``, with
    Levels for the ``values`` present (missing values left out)."""
    desc: ColumnDescription | None = column_descriptions(task).get(name)
    if desc is None:
        return {"Description": GENERIC_COLUMN_DESCRIPTION.format(name=name)}
    out = {"Description": desc.task_description.get(task, desc.description)}
    if desc.units:
        out["Units"] = desc.units
    present = sorted({str(v) for v in values} - {"", NA})
    if desc.kind == "bool" and present:
        out["Levels"] = {v: desc.levels["True" if _is_true(v) else "False"] for v in present}
    elif desc.kind == "category" and present:
        levels = desc.task_levels.get(task, desc.levels)
        known = [v for v in levels if v in present]
        other = [v for v in present if v not in levels]
        out["Levels"] = {v: levels[v] for v in known}
        for v in other:
            template = levels.get("*", "'{value}' (a value not described in "
                                       "avmit_psych.dataset.schema)")
            out["Levels"][v] = template.format(value=v)
    return out


def _tsv_cell(value: str, numeric: bool) -> str:
    text = str(value)
    if text.strip() == "" or (numeric and text.strip().lower() == "nan"):
        return NA
    return re.sub(r"[\t\r\n]+", " ", text)


def _tsv_table(source: SourceFile) -> pd.DataFrame:
    descriptions = column_descriptions(source.task)
    out = {}
    for column in source.table.columns:
        desc = descriptions.get(column)
        numeric = desc is not None and desc.kind in ("number", "integer")
        out[column] = [_tsv_cell(v, numeric) for v in source.table[column].astype(str)]
    return pd.DataFrame(out, columns=list(source.table.columns))


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------
@dataclass
class BidsExport:
    """What :func:`export_bids` wrote: the dataset folder, its ``_beh.tsv`` files, the
    participants table (participant_id, source_participant), notes on files left out, and
    the validator's findings when it ran (``{'errors': [...], 'warnings': [...]}``)."""

    out: Path
    files: list[Path]
    participants: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    validation: dict | None = None


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)


def _write_json(path: Path, data: dict) -> None:
    _write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def _write_tsv(path: Path, table: pd.DataFrame) -> None:
    lines = ["\t".join(table.columns)]
    lines += ["\t".join(row) for row in table.itertuples(index=False, name=None)]
    _write_text(path, "\n".join(lines) + "\n")


def _file_stem(f: SourceFile, with_run: bool) -> str:
    run = f"_run-{f.run}" if with_run else ""
    return f"sub-{f.subject_label}_ses-{f.session_label}_task-{f.task_label}{run}_beh"


def _readme(name: str, files: list[SourceFile], participants: pd.DataFrame) -> str:
    tasks = sorted({f.task for f in files})
    renamed = participants[participants["participant_id"].str[4:] !=
                           participants["source_participant"]]
    lines = [
        f"# {name}", "",
        "Behavioural data of the AVMIT human-vs-DNN experiment (avmit_psych), one row per "
        "trial, in BIDS (https://bids-specification.readthedocs.io).", "",
        f"- Participants: {len(participants)}; sessions: "
        f"{len({(f.participant, f.session) for f in files})}; data files: {len(files)}",
        f"- Tasks: {', '.join(tasks)} (TaskDescription and Instructions in "
        "task-<task>_beh.json)",
        "- Every column is described in task-<task>_beh.json (and, for a column of one file "
        "only, in that file's _beh.json): Description, Units (s, ms), Levels.",
        "- `n/a` marks a missing value (e.g. no response because the playback failed).",
        "- Participant labels keep only the letters and digits of the ids the experiment "
        "recorded; participants.tsv (source_participant) and each file's participant column "
        "keep the recorded id" + (f" ({len(renamed)} id(s) changed)." if len(renamed) else "."),
        "- Each data file's _beh.json holds its session record (SessionRecord: the plan file "
        "and its SHA-256, the list, the audio output), the source file and whether the "
        "session finished (SessionComplete, SessionStatus).", "",
        f"Exported by `python -m avmit_psych.experiments bids` (avmit_psych {__version__}) on "
        f"{time.strftime('%Y-%m-%d')}. Read it back with "
        "`python -m avmit_psych.analysis compare --humans <this folder>` (one task at a "
        "time: give that task's `_beh.tsv` files when the dataset holds two).", ""]
    return "\n".join(lines)


def write_dataset(files: list[SourceFile], folder: Path, *, name: str = DEFAULT_NAME,
                  authors=(), license_id: str | None = None,
                  data_dir: Path | None = None) -> tuple[list[Path], pd.DataFrame]:
    """Write the BIDS files of ``files`` into ``folder`` (which must be empty or absent)."""
    folder.mkdir(parents=True, exist_ok=True)
    description = {"Name": name, "BIDSVersion": BIDS_VERSION, "DatasetType": "raw"}
    if authors:
        description["Authors"] = list(authors)
    if license_id:
        description["License"] = license_id
    description["GeneratedBy"] = [{
        "Name": "avmit_psych", "Version": __version__,
        "Description": "python -m avmit_psych.experiments bids: the experiment's trials CSVs "
                       "as a BIDS behavioural dataset"}]
    _write_json(folder / "dataset_description.json", description)

    participants = (pd.DataFrame({"participant_id": [f"sub-{f.subject_label}" for f in files],
                                  "source_participant": [f.participant for f in files]})
                    .drop_duplicates().sort_values("participant_id").reset_index(drop=True))
    _write_tsv(folder / "participants.tsv", participants)
    _write_json(folder / "participants.json", {
        "participant_id": {"Description": "The participant's BIDS label: the letters and "
                                          "digits of the id the experiment recorded."},
        "source_participant": {"Description": "The participant id the experiment recorded "
                                              "(the data files' participant column)."}})
    _write_text(folder / "README.md", _readme(name, files, participants))

    written = []
    for task in sorted({f.task for f in files}):
        group = [f for f in files if f.task == task]
        tables = {id(f): _tsv_table(f) for f in group}
        shared = [c for c in tables[id(group[0])].columns
                  if all(c in tables[id(f)].columns for f in group)]

        def values(column, fs):
            return pd.concat([tables[id(f)][column] for f in fs if column in tables[id(f)]])

        task_sidecar = {"TaskName": task, **TASKS.get(task, {})}
        task_sidecar.update({c: column_sidecar(c, task, values(c, group)) for c in shared})
        _write_json(folder / f"task-{bids_label(task)}_beh.json", task_sidecar)
        many_runs = {}
        for f in group:
            key = (f.subject_label, f.session_label)
            many_runs[key] = many_runs.get(key, 0) + 1
        for f in group:
            with_run = many_runs[(f.subject_label, f.session_label)] > 1 or f.run > 1
            beh = folder / f"sub-{f.subject_label}" / f"ses-{f.session_label}" / "beh"
            stem = _file_stem(f, with_run)
            table = tables[id(f)]
            _write_tsv(beh / f"{stem}.tsv", table)
            sidecar = {c: column_sidecar(c, task, table[c]) for c in table.columns
                       if c not in shared}
            source = f.path.relative_to(data_dir).as_posix() if data_dir is not None and \
                f.path.is_relative_to(data_dir) else f.path.name
            sidecar["SourceFile"] = source
            sidecar["SessionComplete"] = f.complete
            if f.status:
                sidecar["SessionStatus"] = f.status
            if f.record:
                sidecar["SessionRecord"] = f.record
            _write_json(beh / f"{stem}.json", sidecar)
            written.append(beh / f"{stem}.tsv")
    return written, participants


def export_bids(data_dir, out, *, name: str = DEFAULT_NAME, authors=(),
                license_id: str | None = None, force: bool = False,
                validate: bool = False) -> BidsExport:
    """Export the experiment's data folder as a BIDS behavioural dataset at ``out``.

    Parameters
    ----------
    data_dir : str or Path
        The experiment's data folder (``--data-dir``; a planned study's ``STUDY/data``).
    out : str or Path
        The dataset folder to create; an existing non-empty folder is refused unless ``force``
        (and it is a BIDS dataset: it has ``dataset_description.json``).
    name, authors, license_id
        ``Name``, ``Authors`` and ``License`` (an SPDX id, e.g. ``CC0-1.0``) of
        ``dataset_description.json``.
    validate : bool
        Run ``bids-validator-deno`` on the dataset before publishing it; any error stops the
        export (nothing is written) and is raised as :class:`DatasetError`.

    Returns
    -------
    BidsExport

    Examples
    --------
    >>> export = export_bids("study/data", "study_bids")          # doctest: +SKIP
    >>> export.participants                                        # doctest: +SKIP
      participant_id source_participant
    0       sub-P01                P01
    """
    data_dir, out = Path(data_dir), Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if not force:
            raise DatasetError("already exists" if out.is_dir() else "exists and is a file",
                               path=out, fix="give a new --out folder, or --force to replace "
                                             "that BIDS dataset")
        if not (out / "dataset_description.json").exists():
            raise DatasetError("is not a BIDS dataset (no dataset_description.json), so "
                               "--force will not replace it", path=out,
                               fix="give a new --out folder")
    if data_dir.resolve() == out.resolve() or data_dir.resolve() in out.resolve().parents:
        raise DatasetError("the dataset would be written inside the data folder", path=out,
                           fix="give an --out folder outside --data")
    files, notes = read_data_folder(data_dir)
    make_folder(out.parent)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.staging-", dir=out.parent))
    try:
        written, participants = write_dataset(files, staging, name=name, authors=authors,
                                              license_id=license_id, data_dir=data_dir)
        validation = None
        if validate:
            validation = validate_dataset(staging)
            if validation["errors"]:
                first = validation["errors"][0]
                raise DatasetError(
                    f"the BIDS validator found {len(validation['errors'])} error(s), first: "
                    f"{first}", path=out, fix="please report it (the export should be valid); "
                                              "nothing was written")
        fsync_tree(staging)
        if out.exists() and any(out.iterdir()):   # --force: the old dataset goes last
            old = out.with_name(f".{out.name}.replaced-{os.getpid()}")
            os.rename(out, old)
            try:
                os.rename(staging, out)
            except BaseException:
                os.rename(old, out)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            if out.exists():
                out.rmdir()
            os.rename(staging, out)
        fsync_dir(out.parent)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    files_out = [out / p.relative_to(staging) for p in written]
    return BidsExport(out, files_out, participants, notes, validation)


# --------------------------------------------------------------------------------------------
# The official validator
# --------------------------------------------------------------------------------------------
def validate_dataset(folder) -> dict:
    """Run the official BIDS validator (``bids-validator-deno --format json``) on ``folder``:
    ``{'errors': [...], 'warnings': [...]}``, each issue as ``CODE sub-code: location``."""
    exe = shutil.which("bids-validator-deno")
    if exe is None:
        venv = Path(sys.executable).with_name("bids-validator-deno")
        exe = str(venv) if venv.exists() else None
    if exe is None:
        raise DatasetError("the BIDS validator is not installed",
                           fix="pip install bids-validator-deno (it runs offline)")
    done = subprocess.run([exe, str(folder), "--format", "json"], capture_output=True,
                          text=True, timeout=600)
    try:
        report = json.loads(done.stdout)
    except ValueError:
        raise DatasetError(f"the BIDS validator failed (exit {done.returncode}): "
                           f"{(done.stderr or done.stdout).strip()[:300]}", path=folder)
    found = {"errors": [], "warnings": []}
    for issue in report.get("issues", {}).get("issues", []):
        text = issue.get("code", "?")
        if issue.get("subCode"):
            text += f" {issue['subCode']}"
        text += f": {issue.get('location', '')}"
        kind = "errors" if issue.get("severity") == "error" else "warnings"
        if text not in found[kind]:
            found[kind].append(text)
    return found


# --------------------------------------------------------------------------------------------
# Reading a dataset back
# --------------------------------------------------------------------------------------------
def is_bids_dataset(folder) -> bool:
    return Path(folder, "dataset_description.json").is_file()


def dataset_root(path) -> Path | None:
    """The BIDS dataset a file belongs to (the nearest folder above it with a
    ``dataset_description.json``), or None."""
    for parent in Path(path).resolve().parents:
        if is_bids_dataset(parent):
            return parent
    return None


def beh_files(folder, *, one_task: bool = False) -> list[Path]:
    """The ``*_beh.tsv`` files of a BIDS dataset, sorted. ``one_task``: refuse a dataset whose
    trials (other than the headphone screen's) are of several tasks, naming the files of
    one (compare reads one task at a time)."""
    folder = Path(folder)
    files = sorted(p for p in folder.glob("sub-*/**/*_beh.tsv")
                   if not any(part.startswith(".") for part in p.relative_to(folder).parts))
    if one_task:
        tasks = sorted({m.group(1) for f in files if (m := _TASK_IN_NAME.search(f.name))}
                       - set(BEH_COLUMN_DESCRIPTIONS))
        if len(tasks) > 1:
            raise DatasetError(
                f"the BIDS dataset holds trials of {len(tasks)} tasks ({', '.join(tasks)})",
                path=folder, fix=f"compare one task at a time: give that task's files, e.g. "
                                 f"{folder}/sub-*/ses-*/beh/*_task-{tasks[0]}_beh.tsv")
    return files


def _source_ids(root: Path | None) -> dict[str, str]:
    if root is None or not (root / "participants.tsv").exists():
        return {}
    table = _read_tsv(root / "participants.tsv")
    if "participant_id" not in table.columns or "source_participant" not in table.columns:
        return {}
    return dict(zip(table["participant_id"].str.removeprefix("sub-"),
                    table["source_participant"]))


def _read_tsv(path: Path) -> pd.DataFrame:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise DatasetError("not UTF-8 text", path=path, fix="save the file as UTF-8")
    if not text.strip():
        raise DatasetError("the file is empty", path=path,
                           fix="give a TSV file with a header row and data rows")
    import io
    try:
        table = pd.read_csv(io.StringIO(text), sep="\t", dtype=str, keep_default_na=False,
                            na_filter=False, quoting=csv.QUOTE_NONE)
    except pd.errors.ParserError as err:
        raise DatasetError(f"malformed TSV ({str(err).strip()})", path=path,
                           fix="every row needs as many tab-separated fields as the header")
    table.columns = [str(c).strip() for c in table.columns]
    return table.replace(NA, "")


def read_beh_tsv(path) -> pd.DataFrame:
    """A BIDS ``*_beh.tsv`` as the experiment's trials table: ``n/a`` read as empty, and the
    ``participant``, ``session`` and ``task`` columns restored from the file name (and
    ``participants.tsv``'s ``source_participant``) when the file has none.

    ``df.attrs['path']`` is set, as :func:`avmit_psych.dataset.schema.read_csv` does.
    """
    path = Path(path)
    if not path.exists():
        raise DatasetError("file not found", path=path, fix="check the path")
    table = _read_tsv(path)
    entities = dict(_ENTITY.findall(path.name))
    if "participant" not in table.columns and "sub" in entities:
        label = entities["sub"]
        table["participant"] = _source_ids(dataset_root(path)).get(label, label)
    if "session" not in table.columns and "ses" in entities:
        table["session"] = entities["ses"]
    if "task" not in table.columns and "task" in entities:
        table["task"] = entities["task"]
    table.attrs["path"] = str(path)
    return table


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------
HELP = """\
Export the experiment's data folder as a BIDS behavioural dataset (validated by the official
BIDS validator in the tests).

  python -m avmit_psych.experiments bids --data study/data --out study_bids
  python -m avmit_psych.experiments bids --data data --out bids --name "AVMIT pilot" \\
      --author "A. Researcher" --validate

Reads every trials CSV under --data (the human-vs-DNN experiment's, and the headphone
screen's), with each file's session record (.json), and writes
sub-<label>/ses-<label>/beh/*_beh.tsv with JSON sidecars describing every column (units,
levels), task-<task>_beh.json, participants.tsv (the BIDS label beside the recorded id),
dataset_description.json and a README. Labels keep only letters and digits (P_01 -> P01); two
ids with the same label are refused. Nothing is written unless the whole dataset is.

Read it back with: python -m avmit_psych.analysis compare --humans study_bids
"""


def add_parser(sub) -> None:
    from .._cli import Formatter
    p = sub.add_parser("bids", formatter_class=Formatter, description=HELP,
                       help="export the data as a BIDS behavioural dataset")
    p.add_argument("--data", required=True, type=Path, metavar="DIR",
                   help="the experiment's data folder (a study's STUDY/data)")
    p.add_argument("--out", required=True, type=Path, metavar="BIDS",
                   help="the dataset folder to create")
    p.add_argument("--name", default=DEFAULT_NAME, help="the dataset's Name")
    p.add_argument("--author", action="append", default=[], metavar="NAME",
                   help="an author of the dataset (repeat for several)")
    p.add_argument("--license", default=None, metavar="ID",
                   help="the data's licence (an SPDX id, e.g. CC0-1.0 or CC-BY-4.0)")
    p.add_argument("--force", action="store_true",
                   help="replace an existing BIDS dataset at --out")
    p.add_argument("--validate", action="store_true",
                   help="run bids-validator-deno before publishing the dataset")
    p.set_defaults(handler=_bids_command)


def _bids_command(args) -> int:
    export = export_bids(args.data, args.out, name=args.name, authors=args.author,
                         license_id=args.license, force=args.force, validate=args.validate)
    for note in export.notes:
        print(f"note: {note}")
    renamed = export.participants[export.participants["participant_id"].str[4:] !=
                                  export.participants["source_participant"]]
    for row in renamed.itertuples(index=False):
        print(f"participant {row.source_participant} -> {row.participant_id}")
    print(f"wrote {export.out}: {len(export.files)} data file(s) of "
          f"{len(export.participants)} participant(s)")
    if export.validation is not None:
        warnings = export.validation["warnings"]
        kinds: dict[str, int] = {}
        for w in warnings:   # one line per kind of warning, with the files it concerns
            kinds[w.split(":")[0]] = kinds.get(w.split(":")[0], 0) + 1
        print(f"BIDS validator: no errors, {len(warnings)} warning(s)"
              + (": " + "; ".join(f"{k} ({n} file(s))" for k, n in kinds.items())
                 if warnings else ""))
    return 0
