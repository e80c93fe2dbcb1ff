"""Column specifications and validation for every AVMIT CSV, in one place.

The class lists, the relabelling table and the column names of every file layout the toolkit
reads or writes live here and nowhere else (the ``*_COLUMNS`` and ``*_REQUIRED`` constants,
indexed by :data:`CONTRACTS`; tests/test_contracts.py fails on a copy in another module), as
do the descriptions of the data files' columns. Reading goes through :func:`read_csv`, which
accepts a UTF-8 byte-order mark and CRLF line endings, and raises :class:`DatasetError` with
the file, the row and the column at fault for anything else that is off.

Row numbers in messages count data rows from 1 (the header is not a row) and also give the
line of the file, which is what a text editor shows.
"""
from __future__ import annotations

import csv
import difflib
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .._atomic import atomic_path, fsync_file
from ..errors import DatasetError  # raised here and re-exported: schema.DatasetError

# --------------------------------------------------------------------------------------------
# Classes (facts.md "Classes"; the index is the authors' ``label_to_int``)
# --------------------------------------------------------------------------------------------
TEST_CLASSES: tuple[str, ...] = (
    "barking", "diving", "drumming", "frying", "giggling", "howling", "inflating", "mowing",
    "pouring", "raining", "sanding", "shredding", "sneezing", "tapping", "vacuuming", "whistling",
)
LABEL_TO_INT: dict[str, int] = {label: i for i, label in enumerate(TEST_CLASSES)}

#: Number of AVMIT annotation classes. The paper names only the 16 test classes and the
#: relabelled ones; the full list of 41 is published only inside ``video_ratings.csv``, so files
#: with other class names are accepted unless a class list is given.
N_AVMIT_CLASSES = 41

#: Table 1: MIT classes that were relabelled to an AVMIT class and added to the annotation pool.
RELABELLED_MIT_CLASSES: dict[str, tuple[str, ...]] = {
    "giggling": ("laughing",),
    "frying": ("cooking", "boiling"),
    "inflating": ("blowing",),
    "pouring": ("spilling", "drenching", "filling"),
    "diving": ("swimming", "splashing"),
    "raining": ("dripping",),
}

#: Rating scale: 1 = event absent, 2 = present but not most prominent, 3 = present and prominent.
RATING_VALUES: tuple[int, ...] = (1, 2, 3)
RATING_MEANINGS = {1: "absent (unclean)", 2: "present, not most prominent (moderately clean)",
                   3: "present and most prominent (very clean)"}

_LABEL_PATTERN = re.compile(r"^[a-z][a-z0-9_\- ]*$")


def allowed_mit_labels(avmit_label: str) -> tuple[str, ...]:
    """MIT labels a video shown under ``avmit_label`` may carry (itself plus Table 1)."""
    return (avmit_label,) + RELABELLED_MIT_CLASSES.get(avmit_label, ())


def tfrecord_filename(avmit_label: str, filename: str) -> str:
    """``<AVMIT_label>/<video stem>.tfrecord``, as in the released files."""
    stem = filename.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return f"{avmit_label}/{stem}.tfrecord"


# --------------------------------------------------------------------------------------------
# Layouts
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Column:
    """One column of a layout.

    kind: ``str`` (non-empty text), ``text`` (may be empty), ``int``, ``float``, ``rating``
    (1, 2 or 3), ``count`` (integer >= 0), ``label`` (a class name), ``test_label`` (one of the
    16 test classes), ``bool``.
    """

    name: str
    kind: str = "str"
    required: bool = True


@dataclass(frozen=True)
class Layout:
    name: str
    columns: tuple[Column, ...]
    unique: tuple[str, ...] = ()
    description: str = ""
    fix_hint: str = ""

    @property
    def required(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


RAW_RATINGS = Layout(
    "raw ratings",
    (
        Column("filename"), Column("AVMIT_label", "label"), Column("MIT_label", "label"),
        Column("video_location"), Column("rating", "rating"),
        Column("participant", "str", required=False), Column("session", "text", required=False),
        Column("trial", "int", required=False), Column("timestamp", "text", required=False),
        Column("rt", "float", required=False), Column("replays", "count", required=False),
        Column("ground_truth", "text", required=False),
    ),
    unique=("participant", "filename"),
    description="one row per rating: filename, AVMIT_label, MIT_label, video_location, rating",
)

VIDEO_RATINGS = Layout(
    "video ratings",
    (
        Column("filename"), Column("r1", "count"), Column("r2", "count"), Column("r3", "count"),
        Column("AVMIT_label", "label"), Column("MIT_label", "label"), Column("video_location"),
        Column("tfrecord_filename"),
    ),
    unique=("filename",),
    description="one row per video: filename, r1, r2, r3, AVMIT_label, MIT_label, "
                "video_location, tfrecord_filename",
)

TEST_SET = Layout(
    "test set",
    (
        Column("filename"), Column("AVMIT_label", "test_label"), Column("MIT_label", "label"),
        Column("video_location"), Column("new_filename"), Column("tfrecord_filename"),
    ),
    unique=("filename",),
)

#: ``AVMIT_train.csv`` / ``AVMIT_validation.csv`` as released (note the renamed columns).
AVMIT_TRAIN = Layout(
    "released AVMIT training",
    (
        Column("filename"), Column("actual_label", "label"), Column("r1", "count"),
        Column("r2", "count"), Column("r3", "count"), Column("label", "test_label"),
        Column("video_location"), Column("tfrecord_filename"),
    ),
    unique=("filename",),
)

#: ``MIT16_train.csv`` / ``MIT16_validation.csv`` as released (a leading unnamed index column).
MIT16_TRAIN = Layout(
    "released MIT-16 training",
    (
        Column("", "int", required=False), Column("filename"), Column("MIT label", "label"),
        Column("AVMIT label", "test_label"), Column("tfrecord_filename"),
    ),
    unique=("filename",),
)

#: Optional inputs of test-set selection.
#: ``fps`` may be empty (unknown: e.g. a video ``features probe`` could not read); such videos
#: do not pass a frame-rate filter.
FPS_METADATA = Layout("frame-rate metadata",
                      (Column("filename"), Column("fps", "optional_float")),
                      unique=("filename",))
EXCLUSIONS = Layout("manual exclusions", (Column("filename"), Column("reason", "text")),
                    unique=("filename",))
GROUND_TRUTH = Layout("ground-truth ratings", (Column("filename"), Column("rating", "rating")),
                      unique=("filename",))

LAYOUTS = (RAW_RATINGS, VIDEO_RATINGS, TEST_SET, AVMIT_TRAIN, MIT16_TRAIN)


# --------------------------------------------------------------------------------------------
# Column lists: every table passed between stages (ARCHITECTURE.md "Data contracts").
# ``*_REQUIRED`` is what a reader insists on (the contract's names: never renamed);
# ``*_COLUMNS`` is what our writers write, in that order (columns may be added at the end).
# Every writer and reader imports these; tests/test_contracts.py fails when a module types a
# copy. Analysis results (accuracy tables, fits, ...) are laid out by the function returning
# them.
# --------------------------------------------------------------------------------------------
#: Raw ratings: the released columns (required), then what our annotation task adds.
RAW_RATINGS_REQUIRED: tuple[str, ...] = tuple(RAW_RATINGS.required)
RAW_RATINGS_COLUMNS: tuple[str, ...] = tuple(RAW_RATINGS.names)
#: The columns that name a video in the released files (raw ratings start with them).
VIDEO_COLUMNS: tuple[str, ...] = RAW_RATINGS_COLUMNS[:4]
VIDEO_RATINGS_COLUMNS: tuple[str, ...] = tuple(VIDEO_RATINGS.names)
TEST_SET_COLUMNS: tuple[str, ...] = tuple(TEST_SET.names)

#: The annotation task's video pool (``pool_csv`` of experiments/annotation.yaml): the videos
#: to rate and their files; an optional ``ground_truth`` rating marks a check video.
ANNOTATION_POOL_COLUMNS: tuple[str, ...] = (*VIDEO_COLUMNS, "path")

#: What the player measured of a playback, in ``PlaybackReport.to_row`` order
#: (experiments.player); every trial row of both experiments carries these.
PLAYBACK_COLUMNS: tuple[str, ...] = (
    "onset", "dropped_frames", "frames_shown", "av_onset_asynchrony_ms", "playback_s",
    "planned_offset_ms", "latency_ms", "scheduled_lead_ms", "audio_start_error_ms",
    "frame_interval_sd_ms", "timing_ok", "audio_backend")
#: The audio-schedule timing columns, appended after the older columns of the trial rows.
TIMING_COLUMNS: tuple[str, ...] = PLAYBACK_COLUMNS[5:]

#: The annotation task's rows (``task-annotation*`` files): raw ratings first, so
#: ``ratings aggregate`` reads the file as it is, then the task's additions.
ANNOTATION_ROW_COLUMNS: tuple[str, ...] = (
    *RAW_RATINGS_COLUMNS, "block", "early_presses", "bonus_match", "bonus_pence", "onset",
    "frames_shown", "dropped_frames", "av_onset_asynchrony_ms", "playback_s",
    "expected_rating", "correct", "error", *TIMING_COLUMNS)

#: Stimulus manifest (``manifest.csv`` of a suite): one row per stimulus. The contract...
MANIFEST_REQUIRED: tuple[str, ...] = (
    "stimulus_id", "path", "source_filename", "label", "manipulation", "level", "level_unit",
    "audio_source", "seed", "duration_s", "fps", "sample_rate", "sha256")
#: ...then what ``stimuli generate`` adds: the sources' files (``stimuli verify`` re-reads
#: them), the noise colour, the container and whether verification passed.
MANIFEST_COLUMNS: tuple[str, ...] = (
    *MANIFEST_REQUIRED, "source_new_filename", "source_path", "audio_source_path",
    "noise_color", "container", "verified")
#: Manifest text that cannot be empty (``level``, ``level_unit`` and ``audio_source`` can: no
#: level, no unit, no sound).
MANIFEST_NON_EMPTY: tuple[str, ...] = ("stimulus_id", "path", "source_filename", "label",
                                       "manipulation", "sha256")
#: The generator's journal (``.journal.csv`` in a suite folder, one row appended per written
#: stimulus, so an interrupted run resumes): what it measured of each file.
STIMULUS_JOURNAL_COLUMNS: tuple[str, ...] = ("stimulus_id", "path", "duration_s", "fps",
                                             "sample_rate", "sha256", "size")

#: A study plan (``python -m avmit_psych.experiments plan``): one row per planned trial, in
#: presentation order; written by experiments.plan, read by every session of the study.
STUDY_PLAN_COLUMNS: tuple[str, ...] = (
    "list", "session", "position", "block", "task", "stimulus_id", "path", "source_filename",
    "label", "manipulation", "level", "level_unit", "audio_source", "duration_s", "repeat",
    "break_before", "suite_root")
#: The manifest columns a plan copies into each of its rows (so the manifest must have them).
STUDY_PLAN_FROM_MANIFEST: tuple[str, ...] = tuple(c for c in STUDY_PLAN_COLUMNS
                                                  if c in MANIFEST_REQUIRED)

#: The stimulus shown and its condition, as trials and predictions record them.
STIMULUS_COLUMNS: tuple[str, ...] = ("stimulus_id", "label", "manipulation", "level")
#: What trials and predictions share, so compare stacks humans and models.
OBSERVATION_COLUMNS: tuple[str, ...] = (*STIMULUS_COLUMNS, "response", "correct")
#: Trials of the human-vs-DNN experiment (one row per trial): the contract compare reads...
TRIALS_REQUIRED: tuple[str, ...] = ("participant", "session", "task", "block", "trial",
                                    *OBSERVATION_COLUMNS, "rt")
#: ...and every column the experiment writes, in order (experiments.human_vs_dnn).
TRIALS_COLUMNS: tuple[str, ...] = (
    *TRIALS_REQUIRED, "rt_from_onset", "onset", "frames_shown", "dropped_frames",
    "av_onset_asynchrony_ms", "playback_s", "repeat", "audio_source", "error", "list",
    "position", *TIMING_COLUMNS)
#: Predictions (one row per model x stimulus), followed by ``p_<class>`` probabilities.
PREDICTIONS_COLUMNS: tuple[str, ...] = ("model", *OBSERVATION_COLUMNS)
PREDICTIONS_REQUIRED: tuple[str, ...] = PREDICTIONS_COLUMNS

#: The headphone screen's trials (``task-headphonecheck`` files, experiments.headphones).
HEADPHONE_CHECK_COLUMNS: tuple[str, ...] = (
    "participant", "session", "test", "attempt", "trial", "order", "target", "response",
    "correct", "rt", "stimulus_seed")
#: Files from before the Huggins test have no ``stimulus_seed``.
HEADPHONE_CHECK_REQUIRED: tuple[str, ...] = HEADPHONE_CHECK_COLUMNS[:-1]

#: The model-vs-human toolbox's raw data (Geirhos et al.), which compare also reads.
MODEL_VS_HUMAN_COLUMNS: tuple[str, ...] = ("subj", "session", "trial", "rt", "object_response",
                                           "category", "condition", "imagename")


@dataclass(frozen=True)
class Contract:
    """A table layout by its ARCHITECTURE.md name: what readers require, what writers write."""

    name: str
    required: tuple[str, ...]
    columns: tuple[str, ...]


#: Every column list above, by layout.
CONTRACTS: dict[str, Contract] = {c.name: c for c in (
    Contract("raw ratings", RAW_RATINGS_REQUIRED, RAW_RATINGS_COLUMNS),
    Contract("video ratings", VIDEO_RATINGS_COLUMNS, VIDEO_RATINGS_COLUMNS),
    Contract("test set", TEST_SET_COLUMNS, TEST_SET_COLUMNS),
    Contract("annotation pool", ANNOTATION_POOL_COLUMNS, ANNOTATION_POOL_COLUMNS),
    Contract("annotation rows", RAW_RATINGS_REQUIRED, ANNOTATION_ROW_COLUMNS),
    Contract("stimulus manifest", MANIFEST_REQUIRED, MANIFEST_COLUMNS),
    Contract("stimulus journal", STIMULUS_JOURNAL_COLUMNS, STIMULUS_JOURNAL_COLUMNS),
    Contract("study plan", STUDY_PLAN_COLUMNS, STUDY_PLAN_COLUMNS),
    Contract("trials", TRIALS_REQUIRED, TRIALS_COLUMNS),
    Contract("predictions", PREDICTIONS_REQUIRED, PREDICTIONS_COLUMNS),
    Contract("headphone check", HEADPHONE_CHECK_REQUIRED, HEADPHONE_CHECK_COLUMNS),
    Contract("model-vs-human", MODEL_VS_HUMAN_COLUMNS, MODEL_VS_HUMAN_COLUMNS),
)}


# --------------------------------------------------------------------------------------------
# Column descriptions: what each column of a behavioural data file means, its unit and its
# levels. The BIDS sidecars (``python -m avmit_psych.experiments bids``) are generated from
# these tables. Each table is keyed by its layout's column list above, in that order: a column
# added to the list needs its entry here (else this module does not import), and an entry
# needs its column. A column a file has beyond its layout is exported with a generic entry.
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ColumnDescription:
    """One column of a data file, described for people (and BIDS sidecars).

    kind: ``number`` (in ``units``), ``integer``, ``bool`` (True/False; 1/0 accepted),
    ``category`` (a value from ``levels``) or ``text``. ``levels`` maps a value to its
    meaning; the key ``*`` describes any other value (``{value}`` is replaced by it).
    ``task_description`` / ``task_levels`` replace ``description`` / ``levels`` in one task.
    """

    description: str
    kind: str = "text"
    units: str = ""
    levels: dict = field(default_factory=dict)
    task_description: dict = field(default_factory=dict)
    task_levels: dict = field(default_factory=dict)


#: The meaning of a True/False column's two values.
def _bool_levels(true: str, false: str) -> dict:
    return {"True": true, "False": false}


def _described(columns: tuple[str, ...], descriptions: dict) -> dict[str, ColumnDescription]:
    """``descriptions`` in the order of a layout's ``columns``: one entry per column, no more."""
    missing = [c for c in columns if c not in descriptions]
    extra = [c for c in descriptions if c not in columns]
    if missing or extra:
        raise ValueError(f"column descriptions do not match the layout: no entry for "
                         f"{missing}, an entry but no column for {extra}")
    return {c: descriptions[c] for c in columns}


#: Manipulations (ARCHITECTURE "stimulus manifest") and the unit of their levels.
MANIPULATION_LEVELS = {
    "none": "the source video, unmanipulated",
    "av_offset": "sound shifted against the picture; level in ms (+ = audio lags video)",
    "audio_noise": "noise added to the sound; level = signal-to-noise ratio in dB",
    "visual_noise": "Gaussian pixel noise added to the frames; level = its SD in pixel values "
                    "(0-255 scale)",
    "blur": "frames blurred; level = Gaussian sigma in pixels",
    "contrast": "frame contrast scaled; level = the factor (1 = unchanged)",
    "semantic_swap": "the sound replaced by a video of another class; level = that donor "
                     "class",
    "audio_only": "sound only, no picture",
    "visual_only": "picture only, no sound",
    "*": "'{value}': a manipulation added to the suite as a plug-in (its level unit is in the "
         "suite's manifest, column level_unit)",
}

_CLASS_LEVELS = {c: f"the action class '{c}'" for c in TEST_CLASSES}
_CLASS_LEVELS["*"] = "the action class '{value}'"
_SAME_DIFFERENT = {"same": "sound and picture show the same action",
                   "different": "the sound comes from another action class (semantic swap)"}

#: The trials of the human-vs-DNN experiment (:data:`TRIALS_COLUMNS`).
TRIALS_COLUMN_DESCRIPTIONS: dict[str, ColumnDescription] = _described(TRIALS_COLUMNS, {
    "participant": ColumnDescription(
        "Participant id as the experiment recorded it (the source id). The BIDS label "
        "(sub-<label>) keeps only its letters and digits; participants.tsv maps one to the "
        "other (column source_participant)."),
    "session": ColumnDescription(
        "Session as the experiment recorded it (1 = the participant's first session).",
        "integer"),
    "task": ColumnDescription(
        "The question the participant answered.", "category",
        levels={"classify": "which of the 16 AVMIT action classes the video showed (16 "
                            "alternatives)",
                "correspondence": "whether sound and picture show the same action (same or "
                                  "different)"}),
    "block": ColumnDescription(
        "Part of the session the trial belongs to.", "category",
        levels={"practice": "a practice trial, with feedback; not analysed",
                "main": "a measured trial"}),
    "trial": ColumnDescription(
        "Trial number within the session, in presentation order (practice first).", "integer"),
    "stimulus_id": ColumnDescription(
        "The stimulus shown: its id in the stimulus manifest (the same id in the models' "
        "predictions)."),
    "label": ColumnDescription(
        "The answer key.", "category",
        task_description={"classify": "The answer key: the action class the video shows.",
                          "correspondence": "The answer key: whether sound and picture show "
                                            "the same action."},
        task_levels={"classify": _CLASS_LEVELS, "correspondence": _SAME_DIFFERENT}),
    "manipulation": ColumnDescription(
        "How the stimulus was manipulated (its condition, with level).", "category",
        levels=MANIPULATION_LEVELS),
    "level": ColumnDescription(
        "The manipulation's level; its unit depends on the manipulation: av_offset in ms "
        "(+ = audio lags video), audio_noise in dB SNR, visual_noise in pixel SD (0-255 "
        "scale), blur in pixels (Gaussian sigma), contrast as a factor; for semantic_swap the "
        "donor class; n/a for manipulations without a level (none, audio_only, visual_only)."),
    "response": ColumnDescription(
        "The participant's answer; n/a when there was none (playback failed).", "category",
        task_description={"classify": "The action class the participant chose; n/a when "
                                      "there was no answer (playback failed).",
                          "correspondence": "The participant's answer: same or different; "
                                            "n/a when there was none (playback failed)."},
        task_levels={"classify": _CLASS_LEVELS, "correspondence": {
            "same": "sound and picture show the same action",
            "different": "sound and picture show different actions"}}),
    "correct": ColumnDescription(
        "Whether the response equals the answer key (label); n/a when there was no response.",
        "bool", levels=_bool_levels("the response was the answer key", "it was not")),
    "rt": ColumnDescription(
        "Response time: from the end of the video (the response screen) to the answer.",
        "number", "s"),
    "rt_from_onset": ColumnDescription(
        "Response time from the video's first frame to the answer.", "number", "s"),
    "onset": ColumnDescription(
        "Time of the video's first frame on PsychoPy's global clock (psychopy.core.getTime).",
        "number", "s"),
    "frames_shown": ColumnDescription("Distinct video frames that were shown.", "integer"),
    "dropped_frames": ColumnDescription(
        "Video frames never shown, or first shown more than half a refresh late (with sound, "
        "the first frame too when its flip missed the planned time).", "integer"),
    "av_onset_asynchrony_ms": ColumnDescription(
        "Sound at the ear minus the first frame's onset: the audio backend's reported start "
        "plus the compensated latency, minus the first flip (+ = sound after picture); n/a "
        "without sound or when not measured.", "number", "ms"),
    "playback_s": ColumnDescription(
        "Duration of the playback: the last flip plus one refresh, minus the onset.",
        "number", "s"),
    "repeat": ColumnDescription(
        "Whether this is a second showing of a stimulus (for test-retest consistency).",
        "bool", levels=_bool_levels("a second showing; not counted in accuracy",
                                    "the stimulus' first (measured) showing")),
    "audio_source": ColumnDescription(
        "The video whose sound was played (the manifest's audio_source: the source video, or "
        "the donor video of a semantic swap)."),
    "error": ColumnDescription(
        "Why the playback failed (exception text), n/a when it ran; trials with an error are "
        "not analysed. Tabs and line breaks in the text are written as spaces."),
    "list": ColumnDescription(
        "The study list the participant was assigned to (n/a outside a planned study).",
        "integer"),
    "position": ColumnDescription("The trial's position in the session's plan.", "integer"),
    "planned_offset_ms": ColumnDescription(
        "Intended sound-at-the-ear minus first-flip time (0 for AVMIT stimuli: an offset is "
        "in the stimulus file itself).", "number", "ms"),
    "latency_ms": ColumnDescription(
        "Audio output latency the schedule compensated (the config's audio.latency_ms).",
        "number", "ms"),
    "scheduled_lead_ms": ColumnDescription(
        "How much earlier than the planned first flip the sound started (the backend's "
        "reported start); about latency_ms when on time.", "number", "ms"),
    "audio_start_error_ms": ColumnDescription(
        "The audio backend's reported start minus the requested start.", "number", "ms"),
    "frame_interval_sd_ms": ColumnDescription(
        "Standard deviation of the intervals between successive flips.", "number", "ms"),
    "timing_ok": ColumnDescription(
        "Whether the presentation kept time: no dropped frame and the sound's start within "
        "the tolerance (default 2 ms).", "bool",
        levels=_bool_levels("timing within tolerance",
                            "a dropped frame or a late sound: compare leaves the trial out "
                            "unless told otherwise")),
    "audio_backend": ColumnDescription(
        "The audio backend that played the sound.", "category",
        levels={"ptb": "PsychToolbox (PsychPortAudio)", "sounddevice": "sounddevice (PortAudio)",
                "*": "the audio backend '{value}'"}),
})

#: The headphone screen's trials (:data:`HEADPHONE_CHECK_COLUMNS`).
HEADPHONE_CHECK_COLUMN_DESCRIPTIONS = _described(HEADPHONE_CHECK_COLUMNS, {
    "participant": TRIALS_COLUMN_DESCRIPTIONS["participant"],
    "session": TRIALS_COLUMN_DESCRIPTIONS["session"],
    "test": ColumnDescription(
        "Which headphone test.", "category",
        levels={"woods": "Woods et al. (2017) antiphase test: which of three tones is the "
                         "softest (one 6 dB softer, one in antiphase)",
                "huggins": "Milne et al. (2021) Huggins-pitch test: which of three noises "
                           "carries a faint pitch (dichotic, 600 Hz)"}),
    "attempt": ColumnDescription("Attempt at the test (1 = first; a failed attempt may be "
                                 "followed by a fresh set of trials).", "integer"),
    "trial": ColumnDescription("Trial number within the attempt.", "integer"),
    "order": ColumnDescription(
        "The three intervals in playing order, joined by '-' (Woods: reference, quiet, "
        "antiphase; Huggins: huggins, diotic)."),
    "target": ColumnDescription("Position (1-3) of the interval to pick.", "integer"),
    "response": ColumnDescription("The interval the participant picked (1-3).", "integer"),
    "correct": ColumnDescription(
        "Whether the response was the target.", "bool",
        levels=_bool_levels("the target was picked", "another interval was picked")),
    "rt": ColumnDescription("Response time from the end of the last interval.", "number", "s"),
    "stimulus_seed": ColumnDescription(
        "Seed of the trial's Huggins noise (n/a for Woods tones).", "integer"),
})

#: Column descriptions by task; tasks not named here are trials of the human-vs-DNN experiment.
BEH_COLUMN_DESCRIPTIONS = {"headphonecheck": HEADPHONE_CHECK_COLUMN_DESCRIPTIONS}

#: The description of a column no table describes (kept, never dropped).
GENERIC_COLUMN_DESCRIPTION = ("Column '{name}' as the experiment recorded it (not described "
                              "in avmit_psych.dataset.schema).")


def column_descriptions(task: str) -> dict[str, ColumnDescription]:
    """The column descriptions of a data file of ``task``."""
    return BEH_COLUMN_DESCRIPTIONS.get(task, TRIALS_COLUMN_DESCRIPTIONS)

#: Released training layout -> video-ratings column names.
AVMIT_TRAIN_TO_VIDEO_RATINGS = {"actual_label": "MIT_label", "label": "AVMIT_label"}
MIT16_TO_VIDEO_RATINGS = {"MIT label": "MIT_label", "AVMIT label": "AVMIT_label"}


def read_yaml(path, *, what: str, example: str):
    """A YAML file's content, or one :class:`DatasetError` naming the file and the fix
    (missing, a folder, not UTF-8, not YAML). ``what`` names the file in messages ("design
    file"); ``example`` is a path to point the user to."""
    import yaml
    path = Path(path)
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(f"{what} not found", path=path, fix=f"e.g. {example}")
    except IsADirectoryError:
        raise DatasetError(f"is a folder, not a {what}", path=path, fix="name the YAML file")
    except UnicodeDecodeError:
        raise DatasetError("not UTF-8 text", path=path, fix=f"save the {what} as UTF-8")
    except yaml.YAMLError as err:
        raise DatasetError(f"not valid YAML ({getattr(err, 'problem', err)})", path=path,
                           fix="check the indentation and the ':' after every key")


def detect_layout(columns, candidates=LAYOUTS) -> Layout | None:
    """The first layout whose required columns are all present, or None."""
    present = set(columns)
    for layout in candidates:
        if set(layout.required) <= present:
            return layout
    return None


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------
def _decode(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DatasetError("file not found", path=path,
                           fix="check the path (relative paths start in the current folder)")
    except IsADirectoryError:
        raise DatasetError("is a folder, not a CSV file", path=path, fix="name the CSV file")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        row = line - 1 if line > 1 else None
        raise DatasetError(
            f"not UTF-8 text (byte 0x{raw[err.start]:02x} at line {line})", path=path,
            row=row, fix="save the file as UTF-8 CSV (e.g. 'CSV UTF-8' in a spreadsheet program)")


def read_csv(path, layout: Layout | tuple[Layout, ...] | None = None, *,
             classes=None) -> pd.DataFrame:
    """Read an AVMIT CSV file and validate it against ``layout``.

    Parameters
    ----------
    path : str or Path
        The CSV file (UTF-8, optionally with a byte-order mark; LF or CRLF line endings).
    layout : Layout, tuple of Layout or None
        The expected layout; with a tuple, the first whose required columns are present is
        used (and reported as ``df.attrs['layout']``). None reads without validation.
    classes : iterable of str, optional
        The allowed AVMIT class names for ``label`` columns (default: any lower-case name).

    Returns
    -------
    pandas.DataFrame
        Typed columns (counts and ratings as int64); ``attrs['path']`` and ``attrs['layout']``
        are set.
    """
    path = Path(path)
    text = _decode(path)
    if not text.strip():
        raise DatasetError("the file is empty", path=path,
                           fix="give a CSV file with a header row and at least one data row")
    first_line = text.splitlines()[0]
    try:
        header = next(csv.reader([first_line]))
    except csv.Error as err:  # pragma: no cover - csv.reader on one line rarely fails
        raise DatasetError(f"header cannot be parsed ({err})", path=path, row=None)
    if len(header) == 1:
        for delimiter, name in ((";", "semicolons"), ("\t", "tabs"), ("|", "pipes")):
            if delimiter in first_line:
                raise DatasetError(
                    f"the header is separated by {name}, not commas", path=path,
                    fix="save the file as comma-separated CSV")
    try:
        df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False,
                         na_filter=False, skipinitialspace=False)
    except pd.errors.ParserError as err:
        match = re.search(r"line (\d+)", str(err))
        row = int(match.group(1)) - 1 if match else None
        raise DatasetError(f"malformed CSV ({str(err).strip()})", path=path, row=row,
                           fix="every row needs as many comma-separated fields as the header; "
                               "quote fields that contain commas")
    if df.empty:
        raise DatasetError("the file has a header but no data rows", path=path,
                           fix="give a CSV file with at least one data row")
    # pandas names an empty header cell 'Unnamed: 0'; the released MIT-16 files have one.
    df.columns = ["" if str(c).startswith("Unnamed: ") else str(c).strip() for c in df.columns]
    df.attrs["path"] = str(path)
    if layout is None:
        return df
    if isinstance(layout, tuple):
        chosen = detect_layout(df.columns, layout)
        if chosen is None:
            other = detect_layout(df.columns, tuple(l for l in LAYOUTS if l not in layout))
            if other is not None:
                extra = " (a MIT-16 training file has no rating counts)" \
                    if other is MIT16_TRAIN else ""
                raise DatasetError(
                    f"this is a {other.name} file{extra}; expected "
                    f"{' or '.join(l.name for l in layout)}", path=path,
                    fix=f"give a file with the columns {', '.join(layout[0].required)}")
            # Name the missing columns of the closest layout.
            chosen = max(layout, key=lambda l: len(set(l.required) & set(df.columns)))
        layout = chosen
    return validate(df, layout, path=path, classes=classes)


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def validate(df: pd.DataFrame, layout: Layout, *, path=None, classes=None) -> pd.DataFrame:
    """Check ``df`` against ``layout``; return a copy with typed columns.

    Raises
    ------
    DatasetError
        For the first problem found, naming the row (1-based data row) and column.
    """
    path = path if path is not None else df.attrs.get("path")
    missing = [c for c in layout.required if c not in df.columns]
    if missing:
        name = missing[0]
        close = difflib.get_close_matches(name, [str(c) for c in df.columns], n=1, cutoff=0.6)
        hint = f"a column is named '{close[0]}': rename it to '{name}'" if close else (
            f"the {layout.name} layout needs the columns {', '.join(layout.required)}")
        raise DatasetError(f"required column '{name}' is missing", path=path, column=name,
                           fix=hint)
    out = df.copy()
    out.attrs = dict(df.attrs)
    allowed = set(classes) if classes is not None else None
    for col in layout.columns:
        if col.name not in out.columns:
            continue
        out[col.name] = _convert(out[col.name], col, path=path, classes=allowed)
    _check_mit_labels(out, layout, path)
    _check_unique(out, layout, path)
    out.attrs["layout"] = layout.name
    if path is not None:
        out.attrs["path"] = str(path)
    return out


def _convert(series: pd.Series, col: Column, *, path, classes) -> pd.Series:
    values = series.astype(str).str.strip() if series.dtype == object or \
        pd.api.types.is_string_dtype(series) else series
    kind = col.kind
    if kind == "optional_float":
        empty = (values == "").to_numpy() if not pd.api.types.is_numeric_dtype(values) \
            else np.zeros(len(values), dtype=bool)
        numbers = pd.to_numeric(values.where(~empty, None) if empty.any() else values,
                                errors="coerce")
        bad = numbers.isna().to_numpy() & ~empty
        if bad.any():
            i = _first_bad(bad)
            raise DatasetError(f"expected a number or an empty cell, got '{values.iloc[i]}'",
                               path=path, row=i + 1, column=col.name,
                               fix="correct or remove that row")
        return numbers.astype("float64")
    if kind in ("int", "count", "rating", "float"):
        if pd.api.types.is_numeric_dtype(values):
            numbers = pd.to_numeric(values, errors="coerce")
            text_empty = np.zeros(len(values), dtype=bool)
        else:
            numbers = pd.to_numeric(values, errors="coerce")
            text_empty = (values == "").to_numpy()
        bad = numbers.isna().to_numpy()
        if bad.any():
            i = _first_bad(bad)
            shown = "an empty cell" if text_empty[i] else f"'{values.iloc[i]}'"
            expected = {"rating": "a rating 1, 2 or 3", "count": "a whole number >= 0",
                        "int": "a whole number", "float": "a number"}[kind]
            raise DatasetError(f"expected {expected}, got {shown}", path=path, row=i + 1,
                               column=col.name, fix="correct or remove that row")
        if kind == "float":
            return numbers.astype("float64")
        arr = numbers.to_numpy(dtype="float64")
        nonint = arr != np.round(arr)
        if nonint.any():
            i = _first_bad(nonint)
            raise DatasetError(f"expected a whole number, got '{values.iloc[i]}'", path=path,
                               row=i + 1, column=col.name, fix="correct or remove that row")
        ints = arr.astype("int64")
        if kind == "rating":
            bad = ~np.isin(ints, RATING_VALUES)
            if bad.any():
                i = _first_bad(bad)
                raise DatasetError(
                    f"rating must be 1, 2 or 3, got {ints[i]}", path=path, row=i + 1,
                    column=col.name,
                    fix="1 = event absent, 2 = present but not most prominent, "
                        "3 = present and most prominent")
        if kind == "count":
            bad = ints < 0
            if bad.any():
                i = _first_bad(bad)
                raise DatasetError(f"a count cannot be negative, got {ints[i]}", path=path,
                                   row=i + 1, column=col.name, fix="correct that row")
        return pd.Series(ints, index=series.index, name=series.name)
    if kind == "text":
        return values
    # str, label, test_label: non-empty text
    empty = (values == "").to_numpy()
    if empty.any():
        i = _first_bad(empty)
        raise DatasetError("empty cell", path=path, row=i + 1, column=col.name,
                           fix="fill it in or remove that row")
    if kind in ("label", "test_label"):
        if kind == "test_label":
            allowed, what = set(TEST_CLASSES), "one of the 16 AVMIT test classes"
        elif classes is not None:
            allowed, what = classes, "in the class list"
        else:
            allowed, what = None, None
        uniques = pd.unique(values)
        if allowed is not None:
            unknown = [u for u in uniques if u not in allowed]
            if unknown:
                i = _first_bad((values == unknown[0]).to_numpy())
                close = difflib.get_close_matches(unknown[0], sorted(allowed), n=1)
                fix = f"did you mean '{close[0]}'?" if close else \
                    f"use {what} ({', '.join(sorted(allowed))})"
                raise DatasetError(f"label '{unknown[0]}' is not {what}", path=path, row=i + 1,
                                   column=col.name, fix=fix)
        else:
            malformed = [u for u in uniques if not _LABEL_PATTERN.match(u)]
            if malformed:
                i = _first_bad((values == malformed[0]).to_numpy())
                raise DatasetError(
                    f"label '{malformed[0]}' is not a class name (lower-case words)",
                    path=path, row=i + 1, column=col.name,
                    fix="use the class names as released, e.g. 'barking'")
    return values


def _label_columns(layout: Layout) -> tuple[str, str] | None:
    """(AVMIT label column, MIT label column) of a layout, if it has both."""
    for avmit, mit in (("AVMIT_label", "MIT_label"), ("label", "actual_label"),
                       ("AVMIT label", "MIT label")):
        if avmit in layout.names and mit in layout.names:
            return avmit, mit
    return None


def _check_mit_labels(df: pd.DataFrame, layout: Layout, path) -> None:
    """A video's MIT label differs from its AVMIT label only as Table 1 allows."""
    cols = _label_columns(layout)
    if cols is None:
        return
    avmit, mit = cols
    differs = (df[avmit] != df[mit]).to_numpy()
    if not differs.any():
        return
    pairs = df.loc[differs, [avmit, mit]].drop_duplicates()
    for a, m in pairs.itertuples(index=False):
        if m not in RELABELLED_MIT_CLASSES.get(a, ()):
            i = _first_bad(((df[avmit] == a) & (df[mit] == m)).to_numpy())
            allowed = ", ".join(allowed_mit_labels(a))
            raise DatasetError(
                f"MIT label '{m}' cannot be relabelled as AVMIT class '{a}' (Table 1 allows: "
                f"{allowed})", path=path, row=i + 1, column=mit,
                fix="check that the label columns are not swapped or mistyped")


def _check_unique(df: pd.DataFrame, layout: Layout, path) -> None:
    keys = [k for k in layout.unique if k in df.columns]
    if not keys or len(keys) != len(layout.unique):
        return
    dup = df.duplicated(subset=keys, keep="first").to_numpy()
    if dup.any():
        i = _first_bad(dup)
        first = _first_bad(df[keys].eq(df[keys].iloc[i]).all(axis=1).to_numpy())
        what = " and ".join(f"{k} '{df[k].iloc[i]}'" for k in keys)
        if keys == ["participant", "filename"]:
            problem = f"participant '{df['participant'].iloc[i]}' rated video " \
                      f"'{df['filename'].iloc[i]}' twice (first at row {first + 1})"
            fix = "keep one rating per participant and video"
        else:
            problem = f"duplicate {what} (first at row {first + 1})"
            fix = "remove the repeated row"
        raise DatasetError(problem, path=path, row=i + 1, column=keys[-1], fix=fix)


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------
def write_csv(df: pd.DataFrame, path, *, index: bool = False) -> Path:
    """Write ``df`` as UTF-8 CSV with LF endings, via a temporary name and a rename."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as fh:
        df.to_csv(fh, index=index, lineterminator="\n")
        fsync_file(fh)
    return path


@dataclass
class OutputBatch:
    """Stage several output files and publish them together, or not at all.

    Files are written into a hidden staging folder beside the destination and moved into place
    only by :meth:`commit`; on an exception nothing appears under the destination.
    """

    out_dir: Path
    _staging: Path | None = field(default=None, init=False)
    _created_dir: bool = field(default=False, init=False)

    def __enter__(self) -> "OutputBatch":
        self.out_dir = Path(self.out_dir)
        parent = self.out_dir.parent
        parent.mkdir(parents=True, exist_ok=True)
        import tempfile
        self._staging = Path(tempfile.mkdtemp(prefix=f".{self.out_dir.name}.staging-",
                                              dir=parent))
        return self

    def path(self, name: str) -> Path:
        assert self._staging is not None
        return self._staging / name

    def __exit__(self, exc_type, exc, tb) -> None:
        import shutil
        try:
            if exc_type is None:
                from .._atomic import fsync_dir, fsync_tree, make_folder
                make_folder(self.out_dir)
                for item in sorted(self._staging.iterdir()):
                    fsync_tree(item)  # on disk before its final name says it is finished
                    os.replace(item, self.out_dir / item.name)
                fsync_dir(self.out_dir)
        finally:
            shutil.rmtree(self._staging, ignore_errors=True)
