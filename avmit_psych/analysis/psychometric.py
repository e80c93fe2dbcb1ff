"""Psychometric functions over the numeric levels of a manipulation, fitted with psignifit.

psignifit 4 (Schütt, Harmeling, Macke & Wichmann 2016, Vision Research 122:105-123) fits
psi(x) = gamma + (1 - gamma - lambda) S(x; threshold, width) by Bayesian inference on a grid:
gamma, the guess rate, is fixed (1/16 for the 16-way classification, whatever classes a
data set happens to contain; 1/2 for the correspondence task), the lapse rate lambda is fitted, ``threshold`` is the level where S is
0.5 (half-way between guessing and 1 - lambda) and ``width`` the span over which S goes from
0.05 to 0.95; credible intervals are the posterior's 95% intervals.

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
simulated observers (2,000 trials: within 10%).
"""
from __future__ import annotations

import warnings

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
FIT_COLUMNS = ["manipulation", "observer", "observer_type", "fit", "direction", "level_transform",
               "sigmoid", "guess_rate", "threshold", "threshold_ci_low", "threshold_ci_high",
               "width", "width_ci_low", "width_ci_high", "lapse", "lapse_ci_low",
               "lapse_ci_high", "eta", "n_trials", "n_levels"]


def guess_rate(trials: pd.DataFrame, n_choices: int = N_CHOICES) -> float:
    """1/2 for the correspondence task, else 1 / ``n_choices`` (the task's response
    alternatives: 16, however many classes the trials happen to include)."""
    if (trials["task"] == "correspondence").all():
        return 0.5
    return 1.0 / n_choices


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


def fit(data: np.ndarray, *, guess: float, decreasing: bool = False,
        overdispersion: bool = True) -> dict:
    """Fit one psychometric function to ``data`` (rows: level, n_correct, n_trials).

    Returns threshold, width and lapse with their 95% credible intervals, and eta; with
    ``decreasing`` accuracy falls from 1 - lapse to the guess rate as the level rises.
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
                                     overdispersion=job["overdispersion"])}
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


def plan_fits(trials: pd.DataFrame, n_choices: int = N_CHOICES
              ) -> tuple[list[dict], list[str]]:
    """One job per (manipulation, observer) and per (manipulation, group)."""
    jobs, notes = [], []
    guess = guess_rate(trials, n_choices)
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
        if direction is None:
            why = "its levels are not ordered by difficulty" \
                if manipulation in UNORDERED_MANIPULATIONS else \
                "accuracy does not change with level"
            notes.append(f"{manipulation}: {why}, no psychometric fit")
            continue
        decreasing = direction.startswith("decreasing")

        def add(rows, name, kind, fit_type, overdispersion):
            meta = {"manipulation": manipulation, "observer": name, "observer_type": kind,
                    "fit": fit_type, "direction": direction, "level_transform": transform,
                    "n_trials": int(len(rows)), "n_levels": int(rows["x"].nunique())}
            jobs.append({"meta": meta, "data": block_data(rows["x"], rows["correct"]),
                         "guess": guess, "decreasing": decreasing,
                         "overdispersion": overdispersion})

        for (name, kind), rows in data.groupby(["observer", "observer_type"], sort=True):
            if rows["x"].nunique() >= MIN_LEVELS:
                add(rows, name, kind, "observer", False)
        for kind, group in (("human", "humans"), ("model", "models")):
            rows = data[data["observer_type"] == kind]
            if rows["observer"].nunique() >= 2:
                add(rows, group, kind, "group", True)
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

    def result(self) -> tuple[pd.DataFrame, list[str]]:
        if self._futures is not None:
            try:
                results = [f.result() for f in self._futures]
            finally:
                self._pool.shutdown()
        else:
            results = [_fit_job(j) for j in self.jobs]
        notes = list(self.notes)
        for r in results:
            if "error" in r:
                notes.append(f"{r['manipulation']}, {r['observer']}: fit failed ({r['error']})")
        ok = [r for r in results if "error" not in r]
        return pd.DataFrame(ok, columns=FIT_COLUMNS), notes


def fit_all(trials: pd.DataFrame, *, workers: int = 1, n_choices: int = N_CHOICES
            ) -> tuple[pd.DataFrame, list[str]]:
    """Every fit of :func:`plan_fits`, in processes when ``workers`` > 1 (a fit takes
    0.03-0.4 s); returns the fits (:data:`FIT_COLUMNS`) and notes on what was not fitted."""
    return PendingFits(trials, workers, n_choices).result()
