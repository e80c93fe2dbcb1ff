"""The headphone screen: the Huggins-pitch stimulus checked in the spectrum, balanced trial
lists, scoring and the attempt rule, the config keys, and one session under Xvfb.

The Huggins band is written here as Milne et al. (2021) state it (600 Hz +- 6 %: 564-636 Hz),
not imported, so that the stimulus is checked against the paper and not against itself.
"""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from avmit_psych.dataset.schema import TEST_CLASSES, DatasetError
from avmit_psych.experiments import headphones as HP
from avmit_psych.experiments import human_vs_dnn as H
from tests.conftest import REPO

SCRIPT = REPO / "experiments" / "human_vs_dnn.py"
BAND_HZ = (564.0, 636.0)         # Milne et al. (2021): 600 Hz +- 6 %
INTERVAL_S, GAP_S = 1.0, 1.0     # their huggins_3AFC.m: 1-s noises, 1-s silences


def _intervals(audio, sample_rate_hz):
    """The three noise intervals of a Huggins trial, each (n, 2), and the gaps between."""
    n, gap = int(INTERVAL_S * sample_rate_hz), int(GAP_S * sample_rate_hz)
    assert audio.shape == (3 * n + 2 * gap, 2)
    starts = [k * (n + gap) for k in range(3)]
    gaps = [audio[s + n:s + n + gap] for s in starts[:2]]
    return [audio[s:s + n] for s in starts], gaps


def _spectra(interval, sample_rate_hz):
    """rFFT of each channel with the onset/offset ramp (the same in both ears) divided out,
    and the bins' frequencies."""
    n = len(interval)
    ramp = HP.raised_cosine_ramp(n, round(0.010 * sample_rate_hz))
    left, right = (np.fft.rfft(interval[:, c] / ramp) for c in (0, 1))
    return left, right, np.fft.rfftfreq(n, 1 / sample_rate_hz)


# -- the stimulus (acceptance: identical outside the band, inverted inside it) ---------------
@pytest.mark.parametrize("sample_rate_hz", [48_000, 44_100])
@pytest.mark.parametrize("target", [1, 2, 3])
def test_huggins_channels_identical_outside_band_inverted_inside(target, sample_rate_hz):
    audio = HP.huggins_audio(target, sample_rate_hz=sample_rate_hz, seed=11)
    intervals, gaps = _intervals(audio, sample_rate_hz)
    assert all(not g.any() for g in gaps)                    # silent gaps
    for position, interval in enumerate(intervals, start=1):
        left, right, f = _spectra(interval, sample_rate_hz)
        scale = np.sqrt(np.mean(np.abs(left) ** 2))           # RMS bin magnitude
        band = (f >= BAND_HZ[0]) & (f <= BAND_HZ[1])
        assert band.sum() == 73                               # 1-Hz bins, edges included
        if position == target:
            assert np.abs(left - right)[~band].max() < 1e-9 * scale      # same outside
            assert np.abs(left + right)[band].max() < 1e-9 * scale       # L = -R inside
            assert np.abs(left[band]).min() > 1e-3 * scale               # and not empty
        else:                                                 # diotic: same in every bin
            np.testing.assert_array_equal(interval[:, 0], interval[:, 1])
            assert np.abs(left - right).max() < 1e-9 * scale


def test_huggins_ramps_level_and_no_cue_in_either_ear_alone():
    audio = HP.huggins_audio(2, seed=3)
    intervals, _ = _intervals(audio, 48_000)
    for interval in intervals:
        # 10-ms raised-cosine ramps: starts and ends near silence, full level after 10 ms
        assert np.abs(interval[[0, -1]]).max() < 1e-4
        ramp = HP.raised_cosine_ramp(len(interval), 480)
        assert ramp[480:-480].min() == 1.0 and ramp[:480].max() < 1.0
        for c in (0, 1):  # every interval, either ear: the Woods -6 dB tone's RMS
            steady = interval[480:-480, c]
            rms = np.sqrt(np.mean((interval[:, c] / ramp) ** 2))
            assert rms == pytest.approx(0.3 / np.sqrt(2) * 10 ** (-6 / 20), rel=1e-9)
            assert np.sqrt(np.mean(steady ** 2)) == pytest.approx(rms, rel=0.05)
    left, right, _ = _spectra(intervals[1], 48_000)
    np.testing.assert_allclose(np.abs(right), np.abs(left), rtol=1e-9, atol=1e-9)
    assert np.abs(audio).max() < 0.75                          # far from clipping


def test_huggins_odd_interval_is_the_target():
    for target in (1, 2, 3):
        intervals, _ = _intervals(HP.huggins_audio(target, seed=target), 48_000)
        differs = [not np.array_equal(i[:, 0], i[:, 1]) for i in intervals]
        assert differs == [p == target for p in (1, 2, 3)]
        assert HP.huggins_answer(target) == str(target)
        assert HP.huggins_order(target).index("huggins") + 1 == target
    # three independent noises per trial, and a seed fixes them
    a = HP.huggins_audio(1, seed=5)
    np.testing.assert_array_equal(a, HP.huggins_audio(1, seed=5))
    first, second, third = _intervals(a, 48_000)[0]
    assert not np.allclose(second, third)
    assert not np.allclose(a, HP.huggins_audio(1, seed=6))
    with pytest.raises(ValueError, match="1, 2 or 3"):
        HP.huggins_audio(4)


def test_check_huggins_audio_refuses_broken_stimuli():
    good = HP.huggins_audio(2, seed=1)
    HP.check_huggins_audio(good, 2)
    with pytest.raises(ValueError, match=r"interval 1 \(the target\) is not inverted "
                                         "between channels inside 564-636 Hz"):
        HP.check_huggins_audio(good, 1)                # the shift is not where it is said
    with pytest.raises(ValueError, match="interval 2 should be diotic"):
        HP.check_huggins_audio(good, 3)
    antiphase = good.copy()
    antiphase[:, 1] *= -1                              # inverted everywhere, not in the band
    with pytest.raises(ValueError):
        HP.check_huggins_audio(antiphase, 2)
    with pytest.raises(ValueError, match="clip"):
        HP.check_huggins_audio(good * 3, 2)


def test_huggins_trials_balanced_and_seeded():
    for seed in range(20):
        targets = HP.huggins_trials(seed)
        assert sorted(targets) == [1, 1, 2, 2, 3, 3]
        assert targets == HP.huggins_trials(seed)
    orders = {tuple(HP.huggins_trials(s)) for s in range(20)}
    assert len(orders) > 5                              # the order varies with the seed
    assert HP.huggins_trials(4, attempt=2) != HP.huggins_trials(4) or \
        HP.huggins_trials(5, attempt=2) != HP.huggins_trials(5)
    counts = np.bincount(HP.huggins_trials(0, 8), minlength=4)[1:]
    assert sorted(counts) == [2, 3, 3]                  # as even as 8 trials allow


# -- scoring and the attempt rule --------------------------------------------------------------
def _answer(screen, n_wrong=0):
    """Answer the current attempt: the first ``n_wrong`` trials wrong, the rest right."""
    rows, first = [], screen.next_trial()
    while (trial := screen.next_trial()) is not None and \
            (trial.test, trial.attempt) == (first.test, first.attempt):
        wrong = str(trial.target % 3 + 1)
        rows.append(screen.record(wrong if len(rows) < n_wrong else trial.answer, 0.7))
    return rows


def _huggins(**cfg):
    return HP.HeadphoneScreen(HP.read_headphone_config({"headphone_check": "huggins", **cfg}),
                              seed=3)


def test_huggins_six_of_six_passes():
    screen = _huggins()
    rows = _answer(screen)
    assert len(rows) == 6 and all(r["correct"] for r in rows)
    assert screen.status == "passed" and screen.scores == {"huggins": [6]}
    assert screen.next_trial() is None
    assert [r["target"] for r in rows] == HP.huggins_trials(3)
    assert set(rows[0]) == set(HP.HEADPHONE_COLUMNS) - {"participant", "session"}
    assert rows[0]["test"] == "huggins" and rows[0]["attempt"] == 1 and rows[0]["rt"] == 0.7
    with pytest.raises(RuntimeError, match="passed"):
        screen.record("1")


def test_huggins_five_of_six_starts_a_fresh_second_attempt():
    screen = _huggins()
    first = _answer(screen, n_wrong=1)
    assert sum(r["correct"] for r in first) == 5 and screen.status == "running"
    trial = screen.next_trial()
    assert (trial.test, trial.attempt, trial.trial) == ("huggins", 2, 1)
    second = _answer(screen)
    assert screen.status == "passed" and screen.scores == {"huggins": [5, 6]}
    assert {r["stimulus_seed"] for r in first}.isdisjoint(r["stimulus_seed"] for r in second)
    assert [r["attempt"] for r in first + second] == [1] * 6 + [2] * 6


def test_huggins_fails_after_the_last_attempt():
    screen = _huggins()
    _answer(screen, n_wrong=1)
    _answer(screen, n_wrong=1)
    assert screen.status == "failed" and screen.scores == {"huggins": [5, 5]}
    assert screen.next_trial() is None


def test_huggins_five_of_six_fails_with_one_attempt():
    screen = _huggins(headphone_attempts=1)
    _answer(screen, n_wrong=1)
    assert screen.status == "failed" and screen.next_trial() is None


def test_pass_mark_and_attempts_follow_the_config():
    screen = _huggins(headphone_pass={"huggins": 5})
    _answer(screen, n_wrong=1)
    assert screen.status == "passed"
    screen = _huggins(headphone_attempts=3)
    for _ in range(3):
        assert screen.status == "running"
        _answer(screen, n_wrong=2)
    assert screen.status == "failed" and screen.scores == {"huggins": [4, 4, 4]}


def test_woods_passes_with_five_of_six_in_one_attempt():
    screen = HP.HeadphoneScreen(HP.read_headphone_config({"headphone_check": "woods"}), seed=1)
    rows = _answer(screen, n_wrong=1)
    assert screen.status == "passed"
    assert [r["order"] for r in rows] == ["-".join(o) for o in H.headphone_trials(1)]
    screen = HP.HeadphoneScreen(HP.read_headphone_config({"headphone_check": "woods"}), seed=1)
    _answer(screen, n_wrong=2)
    assert screen.status == "failed"                    # one attempt by default


def test_both_runs_woods_then_huggins_and_needs_both():
    screen = HP.HeadphoneScreen(HP.read_headphone_config({}), seed=2)   # default: both
    assert screen.config.tests == ("woods", "huggins")
    woods = _answer(screen)
    assert {r["test"] for r in woods} == {"woods"} and screen.status == "running"
    _answer(screen, n_wrong=1)
    _answer(screen, n_wrong=1)
    assert screen.status == "failed" and screen.scores == {"woods": [6], "huggins": [5, 5]}
    # failing Woods ends the screen: Huggins is not run
    screen = HP.HeadphoneScreen(HP.read_headphone_config({"headphone_check": "both"}), seed=2)
    _answer(screen, n_wrong=2)
    assert screen.status == "failed" and screen.scores == {"woods": [4], "huggins": []}
    screen = HP.HeadphoneScreen(HP.read_headphone_config({"headphone_check": "both"}), seed=2)
    _answer(screen)
    _answer(screen)
    assert screen.status == "passed" and screen.scores == {"woods": [6], "huggins": [6]}


def test_replay_keeps_used_attempts_and_refuses_other_trials():
    screen = _huggins()
    rows = _answer(screen, n_wrong=1) + [screen.record(screen.next_trial().answer, 0.5)]
    resumed = _huggins()
    resumed.replay([{k: str(v) for k, v in r.items()} for r in rows])   # as read from the CSV
    trial = resumed.next_trial()
    assert (trial.attempt, trial.trial) == (2, 2) and resumed.scores == {"huggins": [5, 1]}
    with pytest.raises(DatasetError, match="row 1 .*woods attempt 1 trial 1, but the "
                                           "configured screen expects huggins attempt 1"):
        _huggins().replay([{"test": "woods", "attempt": "1", "trial": "1", "response": "1"}],
                          path="hp.csv")


def test_trials_play_their_stimuli():
    screen = HP.HeadphoneScreen(seed=0)
    woods = screen.next_trial()
    np.testing.assert_array_equal(woods.audio(), H.headphone_audio(woods.order))
    _answer(screen)
    huggins = screen.next_trial()
    np.testing.assert_array_equal(huggins.audio(), HP.huggins_audio(
        huggins.target, seed=huggins.stimulus_seed))


# -- the config keys ---------------------------------------------------------------------------
@pytest.mark.parametrize("value, tests", [
    ("woods", ("woods",)), ("huggins", ("huggins",)), ("both", ("woods", "huggins")),
    ("Both", ("woods", "huggins")), (True, ("woods", "huggins")),   # old configs: true
    (False, ()), (None, ()), ("none", ()), ("off", ())])
def test_headphone_check_values(value, tests):
    config = HP.read_headphone_config({"headphone_check": value})
    assert config.tests == tests and config.enabled == bool(tests)
    assert HP.read_headphone_config({}).tests == ("woods", "huggins")   # the default
    assert HP.read_headphone_config({}).passes == {"woods": 5, "huggins": 6}
    assert HP.read_headphone_config({}).attempts == {"woods": 1, "huggins": 2}


@pytest.mark.parametrize("cfg, message", [
    ({"headphone_check": "wood"}, "cfg.yaml, column 'headphone_check': 'headphone_check' must "
                                  "be one of woods, huggins, both or false (no screen), got "
                                  "'wood'"),
    ({"headphone_check": 2}, "'headphone_check' must be one of woods, huggins, both"),
    ({"headphone_pass": 7}, "'headphone_pass' must be a whole number from 1 to 6, got 7"),
    ({"headphone_pass": {"huggins": 0}}, "'headphone_pass.huggins' must be a whole number "
                                         "from 1 to 6, got 0"),
    ({"headphone_pass": {"wood": 5}}, "unknown test 'wood' in 'headphone_pass'"),
    ({"headphone_attempts": 0}, "'headphone_attempts' must be a whole number >= 1, got 0"),
    ({"headphone_attempts": "2"}, "'headphone_attempts' must be a whole number >= 1, got '2'"),
    ({"headphone_attempts": True}, "'headphone_attempts' must be a whole number >= 1")])
def test_bad_headphone_config_is_one_line_naming_the_key(cfg, message):
    with pytest.raises(DatasetError) as err:
        HP.read_headphone_config(cfg, path="cfg.yaml")
    assert message in str(err.value) and "\n" not in str(err.value)
    assert "experiments/human_vs_dnn.yaml" in str(err.value)


def test_the_shipped_config_runs_both():
    cfg = yaml.safe_load((REPO / "experiments" / "human_vs_dnn.yaml").read_text())
    config = HP.read_headphone_config(cfg)
    assert config.tests == ("woods", "huggins")
    assert config.passes == {"woods": 5, "huggins": 6}
    assert config.attempts == {"woods": 1, "huggins": 2}


def test_woods_names_still_importable_from_human_vs_dnn():
    assert H.headphone_trials is HP.woods_trials and H.headphone_audio is HP.woods_audio
    assert H.headphone_answer is HP.woods_answer
    assert (H.HEADPHONE_TONE_HZ, H.HEADPHONE_TONE_S, H.HEADPHONE_GAP_S, H.HEADPHONE_TRIALS,
            H.HEADPHONE_PASS) == (200.0, 1.0, 0.5, 6, 5)


# -- one session under Xvfb --------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_demo_suite(tmp_path_factory):
    """A 3-clip demo suite (the script's built-in one is 48 stimuli): the script uses
    ``<data-dir>/demo_suite/suite/manifest.csv`` when it is there."""
    from avmit_psych.dataset import synthetic
    root = tmp_path_factory.mktemp("probe_clips")
    csv = synthetic.write_probe_clips(root / "videos", root / "test_set.csv", per_class=1,
                                      classes=TEST_CLASSES[:3])
    clips = pd.read_csv(csv, keep_default_na=False)
    return pd.DataFrame({"stimulus_id": [f"probe{i}" for i in range(len(clips))],
                         "path": [str(root / "videos" / p) for p in clips["new_filename"]],
                         "label": clips["AVMIT_label"], "manipulation": "none", "level": ""})


@pytest.mark.skipif(not os.environ.get("DISPLAY"),
                    reason="needs a display: run under xvfb-run (scripts/test.sh)")
def test_session_runs_woods_then_huggins_and_records_both(small_demo_suite, tmp_path):
    cfg = yaml.safe_load((REPO / "experiments" / "human_vs_dnn.yaml").read_text())
    cfg["headphone_check"] = "both"
    config = tmp_path / "hvd.yaml"
    config.write_text(yaml.safe_dump(cfg))
    data = tmp_path / "data"
    (data / "demo_suite" / "suite").mkdir(parents=True)
    small_demo_suite.to_csv(data / "demo_suite" / "suite" / "manifest.csv", index=False)
    shots = tmp_path / "shots"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--participant", "P01", "--session", "1",
                           "--simulate", "2", "--fast", "--windowed", "--data-dir", str(data),
                           "--config", str(config), "--screenshots", str(shots)],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.splitlines()[-1].startswith("complete: data in ")
    assert (data / "sub-P01_ses-1_classify-status.txt").read_text() == "complete\n"
    hp = pd.read_csv(data / "sub-P01_ses-1_task-headphonecheck_beh.csv", dtype=str,
                     keep_default_na=False)
    assert list(hp.columns) == HP.HEADPHONE_COLUMNS
    assert hp["test"].tolist() == ["woods"] * 6 + ["huggins"] * 6
    assert (hp["attempt"] == "1").all() and (hp["correct"] == "True").all()
    assert (hp["response"] == hp["target"]).all()
    assert sorted(hp.loc[hp["test"] == "huggins", "target"]) == ["1", "1", "2", "2", "3", "3"]
    assert (hp.loc[hp["test"] == "woods", "stimulus_seed"] == "").all()
    assert (hp.loc[hp["test"] == "huggins", "stimulus_seed"] != "").all()
    assert (data / "sub-P01_ses-1_task-headphonecheck_beh.csv.done").exists()
    rows = pd.read_csv(data / "sub-P01_ses-1_task-classify_beh.csv")
    assert sorted(rows.loc[rows["block"] == "main", "stimulus_id"].unique()) == \
        sorted(small_demo_suite["stimulus_id"])
    assert (shots / "headphone_check.png").exists() and (shots / "headphone_huggins.png").exists()
