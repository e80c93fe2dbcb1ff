"""Models against humans, tested the way single cases are tested against a control sample.

A handful of models is not a sample of subjects: an ANOVA with two or three models as the
"subjects" of one group estimates a variance from them that describes nothing. Each model is
instead one case, compared with the human sample as neuropsychology compares a patient with
a small control sample:

- :func:`crawford_howell`: Crawford & Howell's (1998) modified t-test,
  ``t = (x - mean) / (s * sqrt((n + 1) / n))`` on ``n - 1`` degrees of freedom, with ``x`` the
  model's accuracy and ``mean``, ``s``, ``n`` the humans'. Its one-tailed p is also the point
  estimate of the share of the human population scoring below (or above) the model
  (Crawford & Garthwaite 2002), so the model's percentile among humans is
  ``100 * T_{n-1}(t)``; the effect size is ``z_cc = (x - mean) / s`` (Crawford, Garthwaite &
  Porter 2010). Tested against the published worked example (Crawford & Howell 1998, p. 483:
  a score of 33 against 15 controls with mean 50 and SD 10 gives t(14) = -1.646, one-tailed
  p = .061) and against scipy's two-sample t-test with the case as a sample of one (equal
  variances: the same statistic).
- :func:`model_vs_humans`: per condition and model the test above, Holm-corrected across
  conditions for each model, and the difference model - humans (accuracy) with a percentile
  bootstrap CI over stimuli: stimuli are resampled with replacement, every observer's accuracy
  is recomputed on the resampled stimuli, and the difference of the model's and the humans'
  mean accuracy is taken in each resample. Tested against a direct loop over resamples.

References: Crawford, J. R., & Howell, D. C. (1998). Comparing an individual's test score
against norms derived from small samples. The Clinical Neuropsychologist, 12(4), 482-486.
Crawford, J. R., & Garthwaite, P. H. (2002). Investigation of the single case in
neuropsychology: confidence limits on the abnormality of test scores and test score
differences. Neuropsychologia, 40(8), 1196-1208.
"""
from __future__ import annotations

import warnings
import zlib

import numpy as np
import pandas as pd
from scipy import stats

SINGLE_CASE_COLUMNS = ["condition", "manipulation", "level", "level_value", "n_humans",
                       "human_mean", "human_sd", "human_sem", "human_ci_low", "human_ci_high",
                       "model", "model_accuracy", "t", "dof", "p", "p_holm",
                       "model_percentile", "z_cc", "difference", "difference_ci_low",
                       "difference_ci_high", "n_stimuli", "difference_ci_method"]
TEST_NAME = "Crawford-Howell modified t-test (two-sided)"
DIFFERENCE_METHOD = "percentile bootstrap over stimuli ({n_boot} resamples, {level:g}%)"


def crawford_howell(case: float, controls, *, alternative: str = "two-sided") -> dict:
    """Crawford & Howell's (1998) test of one case against a small control sample.

    Parameters
    ----------
    case : float
        The single case's score (here: a model's accuracy).
    controls : array-like
        The control sample's scores (here: the humans' accuracies), at least 2.
    alternative : {'two-sided', 'less', 'greater'}
        ``less``: the case is below the controls' population.

    Returns
    -------
    dict with ``t``, ``dof``, ``p``, ``percentile`` (estimated percentage of the control
    population scoring below the case), ``z_cc`` (effect size), ``mean``, ``sd``, ``n``.

    Examples
    --------
    The published worked example (Crawford & Howell 1998, p. 483), controls with mean 50 and
    SD 10 (n = 15), a case scoring 33:

    >>> controls = [50 - 26.457513110645905] + [50] * 13 + [50 + 26.457513110645905]
    >>> r = crawford_howell(33, controls, alternative="less")
    >>> round(r["t"], 3), r["dof"], round(r["p"], 3)
    (-1.646, 14, 0.061)
    """
    x = np.asarray(controls, dtype=float)
    x = x[np.isfinite(x)]
    n = len(x)
    out = {"t": np.nan, "dof": n - 1 if n else np.nan, "p": np.nan, "percentile": np.nan,
           "z_cc": np.nan, "mean": float(np.mean(x)) if n else np.nan,
           "sd": float(np.std(x, ddof=1)) if n > 1 else np.nan, "n": n}
    if n < 2 or not np.isfinite(case):
        return out
    mean, sd = out["mean"], out["sd"]
    if sd == 0:
        # controls without spread: the case is either one of them or outside all of them
        out["z_cc"] = 0.0 if case == mean else np.copysign(np.inf, case - mean)
        out["percentile"] = 50.0 if case == mean else (100.0 if case > mean else 0.0)
        return out
    t = (case - mean) / (sd * np.sqrt((n + 1) / n))
    dof = n - 1
    below = float(stats.t.cdf(t, dof))
    if alternative == "two-sided":
        p = 2 * min(below, 1 - below)
    elif alternative == "less":
        p = below
    elif alternative == "greater":
        p = 1 - below
    else:
        raise ValueError(f"alternative must be two-sided, less or greater, not {alternative!r}")
    out.update(t=float(t), dof=dof, p=float(min(p, 1.0)), percentile=100 * below,
               z_cc=float((case - mean) / sd))
    return out


def _holm(p: np.ndarray) -> np.ndarray:
    """Holm-Bonferroni adjusted p values (NaNs kept out of the family), by pingouin."""
    import pingouin as pg
    p = np.asarray(p, dtype=float)
    out = np.full_like(p, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        out[ok] = pg.multicomp(p[ok], method="holm")[1]
    return out


def _describe(acc: np.ndarray, confidence: float) -> dict:
    n = len(acc)
    mean = float(np.mean(acc)) if n else np.nan
    sd = float(np.std(acc, ddof=1)) if n > 1 else np.nan
    sem = sd / np.sqrt(n) if n > 1 else np.nan
    half = stats.t.ppf(0.5 + confidence / 2, n - 1) * sem if n > 1 else np.nan
    return {"n_humans": n, "human_mean": mean, "human_sd": sd, "human_sem": sem,
            "human_ci_low": mean - half, "human_ci_high": mean + half}


def _resample_counts(rng: np.random.Generator, n: int, n_boot: int) -> np.ndarray:
    """(n_boot, n): how often each stimulus is drawn in each bootstrap resample."""
    idx = rng.integers(0, n, size=(n_boot, n))
    flat = (idx + n * np.arange(n_boot)[:, None]).ravel()
    return np.bincount(flat, minlength=n_boot * n).reshape(n_boot, n).astype(np.float32)


def difference_bootstrap(correct: np.ndarray, seen: np.ndarray, is_model: np.ndarray,
                         weights: np.ndarray, confidence: float) -> np.ndarray:
    """Per model row: (low, high) of model accuracy minus the humans' mean accuracy over
    bootstrap resamples of stimuli. ``correct``/``seen``: (observers, stimuli) booleans;
    ``weights``: (n_boot, stimuli) resample counts."""
    # float32 is exact here: counts of at most a few thousand draws
    W = weights.astype(np.float32)
    right = correct.astype(np.float32) @ W.T                      # (observers, n_boot)
    shown = np.broadcast_to(W.sum(axis=1), right.shape).copy()    # observers who saw all
    partial = ~seen.all(axis=1)
    if partial.any():
        shown[partial] = seen[partial].astype(np.float32) @ W.T
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = right.astype(np.float64) / shown          # the exact counts, divided in float64
    lo_q, hi_q = 50 * (1 - confidence), 50 * (1 + confidence)
    with warnings.catch_warnings():   # a resample without any human trial: NaN, left out
        warnings.simplefilter("ignore", RuntimeWarning)
        diff = acc[is_model] - np.nanmean(acc[~is_model], axis=0)
        return np.nanpercentile(diff, [lo_q, hi_q], axis=1).T


def model_vs_humans(trials: pd.DataFrame, conditions: pd.DataFrame | None = None, *,
                    n_boot: int = 1000, seed: int = 0,
                    confidence: float = 0.95) -> pd.DataFrame:
    """Each model against the human sample, condition by condition.

    Parameters
    ----------
    trials : DataFrame
        Observer trials (``observer, observer_type, stimulus_id, condition, correct``), as
        :func:`~avmit_psych.analysis.observers.load_observations` gives them.
    conditions : DataFrame, optional
        The conditions in reading order (``condition, manipulation, level, level_value``).
    n_boot : int
        Bootstrap resamples of stimuli for the difference's CI (0: none).

    Returns
    -------
    DataFrame of :data:`SINGLE_CASE_COLUMNS`: the humans' mean, SD, SEM and t-based CI per
    condition, and per model its accuracy, the Crawford-Howell t, dof, two-sided p, Holm p
    across conditions, its percentile among humans, z_cc, and the difference model - humans
    with its bootstrap CI. Without models one row per condition with the humans' columns.
    """
    from .observers import condition_table
    conditions = condition_table(trials) if conditions is None else conditions
    acc = trials.groupby(["observer", "observer_type", "condition"], sort=False)["correct"] \
        .mean().rename("accuracy").reset_index()
    model_names = sorted(trials.loc[trials["observer_type"] == "model", "observer"].unique())
    coded = _Coded(trials)
    rows = []
    accuracy_of = dict(zip(zip(acc["observer"], acc["condition"]), acc["accuracy"]))
    human_rows = acc[acc["observer_type"] == "human"]
    humans_in = {c: g.to_numpy(float) for c, g in human_rows.groupby("condition")["accuracy"]}
    for cond in conditions.itertuples(index=False):
        human_acc = humans_in.get(cond.condition, np.zeros(0))
        base = {"condition": cond.condition, "manipulation": cond.manipulation,
                "level": cond.level, "level_value": cond.level_value,
                **_describe(human_acc, confidence)}
        if not model_names:
            rows.append({**base, "model": ""})
            continue
        ci = coded.difference_ci(cond.condition, model_names, n_boot, seed, confidence)
        for model in model_names:
            x = float(accuracy_of.get((model, cond.condition), np.nan))
            test = crawford_howell(x, human_acc)
            low, high, n_stim = ci.get(model, (np.nan, np.nan, 0))
            rows.append({**base, "model": model, "model_accuracy": x, "t": test["t"],
                         "dof": test["dof"] if np.isfinite(x) else np.nan, "p": test["p"],
                         "model_percentile": test["percentile"], "z_cc": test["z_cc"],
                         "difference": x - base["human_mean"], "difference_ci_low": low,
                         "difference_ci_high": high, "n_stimuli": n_stim})
    out = pd.DataFrame(rows, columns=SINGLE_CASE_COLUMNS)
    out["p_holm"] = np.nan
    for model, idx in out.groupby("model").groups.items():
        if model:
            out.loc[idx, "p_holm"] = _holm(out.loc[idx, "p"].to_numpy())
    out["difference_ci_method"] = DIFFERENCE_METHOD.format(n_boot=n_boot,
                                                           level=100 * confidence) \
        if n_boot > 0 and model_names else ""
    return out


class _Coded:
    """The trials as integer codes, grouped by condition once (pandas selections per
    condition cost more than the bootstrap itself)."""

    def __init__(self, trials: pd.DataFrame):
        self.observer_code, self.observers = pd.factorize(trials["observer"].astype(str))
        self.stimulus_code, _ = pd.factorize(trials["stimulus_id"].astype(str), sort=True)
        self.correct = trials["correct"].to_numpy(bool)
        types = trials.drop_duplicates("observer").set_index("observer")["observer_type"]
        self.is_human = np.array([types[o] == "human" for o in self.observers])
        self.rows = {str(c): idx for c, idx in trials.groupby("condition").indices.items()}

    def difference_ci(self, condition: str, models: list[str], n_boot: int, seed: int,
                      confidence: float) -> dict:
        """model -> (difference CI low, high, stimuli resampled) in one condition."""
        rows = self.rows.get(str(condition))
        if n_boot <= 0 or rows is None or not len(rows):
            return {}
        o_all = self.observer_code[rows]
        present = np.unique(o_all)
        humans = [i for i in present if self.is_human[i]]
        names = list(self.observers)
        model_codes = [names.index(m) for m in models if m in names]
        model_codes = [i for i in model_codes if i in set(present)]
        if not humans or not model_codes:
            return {}
        order = np.array(humans + model_codes)
        position = np.full(len(names), -1)
        position[order] = np.arange(len(order))
        o = position[o_all]
        keep = o >= 0
        stimuli, s = np.unique(self.stimulus_code[rows][keep], return_inverse=True)
        seen = np.zeros((len(order), len(stimuli)), bool)
        correct = np.zeros_like(seen)
        seen[o[keep], s] = True
        correct[o[keep], s] = self.correct[rows][keep]
        rng = np.random.default_rng([seed, zlib.crc32(str(condition).encode())])
        weights = _resample_counts(rng, len(stimuli), n_boot)
        is_model = np.array([False] * len(humans) + [True] * len(model_codes))
        bounds = difference_bootstrap(correct, seen, is_model, weights, confidence)
        return {names[i]: (float(lo), float(hi), len(stimuli))
                for i, (lo, hi) in zip(model_codes, bounds)}
