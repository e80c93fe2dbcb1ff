"""The public API: ``import avmit_psych as ap``, one call per step of a study, pingouin-style.

Every analysis takes a tidy DataFrame (one row per observer and trial, or per video) and the
names of its columns, with defaults that match the toolkit's data contracts
(``../shared/ARCHITECTURE.md``: trials, predictions, manifest, ratings), and returns a tidy
DataFrame, or a small result object whose attributes are DataFrames. The work is done by the
stage modules; this module only shapes tables for them, so a function here and its stage
module's counterpart give the same numbers (the module each one wraps is named in its
"See Also"). Every docstring holds a runnable example, executed by ``tests/test_api.py``.

Nothing heavy is imported here at import time: TensorFlow, PsychoPy, moviepy, Dask and Optuna
are imported by the call that needs them.

The flow, one call a step::

    ratings    simulate_ratings -> aggregate_ratings -> reliability, rater_agreement -> select
    stimuli    synthetic_videos -> generate_suite -> verify_suite      (synthetic_manifest)
    study      plan_study; simulate_observers, simulate_comparison
    features   extract -> load_embeddings     (write_tfrecord, read_tfrecord, synthetic_embeddings)
    models     model_config -> train -> predict; search
    compare    observations -> compare; accuracy, error_consistency, single_case,
               crawford_howell, sdt, psychometric_fit
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import __all__ as _NAMES

__all__ = list(_NAMES)  # the names are listed once, in the package's __init__

#: The condition of trials when the analysis is asked for none (``condition=None``).
ALL_TRIALS = "all"
_TRUE = {"true", "1", "1.0", "yes", "t"}
_FALSE = {"false", "0", "0.0", "no", "f"}


# ---------------------------------------------------------------------------------------------
# Shaping tidy tables for the analyses
# ---------------------------------------------------------------------------------------------
def _error(problem: str, *, column=None, fix=None):
    from .dataset.schema import DatasetError
    return DatasetError(problem, column=column, fix=fix)


def _need(data: pd.DataFrame, column: str, argument: str) -> pd.Series:
    if column not in data.columns:
        shown = ", ".join(map(str, data.columns[:12]))
        raise _error(f"no column '{column}' in the data", column=column,
                     fix=f"name the column with {argument}= (the data have: {shown})")
    return data[column]


def _truth(values: pd.Series, column: str) -> tuple[np.ndarray, np.ndarray]:
    """(correct, known): booleans from bool/0-1/text; missing values (a trial with no answer
    key, e.g. a correspondence trial of a one-modality stimulus) are not known."""
    known = values.notna().to_numpy()
    text = values.astype(str).str.strip().str.lower()
    bad = known & ~text.isin(_TRUE | _FALSE).to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        from .dataset.schema import DatasetError
        raise DatasetError(f"'{values.iloc[i]}' is not true/false", row=i + 1, column=column,
                           fix="give correctness as booleans (or 1/0)")
    return text.isin(_TRUE).to_numpy() & known, known


def _level_text(values) -> np.ndarray:
    return np.array(["" if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA
                     else str(v).strip() for v in values], dtype=object)


def _conditions(data: pd.DataFrame, condition: str | None) -> pd.DataFrame:
    """condition, manipulation, level, level_value of every row.

    ``condition`` names a column; when that column is absent and the data have
    ``manipulation`` and ``level`` (trials, predictions, manifests), the condition is
    ``manipulation=level`` as ``compare`` names it (``audio_noise=-5``, ``semantic_swap``);
    ``None``: every trial is one condition, ``all``.
    """
    from .analysis.observers import condition_name, level_number
    n = len(data)
    has_levels = {"manipulation", "level"} <= set(data.columns)
    if condition is None:
        return pd.DataFrame({"condition": [ALL_TRIALS] * n, "manipulation": [ALL_TRIALS] * n,
                             "level": [""] * n, "level_value": np.full(n, np.nan)})
    if condition not in data.columns and not (condition == "condition" and has_levels):
        _need(data, condition, "condition")
    if has_levels:
        manipulation = data["manipulation"].astype(str).str.strip().to_numpy(object)
        level = _level_text(data["level"])
        value = data["level_value"].to_numpy(float) if "level_value" in data.columns else \
            np.array([level_number(v) for v in level])
    if condition not in data.columns:  # derived from manipulation and level
        pairs = pd.DataFrame({"m": manipulation, "l": level, "v": value})
        names = {(m, l): condition_name(m, l, v) for m, l, v in
                 pairs.drop_duplicates(["m", "l"]).itertuples(index=False)}
        cond = np.array([names[(m, l)] for m, l in zip(manipulation, level)], dtype=object)
        return pd.DataFrame({"condition": cond, "manipulation": manipulation, "level": level,
                             "level_value": value})
    cond = data[condition].astype(str).str.strip().to_numpy(object)
    out = pd.DataFrame({"condition": cond})
    # the condition's manipulation and level, when each condition has exactly one of each
    if has_levels and pd.DataFrame({"c": cond, "m": manipulation, "l": level}) \
            .groupby("c")[["m", "l"]].nunique().max().max() <= 1:
        return out.assign(manipulation=manipulation, level=level, level_value=value)
    return out.assign(manipulation=cond, level="", level_value=np.nan)


def _types(data: pd.DataFrame, observer: pd.Series, observer_type: str | None,
           models=None) -> np.ndarray:
    """Each row's observer type: the ``observer_type`` column (None: that column when the data
    have one), or ``model`` for the observers named in ``models`` and ``human`` for the rest,
    or ``''`` when nothing says."""
    if models is not None:
        names = {str(m) for m in ([models] if isinstance(models, str) else models)}
        return np.where(observer.isin(names), "model", "human").astype(object)
    if observer_type is None:
        if "observer_type" not in data.columns:
            return np.full(len(data), "", dtype=object)
        observer_type = "observer_type"
    return _need(data, observer_type, "observer_type").astype(str).str.strip().to_numpy(object)


def _observer_trials(data: pd.DataFrame, *, observer: str, correct: str,
                     condition: str | None, observer_type: str | None = None, models=None,
                     stimulus: str | None = None, **columns: str) -> pd.DataFrame:
    """The analyses' own long layout (``analysis.observers.OBSERVER_COLUMNS``) from a tidy
    table and its column names; rows without a known correctness are left out."""
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame, not {type(data).__name__}")
    who = _need(data, observer, "observer").astype(str).str.strip()
    right, known = _truth(_need(data, correct, "correct"), correct)
    out = _conditions(data, condition)
    out.insert(0, "observer", who.to_numpy(object))
    out.insert(1, "observer_type", _types(data, who, observer_type, models))
    out["correct"] = right
    if stimulus is not None:
        out["stimulus_id"] = _need(data, stimulus, "stimulus").astype(str).str.strip() \
            .to_numpy(object)
    for name, column in columns.items():
        out[name] = _need(data, column, name).astype(str).str.strip().to_numpy(object)
    if "task" not in out.columns:
        out["task"] = data["task"].astype(str).to_numpy(object) if "task" in data.columns \
            else "classify"
    return out[known].reset_index(drop=True)


def _as_suite(suite, folder: Path):
    """A :class:`~avmit_psych.stimuli.suite.Suite` from a Suite, a YAML path or a mapping in
    the suite-file layout (written to ``folder`` and read back, so it is checked alike)."""
    from .stimuli.suite import Suite, load_suite
    if isinstance(suite, Suite):
        return suite
    if isinstance(suite, dict):
        import yaml
        path = folder / f"{suite.get('name', 'suite')}.yaml"
        path.write_text(yaml.safe_dump(suite, sort_keys=False), encoding="utf-8")
        return load_suite(path)
    return load_suite(suite)


def _csv_of(table, folder: Path, name: str) -> Path:
    """A path for a table given as a path or a DataFrame (written into ``folder``)."""
    if isinstance(table, pd.DataFrame):
        from .dataset.schema import write_csv
        return write_csv(table, folder / f"{name}.csv")
    return Path(table)


# ---------------------------------------------------------------------------------------------
# Ratings
# ---------------------------------------------------------------------------------------------
def simulate_ratings(n_videos: int = 57_177, *, n_raters: int = 11, seed: int = 0, **options):
    """Simulate an AVMIT-like annotation campaign (raters, their ratings, ground truth).

    Each video has a hidden true rating (1 absent, 2 present, 3 present and most prominent);
    raters with their own accuracy and response bias rate it, most videos 3 times, some more,
    a few fewer (as in the released data).

    Parameters
    ----------
    n_videos : int
        Videos in the pool (paper: 57,177).
    n_raters : int
        Raters (paper: 11); each video's raters are distinct.
    seed : int
        Everything is a function of the seed.
    **options
        Further settings of :func:`avmit_psych.dataset.synthetic.ratings.simulate_ratings`
        (``p_extra``, ``p_fewer``, ``n_ground_truth``, ``classes`` ...).

    Returns
    -------
    SyntheticRatings
        ``raw`` (raw ratings: filename, AVMIT_label, MIT_label, video_location, rating,
        participant, session, trial, timestamp, rt, replays, ground_truth), ``video_counts``,
        ``truth``, ``raters``, ``ground_truth``, ``fps`` and ``exclusions``: all DataFrames.

    See Also
    --------
    aggregate_ratings : raw ratings -> per-video counts.
    avmit_psych.dataset.synthetic.ratings.simulate_ratings : what this calls.

    Examples
    --------
    >>> import avmit_psych as ap
    >>> sim = ap.simulate_ratings(500, seed=1)
    >>> sim.raw[["filename", "AVMIT_label", "rating", "participant"]].shape
    (1532, 4)
    >>> sorted(sim.raw["rating"].unique().tolist())
    [1, 2, 3]
    """
    from .dataset.synthetic.ratings import simulate_ratings
    return simulate_ratings(n_videos, n_raters=n_raters, seed=seed, **options)


def aggregate_ratings(raw: pd.DataFrame, *, min_ratings: int = 3):
    """Count each video's ratings: raw ratings (one row per rating) -> r1, r2, r3 per video.

    Parameters
    ----------
    raw : DataFrame
        Raw ratings: ``filename, AVMIT_label, MIT_label, video_location, rating`` (1-3); a
        ``participant`` column, when present, is checked for one rating per video and rater.
    min_ratings : int
        Videos with fewer ratings are dropped (paper: 3).

    Returns
    -------
    Aggregation
        ``video_ratings`` (filename, r1, r2, r3, AVMIT_label, MIT_label, video_location,
        tfrecord_filename; the video-ratings contract) and ``dropped`` (filename,
        AVMIT_label, n_ratings).

    See Also
    --------
    avmit_psych.dataset.ratings.aggregate : what this calls.

    Examples
    --------
    >>> import pandas as pd
    >>> import avmit_psych as ap
    >>> raw = pd.DataFrame({"filename": ["barking/a.mp4"] * 3 + ["diving/b.mp4"] * 2,
    ...                     "AVMIT_label": ["barking"] * 3 + ["diving"] * 2,
    ...                     "MIT_label": ["barking"] * 3 + ["diving"] * 2,
    ...                     "video_location": "training", "rating": [3, 3, 2, 1, 3]})
    >>> agg = ap.aggregate_ratings(raw)
    >>> print(agg.video_ratings[["filename", "r1", "r2", "r3"]].to_string(index=False))
         filename  r1  r2  r3
    barking/a.mp4   0   1   2
    >>> print(agg.dropped.to_string(index=False))
        filename AVMIT_label  n_ratings
    diving/b.mp4      diving          2
    """
    from .dataset import ratings
    return ratings.aggregate(raw, min_ratings=min_ratings)


def reliability(video_ratings: pd.DataFrame) -> pd.DataFrame:
    """Inter-rater reliability of per-video counts: Fleiss' kappa and Krippendorff's alpha.

    Fleiss' kappa (Fleiss 1971) is computed by statsmodels over the videos with the most
    common number of ratings; Krippendorff's alpha (Krippendorff 2011), ordinal and nominal,
    by the ``krippendorff`` package over all videos. Tested against the published worked
    examples (Fleiss 1971: kappa 0.430; Krippendorff 2011: alpha 0.743 nominal, 0.815
    ordinal).

    Parameters
    ----------
    video_ratings : DataFrame
        Per-video counts ``r1, r2, r3`` (:func:`aggregate_ratings`' ``video_ratings``, or the
        released ``AVMIT_train.csv``).

    Returns
    -------
    DataFrame
        measure, value, n_videos, n_ratings, note.

    See Also
    --------
    avmit_psych.analysis.reliability.reliability : what this calls.

    Examples
    --------
    >>> import avmit_psych as ap
    >>> sim = ap.simulate_ratings(2000, seed=1)
    >>> table = ap.reliability(ap.aggregate_ratings(sim.raw).video_ratings)
    >>> print(table[["measure", "n_videos"]].to_string(index=False))
                         measure  n_videos
                  fleiss_kappa      1915
    krippendorff_alpha_ordinal      1972
    krippendorff_alpha_nominal      1972
    >>> bool(table["value"].between(0, 1).all())
    True
    """
    from .analysis import reliability as rel
    return rel.reliability(video_ratings)


def rater_agreement(raw: pd.DataFrame, ground_truth: pd.DataFrame | None = None, *,
                    rater: str = "participant") -> pd.DataFrame:
    """Per rater: how many ratings, their distribution, bias, and agreement with the others.

    Agreement with the majority of the *other* raters of the same video is counted where more
    than half of them gave one rating; with ``ground_truth``, agreement with the ground-truth
    rating on the videos that have one.

    Parameters
    ----------
    raw : DataFrame
        Raw ratings with ``filename``, ``rating`` and the rater column.
    ground_truth : DataFrame, optional
        ``filename, rating`` of the ground-truth videos.
    rater : str
        The column naming the rater.

    Returns
    -------
    DataFrame
        One row per rater: n_ratings, prop_1, prop_2, prop_3, mean_rating,
        n_majority_compared, majority_agreement, n_ground_truth, ground_truth_agreement.

    See Also
    --------
    avmit_psych.analysis.reliability.rater_agreement : what this calls.

    Examples
    --------
    >>> import avmit_psych as ap
    >>> sim = ap.simulate_ratings(2000, n_raters=5, seed=1)
    >>> raters = ap.rater_agreement(sim.raw, sim.ground_truth)
    >>> raters["participant"].tolist()
    ['P01', 'P02', 'P03', 'P04', 'P05']
    >>> bool((raters["majority_agreement"] > 0.7).all())
    True
    """
    from .analysis import reliability as rel
    return rel.rater_agreement(raw, ground_truth, rater=rater)


def select(video_ratings: pd.DataFrame, *, classes=None, per_class: int = 60, seed: int = 0,
           fps: pd.DataFrame | None = None, exclude: pd.DataFrame | None = None, **options):
    """The paper's selection: class filter, the controlled test set and the training sets.

    Classes with at least 500 videos rated most prominent by a majority (>= 2 raters) enter
    the test set; ``per_class`` unanimous videos of each are sampled (after the optional
    frame-rate filter and manual exclusions); the AVMIT (prominent by majority) and MIT-16 (all
    videos of the test classes) training sets are built without any test video, balanced per
    class and split 90/10.

    Parameters
    ----------
    video_ratings : DataFrame
        Per-video counts (:func:`aggregate_ratings`' ``video_ratings``).
    classes : list of str, optional
        The test classes (default: those passing the class filter).
    per_class : int
        Test videos per class (paper: 60).
    seed : int
        The samples are a function of the seed and of the candidate sets.
    fps : DataFrame, optional
        ``filename, fps``: videos not at 30 fps are left out of the test set.
    exclude : DataFrame, optional
        ``filename, reason``: videos excluded by hand.
    **options
        ``min_class_videos`` (500), ``min_votes`` (2), ``avmit_per_class``,
        ``mit16_per_class``, ``validation_fraction`` (0.1), ``required_fps`` (30).

    Returns
    -------
    Selection
        ``test_set``, ``avmit_train``, ``avmit_validation``, ``mit16_train``,
        ``mit16_validation`` (the released layouts) and ``report`` (step, label, n_videos).

    See Also
    --------
    avmit_psych.dataset.ratings.select : what this calls.

    Examples
    --------
    >>> import avmit_psych as ap
    >>> sim = ap.simulate_ratings(6000, seed=1)
    >>> ratings = ap.aggregate_ratings(sim.raw).video_ratings
    >>> sel = ap.select(ratings, per_class=5, min_class_videos=50, seed=1)
    >>> len(sel.test_set), sel.test_set["AVMIT_label"].nunique()
    (80, 16)
    >>> sel.test_set["new_filename"].iloc[0]
    'barking/barking_1.mp4'
    """
    from .dataset import ratings
    return ratings.select(video_ratings, classes=classes, per_class=per_class, seed=seed,
                          fps=fps, exclude=exclude, **options)


# ---------------------------------------------------------------------------------------------
# Stimuli
# ---------------------------------------------------------------------------------------------
def synthetic_videos(out_dir, *, per_class: int = 2, classes=None, seed: int = 0,
                     duration_s: float = 3.0, size=(160, 120), fps: int = 30) -> pd.DataFrame:
    """Write synthetic probe clips and return them as a test set with ``source_path``.

    Each clip (H.264/AAC ``.mp4``) shows a class-coloured square on a class background with one
    white flash frame at 1.0 s, and plays a class tone with a 2-ms click at the flash, so that
    offsets and noise levels can be measured on what a suite makes from it.

    Parameters
    ----------
    out_dir : str or Path
        Where ``<label>/<label>_<k>.mp4`` and ``test_set.csv`` are written.
    per_class : int
        Clips per class.
    classes : list of str, optional
        Default: the 16 AVMIT test classes.
    seed : int
        Seeds the tones' phases and noise.
    duration_s, size, fps
        Clip length (s, more than 1.0), frame size (width, height) and frame rate.

    Returns
    -------
    DataFrame
        The test-set layout (filename, AVMIT_label, MIT_label, video_location, new_filename,
        tfrecord_filename) plus ``source_path``: ready for :func:`generate_suite`.

    See Also
    --------
    avmit_psych.dataset.synthetic.clips.write_probe_clips : what this calls.

    Examples
    --------
    >>> import tempfile
    >>> import avmit_psych as ap
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     sources = ap.synthetic_videos(tmp, per_class=1, classes=["barking", "diving"],
    ...                                   duration_s=1.5)
    ...     print(sources[["new_filename", "AVMIT_label"]].to_string(index=False))
         new_filename AVMIT_label
    barking/barking_1.mp4     barking
      diving/diving_1.mp4      diving
    """
    from .dataset import schema
    from .dataset.synthetic.clips import write_probe_clips
    from .stimuli.generate import sources_from_test_set
    out_dir = Path(out_dir)
    csv = write_probe_clips(out_dir, out_dir / "test_set.csv", per_class=per_class,
                                      classes=schema.TEST_CLASSES if classes is None
                                      else tuple(classes), seed=seed, size=size, fps=fps,
                                      duration_s=duration_s)
    return sources_from_test_set(csv, out_dir)


def synthetic_manifest(suite, *, per_class: int = 60, classes=None,
                       seed: int = 0) -> pd.DataFrame:
    """The manifest a suite would have over invented source videos, without making a file.

    To try a study design before the stimuli exist, and for examples and tests. Levels as
    :func:`generate_suite` writes them (numbers as floats, the donor class for semantic swaps,
    ``''`` for none).

    Parameters
    ----------
    suite : Suite, str, Path or dict
        A suite file (``stimuli/suites/*.yaml``) or a mapping in its layout
        (``{"name": ..., "conditions": {"none": True, "audio_noise": {"levels": [...]}}}``).
    per_class : int
        Invented source videos per class.
    classes : list of str, optional
        Default: the 16 AVMIT test classes.
    seed : int
        Seeds the donors of semantic swaps and the stimuli's seeds.

    Returns
    -------
    DataFrame
        The stimulus-manifest contract: stimulus_id, path, source_filename, label,
        manipulation, level, level_unit, audio_source, seed, duration_s, fps, sample_rate,
        sha256.

    See Also
    --------
    avmit_psych.experiments.plan.synthetic_manifest : what this calls.

    Examples
    --------
    >>> import avmit_psych as ap
    >>> suite = {"name": "tiny", "conditions": {"none": True,
    ...                                         "audio_noise": {"levels": [0, -10]}}}
    >>> manifest = ap.synthetic_manifest(suite, per_class=2)
    >>> len(manifest)
    96
    >>> print(manifest[["stimulus_id", "manipulation", "level"]].head(3).to_string(index=False))
                      stimulus_id manipulation level
          barking/barking_1__none         none      
    barking/barking_1__audio_noise_0dB  audio_noise   0.0
    barking/barking_1__audio_noise_-10dB  audio_noise -10.0
    """
    from .dataset.schema import TEST_CLASSES
    from .experiments.plan import synthetic_manifest as make
    with tempfile.TemporaryDirectory() as tmp:
        s = _as_suite(suite, Path(tmp))
    return make(s, per_class=per_class, classes=TEST_CLASSES if classes is None
                else tuple(classes), seed=seed)


@dataclass
class SuiteResult:
    """What :func:`generate_suite` made: ``manifest`` (the stimuli, complete and verified),
    ``failures`` (stimulus_id, error) and ``verification`` (one row per stimulus, or None),
    and the suite's ``folder``."""

    manifest: pd.DataFrame
    failures: pd.DataFrame
    verification: pd.DataFrame | None
    folder: Path


def generate_suite(suite, sources: pd.DataFrame, out_dir, *, seed: int = 0, workers: int = 2,
                   verify: bool = True, progress: bool = False, cluster=None) -> SuiteResult:
    """Make a manipulated stimulus suite: every (source video, condition), verified, listed.

    Manipulations and their units: ``av_offset`` (ms, + = audio lags video), ``audio_noise``
    (SNR in dB), ``visual_noise`` (pixel SD on the 0-255 scale), ``blur``, ``contrast``,
    ``semantic_swap`` (the sound of another class's video), ``audio_only`` and
    ``visual_only``. Each stimulus is fsynced, renamed into place and journaled, so a killed run
    resumes; ``manifest.csv`` is written last and lists only stimuli that are complete and
    verified (offsets to 0.5 ms, SNR to 0.5 dB, noise SD to 10 %).

    Parameters
    ----------
    suite : Suite, str, Path or dict
        A suite file (``stimuli/suites/avmit_test_960.yaml``) or a mapping in its layout.
    sources : DataFrame or str
        The source videos: a test-set table with ``source_path``
        (:func:`synthetic_videos` returns one), or a test-set CSV whose videos are found
        beside it.
    out_dir : str or Path
        The suite's folder (stimuli, ``manifest.csv``, ``verify.csv``, ``failures.csv``).
    seed : int
        Seeds the noise and the swap donors.
    workers : int
        Processes on this machine.
    verify : bool
        Measure every stimulus against its manifest row (and list only those that pass).
    progress : bool
        Show a progress bar.
    cluster : str or distributed.Client, optional
        ``"local:N"`` or a Dask scheduler address: sources go to Dask workers.

    Returns
    -------
    SuiteResult
        ``manifest``, ``failures``, ``verification`` (DataFrames) and ``folder``.

    See Also
    --------
    verify_suite : measure a suite again.
    avmit_psych.stimuli.generate.generate : what this calls.

    Examples
    --------
    >>> import tempfile
    >>> import avmit_psych as ap
    >>> suite = {"name": "tiny", "container": "mov",
    ...          "conditions": {"none": True, "av_offset": {"levels": [100]}}}
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     sources = ap.synthetic_videos(f"{tmp}/videos", per_class=1,
    ...                                   classes=["barking", "diving"], duration_s=1.5)
    ...     made = ap.generate_suite(suite, sources, f"{tmp}/suite", workers=1)
    ...     print(made.manifest[["stimulus_id", "level_unit", "verified"]].to_string(index=False))
                            stimulus_id level_unit  verified
                barking/barking_1__none                 True
    barking/barking_1__av_offset_+100ms         ms      True
                  diving/diving_1__none                 True
      diving/diving_1__av_offset_+100ms         ms      True
    """
    from .stimuli import generate
    out_dir = Path(out_dir)
    if not isinstance(sources, pd.DataFrame):
        sources = generate.sources_from_test_set(sources, Path(sources).parent)
    with tempfile.TemporaryDirectory() as tmp:
        s = _as_suite(suite, Path(tmp))
    manifest, failures, verification = generate.generate(
        s, sources, out_dir, seed=seed, workers=workers, progress=progress, verify=verify,
        cluster=cluster)
    return SuiteResult(manifest, failures, verification, out_dir)


def verify_suite(manifest, suite_dir=None) -> pd.DataFrame:
    """Measure every stimulus of a suite against what its manifest row says.

    Every stimulus: SHA-256, frame count, frame rate, sample rate and duration against the
    source; ``av_offset``: the achieved offset by cross-correlation (within 0.5 ms);
    ``audio_noise``: the achieved SNR (within 0.5 dB); ``visual_noise``: the pixel SD (within
    10 %); ``semantic_swap``: the donor's audio; unimodal stimuli: grey frames or silence.

    Parameters
    ----------
    manifest : DataFrame, str or Path
        The suite's ``manifest.csv`` (or the folder holding it), or the manifest table.
    suite_dir : str or Path, optional
        The folder the manifest's paths are relative to (default: the manifest's folder).

    Returns
    -------
    DataFrame
        stimulus_id, manipulation, level, measured, expected, psnr_db, frames, duration_s,
        ok, problems.

    See Also
    --------
    avmit_psych.stimuli.verify.verify_manifest : what this calls.

    Examples
    --------
    >>> import tempfile
    >>> import avmit_psych as ap
    >>> suite = {"name": "tiny", "container": "mov",
    ...          "conditions": {"audio_noise": {"levels": [0]}}}
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     sources = ap.synthetic_videos(f"{tmp}/videos", per_class=1, classes=["barking"],
    ...                                   duration_s=1.5)
    ...     made = ap.generate_suite(suite, sources, f"{tmp}/suite", workers=1, verify=False)
    ...     checks = ap.verify_suite(made.folder / "manifest.csv")
    >>> checks[["manipulation", "expected", "ok"]]
      manipulation  expected    ok
    0  audio_noise       0.0  True
    >>> bool(abs(checks["measured"].iloc[0]) < 0.5)
    True
    """
    from .dataset import schema
    from .stimuli.verify import verify_manifest
    if isinstance(manifest, pd.DataFrame):
        if suite_dir is None:
            raise _error("a manifest given as a table needs suite_dir", column="suite_dir",
                         fix="give the folder the manifest's paths are relative to")
        table = manifest
    else:
        path = Path(manifest)
        path = path / "manifest.csv" if path.is_dir() else path
        table = schema.read_csv(path)
        suite_dir = path.parent if suite_dir is None else suite_dir
    return verify_manifest(table, Path(suite_dir))


# ---------------------------------------------------------------------------------------------
# Study plan and simulated observers
# ---------------------------------------------------------------------------------------------
@dataclass
class PlannedStudy:
    """A planned study (:func:`plan_study`).

    trials : DataFrame
        Every planned trial, one row each (the study-plan contract: list, session, position,
        block, stimulus_id, repeat, ...), by list, session and position.
    conditions : DataFrame
        condition, manipulation, level, n_levels: the design's conditions.
    report : str
        The design in words and counts (``design_report.txt``).
    design : dict
        ``design.json``'s content (lists, sessions, power, ...).
    folder : Path or None
        The study folder when the plan was written (``out``).
    """

    trials: pd.DataFrame
    conditions: pd.DataFrame
    report: str
    design: dict
    folder: Path | None = None


def plan_study(manifest, design=None, *, out=None, practice=None, suite_root=None,
               force: bool = False, **overrides) -> PlannedStudy:
    """Plan a counterbalanced study: which participant sees which stimulus, when.

    Lists form a Latin square over source videos (every source once per participant, each
    condition equally often and balanced over classes); sessions fit ``max_session_minutes``;
    the order avoids two trials of one class or source in a row; 10 % repeats; breaks; practice
    from videos outside the test set; power of the planned N by pingouin (Vallat 2018).

    Parameters
    ----------
    manifest : DataFrame, str or Path
        The test stimuli's manifest (:func:`generate_suite` writes one).
    design : dict, str, Path or None
        A design in the design-file layout (``experiments/study_design.yaml``) or its path;
        None: the defaults.
    out : str or Path, optional
        Write the study there (``design.json``, ``list-LL_ses-S.csv``, ``design_report.txt``),
        all files or none; a non-empty folder is refused unless ``force``.
    practice : DataFrame, str or Path, optional
        A practice manifest made from videos outside the test set.
    suite_root : str or Path, optional
        The folder the manifest's paths are relative to (needed for a manifest table).
    force : bool
        Replace a non-empty ``out``.
    **overrides
        Design settings, e.g. ``seed=3, lists=4, sessions=2, trial_duration_s=7.0,
        task="correspondence"``.

    Returns
    -------
    PlannedStudy
        ``trials`` and ``conditions`` (DataFrames), ``report``, ``design``, ``folder``.

    See Also
    --------
    avmit_psych.experiments.plan.make_plan, avmit_psych.experiments.plan.write_study : what
        this calls.

    Examples
    --------
    >>> import avmit_psych as ap
    >>> suite = {"name": "tiny", "conditions": {"none": True,
    ...                                         "audio_noise": {"levels": [0, -10]}}}
    >>> manifest = ap.synthetic_manifest(suite, per_class=3)
    >>> study = ap.plan_study(manifest, suite_root=".", seed=1)
    >>> study.conditions["condition"].tolist()
    ['none', 'audio_noise=-10', 'audio_noise=0']
    >>> study.trials.groupby("list").size().tolist()
    [53, 53, 53]
    >>> int(study.trials.query("list == 1 and not repeat")["stimulus_id"].nunique())
    48
    """
    from .experiments import plan as plan_mod
    if suite_root is not None:
        overrides["suite_root"] = suite_root
    plan = plan_mod.make_plan(manifest, plan_mod.as_design(design, **overrides),
                              practice=practice)
    folder, info = None, plan.info
    if out is not None:
        study = plan_mod.write_study(plan, out, force=force)
        folder, info = study.folder, study.design
    trials = pd.concat([plan.plans[k] for k in sorted(plan.plans)], ignore_index=True)
    return PlannedStudy(trials, plan.conditions.reset_index(drop=True), plan.report, info,
                        folder)


def simulate_observers(stimuli: pd.DataFrame, n: int = 8, *, task: str = "classify",
                       seed: int = 0, population=None) -> pd.DataFrame:
    """Simulated participants who integrate auditory and visual evidence, answering stimuli.

    Each stimulus gives auditory evidence of sensitivity d'_A (falling with audio noise) and
    visual evidence d'_V (falling with pixel noise); within a temporal binding window
    (-100 / +200 ms by default) they are combined as a maximum-likelihood observer combines
    independent cues, d'_AV = sqrt(d'_A^2 + d'_V^2) (Ernst & Banks 2002), outside it the
    better cue alone is used; the answer is a 16-alternative forced choice (Green & Swets
    1966) with lapses, or an ideal same/different judgement for ``correspondence``. People
    differ: each is drawn from ``population``. A convenience for seeing analyses work on data
    of the right shape, not a claim about people.

    Parameters
    ----------
    stimuli : DataFrame
        ``label``, ``manipulation``, ``level`` (``audio_source`` optional): a stimulus
        manifest, or a plan's trials.
    n : int
        Simulated participants (``P01``, ``P02`` ...).
    task : {'classify', 'correspondence'}
        The question asked.
    seed : int
        Seeds the people drawn and their answers.
    population : CuePopulation or dict, optional
        Group means and SDs of the parameters (default: audio-only accuracy 0.75, visual-only
        0.85, d'_A half its maximum at -8 dB SNR); a dict changes some of them, e.g.
        ``{"audio_snr50_db": (13.0, 2.5)}``.

    Returns
    -------
    DataFrame
        The stimulus columns once per participant, plus participant, trial, task, response,
        correct (NA where the stimulus asks no correspondence question), rt (s),
        audio_d_prime, visual_d_prime, binding_probability, p_label, p_donor: in the trials
        contract, ready for the analyses (``observer="participant"``).

    See Also
    --------
    avmit_psych.experiments.cue_integration.draw_observers,
    avmit_psych.experiments.cue_integration.simulate_trials : what this calls.

    Examples
    --------
    >>> import pandas as pd
    >>> import avmit_psych as ap
    >>> stimuli = pd.DataFrame({"stimulus_id": ["s1", "s2", "s3"],
    ...                         "label": ["barking", "barking", "diving"],
    ...                         "manipulation": ["none", "audio_noise", "visual_only"],
    ...                         "level": ["", -20, ""]})
    >>> trials = ap.simulate_observers(stimuli, n=2, seed=1)
    >>> trials[["participant", "trial", "stimulus_id", "task"]]
      participant  trial stimulus_id      task
    0         P01      1          s1  classify
    1         P01      2          s2  classify
    2         P01      3          s3  classify
    3         P02      1          s1  classify
    4         P02      2          s2  classify
    5         P02      3          s3  classify
    >>> trials["p_label"].round(2).tolist()[:3]
    [0.94, 0.86, 0.86]
    """
    from dataclasses import replace

    from .experiments import cue_integration as ci
    if population is None:
        population = ci.CuePopulation()
    elif isinstance(population, dict):
        population = replace(ci.CuePopulation(), **population)
    observers = ci.draw_observers(n, seed, population=population)
    return ci.simulate_trials(stimuli, observers, task=task)


def simulate_comparison(n_humans: int = 8, n_models: int = 2, n_stimuli: int = 540, *,
                        seed: int = 0, item_effect: float = 1.0):
    """Humans' trials and models' predictions on one suite, in the data contracts' columns.

    Each observer is a psychometric observer (accuracy rising with SNR, falling with pixel
    noise and with the size of an offset) with its own threshold shift and lapse rate;
    models are shifted to worse thresholds. Stimulus difficulty is shared (``item_effect``, SD
    on the probit scale), so errors are consistent beyond chance, and wrong answers go to a
    confusable class most of the time.

    Parameters
    ----------
    n_humans, n_models : int
        Simulated participants (``S01`` ...) and models (``model_01`` ...).
    n_stimuli : int
        Stimuli, spread evenly over the default suite's 27 conditions and the 16 classes.
    seed : int
        Everything is a function of the seed.
    item_effect : float
        SD of the shared stimulus difficulty (0: none).

    Returns
    -------
    (DataFrame, DataFrame)
        ``trials`` (participant, session, task, block, trial, stimulus_id, label,
        manipulation, level, response, correct, rt) and ``predictions`` (model, stimulus_id,
        label, manipulation, level, response, correct).

    See Also
    --------
    compare : the comparison of the two.
    avmit_psych.dataset.synthetic.observers.simulate_comparison : what this calls.

    Examples
    --------
    >>> import avmit_psych as ap
    >>> trials, predictions = ap.simulate_comparison(n_humans=3, n_models=1, n_stimuli=54)
    >>> trials.shape, predictions.shape
    ((162, 12), (54, 7))
    >>> sorted(trials["participant"].unique()), predictions["model"].unique().tolist()
    (['S01', 'S02', 'S03'], ['model_01'])
    """
    from .dataset.synthetic.observers import simulate_comparison
    return simulate_comparison(n_humans, n_models, n_stimuli, seed=seed,
                                         item_effect=item_effect)


# ---------------------------------------------------------------------------------------------
# Features and TFRecords
# ---------------------------------------------------------------------------------------------
def extract(videos, videos_root, out_dir, *, audio: str = "vggish", visual: str = "vgg16",
            audio_model: str | None = None, visual_weights: str = "imagenet", seed: int = 0,
            workers: int = 2, batch_frames: int = 64, progress: bool = False,
            cluster=None, shard_size: int = 16) -> pd.DataFrame:
    """Embed videos as the AVMIT paper did, one released-layout TFRecord per video.

    Audio: VGGish (128-d every 960 ms; Hershey et al. 2017) or YAMNet (1024-d every 480 ms);
    pictures: VGG16 (512-d, a frame every 960 ms) or EfficientNetB0 (1280-d, every 480 ms),
    global-average-pooled. The released pairs are vggish + vgg16 and yamnet + effnetb0. A
    rerun skips videos whose TFRecord reads back whole.

    Parameters
    ----------
    videos : DataFrame, str or Path
        The videos: a stimulus manifest, a test set, video ratings or a released training
        file (table or CSV).
    videos_root : str or Path
        Where the videos are: a manifest's ``path`` is relative to it; other layouts name
        ``filename``, ``<video_location>/<filename>`` or ``new_filename`` under it.
    out_dir : str or Path
        The TFRecord root (``<label>/<video>.tfrecord``).
    audio, visual : str
        ``vggish`` or ``yamnet``; ``vgg16`` or ``effnetb0``.
    audio_model : str, optional
        A TF Hub handle or SavedModel folder, a ``.weights.h5`` file for the built-in
        architecture, or ``random`` (seeded random weights: no download). Default: the TF
        Hub model.
    visual_weights : str
        ``imagenet``, a weights file, or ``random``.
    seed : int
        Seeds random weights.
    workers : int
        Decoding threads.
    batch_frames : int
        Frames per visual model call.
    progress : bool
        Show a progress bar.
    cluster : str or distributed.Client, optional
        ``"local:N"`` or a Dask scheduler address: videos go to Dask workers in shards of
        ``shard_size``.
    shard_size : int
        Videos per Dask task.

    Returns
    -------
    DataFrame
        The run report: one row per video (row, filename, label, video_path,
        tfrecord_filename, status written/skipped/failed, reason, has_audio,
        audio_timesteps, visual_timesteps, duration_s, fps, manipulation, level).

    See Also
    --------
    load_embeddings : read the TFRecords as arrays.
    avmit_psych.features.extract.extract : what this calls.

    Examples
    --------
    >>> import tempfile
    >>> import avmit_psych as ap
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     sources = ap.synthetic_videos(f"{tmp}/videos", per_class=1,
    ...                                   classes=["barking", "diving"])
    ...     report = ap.extract(sources, f"{tmp}/videos", f"{tmp}/embeddings",
    ...                         audio_model="random", visual_weights="random", workers=1)
    ...     example = ap.read_tfrecord(f"{tmp}/embeddings/" + report["tfrecord_filename"][0])
    >>> report[["label", "status", "audio_timesteps", "visual_timesteps"]]
         label   status  audio_timesteps  visual_timesteps
    0  barking  written                3                 4
    1   diving  written                3                 4
    >>> example.audio.shape, example.visual.shape
    ((3, 128), (4, 512))
    """
    from .features import extract as ex
    from .features.encoders import HUB_HANDLES
    ex.check_pairing(audio, visual)
    with tempfile.TemporaryDirectory() as tmp:
        jobs = ex.plan(_csv_of(videos, Path(tmp), "videos"), videos_root)
    handle = audio_model or HUB_HANDLES[audio]
    if cluster is not None:
        spec = ex.EncoderSpec(audio, handle, visual, visual_weights, seed)
        return ex.extract_on_dask(jobs, spec, out_dir, cluster, shard_size=shard_size,
                                  batch_frames=batch_frames, progress=progress)
    from .features import encoders
    audio_encoder = encoders.AudioEncoder.load(audio, handle, seed=seed)
    visual_encoder = encoders.VisualEncoder.load(visual, visual_weights, seed=seed)
    return ex.extract(jobs, audio_encoder, visual_encoder, out_dir, workers=workers,
                      batch_frames=batch_frames, progress=progress)


def write_tfrecord(path, filename: str, label: str, audio: np.ndarray,
                   visual: np.ndarray) -> Path:
    """Write one video's embeddings as a TFRecord in the released AVMIT layout.

    One GZIP-compressed file holding one ``tf.train.SequenceExample``: context ``filename``,
    ``label``, ``audio_timesteps``, ``visual_timesteps``; sequences ``audio`` and
    ``visual_object``, a float32 vector a timestep. Written to a temporary name, fsynced and
    renamed, so a half-written file never looks finished.

    Parameters
    ----------
    path : str or Path
        The file (conventionally ``<label>/<video stem>.tfrecord``).
    filename : str
        The video's file name, stored in the record.
    label : str
        The AVMIT class.
    audio, visual : ndarray
        (timesteps, size) embeddings: (128, 512) or (1024, 1280) wide.

    Returns
    -------
    Path

    See Also
    --------
    read_tfrecord : read it back.
    avmit_psych.dataset.tfrecords.write_example : what this calls.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> import avmit_psych as ap
    >>> audio, visual = np.ones((3, 128), np.float32), np.zeros((4, 512), np.float32)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = ap.write_tfrecord(f"{tmp}/barking/a.tfrecord", "barking/a.mp4", "barking",
    ...                              audio, visual)
    ...     back = ap.read_tfrecord(path)
    >>> back.filename, back.label, back.audio.shape, float(back.audio.sum())
    ('barking/a.mp4', 'barking', (3, 128), 384.0)
    """
    from .dataset import tfrecords
    return tfrecords.write_example(path, filename, label, np.asarray(audio),
                                   np.asarray(visual))


def read_tfrecord(path, *, expected_label: str | None = None):
    """Read one released-layout AVMIT TFRecord, checking it whole.

    The gzip CRC, the TFRecord framing and both of its CRC-32C checksums, and every feature of
    the SequenceExample are checked; any fault raises one ``DatasetError`` naming the file.

    Parameters
    ----------
    path : str or Path
        The ``.tfrecord`` file.
    expected_label : str, optional
        Refuse a file of another class.

    Returns
    -------
    Example
        ``filename``, ``label``, ``audio`` (timesteps, audio size) and ``visual``
        (timesteps, visual size) float32 arrays.

    See Also
    --------
    write_tfrecord, load_embeddings
    avmit_psych.dataset.tfrecords.read_example : what this calls.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> import avmit_psych as ap
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = ap.write_tfrecord(f"{tmp}/diving/b.tfrecord", "diving/b.mp4", "diving",
    ...                              np.zeros((5, 1024)), np.zeros((7, 1280)))
    ...     example = ap.read_tfrecord(path, expected_label="diving")
    >>> example.audio.shape, example.visual.shape, example.audio.dtype
    ((5, 1024), (7, 1280), dtype('float32'))
    """
    from .dataset import tfrecords
    return tfrecords.read_example(path, expected_label=expected_label)


def synthetic_embeddings(out_dir, *, per_class=None, feature_set: str = "vggish_vgg16",
                         seed: int = 0, noise: float = 1.0,
                         class_separation: float = 0.3) -> dict:
    """Write a synthetic embedding dataset: real TFRecords and split CSVs (released layouts).

    Each class has a prototype per modality; a video's timesteps are its prototype plus a
    video offset plus per-timestep noise, clipped at 0 like ReLU-pooled CNN features, so
    models can learn the classes.

    Parameters
    ----------
    out_dir : str or Path
        TFRecords go to ``out_dir/tfrecords/<label>/``, CSVs to ``out_dir/<split>.csv``.
    per_class : dict, optional
        Videos per class for each split, default ``{"AVMIT_train": 40,
        "AVMIT_validation": 10, "test_set": 10}`` (``MIT16_*`` splits take the MIT-16
        layout).
    feature_set : {'vggish_vgg16', 'yamnet_effnetb0'}
    seed : int
    noise, class_separation : float
        Per-timestep noise SD and prototype spread.

    Returns
    -------
    dict
        Split name -> CSV path, and ``"tfrecords"`` -> the TFRecord root.

    See Also
    --------
    avmit_psych.dataset.synthetic.embeddings.write_embedding_dataset : what this calls.

    Examples
    --------
    >>> import tempfile
    >>> import avmit_psych as ap
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     paths = ap.synthetic_embeddings(tmp, per_class={"AVMIT_train": 2, "test_set": 1})
    ...     test = ap.load_embeddings(paths["test_set"], paths["tfrecords"], cache=False)
    >>> sorted(paths)
    ['AVMIT_train', 'test_set', 'tfrecords']
    >>> test.audio.shape, test.visual.shape
    ((16, 7, 128), (16, 7, 512))
    """
    from .dataset.synthetic.embeddings import write_embedding_dataset
    out_dir = Path(out_dir)
    paths = write_embedding_dataset(out_dir / "tfrecords", out_dir,
                                              feature_set=feature_set, per_class=per_class,
                                              seed=seed, noise=noise,
                                              class_separation=class_separation)
    return {**paths, "tfrecords": out_dir / "tfrecords"}


def load_embeddings(split, tfrecords, *, feature_set: str | None = None, timesteps: int = 7,
                    truncate: bool = False, skip_bad: bool = False, cache: bool = True):
    """Load the embeddings of every row of a split as arrays, ready for a model.

    Parameters
    ----------
    split : DataFrame, str or Path
        A split in any released layout (test set, ``AVMIT_train.csv``, ``MIT16_*.csv``,
        video ratings) or a stimulus manifest: its ``tfrecord_filename`` column, or
        ``<label>/<stimulus>.tfrecord`` for a manifest, names each file.
    tfrecords : str or Path
        The TFRecord root.
    feature_set : str, optional
        Insist on ``vggish_vgg16`` or ``yamnet_effnetb0`` (default: what the files hold).
    timesteps : int
        Pad with zeros at the end to this many timesteps (the paper: 7).
    truncate : bool
        Keep the first ``timesteps`` of longer sequences instead of an error.
    skip_bad : bool
        Leave out rows whose file is missing or bad (listed in ``skipped``).
    cache : bool
        Keep a compressed copy of the arrays (``$AVMIT_PSYCH_CACHE``, else
        ``~/.cache/avmit_psych/splits``), re-read when the inputs are unchanged.

    Returns
    -------
    Split
        ``audio`` (N, timesteps, A), ``visual`` (N, timesteps, V), ``labels`` (class
        indices), ``classes``, ``rows`` (the CSV rows) and ``skipped`` (DataFrame).

    See Also
    --------
    avmit_psych.dataset.tfrecords.load_split : what this calls.

    Examples
    --------
    >>> import tempfile
    >>> import avmit_psych as ap
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     paths = ap.synthetic_embeddings(tmp, per_class={"test_set": 2})
    ...     split = ap.load_embeddings(paths["test_set"], paths["tfrecords"], cache=False)
    >>> len(split), split.feature_set, split.audio.shape, split.visual.shape
    (32, 'vggish_vgg16', (32, 7, 128), (32, 7, 512))
    >>> split.rows[["AVMIT_label", "tfrecord_filename"]].iloc[0].tolist()
    ['raining', 'raining/syn-test_set-0-00000.tfrecord']
    """
    from .dataset import tfrecords as tfr
    with tempfile.TemporaryDirectory() as tmp:
        csv = _csv_of(split, Path(tmp), "split")
        return tfr.load_split(csv, tfrecords, feature_set=feature_set, timesteps=timesteps,
                              truncate=truncate, skip_bad=skip_bad,
                              cache=cache and not isinstance(split, pd.DataFrame))


# ---------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------
def model_config(config, **changes):
    """One of the paper's 24 baseline configurations (or your own), with changes.

    Parameters
    ----------
    config : str, Path or ModelConfig
        A config file (our flat YAML or an authors' released one), or the name of one of the
        paper's: ``<embeddings>_<rnn>_<train set>`` for the recognition models
        (``vggish_vgg16_gru_avmit``), ``savc/<name>`` for the SAVC ones.
    **changes
        Values to change (``epochs=5, learning_rate=1e-3, seed=1`` ...); checked like a file.

    Returns
    -------
    ModelConfig

    See Also
    --------
    avmit_psych.models.config.load_config : what this calls.

    Examples
    --------
    >>> import avmit_psych as ap
    >>> cfg = ap.model_config("vggish_vgg16_gru_avmit", epochs=3)
    >>> cfg.task, cfg.rnn, cfg.rnn_units, cfg.epochs, cfg.sizes
    ('recognition', 'gru', 128, 3, (128, 512))
    >>> ap.model_config("savc/yamnet_effnetb0_lstm_mit16").task
    'savc'
    """
    from .models.config import ModelConfig, load_config
    if isinstance(config, ModelConfig):
        cfg = config
    else:
        path = Path(config)
        if not path.suffix and not path.exists():
            from .models.config import REPO_CONFIGS
            task, _, name = str(config).rpartition("/")
            path = REPO_CONFIGS / (task or "recognition") / f"{name}.yaml"
            if not path.exists():
                from .dataset.schema import DatasetError
                known = sorted(p.stem for p in (REPO_CONFIGS / "recognition").glob("*.yaml"))
                raise DatasetError(f"no configuration named '{config}'", path=path,
                                   fix=f"give a config file, or one of {', '.join(known)} "
                                       f"(savc/<name> for the SAVC models)")
        cfg = load_config(path)
    return cfg.replace(**changes) if changes else cfg


def _split_for(data, tfrecords, cfg, cache: bool, what: str):
    from .dataset.tfrecords import Split
    if isinstance(data, Split):
        return data
    if tfrecords is None:
        raise _error(f"{what} is given as a table or file, so tfrecords= is needed",
                     column="tfrecords", fix="give the TFRecord root of its embeddings")
    return load_embeddings(data, tfrecords, feature_set=cfg.embeddings, timesteps=cfg.timesteps,
                           cache=cache)


def train(config, train, validation, out_dir, *, tfrecords=None, verbose: int = 0,
          cache: bool = True, **changes):
    """Train one baseline model: seeded, checkpointed every epoch, resumable.

    Recognition models (squeeze-unit RNNs) learn the 16 classes with sparse cross-entropy,
    Adam with exponential learning-rate decay and early stopping on validation loss; SAVC
    models (AVE-Net-style fusion; Arandjelovic & Zisserman 2018) learn whether sound and
    picture correspond, on fresh pairs every epoch.

    Parameters
    ----------
    config : str, Path or ModelConfig
        As for :func:`model_config` (e.g. ``"vggish_vgg16_gru_avmit"``).
    train, validation : Split, DataFrame, str or Path
        Embeddings from :func:`load_embeddings`, or split CSVs/tables read with
        ``tfrecords``.
    out_dir : str or Path
        The run folder (config.yaml, history.csv, model.weights.h5, metrics.json); an
        unfinished run of the same config there is resumed, a finished one returned.
    tfrecords : str or Path, optional
        The TFRecord root, for splits given as CSVs or tables.
    verbose : int
        1: Keras's line per epoch.
    cache : bool
        Cache the splits' arrays (see :func:`load_embeddings`).
    **changes
        Config values to change, e.g. ``epochs=1, seed=2``.

    Returns
    -------
    TrainResult
        ``history`` (DataFrame, one row per epoch), ``metrics`` (dict), ``out_dir`` and the
        Keras ``model``.

    See Also
    --------
    predict : the trained model's answers.
    avmit_psych.models.training.train : what this calls.

    Examples
    --------
    >>> import tempfile
    >>> import avmit_psych as ap
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     data = ap.synthetic_embeddings(tmp, per_class={"AVMIT_train": 4,
    ...                                                    "AVMIT_validation": 2})
    ...     run = ap.train("vggish_vgg16_gru_avmit", data["AVMIT_train"],
    ...                    data["AVMIT_validation"], f"{tmp}/run", tfrecords=data["tfrecords"],
    ...                    epochs=2, cache=False)
    >>> run.history["epoch"].tolist(), run.metrics["n_train"]
    ([1, 2], 64)
    """
    from .models import training
    cfg = model_config(config, **changes)
    train_split = _split_for(train, tfrecords, cfg, cache, "train")
    val_split = _split_for(validation, tfrecords, cfg, cache, "validation")
    return training.train(cfg, train_split, val_split, out_dir, verbose=verbose)


def predict(model, stimuli, *, tfrecords=None, cache: bool = True) -> pd.DataFrame:
    """A trained model's answer to every stimulus, in the predictions contract.

    A recognition model classifies each stimulus (``response`` a class, ``p_<class>``
    columns); a SAVC model answers each stimulus's correspondence trial, the one humans
    answer (``label``/``response`` ``same``/``different``; stimuli with one modality only
    are left out).

    Parameters
    ----------
    model : TrainResult, str or Path
        :func:`train`'s result or a finished run folder.
    stimuli : Split, DataFrame, str or Path
        A stimulus manifest or a test set (table or CSV, read with ``tfrecords``), or a Split.
    tfrecords : str or Path, optional
        The TFRecord root of the stimuli's embeddings.
    cache : bool
        Cache the stimuli's arrays (see :func:`load_embeddings`).

    Returns
    -------
    DataFrame
        model, stimulus_id, label, manipulation, level, response, correct, and the
        probabilities; ``attrs["metrics"]`` holds loss and accuracy.

    See Also
    --------
    compare : set the predictions against humans' trials.
    avmit_psych.models.evaluation.predict_stimuli : what this calls.

    Examples
    --------
    >>> import tempfile
    >>> import avmit_psych as ap
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     data = ap.synthetic_embeddings(tmp, per_class={"AVMIT_train": 4,
    ...                                                    "AVMIT_validation": 2,
    ...                                                    "test_set": 1})
    ...     run = ap.train("vggish_vgg16_gru_avmit", data["AVMIT_train"],
    ...                    data["AVMIT_validation"], f"{tmp}/run", tfrecords=data["tfrecords"],
    ...                    epochs=1, cache=False)
    ...     predictions = ap.predict(run, data["test_set"], tfrecords=data["tfrecords"],
    ...                              cache=False)
    >>> predictions.columns[:7].tolist()
    ['model', 'stimulus_id', 'label', 'manipulation', 'level', 'response', 'correct']
    >>> len(predictions), predictions["manipulation"].unique().tolist()
    (16, ['none'])
    """
    from .models import evaluation, training
    from .models.config import load_config
    if isinstance(model, (str, os.PathLike)):
        cfg, keras_model = training.load_trained(model)
    else:
        cfg, keras_model = load_config(Path(model.out_dir) / "config.yaml"), model.model
    split = _split_for(stimuli, tfrecords, cfg, cache, "stimuli")
    predictions, metrics = evaluation.predict_stimuli(cfg, keras_model, split)
    predictions.attrs["metrics"] = metrics
    return predictions


def search(config, data, space, out_dir, *, tfrecords=None, trials: int | None = None,
           epochs: int | None = None, seed: int = 0, storage: str | None = None,
           study: str | None = None, progress: bool = False,
           cache: bool = True) -> pd.DataFrame:
    """The paper's hyperparameter random search with the bootstrap, as an Optuna study.

    Each trial takes hyperparameters drawn uniformly from ``space`` (Optuna's RandomSampler,
    seeded), trains on a bootstrap resample of the data and scores on the out-of-bag rows,
    with early stopping on the out-of-bag loss (the space's ``patience``; the paper: 8). The
    chosen configuration (lowest out-of-bag loss) is written to ``best_config.yaml``. Trials
    live in an Optuna storage (default ``out_dir/search.db``): a rerun resumes, and workers
    on several machines share one study through a PostgreSQL ``storage``.

    Parameters
    ----------
    config : str, Path or ModelConfig
        The base config (as for :func:`model_config`).
    data : Split, str, Path, DataFrame or list of them
        The data to resample (the paper: ``MIT16_train.csv`` and ``MIT16_validation.csv``).
    space : str, Path or dict
        A search space (``analysis/search/recognition.yaml``) or a mapping in its layout:
        ``trials``, ``patience``, ``space`` (lists of choices or ``{uniform: [low, high]}``
        for bottleneck, activation, rnn_units, dropout, learning_rate).
    out_dir : str or Path
        results.csv, ranked.csv, best_config.yaml and (by default) the study's database.
    tfrecords : str or Path, optional
        The TFRecord root, for data given as CSVs or tables.
    trials : int, optional
        The study's total number of trials (default: the space's).
    epochs : int, optional
        Cap each trial's epochs.
    seed : int
        Seeds the draws, the resamples and the trainings.
    storage, study : str, optional
        An Optuna storage URL and the study's name (default: the config's name).
    progress : bool
        Show a progress bar.
    cache : bool
        Cache the data's arrays (see :func:`load_embeddings`).

    Returns
    -------
    DataFrame
        One row per finished trial: trial, the hyperparameters, oob_loss, oob_top1, oob_top5,
        best_epoch, epochs_run, n_in_bag_unique, n_out_of_bag, seed, ...

    See Also
    --------
    avmit_psych.models.search.search : what this calls.

    Examples
    --------
    >>> import tempfile
    >>> import avmit_psych as ap
    >>> space = {"trials": 2, "patience": 8,
    ...          "space": {"rnn_units": [16, 32], "learning_rate": {"uniform": [1e-4, 1e-3]}}}
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     data = ap.synthetic_embeddings(tmp, per_class={"MIT16_train": 3})
    ...     results = ap.search("vggish_vgg16_gru_mit16", data["MIT16_train"], space,
    ...                         f"{tmp}/search", tfrecords=data["tfrecords"], epochs=1,
    ...                         cache=False)
    >>> results["trial"].tolist(), sorted(set(results["rnn_units"]) - {16, 32})
    ([0, 1], [])
    """
    from .dataset.tfrecords import Split
    from .models import search as search_mod
    cfg = model_config(config)
    parts = data if isinstance(data, (list, tuple)) else [data]
    split = Split.concat([_split_for(p, tfrecords, cfg, cache, "data") for p in parts])
    with tempfile.TemporaryDirectory() as tmp:
        if isinstance(space, dict):
            import yaml
            path = Path(tmp) / "space.yaml"
            path.write_text(yaml.safe_dump(space, sort_keys=False), encoding="utf-8")
            space = path
        return search_mod.search(cfg, split, space, out_dir, trials=trials, epochs=epochs,
                                 seed=seed, storage=storage, study=study, progress=progress)


# ---------------------------------------------------------------------------------------------
# Comparing humans and models
# ---------------------------------------------------------------------------------------------
def _observer_files(side, folder: Path, name: str, given: dict) -> list:
    """Paths for one side's data: DataFrames are written into ``folder`` as CSVs, and
    ``given`` maps each such file to the name the table is shown by."""
    if side is None:
        return []
    items = list(side) if isinstance(side, (list, tuple)) else [side]
    out = []
    for i, item in enumerate(items, start=1):
        if isinstance(item, pd.DataFrame):
            item = _csv_of(item, folder, f"{name}-{i}")
            given[str(item)] = f"<{name} table {i}>"
        out.append(item)
    return out


def _load(humans, models, exclude_timing_failures: bool):
    """:func:`~avmit_psych.analysis.observers.load_observations` of tables, files or folders."""
    from .analysis.observers import load_observations
    given: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        obs = load_observations(_observer_files(humans, folder, "humans", given),
                                _observer_files(models, folder, "models", given),
                                exclude_timing_failures=exclude_timing_failures)
    for frame in (obs.trials, obs.repeats, obs.timing):
        if "file" in frame.columns:
            frame["file"] = frame["file"].replace(given)
    obs.files = [given.get(f, f) for f in obs.files]
    for old, new in given.items():
        obs.warnings = [w.replace(old, new) for w in obs.warnings]
    return obs


def observations(humans=None, models=None, *,
                 exclude_timing_failures: bool = True) -> pd.DataFrame:
    """Humans' trials and models' predictions as one long table of observer trials.

    Reads our trials (``participant, session, task, block, trial, stimulus_id, label,
    manipulation, level, response, correct, rt``), our predictions (``model, stimulus_id,
    label, manipulation, level, response, correct``), model-vs-human raw data (Geirhos et al.
    2021) and BIDS ``*_beh.tsv``. Practice rows and failed playbacks are left out, the first
    showing of a repeated stimulus is the measured trial, and the checks ``compare`` makes are
    made (one trial per observer and stimulus, the same labels on both sides, shared stimuli).

    Parameters
    ----------
    humans, models : DataFrame, str, Path or list of them, optional
        Tables, files or folders of CSVs (a BIDS dataset folder: its ``*_beh.tsv``).
    exclude_timing_failures : bool
        Leave out human trials flagged ``timing_ok = False``.

    Returns
    -------
    DataFrame
        observer, observer_type (human/model), file, task, stimulus_id, label, response,
        correct, manipulation, level, level_value, condition (``audio_noise=-5``), rt;
        ``attrs["warnings"]`` lists what reading noticed.

    See Also
    --------
    avmit_psych.analysis.observers.load_observations : what this calls.

    Examples
    --------
    >>> import avmit_psych as ap
    >>> trials, predictions = ap.simulate_comparison(n_humans=2, n_models=1, n_stimuli=54)
    >>> obs = ap.observations(trials, predictions)
    >>> obs.groupby("observer_type")["observer"].unique().apply(list).to_dict()
    {'human': ['S01', 'S02'], 'model': ['model_01']}
    >>> one = obs[obs["stimulus_id"] == "barking/barking_1__av_offset_+200"]
    >>> one[["observer", "observer_type", "file", "condition", "level_value"]]
         observer observer_type              file      condition  level_value
    2         S01         human  <humans table 1>  av_offset=200        200.0
    83        S02         human  <humans table 1>  av_offset=200        200.0
    124  model_01         model  <models table 1>  av_offset=200        200.0
    """
    obs = _load(humans, models, exclude_timing_failures)
    out = obs.trials
    out.attrs["warnings"] = list(obs.warnings)
    return out


def compare(humans=None, models=None, *, n_boot: int = 1000, seed: int = 0,
            confidence: float = 0.95, psychometric: bool = True, n_choices: int = 16,
            workers: int = 1, exclude_timing_failures: bool = True, out_dir=None):
    """Humans against DNNs, trial by trial: every analysis of ``python -m avmit_psych.analysis
    compare``.

    Accuracy per observer and condition with Wilson CIs; each model against the humans as a
    single case (Crawford & Howell 1998, Holm-corrected over conditions) with a bootstrap CI
    of the difference; the humans' repeated-measures ANOVAs over levels (pingouin); error
    consistency within conditions (Geirhos, Meding & Wichmann 2020); confusion matrices;
    psychometric fits (psignifit 4; Schuett et al. 2016); d' and c for the correspondence
    task (Macmillan & Creelman 2005); timing and self-consistency where the data have them.

    Parameters
    ----------
    humans, models : DataFrame, str, Path or list of them, optional
        As for :func:`observations`.
    n_boot : int
        Bootstrap resamples (over stimuli) for the CIs (0: none).
    seed : int
        Seeds the bootstraps.
    confidence : float
        Level of the CIs.
    psychometric : bool
        Fit psychometric functions (the slowest part).
    n_choices : int
        Response alternatives of the classification task: chance is 1 / n_choices
        (correspondence: 1/2).
    workers : int
        Processes for the psychometric fits.
    exclude_timing_failures : bool
        Leave out human trials flagged ``timing_ok = False``.
    out_dir : str or Path, optional
        Also write every CSV, figure and ``report.md`` there (all or nothing).

    Returns
    -------
    Comparison
        DataFrames ``accuracy``, ``summary`` (single-case tests), ``anova``, ``pairs`` (error
        consistency), ``consistency_summary``, ``psychometric``, ``sdt``, ...; ``notes``;
        ``observations``; ``files`` (when written).

    See Also
    --------
    accuracy, single_case, error_consistency, psychometric_fit, sdt : one analysis each.
    avmit_psych.analysis.compare.run_comparison : what this calls.

    Examples
    --------
    >>> import avmit_psych as ap
    >>> trials, predictions = ap.simulate_comparison(n_humans=4, n_models=1, n_stimuli=108)
    >>> result = ap.compare(trials, predictions, n_boot=0, psychometric=False)
    >>> result.accuracy.groupby("observer_type")["observer"].nunique().to_dict()
    {'human': 4, 'model': 1}
    >>> result.summary[["condition", "model", "n_humans"]].head(2)
             condition     model  n_humans
    0             none  model_01         4
    1  audio_noise=-20  model_01         4
    """
    from .analysis import compare as compare_mod
    obs = _load(humans, models, exclude_timing_failures)
    result = compare_mod.run_comparison(obs, n_boot=n_boot, seed=seed, confidence=confidence,
                                        workers=workers, psychometric=psychometric,
                                        n_choices=n_choices)
    if out_dir is not None:
        result.files = compare_mod.write_comparison(result, out_dir)
    return result


def accuracy(data: pd.DataFrame, *, observer: str = "observer", correct: str = "correct",
             condition: str | None = "condition", observer_type: str | None = None,
             confidence: float = 0.95) -> pd.DataFrame:
    """Accuracy of every observer in every condition, with its Wilson score interval.

    Parameters
    ----------
    data : DataFrame
        Tidy trials, one row per observer and trial (trials, predictions, or both stacked).
    observer : str
        The column naming the observer (``participant`` in a trials file, ``model`` in
        predictions, ``observer`` in :func:`observations`).
    correct : str
        The column saying whether the answer was right (booleans or 1/0; missing: no answer
        key, left out).
    condition : str or None
        The column of conditions. When it is absent and the data have ``manipulation`` and
        ``level``, a condition is ``manipulation=level`` (``audio_noise=-5``); None: all
        trials are one condition.
    observer_type : str, optional
        A column of ``human``/``model`` (default: ``observer_type`` when there is one).
    confidence : float
        Level of the interval.

    Returns
    -------
    DataFrame
        observer, observer_type, condition, manipulation, level, level_value, n_trials,
        n_correct, accuracy, ci_low, ci_high: conditions in reading order (``none``, then
        each manipulation by level).

    See Also
    --------
    avmit_psych.analysis.accuracy.accuracy_table : what this calls.

    Notes
    -----
    The Wilson (1927) score interval; tested against
    ``scipy.stats.binomtest(...).proportion_ci(method='wilson')``.

    Examples
    --------
    >>> import pandas as pd
    >>> import avmit_psych as ap
    >>> trials = pd.DataFrame({"participant": ["P01"] * 4 + ["P02"] * 4,
    ...                        "manipulation": ["audio_noise"] * 8,
    ...                        "level": [0, 0, -10, -10] * 2,
    ...                        "correct": [1, 1, 1, 0, 1, 0, 0, 0]})
    >>> table = ap.accuracy(trials, observer="participant")
    >>> print(table[["observer", "condition", "n_trials", "accuracy", "ci_low"]]
    ...       .round(3).to_string(index=False))
    observer       condition  n_trials  accuracy  ci_low
         P01 audio_noise=-10         2       0.5   0.095
         P01   audio_noise=0         2       1.0   0.342
         P02 audio_noise=-10         2       0.0   0.000
         P02   audio_noise=0         2       0.5   0.095
    """
    from .analysis.accuracy import accuracy_table
    trials = _observer_trials(data, observer=observer, correct=correct, condition=condition,
                              observer_type=observer_type)
    return accuracy_table(trials, confidence=confidence)


def error_consistency(data: pd.DataFrame, *, observer: str = "observer",
                      stimulus: str = "stimulus_id", correct: str = "correct",
                      condition: str | None = "condition", observer_type: str | None = None,
                      repeat: str | None = None, n_boot: int = 1000, seed: int = 0,
                      confidence: float = 0.95) -> pd.DataFrame:
    """Trial-by-trial error consistency of every pair of observers (Geirhos, Meding &
    Wichmann 2020).

    Two observers' trials are matched by stimulus (never by order). With c_obs the share of
    matched trials both got right or both got wrong and c_exp = p1 p2 + (1 - p1)(1 - p2) that
    of independent observers of the same accuracies, kappa = (c_obs - c_exp) / (1 - c_exp).
    Kappa is computed within each condition: pooling levels of different difficulty inflates
    it. The CI is a percentile bootstrap over stimuli.

    Parameters
    ----------
    data : DataFrame
        Tidy trials, one row per observer and trial.
    observer, stimulus, correct : str
        The columns naming the observer, the stimulus shown and whether the answer was right.
    condition : str or None
        The column of conditions; when absent and the data have ``manipulation`` and
        ``level``, ``manipulation=level``; None: all trials are one condition.
    observer_type : str, optional
        A column of ``human``/``model`` (default: ``observer_type`` when there is one): gives
        each pair its pair_type.
    repeat : str, optional
        A column marking second showings of a stimulus: those rows are left out.
    n_boot : int
        Bootstrap resamples for the CI (0: none).
    seed : int
        Seeds the resampling.
    confidence : float
        Level of the CI.

    Returns
    -------
    DataFrame
        observer_a, observer_b, pair_type, condition, n_trials, n_unmatched, observed,
        expected, kappa, ci_low, ci_high, ci_method.

    See Also
    --------
    avmit_psych.analysis.consistency.error_consistency : what this calls.

    Notes
    -----
    Tested against a hand computation, model-vs-human's definition on its raw-data layout and
    a direct per-pair computation of the bootstrap.

    Examples
    --------
    Observed consistency 3/4, expected 1/2: kappa 1/2.

    >>> import pandas as pd
    >>> import avmit_psych as ap
    >>> trials = pd.DataFrame({"participant": ["a"] * 4 + ["b"] * 4,
    ...                        "stimulus_id": ["s1", "s2", "s3", "s4"] * 2,
    ...                        "correct": [1, 1, 0, 0, 1, 0, 0, 0]})
    >>> ap.error_consistency(trials, observer="participant", condition=None,
    ...                      n_boot=0)[["observer_a", "observer_b", "observed", "kappa"]]
      observer_a observer_b  observed  kappa
    0          a          b      0.75    0.5
    """
    from .analysis import consistency
    wanted = [observer, stimulus, correct] + [c for c in (observer_type, repeat) if c]
    for column, argument in zip(wanted, ("observer", "stimulus", "correct", "observer_type",
                                         "repeat")):
        _need(data, column, argument)
    table = _conditions(data, condition)
    table["observer"] = data[observer].to_numpy()
    table["stimulus_id"] = data[stimulus].to_numpy()
    table["correct"] = data[correct].to_numpy()
    types = None
    if observer_type is not None or "observer_type" in data.columns:
        table["observer_type"] = _types(data, data[observer].astype(str), observer_type)
        types = "observer_type"
    if repeat is not None:
        table["repeat"] = data[repeat].to_numpy()
    table = table[data[correct].notna().to_numpy()]
    return consistency.error_consistency(
        table, "observer", "stimulus_id", "correct", "condition", types,
        "repeat" if repeat else None, n_boot=n_boot, seed=seed, confidence=confidence)


def single_case(data: pd.DataFrame, *, observer: str = "observer",
                stimulus: str = "stimulus_id", correct: str = "correct",
                condition: str | None = "condition", observer_type: str | None = None,
                models=None, n_boot: int = 1000, seed: int = 0,
                confidence: float = 0.95) -> pd.DataFrame:
    """Each model against the human sample, condition by condition, as a single case.

    A handful of models is not a sample of subjects; each is tested as neuropsychology tests a
    patient against a small control sample: Crawford & Howell's (1998) modified t-test on the
    humans' accuracies, Holm-corrected across conditions for each model, the model's
    percentile among humans (Crawford & Garthwaite 2002), z_cc, and the difference model -
    humans with a percentile bootstrap CI over stimuli.

    Parameters
    ----------
    data : DataFrame
        Tidy trials of humans and models, one row per observer and trial
        (:func:`observations` gives them).
    observer, stimulus, correct : str
        The columns naming the observer, the stimulus and whether the answer was right.
    condition : str or None
        The column of conditions (as for :func:`accuracy`).
    observer_type : str, optional
        A column of ``human``/``model`` (default: ``observer_type`` when there is one).
    models : list of str, optional
        Instead of ``observer_type``: the observers that are models (the rest are humans).
    n_boot : int
        Bootstrap resamples of stimuli for the difference's CI (0: none).
    seed : int
    confidence : float

    Returns
    -------
    DataFrame
        condition, manipulation, level, level_value, n_humans, human_mean, human_sd,
        human_sem, human_ci_low, human_ci_high, model, model_accuracy, t, dof, p, p_holm,
        model_percentile, z_cc, difference, difference_ci_low, difference_ci_high,
        n_stimuli, difference_ci_method.

    See Also
    --------
    crawford_howell : the test on one score.
    avmit_psych.analysis.single_case.model_vs_humans : what this calls.

    Examples
    --------
    >>> import pandas as pd
    >>> import avmit_psych as ap
    >>> trials = pd.DataFrame({
    ...     "observer": ["h1"] * 4 + ["h2"] * 4 + ["h3"] * 4 + ["net"] * 4,
    ...     "stimulus_id": ["s1", "s2", "s3", "s4"] * 4,
    ...     "correct": [1, 1, 1, 0, 1, 1, 0, 0, 1, 1, 1, 1, 0, 0, 0, 1]})
    >>> table = ap.single_case(trials, condition=None, models=["net"], n_boot=0)
    >>> print(table[["model", "n_humans", "human_mean", "model_accuracy", "t", "dof"]]
    ...       .round(3).to_string(index=False))
    model  n_humans  human_mean  model_accuracy      t  dof
      net         3        0.75            0.25 -1.732    2
    """
    from .analysis.single_case import model_vs_humans
    models = [models] if isinstance(models, str) else models
    trials = _observer_trials(data, observer=observer, correct=correct, condition=condition,
                              observer_type=observer_type, models=models, stimulus=stimulus)
    kinds = set(trials["observer_type"])
    if models is not None and "model" not in kinds:
        shown = ", ".join(sorted(trials["observer"].unique())[:8])
        raise _error(f"none of the models named ({', '.join(map(str, models))}) is an "
                     f"observer of the data", column=observer,
                     fix=f"name models as the '{observer}' column does ({shown})")
    if not kinds <= {"human", "model"} or "human" not in kinds:
        raise _error("single-case tests need to know which observers are humans and which "
                     "are models", column=observer_type or "observer_type",
                     fix="pass models=[...] (their names), or observer_type= a column of "
                         "human/model")
    return model_vs_humans(trials, n_boot=n_boot, seed=seed, confidence=confidence)


def crawford_howell(case: float, controls, *, alternative: str = "two-sided") -> pd.DataFrame:
    """Crawford & Howell's (1998) modified t-test of one case against a small control sample.

    ``t = (x - mean) / (s * sqrt((n + 1) / n))`` on ``n - 1`` degrees of freedom, with ``x``
    the case and ``mean``, ``s``, ``n`` the controls'. The one-tailed p is also the estimated
    share of the control population below the case (Crawford & Garthwaite 2002), reported as
    ``percentile``; ``z_cc = (x - mean) / s`` (Crawford, Garthwaite & Porter 2010).

    Parameters
    ----------
    case : float
        The single case's score (e.g. a model's accuracy).
    controls : array-like
        The control sample's scores (e.g. the humans' accuracies), at least 2.
    alternative : {'two-sided', 'less', 'greater'}
        ``less``: the case is below the controls' population.

    Returns
    -------
    DataFrame
        One row: t, dof, p, percentile, z_cc, mean, sd, n.

    See Also
    --------
    single_case : every model in every condition.
    avmit_psych.analysis.single_case.crawford_howell : what this calls.

    Notes
    -----
    Tested against the published worked example (Crawford & Howell 1998, p. 483) and against
    scipy's two-sample t-test with the case as a sample of one.

    Examples
    --------
    The published example: 15 controls with mean 50 and SD 10, a case scoring 33.

    >>> import avmit_psych as ap
    >>> controls = [50 - 26.457513110645905] + [50] * 13 + [50 + 26.457513110645905]
    >>> ap.crawford_howell(33, controls, alternative="less")[["t", "dof", "p"]].round(3)
           t  dof      p
    0 -1.646   14  0.061
    """
    from .analysis.single_case import crawford_howell as test
    return pd.DataFrame([test(case, controls, alternative=alternative)],
                        columns=["t", "dof", "p", "percentile", "z_cc", "mean", "sd", "n"])


def sdt(data: pd.DataFrame, *, observer: str = "observer", response: str = "response",
        correct: str = "correct", label: str | None = None,
        condition: str | None = "condition", observer_type: str | None = None,
        signal: str = "different") -> pd.DataFrame:
    """Signal detection per observer and condition: hit and false-alarm rates, d' and c.

    d' = z(H) - z(F) and c = -(z(H) + z(F)) / 2 (Macmillan & Creelman 2005); every rate is
    corrected by the log-linear rule of Hautus (1995): (hits + 0.5) / (signal trials + 1).
    In the correspondence task the signal is an incongruent trial (answer key ``different``).
    A condition that holds one kind of trial only is paired with a reference (a congruent
    condition's false alarms with the hits over all incongruent trials; an incongruent
    condition's hits with the false alarms of ``none``); ``reference`` says which.

    Parameters
    ----------
    data : DataFrame
        Tidy trials of a two-answer (yes/no, same/different) task, one row per observer and
        trial.
    observer : str
        The column naming the observer.
    response : str
        The column of the answer given.
    correct : str
        The column saying whether it was right: with two answers, this and the response give
        the answer key (rows where it is missing, with no answer key, are left out).
    label : str, optional
        The column of the answer key instead (``label`` in predictions and BIDS files).
    condition : str or None
        The column of conditions (as for :func:`accuracy`).
    observer_type : str, optional
        A column of ``human``/``model`` (default: ``observer_type`` when there is one).
    signal : str
        The answer that means "signal present"; the other answer means "noise".

    Returns
    -------
    DataFrame
        observer, observer_type, condition, manipulation, level, level_value, n_signal,
        n_noise, hits, false_alarms, hit_rate, fa_rate, d_prime, criterion, accuracy,
        reference.

    See Also
    --------
    avmit_psych.analysis.sdt.sdt_table : what this calls.

    Notes
    -----
    Tested against hand computations (tests/test_sdt.py).

    Examples
    --------
    Three hits in four signal trials, two false alarms in four noise trials:

    >>> import pandas as pd
    >>> import avmit_psych as ap
    >>> trials = pd.DataFrame({"participant": "P01",
    ...                        "response": ["different"] * 3 + ["same"] * 3 + ["different"] * 2,
    ...                        "correct": [True] * 3 + [False] + [True] * 2 + [False] * 2})
    >>> table = ap.sdt(trials, observer="participant", condition=None)
    >>> table[["hits", "false_alarms", "hit_rate", "fa_rate", "d_prime", "criterion"]].round(3)
       hits  false_alarms  hit_rate  fa_rate  d_prime  criterion
    0     3             2       0.7      0.5    0.524     -0.262
    """
    from .analysis.sdt import NOISE, SIGNAL, sdt_table
    said_signal = _need(data, response, "response").astype(str).str.strip() == signal
    if label is None:
        right, known = _truth(_need(data, correct, "correct"), correct)
        is_signal = said_signal.to_numpy() == right
    else:
        is_signal = (_need(data, label, "label").astype(str).str.strip() == signal).to_numpy()
        known = np.ones(len(data), bool)
    shaped = data.assign(_correct=np.where(known, is_signal == said_signal.to_numpy(), None),
                         _signal=is_signal, _said=said_signal.to_numpy())
    trials = _observer_trials(shaped, observer=observer, correct="_correct",
                              condition=condition, observer_type=observer_type,
                              _signal="_signal", _said="_said")
    trials["label"] = np.where(trials.pop("_signal") == "True", SIGNAL, NOISE)
    trials["response"] = np.where(trials.pop("_said") == "True", SIGNAL, NOISE)
    trials["task"] = "correspondence"
    return sdt_table(trials)


def psychometric_fit(data: pd.DataFrame, *, level: str = "level", correct: str = "correct",
                     observer: str = "observer", manipulation: str | None = "manipulation",
                     observer_type: str | None = None, n_choices: int = 16,
                     workers: int = 1) -> pd.DataFrame:
    """Psychometric functions over the numeric levels of each manipulation (psignifit 4).

    psi(x) = gamma + (1 - gamma - lambda) S(x; threshold, width), a cumulative Gaussian S,
    fitted by Bayesian inference on a grid (Schuett, Harmeling, Macke & Wichmann 2016): the
    guess rate gamma is fixed at 1 / ``n_choices`` (1/2 for correspondence trials), the lapse
    rate lambda is fitted, ``threshold`` is the level where S is 0.5 and ``width`` the span
    from 0.05 to 0.95; CIs are 95 % credible intervals. Accuracy rises with SNR
    (``audio_noise``) and falls with pixel noise (``visual_noise``) and with the size of an
    offset (``av_offset``, fitted over |ms|); for another manipulation the direction follows
    the data. One fit per observer (binomial), and one per group of two or more humans or
    models (with overdispersion).

    Parameters
    ----------
    data : DataFrame
        Tidy trials, one row per observer and trial.
    level : str
        The column of numeric levels (in the manipulation's units; rows without a number are
        left out).
    correct : str
        The column saying whether the answer was right.
    observer : str
        The column naming the observer.
    manipulation : str or None
        The column naming the manipulation (one fit per manipulation); None: all rows are one
        manipulation, named after the ``level`` column.
    observer_type : str, optional
        A column of ``human``/``model`` (default: ``observer_type`` when there is one).
    n_choices : int
        Response alternatives (16 for the classification task).
    workers : int
        Processes for the fits.

    Returns
    -------
    DataFrame
        manipulation, observer, observer_type, fit (observer/group), direction,
        level_transform, sigmoid, guess_rate, threshold (+ CI), width (+ CI), lapse (+ CI),
        eta, n_trials, n_levels; ``attrs["notes"]`` says what was not fitted and why.

    See Also
    --------
    avmit_psych.analysis.psychometric.fit_all : what this calls.

    Notes
    -----
    Tested by recovering the threshold of simulated observers (2,000 trials: within 10 %).

    Examples
    --------
    Trials of an observer whose accuracy is half-way between chance (1/16) and the top at
    -8 dB SNR (a cumulative Gaussian of SD 4 dB: width 13.2 dB), 60 trials a level:

    >>> import numpy as np
    >>> import pandas as pd
    >>> from scipy.stats import norm
    >>> import avmit_psych as ap
    >>> level = np.repeat([-20, -15, -10, -5, 0, 5, 10], 60)
    >>> p = 1 / 16 + (1 - 1 / 16 - 0.02) * norm.cdf((level + 8) / 4)
    >>> trials = pd.DataFrame({"observer": "P01", "manipulation": "audio_noise",
    ...                        "level": level,
    ...                        "correct": np.random.default_rng(0).random(len(level)) < p})
    >>> fits = ap.psychometric_fit(trials)
    >>> fits[["manipulation", "direction", "n_trials", "threshold", "width"]].round(1)
      manipulation   direction  n_trials  threshold  width
    0  audio_noise  increasing       420       -8.1   13.8
    """
    from .analysis.psychometric import fit_all
    who = _need(data, observer, "observer").astype(str).str.strip()
    right, known = _truth(_need(data, correct, "correct"), correct)
    value = pd.to_numeric(_need(data, level, "level"), errors="coerce").to_numpy(float)
    trials = pd.DataFrame({
        "observer": who.to_numpy(object),
        "observer_type": _types(data, who, observer_type),
        "manipulation": _need(data, manipulation, "manipulation").astype(str).str.strip()
        .to_numpy(object) if manipulation is not None else level,
        "level_value": value, "correct": right,
        "task": data["task"].astype(str).to_numpy(object) if "task" in data.columns
        else "classify"})
    # rows without a numeric level stay: the unimodal and clean conditions set a cue-integrating
    # observer's floor and ceiling (see the psychometric module)
    trials = trials[known].reset_index(drop=True)
    fits, notes = fit_all(trials, workers=workers, n_choices=n_choices)
    fits.attrs["notes"] = notes
    return fits
