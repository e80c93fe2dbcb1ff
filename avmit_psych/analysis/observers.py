"""Reading humans' trials and models' predictions into one long table of observer trials.

Three layouts are recognised from their columns:

- **trials** (our human-vs-DNN experiment): ``participant, session, task, block, trial,
  stimulus_id, label, manipulation, level, response, correct, rt``; practice rows, second
  showings (``repeat`` true) and trials whose playback failed (``error`` set) are left out.
- **predictions** (our models): ``model, stimulus_id, label, manipulation, level, response,
  correct``.
- **model-vs-human** raw data (Geirhos et al.'s toolbox): ``subj, session, trial, rt,
  object_response, category, condition, imagename`` (``Session`` or ``session``: the toolbox
  spells it both ways), one file per observer and session. The same image is recognised
  across observers by ``imagename`` without the toolbox's prefix (``0001_cop_s01_``: trial
  number, experiment, subject or ``dnn``), as that toolbox does. The manipulation is the
  dataset named by the file (``contrast_subject-01_session_1.csv`` -> ``contrast``), and its
  condition codes are decoded by :data:`TOOLBOX_LEVELS` (from the toolbox's
  ``datasets/experiments.py``): ``c05`` -> contrast 5 (%), ``8-10-10`` -> eidolon log2 reach 3,
  ``bw`` -> ``greyscale``. Human observers are named ``<dataset>:<subj>`` (each dataset's
  ``subject-01`` is its own participant); models keep their name across datasets.

Every observer trial becomes one row of :data:`OBSERVER_COLUMNS`. A *condition* is a
manipulation and its level, whatever the level looks like: ``audio_noise=-5`` (a number),
``semantic_swap=laughing`` (a donor class), ``colour=greyscale`` (a toolbox code); a
manipulation without a level (``none``, ``audio_only``) is its own condition. Levels with a
known numeric meaning carry it in ``level_value`` (for ANOVAs over levels and psychometric
fits); text levels have ``level_value`` NaN.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..dataset import schema
from ..dataset.schema import DatasetError, read_csv

OBSERVER_COLUMNS = ["observer", "observer_type", "file", "task", "stimulus_id", "label",
                    "response", "correct", "manipulation", "level", "level_value", "condition",
                    "rt"]
#: timing figures of a trial that the experiment scripts record (absent in older files)
TIMING_NUMBERS = ("dropped_frames", "audio_start_error_ms", "frame_interval_sd_ms",
                  "latency_ms")
TIMING_COLUMNS = ["observer", "file", "stimulus_id", "condition", "timing_ok", *TIMING_NUMBERS]
#: a second showing of a stimulus, beside the first (measured) showing's answer
REPEAT_COLUMNS = ["observer", "observer_type", "file", "stimulus_id", "condition", "label",
                  "first_response", "first_correct", "response", "correct"]
#: the columns each layout read here must have (the schema module's contracts)
TRIALS_COLUMNS = schema.TRIALS_REQUIRED
PREDICTIONS_COLUMNS = schema.PREDICTIONS_REQUIRED
TOOLBOX_COLUMNS = schema.MODEL_VS_HUMAN_COLUMNS
LAYOUTS = {"trials": TRIALS_COLUMNS, "predictions": PREDICTIONS_COLUMNS,
           "model-vs-human": TOOLBOX_COLUMNS}
#: the correspondence task's answer key is same/different for humans and SAVC models alike;
#: SAVC predictions on the paper's random test pairs say congruent/incongruent
CORRESPONDENCE_NAMES = {"congruent": "same", "incongruent": "different"}
CORRESPONDENCE_ANSWERS = ("same", "different")
#: stimuli with one modality only: no correspondence question (models.savc.ONE_MODALITY)
ONE_MODALITY = ("audio_only", "visual_only")
_TRUE = {"true", "1", "yes", "t"}
_FALSE = {"false", "0", "no", "f", ""}
#: the model-vs-human prefix: zero-padded trial number, experiment, subject
TOOLBOX_PREFIX = re.compile(r"^(\d+)_([^_]+)_([^_]+)_(.+)$")


@dataclass
class Observations:
    """Every observer's measured trials (:data:`OBSERVER_COLUMNS`: the first showing of each
    stimulus), the second showings of repeated stimuli (:data:`REPEAT_COLUMNS`), and what
    reading them noticed."""

    trials: pd.DataFrame
    warnings: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    repeats: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=REPEAT_COLUMNS))
    #: every human trial's timing (:data:`TIMING_COLUMNS`, measured trials and repeats, before
    #: any exclusion) and how many flagged trials were left out
    timing: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=TIMING_COLUMNS))
    timing_excluded: int = 0

    @property
    def humans(self) -> list[str]:
        return _observer_order(self.trials, "human")

    @property
    def models(self) -> list[str]:
        return _observer_order(self.trials, "model")

    @property
    def observers(self) -> list[str]:
        return self.humans + self.models


def _observer_order(trials: pd.DataFrame, kind: str) -> list[str]:
    names = trials.loc[trials["observer_type"] == kind, "observer"].unique()
    return sorted(str(n) for n in names)


def detect(columns) -> str | None:
    """The layout whose columns are all present (``trials`` before ``predictions``)."""
    present = set(columns)
    for name, required in LAYOUTS.items():
        if set(required) <= present:
            return name
    return None


def level_number(level) -> float:
    """A level as a number, NaN when it is not one (empty, a class name, ...)."""
    try:
        value = float(str(level).strip())
    except ValueError:
        return float("nan")
    return value if np.isfinite(value) else float("nan")


def _no_level(level) -> bool:
    return str(level).strip().lower() in ("", "nan", "none")


def condition_name(manipulation: str, level, level_value: float | None = None) -> str:
    """``manipulation=level``: the level's number when it has one (``audio_noise=-5``), else
    its text (``semantic_swap=laughing``); the manipulation alone when there is no level."""
    value = level_number(level) if level_value is None else float(level_value)
    if np.isfinite(value):
        return f"{manipulation}={value:g}"
    if _no_level(level):
        return str(manipulation)
    return f"{manipulation}={str(level).strip()}"


# --------------------------------------------------------------------------------------------
# model-vs-human (Geirhos et al. 2021): condition codes -> levels
# --------------------------------------------------------------------------------------------
def _number(code: str) -> tuple[str, float]:
    value = level_number(code)
    return code, value


def _contrast(code: str) -> tuple[str, float]:
    match = re.fullmatch(r"c(\d+)", code)
    return (code, float(match.group(1))) if match else (code, float("nan"))


def _eidolon(code: str) -> tuple[str, float]:
    match = re.fullmatch(r"(\d+)-(\d+)-(\d+)", code)
    if not match or int(match.group(1)) <= 0:
        return code, float("nan")
    return code, float(np.log2(int(match.group(1))))


def _text(names: dict):
    return lambda code: (names.get(code, code), float("nan"))


def _single(code: str) -> tuple[str, float]:
    """Datasets of one condition: the toolbox writes ``0``; the dataset is the condition."""
    return ("", float("nan")) if code in ("0", "") else (code, float("nan"))


#: dataset -> decoder of its condition codes into (level, numeric level or NaN), following
#: the toolbox's ``data_conditions`` -> ``plotting_conditions`` (modelvshuman/datasets/
#: experiments.py): contrast in percent, filter SDs, phase noise and rotation in degrees,
#: uniform noise width, eidolon ``reach-coherence-grain`` as log2(reach) (the toolbox's
#: x-axis); colour, false colour and power equalisation are text levels; the five
#: single-condition datasets have no level. ``high-pass``'s ``inf`` (no filter) stays text.
TOOLBOX_LEVELS = {
    "colour": _text({"cr": "colour", "bw": "greyscale"}),
    "contrast": _contrast,
    "high-pass": _number,
    "low-pass": _number,
    "phase-scrambling": _number,
    "power-equalisation": _text({"0": "original", "pow": "equalised"}),
    "false-colour": _text({"True": "true", "False": "opponent"}),
    "rotation": _number,
    "eidolonI": _eidolon,
    "eidolonII": _eidolon,
    "eidolonIII": _eidolon,
    "uniform-noise": _number,
    "sketch": _single,
    "stylized": _single,
    "edge": _single,
    "silhouette": _single,
    "cue-conflict": _single,
}
#: toolbox manipulations whose levels are not ordered by difficulty (no psychometric fit)
UNORDERED_MANIPULATIONS = {"rotation"}


def toolbox_dataset(path, imagenames: pd.Series, subject: str = "") -> str:
    """The dataset a model-vs-human file belongs to: the start of its file name when the name
    follows the toolbox's ``<dataset>_<subj>_session...`` (``cue-conflict_resnet50_session-1``)
    or is a released dataset, else the experiment code of its image names."""
    stem = Path(path).stem
    first, _, rest = stem.partition("_")
    if first in TOOLBOX_LEVELS or (subject and rest.startswith(f"{subject}_session")):
        return first
    codes = imagenames.str.extract(TOOLBOX_PREFIX)[1].dropna()
    return str(codes.iloc[0]) if len(codes) else first


def toolbox_level(dataset: str, code) -> tuple[str, float]:
    """(level, numeric level or NaN) of one model-vs-human condition code."""
    code = str(code).strip()
    decode = TOOLBOX_LEVELS.get(dataset, _number)
    return decode(code)


def _as_bool(series: pd.Series, path, column: str) -> np.ndarray:
    text = series.astype(str).str.strip().str.lower()
    bad = ~text.isin(_TRUE | _FALSE)
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DatasetError(f"'{series.iloc[i]}' is not true/false", path=path, row=i + 1,
                           column=column, fix="write True or False (or 1/0)")
    return text.isin(_TRUE).to_numpy()


def _closest_missing(columns) -> tuple[str, list[str]]:
    present = set(columns)
    # the layout with most of its columns present; on a tie, the one missing fewest
    name, required = max(LAYOUTS.items(), key=lambda kv: (len(set(kv[1]) & present),
                                                          -len(set(kv[1]) - present)))
    return name, [c for c in required if c not in present]


def toolbox_image_id(imagename: str) -> str:
    """``0001_cop_s01_airplane1.png`` -> ``airplane1.png`` (the image, whoever saw it)."""
    match = TOOLBOX_PREFIX.match(str(imagename))
    return match.group(4) if match else str(imagename)


def _from_trials(df: pd.DataFrame, path, warnings: list[str]) -> pd.DataFrame:
    keep = np.ones(len(df), dtype=bool)
    if "block" in df.columns:
        keep &= df["block"].astype(str).str.strip().str.lower() != "practice"
    repeat = _as_bool(df["repeat"], path, "repeat") if "repeat" in df.columns \
        else np.zeros(len(df), bool)
    if "error" in df.columns:
        failed = keep & (df["error"].astype(str).str.strip() != "")
        if failed.any():
            warnings.append(f"{path}: {int(failed.sum())} trial(s) left out because "
                            f"playback failed (column 'error')")
        keep &= ~failed
    correct = _as_bool(df["correct"], path, "correct")
    task = df["task"].astype(str).str.strip()
    label, response = df["label"].astype(str).str.strip(), df["response"].astype(str).str.strip()
    corr = task == "correspondence"
    # the answer key: same/different (older files keep the class label: derive it, as the
    # experiment scores it: a semantic swap is 'different', anything else 'same')
    manipulation = df["manipulation"].astype(str).str.strip()
    key = np.where(manipulation == "semantic_swap", "different", "same")
    keyed = label.isin(CORRESPONDENCE_ANSWERS)
    label = label.where(~corr | keyed, pd.Series(key, index=label.index))
    no_question = corr & manipulation.isin(ONE_MODALITY)
    if (keep & no_question).any():
        warnings.append(f"{path}: {int((keep & no_question).sum())} correspondence trial(s) "
                        f"of one-modality stimuli (audio_only, visual_only) left out: there is "
                        f"no sound-picture question to score")
        keep &= ~no_question.to_numpy()
    response = response.where(~corr, response.replace(CORRESPONDENCE_NAMES))
    out = pd.DataFrame({
        "observer": df["participant"].astype(str).str.strip(), "observer_type": "human",
        "task": task, "stimulus_id": df["stimulus_id"].astype(str).str.strip(),
        "label": label, "response": response, "correct": correct,
        "manipulation": df["manipulation"].astype(str).str.strip(),
        "level": df["level"].astype(str).str.strip(),
        "rt": pd.to_numeric(df["rt"], errors="coerce"), "row": np.arange(1, len(df) + 1),
        "repeat": repeat,
        "shown": list(zip(pd.to_numeric(df.get("session", 1), errors="coerce"),
                          pd.to_numeric(df["trial"], errors="coerce")))})
    for column in TIMING_NUMBERS:
        out[column] = pd.to_numeric(df[column], errors="coerce") if column in df.columns \
            else np.nan
    if "timing_ok" in df.columns:
        text = df["timing_ok"].astype(str).str.strip().str.lower()
        out["timing_ok"] = text.map(lambda t: False if t in _FALSE - {""} else
                                    (True if t in _TRUE else None)).to_numpy(object)
    else:
        out["timing_ok"] = None
    return out[keep]


def _from_predictions(df: pd.DataFrame, path) -> pd.DataFrame:
    label = df["label"].astype(str).str.strip().replace(CORRESPONDENCE_NAMES)
    task = np.where(label.isin(CORRESPONDENCE_ANSWERS), "correspondence", "classify")
    return pd.DataFrame({
        "observer": df["model"].astype(str).str.strip(), "observer_type": "model",
        "task": task, "stimulus_id": df["stimulus_id"].astype(str).str.strip(), "label": label,
        "response": df["response"].astype(str).str.strip().replace(CORRESPONDENCE_NAMES),
        "correct": _as_bool(df["correct"], path, "correct"),
        "manipulation": df["manipulation"].astype(str).str.strip(),
        "level": df["level"].astype(str).str.strip(), "rt": np.nan,
        "row": np.arange(1, len(df) + 1)})


def _from_toolbox(df: pd.DataFrame, path, observer_type: str) -> pd.DataFrame:
    names = df["imagename"].astype(str).str.strip()
    subject = df["subj"].astype(str).str.strip()
    dataset = toolbox_dataset(path, names, subject.iloc[0] if len(subject) else "")
    category = df["category"].astype(str).str.strip()
    response = df["object_response"].astype(str).str.strip()
    codes = df["condition"].astype(str).str.strip()
    decoded = {c: toolbox_level(dataset, c) for c in codes.unique()}
    if observer_type == "human":
        subject = dataset + ":" + subject
    return pd.DataFrame({
        "observer": subject, "observer_type": "",
        "task": "classify", "stimulus_id": [toolbox_image_id(n) for n in names],
        "label": category, "response": response, "correct": (category == response).to_numpy(),
        "manipulation": dataset, "level": codes.map(lambda c: decoded[c][0]),
        "level_value": codes.map(lambda c: decoded[c][1]).astype(float),
        "rt": pd.to_numeric(df["rt"], errors="coerce"), "row": np.arange(1, len(df) + 1)})


def read_observer_file(path, observer_type: str, *, explicit: bool = True,
                       warnings: list[str] | None = None) -> pd.DataFrame | None:
    """One CSV file as observer trials. ``explicit=False`` (a file found in a folder) returns
    None for a file in no known layout instead of raising."""
    warnings = [] if warnings is None else warnings
    if Path(path).suffix.lower() == ".tsv":  # a BIDS dataset's _beh.tsv (experiments.bids)
        from ..experiments.bids import read_beh_tsv
        df = read_beh_tsv(path)
    else:
        df = read_csv(path)
    df.columns = [str(c).strip() for c in df.columns]
    if "Session" in df.columns and "session" not in df.columns and "subj" in df.columns:
        df = df.rename(columns={"Session": "session"})   # model-vs-human spells it both ways
    layout = detect(df.columns)
    if layout is None:
        name, missing = _closest_missing(df.columns)
        if not explicit:
            warnings.append(f"{path}: skipped, not a trials, predictions or model-vs-human "
                            f"file (closest: {name}, which needs column(s) "
                            f"{', '.join(missing)})")
            return None
        raise DatasetError(
            f"no column '{missing[0]}' (a {name} file needs {', '.join(LAYOUTS[name])})",
            path=path, column=missing[0],
            fix="give our experiment's trials CSV, a predictions CSV or model-vs-human raw data")
    if layout == "trials":
        out = _from_trials(df, path, warnings)
    elif layout == "predictions":
        out = _from_predictions(df, path)
    else:
        out = _from_toolbox(df, path, observer_type)
    if observer_type == "human" and layout == "predictions":
        raise DatasetError("this is a predictions file (models), given as human data",
                           path=path, fix="pass it with --models")
    if observer_type == "model" and layout == "trials":
        raise DatasetError("this is a human trials file, given as model predictions",
                           path=path, fix="pass it with --humans")
    out["observer_type"] = observer_type
    out["file"] = str(path)
    blank = out["stimulus_id"] == ""
    if blank.any():
        i = int(out.loc[blank, "row"].iloc[0])
        column = "imagename" if layout == "model-vs-human" else "stimulus_id"
        raise DatasetError("empty stimulus id", path=path, row=i, column=column,
                           fix="every trial needs the stimulus it showed")
    return out


def expand_paths(paths) -> list[tuple[Path, bool]]:
    """Files as given, and the CSVs of folders (recursively, sorted); ``(path, explicit)``."""
    found = []
    for p in paths:
        p = Path(p)
        if p.is_dir() and (p / "dataset_description.json").is_file():
            from ..experiments.bids import beh_files   # a BIDS dataset: its *_beh.tsv files
            files = beh_files(p, one_task=True)
            if not files:
                raise DatasetError("the BIDS dataset holds no *_beh.tsv files", path=p,
                                   fix="export the trials with python -m avmit_psych."
                                       "experiments bids, or name the trials files")
            found += [(f, False) for f in files]
        elif p.is_dir():
            files = sorted(f for f in p.rglob("*.csv") if not f.name.startswith("."))
            if not files:
                raise DatasetError("the folder holds no CSV files", path=p,
                                   fix="name a folder of trials or predictions CSVs, or files")
            found += [(f, False) for f in files]
        elif p.exists():
            found.append((p, True))
        else:
            raise DatasetError("file not found", path=p, fix="check the path")
    return found


def _check_duplicates(trials: pd.DataFrame) -> None:
    dup = trials.duplicated(["observer", "stimulus_id"], keep=False)
    if dup.any():
        first = trials[dup].iloc[0]
        again = trials[dup & (trials["observer"] == first["observer"]) &
                       (trials["stimulus_id"] == first["stimulus_id"])]
        where = "; ".join(f"{f} row {r}" for f, r in zip(again["file"], again["row"]))
        raise DatasetError(
            f"observer '{first['observer']}' has {len(again)} trials of stimulus "
            f"'{first['stimulus_id']}' ({where})", path=first["file"], row=int(first["row"]),
            column="stimulus_id",
            fix="keep one trial per observer and stimulus (remove re-runs, or mark second "
                "showings repeat=True)")


def _check_labels(trials: pd.DataFrame, warnings: list[str]) -> None:
    per_stim = trials.groupby("stimulus_id")["label"].nunique()
    clash = per_stim[per_stim > 1]
    if len(clash):
        sid = clash.index[0]
        rows = trials[trials["stimulus_id"] == sid].drop_duplicates("label")
        a, b = rows.iloc[0], rows.iloc[1]
        raise DatasetError(
            f"stimulus '{sid}' is labelled '{a['label']}' here and '{b['label']}' in {b['file']} "
            f"row {b['row']}", path=a["file"], row=int(a["row"]), column="label",
            fix="both sides must use the same stimulus ids and class names")
    humans = set(trials.loc[trials["observer_type"] == "human", "label"].unique())
    models = set(trials.loc[trials["observer_type"] == "model", "label"].unique())
    if humans and models and humans != models:
        only_h, only_m = sorted(humans - models), sorted(models - humans)
        if only_h and only_m:
            raise DatasetError(
                f"the humans' labels and the models' labels differ (humans only: "
                f"{', '.join(only_h[:5])}; models only: {', '.join(only_m[:5])})",
                fix="use the same class names for humans and models")
        side, extra = ("humans", only_h) if only_h else ("models", only_m)
        warnings.append(f"labels seen only by the {side}: {', '.join(extra[:8])}"
                        f"{' ...' if len(extra) > 8 else ''}")


def _check_shared(trials: pd.DataFrame, warnings: list[str]) -> None:
    observers = trials["observer"].unique()
    if len(observers) < 2:
        return
    seen = trials.groupby("stimulus_id")["observer"].nunique()
    if (seen < 2).all():
        # legitimate in a Latin-square study with one participant per list: accuracies and
        # their tests stand, only trial-by-trial comparisons need shared stimuli
        warnings.append("no stimulus was seen by two observers, so there is no error "
                        "consistency (in a Latin-square study, participants of the same "
                        "list share stimuli: plan two or more per list)")
    if trials["observer_type"].nunique() == 2:
        by_type = trials.groupby("stimulus_id")["observer_type"].nunique()
        if (by_type < 2).all():
            raise DatasetError(
                "no stimulus was seen by both a human and a model",
                path=trials["file"].iloc[0], column="stimulus_id",
                fix="run the models on the stimulus manifest the humans saw "
                    "(python -m avmit_psych.analysis predict)")
    human_conditions = set(trials.loc[trials["observer_type"] == "human", "condition"].unique())
    models = trials.loc[trials["observer_type"] == "model", ["observer", "condition"]]
    for model, rows in models.drop_duplicates().groupby("observer"):
        missing = sorted(human_conditions - set(rows["condition"]))
        if missing:
            warnings.append(f"model {model} has no trials in condition(s) "
                            f"{', '.join(missing[:6])}{' ...' if len(missing) > 6 else ''} "
                            f"that the humans saw; those comparisons are left empty")


def load_observations(humans=(), models=(), *,
                      exclude_timing_failures: bool = True) -> Observations:
    """Read every file (or folder of CSVs) of both sides into one :class:`Observations`.

    ``exclude_timing_failures``: leave out human trials the experiment flagged
    ``timing_ok = False`` (audio start off by more than the tolerance, or a dropped frame);
    they stay in ``Observations.timing`` and are counted in ``timing_excluded``.

    Raises :class:`DatasetError` for missing columns, duplicated trials of one observer and
    stimulus, a stimulus labelled differently on two sides, label sets that differ between
    humans and models, and data with no stimulus shared between observers.
    """
    warnings: list[str] = []
    frames, files = [], []
    for side, paths in (("human", humans), ("model", models)):
        for path, explicit in expand_paths(paths or ()):
            part = read_observer_file(path, side, explicit=explicit, warnings=warnings)
            if part is None:
                continue
            if part.empty:
                warnings.append(f"{path}: no trials to analyse (practice or header only)")
                continue
            frames.append(part)
            files.append(str(path))
    if not frames:
        why = ""
        if warnings:
            shown = "; ".join(warnings[:3])
            more = f" (and {len(warnings) - 3} more)" if len(warnings) > 3 else ""
            why = f": {len(warnings)} file(s) skipped: {shown}{more}"
        raise DatasetError(f"no trials found in the given files{why}",
                           fix="give trials CSVs (--humans) and/or predictions CSVs (--models), "
                               "or model-vs-human raw data")
    trials = pd.concat(frames, ignore_index=True)
    both = trials.groupby("observer")["observer_type"].nunique()
    if (both > 1).any():
        name = both[both > 1].index[0]
        raise DatasetError(f"'{name}' names both a human and a model",
                           path=trials.loc[trials["observer"] == name, "file"].iloc[0],
                           fix="give models and participants different names")
    if "level_value" not in trials.columns:
        trials["level_value"] = np.nan
    decoded = trials["level_value"].notna()
    trials.loc[~decoded, "level_value"] = [level_number(v) for v in
                                           trials.loc[~decoded, "level"]]
    pairs = trials.groupby(["manipulation", "level"], sort=False)["level_value"].first()
    pairs = pairs.reset_index()
    pairs["condition"] = [condition_name(m, v, x) for m, v, x in
                          zip(pairs["manipulation"], pairs["level"], pairs["level_value"])]
    trials = trials.drop(columns="level_value").merge(pairs, on=["manipulation", "level"],
                                                      how="left", sort=False)
    _check_condition_names(trials)
    timing, trials, excluded = _timing(trials, exclude_timing_failures)
    if excluded:
        warnings.append(f"{excluded:,} human trial(s) flagged timing_ok = False (audio start "
                        f"error over the tolerance, or a dropped frame) were left out")
    trials, repeats = _split_repeats(trials)
    _check_duplicates(trials)
    _check_labels(trials, warnings)
    _check_shared(trials, warnings)
    tasks = trials["task"].unique()
    if len(tasks) > 1:
        raise DatasetError(f"the files mix tasks ({', '.join(sorted(map(str, tasks)))})",
                           fix="compare one task at a time (classify or correspondence): give "
                               "that task's files, e.g. data/*_task-classify_beh.csv or, in a "
                               "BIDS dataset, bids/sub-*/ses-*/beh/*_task-classify_beh.tsv")
    trials = trials.drop(columns="row")[OBSERVER_COLUMNS]
    return Observations(trials=trials.reset_index(drop=True), warnings=warnings, files=files,
                        repeats=repeats, timing=timing, timing_excluded=excluded)


def _timing(trials: pd.DataFrame, exclude: bool) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """The human trials' timing table, the trials without the flagged ones (when
    ``exclude``), and how many were left out."""
    if "timing_ok" not in trials.columns:
        return pd.DataFrame(columns=TIMING_COLUMNS), trials, 0
    human = trials["observer_type"] == "human"
    timing = trials.loc[human, TIMING_COLUMNS].reset_index(drop=True)
    flagged = human & trials["timing_ok"].map(lambda v: v is False).astype(bool)
    kept = trials[~flagged] if exclude else trials
    kept = kept.drop(columns=["timing_ok", *TIMING_NUMBERS])
    return timing, kept, int(flagged.sum()) if exclude else 0


def _split_repeats(trials: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The first showing of each stimulus is the measured trial; later showings of a stimulus
    that the data mark as repeated (``repeat`` true on any of its rows) become
    :data:`REPEAT_COLUMNS` rows beside the first showing's answer. "First" is by session and
    trial number, whichever row carries the flag (older plans could show the repeat first).
    Unmarked second trials stay, for :func:`_check_duplicates` to refuse."""
    if "repeat" not in trials.columns:
        return trials, pd.DataFrame(columns=REPEAT_COLUMNS)
    trials = trials.assign(repeat=trials["repeat"].fillna(False).astype(bool))
    keys = ["observer", "stimulus_id"]
    marked = trials.groupby(keys)["repeat"].transform("any")
    if not marked.any():
        return trials.drop(columns=["repeat", "shown"], errors="ignore"), \
            pd.DataFrame(columns=REPEAT_COLUMNS)
    shown = trials["shown"].map(lambda v: v if isinstance(v, tuple) else (np.nan, np.nan))
    order = pd.DataFrame(shown.tolist(), index=trials.index, columns=["_s", "_t"])
    ranked = trials.join(order).sort_values(keys + ["_s", "_t", "row"], kind="stable")
    first = ~ranked.duplicated(keys, keep="first")
    later = ranked[marked.reindex(ranked.index) & ~first]
    firsts = ranked[first][keys + ["response", "correct"]].rename(
        columns={"response": "first_response", "correct": "first_correct"})
    repeats = later.merge(firsts, on=keys, how="left")[REPEAT_COLUMNS]
    kept = trials.drop(index=later.index).drop(columns=["repeat", "shown"])
    return kept, repeats.reset_index(drop=True)


def _check_condition_names(trials: pd.DataFrame) -> None:
    """Two spellings of one numeric level (``5`` and ``5.0``) are one condition; two different
    levels never share a condition name."""
    clash = trials.drop_duplicates(["condition", "level_value"]).groupby("condition").size()
    if (clash > 1).any():
        name = clash[clash > 1].index[0]
        rows = trials[trials["condition"] == name].drop_duplicates("level")
        raise DatasetError(f"condition '{name}' has different levels "
                           f"({', '.join(map(str, rows['level'][:3]))})",
                           path=rows["file"].iloc[0], column="level",
                           fix="write each level one way")


def condition_table(trials: pd.DataFrame) -> pd.DataFrame:
    """One row per condition: manipulation, level (as written), level_value, in a stable
    reading order: ``none`` first, then each manipulation with numeric levels by level (its
    text levels after them), then the manipulations whose levels are all text."""
    cond = trials.drop_duplicates("condition")[["condition", "manipulation", "level",
                                                "level_value"]]
    levelled = set(cond.loc[cond["level_value"].notna(), "manipulation"])
    order = cond.assign(first=cond["manipulation"] != "none",
                        other=~cond["manipulation"].isin(levelled),
                        text=cond["level_value"].isna(),
                        lv=cond["level_value"].fillna(np.inf))
    order = order.sort_values(["first", "other", "manipulation", "text", "lv", "condition"])
    return order[["condition", "manipulation", "level", "level_value"]].reset_index(drop=True)
