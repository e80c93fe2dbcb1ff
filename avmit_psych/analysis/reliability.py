"""Inter-rater reliability of annotations: Fleiss' kappa, Krippendorff's alpha, per-rater checks.

Fleiss' kappa is computed by ``statsmodels.stats.inter_rater.fleiss_kappa`` and Krippendorff's
alpha by the ``krippendorff`` package; this module shapes AVMIT tables for them. Both are tested
against published worked examples: Fleiss (1971), 30 patients x 6 psychiatrists, kappa = 0.430;
the 10 x 14 example in Wikipedia's "Fleiss' kappa", kappa = 0.210; Krippendorff (2011),
"Computing Krippendorff's alpha-reliability", 4 observers x 12 units with missing values,
alpha = 0.743 (nominal), 0.815 (ordinal), 0.849 (interval).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..dataset import schema
from ..dataset.schema import DatasetError

COUNT_COLUMNS = ("r1", "r2", "r3")


def fleiss_kappa(data, columns=COUNT_COLUMNS) -> float:
    """Fleiss' kappa from a subjects x categories table of counts.

    Parameters
    ----------
    data : DataFrame or 2-D array
        One row per subject (video), one column per category, each cell the number of raters
        who chose that category. Every row must have the same total (number of raters).
    columns : sequence of str
        The count columns when ``data`` is a DataFrame.

    Returns
    -------
    float

    Examples
    --------
    Fleiss (1971) Table 1, reproduced in statsmodels and R's ``irr``: kappa = 0.430.
    """
    from statsmodels.stats.inter_rater import fleiss_kappa as _fleiss

    table = _as_counts(data, columns)
    totals = table.sum(axis=1)
    if len(table) == 0:
        raise ValueError("Fleiss' kappa needs at least one subject")
    if not np.all(totals == totals[0]):
        raise ValueError("Fleiss' kappa needs the same number of ratings for every subject; "
                         "use equal_rating_subset() first")
    return float(_fleiss(table, method="fleiss"))


def krippendorff_alpha(data, columns=COUNT_COLUMNS, *, level: str = "ordinal") -> float:
    """Krippendorff's alpha from per-unit value counts (any number of raters per unit).

    Parameters
    ----------
    data : DataFrame or 2-D array
        One row per unit (video), one column per value in ascending order (for AVMIT:
        r1, r2, r3), each cell the number of raters who gave that value. Units with fewer than
        two values are not pairable and do not count, as in Krippendorff's definition.
    level : {'nominal', 'ordinal', 'interval', 'ratio'}
        Level of measurement (AVMIT ratings are ordinal).
    """
    import krippendorff

    table = _as_counts(data, columns)
    values = np.arange(1, table.shape[1] + 1)
    return float(krippendorff.alpha(value_counts=table, value_domain=values,
                                    level_of_measurement=level))


def krippendorff_alpha_ratings(ratings: pd.DataFrame, *, unit: str = "filename",
                               value: str = "rating", level: str = "ordinal",
                               value_domain=schema.RATING_VALUES) -> float:
    """Krippendorff's alpha from long-format ratings (one row per unit x rater)."""
    codes, _ = pd.factorize(ratings[unit])
    domain = list(value_domain)
    index = {v: i for i, v in enumerate(domain)}
    cols = ratings[value].map(index).to_numpy()
    if np.isnan(cols.astype(float)).any():
        raise ValueError(f"values outside {domain} in column '{value}'")
    table = np.zeros((codes.max() + 1, len(domain)), dtype=np.int64)
    np.add.at(table, (codes, cols.astype(np.int64)), 1)
    import krippendorff
    return float(krippendorff.alpha(value_counts=table, value_domain=np.arange(len(domain)),
                                    level_of_measurement=level))


def _as_counts(data, columns) -> np.ndarray:
    if isinstance(data, pd.DataFrame):
        table = data[list(columns)].to_numpy()
    else:
        table = np.asarray(data)
    if table.ndim != 2:
        raise ValueError("expected a 2-D table of counts")
    return table.astype(np.int64)


def equal_rating_subset(video_ratings: pd.DataFrame, n: int | None = None) -> pd.DataFrame:
    """The videos rated exactly ``n`` times (default: the most common number of ratings)."""
    totals = video_ratings[list(COUNT_COLUMNS)].sum(axis=1)
    if n is None:
        n = int(totals.mode().iloc[0])
    return video_ratings[totals == n]


def reliability(video_ratings: pd.DataFrame) -> pd.DataFrame:
    """Overall reliability of a video-ratings table.

    Returns
    -------
    DataFrame
        measure, value, n_videos, n_ratings, note: Fleiss' kappa over the videos with the most
        common number of ratings, and Krippendorff's alpha (ordinal and nominal) over all.
    """
    totals = video_ratings[list(COUNT_COLUMNS)].sum(axis=1)
    modal = int(totals.mode().iloc[0])
    same = video_ratings[totals == modal]
    rows = [{
        "measure": "fleiss_kappa", "value": fleiss_kappa(same), "n_videos": len(same),
        "n_ratings": int(totals[totals == modal].sum()),
        "note": f"videos with exactly {modal} ratings ({len(video_ratings) - len(same)} "
                f"others left out)",
    }]
    for level in ("ordinal", "nominal"):
        rows.append({
            "measure": f"krippendorff_alpha_{level}",
            "value": krippendorff_alpha(video_ratings, level=level),
            "n_videos": len(video_ratings), "n_ratings": int(totals.sum()),
            "note": "all videos, any number of ratings",
        })
    return pd.DataFrame(rows)


def rater_agreement(raw: pd.DataFrame, ground_truth: pd.DataFrame | None = None, *,
                    rater: str = "participant") -> pd.DataFrame:
    """Per-rater statistics from raw ratings.

    For every rater: how many ratings, the distribution over 1/2/3, the mean rating (bias), the
    agreement with the majority of the *other* raters of the same video (counted only where
    more than half of the others gave one rating), and, with ``ground_truth`` (filename,
    rating), the agreement with the ground-truth rating on the videos that have one.

    Returns
    -------
    DataFrame
        participant, n_ratings, prop_1, prop_2, prop_3, mean_rating, n_majority_compared,
        majority_agreement, n_ground_truth, ground_truth_agreement.
    """
    if rater not in raw.columns:
        raise DatasetError(f"per-rater statistics need a '{rater}' column",
                           path=raw.attrs.get("path"), column=rater,
                           fix="give raw ratings from the annotation task")
    codes, _ = pd.factorize(raw["filename"])
    ratings = raw["rating"].to_numpy(dtype=np.int64)
    counts = np.zeros((codes.max() + 1, 3), dtype=np.int64)
    np.add.at(counts, (codes, ratings - 1), 1)
    others = counts[codes].copy()
    others[np.arange(len(ratings)), ratings - 1] -= 1
    n_others = others.sum(axis=1)
    top = others.argmax(axis=1)
    has_majority = others.max(axis=1) * 2 > n_others
    agrees = (top + 1 == ratings) & has_majority
    frame = pd.DataFrame({
        rater: raw[rater].to_numpy(), "rating": ratings, "compared": has_majority,
        "agrees": agrees,
    })
    if ground_truth is not None:
        truth = raw["filename"].map(ground_truth.set_index("filename")["rating"])
        frame["has_truth"] = truth.notna().to_numpy()
        frame["truth_match"] = (truth.to_numpy() == ratings) & frame["has_truth"].to_numpy()
    grouped = frame.groupby(rater, sort=True)
    out = pd.DataFrame({"n_ratings": grouped.size()})
    for k in schema.RATING_VALUES:
        out[f"prop_{k}"] = grouped["rating"].apply(lambda r, k=k: float(np.mean(r == k)))
    out["mean_rating"] = grouped["rating"].mean()
    out["n_majority_compared"] = grouped["compared"].sum().astype("int64")
    out["majority_agreement"] = grouped["agrees"].sum() / out["n_majority_compared"].where(
        out["n_majority_compared"] > 0)
    if ground_truth is not None:
        out["n_ground_truth"] = grouped["has_truth"].sum().astype("int64")
        out["ground_truth_agreement"] = grouped["truth_match"].sum() / out[
            "n_ground_truth"].where(out["n_ground_truth"] > 0)
    else:
        out["n_ground_truth"] = 0
        out["ground_truth_agreement"] = np.nan
    return out.reset_index()
