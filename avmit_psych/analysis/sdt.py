"""Signal detection for the correspondence task: hit rate, false-alarm rate, d' and c.

In the correspondence task an observer (a person or a SAVC model) says whether sound and
picture show the same action. The signal is an incongruent trial (answer key ``different``,
the semantic swaps): a *hit* is "different" on a different trial, a *false alarm* "different"
on a same trial. Per observer and condition (Macmillan & Creelman 2005, *Detection Theory: A
User's Guide*, 2nd ed., ch. 1-2):

- d' = z(H) - z(F), c = -(z(H) + z(F)) / 2 (c > 0: a bias toward "same");
- rates of 0 or 1 are corrected by the log-linear rule of Hautus (1995, Behavior Research
  Methods, Instruments, & Computers 27:46-51): H = (hits + 0.5) / (signal trials + 1), and
  likewise F, applied to every cell so that all cells are treated alike.

A condition holds one kind of trial in the usual suite (every ``none``, ``av_offset`` or noise
stimulus is congruent; every ``semantic_swap`` incongruent), so d' pairs it with a reference:
a congruent condition's false-alarm rate with the hit rate over all of that observer's
incongruent trials; an incongruent condition's hit rate with the false-alarm rate of ``none``
(else of all congruent trials). A condition holding both kinds is scored within itself. The
``reference`` column says which. Tested against hand computations (tests/test_sdt.py).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

SDT_COLUMNS = ["observer", "observer_type", "condition", "manipulation", "level", "level_value",
               "n_signal", "n_noise", "hits", "false_alarms", "hit_rate", "fa_rate",
               "d_prime", "criterion", "accuracy", "reference"]
SIGNAL, NOISE = "different", "same"


def loglinear_rates(hits, n_signal, false_alarms, n_noise) -> tuple[np.ndarray, np.ndarray]:
    """Hit and false-alarm rates with Hautus's (1995) log-linear correction (arrays broadcast)."""
    hits, n_signal = np.asarray(hits, float), np.asarray(n_signal, float)
    fas, n_noise = np.asarray(false_alarms, float), np.asarray(n_noise, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (hits + 0.5) / (n_signal + 1.0), (fas + 0.5) / (n_noise + 1.0)


def d_prime(hit_rate, fa_rate) -> tuple[np.ndarray, np.ndarray]:
    """(d', c) from hit and false-alarm rates: z(H) - z(F) and -(z(H) + z(F)) / 2."""
    zh, zf = stats.norm.ppf(hit_rate), stats.norm.ppf(fa_rate)
    return zh - zf, -(zh + zf) / 2.0


def _counts(rows: pd.DataFrame) -> tuple[int, int, int, int]:
    signal = rows["label"] == SIGNAL
    said_different = rows["response"] == SIGNAL
    return (int(signal.sum()), int((signal & said_different).sum()),
            int((~signal).sum()), int((~signal & said_different).sum()))


def sdt_table(trials: pd.DataFrame, conditions: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per observer and condition: :data:`SDT_COLUMNS` (correspondence trials only).

    ``trials``: observer trials with ``label``/``response`` in same/different (as
    :func:`~avmit_psych.analysis.observers.load_observations` gives them).
    """
    from .observers import condition_table
    trials = trials[trials["task"] == "correspondence"]
    if trials.empty:
        return pd.DataFrame(columns=SDT_COLUMNS)
    conditions = condition_table(trials) if conditions is None else conditions
    rows = []
    for (observer, kind), own in trials.groupby(["observer", "observer_type"], sort=True):
        all_signal = own[own["label"] == SIGNAL]
        all_noise = own[own["label"] != SIGNAL]
        baseline = own[(own["condition"] == "none") & (own["label"] != SIGNAL)]
        if baseline.empty:
            baseline, base_name = all_noise, "all congruent trials"
        else:
            base_name = "none"
        for cond in conditions.itertuples(index=False):
            here = own[own["condition"] == cond.condition]
            if here.empty:
                continue
            n_s, hits, n_n, fas = _counts(here)
            if n_s and n_n:
                reference = "within condition"
            elif n_n:
                n_s, hits = len(all_signal), int((all_signal["response"] == SIGNAL).sum())
                reference = "hits: all incongruent trials"
            else:
                n_n, fas = len(baseline), int((baseline["response"] == SIGNAL).sum())
                reference = f"false alarms: {base_name}"
            h, f = loglinear_rates(hits, n_s, fas, n_n)
            dp, c = d_prime(h, f) if n_s and n_n else (np.nan, np.nan)
            rows.append({"observer": observer, "observer_type": kind,
                         "condition": cond.condition, "manipulation": cond.manipulation,
                         "level": cond.level, "level_value": cond.level_value,
                         "n_signal": n_s, "n_noise": n_n, "hits": hits, "false_alarms": fas,
                         "hit_rate": float(h) if n_s else np.nan,
                         "fa_rate": float(f) if n_n else np.nan,
                         "d_prime": float(dp), "criterion": float(c),
                         "accuracy": float(here["correct"].mean()), "reference": reference})
    return pd.DataFrame(rows, columns=SDT_COLUMNS)


SDT_SUMMARY_COLUMNS = ["condition", "n_humans", "human_d_prime_mean", "human_d_prime_sd",
                       "model", "model_d_prime", "t", "dof", "p", "p_holm",
                       "model_percentile"]


def sdt_summary(sdt: pd.DataFrame) -> pd.DataFrame:
    """Each model's d' against the humans' per condition: Crawford & Howell's single-case
    test (as for accuracy, :mod:`~avmit_psych.analysis.single_case`), Holm across conditions."""
    from .single_case import _holm, crawford_howell
    humans = sdt[sdt["observer_type"] == "human"]
    models = sdt[sdt["observer_type"] == "model"]
    rows = []
    for condition in dict.fromkeys(sdt["condition"]):
        h = humans.loc[humans["condition"] == condition, "d_prime"].dropna().to_numpy(float)
        for model, m in models[models["condition"] == condition].groupby("observer"):
            x = float(m["d_prime"].iloc[0])
            test = crawford_howell(x, h)
            rows.append({"condition": condition, "n_humans": len(h),
                         "human_d_prime_mean": float(h.mean()) if len(h) else np.nan,
                         "human_d_prime_sd": float(h.std(ddof=1)) if len(h) > 1 else np.nan,
                         "model": model, "model_d_prime": x, "t": test["t"],
                         "dof": test["dof"], "p": test["p"],
                         "model_percentile": test["percentile"]})
    out = pd.DataFrame(rows, columns=SDT_SUMMARY_COLUMNS)
    for model, idx in out.groupby("model").groups.items():
        out.loc[idx, "p_holm"] = _holm(out.loc[idx, "p"].to_numpy())
    return out
