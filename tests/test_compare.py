"""``compare``: statistics against independent computations, error consistency, model-vs-human
input, psychometric recovery, outputs and bad input."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from avmit_psych.analysis import accuracy as A
from avmit_psych.analysis import consistency as EC
from avmit_psych.analysis import psychometric as PF
from avmit_psych.analysis.compare import run_comparison, write_comparison
from avmit_psych.analysis.observers import load_observations
from avmit_psych.dataset import synthetic
from avmit_psych.dataset.schema import DatasetError

TOL = 1e-6


def write_study(root, trials, predictions):
    humans, models = root / "humans", root / "models"
    humans.mkdir(parents=True, exist_ok=True)
    models.mkdir(parents=True, exist_ok=True)
    for p, rows in trials.groupby("participant"):
        rows.to_csv(humans / f"sub-{p}_ses-1_task-classify_beh.csv", index=False)
    for m, rows in predictions.groupby("model"):
        rows.to_csv(models / f"{m}.csv", index=False)
    return humans, models


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    trials, predictions = synthetic.simulate_comparison(8, 3, 540, seed=4)
    root = tmp_path_factory.mktemp("study")
    humans, models = write_study(root, trials, predictions)
    return {"trials": trials, "predictions": predictions, "humans": humans, "models": models}


@pytest.fixture(scope="module")
def result(study):
    obs = load_observations([study["humans"]], [study["models"]])
    return run_comparison(obs, n_boot=200, seed=1, psychometric=False)


# --------------------------------------------------------------------------------------------
# 1. statistics = independent computations
# --------------------------------------------------------------------------------------------
def test_wilson_interval_equals_scipy():
    for k, n in [(0, 10), (3, 10), (10, 10), (37, 56), (555, 556), (1, 1000)]:
        lo, hi = A.wilson_interval(k, n)
        ref = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        assert abs(lo - ref.low) < TOL and abs(hi - ref.high) < TOL, (k, n)


def test_accuracy_table_counts_every_observer_and_condition(study, result):
    acc = result.accuracy
    t = study["trials"]
    for (p, cond), rows in t.assign(
            condition=[f"{m}={float(l):g}" if l != "" else m
                       for m, l in zip(t["manipulation"], t["level"])]
    ).groupby(["participant", "condition"]):
        row = acc[(acc["observer"] == p) & (acc["condition"] == cond)].iloc[0]
        assert row["n_trials"] == len(rows)
        assert row["n_correct"] == rows["correct"].sum()
        lo, hi = A.wilson_interval(row["n_correct"], row["n_trials"])
        assert row["ci_low"] == pytest.approx(lo) and row["ci_high"] == pytest.approx(hi)
    assert set(acc["observer_type"]) == {"human", "model"}
    assert len(acc) == (8 + 3) * 27


def test_summary_single_case_tests_and_cis_equal_scipy_and_statsmodels(result, study):
    """Humans' descriptives vs scipy; each model's Crawford-Howell t vs scipy's two-sample
    t-test with the model as a sample of one; Holm vs statsmodels; the model's percentile."""
    from statsmodels.stats.multitest import multipletests
    acc, summary = result.accuracy, result.summary
    humans = acc[acc["observer_type"] == "human"]
    models = acc[acc["observer_type"] == "model"]
    checked = 0
    for row in summary.itertuples(index=False):
        x = humans.loc[humans["condition"] == row.condition, "accuracy"].to_numpy()
        mu = models.loc[(models["observer"] == row.model) &
                        (models["condition"] == row.condition), "accuracy"].iloc[0]
        assert row.n_humans == len(x) == 8
        assert abs(row.human_mean - x.mean()) < TOL
        assert abs(row.human_sd - x.std(ddof=1)) < TOL
        assert abs(row.human_sem - stats.sem(x)) < TOL
        lo, hi = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
        assert abs(row.human_ci_low - lo) < TOL and abs(row.human_ci_high - hi) < TOL
        assert row.model_accuracy == mu
        ref = stats.ttest_ind([mu], x, equal_var=True)
        assert abs(row.t - ref.statistic) < TOL and abs(row.p - ref.pvalue) < TOL
        assert row.dof == len(x) - 1
        assert abs(row.model_percentile - 100 * stats.t.cdf(ref.statistic, len(x) - 1)) < TOL
        assert abs(row.z_cc - (mu - x.mean()) / x.std(ddof=1)) < TOL
        assert abs(row.difference - (mu - x.mean())) < TOL
        assert row.difference_ci_low <= row.difference + 1e-9 <= row.difference_ci_high + 2e-9
        checked += 1
    assert checked == 27 * 3
    for model, rows in summary.groupby("model"):
        ref = multipletests(rows["p"], method="holm")[1]
        assert np.allclose(rows["p_holm"], ref, atol=TOL)
    assert (summary["p_holm"] >= summary["p"] - 1e-12).all()
    assert summary["difference_ci_method"].str.contains("bootstrap over stimuli").all()


def greenhouse_geisser(wide: np.ndarray) -> float:
    """GG epsilon from the double-centred covariance matrix of the levels."""
    k = wide.shape[1]
    s = np.cov(wide, rowvar=False)
    c = s - s.mean(0)[None, :] - s.mean(1)[:, None] + s.mean()
    return np.trace(c) ** 2 / ((k - 1) * np.sum(c ** 2))


def test_rm_anova_equals_statsmodels(result):
    from statsmodels.stats.anova import AnovaRM
    acc = result.accuracy
    rm = result.anova[result.anova["analysis"] == "rm_anova"].set_index("manipulation")
    assert set(rm.index) == {"audio_noise", "visual_noise", "av_offset"}
    for manip in rm.index:
        data = acc[(acc["observer_type"] == "human") & (acc["manipulation"] == manip)]
        data = data.drop(columns="level").rename(columns={"level_value": "level"})
        ref = AnovaRM(data, "accuracy", "observer", within=["level"]).fit().anova_table.iloc[0]
        row = rm.loc[manip]
        assert abs(row["F"] - ref["F Value"]) < TOL * max(1, ref["F Value"])
        assert row["ddof1"] == ref["Num DF"] and row["ddof2"] == ref["Den DF"]
        assert abs(row["p_unc"] - ref["Pr > F"]) < TOL
        wide = data.pivot(index="observer", columns="level", values="accuracy").to_numpy()
        eps = greenhouse_geisser(wide)
        assert abs(row["eps"] - eps) < TOL
        p_gg = stats.f.sf(row["F"], eps * row["ddof1"], eps * row["ddof2"])
        assert abs(row["p_GG_corr"] - p_gg) < TOL


def test_no_anova_treats_models_as_subjects(result):
    """Models are single cases (summary.csv), never subjects of an ANOVA."""
    assert set(result.anova["analysis"]) == {"rm_anova"}
    assert result.anova["n_subjects"].eq(8).all()


# --------------------------------------------------------------------------------------------
# 2. error consistency
# --------------------------------------------------------------------------------------------
def test_kappa_formula_on_a_hand_example():
    a = np.array([1, 1, 1, 0, 0, 1, 0, 1, 1, 1], bool)
    b = np.array([1, 1, 0, 0, 1, 1, 0, 1, 1, 0], bool)
    r = EC.pair_consistency(a, b)
    p1, p2 = 0.7, 0.6
    c_obs = 7 / 10  # agree on trials 1,2,4,6,7,8,9
    c_exp = p1 * p2 + (1 - p1) * (1 - p2)
    assert r["observed"] == pytest.approx(c_obs)
    assert r["expected"] == pytest.approx(c_exp)
    assert r["kappa"] == pytest.approx((c_obs - c_exp) / (1 - c_exp))


def test_an_observer_with_itself_gives_one(study):
    t = study["trials"]
    one = t[t["participant"] == "S01"]
    twin = one.assign(participant="S01_twin")
    obs = load_observations_from_frames(pd.concat([one, twin]))
    pairs = EC.error_consistency(obs.trials, observer_type="observer_type", n_boot=100)
    assert len(pairs) == 27
    assert (pairs["kappa"] == 1.0).all()
    assert (pairs["ci_low"] == 1.0).all() and (pairs["ci_high"] == 1.0).all()
    assert EC.pair_consistency([True] * 5, [True] * 5)["kappa"] == 1.0


def load_observations_from_frames(trials, predictions=None):
    import tempfile
    from pathlib import Path
    tmp = Path(tempfile.mkdtemp())
    humans, models = write_study(tmp, trials, predictions if predictions is not None
                                 else pd.DataFrame(columns=["model"]))
    return load_observations([humans], [models] if predictions is not None else [])


def test_independent_observers_have_kappa_near_zero():
    rng = np.random.default_rng(11)
    kappas = []
    for _ in range(100):
        a, b = rng.random(1000) < 0.7, rng.random(1000) < 0.7
        kappas.append(EC.pair_consistency(a, b)["kappa"])
    assert abs(np.mean(kappas)) < 0.05
    # the same through the matrix path: 20 independent observers, 190 pairs
    correct = rng.random((20, 1000)) < 0.7
    pairs = EC.condition_consistency(correct, np.ones_like(correct), [f"o{i}" for i in
                                     range(20)], ["human"] * 20, "c", n_boot=0)
    assert abs(pairs["kappa"].mean()) < 0.05


def test_matrix_path_equals_pairwise_computation_and_ci_holds_kappa(study):
    obs = load_observations([study["humans"]], [study["models"]])
    pairs = EC.error_consistency(obs.trials, observer_type="observer_type", n_boot=200,
                                 seed=3)
    t = obs.trials
    for row in pairs.sample(40, random_state=0).itertuples(index=False):
        a = t[(t["observer"] == row.observer_a) & (t["condition"] == row.condition)]
        b = t[(t["observer"] == row.observer_b) & (t["condition"] == row.condition)]
        m = a.merge(b, on="stimulus_id")
        ref = EC.pair_consistency(m["correct_x"], m["correct_y"])
        assert row.n_trials == ref["n_trials"] == 20
        assert abs(row.kappa - ref["kappa"]) < 1e-9
        assert abs(row.observed - ref["observed"]) < 1e-9
        assert row.ci_low <= row.kappa + 1e-6 and row.kappa - 1e-6 <= row.ci_high
    assert set(pairs["pair_type"]) == {"human-human", "human-model", "model-model"}
    assert len(pairs) == 27 * (11 * 10 // 2)


def test_shuffling_trial_order_changes_nothing(study):
    obs = load_observations([study["humans"]], [study["models"]])
    shuffled = obs.trials.sample(frac=1, random_state=5).reset_index(drop=True)
    a = EC.error_consistency(obs.trials, n_boot=100, seed=2)
    b = EC.error_consistency(shuffled, n_boot=100, seed=2)
    pd.testing.assert_frame_equal(a, b)


def test_unmatched_stimuli_are_counted_and_reported(study, tmp_path):
    t = study["trials"]
    p = study["predictions"]
    # S02 misses 5 of the 'none' stimuli; model_02 has 3 extra stimuli nobody else saw
    none_ids = t.loc[(t["participant"] == "S02") & (t["manipulation"] == "none"),
                     "stimulus_id"].iloc[:5]
    t2 = t[~((t["participant"] == "S02") & t["stimulus_id"].isin(none_ids))]
    extra = p[(p["model"] == "model_02") & (p["manipulation"] == "none")].iloc[:3].copy()
    extra["stimulus_id"] = extra["stimulus_id"] + "_extra"
    p2 = pd.concat([p, extra])
    humans, models = write_study(tmp_path, t2, p2)
    obs = load_observations([humans], [models])
    res = run_comparison(obs, n_boot=50, psychometric=False)
    pairs = res.pairs[res.pairs["condition"] == "none"].set_index(["observer_a", "observer_b"])
    assert pairs.loc[("S01", "S02"), "n_unmatched"] == 5
    assert pairs.loc[("S01", "S02"), "n_trials"] == 15
    assert pairs.loc[("S02", "model_02"), "n_unmatched"] == 5 + 3
    assert pairs.loc[("S01", "S03"), "n_unmatched"] == 0
    assert np.isfinite(pairs.loc[("S01", "S02"), "ci_low"])   # resampled on its own
    assert any("no partner trial" in n for n in res.notes)
    files = write_comparison(res, tmp_path / "out")
    assert "no partner trial on the same stimulus" in files["report.md"].read_text()


# --------------------------------------------------------------------------------------------
# 3. model-vs-human raw data
# --------------------------------------------------------------------------------------------
def test_model_vs_human_layout_gives_subject_accuracies_and_kappa(tmp_path):
    images = [f"n0{i}_img{i}.png" for i in range(8)]
    category = ["airplane", "bear", "bird", "boat", "car", "cat", "dog", "oven"]
    correct = {  # per subject and condition: which of the 8 images were answered right
        "subject-01": {"0": [1, 1, 1, 1, 1, 1, 0, 0], "3": [1, 0, 1, 0, 1, 0, 0, 0]},
        "subject-02": {"0": [1, 1, 1, 1, 1, 0, 1, 0], "3": [1, 1, 0, 0, 1, 0, 0, 1]},
    }
    for s_i, (subj, by_cond) in enumerate(correct.items(), start=1):
        rows, trial = [], 0
        for cond, right in by_cond.items():
            for img, cat, r in zip(images, category, right):
                trial += 1
                rows.append({"subj": subj, "Session": 1, "trial": trial, "rt": 950.5,
                             "object_response": cat if r else "clock", "category": cat,
                             "condition": cond,
                             "imagename": f"{trial:04d}_cop_s{s_i:02d}_{cond}_{img}"})
        # the two subjects saw the images in different orders (different trial prefixes)
        df = pd.DataFrame(rows).sample(frac=1, random_state=s_i)
        df.to_csv(tmp_path / f"cop_subject-{s_i:02d}_session_1.csv", index=False)
    obs = load_observations([tmp_path], [])
    res = run_comparison(obs, n_boot=0, psychometric=False)
    acc = res.accuracy.set_index(["observer", "condition"])["accuracy"]
    for subj, by_cond in correct.items():
        for cond, right in by_cond.items():
            assert acc[(f"cop:{subj}", f"cop={float(cond):g}")] == pytest.approx(np.mean(right))
    pairs = res.pairs.set_index("condition")
    for cond in ("0", "3"):
        ref = EC.pair_consistency(np.array(correct["subject-01"][cond], bool),
                                  np.array(correct["subject-02"][cond], bool))
        row = pairs.loc[f"cop={float(cond):g}"]
        assert row["n_trials"] == 8 and row["n_unmatched"] == 0
        assert row["kappa"] == pytest.approx(ref["kappa"])
        assert row["pair_type"] == "human-human"
    # condition "0": c_obs 6/8, p1 = p2 = .75 -> c_exp .625, kappa 1/3
    assert pairs.loc["cop=0", "kappa"] == pytest.approx(1 / 3)


# --------------------------------------------------------------------------------------------
# 4. psychometric fits
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("manipulation,levels,true_threshold", [
    ("audio_noise", [-20, -15, -10, -5, 0, 5, 10], -8.0),
    ("visual_noise", [0, 16, 32, 48, 64, 96, 128], 60.0),
])
def test_fits_recover_simulated_thresholds_within_10_percent(manipulation, levels,
                                                             true_threshold):
    rng = np.random.default_rng(21)
    sign, thr, sigma = synthetic.COMPARISON_OBSERVER[manipulation]
    assert thr == true_threshold
    errors = []
    for observer in range(5):
        x = np.repeat(levels, int(np.ceil(2000 / len(levels))))[:2000]
        stim = pd.DataFrame({"manipulation": manipulation, "level": x})
        p = synthetic.psychometric_p_correct(stim, lapse=0.03)
        correct = rng.random(len(x)) < p
        fit = PF.fit(PF.block_data(x, correct), guess=1 / 16,
                     decreasing=sign < 0, overdispersion=False)
        errors.append(abs(fit["threshold"] - true_threshold) / abs(true_threshold))
        assert fit["threshold_ci_low"] <= fit["threshold"] <= fit["threshold_ci_high"]
        assert 0 <= fit["lapse"] < 0.1
    assert max(errors) < 0.10, errors


def test_fast_priors_and_sigmoid_give_psignifits_own_fit():
    import psignifit
    rng = np.random.default_rng(2)
    levels = np.array([-20, -15, -10, -5, 0, 5, 10.0])
    p = 1 / 16 + (1 - 1 / 16 - 0.03) * stats.norm.cdf((levels + 8) / 4)
    n = np.full(len(levels), 120)
    data = np.c_[levels, rng.binomial(n, p), n]
    for overdispersion in (True, False):
        ours = PF.fit(data, guess=1 / 16, overdispersion=overdispersion)
        kw = dict(experiment_type="nAFC", experiment_choices=16, sigmoid="norm",
                  verbose=False)
        if not overdispersion:
            kw["fixed_parameters"] = {"eta": 0.0}
        ref = psignifit.psignifit(data, **kw)
        assert ours["threshold"] == pytest.approx(ref.parameter_estimate["threshold"], abs=1e-9)
        assert ours["width"] == pytest.approx(ref.parameter_estimate["width"], abs=1e-9)
        assert ours["lapse"] == pytest.approx(ref.parameter_estimate["lambda"], abs=1e-9)
        lo, hi = ref.confidence_intervals["threshold"]["0.95"]
        assert ours["threshold_ci_low"] == pytest.approx(lo, abs=1e-9)
        assert ours["threshold_ci_high"] == pytest.approx(hi, abs=1e-9)


def test_decreasing_fit_keeps_the_guess_rate_at_the_bottom():
    x = np.array([0, 16, 32, 48, 64, 96, 128.0])
    stim = pd.DataFrame({"manipulation": "visual_noise", "level": x})
    p = synthetic.psychometric_p_correct(stim, lapse=0.02)
    data = np.c_[x, np.round(p * 400), np.full(len(x), 400)]
    fit = PF.fit(data, guess=1 / 16, decreasing=True, overdispersion=False)
    row = {**fit, "direction": "decreasing", "level_transform": ""}
    curve = PF.predict(x, row)
    assert curve[0] == pytest.approx(p[0], abs=0.03)
    assert curve[-1] == pytest.approx(p[-1], abs=0.03)
    assert np.all(np.diff(curve) < 0)


def test_fit_all_covers_observers_and_groups(study):
    obs = load_observations([study["humans"]], [study["models"]])
    fits, notes = PF.fit_all(obs.trials, workers=1)
    assert not notes
    per = fits[fits["fit"] == "observer"]
    assert len(per) == 3 * (8 + 3)
    groups = fits[fits["fit"] == "group"]
    assert set(groups["observer"]) == {"humans", "models"}
    humans = groups[(groups["observer"] == "humans")].set_index("manipulation")
    assert humans.loc["audio_noise", "threshold"] == pytest.approx(-8, abs=2)
    assert humans.loc["visual_noise", "threshold"] == pytest.approx(60, abs=10)
    assert humans.loc["av_offset", "level_transform"] == "abs"
    assert (fits["guess_rate"] == 1 / 16).all()


# --------------------------------------------------------------------------------------------
# outputs and the command line
# --------------------------------------------------------------------------------------------
def test_compare_command_writes_every_output(study, tmp_path, cli):
    out = tmp_path / "cmp"
    r = cli("analysis", ["compare", "--humans", study["humans"], "--models", study["models"],
                         "--out", out, "--bootstrap", "100", "--workers", "2"])
    assert r.code == 0, r.err
    names = {p.name for p in out.iterdir()}
    assert names == {"accuracy.csv", "summary.csv", "anova.csv", "error_consistency.csv",
                     "error_consistency_summary.csv", "confusions.csv",
                     "confusion_correlations.csv", "psychometric.csv", "accuracy.png",
                     "error_consistency.png", "confusions.png", "psychometric.png",
                     "report.md"}
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    report = (out / "report.md").read_text()
    for figure in ("accuracy.png", "error_consistency.png", "confusions.png",
                   "psychometric.png"):
        assert f"]({figure})" in report
    assert "8 human observer(s), 3 model(s)" in report
    assert "humans with models: mean kappa" in report
    assert "Holm" in report and "F(" in report and "Crawford & Howell" in report
    for model in ("model_01", "model_02", "model_03"):
        assert f"- **{model}**: below the humans in" in report
    assert "none" in r.out and "error consistency (mean kappa)" in r.out
    conf = pd.read_csv(out / "confusions.csv")
    assert set(conf["group"]) == {"humans", "models", "model_01", "model_02", "model_03"}
    assert conf.groupby(["group", "label"])["proportion"].sum().round(9).eq(1).all()
    corr = pd.read_csv(out / "confusion_correlations.csv")
    assert (corr["r_all"] > 0.9).all()   # shared class-specific confusions in the simulation
    summary = pd.read_csv(out / "error_consistency_summary.csv")
    allc = summary[summary["condition"] == "all"].set_index("pair_type")
    # kappa is averaged over each pair's conditions, then over pairs
    assert allc.loc["human-human", "n_pairs"] == 28
    assert allc.loc["human-model", "n_pairs"] == 24
    assert allc.loc["model-model", "n_pairs"] == 3
    assert allc["mean_kappa"].between(0.05, 0.6).all()  # shared stimulus difficulty


def test_one_side_only(study, tmp_path, cli):
    r = cli("analysis", ["compare", "--humans", study["humans"], "--out", tmp_path / "h",
                         "--bootstrap", "0", "--no-psychometric"])
    assert r.code == 0, r.err
    pairs = pd.read_csv(tmp_path / "h" / "error_consistency.csv")
    assert set(pairs["pair_type"]) == {"human-human"}
    summary = pd.read_csv(tmp_path / "h" / "summary.csv")
    assert summary["model"].isna().all() and summary["n_humans"].eq(8).all()
    r = cli("analysis", ["compare", "--models", study["models"], "--out", tmp_path / "m",
                         "--bootstrap", "0", "--no-psychometric"])
    assert r.code == 0, r.err
    pairs = pd.read_csv(tmp_path / "m" / "error_consistency.csv")
    assert set(pairs["pair_type"]) == {"model-model"} and len(pairs) == 27 * 3


def test_our_trials_files_drop_practice_and_repeats(study, tmp_path):
    t = study["trials"][study["trials"]["participant"].isin(["S01", "S02"])].copy()
    t["repeat"] = False
    practice = t[t["participant"] == "S01"].iloc[:4].assign(block="practice")
    again = t[t["participant"] == "S01"].iloc[10:12].assign(repeat=True, correct=False)
    failed = t[t["participant"] == "S02"].iloc[:1]
    t = t.assign(error="")
    t.loc[failed.index, "error"] = "decoder stalled"
    full = pd.concat([practice.assign(error=""), t, again.assign(error="")])
    humans, _ = write_study(tmp_path, full, pd.DataFrame(columns=["model"]))
    obs = load_observations([humans])
    n = obs.trials.groupby("observer").size()
    assert n["S01"] == 540 and n["S02"] == 539
    assert any("playback failed" in w for w in obs.warnings)


# --------------------------------------------------------------------------------------------
# bad input: one line, exit 2, nothing written
# --------------------------------------------------------------------------------------------
def _bad_cases(study, tmp_path):
    t, p = study["trials"], study["predictions"]
    s1 = t[t["participant"] == "S01"]
    m1 = p[p["model"] == "model_01"]
    cases = {
        "missing column": (s1.drop(columns="correct"), m1, "no column 'correct'"),
        "not true/false": (s1.assign(correct=s1["correct"].map({True: "yes!", False: "no"})),
                           m1, "is not true/false"),
        "no shared stimulus": (s1, m1.assign(stimulus_id=m1["stimulus_id"] + "_other"),
                               "no stimulus was seen by both a human and a model"),
        "labels differ": (s1, m1.assign(label=m1["label"].str.upper(),
                                        response=m1["response"].str.upper(),
                                        stimulus_id=m1["stimulus_id"])
                          , "labelled"),
        "duplicated trial": (pd.concat([s1, s1.iloc[:1]]), m1,
                             "has 2 trials of stimulus"),
    }
    out = {}
    for name, (h, m, message) in cases.items():
        root = tmp_path / name.replace(" ", "_")
        (root / "h").mkdir(parents=True)
        (root / "m").mkdir()
        h.to_csv(root / "h" / "sub-S01_ses-1_task-classify_beh.csv", index=False)
        m.to_csv(root / "m" / "model_01.csv", index=False)
        out[name] = (root, message)
    return out


def test_bad_input_is_one_line_exit_2_and_writes_nothing(study, tmp_path, cli):
    for name, (root, message) in _bad_cases(study, tmp_path).items():
        r = cli("analysis", ["compare", "--humans", root / "h" /
                             "sub-S01_ses-1_task-classify_beh.csv", "--models", root / "m",
                             "--out", root / "out", "--bootstrap", "0"])
        assert r.code == 2, (name, r.out, r.err)
        assert message in r.err, (name, r.err)
        assert r.err.count("\n") == 1 and r.err.startswith("error: "), (name, r.err)
        assert not (root / "out").exists(), name
        assert not list(root.glob(".out.staging-*")), name


def test_labels_that_differ_between_sides_are_an_error(study):
    t, p = study["trials"], study["predictions"]
    s1 = t[t["participant"] == "S01"]
    m1 = p[p["model"] == "model_01"]
    renamed = m1.assign(label=m1["label"].str.upper(), response=m1["response"].str.upper(),
                        stimulus_id=m1["stimulus_id"] + "_m")
    with pytest.raises(DatasetError, match="the humans' labels and the models' labels differ"):
        load_observations_from_frames(s1, renamed)


def test_a_condition_missing_for_a_model_is_a_warning_in_the_report(study, tmp_path):
    t, p = study["trials"], study["predictions"]
    p2 = p[~((p["model"] == "model_03") & (p["manipulation"] == "semantic_swap"))]
    humans, models = write_study(tmp_path, t, p2)
    obs = load_observations([humans], [models])
    assert any("model_03 has no trials in condition(s) semantic_swap" in w
               for w in obs.warnings)
    res = run_comparison(obs, n_boot=0, psychometric=False)
    row = res.summary[(res.summary["model"] == "model_03") &
                      (res.summary["condition"] == "semantic_swap")].iloc[0]
    assert np.isnan(row["model_accuracy"]) and np.isnan(row["p"])
    files = write_comparison(res, tmp_path / "out")
    assert "model_03 has no trials in condition(s) semantic_swap" in \
        files["report.md"].read_text()


def test_wrong_side_and_unknown_files(study, tmp_path):
    with pytest.raises(DatasetError, match="pass it with --models"):
        load_observations([study["models"] / "model_01.csv"])
    with pytest.raises(DatasetError, match="pass it with --humans"):
        load_observations([], [next(study["humans"].glob("*.csv"))])
    odd = tmp_path / "odd"
    odd.mkdir()
    pd.DataFrame({"a": [1]}).to_csv(odd / "notes.csv", index=False)
    with pytest.raises(DatasetError, match="no column"):
        load_observations([odd / "notes.csv"])
    # inside a folder an unrelated CSV is skipped with a warning
    for f in study["humans"].glob("*.csv"):
        (odd / f.name).write_bytes(f.read_bytes())
    obs = load_observations([odd])
    assert any("notes.csv: skipped" in w for w in obs.warnings)
    assert len(obs.humans) == 8


def test_humans_and_models_on_disjoint_stimuli_is_an_error(study):
    t, p = study["trials"], study["predictions"]
    two = t[t["participant"].isin(["S01", "S02"])]
    m1 = p[p["model"] == "model_01"]
    with pytest.raises(DatasetError, match="no stimulus was seen by both a human and a model"):
        load_observations_from_frames(two, m1.assign(stimulus_id=m1["stimulus_id"] + "_m"))


def test_simulated_and_fitted_directions_come_from_one_table():
    from avmit_psych.experiments.human_vs_dnn import PSYCHOMETRIC_DIRECTION
    for manipulation, (sign, _, _) in synthetic.COMPARISON_OBSERVER.items():
        assert sign == PSYCHOMETRIC_DIRECTION[manipulation]
        assert PF.DIRECTIONS[manipulation].startswith(
            "increasing" if sign > 0 else "decreasing")
    assert PF.DIRECTIONS["av_offset"] == "decreasing_abs"


def test_fits_in_worker_processes_equal_fits_done_here(study):
    obs = load_observations([study["humans"]], [study["models"]])
    here, _ = PF.fit_all(obs.trials, workers=1)
    workers, _ = PF.fit_all(obs.trials, workers=2)
    pd.testing.assert_frame_equal(here, workers)
