"""Simulated participants answer correctly with the probability they are configured with.

Issue 12 point 5: an observer that is right with probability p and otherwise picks any of the
16 classes is right with p + (1 - p) / 16 (0.71875 at p = 0.7). Each test below simulates
enough trials that the binomial tolerance (4 standard errors: a false failure about once in
16,000 runs) is well short of the old value, and says so in an assertion of its own.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from avmit_psych.dataset.schema import TEST_CLASSES
from avmit_psych.experiments import annotation as A
from avmit_psych.experiments import human_vs_dnn as H

N_TRIALS = 50_000
N_SE = 4.0


def _check_rate(observed: float, expected: float, old: float, n: int) -> None:
    tolerance = N_SE * math.sqrt(expected * (1 - expected) / n)
    assert abs(old - expected) > 2 * tolerance, "the test cannot tell the old behaviour apart"
    assert abs(observed - expected) < tolerance, (observed, expected, tolerance)
    assert abs(observed - old) > tolerance, (observed, old)


def test_simulated_observer_is_right_with_its_accuracy():
    p = 0.7
    obs = H.SimulatedObserver(11, accuracy=p)
    stims = [{"label": TEST_CLASSES[i % 16], "manipulation": "none", "level": ""}
             for i in range(N_TRIALS)]
    answers = [obs.respond("classify", s) for s in stims]
    right = np.mean([a == s["label"] for a, s in zip(answers, stims)])
    _check_rate(right, p, p + (1 - p) / 16, N_TRIALS)
    # wrong answers: spread over the other 15 classes, never the right one
    wrong = [(a, s["label"]) for a, s in zip(answers, stims) if a != s["label"]]
    barking_wrong = {a for a, label in wrong if label == "barking"}
    assert barking_wrong == set(TEST_CLASSES) - {"barking"}


def test_simulated_observer_correspondence_accuracy():
    p = 0.7
    obs = H.SimulatedObserver(12, accuracy=p)
    stim = {"label": "barking", "manipulation": "none", "level": ""}
    right = np.mean([obs.respond("correspondence", stim) == "same" for _ in range(N_TRIALS)])
    _check_rate(right, p, p + (1 - p) / 2, N_TRIALS)


def test_simulated_observer_rejects_an_accuracy_that_is_not_a_probability():
    with pytest.raises(ValueError, match="accuracy"):
        H.SimulatedObserver(1, accuracy=1.2)


def test_psychometric_observer_adds_no_second_guess_rate():
    """Far below threshold P(correct) is the function's own guess rate, 1/16: the old wrong
    answers drawn from all 16 classes would have made it 1/16 + (15/16) / 16."""
    obs = H.PsychometricObserver(5, functions={"audio_noise": (10.0, 4.0)}, lapse=0.05)
    stim = {"label": "tapping", "manipulation": "audio_noise", "level": -60.0}
    p = obs.p_correct("audio_noise", -60.0)
    assert p == pytest.approx(1 / 16, abs=1e-9)
    right = np.mean([obs.respond("classify", stim) == "tapping" for _ in range(N_TRIALS)])
    _check_rate(right, p, p + (1 - p) / 16, N_TRIALS)
    # base accuracy of a condition without levels is the probability of a correct answer too
    obs = H.PsychometricObserver(6, base_accuracy={"none": 0.7})
    stim = {"label": "tapping", "manipulation": "none", "level": ""}
    right = np.mean([obs.respond("classify", stim) == "tapping" for _ in range(N_TRIALS)])
    _check_rate(right, 0.7, 0.7 + 0.3 / 16, N_TRIALS)


def test_simulated_rater_gives_the_true_rating_with_its_accuracy():
    p = 0.7
    rater = A.SimulatedRater(13, accuracy=p)
    truth = [1 + i % 3 for i in range(N_TRIALS)]
    ratings = [rater.rating_for(t) for t in truth]
    right = np.mean([r == t for r, t in zip(ratings, truth)])
    _check_rate(right, p, p + (1 - p) / 3, N_TRIALS)
    assert {r for r, t in zip(ratings, truth) if t == 2 and r != t} == {1, 3}
    assert {rater.rating_for(None) for _ in range(200)} == {1, 2, 3}
    with pytest.raises(ValueError, match="accuracy"):
        A.SimulatedRater(1, accuracy=-0.1)
