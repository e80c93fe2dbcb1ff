"""Accuracy per observer and condition, and the humans' ANOVA over levels.

- :func:`wilson_interval`: the Wilson score interval (Wilson 1927) of a binomial proportion;
  tested against ``scipy.stats.binomtest(...).proportion_ci(method='wilson')``.
- :func:`accuracy_table`: per observer x condition counts, accuracy and Wilson 95% CI.
- :func:`level_anovas`: a repeated-measures ANOVA of human accuracy over the numeric levels of
  each manipulation (pingouin; Greenhouse-Geisser corrected p and Mauchly's test); tested
  against ``statsmodels.stats.anova.AnovaRM``. Models are not subjects of an ANOVA: they are
  compared with the human sample one by one (:mod:`~avmit_psych.analysis.single_case`).
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats

from .observers import condition_table

ACCURACY_COLUMNS = ["observer", "observer_type", "condition", "manipulation", "level",
                    "level_value", "n_trials", "n_correct", "accuracy", "ci_low", "ci_high"]
ANOVA_COLUMNS = ["analysis", "manipulation", "source", "SS", "ddof1", "ddof2", "MS", "F",
                 "p_unc", "p_GG_corr", "eps", "sphericity", "W_spher", "p_spher", "effect_size",
                 "effect_size_type", "n_subjects", "n_levels"]


def wilson_interval(k, n, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of ``k`` successes in ``n`` trials (arrays broadcast)."""
    k, n = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    z = stats.norm.ppf(0.5 + confidence / 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        denom = 1 + z ** 2 / n
        centre = (p + z ** 2 / (2 * n)) / denom
        half = z * np.sqrt(p * (1 - p) / n + z ** 2 / (4 * n ** 2)) / denom
    return np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)


def accuracy_table(trials: pd.DataFrame, *, confidence: float = 0.95) -> pd.DataFrame:
    """Per observer and condition: n_trials, n_correct, accuracy and its Wilson CI."""
    g = trials.groupby(["observer", "observer_type", "condition"], sort=False)
    out = g["correct"].agg(n_trials="size", n_correct="sum").reset_index()
    out["n_correct"] = out["n_correct"].astype(int)
    out["accuracy"] = out["n_correct"] / out["n_trials"]
    out["ci_low"], out["ci_high"] = wilson_interval(out["n_correct"], out["n_trials"],
                                                    confidence)
    conds = condition_table(trials)
    out = out.merge(conds, on="condition", how="left")
    rank = {c: i for i, c in enumerate(conds["condition"])}
    out = out.assign(_t=out["observer_type"] != "human", _c=out["condition"].map(rank))
    out = out.sort_values(["_t", "observer", "_c"]).drop(columns=["_t", "_c"])
    return out[ACCURACY_COLUMNS].reset_index(drop=True)


def _complete_subjects(data: pd.DataFrame, levels) -> tuple[pd.DataFrame, list[str]]:
    """Keep observers with an accuracy at every level; name the ones dropped."""
    have = data.groupby("observer")["level"].nunique()
    keep = have[have == len(levels)].index
    dropped = sorted(set(data["observer"]) - set(keep))
    return data[data["observer"].isin(keep)], dropped


def _anova_rows(table: pd.DataFrame, analysis: str, manipulation: str, n_subjects: int,
                n_levels: int) -> list[dict]:
    rows = []
    errors = table.loc[table["Source"] == "Error"]
    error_df = float(errors["DF"].iloc[0]) if len(errors) else np.nan
    for r in table.to_dict("records"):
        if r["Source"] == "Error":
            continue
        effect_type = "ng2" if "ng2" in r else "np2"
        rows.append({
            "analysis": analysis, "manipulation": manipulation, "source": r["Source"],
            "SS": r["SS"], "ddof1": r["DF1"] if "DF1" in r else r["DF"],
            "ddof2": r["DF2"] if "DF2" in r else error_df,
            "MS": r["MS"], "F": r["F"], "p_unc": r["p_unc"], "p_GG_corr": r.get("p_GG_corr"),
            "eps": r.get("eps"), "sphericity": r.get("sphericity"),
            "W_spher": r.get("W_spher"), "p_spher": r.get("p_spher"),
            "effect_size": r.get(effect_type), "effect_size_type": effect_type,
            "n_subjects": n_subjects, "n_levels": n_levels})
    return rows


def level_anovas(accuracy: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Repeated-measures ANOVA of the humans' accuracy over the numeric levels of each
    manipulation (>= 2 levels, >= 2 humans with every level).

    Returns the table (:data:`ANOVA_COLUMNS`) and notes on what was left out (observers
    missing a level, manipulations with too few observers).
    """
    import pingouin as pg
    rows, notes = [], []
    numeric = accuracy[(accuracy["observer_type"] == "human") & accuracy["level_value"].notna()]
    for manipulation, data in numeric.groupby("manipulation", sort=True):
        data = data[["observer", "level_value", "accuracy"]].rename(
            columns={"level_value": "level"})
        levels = sorted(data["level"].unique())
        if len(levels) < 2:
            continue
        humans, dropped = _complete_subjects(data, levels)
        if dropped:
            notes.append(f"{manipulation}: {len(dropped)} human(s) without every level left out "
                         f"of the ANOVA ({', '.join(dropped[:5])})")
        n_h = humans["observer"].nunique()
        if n_h >= 2:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                table = pg.rm_anova(data=humans, dv="accuracy", within="level",
                                    subject="observer", correction=True, detailed=True)
            rows += _anova_rows(table, "rm_anova", manipulation, n_h, len(levels))
        elif n_h:
            notes.append(f"{manipulation}: repeated-measures ANOVA needs >= 2 humans")
    return pd.DataFrame(rows, columns=ANOVA_COLUMNS), notes
