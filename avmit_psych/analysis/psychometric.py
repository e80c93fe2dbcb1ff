"""Psychometric functions over the numeric levels of a manipulation, fitted with psignifit.

psignifit 4 (Schütt, Harmeling, Macke & Wichmann 2016, Vision Research 122:105-123) fits
psi(x) = gamma + (1 - gamma - lambda) S(x; threshold, width) by Bayesian inference on a grid:
gamma, the lower asymptote, is fixed (the *floor*, below), the lapse rate lambda is fitted,
``threshold`` is the level where S is 0.5 (half-way between the floor and 1 - lambda) and
``width`` the span over which S goes from 0.05 to 0.95; credible intervals are the
posterior's 95% intervals.

The floor. Noise in one modality of an audiovisual stimulus does not take an observer to
chance: it takes away that modality's evidence and leaves the other's. An observer who
combines the cues (a maximum-likelihood observer of independent auditory and visual
evidence: Ernst & Banks 2002, Nature 415:429-433; Alais & Burr 2004, Current Biology
14:257-262) answers a stimulus whose sound is drowned in noise as well as the picture alone
allows, and one whose picture is drowned as well as the sound alone allows. A function whose
floor is chance then cannot reach its floor within the tested levels, and its threshold (the
level half-way from chance) is an extrapolation: thresholds of -9 dB SNR and 150 pixel SD
for levels of 0-30 dB and 32-128 SD. So a one-modality manipulation (:data:`FLOOR_CONDITION`:
``audio_noise``, ``visual_noise``) is fitted with its floor at the observer's accuracy in the
*other* modality's unimodal condition: ``visual_only`` for ``audio_noise``, ``audio_only``
for ``visual_noise`` (pooled over the group's observers for a group fit), kept between
chance and :data:`MAX_FLOOR`. When the observer has no trial in that condition, when its
accuracy at the hardest level is nearer chance than that unimodal accuracy (an observer, or
a model, that does not fall back on the other modality: :func:`asymptotes`), and for every
other manipulation, the floor is chance: 1/16 for the 16-way classification (whatever
classes a data set happens to contain) and 1/2 for the correspondence task, which has no
unimodal trials (a sound alone cannot be said to match a picture). A correspondence
manipulation whose every level holds one answer key (congruent stimuli only, as a suite's
noise levels do) is not fitted at all: there the share correct is 1 - the false-alarm rate,
set by the criterion as much as by sensitivity, and d' per condition (:mod:`.sdt`) is the
measure. The fit table says which floor each fit used (``floor``: ``chance``,
``visual_only`` or ``audio_only``; the value is ``guess_rate``, the trials behind it
``floor_n_trials``).

The ceiling. By the same argument the easy end of such a function is the clean stimulus
(``none``), whose accuracy for a person in a 16-way task is often well below 1 - a small
lapse rate (0.84, say). So with a unimodal floor the lapse rate's prior is the one the
observer's ``none`` trials give for 1 - accuracy (Beta(errors + 1, correct + 1)) instead of
psignifit's Beta(1, 10) (``ceiling``: ``none`` or ``default``; ``ceiling_n_trials``).
The threshold is then the level at which half of what the degraded modality adds to the
other one is lost. An observer whose unimodal accuracy is not below their clean accuracy
(a few dozen trials each can do that) has no such range: no fit, and a note says why.

Direction: accuracy rises with SNR (``audio_noise``, ``contrast``) and falls with pixel noise
(``visual_noise``, ``blur``) and with the size of an audiovisual offset (``av_offset`` is fitted
over |offset| in ms); for another numeric manipulation the direction is the sign of the rank
correlation of pooled accuracy with level. A cumulative Gaussian is used. A falling function
is fitted as a rising one over the negated levels (and the threshold negated back): psignifit's
own ``neg_`` sigmoids flip the whole function, guess and lapse rates included, which would put
the fixed guess rate at the top.

Per observer the fit is binomial (psignifit's overdispersion eta fixed at 0: one observer's
trials); pooled over a group (all humans, all models) eta is fitted, because pooling adds
the observers' differences to the binomial variance. Tested by recovering the threshold of
simulated observers (2,000 trials: within 10%), and of a cue-integrating observer whose
audio-noise accuracy falls to its visual-only accuracy (tests/test_psychometric_floor.py).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ..dataset.schema import TEST_CLASSES
from ..experiments.human_vs_dnn import PSYCHOMETRIC_DIRECTION
from .observers import UNORDERED_MANIPULATIONS

#: increasing / decreasing (``_abs``: over the size of the level), from the one table of which
#: way each manipulation makes a stimulus easier
DIRECTIONS = {m: ("increasing" if sign > 0 else "decreasing") + ("_abs" if m == "av_offset"
                                                                 else "")
              for m, sign in PSYCHOMETRIC_DIRECTION.items()}
#: model-vs-human's parametric datasets (levels as decoded by observers.TOOLBOX_LEVELS):
#: contrast in percent and high-pass filter SD make images easier as they rise; low-pass
#: filter SD, phase noise, uniform noise width and eidolon reach make them harder
DIRECTIONS.update({"contrast": "increasing", "high-pass": "increasing",
                   "low-pass": "decreasing", "phase-scrambling": "decreasing",
                   "uniform-noise": "decreasing", "eidolonI": "decreasing",
                   "eidolonII": "decreasing", "eidolonIII": "decreasing"})
#: the response alternatives of the classification task: the 16 AVMIT test classes
N_CHOICES = len(TEST_CLASSES)
MIN_LEVELS = 3
#: A one-modality manipulation -> the unimodal condition that holds the other modality alone,
#: whose accuracy is the manipulation's floor (module docstring).
FLOOR_CONDITION = {"audio_noise": "visual_only", "visual_noise": "audio_only"}
#: The highest floor used: above it the function has too little room below 1 - lapse to be
#: fitted (an observer about as good with one modality as with both).
MAX_FLOOR = 0.9
#: The least a function with a clean-accuracy ceiling rises above its floor (1 - lapse - floor).
MIN_RANGE = 0.02
FIT_COLUMNS = ["manipulation", "observer", "observer_type", "fit", "direction", "level_transform",
               "sigmoid", "guess_rate", "floor", "floor_n_trials", "ceiling",
               "ceiling_n_trials", "threshold",
               "threshold_ci_low", "threshold_ci_high", "width", "width_ci_low", "width_ci_high",
               "lapse", "lapse_ci_low", "lapse_ci_high", "eta", "n_trials", "n_levels"]


def guess_rate(trials: pd.DataFrame, n_choices: int = N_CHOICES) -> float:
    """1/2 for the correspondence task, else 1 / ``n_choices`` (the task's response
    alternatives: 16, however many classes the trials happen to include)."""
    if (trials["task"] == "correspondence").all():
        return 0.5
    return 1.0 / n_choices


@dataclass(frozen=True)
class Asymptotes:
    """How one function's asymptotes are set (:func:`asymptotes`).

    guess : the floor (psignifit's gamma, fixed); floor : where it comes from (``chance`` or
    the unimodal condition); floor_n_trials : the trials behind it (0 for chance);
    lapse_prior : (a, b) of the Beta prior of the lapse rate, or None for psignifit's default
    Beta(1, 10); ceiling : ``none`` when that prior comes from the clean trials, else
    ``default``; ceiling_n_trials : the clean trials behind it; problem : why no function can
    be fitted (the floor is not below the clean accuracy), else None.
    """

    guess: float
    floor: str = "chance"
    floor_n_trials: int = 0
    lapse_prior: tuple[float, float] | None = None
    ceiling: str = "default"
    ceiling_n_trials: int = 0
    problem: str | None = None


def asymptotes(trials: pd.DataFrame, manipulation: str, chance: float,
               hardest_accuracy: float | None = None) -> Asymptotes:
    """The floor and ceiling of ``manipulation``'s function for the observers in ``trials``.

    ``trials`` are one observer's (or one group's) trials of every condition. For a
    :data:`FLOOR_CONDITION` manipulation with trials in its unimodal condition, the floor is
    the share correct there, kept within [``chance``, :data:`MAX_FLOOR`]; otherwise
    ``chance``. It is ``chance`` too when ``hardest_accuracy`` (the accuracy at the
    manipulation's hardest level) is nearer chance than that share: such an observer does not
    fall back on the other modality (a model that a degraded sound throws off the picture
    too), and a floor above its data would pin the function there.

    With the unimodal floor, the top of the function is the observer's accuracy on the clean
    stimuli (``none``: the limit of no noise), which need not be near 1 - a small lapse rate
    (a person who gets 0.84 of clean 16-way trials right): the lapse rate gets the Beta prior
    that the ``none`` trials give 1 - accuracy, Beta(errors + 1, correct + 1), in place of
    psignifit's Beta(1, 10). Without it a function that has not levelled off by the easiest
    tested level is read as rising to 1 - lapse ~ 1, and its threshold lands beyond that
    level. A unimodal accuracy that is not below the clean accuracy leaves no range for a
    function (``problem``).
    """
    condition = FLOOR_CONDITION.get(manipulation)
    if condition is None or chance >= 0.5:  # correspondence: no unimodal question
        return Asymptotes(chance)
    rows = trials[trials["manipulation"] == condition]
    if rows.empty:
        return Asymptotes(chance)
    accuracy = float(np.clip(rows["correct"].astype(float).mean(), chance, MAX_FLOOR))
    if hardest_accuracy is not None and hardest_accuracy - chance < (accuracy - chance) / 2:
        return Asymptotes(chance)
    floor = dict(guess=accuracy, floor=condition, floor_n_trials=int(len(rows)))
    clean = trials.loc[trials["manipulation"] == "none", "correct"].astype(float)
    if clean.empty:
        return Asymptotes(**floor)
    k, n = float(clean.sum()), int(len(clean))
    problem = None if k / n > accuracy else (
        f"its {condition} accuracy ({accuracy:.3f}, {len(rows)} trials) is not below its "
        f"accuracy on clean stimuli ({k / n:.3f}, {n} trials): no range for a function")
    return Asymptotes(**floor, lapse_prior=(n - k + 1.0, k + 1.0), ceiling="none",
                      ceiling_n_trials=n, problem=problem)


def block_data(levels, correct) -> np.ndarray:
    """psignifit's data: rows of (level, n_correct, n_trials), sorted by level."""
    df = pd.DataFrame({"x": np.asarray(levels, float), "c": np.asarray(correct, float)})
    g = df.groupby("x")["c"].agg(["sum", "size"]).reset_index()
    return g.to_numpy(float)


def _gaussian_sigmoid(negative: bool):
    """psignifit's Gaussian sigmoid with the normal CDF/PPF taken straight from scipy.special.

    Same function, same values (checked equal to psignifit's own ``norm``/``neg_norm`` fits);
    psignifit's version goes through ``scipy.stats.norm`` once per grid evaluation, whose
    argument checking made up half of a fit's time.
    """
    from psignifit import sigmoids
    from scipy import special

    class Gaussian(sigmoids.Gaussian):
        def _ppf(self, x, loc=0, scale=1):
            return loc + scale * special.ndtri(x)

        def _cdf(self, x, loc=0, scale=1):
            return special.ndtr((np.asarray(x) - loc) / scale)

        def _pdf(self, x, loc=0, scale=1):
            z = (np.asarray(x) - loc) / scale
            return np.exp(-0.5 * z * z) / (np.sqrt(2 * np.pi) * scale)

    return Gaussian(negative=negative)


def _fast_default_priors(levels: np.ndarray, width_alpha: float = 0.05,
                         beta_prior: float = 10.0) -> dict:
    """psignifit's default priors for width, lapse and overdispersion, written with ufuncs.

    The same functions as ``psignifit._priors`` (width: flat between twice the smallest level
    step and the level range, cosine fall-offs; lapse: Beta(1, 10); eta: Beta(1, 10)), so the
    fit is unchanged (tested equal to psignifit's own defaults); psignifit's build a
    ``scipy.stats`` distribution on every call, a third of a small fit's time.
    """
    from scipy import special
    levels = np.unique(levels)
    wmin = float(np.diff(levels).min())
    wmax = float(levels.max() - levels.min())
    rescale = (special.ndtri(0.95) - special.ndtri(0.05)) / \
        (special.ndtri(1 - width_alpha) - special.ndtri(width_alpha))

    def width(x):
        y = np.asarray(x, float) * rescale
        p = np.zeros_like(y)
        p[(2 * wmin < y) & (y < wmax)] = 1.0
        left = (wmin <= y) & (y <= 2 * wmin)
        p[left] = (1 - np.cos(np.pi * (y[left] - wmin) / wmin)) / 2
        right = (wmax <= y) & (y <= 3 * wmax)
        p[right] = (1 + np.cos(np.pi / 2 * (y[right] - wmax) / wmax)) / 2
        return p

    def beta_1(k):
        def pdf(x):
            x = np.asarray(x, float)
            inside = (x >= 0) & (x <= 1)
            return np.where(inside, k * np.clip(1 - x, 0, 1) ** (k - 1), 0.0)
        return pdf

    return {"width": width, "lambda": beta_1(10.0), "eta": beta_1(beta_prior)}


def _beta_pdf(a: float, b: float):
    """The Beta(a, b) density as a ufunc expression (see :func:`_fast_default_priors`)."""
    from scipy import special
    log_norm = special.betaln(a, b)

    def pdf(x):
        x = np.asarray(x, float)
        inside = (x > 0) & (x < 1)
        safe = np.where(inside, x, 0.5)
        return np.where(inside, np.exp((a - 1) * np.log(safe) + (b - 1) * np.log1p(-safe)
                                       - log_norm), 0.0)
    return pdf


def fit(data: np.ndarray, *, guess: float, decreasing: bool = False,
        overdispersion: bool = True, lapse_prior: tuple[float, float] | None = None) -> dict:
    """Fit one psychometric function to ``data`` (rows: level, n_correct, n_trials).

    Returns threshold, width and lapse with their 95% credible intervals, and eta; with
    ``decreasing`` accuracy falls from 1 - lapse to the guess rate as the level rises.
    ``lapse_prior`` (a, b): a Beta(a, b) prior for the lapse rate in place of psignifit's
    Beta(1, 10) (:func:`asymptotes`).
    """
    import psignifit
    data = np.array(data, dtype=float)
    if decreasing:
        data[:, 0] = -data[:, 0]
        data = data[np.argsort(data[:, 0])]
    sigmoid = _gaussian_sigmoid(False)
    options = dict(experiment_type="nAFC", experiment_choices=int(round(1 / guess)),
                   sigmoid=sigmoid, verbose=False)
    if abs(1 / guess - round(1 / guess)) > 1e-9:
        options = dict(experiment_type="yes/no", sigmoid=sigmoid, verbose=False,
                       fixed_parameters={"gamma": guess})
    options["priors"] = _fast_default_priors(np.asarray(data, float)[:, 0])
    if lapse_prior is not None:
        options["priors"]["lambda"] = _beta_pdf(*lapse_prior)
        # the top, 1 - lambda, stays above the floor: the function rises from it
        options["bounds"] = {"lambda": (0.0, min(0.5, 1.0 - guess - MIN_RANGE))}
    if not overdispersion:
        options["fixed_parameters"] = {**options.get("fixed_parameters", {}), "eta": 0.0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = psignifit.psignifit(np.asarray(data, float), **options)
    est, ci = result.parameter_estimate, result.confidence_intervals
    sign = -1.0 if decreasing else 1.0
    out = {"sigmoid": "norm", "guess_rate": guess,
           "threshold": sign * float(est["threshold"]), "width": float(est["width"]),
           "lapse": float(est["lambda"]), "eta": float(est["eta"])}
    for name, key in (("threshold", "threshold"), ("width", "width"), ("lapse", "lambda")):
        lo, hi = (float(v) for v in ci[key]["0.95"])
        if name == "threshold" and decreasing:
            lo, hi = -hi, -lo
        out[f"{name}_ci_low"], out[f"{name}_ci_high"] = lo, hi
    return out


def predict(x, row) -> np.ndarray:
    """The fitted function of a :data:`FIT_COLUMNS` row at levels ``x`` (in its units)."""
    from psignifit.sigmoids import sigmoid_by_name
    s = sigmoid_by_name(row["sigmoid"])
    x = np.abs(np.asarray(x, float)) if row["level_transform"] == "abs" else np.asarray(x, float)
    sign = -1.0 if str(row["direction"]).startswith("decreasing") else 1.0
    return row["guess_rate"] + (1 - row["guess_rate"] - row["lapse"]) * \
        s(sign * x, sign * row["threshold"], row["width"])


def _fit_job(job: dict) -> dict:
    try:
        return {**job["meta"], **fit(job["data"], guess=job["guess"],
                                     decreasing=job["decreasing"],
                                     overdispersion=job["overdispersion"],
                                     lapse_prior=job.get("lapse_prior"))}
    except Exception as err:  # a fit that fails is reported, not fatal for the others
        return {**job["meta"], "error": f"{type(err).__name__}: {err}"}


def _direction(manipulation: str, data: pd.DataFrame) -> str | None:
    if manipulation in UNORDERED_MANIPULATIONS:
        return None
    if manipulation in DIRECTIONS:
        return DIRECTIONS[manipulation]
    acc = data.groupby("level_value")["correct"].mean()
    rho = stats.spearmanr(acc.index, acc.to_numpy())[0] if len(acc) > 2 else np.nan
    if not np.isfinite(rho) or rho == 0:
        return None
    return "increasing" if rho > 0 else "decreasing"


def one_answer_per_level(data: pd.DataFrame) -> bool:
    """Whether these correspondence trials (with their ``label``, the answer key, and ``x``,
    the level) hold one answer key at every level: all congruent, as every noise level of a
    suite is."""
    if "label" not in data.columns or "task" not in data.columns or \
            not (data["task"] == "correspondence").all():
        return False
    return bool((data.groupby("x")["label"].nunique() <= 1).all())


def plan_fits(trials: pd.DataFrame, n_choices: int = N_CHOICES
              ) -> tuple[list[dict], list[str]]:
    """One job per (manipulation, observer) and per (manipulation, group), each with its
    asymptotes (:func:`asymptotes`)."""
    jobs, notes = [], []
    chance = guess_rate(trials, n_choices)
    numeric = trials.dropna(subset=["level_value"])
    for manipulation, data in numeric.groupby("manipulation", sort=True):
        direction = _direction(manipulation, data)
        transform = "abs" if direction == "decreasing_abs" else ""
        x = data["level_value"].abs() if transform else data["level_value"]
        data = data.assign(x=x)
        if data["x"].nunique() < MIN_LEVELS:
            if data["level_value"].nunique() >= 2:
                notes.append(f"{manipulation}: fewer than {MIN_LEVELS} levels, no psychometric fit")
            continue
        if one_answer_per_level(data):
            notes.append(f"{manipulation}: no psychometric fit of the share correct: each "
                         "level holds correspondence trials of one answer key, where it is "
                         "1 - the false-alarm rate (or the hit rate), set by the criterion as "
                         "much as by sensitivity; d' per condition is the measure (sdt.csv)")
            continue
        if direction is None:
            why = "its levels are not ordered by difficulty" \
                if manipulation in UNORDERED_MANIPULATIONS else \
                "accuracy does not change with level"
            notes.append(f"{manipulation}: {why}, no psychometric fit")
            continue
        decreasing = direction.startswith("decreasing")

        def add(rows, everything, name, kind, fit_type, overdispersion):
            hardest = rows["x"].max() if decreasing else rows["x"].min()
            asym = asymptotes(everything, manipulation, chance,
                              float(rows.loc[rows["x"] == hardest, "correct"].astype(float).mean()))
            if asym.problem:
                notes.append(f"{manipulation}, {name}: no psychometric fit: {asym.problem}")
                return
            meta = {"manipulation": manipulation, "observer": name, "observer_type": kind,
                    "fit": fit_type, "direction": direction, "level_transform": transform,
                    "floor": asym.floor, "floor_n_trials": asym.floor_n_trials,
                    "ceiling": asym.ceiling, "ceiling_n_trials": asym.ceiling_n_trials,
                    "n_trials": int(len(rows)), "n_levels": int(rows["x"].nunique())}
            jobs.append({"meta": meta, "data": block_data(rows["x"], rows["correct"]),
                         "guess": asym.guess, "decreasing": decreasing,
                         "overdispersion": overdispersion, "lapse_prior": asym.lapse_prior})

        for (name, kind), rows in data.groupby(["observer", "observer_type"], sort=True):
            if rows["x"].nunique() >= MIN_LEVELS:
                add(rows, trials[trials["observer"] == name], name, kind, "observer", False)
        for kind, group in (("human", "humans"), ("model", "models")):
            rows = data[data["observer_type"] == kind]
            if rows["observer"].nunique() >= 2:
                add(rows, trials[trials["observer"].isin(set(rows["observer"]))], group, kind,
                    "group", True)
    return jobs, notes


class PendingFits:
    """Fits under way in worker processes (or to be done here): ``result()`` waits for them."""

    def __init__(self, trials: pd.DataFrame, workers: int = 1, n_choices: int = N_CHOICES):
        self.jobs, self.notes = plan_fits(trials, n_choices)
        import sys
        self._pool, self._futures = None, None
        # Forked workers: cheap, and no main-module guard needed in the caller's script. A
        # process that has loaded TensorFlow (the demo trains models first) must not fork, and
        # spawning would re-run an unguarded script: there the fits run here, one by one.
        if workers > 1 and len(self.jobs) > 4 and "tensorflow" not in sys.modules:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor
            self._pool = ProcessPoolExecutor(max_workers=workers,
                                             mp_context=multiprocessing.get_context("fork"))
            self._futures = [self._pool.submit(_fit_job, j) for j in self.jobs]

    def result(self, *, progress: bool = False) -> tuple[pd.DataFrame, list[str]]:
        """The fits (:data:`FIT_COLUMNS`, in the order of the jobs) and notes; ``progress``
        shows a bar on stderr as fits finish."""
        from tqdm.auto import tqdm
        bar = tqdm(total=len(self.jobs), desc="psychometric fits", unit="fit",
                   disable=not progress, dynamic_ncols=True)
        with bar:
            if self._futures is not None:
                from concurrent.futures import as_completed
                try:
                    for _ in as_completed(self._futures):
                        bar.update()
                    results = [f.result() for f in self._futures]
                finally:
                    self._pool.shutdown()
            else:
                results = []
                for job in self.jobs:
                    results.append(_fit_job(job))
                    bar.update()
        notes = list(self.notes)
        for r in results:
            if "error" in r:
                notes.append(f"{r['manipulation']}, {r['observer']}: fit failed ({r['error']})")
        ok = [r for r in results if "error" not in r]
        return pd.DataFrame(ok, columns=FIT_COLUMNS), notes


def fit_all(trials: pd.DataFrame, *, workers: int = 1, n_choices: int = N_CHOICES,
            progress: bool = False) -> tuple[pd.DataFrame, list[str]]:
    """Every fit of :func:`plan_fits`, in processes when ``workers`` > 1 (a fit takes
    0.03-0.4 s); returns the fits (:data:`FIT_COLUMNS`) and notes on what was not fitted.
    ``progress``: a bar on stderr as the fits finish."""
    return PendingFits(trials, workers, n_choices).result(progress=progress)
