"""Simulated observers on one stimulus suite: humans' trials and models' predictions in the
data contracts' columns, from psychometric observers who share item difficulty (so errors are
consistent beyond chance).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .. import schema

#: The default suite's conditions (stimuli/suites/avmit_test_960.yaml), as (manipulation, level)
COMPARISON_CONDITIONS = (
    [("none", "")]
    + [("av_offset", v) for v in (-400, -200, -100, -50, 0, 50, 100, 200, 400)]
    + [("audio_noise", v) for v in (10, 5, 0, -5, -10, -15, -20)]
    + [("visual_noise", v) for v in (0, 8, 16, 32, 64, 96, 128)]
    + [("semantic_swap", ""), ("audio_only", ""), ("visual_only", "")])
#: P(correct) = gamma + (1 - gamma - lapse) Phi(sign (level - threshold) / sigma) for
#: numeric manipulations: (sign, mean threshold, sigma), the sign being the way the
#: manipulation makes a stimulus easier (``experiments.human_vs_dnn.PSYCHOMETRIC_DIRECTION``,
#: av_offset over |ms|); other conditions: a base accuracy
COMPARISON_OBSERVER = {"audio_noise": (1.0, -8.0, 4.0), "visual_noise": (-1.0, 60.0, 18.0),
                       "av_offset": (-1.0, 900.0, 400.0)}
COMPARISON_BASE = {"none": 0.92, "semantic_swap": 0.80, "audio_only": 0.75,
                   "visual_only": 0.85}


def comparison_stimuli(n_stimuli: int, *, classes=schema.TEST_CLASSES,
                       conditions=COMPARISON_CONDITIONS) -> pd.DataFrame:
    """A suite of ``n_stimuli`` spread evenly over ``conditions`` and classes:
    ``stimulus_id, label, manipulation, level``."""
    per = int(np.ceil(n_stimuli / len(conditions)))
    rows = [(f"{classes[i % len(classes)]}/{classes[i % len(classes)]}_{i // len(classes) + 1}"
             f"__{m}{'' if level == '' else f'_{level:+g}'}", classes[i % len(classes)], m,
             level) for m, level in conditions for i in range(per)]
    return pd.DataFrame(rows[:n_stimuli], columns=list(schema.STIMULUS_COLUMNS))


def psychometric_p_correct(stimuli: pd.DataFrame, *, threshold_shift: float = 0.0,
                           lapse: float = 0.02, guess: float = 1 / 16,
                           base_shift: float = 0.0) -> np.ndarray:
    """P(correct) of a simulated observer for each stimulus (:data:`COMPARISON_OBSERVER`);
    ``threshold_shift`` moves every threshold by that many of its own sigmas (+ = worse)."""
    from scipy.stats import norm
    p = np.empty(len(stimuli))
    manip = stimuli["manipulation"].to_numpy()
    level = pd.to_numeric(stimuli["level"], errors="coerce").to_numpy(float)
    for m in np.unique(manip):
        sel = manip == m
        if m in COMPARISON_OBSERVER:
            sign, thr, sigma = COMPARISON_OBSERVER[m]
            x = np.abs(level[sel]) if m == "av_offset" else level[sel]
            z = sign * (x - (thr + sign * threshold_shift * sigma)) / sigma
            p[sel] = guess + (1 - guess - lapse) * norm.cdf(z)
        else:
            p[sel] = np.clip(COMPARISON_BASE.get(m, 0.85) + base_shift, guess, 1 - lapse)
    return p


def simulate_comparison(n_humans: int = 8, n_models: int = 2, n_stimuli: int = 540, *,
                        seed: int = 0, item_effect: float = 1.0,
                        classes=schema.TEST_CLASSES) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Humans' trials and models' predictions on one suite (the data contracts' columns).

    Each observer is a psychometric observer (:func:`psychometric_p_correct`) with its own
    threshold shift and lapse rate; models are shifted to worse noise thresholds. Stimulus
    difficulty (``item_effect`` SD on the probit scale) is shared, so errors are consistent
    beyond chance; wrong answers go to a class-specific confusable class most of the time.
    Returns (trials, predictions); trials are in each participant's own random order.
    """
    from scipy.stats import norm
    rng = np.random.default_rng([int(seed), 83])
    stim = comparison_stimuli(n_stimuli, classes=classes)
    label_index = pd.Index(classes).get_indexer(stim["label"])
    difficulty = rng.normal(0, item_effect, len(stim)) if item_effect else np.zeros(len(stim))
    confusable = rng.permutation(len(classes))
    classes_arr = np.asarray(classes, dtype=object)

    def respond(p, r):
        z = norm.ppf(np.clip(p, 1e-6, 1 - 1e-6)) - difficulty
        correct = r.random(len(stim)) < norm.cdf(z)
        wrong = np.where(r.random(len(stim)) < 0.6, confusable[label_index],
                         r.integers(0, len(classes), len(stim)))
        wrong = np.where(wrong == label_index, (label_index + 1) % len(classes), wrong)
        response = np.where(correct, label_index, wrong)
        return classes_arr[response], response == label_index

    humans = []
    for h in range(n_humans):
        r = np.random.default_rng([int(seed), 89, h])
        p = psychometric_p_correct(stim, threshold_shift=r.normal(0, 0.4),
                                   lapse=r.uniform(0.01, 0.06), base_shift=r.normal(0, 0.03))
        response, correct = respond(p, r)
        order = r.permutation(len(stim))
        t = stim.assign(participant=f"S{h + 1:02d}", session=1, task="classify",
                        block="main", response=response, correct=correct,
                        rt=np.round(r.lognormal(np.log(0.9), 0.3, len(stim)), 3)).iloc[order]
        humans.append(t.assign(trial=np.arange(1, len(stim) + 1)))
    models = []
    for m in range(n_models):
        r = np.random.default_rng([int(seed), 97, m])
        p = psychometric_p_correct(stim, threshold_shift=1.0 + r.normal(0, 0.3), lapse=0.01,
                                   base_shift=r.normal(0.02, 0.03))
        response, correct = respond(p, r)
        models.append(stim.assign(model=f"model_{m + 1:02d}", response=response,
                                  correct=correct))
    trial_cols, pred_cols = list(schema.TRIALS_REQUIRED), list(schema.PREDICTIONS_COLUMNS)
    trials = pd.concat(humans, ignore_index=True)[trial_cols] if humans else \
        pd.DataFrame(columns=trial_cols)
    predictions = pd.concat(models, ignore_index=True)[pred_cols] if models else \
        pd.DataFrame(columns=pred_cols)
    return trials, predictions
