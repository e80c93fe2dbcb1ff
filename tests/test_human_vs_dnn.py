"""The human-vs-DNN test: logic without a window, and both tasks end to end under Xvfb."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from avmit_psych.experiments import human_vs_dnn as H
from tests.conftest import REPO

SCRIPT = REPO / "experiments" / "human_vs_dnn.py"
ARTIFACTS = REPO / "test_artifacts" / "human_vs_dnn"
CONTRACT = ["participant", "session", "task", "block", "trial", "stimulus_id", "label",
            "manipulation", "level", "response", "correct", "rt"]


def test_headphone_screen_tones():
    audio = H.headphone_audio(("reference", "quiet", "antiphase"), sample_rate_hz=48000)
    n = 48000
    gap = 24000
    ref, quiet, anti = (audio[i * (n + gap): i * (n + gap) + n] for i in range(3))
    rms = lambda x: np.sqrt(np.mean(x ** 2))  # noqa: E731
    assert 20 * np.log10(rms(quiet) / rms(ref)) == pytest.approx(-6.0, abs=0.01)
    np.testing.assert_allclose(anti[:, 1], -anti[:, 0])          # antiphase between the ears
    np.testing.assert_allclose(ref[:, 1], ref[:, 0])
    assert H.headphone_answer(("antiphase", "reference", "quiet")) == "3"
    orders = H.headphone_trials(seed=1)
    assert len(orders) == 6 and sorted(H.headphone_answer(o) for o in orders) == \
        ["1", "1", "2", "2", "3", "3"]


def _manifest(n=20):
    return pd.DataFrame({"stimulus_id": [f"s{i}" for i in range(n)],
                         "label": [H.TEST_CLASSES[i % 16] for i in range(n)],
                         "manipulation": ["none", "semantic_swap"] * (n // 2),
                         "level": [""] * n})


def test_trial_lists_are_seeded_per_participant_with_practice_and_repeats():
    m = _manifest()
    a = H.trial_list(m, "P01", seed=0, repeat_fraction=0.2, practice_n=3)
    b = H.trial_list(m, "P01", seed=0, repeat_fraction=0.2, practice_n=3)
    c = H.trial_list(m, "P02", seed=0, repeat_fraction=0.2, practice_n=3)
    pd.testing.assert_frame_equal(a, b)
    assert a["stimulus_id"].tolist() != c["stimulus_id"].tolist()
    assert (a["block"].iloc[:3] == "practice").all()
    assert (a.loc[a["block"] == "practice", "manipulation"] == "none").all()
    main = a[a["block"] == "main"]
    assert len(main) == 24 and main["repeat"].sum() == 4
    assert set(main.loc[~main["repeat"], "stimulus_id"]) == set(m["stimulus_id"])
    assert (main.loc[main["repeat"]].index >= main.index[len(m) // 2]).all()
    assert a["trial"].tolist() == list(range(1, len(a) + 1))


def test_scoring():
    assert H.score("classify", {"label": "barking"}, "barking")
    assert H.score("correspondence", {"manipulation": "semantic_swap"}, "different")
    assert H.score("correspondence", {"manipulation": "av_offset"}, "same")
    assert not H.score("correspondence", {"manipulation": "none"}, "different")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    if not os.environ.get("DISPLAY"):
        pytest.skip("needs a display: run under xvfb-run (scripts/test.sh)")
    data = tmp_path_factory.mktemp("hvd")
    if ARTIFACTS.exists():
        shutil.rmtree(ARTIFACTS)
    out = {}
    for task in ("classify", "correspondence"):
        proc = subprocess.run([sys.executable, str(SCRIPT), "--participant", "P07", "--session",
                               "1", "--task", task, "--simulate", "2", "--fast", "--windowed",
                               "--data-dir", str(data), "--screenshots", str(ARTIFACTS / task)],
                              cwd=REPO, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stderr[-3000:]
        out[task] = pd.read_csv(data / f"sub-P07_ses-1_task-{task}_beh.csv")
    return data, out


@pytest.mark.parametrize("task", ["classify", "correspondence"])
def test_both_tasks_complete_with_contract_rows(runs, task):
    data, out = runs
    rows = out[task]
    assert list(rows.columns[:len(CONTRACT)]) == CONTRACT
    manifest = pd.read_csv(data / "demo_suite" / "suite" / "manifest.csv")
    main = rows[rows["block"] == "main"]
    assert set(main["stimulus_id"]) == set(manifest["stimulus_id"])
    assert len(main) == len(manifest) + round(0.1 * len(manifest))  # 10 % repeated
    assert (rows["block"].iloc[:4] == "practice").all()
    right = main.apply(lambda r: H.correct_response(task, r.to_dict()), axis=1)
    assert (main["correct"] == (main["response"] == right)).all()
    assert 0.5 < main["correct"].mean() < 1.0          # the simulated observer's accuracy
    if task == "classify":  # even trials answered with mouse clicks, odd ones with keys
        by_input = main.groupby(main["trial"] % 2)["correct"].mean()
        assert len(by_input) == 2 and by_input.min() > 0.5
    assert (main["rt_from_onset"] > main["rt"]).all() and (main["frames_shown"] > 0).all()
    assert (data / f"sub-P07_ses-1_task-{task}_beh.csv.done").exists()


def test_headphone_screen_was_run_and_passed(runs):
    data, _ = runs
    hp = pd.read_csv(data / "sub-P07_ses-1_task-headphonecheck_beh.csv")
    # the default screen is both: Woods (pass 5 of 6), then Huggins (pass 6 of 6)
    assert hp["test"].tolist() == ["woods"] * 6 + ["huggins"] * 6
    assert hp.loc[hp["test"] == "woods", "correct"].sum() >= 5
    assert hp.loc[hp["test"] == "huggins", "correct"].all()


def test_screenshots_of_the_response_screens(runs):
    from PIL import Image
    shot = ARTIFACTS / "classify" / "classify_response.png"
    img = np.asarray(Image.open(shot).convert("L")).astype(int)
    h, w = img.shape
    # 4 x 4 buttons: 4 bright button outlines cross the middle row, and the prompt at the top
    row = img[int(h * 0.42)] > 150
    edges = np.flatnonzero(np.diff(row.astype(int)) == 1)
    assert len(edges) >= 8
    assert (img[: h // 10] > 150).any()
    assert (ARTIFACTS / "classify" / "headphone_check.png").exists()
    assert (ARTIFACTS / "correspondence" / "correspondence_response.png").exists()


def test_missing_stimulus_refuses_to_start(tmp_path):
    from avmit_psych.experiments.plan import plan_study
    manifest = tmp_path / "m.csv"
    pd.DataFrame({"stimulus_id": ["a", "b"], "path": ["nope.mp4", "nope2.mp4"],
                  "source_filename": ["v1.mp4", "v2.mp4"], "label": ["barking", "diving"],
                  "manipulation": ["none", "none"], "level": ["", ""], "level_unit": ["", ""],
                  "audio_source": ["", ""], "duration_s": [3.0, 3.0]}).to_csv(manifest,
                                                                            index=False)
    plan_study(manifest, tmp_path / "study", {"repeat_share": 0, "sessions": 1})
    proc = subprocess.run([sys.executable, str(SCRIPT), "--participant", "P01", "--session",
                           "1", "--study", str(tmp_path / "study"), "--windowed"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "list-01_ses-1.csv, column 'path': 2 stimuli are missing or unplayable" in \
        proc.stderr and "a (file not found)" in proc.stderr
    assert "--skip-missing" in proc.stderr
    data = tmp_path / "study" / "data"
    assert not data.exists() or not list(data.glob("*.csv"))
