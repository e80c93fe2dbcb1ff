"""Psychometric floors and ceilings for one-modality noise (issue 15).

A cue-integrating observer (Ernst & Banks 2002) with auditory noise falls back on vision, not to
chance: ``audio_noise`` is fitted with its floor at the observer's ``visual_only`` accuracy,
``visual_noise`` at its ``audio_only`` accuracy, and, with such a floor, the lapse rate's prior
comes from the clean (``none``) trials. Checked against independent computations: the floor is
the share correct of the unimodal trials (a mean), the threshold is the level at which the
simulated observer's exact P(correct) (:meth:`CueIntegrationObserver.p_correct`) is half-way
between its unimodal and its clean accuracy (solved with ``scipy.optimize.brentq``), and the
Beta prior equals ``scipy.stats.beta.pdf``.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

from avmit_psych.analysis import psychometric as PF
from avmit_psych.experiments import cue_integration as C

AUDIO_LEVELS = (0, 5, 10, 15, 20, 25, 30)          # dB SNR
VISUAL_LEVELS = (16, 32, 48, 64, 80, 96, 128)       # pixel SD
OBSERVER = C.CueIntegrationObserver(1, audio_d_prime_max=2.0, visual_d_prime_max=2.2,
                                    audio_snr50_db=13.0, audio_snr_slope_db=4.0,
                                    visual_noise_sd50=64.0, visual_noise_slope_sd=16.0,
                                    lapse=0.02)


def _trials(p_correct: dict, n: int, *, observer="P01", kind="human", seed=5,
            task="classify", exact=False) -> pd.DataFrame:
    """``n`` trials per (manipulation, level) with the given P(correct): counts drawn
    binomially (``exact``: round(n p)); the columns compare's trials have."""
    rng = np.random.default_rng(seed)
    frames = []
    for (manipulation, level), p in p_correct.items():
        correct = np.zeros(n, bool)
        correct[:int(round(n * p)) if exact else rng.binomial(n, p)] = True
        frames.append(pd.DataFrame({
            "observer": observer, "observer_type": kind, "task": task,
            "manipulation": manipulation, "correct": correct,
            "level_value": np.nan if level is None else float(level)}))
    return pd.concat(frames, ignore_index=True)


def _observer_conditions(observer=OBSERVER) -> dict:
    conditions = {(m, None): observer.p_correct(m, "")
                  for m in ("none", "audio_only", "visual_only")}
    conditions.update({("audio_noise", x): observer.p_correct("audio_noise", x)
                       for x in AUDIO_LEVELS})
    conditions.update({("visual_noise", x): observer.p_correct("visual_noise", x)
                       for x in VISUAL_LEVELS})
    return conditions


def _share(trials, manipulation) -> float:
    return float(trials.loc[trials["manipulation"] == manipulation, "correct"].mean())


def test_the_floor_is_the_other_modality_and_the_threshold_is_recovered():
    trials = _trials(_observer_conditions(), 2000)
    fits, notes = PF.fit_all(trials)
    assert notes == []
    fits = fits.set_index("manipulation")
    audio, visual = fits.loc["audio_noise"], fits.loc["visual_noise"]
    # the floors: the unimodal condition of the OTHER modality, its share correct
    assert audio["floor"] == "visual_only" and visual["floor"] == "audio_only"
    assert audio["guess_rate"] == _share(trials, "visual_only")
    assert visual["guess_rate"] == _share(trials, "audio_only")
    assert audio["floor_n_trials"] == visual["floor_n_trials"] == 2000
    assert (fits["ceiling"] == "none").all() and (fits["ceiling_n_trials"] == 2000).all()
    # the top of the function is the clean accuracy (0.85), not 1 - a small lapse rate
    assert 1 - audio["lapse"] == pytest.approx(_share(trials, "none"), abs=0.02)
    # the threshold: where the observer's exact P(correct) is half-way between the other
    # modality alone and clean AV
    p = OBSERVER.p_correct
    half_a = (p("visual_only", "") + p("none", "")) / 2
    half_v = (p("audio_only", "") + p("none", "")) / 2
    true_a = optimize.brentq(lambda x: p("audio_noise", x) - half_a, 0, 30)
    true_v = optimize.brentq(lambda x: p("visual_noise", x) - half_v, 16, 128)
    assert audio["threshold"] == pytest.approx(true_a, abs=1.0)       # dB
    assert visual["threshold"] == pytest.approx(true_v, abs=4.0)      # pixel SD
    assert audio["threshold_ci_low"] < audio["threshold"] < audio["threshold_ci_high"]
    assert visual["threshold_ci_low"] < visual["threshold"] < visual["threshold_ci_high"]
    # with the floor at chance the same data put the auditory threshold below the tested
    # range: the extrapolation the unimodal floor removes
    rows = trials[trials["manipulation"] == "audio_noise"]
    at_chance = PF.fit(PF.block_data(rows["level_value"], rows["correct"]), guess=1 / 16,
                       overdispersion=False)
    assert at_chance["threshold"] < min(AUDIO_LEVELS)


def test_without_unimodal_trials_the_floor_is_chance():
    conditions = {k: v for k, v in _observer_conditions().items()
                  if k[0] not in ("audio_only", "visual_only")}
    fits, _ = PF.fit_all(_trials(conditions, 400))
    assert (fits["floor"] == "chance").all() and (fits["guess_rate"] == 1 / 16).all()
    assert (fits["floor_n_trials"] == 0).all() and (fits["ceiling"] == "default").all()
    four_way, _ = PF.fit_all(_trials(conditions, 400), n_choices=4)
    assert (four_way["guess_rate"] == 0.25).all()


def test_an_observer_that_does_not_fall_back_on_the_other_modality_gets_chance():
    """Accuracy at the worst SNR near chance although vision alone gives 0.8: nearer chance
    than the unimodal accuracy, so chance is its floor (a floor of 0.8 would sit above all
    of its noisy data)."""
    conditions = {("none", None): 0.95, ("visual_only", None): 0.8, ("audio_only", None): 0.7}
    conditions.update({("audio_noise", x): 1 / 16 + (0.95 - 1 / 16) * stats.norm.cdf((x - 15) / 5)
                       for x in AUDIO_LEVELS})
    fits, _ = PF.fit_all(_trials(conditions, 300))
    row = fits.set_index("manipulation").loc["audio_noise"]
    assert row["floor"] == "chance" and row["guess_rate"] == 1 / 16
    assert row["ceiling"] == "default"
    assert row["threshold"] == pytest.approx(15, abs=2)


def test_a_group_floor_pools_the_observers_unimodal_trials():
    a = _trials(_observer_conditions(), 300, observer="P01", seed=1)
    weaker = dataclasses.replace(OBSERVER, visual_d_prime_max=1.6)
    b = _trials(_observer_conditions(weaker), 300, observer="P02", seed=2)
    fits, _ = PF.fit_all(pd.concat([a, b], ignore_index=True))
    rows = fits[fits["manipulation"] == "audio_noise"].set_index("observer")
    assert rows.loc["P01", "guess_rate"] == _share(a, "visual_only")
    assert rows.loc["P02", "guess_rate"] == _share(b, "visual_only")
    pooled = (a.loc[a["manipulation"] == "visual_only", "correct"].sum() +
              b.loc[b["manipulation"] == "visual_only", "correct"].sum()) / 600
    assert rows.loc["humans", "fit"] == "group"
    assert rows.loc["humans", "guess_rate"] == pytest.approx(pooled, abs=1e-12)
    assert rows.loc["humans", "floor_n_trials"] == 600


def test_no_fit_when_one_modality_alone_is_as_good_as_both():
    conditions = {("none", None): 0.7, ("visual_only", None): 0.75, ("audio_only", None): 0.4}
    conditions.update({("audio_noise", x): 0.72 for x in AUDIO_LEVELS})
    fits, notes = PF.fit_all(_trials(conditions, 100, observer="P07", exact=True))
    assert "audio_noise" not in set(fits["manipulation"])
    assert len(notes) == 1 and notes[0].startswith("audio_noise, P07: no psychometric fit")
    assert "visual_only accuracy (0.750, 100 trials)" in notes[0]
    assert "clean stimuli (0.700, 100 trials)" in notes[0]


def test_correspondence_levels_of_one_answer_key_are_not_fitted():
    conditions = {("audio_noise", x): 0.5 + 0.4 * stats.norm.cdf((x - 15) / 5)
                  for x in AUDIO_LEVELS}
    same_only = _trials(conditions, 200, task="correspondence").assign(label="same")
    fits, notes = PF.fit_all(same_only)
    assert fits.empty and len(notes) == 1 and "d' per condition" in notes[0]
    # both answer keys at every level: the share correct is a fair measure, fitted at 1/2
    mixed = same_only.assign(label=np.where(np.arange(len(same_only)) % 2, "same",
                                            "different"))
    fits, notes = PF.fit_all(mixed)
    assert notes == [] and (fits["guess_rate"] == 0.5).all()
    assert (fits["floor"] == "chance").all()


@pytest.mark.parametrize("a,b", [(1.0, 10.0), (6.0, 28.0), (33.0, 1.0), (2.5, 2.5)])
def test_the_lapse_prior_is_the_beta_density(a, b):
    x = np.linspace(-0.1, 1.1, 121)
    np.testing.assert_allclose(PF._beta_pdf(a, b)(x), stats.beta.pdf(x, a, b),
                               rtol=1e-9, atol=1e-12)
