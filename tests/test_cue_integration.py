"""The cue-integrating simulated observer (issue 15 point 3).

Acceptance: with many simulated trials, auditory noise at its worst level with clean video is
within 0.03 of visual-only accuracy, visual noise at its worst with clean audio within 0.03 of
audio-only, clean AV at least the better single modality, accuracy falls with |AV offset|
beyond the binding window toward the better unimodal accuracy, and the same seed gives the same
answers. Rates are checked within N_SE binomial standard errors (a false failure about once in
16,000 runs per check); each group comparison has 20,000 trials per condition.

Pc(d', m) is checked against values computed independently: Phi(d'/sqrt 2) for m = 2 (0.7602 at
d' = 1, Hacker & Ratcliff 1979; Macmillan & Creelman 2005), 1/m at d' = 0,
``scipy.integrate.quad``, and Monte Carlo with 400,000 simulated trials for m = 4 and 16.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

from avmit_psych.dataset.schema import DatasetError, TEST_CLASSES
from avmit_psych.experiments import cue_integration as C
from avmit_psych.experiments import human_vs_dnn as H

N_SE = 4.0
N_OBSERVERS = 20
TRIALS_PER_OBSERVER = 1_000  # x 20 observers = 20,000 trials per condition
SUITE_960 = ([("none", "")]
             + [("av_offset", v) for v in (-400, -200, -100, -50, 0, 50, 100, 200, 400)]
             + [("audio_noise", v) for v in (10, 5, 0, -5, -10, -15, -20)]
             + [("visual_noise", v) for v in (0, 8, 16, 32, 64, 96, 128)]
             + [("semantic_swap", ""), ("audio_only", ""), ("visual_only", "")])
SUITE_DEMO = ([("none", ""), ("audio_only", ""), ("visual_only", "")]
              + [("audio_noise", v) for v in (30, 20, 10, 0)]
              + [("visual_noise", v) for v in (32, 64, 128, 192)])
#: What demo_study would pass for demo_small.yaml (SNRs 30 to 0 dB): d'_A half-maximal at
#: 13 dB, the threshold its PsychometricObserver population uses today.
DEMO_POPULATION = C.CuePopulation(audio_snr50_db=(13.0, 2.5))


def _se(p: float, n: int) -> float:
    return math.sqrt(max(p * (1 - p), 1e-4) / n)


def _stimuli(conditions, per_condition: int) -> pd.DataFrame:
    rows = []
    for m, level in conditions:
        for i in range(per_condition):
            label = TEST_CLASSES[i % 16]
            donor = TEST_CLASSES[(i + 1 + i // 16 % 15) % 16] if m == "semantic_swap" else level
            rows.append({"stimulus_id": f"{label}_{i}__{m}{level}", "label": label,
                         "manipulation": m, "level": donor if m == "semantic_swap" else level})
    return pd.DataFrame(rows)


def _accuracy(trials: pd.DataFrame) -> dict:
    return {(m, str(level)): float(g["correct"].mean()) for (m, level), g in
            trials.groupby([trials["manipulation"],
                            np.where(trials["manipulation"] == "semantic_swap", "",
                                     trials["level"].astype(str))])}


@pytest.fixture(scope="module")
def group_960():
    observers = C.draw_observers(N_OBSERVERS, seed=15)
    trials = C.simulate_trials(_stimuli(SUITE_960, TRIALS_PER_OBSERVER), observers)
    return _accuracy(trials), len(trials) // len(SUITE_960)


@pytest.fixture(scope="module")
def group_demo():
    observers = C.draw_observers(N_OBSERVERS, seed=16, population=DEMO_POPULATION)
    trials = C.simulate_trials(_stimuli(SUITE_DEMO, TRIALS_PER_OBSERVER), observers)
    return _accuracy(trials), len(trials) // len(SUITE_DEMO)


# ---------------------------------------------------------------------------------------------
# Pc(d', m) and its inverse
# ---------------------------------------------------------------------------------------------
def test_pc_two_alternatives_is_phi_of_d_over_root_two():
    assert round(float(C.pc_mafc(1.0, 2)), 4) == 0.7602  # Hacker & Ratcliff 1979, M = 2
    d = np.linspace(-2, 6, 33)
    np.testing.assert_allclose(C.pc_mafc(d, 2), stats.norm.cdf(d / math.sqrt(2)), atol=1e-12)


@pytest.mark.parametrize("m", [2, 3, 4, 16, 100])
def test_pc_at_zero_sensitivity_is_chance(m):
    assert float(C.pc_mafc(0.0, m)) == pytest.approx(1 / m, abs=1e-12)


@pytest.mark.parametrize("m", [4, 16])
def test_pc_matches_quadrature(m):
    for d in (0.25, 1.0, 2.0, 2.58, 3.05, 4.0, 6.0):
        ref = integrate.quad(lambda x: stats.norm.pdf(x - d) * stats.norm.cdf(x) ** (m - 1),
                             -np.inf, np.inf, epsabs=1e-13, epsrel=1e-12)[0]
        assert float(C.pc_mafc(d, m)) == pytest.approx(ref, abs=1e-10)


@pytest.mark.parametrize("m, d", [(4, 1.0), (4, 2.0), (16, 1.5), (16, 2.58)])
def test_pc_matches_monte_carlo(m, d):
    n = 400_000
    rng = np.random.default_rng([m, int(10 * d)])
    x = rng.standard_normal((n, m))
    x[:, 0] += d
    observed = float(np.mean(x.argmax(axis=1) == 0))
    expected = float(C.pc_mafc(d, m))
    assert abs(observed - expected) < N_SE * _se(expected, n), (observed, expected)


def test_choice_probability_with_a_rival_matches_monte_carlo():
    """The swap's two-signal case: target mean 2.3, rival (the donor) 1.7, 14 others 0."""
    n, m = 400_000, 16
    rng = np.random.default_rng(7)
    x = rng.standard_normal((n, m))
    x[:, 0] += 2.3
    x[:, 1] += 1.7
    winner = x.argmax(axis=1)
    for index, (mu_t, mu_r) in ((0, (2.3, 1.7)), (1, (1.7, 2.3))):
        expected = float(C.mafc_choice_probability(mu_t, mu_r, m))
        observed = float(np.mean(winner == index))
        assert abs(observed - expected) < N_SE * _se(expected, n), (index, observed, expected)


def test_d_prime_inverts_pc():
    for m in (2, 4, 16):
        d = np.array([-0.5, 0.0, 0.5, 1.0, 2.58, 3.05, 4.5])
        np.testing.assert_allclose(C.d_prime_mafc(C.pc_mafc(d, m), m), d, atol=1e-8)
    assert float(C.d_prime_mafc(0.7602499389065233, 2)) == pytest.approx(1.0, abs=1e-9)
    for bad in (0.0, 1.0, 1.2):
        with pytest.raises(ValueError, match="strictly between 0 and 1"):
            C.d_prime_mafc(bad, 16)


# ---------------------------------------------------------------------------------------------
# Sensitivities and binding window
# ---------------------------------------------------------------------------------------------
def test_sensitivity_functions():
    assert float(C.audio_d_prime(-8.0, 2.0, -8.0, 4.0)) == pytest.approx(1.0)
    assert float(C.audio_d_prime(-20.0, 2.0, -8.0, 4.0)) < 0.01
    assert float(C.audio_d_prime(10.0, 2.0, -8.0, 4.0)) > 1.99
    assert float(C.visual_d_prime(0.0, 3.0, 64.0, 16.0)) == pytest.approx(3.0)
    assert float(C.visual_d_prime(128.0, 3.0, 64.0, 16.0)) < 0.001
    snr = np.array([10, 5, 0, -5, -10, -15, -20])
    assert np.all(np.diff(C.audio_d_prime(snr, 2.5)) < 0)
    assert np.all(np.diff(C.visual_d_prime(np.array([0, 8, 16, 32, 64, 96, 128]), 3.0)) < 0)


def test_binding_probability():
    inside = C.binding_probability(np.array([-100, -50, 0, 100, 200]), 100, 200, 25)
    np.testing.assert_array_equal(inside, 1.0)
    assert float(C.binding_probability(-125, 100, 200, 25)) == pytest.approx(math.exp(-0.5))
    assert float(C.binding_probability(225, 100, 200, 25)) == pytest.approx(math.exp(-0.5))
    assert float(C.binding_probability(400, 100, 200, 25)) == pytest.approx(math.exp(-32))
    np.testing.assert_array_equal(C.binding_probability(np.array([-101, 150, 201]), 100, 200, 0),
                                  [0.0, 1.0, 0.0])


# ---------------------------------------------------------------------------------------------
# Acceptance (issue 15 point 3), default suite and demo suite
# ---------------------------------------------------------------------------------------------
def test_audio_noise_at_worst_with_clean_video_is_visual_only(group_960, group_demo):
    for (acc, n), worst in ((group_960, "-20"), (group_demo, "0")):
        noisy, visual = acc[("audio_noise", worst)], acc[("visual_only", "")]
        assert abs(noisy - visual) <= 0.03, (worst, noisy, visual)
        # and the old failure (each condition on its own curve, clean video ignored) is gone:
        assert noisy > acc[("audio_only", "")] + 0.05


def test_visual_noise_at_worst_with_clean_audio_is_audio_only(group_960, group_demo):
    for acc, n in (group_960, group_demo):
        noisy, audio = acc[("visual_noise", "128")], acc[("audio_only", "")]
        assert abs(noisy - audio) <= 0.03, (noisy, audio)


def test_clean_av_at_least_the_better_single_modality(group_960, group_demo):
    for acc, n in (group_960, group_demo):
        both, better = acc[("none", "")], max(acc[("audio_only", "")], acc[("visual_only", "")])
        assert both >= better + N_SE * math.sqrt(2) * _se(better, n), (both, better)


def test_accuracy_falls_with_offset_beyond_the_window_toward_the_better_modality(group_960):
    acc, n = group_960
    tol = N_SE * math.sqrt(2) * _se(0.9, n)
    better = max(acc[("audio_only", "")], acc[("visual_only", "")])
    clean = acc[("none", "")]
    for inside in ("-50", "0", "50", "100"):  # well inside every person's window
        assert abs(acc[("av_offset", inside)] - clean) < tol, inside
    for far in ("-400", "400"):
        assert abs(acc[("av_offset", far)] - better) <= 0.03, far
        assert acc[("av_offset", far)] < clean - 0.05
    lead = [acc[("av_offset", v)] for v in ("0", "-100", "-200", "-400")]
    lag = [acc[("av_offset", v)] for v in ("0", "100", "200", "400")]
    for side in (lead, lag):
        assert all(b <= a + tol for a, b in zip(side, side[1:])), side


def test_expected_accuracy_falls_monotonically_past_the_window():
    obs = C.CueIntegrationObserver(3, binding_falloff_ms=100.0)
    p = [obs.p_correct({"label": "barking", "manipulation": "av_offset", "level": ms})
         for ms in (-100, -150, -200, -300, -500, -900)]
    assert all(b < a for a, b in zip(p, p[1:])), p
    assert p[0] == pytest.approx(obs.p_correct({"label": "barking", "manipulation": "none"}))
    assert p[-1] == pytest.approx(obs.p_correct({"label": "barking",
                                                 "manipulation": "visual_only"}), abs=1e-9)


# ---------------------------------------------------------------------------------------------
# Classification answers: exact probabilities, wrong answers, swaps
# ---------------------------------------------------------------------------------------------
def _one_observer_trials(conditions, n, **params):
    row = {"participant": "P01", **dataclasses.asdict(C.CueIntegrationObserver(21, **params))}
    return C.simulate_trials(_stimuli(conditions, n), pd.DataFrame([row])[["participant",
                                                                          *C.PARAMETER_COLUMNS]])


def test_answers_are_right_with_exactly_the_model_probability():
    n = 20_000
    trials = _one_observer_trials([("none", ""), ("audio_only", ""), ("av_offset", -125),
                                   ("visual_noise", 64), ("semantic_swap", "")], n)
    for m, g in trials.groupby("manipulation"):
        p = float(g["p_label"].iloc[0])
        assert g["p_label"].nunique() == 1
        assert abs(g["correct"].mean() - p) < N_SE * _se(p, n), (m, g["correct"].mean(), p)
    expected = float(C.pc_mafc(math.hypot(2.58, 3.05), 16)) * 0.97 + 0.03 / 16
    assert float(trials.loc[trials.manipulation == "none", "p_label"].iloc[0]) == \
        pytest.approx(expected, abs=1e-12)


def test_wrong_answers_are_never_right_and_mostly_confusable():
    n = 20_000
    trials = _one_observer_trials([("audio_only", "")], n)
    wrong = trials[~trials["correct"]]
    assert (wrong["response"] != wrong["label"]).all()
    confusable = np.array([r in H.CONFUSABLE_CLASSES[lab]
                           for r, lab in zip(wrong["response"], wrong["label"])])
    share = 0.8
    assert abs(confusable.mean() - share) < N_SE * _se(share, len(wrong))
    barking_wrong = set(wrong.loc[wrong["label"] == "barking", "response"])
    assert barking_wrong == set(TEST_CLASSES) - {"barking"}


def test_swap_answers_follow_the_more_reliable_cue():
    n = 20_000
    for d_audio, d_visual in ((1.5, 3.0), (3.0, 1.5)):
        trials = _one_observer_trials([("semantic_swap", "")], n, audio_d_prime_max=d_audio,
                                      visual_d_prime_max=d_visual)
        donor = trials["response"] == trials["level"]
        picture = trials["correct"]
        p_donor = float(trials["p_donor"].iloc[0])
        assert abs(donor.mean() - p_donor) < N_SE * _se(p_donor, n)
        assert (picture.mean() > donor.mean()) == (d_visual > d_audio)
        assert not (donor & picture).any()


def test_swap_without_a_named_donor_answers_some_other_class():
    obs = C.CueIntegrationObserver(5, visual_d_prime_max=0.5, audio_d_prime_max=4.0)
    stim = {"label": "barking", "manipulation": "semantic_swap", "level": ""}
    answers = [obs.respond("classify", stim) for _ in range(3000)]
    counts = pd.Series(answers).value_counts()
    assert counts.get("barking", 0) / 3000 < 0.2
    assert len(counts) >= 14  # the donor varies from trial to trial
    donor_from_path = {"label": "barking", "manipulation": "semantic_swap", "level": "",
                       "audio_source": "drumming/yt-abc_123.mp4"}
    assert pd.Series([obs.respond("classify", donor_from_path)
                      for _ in range(500)]).value_counts().index[0] == "drumming"


# ---------------------------------------------------------------------------------------------
# Correspondence
# ---------------------------------------------------------------------------------------------
def test_correspondence_degrades_with_either_modality_and_detects_swaps():
    conditions = [("none", ""), ("audio_only", ""), ("visual_only", ""), ("audio_noise", -5),
                  ("audio_noise", -20), ("visual_noise", 64), ("visual_noise", 128),
                  ("semantic_swap", "")]
    observers = C.draw_observers(10, seed=4)
    trials = C.simulate_trials(_stimuli(conditions, 800), observers, task="correspondence")
    acc, n = _accuracy(trials.assign(correct=trials["response"] == "same")), 8000
    acc[("semantic_swap", "")] = 1 - acc[("semantic_swap", "")]  # P("same") but for swaps
    # no evidence in one modality: "same" with probability Phi(-criterion) (lapses aside)
    chance = float(np.mean((1 - observers["lapse"]) * stats.norm.cdf(
        -observers["correspondence_criterion"] / C.CRITERION_NOISE_SD) + observers["lapse"] / 2))
    assert abs(chance - 0.5) < 0.1
    for unimodal in (("audio_only", ""), ("visual_only", ""), ("audio_noise", "-20"),
                     ("visual_noise", "128")):
        assert abs(acc[unimodal] - chance) < N_SE * _se(0.5, n), (unimodal, acc[unimodal])
    assert acc[("none", "")] > acc[("audio_noise", "-5")] > acc[("audio_noise", "-20")]
    assert acc[("none", "")] > acc[("visual_noise", "64")] > acc[("visual_noise", "128")]
    assert acc[("none", "")] > 0.8 and acc[("semantic_swap", "")] > 0.8
    for stim, row in zip(trials.to_dict("records"), trials.itertuples()):
        if stim["manipulation"] in ("audio_only", "visual_only"):  # no question to answer
            assert pd.isna(row.correct)
        else:
            assert row.correct == H.score("correspondence", stim, row.response)


def test_swap_detection_grows_with_both_reliabilities():
    def p_different(d_a, d_v):
        return 1 - C.correspondence_p_same(d_a, d_v, True, n_samples=40_000, seed=1)
    tol = N_SE * _se(0.5, 40_000) * math.sqrt(2)
    by_both = [p_different(d, d) for d in (0.5, 1.5, 2.5, 3.5)]
    assert all(b > a + tol for a, b in zip(by_both, by_both[1:])), by_both
    assert p_different(2.5, 1.0) + tol < p_different(2.5, 3.0)
    assert p_different(1.0, 2.5) + tol < p_different(3.0, 2.5)
    assert abs(p_different(0.0, 3.0) - 0.5) < tol  # no sound, nothing to compare


# ---------------------------------------------------------------------------------------------
# Seeds, identical answers, individual differences
# ---------------------------------------------------------------------------------------------
def _mixed_stimuli(n: int = 600) -> list[dict]:
    conditions = SUITE_960
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        m, level = conditions[rng.integers(len(conditions))]
        label = TEST_CLASSES[rng.integers(16)]
        stim = {"stimulus_id": f"s{i}", "label": label, "manipulation": m, "level": level}
        if m == "semantic_swap":
            others = [c for c in TEST_CLASSES if c != label]
            stim["level"] = others[rng.integers(15)] if i % 3 else ""
        out.append(stim)
    return out


@pytest.mark.parametrize("task", ["classify", "correspondence"])
def test_class_and_vectorised_simulation_give_identical_answers(task):
    observers = C.draw_observers(3, seed=9)
    stims = _mixed_stimuli()
    table = C.simulate_trials(pd.DataFrame(stims), observers, task=task)
    for row in observers.itertuples(index=False):
        obs = C.CueIntegrationObserver.from_row(row)
        answers, rts = [], []
        for stim in stims:
            answers.append(obs.respond(task, stim))
            rts.append(obs.rt(stim, task=task))
        mine = table[table["participant"] == row.participant]
        assert answers == mine["response"].tolist()
        assert rts == mine["rt"].tolist()
        for stim, answer, correct in zip(stims, answers, mine["correct"]):
            try:
                assert correct == H.score(task, stim, answer)
            except ValueError:  # a one-modality stimulus asks no correspondence question
                assert task == "correspondence" and pd.isna(correct)


def test_a_trial_list_runs_through_both_paths_alike():
    """What demo_study and the experiment script do: the observer answers the participant's
    trial list (practice, own order, repeats) one trial at a time."""
    manifest = _stimuli(SUITE_960, 16)
    trials = H.trial_list(manifest, "P01", seed=3, repeat_fraction=0.1, practice_n=4)
    observers = C.draw_observers(1, seed=5)
    table = C.simulate_trials(trials, observers)
    obs = C.CueIntegrationObserver.from_row(observers.iloc[0])
    assert [obs.respond("classify", s) for s in trials.to_dict("records")] == \
        table["response"].tolist()
    assert table["trial"].tolist() == list(range(1, len(trials) + 1))


def test_same_seed_same_answers_different_seed_different_answers():
    stims = _mixed_stimuli()

    def run(seed):
        obs = C.CueIntegrationObserver(seed)
        return [obs.respond("classify", s) for s in stims], [obs.rt(s) for s in stims]

    assert run(1) == run(1)
    assert run(1)[0] != run(2)[0] and run(1)[1] != run(2)[1]
    obs = C.CueIntegrationObserver(1)
    first = [obs.respond("classify", s) for s in stims]
    fresh = dataclasses.replace(obs)  # how demo_study restarts an observer's stream
    assert [fresh.respond("classify", s) for s in stims] == first
    a = C.simulate_trials(pd.DataFrame(stims), C.draw_observers(4, seed=3))
    b = C.simulate_trials(pd.DataFrame(stims), C.draw_observers(4, seed=3))
    c = C.simulate_trials(pd.DataFrame(stims), C.draw_observers(4, seed=4))
    pd.testing.assert_frame_equal(a, b)
    assert (a["response"] != c["response"]).any()


def test_individuals_differ():
    observers = C.draw_observers(12, seed=2)
    assert observers["seed"].is_unique
    for column in ("audio_d_prime_max", "visual_d_prime_max", "audio_snr50_db",
                   "audio_snr_slope_db", "visual_noise_sd50", "visual_noise_slope_sd",
                   "binding_lead_ms", "binding_lag_ms", "correspondence_criterion", "lapse",
                   "rt_median_s"):
        assert observers[column].nunique() == 12, column
    assert observers["binding_lead_ms"].mean() == pytest.approx(100, abs=25)
    assert observers["binding_lag_ms"].mean() == pytest.approx(200, abs=50)
    trials = C.simulate_trials(_stimuli([("audio_only", ""), ("visual_only", "")], 16),
                               observers)
    p = trials.groupby(["participant", "manipulation"])["p_label"].first().unstack()
    assert p["audio_only"].nunique() == 12 and p["visual_only"].nunique() == 12
    assert p["audio_only"].std() > 0.01
    pd.testing.assert_frame_equal(observers, C.draw_observers(12, seed=2))
    assert not observers["seed"].equals(C.draw_observers(12, seed=3)["seed"])


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------
def test_bad_stimuli_are_named():
    obs = C.CueIntegrationObserver(1)
    with pytest.raises(DatasetError, match="blur.*modelled"):
        obs.respond("classify", {"stimulus_id": "x", "label": "barking",
                                 "manipulation": "blur", "level": 2})
    with pytest.raises(DatasetError, match="audio_noise needs a numeric level"):
        obs.respond("classify", {"label": "barking", "manipulation": "audio_noise",
                                 "level": ""})
    with pytest.raises(DatasetError, match="not one of the 16 test classes"):
        obs.respond("classify", {"label": "yodelling", "manipulation": "none", "level": ""})
    with pytest.raises(DatasetError, match="its own label"):
        obs.respond("classify", {"label": "barking", "manipulation": "semantic_swap",
                                 "level": "barking"})
    with pytest.raises(ValueError, match="task"):
        obs.respond("identify", {"label": "barking", "manipulation": "none"})
    frame = pd.DataFrame([{"label": "barking", "manipulation": "none", "level": ""},
                          {"label": "barking", "manipulation": "contrast", "level": 0.5}])
    with pytest.raises(DatasetError, match=r"row 1 .*'manipulation'"):
        C.simulate_trials(frame, C.draw_observers(1))
    with pytest.raises(DatasetError, match="lacks"):
        C.simulate_trials(frame.iloc[:1], C.draw_observers(1).drop(columns="lapse"))
