"""Timing QC in compare: the report's timing section, flagged trials left out and counted."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from avmit_psych.analysis.compare import run_comparison, write_comparison
from avmit_psych.analysis.observers import load_observations
from avmit_psych.dataset import synthetic


@pytest.fixture(scope="module")
def timed(tmp_path_factory):
    trials, _ = synthetic.simulate_comparison(3, 0, 270, seed=5)
    rng = np.random.default_rng(0)
    trials = trials.assign(
        dropped_frames=0, audio_start_error_ms=rng.normal(0, 0.3, len(trials)),
        frame_interval_sd_ms=0.2, latency_ms=20.0, timing_ok=True)
    # S02: 12 trials whose audio started 5 ms off, 3 with a dropped frame
    s02 = trials.index[trials["participant"] == "S02"]
    trials.loc[s02[:12], "audio_start_error_ms"] = 5.0
    trials.loc[s02[20:23], "dropped_frames"] = 1
    trials.loc[s02[:12].union(s02[20:23]), "timing_ok"] = False
    folder = tmp_path_factory.mktemp("timed")
    for p, rows in trials.groupby("participant"):
        rows.to_csv(folder / f"sub-{p}_ses-1_task-classify_beh.csv", index=False)
    return folder, trials, set(trials.loc[s02[:12].union(s02[20:23]), "stimulus_id"])


def test_flagged_trials_are_left_out_and_counted(timed, tmp_path):
    folder, trials, flagged_ids = timed
    obs = load_observations([folder])
    assert obs.timing_excluded == 15
    s02 = obs.trials[obs.trials["observer"] == "S02"]
    assert len(s02) == 270 - 15 and not set(s02["stimulus_id"]) & flagged_ids
    assert (obs.trials.groupby("observer").size()[["S01", "S03"]] == 270).all()
    res = run_comparison(obs, n_boot=0, psychometric=False)
    t = res.timing.set_index("observer")
    assert t.loc["S02", "n_flagged"] == 15 and t.loc["S01", "n_flagged"] == 0
    assert t.loc["S02", "dropped_frame_rate"] == pytest.approx(3 / 270)
    assert t.loc["S02", "audio_error_max_ms"] == pytest.approx(5.0)
    assert t.loc["S01", "latency_ms"] == 20.0
    files = write_comparison(res, tmp_path / "out")
    report = files["report.md"].read_text()
    assert "## Timing" in report and "15 flagged" in report
    assert "15 of them were left out of every analysis" in report
    assert "| S02 | 270 | 15 |" in report
    assert "timing.csv" in files


def test_flagged_trials_can_be_kept(timed, tmp_path, cli):
    folder, _, _ = timed
    obs = load_observations([folder], exclude_timing_failures=False)
    assert obs.timing_excluded == 0 and len(obs.trials) == 3 * 270
    out = tmp_path / "keep"
    r = cli("analysis", ["compare", "--humans", folder, "--out", out, "--bootstrap", "0",
                         "--no-psychometric", "--no-exclude-timing-failures"])
    assert r.code == 0, r.err
    acc = pd.read_csv(out / "accuracy.csv")
    assert acc.groupby("observer")["n_trials"].sum()["S02"] == 270
    assert "flagged trials were kept" in (out / "report.md").read_text()
    out2 = tmp_path / "drop"
    r = cli("analysis", ["compare", "--humans", folder, "--out", out2, "--bootstrap", "0",
                         "--no-psychometric"])
    assert r.code == 0, r.err
    acc = pd.read_csv(out2 / "accuracy.csv")
    assert acc.groupby("observer")["n_trials"].sum()["S02"] == 255


def test_files_without_timing_columns_have_no_timing_section(tmp_path):
    trials, _ = synthetic.simulate_comparison(2, 0, 54, seed=1)
    for p, rows in trials.groupby("participant"):
        rows.to_csv(tmp_path / f"{p}.csv", index=False)
    obs = load_observations([tmp_path])
    res = run_comparison(obs, n_boot=0, psychometric=False)
    assert res.timing is None
    files = write_comparison(res, tmp_path / "out")
    assert "## Timing" not in files["report.md"].read_text() and "timing.csv" not in files
