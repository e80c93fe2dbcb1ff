"""Study plans: which participant sees which stimulus, in which session, in which order.

A study is planned once, before anyone is tested, and every session reads its plan::

    python -m avmit_psych.experiments plan --manifest suite/manifest.csv --out study/
    python -m avmit_psych.experiments plan --manifest suite/manifest.csv \\
        --design experiments/study_design.yaml --practice-manifest practice/manifest.csv \\
        --pilot pilot_data/ --power --out study/

or from Python: ``plan_study("suite/manifest.csv", "study/")``, ``load_study("study/")``.

What is planned (every default can be changed in the design file, see
``experiments/study_design.yaml``)
------------------------------------------------------------------------------------------
Conditions
    Every distinct (manipulation, level) of the manifest (``manipulations: [...]`` keeps some
    manipulations only). A numeric level is one level however it is written (``5`` = ``5.0``).
    In the correspondence task ``audio_only`` and ``visual_only`` are left out (nothing to
    correspond). ``semantic_swap`` is ONE condition: its manifest ``level`` is the donor
    class, which differs from video to video by construction (a balanced derangement), so it
    is not a level of the design; the trial lists keep the donor class in ``level``. Every source video must have
    exactly one stimulus per condition, otherwise the plan is refused.
Lists (a Latin square over source videos)
    ``lists`` L (default: as many as conditions C; more is refused). Sources are ordered by
    class (the 16 test classes in their canonical order, other labels after them, sorted) and,
    within a class, by a seeded shuffle, and numbered g = 0, 1, ...; in list l (0-based) source
    g is shown in condition ``(g + l * C // L) mod C``. With L = C every participant sees every
    source once, each condition floor/ceil(S / C) times, balanced over the classes (a
    condition's count differs by at most one between classes of equal size), and one rotation
    of the L lists shows every (source, condition) cell exactly once.
    ``participants_per_list`` (default 1): participant n (1, 2, ... in order of enrolment) takes
    list ``(n - 1) mod L + 1`` (:meth:`Study.list_for_participant`); the participants of a list
    read the same files, so they see the same stimuli in the same order.
Trials per participant
    Default: every source video once (S trials). A smaller ``trials_per_participant`` takes a
    class-balanced subset of the sources (the same for every list); more than S is refused.
Sessions
    ``trial_duration_s`` (default 6.5 s: 0.5 s fixation + 3.0 s clip + ~2 s response + 1 s
    inter-trial), or measured from pilot data (``--pilot DIR``: the median interval between
    consecutive trial onsets of one participant and session, in trials CSVs with ``onset,
    session, participant``; intervals over 60 s are breaks and left out; practice rows too).
    ``max_session_minutes`` (default 60); ``sessions`` (default: the fewest sessions in which
    every session, practice and repeats included, fits ``max_session_minutes``; a given number
    that does not fit is refused, and so is a ``max_session_minutes`` shorter than one block of
    ``break_every`` trials). A list's trials are split over the sessions so that every
    session holds floor/ceil of each condition's and each class's count over the sessions
    (exactly; :func:`split_sessions`). Breaks are self-paced and not counted in the minutes.
    With 960 sources, 27 conditions and the defaults: 2 sessions of 480 trials + 48 repeats
    (+ 8 practice trials with a practice manifest), 57-58 min each. (At 7.0 s a trial the
    1,056 trials would need 123 min: 3 sessions.)
Order within a session
    A seeded shuffle (per list and session), then a repair pass: where a trial has the class
    (``no_repeat_class``) or the source video (``no_repeat_source``) of the trial before it, it
    swaps with the first later trial that fits, or moves to the first earlier place between two
    trials it fits between. Impossible orders (e.g. one class only) are refused naming the
    constraint.
Breaks
    ``break_before`` is True on main trials 61, 121, ... of a session (``break_every`` 60,
    counted in main trials, repeats included); never before the first main trial.
Repeats
    ``repeat_share`` (default 0.1) of each session's originals, chosen spread over conditions
    and classes, are shown a second time (``repeat`` True) at least ``repeat_min_gap`` (default
    20) trials after the original, in the same session, each placed at a seeded random position
    between trials whose class and source differ from its own. A gap that cannot fit in a
    session is refused.
Practice
    From videos outside the test set only: ``practice: {manifest: PATH, n: 8}`` (or
    ``--practice-manifest``), e.g. a suite made with ``python -m avmit_psych.stimuli generate``
    from AVMIT training videos with the same suite YAML. A practice stimulus whose source video
    (or audio source) is a source video of the test manifest is refused, naming it. ``n``
    stimuli are chosen (seeded) over the manipulations: ``none`` first, then one of each other
    manipulation in turn, preferring unused source videos; the same practice opens every
    session of every list (``block`` 'practice', ``repeat`` False). With no practice manifest
    no practice is planned, and the report and ``design.json`` say so.
Power
    Computed by pingouin (Vallat 2018, JOSS 3(31), 1026): ``pingouin.power_ttest(d, n,
    power, alpha, contrast='paired')`` (two-sided) and ``pingouin.power_rm_anova(eta_squared,
    m, n, power, alpha, corr)`` (one within factor of m levels, sphericity assumed). The report
    always states the power of the planned N (participants_per_list x L) for effect size d
    (default 0.5) and eta^2 (default 0.06) over m levels (default: the manipulation with the
    most levels); ``--power`` adds the N needed for ``target_power`` (default 0.8), rounded up,
    and the participants per list it implies (ceil(N / L)). Tested against pingouin itself:
    d = 0.5, alpha = 0.05, power = 0.8, paired -> N = 34.

Output (the contract the session runner reads)
----------------------------------------------
``STUDY/design.json``
    version, task, seed, manifest (absolute path), manifest_sha256, suite_root, conditions,
    n_sources, n_lists, sessions, participants_per_list, trials_per_participant,
    trial_duration_s, max_session_minutes, break_every, repeat_share, repeat_min_gap,
    practice {manifest, suite_root, n, note}, plans [{list, session, file, sha256, n_trials,
    n_main, n_practice, n_repeats, minutes}] (n_trials = n_practice + n_main; n_main counts
    the repeats) and power.
``STUDY/list-<LL>_ses-<S>.csv``
    One row per trial in presentation order, columns :data:`PLAN_COLUMNS`; ``level`` exactly
    as written in the manifest.
``STUDY/design_report.txt``
    The design in words and counts.

The same manifest, design and seed give byte-identical files. A bad design raises
:class:`~avmit_psych.dataset.schema.DatasetError` and writes nothing; all files are written
together or not at all.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._atomic import fsync_dir, remove, sha256_file
from ..dataset import schema
from ..dataset.schema import TEST_CLASSES, DatasetError, OutputBatch

#: Columns of a plan file (``list-LL_ses-S.csv``), in order.
PLAN_COLUMNS = list(schema.STUDY_PLAN_COLUMNS)
#: Manifest columns a plan needs (the rest of the manifest is not read).
MANIFEST_NEEDS = list(schema.STUDY_PLAN_FROM_MANIFEST)
DESIGN_FILE, REPORT_FILE, DESIGN_VERSION = "design.json", "design_report.txt", 1
TASKS = ("classify", "correspondence")
#: Manipulations whose manifest ``level`` names a donor, not a level of the design.
DONOR_LEVEL_UNIT = "donor class"
NO_PRACTICE_NOTE = ("no practice stimuli: give a practice manifest made from videos outside the "
                    "test set (e.g. AVMIT training videos: python -m avmit_psych.stimuli "
                    "generate ...)")
#: Intervals between pilot trial onsets longer than this are breaks, not trials.
PILOT_MAX_INTERVAL_S = 60.0


# --------------------------------------------------------------------------------------------
# The design
# --------------------------------------------------------------------------------------------
@dataclass
class Design:
    """Every choice of a study plan; the defaults are the module docstring's."""

    task: str = "classify"
    seed: int = 0
    suite_root: Path | None = None
    manipulations: tuple[str, ...] | None = None
    lists: int | None = None
    trials_per_participant: int | None = None
    participants_per_list: int = 1
    sessions: int | None = None
    max_session_minutes: float = 60.0
    trial_duration_s: float = 6.5
    pilot: Path | None = None
    break_every: int = 60
    repeat_share: float = 0.1
    repeat_min_gap: int = 20
    practice_manifest: Path | None = None
    practice_n: int = 8
    practice_suite_root: Path | None = None
    no_repeat_class: bool = True
    no_repeat_source: bool = True
    effect_size: float = 0.5
    alpha: float = 0.05
    target_power: float = 0.8
    eta_squared: float = 0.06
    rm_levels: int | None = None
    rm_corr: float = 0.5
    n_needed: bool = False
    #: where the values came from (the design file), for messages
    source: Path | None = field(default=None, compare=False)
    #: which values were set (by the design file or a caller), for the report
    given: frozenset = field(default=frozenset(), compare=False)


#: design-file key -> Design field (nested sections: section -> {key: field})
_TOP_KEYS = {"task": "task", "seed": "seed", "suite_root": "suite_root",
             "manipulations": "manipulations", "lists": "lists",
             "trials_per_participant": "trials_per_participant",
             "participants_per_list": "participants_per_list", "sessions": "sessions",
             "max_session_minutes": "max_session_minutes",
             "trial_duration_s": "trial_duration_s", "pilot": "pilot",
             "break_every": "break_every", "repeat_share": "repeat_share",
             "repeat_min_gap": "repeat_min_gap"}
_SECTIONS = {
    "practice": {"manifest": "practice_manifest", "n": "practice_n",
                 "suite_root": "practice_suite_root"},
    "order_constraints": {"no_repeat_class": "no_repeat_class",
                          "no_repeat_source": "no_repeat_source"},
    "power": {"effect_size": "effect_size", "alpha": "alpha", "target_power": "target_power",
              "eta_squared": "eta_squared", "rm_levels": "rm_levels", "rm_corr": "rm_corr",
              "n_needed": "n_needed"},
}
_PATH_FIELDS = {"suite_root", "pilot", "practice_manifest", "practice_suite_root"}
_INT_FIELDS = {"seed", "lists", "trials_per_participant", "participants_per_list", "sessions",
               "break_every", "repeat_min_gap", "practice_n", "rm_levels"}
_FLOAT_FIELDS = {"max_session_minutes", "trial_duration_s", "repeat_share", "effect_size",
                 "alpha", "target_power", "eta_squared", "rm_corr"}
_BOOL_FIELDS = {"no_repeat_class", "no_repeat_source", "n_needed"}
_OPTIONAL = {"suite_root", "manipulations", "lists", "trials_per_participant", "sessions",
             "pilot", "practice_manifest", "practice_suite_root", "rm_levels"}


def _allowed_keys() -> str:
    keys = list(_TOP_KEYS) + [f"{s}: {{{', '.join(k)}}}" for s, k in _SECTIONS.items()]
    return ", ".join(keys)


def design_from_dict(spec: dict | None, *, path=None) -> Design:
    """A :class:`Design` from a design file's mapping (unknown keys and bad values raise
    :class:`DatasetError` naming the key). Relative paths are relative to ``path``'s folder."""
    spec = {} if spec is None else spec
    if not isinstance(spec, dict):
        raise DatasetError("a design file is a mapping of keys to values", path=path,
                           fix=f"keys are {_allowed_keys()}")
    base = Path(path).parent if path is not None else Path.cwd()
    values: dict[str, Any] = {}
    for key, value in spec.items():
        if key in _SECTIONS:
            if value is None:
                continue
            if not isinstance(value, dict):
                raise DatasetError(f"key '{key}' needs a mapping", path=path, column=key,
                                   fix=f"e.g. {key}: {{{', '.join(_SECTIONS[key])}}}")
            for sub, sub_value in value.items():
                if sub not in _SECTIONS[key]:
                    raise DatasetError(f"unknown key '{key}.{sub}'", path=path,
                                       column=f"{key}.{sub}",
                                       fix=f"keys of {key} are {', '.join(_SECTIONS[key])}")
                values[_SECTIONS[key][sub]] = (f"{key}.{sub}", sub_value)
        elif key in _TOP_KEYS:
            values[_TOP_KEYS[key]] = (key, value)
        else:
            import difflib
            close = difflib.get_close_matches(str(key), list(_TOP_KEYS) + list(_SECTIONS), n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise DatasetError(f"unknown key '{key}'", path=path, column=str(key),
                               fix=f"{hint}keys are {_allowed_keys()}")
    design = Design(source=Path(path) if path is not None else None)
    return _apply(design, {f: v for f, (_, v) in values.items()}, base=base, path=path,
                  names={f: k for f, (k, _) in values.items()})


def _apply(design: Design, values: dict, *, base: Path, path=None, names=None) -> Design:
    """``design`` with ``values`` (field name -> raw value) checked and set."""
    names = names or {}
    checked = {}
    for name, value in values.items():
        key = names.get(name, name)
        if name not in {f.name for f in fields(Design)} or name in ("source", "given"):
            settings = [f.name for f in fields(Design) if f.name not in ("source", "given")]
            raise DatasetError(f"unknown design setting '{name}'", path=path, column=name,
                               fix=f"settings are {', '.join(settings)}")
        checked[name] = _check_value(name, key, value, base=base, path=path)
    out = replace(design, **checked)
    out.given = frozenset(design.given | set(checked))
    _check_design(out, path)
    return out


def _check_value(name: str, key: str, value, *, base: Path, path):
    def bad(expected):
        return DatasetError(f"'{key}' must be {expected}, got {value!r}", path=path, column=key,
                            fix="correct the value (see experiments/study_design.yaml)")
    if value is None:
        if name in _OPTIONAL:
            return None
        raise bad("given (it has no 'null' value)")
    if name in _PATH_FIELDS:
        if not isinstance(value, (str, Path)) or not str(value):
            raise bad("a path")
        p = Path(os.path.expanduser(str(value)))
        return Path(os.path.abspath(p if p.is_absolute() else base / p))
    if name == "manipulations":
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)) or not value or \
                not all(isinstance(v, str) and v for v in value):
            raise bad("a list of manipulation names")
        return tuple(value)
    if name == "task":
        if value not in TASKS:
            raise bad(" or ".join(TASKS))
        return value
    if name in _BOOL_FIELDS:
        if not isinstance(value, (bool, np.bool_)):
            raise bad("true or false")
        return bool(value)
    if name in _INT_FIELDS:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            raise bad("a whole number")
        return int(value)
    if name in _FLOAT_FIELDS:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)) \
                or not np.isfinite(value):
            raise bad("a number")
        return float(value)
    return value  # pragma: no cover


def _check_design(d: Design, path) -> None:
    """Ranges of single values (what needs the manifest is checked when planning)."""
    def need(ok, key, expected, value):
        if not ok:
            raise DatasetError(f"'{key}' must be {expected}, got {value!r}", path=path,
                               column=key, fix="correct the value")
    for key in ("lists", "trials_per_participant", "sessions", "rm_levels"):
        v = getattr(d, key)
        need(v is None or v >= 1, key, "at least 1", v)
    need(d.participants_per_list >= 1, "participants_per_list", "at least 1",
         d.participants_per_list)
    need(d.max_session_minutes > 0, "max_session_minutes", "above 0", d.max_session_minutes)
    need(d.trial_duration_s > 0, "trial_duration_s", "above 0", d.trial_duration_s)
    need(d.break_every >= 1, "break_every", "at least 1", d.break_every)
    need(0 <= d.repeat_share < 1, "repeat_share", "from 0 to below 1", d.repeat_share)
    need(d.repeat_min_gap >= 1, "repeat_min_gap", "at least 1", d.repeat_min_gap)
    if d.no_repeat_source and d.repeat_share > 0:
        need(d.repeat_min_gap >= 2, "repeat_min_gap",
             "at least 2 while no_repeat_source is on (a repeat right after its original is "
             "the same source twice in a row)", d.repeat_min_gap)
    need(d.practice_n >= 0, "practice.n", "0 or more", d.practice_n)
    need(d.effect_size > 0, "power.effect_size", "above 0", d.effect_size)
    need(0 < d.alpha < 1, "power.alpha", "between 0 and 1", d.alpha)
    need(0 < d.target_power < 1, "power.target_power", "between 0 and 1", d.target_power)
    need(0 < d.eta_squared < 1, "power.eta_squared", "between 0 and 1", d.eta_squared)
    need(d.rm_levels is None or d.rm_levels >= 2, "power.rm_levels", "at least 2", d.rm_levels)
    need(-1 < d.rm_corr < 1, "power.rm_corr", "between -1 and 1", d.rm_corr)


def load_design(path) -> Design:
    """Read a design YAML file (see ``experiments/study_design.yaml``)."""
    path = Path(path)
    spec = schema.read_yaml(path, what="design file", example="experiments/study_design.yaml")
    return design_from_dict(spec, path=path)


def as_design(design=None, **overrides) -> Design:
    """A :class:`Design` from None (the defaults), a Design, a mapping in the design-file
    layout, or a YAML path; ``overrides`` are :class:`Design` fields (None leaves a value)."""
    if design is None:
        d = Design()
    elif isinstance(design, Design):
        d = design
    elif isinstance(design, dict):
        d = design_from_dict(design)
    else:
        d = load_design(design)
    given = {k: v for k, v in overrides.items() if v is not None}
    return _apply(d, given, base=Path.cwd()) if given else d


# --------------------------------------------------------------------------------------------
# Reading manifests
# --------------------------------------------------------------------------------------------
def _as_text_table(df: pd.DataFrame) -> pd.DataFrame:
    """Every cell as text, empty for missing: what a CSV of ``df`` would hold."""
    out = {}
    for col in df.columns:
        s = df[col]
        if s.dtype == object or pd.api.types.is_string_dtype(s):
            out[str(col)] = ["" if (v is None or (isinstance(v, float) and math.isnan(v)))
                             else str(v) for v in s]
        else:
            out[str(col)] = ["" if pd.isna(v) else str(v) for v in s]
    return pd.DataFrame(out, index=range(len(df)))


def _read_manifest(manifest, what: str) -> tuple[pd.DataFrame, Path | None, str]:
    """(text table, absolute path or None, sha256 of the file or of its CSV text)."""
    if isinstance(manifest, pd.DataFrame):
        path = None
        table = _as_text_table(manifest)
        sha = hashlib.sha256(table.to_csv(index=False, lineterminator="\n")
                             .encode("utf-8")).hexdigest()
    else:
        path = Path(os.path.abspath(Path(manifest)))
        if path.is_dir():
            if (path / "manifest.csv").exists():
                path = path / "manifest.csv"
            else:
                raise DatasetError(f"is a folder without manifest.csv, not a {what}", path=path,
                                   fix="give DIR/manifest.csv of a generated suite")
        table = schema.read_csv(path)
        sha = sha256_file(path)
    missing = [c for c in MANIFEST_NEEDS if c not in table.columns]
    if missing:
        raise DatasetError(f"required column '{missing[0]}' is missing (a {what} needs "
                           f"{', '.join(MANIFEST_NEEDS)})", path=path, column=missing[0],
                           fix="give a manifest written by python -m avmit_psych.stimuli "
                               "generate")
    for col in (c for c in MANIFEST_NEEDS if c in schema.MANIFEST_NON_EMPTY):
        empty = (table[col].str.strip() == "").to_numpy()
        if empty.any():
            raise DatasetError("empty cell", path=path, row=int(np.flatnonzero(empty)[0]) + 1,
                               column=col, fix="fill it in or remove that row")
    durations = pd.to_numeric(table["duration_s"], errors="coerce").to_numpy()
    bad = ~(durations > 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DatasetError(f"expected a duration in seconds above 0, got "
                           f"'{table['duration_s'].iloc[i]}'", path=path, row=i + 1,
                           column="duration_s", fix="correct or remove that row")
    dup = table["stimulus_id"].duplicated().to_numpy()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        raise DatasetError(f"stimulus_id '{table['stimulus_id'].iloc[i]}' appears twice",
                           path=path, row=i + 1, column="stimulus_id",
                           fix="give each stimulus one row")
    labels = table.groupby("source_filename", sort=False)["label"].nunique()
    if (labels > 1).any():
        src = labels[labels > 1].index[0]
        rows = table.index[table["source_filename"] == src]
        raise DatasetError(f"source video '{src}' has more than one label "
                           f"({', '.join(sorted(table.loc[rows, 'label'].unique()))})",
                           path=path, row=int(rows[1]) + 1, column="label",
                           fix="give every stimulus of a source video its source's label")
    return table, path, sha


def _manipulation_rank(name: str) -> tuple[int, str]:
    from ..stimuli.suite import MANIPULATIONS
    order = list(MANIPULATIONS)
    return (order.index(name), "") if name in order else (len(order), name)


def _level_key(manipulation: np.ndarray, level: np.ndarray, unit: np.ndarray) -> np.ndarray:
    """The design level of every row: numbers as ``%g``, text stripped, '' for none and for
    donor levels (semantic swaps)."""
    stripped = np.char.strip(level.astype(str))
    uniques, inverse = np.unique(stripped, return_inverse=True)
    keys = []
    for u in uniques:
        try:
            v = float(u)
            keys.append(f"{v:g}" if math.isfinite(v) else u)
        except ValueError:
            keys.append("" if u.lower() in ("", "nan", "none") else u)
    out = np.asarray(keys, dtype=object)[inverse]
    donor = (unit == DONOR_LEVEL_UNIT) | (manipulation == "semantic_swap")
    out[donor] = ""
    return out


def condition_name(manipulation: str, level_key: str) -> str:
    """``manipulation=level`` (``audio_noise=-5``), or the manipulation alone without a level."""
    return manipulation if level_key == "" else f"{manipulation}={level_key}"


# --------------------------------------------------------------------------------------------
# The plan in memory
# --------------------------------------------------------------------------------------------
@dataclass
class StudyPlan:
    """A planned study before it is written (:func:`write_study` writes it).

    Attributes
    ----------
    design : Design
    info : dict
        design.json without ``plans``' file names and checksums.
    conditions : DataFrame
        condition, manipulation, level (as written in the manifest), n_levels of its
        manipulation; in the design's order (index = condition number).
    sources : DataFrame
        The planned source videos in Latin-square order (index g): source_filename, label.
    assignment : ndarray (n_sources, n_lists)
        Condition number of source g in list l.
    plans : dict
        (list, session) -> the trial list (PLAN_COLUMNS), 1-based list and session.
    report : str
    """

    design: Design
    info: dict
    conditions: pd.DataFrame
    sources: pd.DataFrame
    assignment: np.ndarray
    plans: dict
    report: str = ""
    notes: list = field(default_factory=list)


def _source_order(labels: np.ndarray, names: np.ndarray, seed: int) -> np.ndarray:
    """Sources by class (TEST_CLASSES order, other labels sorted after them), shuffled within a
    class by ``seed``; independent of the manifest's row order."""
    others = sorted(set(labels) - set(TEST_CLASSES))
    rank = {c: i for i, c in enumerate(list(TEST_CLASSES) + others)}
    by_name = np.argsort(names, kind="stable")
    keys = np.empty(len(names))
    keys[by_name] = np.random.default_rng([int(seed), 11]).random(len(names))
    class_rank = np.array([rank[c] for c in labels])
    return np.lexsort((keys, class_rank))


def _balanced_subset(order: np.ndarray, labels: np.ndarray, n: int) -> np.ndarray:
    """The first ``n`` sources taking one of each class in turn (``order`` is class-grouped)."""
    lab = labels[order]
    within = np.zeros(len(order), dtype=int)
    for c in pd.unique(lab):
        idx = np.flatnonzero(lab == c)
        within[idx] = np.arange(len(idx))
    class_pos = pd.factorize(lab)[0]
    take = np.lexsort((class_pos, within))[:n]
    return order[np.sort(take)]  # back to class-grouped order


def order_trials(classes, sources, rng: np.random.Generator | None, *, no_repeat_class=True,
                 no_repeat_source=True, strict=True, where: str = "") -> np.ndarray:
    """A presentation order (indices) with no two consecutive trials of one class / source.

    A seeded shuffle (no shuffle when ``rng`` is None), then a repair pass: a trial that
    clashes with the one before it swaps with the first later trial that fits, or else moves to
    the first earlier place between two trials it fits between. ``strict``: raise
    :class:`DatasetError` naming the constraint when that fails; else leave it (best effort).
    """
    cls, src = np.asarray(classes), np.asarray(sources)
    n = len(cls)
    seq = list(rng.permutation(n)) if rng is not None else list(range(n))
    if n < 2 or not (no_repeat_class or no_repeat_source):
        return np.asarray(seq, dtype=int)
    if strict and no_repeat_class:
        values, counts = np.unique(cls, return_counts=True)
        if counts.max() > (n + 1) // 2:
            raise DatasetError(
                f"order constraint no_repeat_class cannot be met{where}: {counts.max()} of "
                f"{n} trials are of class '{values[counts.argmax()]}', so two of them must "
                f"follow each other", column="order_constraints.no_repeat_class",
                fix="use more classes, or set order_constraints: {no_repeat_class: false}")
    c = cls.tolist()
    s = src.tolist()

    def clash(a, b):
        return (no_repeat_class and c[a] == c[b]) or (no_repeat_source and s[a] == s[b])

    i = 1
    while i < n:
        prev, x = seq[i - 1], seq[i]
        if not clash(prev, x):
            i += 1
            continue
        j = next((j for j in range(i + 1, n) if not clash(prev, seq[j])), None)
        if j is not None:
            seq[i], seq[j] = seq[j], seq[i]
            i += 1
            continue
        k = next((k for k in range(i - 1) if (k == 0 or not clash(seq[k - 1], x))
                  and not clash(x, seq[k])), None)
        if k is not None:
            seq.pop(i)
            seq.insert(k, x)
            i += 1
            continue
        if strict:
            which = "no_repeat_class" if c[prev] == c[x] and no_repeat_class \
                else "no_repeat_source"
            raise DatasetError(f"order constraint {which} cannot be met{where}",
                               column=f"order_constraints.{which}",
                               fix=f"use more classes or source videos, or set "
                                   f"order_constraints: {{{which}: false}}")
        i += 1
    return np.asarray(seq, dtype=int)


def _insert_repeats(order: np.ndarray, repeats: np.ndarray, cls: np.ndarray, src: np.ndarray,
                    gap: int, rng: np.random.Generator, *, no_class: bool,
                    no_source: bool) -> tuple[list[int], list[bool], int]:
    """Insert a second showing of each item in ``repeats`` >= ``gap`` places after its
    original, between neighbours of another class / source. Returns (items, is_repeat,
    number placed against a constraint)."""
    items = [int(i) for i in order]
    flags = [False] * len(items)
    forced = 0
    for r in rng.permutation(np.asarray(repeats, dtype=int)):
        r = int(r)
        q = next(k for k, (it, f) in enumerate(zip(items, flags)) if it == r and not f)
        arr = np.asarray(items)
        lo, hi = q + gap, len(items)
        cand = np.arange(lo, hi + 1)
        ok = np.ones(len(cand), dtype=bool)
        for same, on in ((cls, no_class), (src, no_source)):
            if not on:
                continue
            vals = same[arr]
            before = np.where(cand > 0, vals[np.clip(cand - 1, 0, hi - 1)] != same[r], True)
            after = np.where(cand < hi, vals[np.clip(cand, 0, hi - 1)] != same[r], True)
            ok &= before & after
        if not ok.any():
            forced += 1
            ok[:] = True
        p = int(cand[ok][rng.integers(ok.sum())])
        items.insert(p, r)
        flags.insert(p, True)
    return items, flags, forced


def split_sessions(condition, klass, sessions: int, rng: np.random.Generator) -> np.ndarray:
    """The session (0-based) of every trial: session j gets floor/ceil(n / s) trials and every
    condition and every class floor/ceil of its count over the s sessions, exactly.

    Sessions are filled one after the other. For each, the number of trials to take from every
    (condition, class) cell is a controlled rounding of (what is left) / (sessions left): cell,
    row (condition), column (class) and total each rounded down or up. Such a rounding always
    exists (Bacharach 1966, "Matrix rounding problems", Management Science 12(9):732-742);
    it is found as a feasible flow with lower bounds (``scipy.sparse.csgraph.maximum_flow``).
    What is left stays divisible the same way, so every session is balanced. Which trials of a
    cell go where is seeded.
    """
    cond, cls = np.asarray(condition, dtype=int), np.asarray(klass, dtype=int)
    n = len(cond)
    out = np.zeros(n, dtype=int)
    if sessions <= 1 or n == 0:
        return out
    C, K = cond.max() + 1, cls.max() + 1
    left = np.zeros((C, K), dtype=np.int64)
    np.add.at(left, (cond, cls), 1)
    caps = np.full(sessions, n // sessions)
    caps[: n % sessions] += 1
    takes = []
    for j in range(sessions - 1):
        x = _controlled_rounding(left, sessions - j, int(caps[j]))
        takes.append(x)
        left = left - x
    takes.append(left)
    # deal each cell's trials (in a seeded order) to the sessions by those counts
    order = np.lexsort((rng.random(n), cls, cond))
    cell = cond[order] * K + cls[order]
    starts = np.flatnonzero(np.r_[True, cell[1:] != cell[:-1]])
    for a, b in zip(starts, np.r_[starts[1:], n]):
        c, k = divmod(int(cell[a]), K)
        counts = [int(t[c, k]) for t in takes]
        out[order[a:b]] = np.repeat(np.arange(sessions), counts)
    return out


def _controlled_rounding(table: np.ndarray, parts: int, total: int) -> np.ndarray:
    """An integer table x with every cell, row sum, column sum and the total (= ``total``) equal
    to floor or ceil of ``table / parts``'s; a feasible circulation with lower bounds."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import maximum_flow
    C, K = table.shape
    rows, cols = table.sum(axis=1), table.sum(axis=0)
    src, snk = 0, 1
    cnode, knode = 2 + np.arange(C), 2 + C + np.arange(K)
    s2, t2 = 2 + C + K, 3 + C + K
    edges = []   # (u, v, low, high)
    for c in range(C):
        edges.append((src, cnode[c], rows[c] // parts, -(-rows[c] // parts)))
        for k in range(K):
            if table[c, k]:
                edges.append((cnode[c], knode[k], table[c, k] // parts,
                              -(-table[c, k] // parts)))
    for k in range(K):
        edges.append((knode[k], snk, cols[k] // parts, -(-cols[k] // parts)))
    edges.append((snk, src, total, total))
    excess = np.zeros(4 + C + K, dtype=np.int64)
    u, v, lo, hi = (np.array(e, dtype=np.int64) for e in zip(*edges))
    np.add.at(excess, v, lo)
    np.add.at(excess, u, -lo)
    pos, neg = np.flatnonzero(excess > 0), np.flatnonzero(excess < 0)
    uu = np.r_[u, np.full(len(pos), s2), neg]
    vv = np.r_[v, pos, np.full(len(neg), t2)]
    cap = np.r_[hi - lo, excess[pos], -excess[neg]]
    graph = csr_matrix((cap.astype(np.int32), (uu, vv)), shape=(4 + C + K,) * 2)
    result = maximum_flow(graph, s2, t2)
    if result.flow_value != excess[pos].sum():  # pragma: no cover - cannot happen (Bacharach)
        raise RuntimeError("no balanced split of the trials over the sessions")
    flow = result.flow.toarray()
    return table // parts + flow[np.ix_(cnode, knode)]


def _session_sizes(n_main: int, sessions: int, d: Design, n_practice: int) -> list[dict]:
    base, extra = divmod(n_main, sessions)
    out = []
    for j in range(sessions):
        main = base + (1 if j < extra else 0)
        reps = int(math.floor(d.repeat_share * main + 0.5))
        trials = n_practice + main + reps
        out.append({"main": main, "repeats": reps, "practice": n_practice, "trials": trials,
                    "minutes": trials * d.trial_duration_s / 60.0})
    return out


def measure_trial_duration(pilot) -> tuple[float, int, int]:
    """Median interval (s) between consecutive trial onsets of one participant and session in
    pilot trials CSVs (a file or a folder searched recursively). Intervals over 60 s (breaks)
    and practice rows are left out.

    Returns
    -------
    (median_s, n_intervals, n_files)
    """
    pilot = Path(pilot)
    if not pilot.exists():
        raise DatasetError("pilot data not found", path=pilot,
                           fix="give the folder of the pilot's trials CSVs (data/)")
    files = [pilot] if pilot.is_file() else sorted(pilot.rglob("*.csv"))
    intervals, used = [], 0
    for f in files:
        table = schema.read_csv(f)
        if not {"onset", "session", "participant"} <= set(table.columns):
            continue
        if "block" in table.columns:
            table = table[table["block"] != "practice"]
        onset = pd.to_numeric(table["onset"], errors="coerce")
        table = table.assign(_onset=onset)[onset.notna()]
        if "trial" in table.columns:
            table = table.assign(_order=pd.to_numeric(table["trial"], errors="coerce"))
        else:
            table = table.assign(_order=table["_onset"])
        used += 1
        for _, rows in table.groupby(["participant", "session"], sort=True):
            diffs = np.diff(rows.sort_values(["_order", "_onset"])["_onset"].to_numpy(float))
            intervals.extend(diffs[(diffs > 0) & (diffs <= PILOT_MAX_INTERVAL_S)].tolist())
    if not intervals:
        raise DatasetError("no trial onsets found in the pilot data (trials CSVs with the "
                           "columns onset, session, participant and at least two trials in a "
                           "session)", path=pilot,
                           fix="give the data folder of a pilot run of experiments/"
                               "human_vs_dnn.py, or set trial_duration_s in the design")
    return float(np.median(intervals)), len(intervals), used


def power_analysis(n_planned: int, *, effect_size: float = 0.5, alpha: float = 0.05,
                   target_power: float = 0.8, eta_squared: float = 0.06,
                   rm_levels: int | None = 9, rm_corr: float = 0.5, n_needed: bool = False,
                   n_lists: int = 1) -> dict:
    """Power of ``n_planned`` participants and, with ``n_needed``, the N needed for
    ``target_power``: a paired t-test on Cohen's d (two-sided) and a one-way repeated-measures
    ANOVA on eta^2 over ``rm_levels`` levels, both by pingouin (``power_ttest(...,
    contrast='paired')``, ``power_rm_anova``). N is rounded up; ``participants_per_list_*`` is
    ceil(N / n_lists). Values pingouin cannot compute (N < 2, fewer than 2 levels) are None,
    with the reason in ``notes``."""
    import pingouin as pg
    out: dict[str, Any] = {
        "library": f"pingouin {pg.__version__}", "alternative": "two-sided",
        "effect_size_d": effect_size, "alpha": alpha, "target_power": target_power,
        "eta_squared": eta_squared, "rm_levels": rm_levels, "rm_corr": rm_corr,
        "planned_n": int(n_planned), "power_paired_planned": None,
        "power_rm_anova_planned": None, "notes": []}

    def value(x):
        return None if x is None or not np.isfinite(x) else round(float(x), 4)

    if n_planned >= 2:
        out["power_paired_planned"] = value(pg.power_ttest(d=effect_size, n=n_planned,
                                                           alpha=alpha, contrast="paired"))
        if rm_levels is not None and rm_levels >= 2:
            out["power_rm_anova_planned"] = value(pg.power_rm_anova(
                eta_squared=eta_squared, m=rm_levels, n=n_planned, alpha=alpha, corr=rm_corr))
    else:
        out["notes"].append(f"the power of N = {n_planned} cannot be computed (N < 2)")
    if rm_levels is None or rm_levels < 2:
        out["notes"].append("no manipulation has 2 or more levels: no repeated-measures ANOVA")
    if n_needed:
        n_t = pg.power_ttest(d=effect_size, power=target_power, alpha=alpha, contrast="paired")
        out["n_paired"] = int(math.ceil(n_t)) if np.isfinite(n_t) else None
        out["participants_per_list_paired"] = None if out["n_paired"] is None else \
            int(math.ceil(out["n_paired"] / n_lists))
        out["n_rm_anova"] = out["participants_per_list_rm_anova"] = None
        if rm_levels is not None and rm_levels >= 2:
            n_a = pg.power_rm_anova(eta_squared=eta_squared, m=rm_levels, power=target_power,
                                    alpha=alpha, corr=rm_corr)
            if np.isfinite(n_a):
                out["n_rm_anova"] = int(math.ceil(n_a))
                out["participants_per_list_rm_anova"] = int(math.ceil(out["n_rm_anova"] /
                                                                      n_lists))
    return out


def _read_practice(d: Design, test: pd.DataFrame, practice):
    """(practice table, its absolute path, its suite root), or Nones without practice."""
    if practice is None and d.practice_manifest is None:
        return None, None, None
    table, path, _ = _read_manifest(practice if practice is not None else d.practice_manifest,
                                    "practice manifest")
    test_sources = set(test["source_filename"])
    for col in ("source_filename", "audio_source"):
        hit = table[col].isin(test_sources).to_numpy()
        if hit.any():
            i = int(np.flatnonzero(hit)[0])
            what = "source video" if col == "source_filename" else "audio source"
            raise DatasetError(
                f"practice stimulus '{table['stimulus_id'].iloc[i]}' has {what} "
                f"'{table[col].iloc[i]}', a source video of the test stimuli "
                f"({int(hit.sum())} practice stimuli do)", path=path, row=i + 1, column=col,
                fix="make practice stimuli from videos outside the test set (e.g. AVMIT "
                    "training videos)")
    root = d.practice_suite_root or (path.parent if path is not None else None)
    if root is None:
        raise DatasetError("a practice manifest given as a table needs practice.suite_root",
                           column="practice.suite_root",
                           fix="give the folder the practice manifest's paths are relative to")
    return table, path, Path(os.path.abspath(root))


def _choose_practice(table: pd.DataFrame, n: int, manipulations: list[str], seed: int
                     ) -> np.ndarray:
    """``n`` practice rows: 'none' first, then each manipulation in turn, preferring unused
    source videos and classes (seeded)."""
    pool = table[table["manipulation"].isin(manipulations)]
    if pool.empty:
        pool = table
    rng = np.random.default_rng([int(seed), 23])
    names = sorted(pool["manipulation"].unique(), key=lambda m: (m != "none",
                                                                 _manipulation_rank(m)))
    queues = {}
    for m in names:
        idx = pool.index[pool["manipulation"] == m].to_numpy()
        idx = idx[np.argsort(pool.loc[idx, "stimulus_id"].to_numpy(), kind="stable")]
        queues[m] = list(idx[rng.permutation(len(idx))])
    chosen, used_src, used_cls = [], set(), set()
    while len(chosen) < n and any(queues.values()):
        for m in names:
            if len(chosen) >= n or not queues[m]:
                continue
            q = queues[m]
            pick = next((k for k, i in enumerate(q) if table.at[i, "source_filename"]
                         not in used_src and table.at[i, "label"] not in used_cls), None)
            if pick is None:
                pick = next((k for k, i in enumerate(q)
                             if table.at[i, "source_filename"] not in used_src), 0)
            i = q.pop(pick)
            chosen.append(i)
            used_src.add(table.at[i, "source_filename"])
            used_cls.add(table.at[i, "label"])
            if len(used_cls) == table["label"].nunique():
                used_cls.clear()
    return np.asarray(chosen, dtype=int)


def make_plan(manifest, design=None, *, practice=None) -> StudyPlan:
    """Plan a study in memory.

    Parameters
    ----------
    manifest : str, Path or DataFrame
        The test stimuli's manifest (``python -m avmit_psych.stimuli generate``). A DataFrame
        needs ``suite_root`` in the design.
    design : Design, dict (design-file layout), str/Path (a design YAML) or None (defaults)
    practice : str, Path or DataFrame, optional
        A practice manifest (overrides the design's ``practice.manifest``).

    Returns
    -------
    StudyPlan

    Raises
    ------
    DatasetError
        For a bad manifest or design (nothing is written).
    """
    d = as_design(design)
    table, path, sha = _read_manifest(manifest, "manifest")
    if path is None and d.suite_root is None:
        raise DatasetError("a manifest given as a table needs suite_root", column="suite_root",
                           fix="give the folder the manifest's paths are relative to")
    suite_root = Path(os.path.abspath(d.suite_root or path.parent))
    notes: list[str] = []
    work, conditions, cond_code = _conditions(table, d)
    if d.task == "correspondence" and len(work) < len(table) and d.manipulations is None:
        left = sorted(set(table["manipulation"]) - set(work["manipulation"]))
        notes.append(f"correspondence task: {', '.join(left)} left out (one modality only: "
                     f"no sound-picture question to ask)")
    grid = _stimulus_grid(work, conditions, cond_code, path)
    C, S_all = len(conditions), len(grid.names)

    # -- lists: a Latin square over source videos -----------------------------------------
    L = C if d.lists is None else d.lists
    if L > C:
        raise DatasetError(f"more lists ({L}) than conditions allow ({C}): a Latin square over "
                           f"{C} conditions has at most {C} distinct lists",
                           path=d.source, column="lists", fix=f"give lists: {C} or fewer")
    T = S_all if d.trials_per_participant is None else d.trials_per_participant
    if T > S_all:
        raise DatasetError(f"trials_per_participant {T} is more than the {S_all} source videos "
                           f"(each source is shown once per participant)", path=d.source,
                           column="trials_per_participant", fix=f"give {S_all} or fewer")
    order = _source_order(grid.labels, grid.names.astype(str), d.seed)
    if T < S_all:
        order = _balanced_subset(order, grid.labels, T)
        notes.append(f"{T} of the {S_all} source videos are planned (class-balanced subset)")
    g = np.arange(T)
    shift = np.array([l * C // L for l in range(L)])
    assignment = (g[:, None] + shift[None, :]) % C      # (T, L) condition numbers
    sources = pd.DataFrame({"source_filename": grid.names[order], "label": grid.labels[order]})
    classes = list(TEST_CLASSES) + sorted(set(grid.labels) - set(TEST_CLASSES))
    class_rank = {c: i for i, c in enumerate(classes)}
    g_class = np.array([class_rank[c] for c in sources["label"]])

    prac = _plan_practice(d, table, practice, list(conditions["manipulation"].unique()))
    d, sessions, sizes, timing = _plan_sessions(d, T, len(prac.rows))

    # -- trial lists -------------------------------------------------------------------------
    main_cols = {c: work[c].to_numpy(dtype=object) for c in _STIMULUS_COLUMNS}
    width = max(2, len(str(L)))
    plans: dict = {}
    plan_info = []
    forced_total = 0
    for l in range(L):
        cond_l = assignment[:, l]
        dealt = np.lexsort((g, g_class, cond_l))   # by condition, class, source
        in_session = split_sessions(cond_l, g_class, sessions,
                                    np.random.default_rng([int(d.seed), 5, l + 1]))
        for j in range(sessions):
            gs = dealt[in_session[dealt] == j]       # this session's sources (g)
            items, flags, forced = _session_order(gs, g_class[gs], sizes[j]["repeats"], d,
                                                  l, j)
            forced_total += forced
            rows = grid.stim_row[order[gs[items]], cond_l[gs[items]]]
            table_lj = _trial_table(l + 1, j + 1, d, prac, main_cols, rows, flags,
                                    str(suite_root))
            plans[(l + 1, j + 1)] = table_lj
            n_practice, n_main = len(prac.rows), len(items)
            plan_info.append({"list": l + 1, "session": j + 1,
                              "file": f"list-{l + 1:0{width}d}_ses-{j + 1}.csv",
                              "sha256": None, "n_trials": len(table_lj), "n_main": n_main,
                              "n_practice": n_practice, "n_repeats": int(np.sum(flags)),
                              "minutes": round(len(table_lj) * d.trial_duration_s / 60.0, 2)})
    if forced_total:
        notes.append(f"{forced_total} repeats could not avoid a neighbour of their own class "
                     f"or source")

    # -- power ------------------------------------------------------------------------------
    rm_levels, rm_from = d.rm_levels, "design"
    if rm_levels is None:
        per = conditions.groupby("manipulation", sort=False)["condition"].size()
        rm_levels, rm_from = int(per.max()), str(per.idxmax())
    power = power_analysis(d.participants_per_list * L, effect_size=d.effect_size,
                           alpha=d.alpha, target_power=d.target_power,
                           eta_squared=d.eta_squared, rm_levels=rm_levels, rm_corr=d.rm_corr,
                           n_needed=d.n_needed, n_lists=L)
    power["rm_levels_from"] = rm_from

    info = {
        "version": DESIGN_VERSION, "task": d.task, "seed": int(d.seed),
        "manifest": None if path is None else str(path), "manifest_sha256": sha,
        "suite_root": str(suite_root),
        "conditions": [{"condition": r.condition, "manipulation": r.manipulation,
                        "level": r.level} for r in conditions.itertuples(index=False)],
        "n_sources": int(T), "n_sources_in_manifest": int(S_all), "n_lists": int(L),
        "sessions": int(sessions), "participants_per_list": int(d.participants_per_list),
        "trials_per_participant": int(T), "trial_duration_s": float(d.trial_duration_s),
        "trial_duration_source": timing["trial_duration_source"],
        "sessions_source": timing["sessions_source"],
        "max_session_minutes": float(d.max_session_minutes),
        "break_every": int(d.break_every), "repeat_share": float(d.repeat_share),
        "repeat_min_gap": int(d.repeat_min_gap),
        "order_constraints": {"no_repeat_class": d.no_repeat_class,
                              "no_repeat_source": d.no_repeat_source},
        "practice": {"manifest": None if prac.path is None else str(prac.path),
                     "suite_root": None if prac.root is None else str(prac.root),
                     "n": len(prac.rows), "note": prac.note},
        "plans": plan_info, "power": power,
    }
    study = StudyPlan(design=d, info=info, conditions=conditions, sources=sources,
                      assignment=assignment, plans=plans, notes=notes)
    study.report = design_report(study)
    return study


#: Manifest columns copied into every trial row.
_STIMULUS_COLUMNS = schema.STUDY_PLAN_FROM_MANIFEST


def _conditions(table: pd.DataFrame, d: Design):
    """(the manifest rows planned, the conditions table, each row's condition number)."""
    manip = table["manipulation"].to_numpy(dtype=object)
    work = table
    if d.manipulations is not None:
        present = sorted(set(manip), key=_manipulation_rank)
        for m in d.manipulations:
            if m not in present:
                raise DatasetError(f"manipulation '{m}' is not in the manifest",
                                   path=d.source, column="manipulations",
                                   fix=f"the manifest has {', '.join(present)}")
        work = table[np.isin(manip, list(d.manipulations))]
        manip = work["manipulation"].to_numpy(dtype=object)
    if d.task == "correspondence":
        # sound and picture of one video cannot be compared when one of them is missing
        from ..models.savc import ONE_MODALITY
        work = work[~np.isin(manip, list(ONE_MODALITY))]
        manip = work["manipulation"].to_numpy(dtype=object)
    key = _level_key(manip, work["level"].to_numpy(dtype=object),
                     work["level_unit"].to_numpy(dtype=object))
    names = _condition_names(manip, key)
    first = pd.DataFrame({"condition": names, "manipulation": manip, "key": key,
                          "level": np.where(key == "", "", work["level"].to_numpy(object))}
                         ).drop_duplicates("condition")

    def level_order(k):
        try:
            return (0 if k == "" else 1, float(k), "")
        except ValueError:
            return (2, 0.0, k)
    first = first.assign(_m=[_manipulation_rank(m) for m in first["manipulation"]],
                         _l=[level_order(k) for k in first["key"]])
    first = first.sort_values(["_m", "_l"], kind="stable")
    conditions = first[["condition", "manipulation", "level"]].reset_index(drop=True)
    conditions["n_levels"] = conditions.groupby("manipulation")["condition"] \
        .transform("size").to_numpy()
    code = pd.Series(np.arange(len(conditions)), index=conditions["condition"]) \
        .reindex(names).to_numpy(dtype=int)
    return work, conditions, code


@dataclass
class _Grid:
    names: np.ndarray      # source videos (manifest order)
    labels: np.ndarray     # their classes
    stim_row: np.ndarray   # (source, condition) -> row of the planned manifest rows


def _stimulus_grid(work: pd.DataFrame, conditions: pd.DataFrame, cond_code: np.ndarray,
                   path) -> _Grid:
    """Every source video must have exactly one stimulus per condition."""
    rows = work.index.to_numpy()  # manifest data rows - 1
    C = len(conditions)
    src_code, names = pd.factorize(work["source_filename"], sort=False)
    names = np.asarray(names, dtype=object)
    counts = np.zeros((len(names), C), dtype=int)
    np.add.at(counts, (src_code, cond_code), 1)
    if (counts > 1).any():
        s, c = map(int, np.argwhere(counts > 1)[0])
        hits = rows[(src_code == s) & (cond_code == c)]
        raise DatasetError(
            f"source video '{names[s]}' has {counts[s, c]} stimuli for condition "
            f"'{conditions['condition'][c]}' (rows {hits[0] + 1} and {hits[1] + 1})",
            path=path, row=int(hits[1]) + 1, column="level",
            fix="give every source video exactly one stimulus per condition")
    if (counts == 0).any():
        s, c = map(int, np.argwhere(counts == 0)[0])
        row = int(rows[np.flatnonzero(src_code == s)[0]]) + 1
        raise DatasetError(
            f"the suite has unequal conditions per source: source video '{names[s]}' has "
            f"no stimulus for condition '{conditions['condition'][c]}' ({int(counts[s].sum())} "
            f"of the {C} conditions)", path=path, row=row, column="source_filename",
            fix="give a manifest in which every source video has every condition (generate "
                "the missing stimuli), or restrict the design with manipulations: [...]")
    stim_row = np.empty((len(names), C), dtype=int)
    stim_row[src_code, cond_code] = np.arange(len(work))
    labels = np.empty(len(names), dtype=object)
    labels[src_code] = work["label"].to_numpy(dtype=object)
    return _Grid(names, labels, stim_row)


@dataclass
class _Practice:
    rows: np.ndarray           # chosen rows of the practice table, in presentation order
    columns: dict              # column -> values of those rows
    path: Path | None
    root: Path | None
    note: str


def _plan_practice(d: Design, test: pd.DataFrame, practice, manipulations) -> _Practice:
    p_table, p_path, p_root = _read_practice(d, test, practice)
    if p_table is None:
        return _Practice(np.zeros(0, dtype=int), {}, None, None, NO_PRACTICE_NOTE)
    rows = _choose_practice(p_table, d.practice_n, manipulations, d.seed)
    note = (f"{len(rows)} practice stimuli from "
            f"{p_table.loc[rows, 'source_filename'].nunique()} source videos outside the test "
            f"set, the same before every session")
    if len(rows) < d.practice_n:
        note += f" ({d.practice_n} asked for; the practice manifest has {len(p_table)})"
    if len(rows):
        lab = p_table.loc[rows, "label"].to_numpy()
        src = p_table.loc[rows, "source_filename"].to_numpy()
        # the first chosen ('none' when there is one) opens; the rest are shuffled
        rest = order_trials(lab[1:], src[1:], np.random.default_rng([d.seed, 29]),
                            strict=False, no_repeat_class=False, no_repeat_source=False) + 1
        seq = np.concatenate([[0], rest]).astype(int)
        seq = seq[order_trials(lab[seq], src[seq], None, strict=False,
                               no_repeat_class=d.no_repeat_class,
                               no_repeat_source=d.no_repeat_source)]
        rows = rows[seq]
    columns = {c: p_table.loc[rows, c].to_numpy(dtype=object) for c in _STIMULUS_COLUMNS}
    return _Practice(rows, columns, p_path, p_root, note)


def _plan_sessions(d: Design, T: int, n_practice: int):
    """(design with the trial duration used, sessions, their sizes, where the values came
    from); refuses sessions that cannot hold a block, sessions over the limit and repeat gaps
    that do not fit."""
    trial_source = "design" if "trial_duration_s" in d.given else "default"
    if d.pilot is not None:
        median, n_int, n_files = measure_trial_duration(d.pilot)
        d = replace(d, trial_duration_s=round(median, 3))
        trial_source = (f"measured: median of {n_int} onset intervals in {n_files} pilot "
                        f"file(s) under {d.pilot}")
    block = min(d.break_every, T)
    if block * d.trial_duration_s / 60.0 > d.max_session_minutes:
        raise DatasetError(
            f"a session cannot fit one block: {block} trials x {d.trial_duration_s:g} s = "
            f"{block * d.trial_duration_s / 60:.1f} min > max_session_minutes "
            f"{d.max_session_minutes:g}", path=d.source, column="max_session_minutes",
            fix="raise max_session_minutes or lower break_every")

    def longest(s):
        return _session_sizes(T, s, d, n_practice)[0]["minutes"]   # the first is the largest

    fitting = next((s for s in range(d.sessions or 1, T + 1)
                    if longest(s) <= d.max_session_minutes), None)
    if d.sessions is None:
        if fitting is None:
            raise DatasetError(f"no number of sessions fits max_session_minutes "
                               f"{d.max_session_minutes:g} ({n_practice} practice trials of "
                               f"{d.trial_duration_s:g} s open every session)", path=d.source,
                               column="max_session_minutes",
                               fix="raise max_session_minutes or plan fewer practice trials")
        sessions, session_source = fitting, f"fewest sessions of <= " \
                                            f"{d.max_session_minutes:g} min"
    else:
        sessions, session_source = d.sessions, "design"
        if sessions > T:
            raise DatasetError(f"{sessions} sessions for {T} trials leaves sessions empty",
                               path=d.source, column="sessions", fix=f"give {T} or fewer")
        if longest(sessions) > d.max_session_minutes:
            raise DatasetError(
                f"{sessions} session(s) of up to {longest(sessions):.1f} min exceed "
                f"max_session_minutes {d.max_session_minutes:g} ({T} trials + repeats + "
                f"practice, {d.trial_duration_s:g} s each)", path=d.source, column="sessions",
                fix=(f"give sessions: {fitting} or more, " if fitting else "") +
                    "or raise max_session_minutes")
    sizes = _session_sizes(T, sessions, d, n_practice)
    for j, size in enumerate(sizes, 1):
        n_orig, n_rep = size["main"], size["repeats"]
        if n_rep and d.repeat_min_gap >= n_orig + n_rep:
            raise DatasetError(
                f"repeat_min_gap {d.repeat_min_gap} does not fit session {j} of "
                f"{n_orig + n_rep} main trials", path=d.source,
                column="repeat_min_gap", fix="lower repeat_min_gap or repeat_share")
        eligible = max(n_orig - d.repeat_min_gap + 1, 0)
        if n_rep > eligible:
            raise DatasetError(
                f"repeat_min_gap {d.repeat_min_gap} leaves only {eligible} originals of "
                f"session {j} that can be repeated that far after them, {n_rep} repeats are "
                f"planned", path=d.source, column="repeat_min_gap",
                fix="lower repeat_min_gap or repeat_share")
    return d, sessions, sizes, {"trial_duration_source": trial_source,
                                "sessions_source": session_source}


def _session_order(gs: np.ndarray, classes: np.ndarray, n_repeats: int, d: Design, l: int,
                   j: int) -> tuple[np.ndarray, list, int]:
    """The presentation order of one session's sources ``gs`` (indices into ``gs``), with the
    repeats inserted: (items, is_repeat, repeats placed against a constraint)."""
    rng = np.random.default_rng([int(d.seed), 7, l + 1, j + 1])
    ordered = order_trials(classes, gs, rng, no_repeat_class=d.no_repeat_class,
                           no_repeat_source=d.no_repeat_source,
                           where=f" (list {l + 1}, session {j + 1})")
    if not n_repeats:
        return ordered, [False] * len(ordered), 0
    pos = np.empty(len(gs), dtype=int)
    pos[ordered] = np.arange(len(gs))
    # originals early enough to be repeated >= gap later with room to spare (up to another
    # gap of places to choose from, so a place between trials of other classes is found), in
    # (condition, class) order, so that evenly spaced picks spread the repeats over
    # conditions and classes
    n, gap = len(gs), d.repeat_min_gap
    slack = min(gap, max(0, n - gap + 1 - n_repeats))
    eligible = np.flatnonzero(pos <= n - gap - slack)
    m = len(eligible)
    picks = np.floor((np.arange(n_repeats) + rng.random()) * m / n_repeats).astype(int)
    items, flags, forced = _insert_repeats(ordered, eligible[picks], classes, gs,
                                           d.repeat_min_gap, rng, no_class=d.no_repeat_class,
                                           no_source=d.no_repeat_source)
    return np.asarray(items, dtype=int), flags, forced


def _trial_table(list_id: int, session: int, d: Design, prac: _Practice, main_cols: dict,
                 rows: np.ndarray, flags, suite_root: str) -> pd.DataFrame:
    """One plan file's rows: practice first, then the main trials."""
    n_p, n_m = len(prac.rows), len(rows)
    n = n_p + n_m
    main_pos = np.arange(1, n_m + 1)
    frame = {"list": np.full(n, list_id), "session": np.full(n, session),
             "position": np.arange(1, n + 1), "block": ["practice"] * n_p + ["main"] * n_m,
             "task": [d.task] * n}
    for c in _STIMULUS_COLUMNS:
        frame[c] = np.concatenate([prac.columns[c], main_cols[c][rows]]) if n_p \
            else main_cols[c][rows]
    frame["repeat"] = np.concatenate([np.zeros(n_p, bool), np.asarray(flags, bool)])
    frame["break_before"] = np.concatenate(
        [np.zeros(n_p, bool), (main_pos > 1) & ((main_pos - 1) % d.break_every == 0)])
    frame["suite_root"] = [str(prac.root)] * n_p + [suite_root] * n_m
    return pd.DataFrame(frame, columns=PLAN_COLUMNS)


def _condition_names(manip: np.ndarray, key: np.ndarray) -> np.ndarray:
    """:func:`condition_name` of every row (computed once per distinct pair)."""
    pairs = pd.DataFrame({"m": manip, "k": key})
    codes, uniques = pd.factorize(pd.MultiIndex.from_frame(pairs))
    names = np.array([condition_name(m, k) for m, k in uniques], dtype=object)
    return names[codes]


# --------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------
def _span(values) -> str:
    values = np.asarray(values)
    lo, hi = int(values.min()), int(values.max())
    return f"{lo}" if lo == hi else f"{lo}-{hi}"


def design_report(plan: StudyPlan) -> str:
    """The plain-text design report (``design_report.txt``)."""
    info = plan.info
    C, L, T = len(plan.conditions), info["n_lists"], info["n_sources"]
    classes = list(pd.unique(plan.sources["label"]))
    cls_code = pd.factorize(plan.sources["label"])[0]
    per_list = np.stack([np.bincount(plan.assignment[:, l], minlength=C) for l in range(L)],
                        axis=1)                                    # C x L
    cell = np.zeros((C, len(classes), L), dtype=int)               # condition x class x list
    for l in range(L):
        np.add.at(cell[:, :, l], (plan.assignment[:, l], cls_code), 1)
    n_participants = info["participants_per_list"] * L
    out = io.StringIO()
    w = out.write
    title = "Study plan (python -m avmit_psych.experiments plan)"
    w(f"{title}\n{'=' * len(title)}\n\n")
    w(f"manifest: {info['manifest'] or '(a table given in Python)'}\n")
    w(f"manifest sha256: {info['manifest_sha256']}\n")
    w(f"stimuli under: {info['suite_root']}\n")
    w(f"task: {info['task']}; seed: {info['seed']}\n\n")

    w("Design\n------\n")
    w(f"conditions: {C} (manipulation x level; semantic_swap is one condition whatever its "
      f"donor class)\n")
    w(f"source videos: {T} of {info['n_sources_in_manifest']} in {len(classes)} classes; "
      f"each shown once per participant: {T} main trials per participant\n")
    w(f"lists: {L} (Latin square over source videos: in list l, source g is shown in "
      f"condition (g + l*{C}//{L}) mod {C})\n")
    if L == C:
        w(f"  one rotation of the {L} lists shows every (source video, condition) cell exactly "
          f"once\n")
    else:
        w(f"  {L} lists for {C} conditions: a rotation shows each source in {L} of the {C} "
          f"conditions\n")
    w(f"participants per list: {info['participants_per_list']} -> {n_participants} "
      f"participants; participant n takes list (n - 1) mod {L} + 1, and the participants of a "
      f"list see the same stimuli in the same order\n")
    w(f"sessions per participant: {info['sessions']} ({info['sessions_source']}; "
      f"max_session_minutes {info['max_session_minutes']:g})\n")
    w(f"trial duration: {info['trial_duration_s']:g} s ({info['trial_duration_source']})\n")
    w(f"breaks: before main trials {info['break_every'] + 1}, {2 * info['break_every'] + 1}, "
      f"... of a session (every {info['break_every']} main trials; self-paced, not counted in "
      f"the minutes)\n")
    w(f"repeats: {info['repeat_share'] * 100:g}% of each session's originals, shown again >= "
      f"{info['repeat_min_gap']} trials after the original in the same session\n")
    oc = info["order_constraints"]
    rules = [r for r, on in (("no two consecutive trials of the same class",
                              oc["no_repeat_class"]),
                             ("no two consecutive trials of the same source video",
                              oc["no_repeat_source"])) if on]
    w(f"order: seeded shuffle per list and session; {'; '.join(rules) or 'no constraints'}\n\n")

    w("Sessions (the same sizes in every list)\n---------------------------------------\n")
    first = [p for p in info["plans"] if p["list"] == 1]
    for p in first:
        w(f"session {p['session']}: {p['n_practice']} practice + "
          f"{p['n_main'] - p['n_repeats']} main + {p['n_repeats']} repeats = {p['n_trials']} "
          f"trials, about {p['minutes']:.1f} min\n")
    total = sum(p["minutes"] for p in first)
    w(f"per participant: {sum(p['n_trials'] for p in first)} trials, about {total:.1f} min\n\n")

    w("Practice\n--------\n")
    pr = info["practice"]
    w(f"{pr['note']}\n")
    if pr["manifest"]:
        w(f"practice manifest: {pr['manifest']} (stimuli under {pr['suite_root']})\n")
        key = next(iter(plan.plans))
        prac = plan.plans[key][plan.plans[key]["block"] == "practice"]
        for r in prac.itertuples(index=False):
            level = _level_key(np.array([r.manipulation], dtype=object),
                               np.array([r.level], dtype=object),
                               np.array([r.level_unit], dtype=object))[0]
            w(f"  {r.position:>3}  {r.stimulus_id}  ({r.label}, "
              f"{condition_name(r.manipulation, level)})\n")
    w("\n")

    w("Counts per condition (main trials, originals; a participant = a list)\n")
    w("----------------------------------------------------------------------\n")
    name_w = max(12, max(len(c) for c in plan.conditions["condition"]))
    w(f"{'condition':<{name_w}}  {'per list':>9}  {'per class in a list':>20}  "
      f"{'all lists':>9}\n")
    for c, name in enumerate(plan.conditions["condition"]):
        w(f"{name:<{name_w}}  {_span(per_list[c]):>9}  {_span(cell[c]):>20}  "
          f"{int(per_list[c].sum()):>9}\n")
    w("\nCounts per class (main trials, originals)\n-----------------------------------------\n")
    cls_w = max(10, max(len(c) for c in classes))
    w(f"{'class':<{cls_w}}  {'per list':>8}  {'per condition in a list':>24}  "
      f"{'all lists':>9}\n")
    for k, name in enumerate(classes):
        n = int((cls_code == k).sum())
        w(f"{name:<{cls_w}}  {n:>8}  {_span(cell[:, k, :]):>24}  {n * L:>9}\n")
    w("\nCounts per list (main trials, originals)\n----------------------------------------\n")
    w(f"{'list':>4}  {'trials':>6}  {'conditions':>10}  {'per condition':>13}  "
      f"{'per session (main + repeats)':>30}\n")
    for l in range(L):
        ps = [p for p in info["plans"] if p["list"] == l + 1]
        sess = ", ".join(f"{p['n_main'] - p['n_repeats']} + {p['n_repeats']}" for p in ps)
        w(f"{l + 1:>4}  {T:>6}  {int((per_list[:, l] > 0).sum()):>10}  "
          f"{_span(per_list[:, l]):>13}  {sess:>30}\n")
    w("\n")

    pw = info["power"]
    w(f"Power ({pw['library']}: power_ttest, contrast='paired'; power_rm_anova)\n")
    w("------------------------------------------------------------------\n")
    w(f"planned N = {pw['planned_n']} ({info['participants_per_list']} per list x {L} "
      f"lists)\n")
    if pw["power_paired_planned"] is not None:
        w(f"paired t-test, d = {pw['effect_size_d']:g}, alpha = {pw['alpha']:g} (two-sided): "
          f"power {pw['power_paired_planned']:.3f} with N = {pw['planned_n']}\n")
    if pw["power_rm_anova_planned"] is not None:
        w(f"repeated-measures ANOVA, eta^2 = {pw['eta_squared']:g} over {pw['rm_levels']} "
          f"levels ({pw['rm_levels_from']}), corr = {pw['rm_corr']:g}, alpha = "
          f"{pw['alpha']:g}, sphericity assumed: power {pw['power_rm_anova_planned']:.3f} with "
          f"N = {pw['planned_n']}\n")
    if "n_paired" in pw:
        w(f"N needed for power {pw['target_power']:g}: paired t-test {pw['n_paired']} "
          f"({pw['participants_per_list_paired']} per list)")
        if pw.get("n_rm_anova") is not None:
            w(f"; repeated-measures ANOVA {pw['n_rm_anova']} "
              f"({pw['participants_per_list_rm_anova']} per list)")
        w("\n")
    for n in pw["notes"]:
        w(f"note: {n}\n")
    if plan.notes:
        w("\nNotes\n-----\n")
        for n in plan.notes:
            w(f"{n}\n")
    return out.getvalue()


# --------------------------------------------------------------------------------------------
# Writing and reading a study folder
# --------------------------------------------------------------------------------------------
def _nonempty(folder: Path) -> bool:
    return folder.is_dir() and any(folder.iterdir())


def _check_out(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise DatasetError("the output is a file, not a folder", path=out,
                           fix="give a folder for --out")
    if _nonempty(out) and not force:
        raise DatasetError("the output folder is not empty", path=out,
                           fix="give a new folder, or --force to replace this one")
    started = [p for p in (out / "participants.csv", out / "data") if p.exists()]
    if started:
        # a study that has begun is never replaced: its participants' lists and data follow
        # the plan files in it
        raise DatasetError("this study has started (it holds "
                           f"{' and '.join(p.name for p in started)}), so its plan cannot "
                           "be replaced", path=out,
                           fix="plan the new design into a new folder")


def write_study(plan: StudyPlan, out, *, force: bool = False) -> "Study":
    """Write ``plan`` into ``out``: every plan CSV, design.json and design_report.txt, all or
    nothing. A non-empty ``out`` is refused unless ``force`` (then replaced as a whole)."""
    out = Path(out)
    _check_out(out, force)
    info = json.loads(json.dumps(plan.info))

    def write(batch: OutputBatch) -> None:
        for entry in info["plans"]:
            target = batch.path(entry["file"])
            schema.write_csv(plan.plans[(entry["list"], entry["session"])], target)
            entry["sha256"] = sha256_file(target)
        batch.path(DESIGN_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        batch.path(REPORT_FILE).write_text(plan.report, encoding="utf-8")

    if not _nonempty(out):
        with OutputBatch(out) as batch:
            write(batch)
    else:
        parent = Path(os.path.abspath(out)).parent
        new = parent / f".{out.name}.new-{os.getpid()}"
        old = parent / f".{out.name}.old-{os.getpid()}"
        with OutputBatch(new) as batch:
            write(batch)
        os.replace(out, old)
        os.replace(new, out)
        fsync_dir(parent)
        remove(old)
    return Study(Path(os.path.abspath(out)), info)


def plan_study(manifest, out, design=None, *, practice=None, force: bool = False,
               **overrides) -> "Study":
    """Plan a study and write it: :func:`make_plan` then :func:`write_study`.

    Parameters
    ----------
    manifest : str, Path or DataFrame
        The test stimuli's manifest.
    out : str or Path
        The study folder (design.json, list-LL_ses-S.csv, design_report.txt).
    design : Design, dict, YAML path or None
        None: every default of the module docstring.
    practice : str, Path or DataFrame, optional
        A practice manifest from videos outside the test set.
    force : bool
        Replace a non-empty ``out``.
    **overrides
        :class:`Design` fields, e.g. ``seed=3, pilot="pilot/", n_needed=True``.

    Returns
    -------
    Study

    Examples
    --------
    >>> study = plan_study("suite/manifest.csv", "study/")          # doctest: +SKIP
    >>> study.read_plan(1, 1).head()                                # doctest: +SKIP
    """
    _check_out(Path(out), force)
    plan = make_plan(manifest, as_design(design, **overrides), practice=practice)
    return write_study(plan, out, force=force)


@dataclass
class Study:
    """A planned study folder: its design.json and the way to its plan files."""

    folder: Path
    design: dict

    @property
    def n_lists(self) -> int:
        return int(self.design["n_lists"])

    @property
    def sessions(self) -> int:
        return int(self.design["sessions"])

    def list_for_participant(self, n: int) -> int:
        """The list of the n-th participant (1-based, in order of enrolment)."""
        if int(n) < 1:
            raise DatasetError(f"participant number {n} is below 1", path=self.folder,
                               fix="number participants 1, 2, ...")
        return (int(n) - 1) % self.n_lists + 1

    def _entry(self, list_id, session) -> dict:
        for entry in self.design["plans"]:
            if int(entry["list"]) == int(list_id) and int(entry["session"]) == int(session):
                return entry
        raise DatasetError(f"the study has no list {list_id} session {session} (lists 1-"
                           f"{self.n_lists}, sessions 1-{self.sessions})",
                           path=self.folder / DESIGN_FILE,
                           fix="give a list and session the study planned")

    def plan_path(self, list_id, session) -> Path:
        return self.folder / self._entry(list_id, session)["file"]

    def plan_sha256(self, list_id, session) -> str:
        """The SHA-256 of the plan file as planned (recorded in design.json)."""
        return self._entry(list_id, session)["sha256"]

    def read_plan(self, list_id, session) -> pd.DataFrame:
        """The trial list of one list and session: every column as text, as written, except
        ``list``, ``session``, ``position`` (int) and ``repeat``, ``break_before`` (bool); plus ``file``, the stimulus's absolute path
        (``suite_root / path``). A file changed since it was planned is refused."""
        entry = self._entry(list_id, session)
        path = self.folder / entry["file"]
        if not path.is_file():
            raise DatasetError("plan file not found", path=path,
                               fix="plan the study again or restore the study folder")
        if entry.get("sha256") and sha256_file(path) != entry["sha256"]:
            raise DatasetError("the plan file changed since it was planned (its SHA-256 "
                               "differs from design.json)", path=path,
                               fix="restore the file, or plan the study again")
        table = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
        missing = [c for c in PLAN_COLUMNS if c not in table.columns]
        if missing:
            raise DatasetError(f"required column '{missing[0]}' is missing", path=path,
                               column=missing[0], fix="plan the study again")
        for col in ("repeat", "break_before"):
            table[col] = table[col].str.strip().str.lower() == "true"
        for col in ("list", "session", "position"):
            table[col] = pd.to_numeric(table[col], errors="raise").astype(int)
        table["file"] = [os.path.join(root, p) for root, p in
                         zip(table["suite_root"], table["path"])]
        return table


def load_study(folder) -> Study:
    """Read a study folder written by :func:`plan_study` (``python -m avmit_psych.experiments
    plan``)."""
    folder = Path(os.path.abspath(Path(folder)))
    path = folder / DESIGN_FILE
    if not path.is_file():
        raise DatasetError("design.json not found: not a planned study folder", path=path,
                           fix="plan the study first: python -m avmit_psych.experiments plan "
                               "--manifest M --out STUDY")
    try:
        design = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DatasetError(f"design.json is not valid JSON ({err})", path=path,
                           fix="plan the study again")
    if not isinstance(design, dict):
        raise DatasetError("design.json is not a JSON object", path=path,
                           fix="plan the study again")
    if design.get("version") != DESIGN_VERSION:
        raise DatasetError(f"design.json version {design.get('version')!r} is not "
                           f"{DESIGN_VERSION}", path=path, column="version",
                           fix="plan the study again with this version of avmit_psych")
    for key in ("task", "n_lists", "sessions", "suite_root", "plans"):
        if key not in design:
            raise DatasetError(f"design.json lacks '{key}'", path=path, column=key,
                               fix="plan the study again")
    if not isinstance(design["plans"], list) or not all(
            isinstance(p, dict) and {"list", "session", "file"} <= set(p)
            for p in design["plans"]):
        raise DatasetError("design.json 'plans' is not a list of {list, session, file, ...}",
                           path=path, column="plans", fix="plan the study again")
    return Study(folder, design)


# --------------------------------------------------------------------------------------------
# A manifest-shaped table of a suite, without its files
# --------------------------------------------------------------------------------------------
def synthetic_manifest(suite, *, per_class: int = 60, classes=TEST_CLASSES, seed: int = 0,
                       prefix: str = "") -> pd.DataFrame:
    """The manifest ``stimuli generate`` would write for ``suite`` (a Suite or its YAML) over
    ``per_class`` invented source videos per class, without making any file: to try a design
    before the stimuli exist, and for tests and benchmarks. Levels as generate.py writes
    them (numbers as floats, the donor class for semantic swaps, '' for none)."""
    from ..stimuli import manipulations as M
    from ..stimuli.suite import Suite, load_suite, stimulus_id, stimulus_seed
    s = suite if isinstance(suite, Suite) else load_suite(suite)
    labels = np.repeat(np.asarray(classes, dtype=object), per_class)
    k = np.tile(np.arange(1, per_class + 1), len(classes))
    names = [f"{prefix}{c}/{prefix}{c}_{i:04d}.mp4" for c, i in zip(labels, k)]
    new = [f"{c}/{c}_{i}.mp4" if not prefix else f"{prefix}{c}/{prefix}{c}_{i}.mp4"
           for c, i in zip(labels, k)]
    donors = M.assign_donors(labels, seed=seed) \
        if any(c.manipulation == "semantic_swap" for c in s.conditions) else None
    rows = []
    for i in range(len(labels)):
        for cond in s.conditions:
            sid = stimulus_id(new[i], cond)
            if cond.manipulation == "semantic_swap":
                level, unit, audio = labels[donors[i]], DONOR_LEVEL_UNIT, names[donors[i]]
            else:
                level = "" if cond.level is None else cond.level
                unit = cond.unit
                audio = "" if cond.manipulation == "visual_only" else names[i]
            rows.append((sid, sid + s.extension, names[i], labels[i], cond.manipulation, level,
                         unit, audio, stimulus_seed(seed, sid), 3.0, 30.0, 48000,
                         hashlib.sha256(sid.encode()).hexdigest()))
    return pd.DataFrame(rows, columns=list(schema.MANIFEST_REQUIRED))


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------
HELP = """\
Plan a study once, before anyone is tested: per list and session, the trials in order.

  python -m avmit_psych.experiments plan --manifest suite/manifest.csv --out study/
  python -m avmit_psych.experiments plan --manifest suite/manifest.csv \\
      --design experiments/study_design.yaml --practice-manifest practice/manifest.csv \\
      --pilot pilot/data/ --power --out study/

Defaults (no design file): every (manipulation, level) of the manifest is a condition; as many
lists as conditions (a Latin square over source videos, balanced within each class); each
participant sees every source video once; 6.5 s a trial, sessions of at most 60 min (as many as
needed), a break every 60 trials, 10% repeats >= 20 trials after their originals, no two
consecutive trials of one class or source video; no practice unless a practice manifest (from
videos outside the test set) is given. See experiments/study_design.yaml for every setting.

Writes STUDY/list-LL_ses-S.csv (one per list and session), STUDY/design.json and
STUDY/design_report.txt, all together or nothing. --power adds the participants needed for a
paired t-test and a repeated-measures ANOVA (pingouin).
"""


def add_parser(sub) -> None:
    from .._cli import Formatter
    p = sub.add_parser("plan", formatter_class=Formatter, help="plan a study: lists, sessions, "
                       "trial order, practice, repeats, power", description=HELP)
    p.add_argument("--manifest", required=True, type=Path, metavar="M",
                   help="the test stimuli's manifest.csv")
    p.add_argument("--design", type=Path, metavar="D.yaml",
                   help="design file (default: every default)")
    p.add_argument("--out", type=Path, default=Path("study"), metavar="STUDY")
    p.add_argument("--force", action="store_true", help="replace a non-empty --out folder")
    p.add_argument("--practice-manifest", type=Path, metavar="P",
                   help="manifest of practice stimuli from videos outside the test set")
    p.add_argument("--pilot", type=Path, metavar="DIR",
                   help="pilot trials CSVs: the trial duration is their median onset interval")
    p.add_argument("--seed", type=int, default=None, help="overrides the design's seed (0)")
    g = p.add_argument_group("power (pingouin)")
    g.add_argument("--power", action="store_true",
                   help="report the participants needed for --target-power")
    g.add_argument("--effect-size", type=float, default=None, metavar="D",
                   help="Cohen's d of the paired t-test (default 0.5)")
    g.add_argument("--alpha", type=float, default=None, help="default 0.05")
    g.add_argument("--target-power", type=float, default=None, help="default 0.8")
    g.add_argument("--eta-squared", type=float, default=None,
                   help="effect of the repeated-measures ANOVA (default 0.06)")
    g.add_argument("--rm-levels", type=int, default=None, metavar="K",
                   help="levels of the ANOVA's factor (default: the manipulation with most "
                        "levels)")
    g.add_argument("--rm-corr", type=float, default=None,
                   help="correlation between repeated measures (default 0.5)")
    p.set_defaults(handler=_plan_command)


def _plan_command(args) -> int:
    import time
    t0 = time.perf_counter()
    design = load_design(args.design) if args.design is not None else Design()
    overrides = {"seed": args.seed, "practice_manifest": args.practice_manifest,
                 "pilot": args.pilot, "effect_size": args.effect_size, "alpha": args.alpha,
                 "target_power": args.target_power, "eta_squared": args.eta_squared,
                 "rm_levels": args.rm_levels, "rm_corr": args.rm_corr,
                 "n_needed": True if args.power else None}
    _check_out(args.out, args.force)
    plan = make_plan(args.manifest, as_design(design, **overrides))
    study = write_study(plan, args.out, force=args.force)
    info = study.design
    first = [p for p in info["plans"] if p["list"] == 1]
    print(f"planned {info['n_lists']} lists x {info['sessions']} sessions: "
          f"{info['trials_per_participant']} main trials per participant over "
          f"{len(info['conditions'])} conditions; per session "
          + ", ".join(f"{p['n_trials']} trials (~{p['minutes']:.0f} min)" for p in first))
    print(f"trial duration {info['trial_duration_s']:g} s ({info['trial_duration_source']})")
    print(f"practice: {info['practice']['note']}")
    pw = info["power"]
    if pw.get("power_paired_planned") is not None:
        print(f"power of N = {pw['planned_n']}: paired t-test (d = {pw['effect_size_d']:g}) "
              f"{pw['power_paired_planned']:.3f}" +
              (f", rm-ANOVA (eta^2 = {pw['eta_squared']:g}, {pw['rm_levels']} levels) "
               f"{pw['power_rm_anova_planned']:.3f}"
               if pw.get("power_rm_anova_planned") is not None else ""))
    if "n_paired" in pw:
        line = (f"participants needed for power {pw['target_power']:g}: paired t-test "
                f"N = {pw['n_paired']} ({pw['participants_per_list_paired']} per list)")
        if pw.get("n_rm_anova") is not None:
            line += (f", rm-ANOVA N = {pw['n_rm_anova']} "
                     f"({pw['participants_per_list_rm_anova']} per list)")
        print(line)
    for n in plan.notes:
        print(f"note: {n}")
    print(f"wrote {len(info['plans'])} plan files, design.json and design_report.txt to "
          f"{args.out}/ in {time.perf_counter() - t0:.1f} s")
    return 0
