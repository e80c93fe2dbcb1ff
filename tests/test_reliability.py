"""Reliability statistics against published worked examples."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from avmit_psych.analysis import reliability

# Fleiss (1971), Table 1: 30 patients, each diagnosed by 6 psychiatrists into 5 categories
# (as rater x patient assignments; kappa = 0.430 in the paper).
FLEISS_1971 = np.array([
    [4, 4, 4, 4, 4, 4], [2, 2, 2, 5, 5, 5], [2, 3, 3, 3, 3, 5], [5, 5, 5, 5, 5, 5],
    [2, 2, 2, 4, 4, 4], [1, 1, 3, 3, 3, 3], [3, 3, 3, 3, 5, 5], [1, 1, 3, 3, 3, 4],
    [1, 1, 4, 4, 4, 4], [5, 5, 5, 5, 5, 5], [1, 4, 4, 4, 4, 4], [1, 2, 4, 4, 4, 4],
    [2, 2, 2, 3, 3, 3], [1, 4, 4, 4, 4, 4], [2, 2, 4, 4, 4, 5], [3, 3, 3, 3, 3, 5],
    [1, 1, 1, 4, 5, 5], [1, 1, 1, 1, 1, 2], [2, 2, 4, 4, 4, 4], [1, 3, 3, 5, 5, 5],
    [5, 5, 5, 5, 5, 5], [2, 4, 4, 4, 4, 4], [2, 2, 4, 5, 5, 5], [1, 1, 4, 4, 4, 4],
    [1, 4, 4, 4, 4, 5], [2, 2, 2, 2, 2, 4], [1, 1, 1, 1, 5, 5], [2, 2, 4, 4, 4, 4],
    [1, 3, 3, 3, 3, 3], [5, 5, 5, 5, 5, 5],
])

# Wikipedia, "Fleiss' kappa", worked example: 10 subjects, 14 raters, 5 categories;
# P-bar = 0.378, P-bar-e = 0.213, kappa = 0.210.
WIKIPEDIA_FLEISS = np.array([
    [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7],
])

# Krippendorff (2011), "Computing Krippendorff's alpha-reliability", section C: 4 observers,
# 12 units, values 1-5, missing data. Published: nominal 0.743, ordinal 0.815, interval 0.849.
NAN = np.nan
KRIPPENDORFF_2011 = np.array([
    [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, 3],
    [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NAN],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN],
])


def _assignments_to_counts(assignments, n_categories):
    counts = np.zeros((len(assignments), n_categories), dtype=int)
    for i, row in enumerate(assignments):
        for value in row:
            counts[i, int(value) - 1] += 1
    return counts


def _fleiss_by_hand(counts):
    """Fleiss (1971) equations, written out as an independent check."""
    n = counts.sum(axis=1)[0]
    p_j = counts.sum(axis=0) / counts.sum()
    p_i = (np.sum(counts ** 2, axis=1) - n) / (n * (n - 1))
    p_bar, p_e = p_i.mean(), np.sum(p_j ** 2)
    return (p_bar - p_e) / (1 - p_e)


def test_fleiss_1971_table():
    counts = _assignments_to_counts(FLEISS_1971, 5)
    kappa = reliability.fleiss_kappa(counts)
    assert round(kappa, 3) == 0.430
    assert kappa == pytest.approx(_fleiss_by_hand(counts), abs=1e-12)


def test_fleiss_wikipedia_example_from_a_dataframe():
    frame = pd.DataFrame(WIKIPEDIA_FLEISS, columns=["c1", "c2", "c3", "c4", "c5"])
    kappa = reliability.fleiss_kappa(frame, columns=frame.columns)
    assert round(kappa, 3) == 0.210


def test_fleiss_needs_equal_rating_counts():
    with pytest.raises(ValueError, match="same number of ratings"):
        reliability.fleiss_kappa(np.array([[3, 0, 0], [1, 1, 2]]))


def _krippendorff_counts():
    counts = np.zeros((KRIPPENDORFF_2011.shape[1], 5), dtype=int)
    for unit in range(KRIPPENDORFF_2011.shape[1]):
        for value in KRIPPENDORFF_2011[:, unit]:
            if not np.isnan(value):
                counts[unit, int(value) - 1] += 1
    return counts


@pytest.mark.parametrize("level, published", [("nominal", 0.743), ("ordinal", 0.815),
                                              ("interval", 0.849)])
def test_krippendorff_2011_example_from_counts(level, published):
    alpha = reliability.krippendorff_alpha(_krippendorff_counts(), columns=None, level=level)
    assert round(alpha, 3) == published


@pytest.mark.parametrize("level, published", [("nominal", 0.743), ("ordinal", 0.815)])
def test_krippendorff_2011_example_from_long_ratings(level, published):
    rows = [{"filename": f"u{unit}", "participant": f"o{obs}", "rating": int(value)}
            for obs, values in enumerate(KRIPPENDORFF_2011)
            for unit, value in enumerate(values) if not np.isnan(value)]
    alpha = reliability.krippendorff_alpha_ratings(pd.DataFrame(rows), level=level,
                                                   value_domain=(1, 2, 3, 4, 5))
    assert round(alpha, 3) == published


def test_reliability_table_on_video_ratings():
    vr = pd.DataFrame({"r1": [3, 0, 0, 1, 0], "r2": [0, 3, 0, 1, 1], "r3": [0, 0, 3, 1, 3]})
    table = reliability.reliability(vr).set_index("measure")
    # Fleiss uses the four videos with the modal 3 ratings; the 4-rating video is left out
    assert table.loc["fleiss_kappa", "n_videos"] == 4
    assert table.loc["fleiss_kappa", "value"] == pytest.approx(
        _fleiss_by_hand(vr.iloc[:4].to_numpy()))
    assert table.loc["krippendorff_alpha_ordinal", "n_videos"] == 5
    assert table.loc["krippendorff_alpha_ordinal", "n_ratings"] == 16


def test_rater_agreement_by_hand():
    raw = pd.DataFrame({
        "filename": ["a", "a", "a", "b", "b", "b", "c", "c", "c"],
        "participant": ["P1", "P2", "P3", "P1", "P2", "P3", "P1", "P2", "P3"],
        "rating": [3, 3, 1, 2, 2, 2, 1, 2, 3],
    })
    gt = pd.DataFrame({"filename": ["a", "b"], "rating": [3, 1]})
    out = reliability.rater_agreement(raw, gt).set_index("participant")
    # P3 on 'a': others (P1, P2) both gave 3 -> majority 3, P3 said 1 -> disagrees.
    # P1 on 'a': the others gave 3 and 1 -> no majority; on 'c' no two others agree either.
    assert out.loc["P1", "n_majority_compared"] == 1
    assert out.loc["P3", "n_majority_compared"] == 2
    assert out.loc["P1", "majority_agreement"] == 1.0
    assert out.loc["P3", "majority_agreement"] == 0.5
    assert out.loc["P1", "ground_truth_agreement"] == 0.5  # 'a' matches, 'b' does not
    assert out.loc["P3", "ground_truth_agreement"] == 0.0
    assert out.loc["P2", "prop_2"] == pytest.approx(2 / 3)
    assert out.loc["P1", "mean_rating"] == pytest.approx(2.0)
