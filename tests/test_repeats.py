"""Stimuli shown twice: the first showing is the measured trial, the second measures
self-consistency (reported beside the other analyses)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from avmit_psych.analysis import consistency as EC
from avmit_psych.analysis.compare import run_comparison, write_comparison
from avmit_psych.analysis.observers import load_observations
from avmit_psych.dataset import synthetic
from avmit_psych.dataset.schema import DatasetError


@pytest.fixture(scope="module")
def trials():
    t, _ = synthetic.simulate_comparison(3, 0, 270, seed=8)
    return t


def write(folder, df):
    folder.mkdir(parents=True, exist_ok=True)
    for p, rows in df.groupby("participant"):
        rows.to_csv(folder / f"sub-{p}_ses-1_task-classify_beh.csv", index=False)
    return folder


def with_repeats(t, participant, picks, *, flip, before=False):
    """Second showings of ``picks`` (row positions of the participant's trials), their
    correctness flipped where ``flip``; ``before``: the repeat row comes first in the file
    with a smaller trial number (as an older plan could order them)."""
    t = t.assign(repeat=False)
    own = t[t["participant"] == participant]
    again = own.iloc[picks].copy()
    again["repeat"] = True
    again["correct"] = np.where(flip, ~again["correct"].astype(bool), again["correct"])
    again["response"] = np.where(flip, "wrong_answer", again["response"])
    if before:
        again["trial"] = -np.arange(len(again))          # shown before the originals
        return pd.concat([again, t]), own.iloc[picks], again
    again["trial"] = own["trial"].max() + 1 + np.arange(len(again))
    return pd.concat([t, again]), own.iloc[picks], again


def test_the_first_showing_is_measured_and_the_repeat_gives_self_consistency(trials, tmp_path):
    picks = list(range(0, 40))
    flip = np.zeros(40, bool)
    flip[:10] = True
    full, originals, again = with_repeats(trials, "S01", picks, flip=flip)
    obs = load_observations([write(tmp_path / "h", full)])
    s01 = obs.trials[obs.trials["observer"] == "S01"].set_index("stimulus_id")
    assert len(s01) == 270                                 # each stimulus once
    for sid, c in zip(originals["stimulus_id"], originals["correct"]):
        assert bool(s01.loc[sid, "correct"]) == bool(c)    # the first showing's answer
    rep = obs.repeats
    assert len(rep) == 40 and set(rep["observer"]) == {"S01"}
    sc = EC.self_consistency(rep).set_index("observer")
    assert sc.loc["S01", "n_repeated"] == 40
    assert sc.loc["S01", "response_agreement"] == pytest.approx(30 / 40)
    a = originals["correct"].astype(bool).to_numpy()
    b = again["correct"].astype(bool).to_numpy()
    ref = EC.pair_consistency(a, b)
    assert sc.loc["S01", "kappa"] == pytest.approx(ref["kappa"])
    assert sc.loc["S01", "accuracy_first"] == pytest.approx(a.mean())
    res = run_comparison(obs, n_boot=0, psychometric=False)
    files = write_comparison(res, tmp_path / "out")
    assert "self_consistency.csv" in files
    report = files["report.md"].read_text()
    assert "## Self-consistency" in report and "| S01 | 40 |" in report


def test_a_repeat_shown_before_its_original_still_leaves_the_first_showing_measured(
        trials, tmp_path):
    picks = list(range(5))
    full, originals, again = with_repeats(trials, "S02", picks, flip=np.ones(5, bool),
                                          before=True)
    obs = load_observations([write(tmp_path / "h", full)])
    s02 = obs.trials[obs.trials["observer"] == "S02"].set_index("stimulus_id")
    for sid, c in zip(again["stimulus_id"], again["correct"]):
        assert bool(s02.loc[sid, "correct"]) == bool(c)    # the earlier showing counts
    assert len(obs.repeats) == 5
    assert (obs.repeats["first_response"] == "wrong_answer").all()


def test_an_unmarked_second_trial_is_still_an_error(trials, tmp_path):
    t = trials.assign(repeat=False)
    again = t[t["participant"] == "S03"].iloc[:1].copy()
    with pytest.raises(DatasetError, match="has 2 trials of stimulus"):
        load_observations([write(tmp_path / "h", pd.concat([t, again]))])
