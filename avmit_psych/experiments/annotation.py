"""The AVMIT annotation task as plain Python: trials, blocks, sessions and their data rows.

The paper's procedure (facts.md "Annotation screen", "Ratings"): the label at the top, the
video bottom-left, the bonus counter bottom-right; after the video the rater presses 1 (event
absent), 2 (present, not the most prominent), 3 (present and most prominent) or space to replay
(any number of times). A key pressed while the video plays brings up a full-screen warning and
is not taken as the answer. A rating that matches a ground-truth video's rating adds the bonus
to the counter, which carries over across sessions.

A trial talks to the screen only through an ``io`` object (``AnnotationIO`` protocol below):
the PsychoPy presenter (:class:`.screens.AnnotationScreen`) implements it with a window, the
tests with a fake. So the logic and the data rows are tested without a display (jsPsych's
plugin model): :class:`AnnotationTrial` is one video rated (what is shown: the label, the
video, the counter; how it is scored: the rating against the expected rating in training and
screening, against the ground truth for the bonus; what is recorded: its row,
``schema.ANNOTATION_ROW_COLUMNS``), and :class:`AnnotationSession` runs a participant's
session (instructions, training, screening, then main trials from the assignment database
with breaks; resuming where the data files end). The script ``experiments/annotation_task.py``
only parses its arguments, reads the config, opens the window and runs the session.
"""
from __future__ import annotations

import csv
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from ..dataset import schema
from ..dataset.schema import DatasetError
from .assignment import LeaseLost, Video
from .datafile import TrialWriter
from .player import PLAYBACK_COLUMNS
from .session import Aborted, run_with_status

RATING_KEYS = ("1", "2", "3")
REPLAY_KEY = "space"
QUIT_KEY = "escape"
#: The raw-ratings columns of the data contract, then our task's additions.
ROW_COLUMNS = list(schema.ANNOTATION_ROW_COLUMNS)


class AnnotationIO(Protocol):
    def play(self, video: Video, *, label: str, bonus_pence: int) -> dict:
        """Play the video with the label and counter shown; return the playback report row
        plus ``early_keys``: keys pressed while it played, and ``ended_at`` (clock time)."""

    def show_early_warning(self) -> None: ...

    def wait_key(self, keys) -> tuple[str, float]:
        """Wait for one of ``keys`` after the video; (key, clock time)."""

    def show_feedback(self, text: str) -> None: ...

    def show_message(self, text: str, *, wait: bool = True) -> None: ...


@dataclass
class BonusCounter:
    pence_per_match: int = 10
    matches: int = 0

    @property
    def pence(self) -> int:
        return self.matches * self.pence_per_match

    def text(self) -> str:
        return f"Bonus: £{self.pence / 100:.2f}"


@dataclass
class AnnotationTrial:
    """One video rated; returns the trial's data row."""

    video: Video
    block: str
    expected_rating: int | None = None   # training and screening: the author's rating
    reasoning: str = ""                  # training: shown after the answer

    def run(self, io: AnnotationIO, *, participant: str, session: int, trial: int,
            bonus: BonusCounter) -> dict:
        replays = early = 0
        while True:
            report = dict(io.play(self.video, label=self.video.label, bonus_pence=bonus.pence))
            early_keys = report.pop("early_keys", []) or []
            ended_at = report.pop("ended_at")
            if any(k == QUIT_KEY for k in early_keys):
                raise Aborted
            if early_keys:
                early += len(early_keys)
                io.show_early_warning()
            key, t = io.wait_key(RATING_KEYS + (REPLAY_KEY, QUIT_KEY))
            if key == QUIT_KEY:
                raise Aborted
            if key == REPLAY_KEY:
                replays += 1
                continue
            break
        rating = int(key)
        gt = self.video.ground_truth
        match = self.block == "main" and gt is not None and int(gt) == rating
        if match:
            bonus.matches += 1
        row = {
            "filename": self.video.filename, "AVMIT_label": self.video.label,
            "MIT_label": self.video.mit_label, "video_location": self.video.video_location,
            "rating": rating, "participant": participant, "session": session, "trial": trial,
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S"), "rt": round(t - ended_at, 4),
            "replays": replays, "ground_truth": "" if gt is None else int(gt),
            "block": self.block, "early_presses": early, "bonus_match": match,
            "bonus_pence": bonus.pence, **{k: report.get(k, "") for k in PLAYBACK_COLUMNS},
            "expected_rating": "" if self.expected_rating is None else self.expected_rating,
            "correct": "" if self.expected_rating is None else rating == self.expected_rating,
            "error": "",
        }
        if self.block == "training" and self.expected_rating is not None:
            io.show_feedback(f"You rated {rating}; the expected rating is "
                             f"{self.expected_rating}. {self.reasoning}".strip())
        return row


@dataclass
class ScreeningResult:
    n_correct: int
    n_trials: int
    pass_mark: int

    @property
    def passed(self) -> bool:
        return self.n_correct >= self.pass_mark


def screening_result(rows: list[dict], pass_mark: int = 38) -> ScreeningResult:
    """Screening: one video per class rated; pass with ``pass_mark`` of them (paper: 38/41)
    matching the author's ratings."""
    n_correct = sum(1 for r in rows if str(r.get("correct")) == "True")
    return ScreeningResult(n_correct, len(rows), pass_mark)


# --------------------------------------------------------------------------------------------
# A session: training, screening, then main trials from the assignment database
# --------------------------------------------------------------------------------------------
#: The data files of a session, by their task name (``sub-<id>_ses-<n>_task-<name>_beh.csv``),
#: in the order their locks are taken (the main file first: a refused launch names it).
SESSION_FILES = ("annotation", "annotationtraining", "annotationscreening")
BREAK_MESSAGE = "Time for a break. {n} videos rated so far."
FINISHED_MESSAGE = "Thank you! This session is complete."
SCREENING_FAILED_MESSAGE = "Screening: {n_correct} of {n_trials} matched. Thank you for your time."


@dataclass(frozen=True)
class AnnotationSettings:
    """The task's settings (``experiments/annotation.yaml``; defaults: the paper's).

    ``bonus_pence`` per rating that matches a ground-truth video; a break after every
    ``trials_per_block`` main trials; at most ``max_trials`` main trials a session (None: until
    the database has no video left for the participant); ``ground_truth_rate``: the share of
    main trials that ask for a ground-truth video; screening is passed with
    ``screening_pass_mark`` of ``screening_of`` videos (scaled to the screening set's size).
    """

    raters_per_video: int = 3
    bonus_pence: int = 10
    trials_per_block: int = 50
    max_trials: int | None = None
    ground_truth_rate: float = 0.05
    screening_pass_mark: int = 38
    screening_of: int = 41

    @classmethod
    def from_config(cls, cfg: dict, *, path=None) -> "AnnotationSettings":
        """The settings of a config mapping (other keys ignored); a value that is not a
        number raises :class:`DatasetError` naming its key."""
        values = {}
        for name, kind in (("raters_per_video", int), ("bonus_pence", int),
                           ("trials_per_block", int), ("max_trials", int),
                           ("ground_truth_rate", float), ("screening_pass_mark", int),
                           ("screening_of", int)):
            value = cfg.get(name)
            if value in (None, ""):
                continue
            try:
                values[name] = kind(value)
            except (TypeError, ValueError):
                raise DatasetError(f"{name} {value!r} is not a number", path=path, column=name,
                                   fix=f"e.g. {name}: {getattr(cls(), name) or 100}") from None
        return cls(**values)

    def pass_mark(self, n_screening: int) -> int:
        """The screening pass mark for ``n_screening`` videos: ``screening_pass_mark`` of
        ``screening_of``, scaled and rounded up (38 of 41 stays 38)."""
        return math.ceil(self.screening_pass_mark * n_screening / self.screening_of - 1e-9)


def video_from_row(row: dict) -> Video:
    """A pool, training or screening table's row as a :class:`~.assignment.Video`."""
    gt = row.get("ground_truth", "")
    return Video(str(row["filename"]), str(row["AVMIT_label"]), str(row["MIT_label"]),
                 str(row["video_location"]), str(row["path"]),
                 None if gt in ("", None) or pd.isna(gt) else int(gt))


def load_tables(data_dir, *, pool_csv=None, training_csv=None, screening_csv=None,
                videos_root=None) -> dict[str, pd.DataFrame]:
    """The pool, training and screening tables with absolute video paths.

    Without a ``pool_csv`` that exists, the demo pool (built once in
    ``<data_dir>/demo_pool``) and its training and screening sets. ``path`` is relative to
    ``videos_root`` (default: the pool's folder). A table whose file is not given is empty;
    a missing video file raises :class:`DatasetError`.
    """
    from .demo_pool import ensure_demo_pool
    given = {"pool": pool_csv, "training": training_csv, "screening": screening_csv}
    if pool_csv is None or not Path(pool_csv).exists():
        root = Path(data_dir) / "demo_pool"
        given = ensure_demo_pool(root, seed=0)
    else:
        root = videos_root or Path(pool_csv).parent
    out = {}
    for key, path in given.items():
        if path is None or not Path(path).exists():
            out[key] = pd.DataFrame()
            continue
        table = pd.read_csv(path, keep_default_na=False)
        table["path"] = [str(p if Path(p).is_absolute() else Path(root) / p)
                         for p in table["path"]]
        missing = [p for p in table["path"] if not Path(p).exists()]
        if missing:
            raise DatasetError(f"{len(missing)} video files are missing (first: {missing[0]})",
                               path=path, column="path", fix="check videos_root in the config")
        out[key] = table
    return out


def true_ratings(tables: dict[str, pd.DataFrame]) -> dict[str, int]:
    """The hidden ``true_rating`` of every video that has one (the demo pool's; only a
    simulated participant uses them)."""
    out = {}
    for table in tables.values():
        if "true_rating" in table:
            out.update(zip(table["filename"], table["true_rating"].astype(int)))
    return out


def log_failed_video(data_dir, participant: str, session: int, video: Video, err) -> Path:
    """Append a video that could not be played (or whose rating was not kept) to the
    session's error log, ``sub-<id>_ses-<n>_annotation-errors.csv`` (fsynced)."""
    path = Path(data_dir) / f"sub-{participant}_ses-{session}_annotation-errors.csv"
    new = not path.exists()
    with open(path, "a", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        if new:
            w.writerow(["timestamp", "filename", "path", "error"])
        w.writerow([time.strftime("%Y-%m-%dT%H:%M:%S"), video.filename, video.path,
                    f"{type(err).__name__}: {err}"])
        fh.flush()
        os.fsync(fh.fileno())
    return path


def open_writers(data_dir, participant: str, session) -> dict[str, TrialWriter]:
    """The session's data files (:data:`SESSION_FILES`), locked: a second launch for the
    same participant and session stops at the first (:class:`~.datafile.SessionBusy`),
    having changed nothing."""
    writers: dict[str, TrialWriter] = {}
    try:
        for name in SESSION_FILES:
            writers[name] = TrialWriter(data_dir, participant, session, name, ROW_COLUMNS)
    except BaseException:
        for writer in writers.values():
            writer.close()
        raise
    return writers


def run_block(name: str, table: pd.DataFrame, io: AnnotationIO, writer: TrialWriter, *,
              participant: str, session: int, bonus: BonusCounter) -> list[dict]:
    """Training or screening: every video of ``table`` once, in order, numbered from 1;
    videos already in the writer's file are skipped. Returns every row of the block."""
    done = set(writer.completed["filename"]) if len(writer.completed) else set()
    rows = [dict(r) for r in writer.completed.to_dict("records")]
    for trial, row in enumerate(table.to_dict("records"), start=1):
        if row["filename"] in done:
            continue
        t = AnnotationTrial(video_from_row(row), name,
                            expected_rating=int(row["expected_rating"]),
                            reasoning=str(row.get("reasoning", "")))
        out = t.run(io, participant=participant, session=session, trial=trial, bonus=bonus)
        writer.write(out)
        rows.append(out)
    return rows


class AnnotationSession:
    """One participant's session: :meth:`run` shows what is left of it.

    ``writers`` are the session's locked data files (:func:`open_writers`), ``db`` the shared
    :class:`~.assignment.AssignmentDB`, ``tables`` the pool, training and screening tables
    (:func:`load_tables`). Making the session adds the pool to the database, mends a crash
    between a row written and its rating recorded (``db.reconcile``) and sets the bonus
    counter from the participant's earlier matches (it carries over across sessions).

    ``instructions`` are shown at the start of a fresh session; ``seed`` draws which main
    trials ask for a ground-truth video; with ``fast`` the closing message does not wait for a
    key. A main trial whose video fails to play is logged (:func:`log_failed_video`), given
    back to the pool and not offered again this session; a rating given after the video's
    lease expired and others took it is logged and not kept.
    """

    def __init__(self, writers: dict[str, TrialWriter], *, db, tables: dict[str, pd.DataFrame],
                 participant: str, session: int,
                 settings: AnnotationSettings = AnnotationSettings(),
                 instructions: str | None = None, seed: int = 0, fast: bool = False):
        self.writers, self.db, self.tables, self.settings = writers, db, tables, settings
        self.participant, self.session = participant, int(session)
        self.instructions, self.seed, self.fast = instructions, int(seed), fast
        self.status = ""
        self.main = writers["annotation"]
        self.data_dir = Path(self.main.path).parent
        db.add_videos(tables["pool"], seed=0)
        if len(self.main.completed):
            db.reconcile(participant, self.session,
                         dict(zip(self.main.completed["filename"],
                                  self.main.completed["rating"].astype(int))))
        self.bonus = BonusCounter(settings.bonus_pence, db.matches(participant))

    def record(self, **facts) -> None:
        """Add facts known once the session is under way (the audio output) to the main data
        file's sidecar, with the participant, session and task."""
        from .study import update_sidecar
        update_sidecar(self.main.path, participant=self.participant, session=self.session,
                       task="annotation", **facts)

    def run(self, io: AnnotationIO) -> str:
        """Run the session; returns its status (also in
        ``sub-<id>_ses-<n>_annotation-status.txt``): ``complete``, ``aborted`` (Escape; run
        again to resume), ``screening_failed``, or ``error: ...`` (the exception is raised
        on). Closes the writers."""
        def close():
            for name in reversed(SESSION_FILES):
                self.writers[name].close()
        return run_with_status(self, lambda: self._run(io), close, "annotation")

    def _run(self, io: AnnotationIO) -> str:
        if self.instructions and not len(self.main.completed):
            io.show_message(self.instructions)
        if not self.screened():
            for name in ("training", "screening"):
                table, writer = self.tables[name], self.writers[f"annotation{name}"]
                if not len(table):
                    continue
                rows = run_block(name, table, io, writer, participant=self.participant,
                                 session=self.session, bonus=self.bonus)
                writer.finish()
                if name == "screening":
                    result = screening_result(rows, pass_mark=self.settings.pass_mark(len(table)))
                    if not result.passed:
                        io.show_message(SCREENING_FAILED_MESSAGE.format(
                            n_correct=result.n_correct, n_trials=result.n_trials))
                        return "screening_failed"
        self._main_trials(io)
        io.show_message(FINISHED_MESSAGE, wait=not self.fast)
        self.main.finish()
        return "complete"

    def screened(self) -> bool:
        """Whether the participant finished a screening in this or an earlier session
        (training and screening are then not run again)."""
        return any(self.data_dir.glob(
            f"sub-{self.participant}_ses-*_task-annotationscreening*_beh.csv.done"))

    def _main_trials(self, io: AnnotationIO) -> None:
        from ..media import MediaError
        db, participant, session = self.db, self.participant, self.session
        settings = self.settings
        trial = len(self.main.completed)
        rng = np.random.default_rng([self.seed, session, 67])
        failed: set[str] = set()
        while settings.max_trials is None or trial < settings.max_trials:
            want_gt = rng.random() < settings.ground_truth_rate
            video = db.next_video(participant, session, ground_truth=want_gt, exclude=failed)
            if video is None:
                break
            try:
                row = AnnotationTrial(video, "main").run(io, participant=participant,
                                                         session=session, trial=trial + 1,
                                                         bonus=self.bonus)
            except (MediaError, RuntimeError, OSError) as err:
                # a video that fails mid-session: logged, given back, the session goes on
                log_failed_video(self.data_dir, participant, session, video, err)
                db.release(video.filename, participant)
                failed.add(video.filename)
                continue
            if not db.renew(participant, video.filename):
                # the participant sat on this video past the lease and others rated it
                # meanwhile: the rating would be one too many, so it is not kept
                log_failed_video(self.data_dir, participant, session, video, LeaseLost(
                    f"lease of {db.lease_s / 60:g} min expired during the trial; the video "
                    "went to other raters, this rating was not kept"))
                self.bonus.matches -= bool(row["bonus_match"])   # bonuses follow kept ratings
                failed.add(video.filename)
                continue
            trial += 1
            self.main.write(row)
            db.complete(video.filename, participant, row["rating"])
            if trial % settings.trials_per_block == 0:
                io.show_message(BREAK_MESSAGE.format(n=trial))


# --------------------------------------------------------------------------------------------
# A simulated rater (tests, demo): decides what to press and when
# --------------------------------------------------------------------------------------------
@dataclass
class SimulatedRater:
    """A rater with an accuracy, an RT distribution and habits (early presses, replays).

    ``plan(true_rating)`` gives the plan for one trial: keys pressed during playback, then
    replays, then the rating, with delays in seconds after the video ends.

    ``accuracy`` is the probability that the rating equals ``true_rating``: a wrong rating is
    one of the other two, never by chance the true one. Without a true rating (``None``) the
    rater presses 1, 2 or 3 with equal probability.
    """

    seed: int
    accuracy: float = 0.85
    rt_median_s: float = 0.6
    rt_sigma: float = 0.3
    early_press_rate: float = 0.15
    replay_rate: float = 0.1
    rng: np.random.Generator = field(init=False)

    def __post_init__(self):
        if not 0 <= self.accuracy <= 1:
            raise ValueError(f"accuracy is the probability of giving the true rating: "
                             f"expected a value in [0, 1], got {self.accuracy}")
        self.rng = np.random.default_rng([int(self.seed), 59])

    def rating_for(self, true_rating: int | None) -> int:
        if true_rating is None:
            return int(self.rng.integers(1, 4))
        if self.rng.random() < self.accuracy:
            return int(true_rating)
        others = [int(k) for k in RATING_KEYS if int(k) != int(true_rating)]
        return others[int(self.rng.integers(len(others)))]

    def rt(self) -> float:
        return float(np.clip(self.rt_median_s * np.exp(self.rng.normal(0, self.rt_sigma)),
                             0.15, 5.0))

    def plan(self, true_rating: int | None) -> dict:
        """{'early': [key...], 'replays': n, 'rating': k, 'rts': [s...]}"""
        early = [str(self.rng.integers(1, 4))] if self.rng.random() < self.early_press_rate \
            else []
        replays = 1 if self.rng.random() < self.replay_rate else 0
        return {"early": early, "replays": replays, "rating": self.rating_for(true_rating),
                "rts": [self.rt() for _ in range(replays + 1)]}
