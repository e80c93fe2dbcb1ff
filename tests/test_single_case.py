"""Models against humans as single cases (Crawford & Howell 1998), the bootstrap over stimuli,
the 16-way guess rate, and error consistency as a public function."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from avmit_psych.analysis import consistency as EC
from avmit_psych.analysis import psychometric as PF
from avmit_psych.analysis import single_case as SC
from avmit_psych.analysis.compare import run_comparison, write_comparison
from avmit_psych.analysis.observers import load_observations
from avmit_psych.dataset import synthetic
from avmit_psych.dataset.schema import DatasetError


# --------------------------------------------------------------------------------------------
# Crawford & Howell
# --------------------------------------------------------------------------------------------
def test_crawford_howell_equals_the_published_worked_example():
    """Crawford & Howell (1998), p. 483: a score of 33 against 15 controls with mean 50 and
    SD 10: t(14) = -1.646, one-tailed p = .061, i.e. about 6.1% of the control population
    would score lower."""
    half_range = 10 * np.sqrt(14 / 2)                  # mean 50, SD 10 with 15 controls
    controls = [50 - half_range] + [50] * 13 + [50 + half_range]
    assert np.mean(controls) == pytest.approx(50) and np.std(controls, ddof=1) == \
        pytest.approx(10)
    r = SC.crawford_howell(33, controls, alternative="less")
    assert round(r["t"], 3) == -1.646
    assert r["dof"] == 14
    assert round(r["p"], 3) == 0.061
    assert round(r["percentile"], 1) == 6.1
    assert r["z_cc"] == pytest.approx(-1.7)
    two = SC.crawford_howell(33, controls)
    assert two["p"] == pytest.approx(2 * r["p"])
    assert SC.crawford_howell(33, controls, alternative="greater")["p"] == \
        pytest.approx(1 - r["p"])


def test_crawford_howell_equals_a_two_sample_t_test_with_a_sample_of_one():
    rng = np.random.default_rng(0)
    for n in (3, 5, 12, 40):
        controls = rng.normal(0.7, 0.08, n)
        case = rng.normal(0.6, 0.1)
        r = SC.crawford_howell(case, controls)
        ref = stats.ttest_ind([case], controls)
        assert r["t"] == pytest.approx(ref.statistic, abs=1e-12)
        assert r["p"] == pytest.approx(ref.pvalue, abs=1e-12)
        assert r["dof"] == n - 1


def test_crawford_howell_edge_cases():
    assert np.isnan(SC.crawford_howell(0.5, [0.6])["t"])           # one control: no test
    same = SC.crawford_howell(0.5, [0.5, 0.5, 0.5])
    assert np.isnan(same["p"]) and same["percentile"] == 50
    assert SC.crawford_howell(0.9, [0.5, 0.5])["percentile"] == 100
    with pytest.raises(ValueError):
        SC.crawford_howell(0.5, [0.4, 0.6], alternative="below")


@pytest.fixture(scope="module")
def small_study():
    trials, predictions = synthetic.simulate_comparison(6, 2, 270, seed=11)
    t = trials.rename(columns={"participant": "observer"}).assign(observer_type="human")
    p = predictions.rename(columns={"model": "observer"}).assign(observer_type="model")
    both = pd.concat([t, p], ignore_index=True)
    both["condition"] = [f"{m}={float(v):g}" if v != "" else m
                         for m, v in zip(both["manipulation"], both["level"])]
    both["level_value"] = pd.to_numeric(both["level"], errors="coerce")
    return both


def test_difference_bootstrap_resamples_stimuli_as_a_direct_loop_does(small_study):
    data = small_study[small_study["condition"] == "audio_noise=-5"]
    n_boot, seed, conf = 300, 4, 0.9
    out = SC.model_vs_humans(data, n_boot=n_boot, seed=seed, confidence=conf)
    stimuli = np.sort(data["stimulus_id"].unique())
    import zlib
    rng = np.random.default_rng([seed, zlib.crc32(b"audio_noise=-5")])
    draws = rng.integers(0, len(stimuli), size=(n_boot, len(stimuli)))
    humans = sorted(data.loc[data["observer_type"] == "human", "observer"].unique())
    for model in sorted(data.loc[data["observer_type"] == "model", "observer"].unique()):
        diffs = []
        for d in draws:
            chosen = pd.Series(stimuli[d]).value_counts()
            w = data["stimulus_id"].map(chosen).fillna(0)
            acc = (data["correct"] * w).groupby(data["observer"]).sum() / \
                w.groupby(data["observer"]).sum()
            diffs.append(acc[model] - acc[humans].mean())
        lo, hi = np.percentile(diffs, [5, 95])
        row = out[out["model"] == model].iloc[0]
        assert row["difference_ci_low"] == pytest.approx(lo, abs=1e-12)
        assert row["difference_ci_high"] == pytest.approx(hi, abs=1e-12)
        assert row["n_stimuli"] == len(stimuli)
        assert row["difference_ci_method"] == \
            "percentile bootstrap over stimuli (300 resamples, 90%)"


def test_compare_report_tests_each_model_as_a_single_case(tmp_path):
    trials, predictions = synthetic.simulate_comparison(6, 3, 270, seed=2)
    humans, models = tmp_path / "h", tmp_path / "m"
    humans.mkdir()
    models.mkdir()
    for p, rows in trials.groupby("participant"):
        rows.to_csv(humans / f"{p}.csv", index=False)
    for m, rows in predictions.groupby("model"):
        rows.to_csv(models / f"{m}.csv", index=False)
    obs = load_observations([humans], [models])
    res = run_comparison(obs, n_boot=100, psychometric=False)
    assert set(res.anova["analysis"]) == {"rm_anova"}            # no mixed ANOVA
    s = res.summary
    assert set(s["model"]) == {"model_01", "model_02", "model_03"}
    for row in s.itertuples(index=False):
        x = res.accuracy[(res.accuracy["observer_type"] == "human") &
                         (res.accuracy["condition"] == row.condition)]["accuracy"]
        ref = SC.crawford_howell(row.model_accuracy, x)
        assert row.t == pytest.approx(ref["t"]) and row.p == pytest.approx(ref["p"])
    report = write_comparison(res, tmp_path / "out")["report.md"].read_text()
    assert "Crawford & Howell" in report and "mixed ANOVA" not in report.lower().replace(
        "no mixed", "")
    for m in ("model_01", "model_02", "model_03"):
        assert f"- **{m}**: below the humans in" in report
    assert "the model at percentile" in report


# --------------------------------------------------------------------------------------------
# guess rate
# --------------------------------------------------------------------------------------------
def test_guess_rate_is_one_sixteenth_on_a_four_class_subset(small_study):
    subset_labels = small_study["label"].value_counts().index[:4]
    t = small_study[small_study["label"].isin(subset_labels)]
    assert t["label"].nunique() == 4
    assert PF.guess_rate(t) == 1 / 16
    fits, _ = PF.fit_all(t[t["manipulation"] == "audio_noise"])
    assert len(fits) and (fits["guess_rate"] == 1 / 16).all()
    assert PF.guess_rate(t.assign(task="correspondence")) == 0.5
    assert PF.guess_rate(t, n_choices=4) == 0.25


# --------------------------------------------------------------------------------------------
# error_consistency as a public function
# --------------------------------------------------------------------------------------------
def hand_table():
    """Two observers, two conditions, columns named as a user might name them."""
    return pd.DataFrame({
        "subj": ["a"] * 8 + ["b"] * 8,
        "image": ["i1", "i2", "i3", "i4", "j1", "j2", "j3", "j4"] * 2,
        "hit": [1, 1, 0, 0, 1, 1, 1, 0,
                1, 0, 0, 0, 1, 1, 0, 1],
        "cond": ["easy"] * 4 + ["hard"] * 4 + ["easy"] * 4 + ["hard"] * 4,
    })


def test_error_consistency_on_a_hand_made_table_equals_hand_computed_kappa():
    out = EC.error_consistency(hand_table(), observer="subj", stimulus="image", correct="hit",
                               condition="cond", n_boot=0).set_index("condition")
    # easy: a = 1100, b = 1000: c_obs 3/4, p1 .5, p2 .25, c_exp .5 -> kappa .5
    assert out.loc["easy", "observed"] == 0.75 and out.loc["easy", "expected"] == 0.5
    assert out.loc["easy", "kappa"] == pytest.approx(0.5)
    # hard: a = 1110, b = 1101: c_obs 2/4, p1 = p2 = .75, c_exp .625 -> kappa -1/3
    assert out.loc["hard", "kappa"] == pytest.approx((0.5 - 0.625) / (1 - 0.625))
    assert (out["n_trials"] == 4).all() and (out["pair_type"] == "").all()
    assert (out["ci_method"] == "none").all()
    pooled = EC.error_consistency(hand_table(), observer="subj", stimulus="image",
                                  correct="hit", condition=None, n_boot=0)
    assert len(pooled) == 1 and pooled["n_trials"].iloc[0] == 8


def test_error_consistency_names_its_interval_method_and_resamples_stimuli():
    out = EC.error_consistency(hand_table(), observer="subj", stimulus="image", correct="hit",
                               condition="cond", n_boot=500, seed=1)
    assert (out["ci_method"] == "percentile bootstrap over stimuli (500 resamples, 95%)").all()
    assert (out["ci_low"] <= out["kappa"] + 1e-9).all()
    assert (out["kappa"] <= out["ci_high"] + 1e-9).all()


def test_duplicate_trials_raise_and_repeats_keep_the_first_showing():
    t = hand_table()
    again = t.iloc[[1]].assign(hit=0)
    with pytest.raises(DatasetError, match="has 2 trials of stimulus 'i2'"):
        EC.error_consistency(pd.concat([t, again]), observer="subj", stimulus="image",
                             correct="hit", condition="cond")
    marked = pd.concat([t.assign(rep=False), again.assign(rep=True)])
    out = EC.error_consistency(marked, observer="subj", stimulus="image", correct="hit",
                               condition="cond", repeat="rep", n_boot=0)
    ref = EC.error_consistency(t, observer="subj", stimulus="image", correct="hit",
                               condition="cond", n_boot=0)
    pd.testing.assert_frame_equal(out, ref)


def test_missing_columns_and_non_boolean_correctness_are_clear_errors():
    with pytest.raises(DatasetError, match="no column 'condition'"):
        EC.error_consistency(hand_table(), observer="subj", stimulus="image", correct="hit")
    bad = hand_table().assign(hit=["yes"] + [1] * 15)
    with pytest.raises(DatasetError, match="'yes' is not true/false"):
        EC.error_consistency(bad, observer="subj", stimulus="image", correct="hit",
                             condition="cond")


def test_error_consistency_on_model_vs_human_layout_equals_the_toolbox_definition(tmp_path):
    """Raw files in the toolbox layout; the toolbox's kappa per condition on trials sorted by
    image (modelvshuman/plotting/analyses.py), against ours from the same files."""
    from tests.test_conditions import toolbox_kappa, write_toolbox_file
    rng = np.random.default_rng(17)
    codes = ["0", "30", "60", "90", "120", "150", "180"]
    truth = {s: {c: rng.random(32) < 0.95 - 0.12 * i for i, c in enumerate(codes)}
             for s in ("subject-01", "subject-02", "subject-03")}
    for i, (s, by_code) in enumerate(truth.items()):
        write_toolbox_file(tmp_path, "phase-scrambling", s, by_code, seed=i)
    raw = pd.concat([pd.read_csv(f) for f in sorted(tmp_path.glob("*.csv"))])
    raw["image_id"] = raw["imagename"].str.split("_", n=3).str[3]
    obs = load_observations([tmp_path], [])
    ours = EC.error_consistency(obs.trials, n_boot=0)
    for (a, b), rows in ours.groupby(["observer_a", "observer_b"]):
        for row in rows.itertuples(index=False):
            code = row.condition.split("=")[1]
            da = raw[(raw["subj"] == a.split(":")[1]) & (raw["condition"].astype(str) == code)]
            db = raw[(raw["subj"] == b.split(":")[1]) & (raw["condition"].astype(str) == code)]
            da, db = da.sort_values("image_id"), db.sort_values("image_id")
            assert list(da["image_id"]) == list(db["image_id"])
            ref = toolbox_kappa(da["object_response"].to_numpy() == da["category"].to_numpy(),
                                db["object_response"].to_numpy() == db["category"].to_numpy())
            assert row.kappa == pytest.approx(ref, abs=1e-12)
    assert len(ours) == 3 * len(codes)
