"""Sessions read their plan: list assignment as participants arrive, planned trials, breaks and
repeats, resume by position after a SIGKILL, a changed plan refused, compare on the data.

Runs the real script (experiments/human_vs_dnn.py --study ... --simulate) under Xvfb on a small
real suite (probe clips, 16 sources x 2 conditions)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from avmit_psych.analysis.compare import run_comparison
from avmit_psych.analysis.observers import load_observations
from avmit_psych.dataset.schema import DatasetError
from avmit_psych.experiments import study as S
from avmit_psych.experiments.plan import load_study, plan_study
from tests.conftest import REPO

SCRIPT = REPO / "experiments" / "human_vs_dnn.py"
DESIGN = {"sessions": 1, "repeat_share": 0.25, "repeat_min_gap": 3, "break_every": 6,
          "trial_duration_s": 4.0}


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    from avmit_psych.dataset import synthetic
    from avmit_psych.stimuli import generate
    root = tmp_path_factory.mktemp("suite")
    csv = synthetic.write_probe_clips(root / "videos", root / "test_set.csv", per_class=1)
    yaml_path = root / "suite.yaml"
    yaml_path.write_text("name: tiny\nconditions:\n  none: true\n  av_offset: {levels: [200]}\n")
    sources = generate.sources_from_test_set(csv, root / "videos")
    generate.generate(yaml_path, sources, root / "suite", seed=0, workers=2, progress=False)
    return root / "suite" / "manifest.csv"


def launch(study, participant, *extra, wait=True):
    cmd = [sys.executable, str(SCRIPT), "--study", str(study), "--participant", participant,
           "--session", "1", "--simulate", "3", "--fast", "--windowed", *extra]
    if not wait:
        return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)


def data_file(study, participant):
    return study / "data" / f"sub-{participant}_ses-1_task-classify_beh.csv"


@pytest.fixture(scope="module")
def study(suite, tmp_path_factory):
    if not os.environ.get("DISPLAY"):
        pytest.skip("needs a display: run under xvfb-run (scripts/test.sh)")
    folder = tmp_path_factory.mktemp("study") / "study"
    plan_study(suite, folder, DESIGN)
    return folder


def test_assignment_balances_lists_as_participants_arrive(suite, tmp_path):
    st = plan_study(suite, tmp_path / "s", DESIGN)
    got = [S.assign_list(st, f"P{i:02d}") for i in range(1, 6)]
    assert got == [1, 2, 1, 2, 1]                    # 2 lists: fewest participants first
    assert S.assign_list(st, "P02") == 2             # recorded once, then looked up
    table = S.read_assignments(st.folder)
    assert table["participant"].tolist() == [f"P{i:02d}" for i in range(1, 6)]
    assert [st.list_for_participant(i) for i in range(1, 6)] == got


def test_a_planned_session_runs_headless_and_compare_reads_it(study):
    r = launch(study, "P01")
    assert r.returncode == 0, r.stderr[-3000:]
    rows = pd.read_csv(data_file(study, "P01"), keep_default_na=False)
    st = load_study(study)
    plan = st.read_plan(1, 1)
    assert rows["position"].tolist() == plan["position"].tolist()      # every trial, in order
    assert rows["stimulus_id"].tolist() == plan["stimulus_id"].tolist()
    assert (rows["list"].astype(int) == 1).all()
    main = rows[rows["block"] == "main"]
    originals = main[main["repeat"].astype(str) == "False"]
    assert originals["stimulus_id"].is_unique and len(originals) == 16
    for _, rep in main[main["repeat"].astype(str) == "True"].iterrows():
        first = originals.loc[originals["stimulus_id"] == rep["stimulus_id"], "position"]
        assert rep["position"] - int(first.iloc[0]) >= DESIGN["repeat_min_gap"]
    record = json.loads(S.sidecar_path(data_file(study, "P01")).read_text())
    assert record["plan_sha256"] == st.plan_sha256(1, 1) and record["list"] == 1
    # a second participant takes the other list
    r = launch(study, "P02")
    assert r.returncode == 0, r.stderr[-3000:]
    rows2 = pd.read_csv(data_file(study, "P02"), keep_default_na=False)
    assert (rows2["list"].astype(int) == 2).all()
    assert set(rows2["stimulus_id"]) != set(rows["stimulus_id"])
    # every trial counts here: under a loaded Xvfb the odd trial is (honestly) flagged
    # timing_ok = False, and compare leaves those out by default (checked below)
    obs = load_observations([study / "data"], exclude_timing_failures=False)
    flagged = load_observations([study / "data"]).timing_excluded
    assert flagged == int((~obs.timing["timing_ok"].astype(bool)).sum())
    assert set(obs.humans) == {"P01", "P02"}
    assert obs.trials.groupby("observer").size().to_dict() == {"P01": 16, "P02": 16}
    assert (obs.repeats["observer"] == "P01").sum() == len(main) - 16
    res = run_comparison(obs, n_boot=0, psychometric=False)
    assert res.self_consistency is not None and set(res.self_consistency["observer"]) == \
        {"P01", "P02"}


def test_a_killed_session_resumes_without_losing_or_repeating_a_trial(study):
    proc = launch(study, "P03", wait=False)
    path = data_file(study, "P03")
    deadline = time.time() + 300
    while time.time() < deadline:
        if path.exists() and len(path.read_text().splitlines()) >= 8:   # header + 7 trials
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    before = pd.read_csv(path, keep_default_na=False)
    assert 7 <= len(before) < 20
    r = launch(study, "P03")
    assert r.returncode == 0, r.stderr[-3000:]
    rows = pd.read_csv(path, keep_default_na=False)
    st = load_study(study)
    plan = st.read_plan(S.assign_list(st, "P03"), 1)
    assert rows["position"].astype(int).tolist() == plan["position"].tolist()  # none twice,
    assert rows["stimulus_id"].tolist() == plan["stimulus_id"].tolist()        # none lost
    pd.testing.assert_frame_equal(rows.iloc[:len(before)], before)


def test_a_changed_plan_refuses_to_resume(study):
    proc = launch(study, "P04", wait=False)
    path = data_file(study, "P04")
    deadline = time.time() + 300
    while time.time() < deadline and not (path.exists() and
                                          len(path.read_text().splitlines()) >= 5):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    st = load_study(study)
    list_id = S.assign_list(st, "P04")
    plan_file = st.plan_path(list_id, 1)
    original = plan_file.read_bytes()
    before = path.read_bytes()
    lines = original.decode().splitlines(keepends=True)
    lines[2], lines[3] = lines[3], lines[2]          # two trials swapped
    changed = "".join(lines)
    try:
        plan_file.write_text(changed)
        r = launch(study, "P04")
        assert r.returncode == 2
        assert len(r.stderr.strip().splitlines()) == 1 and "changed" in r.stderr
        # even with design.json updated to the new file, the session's record refuses it
        design_path = study / "design.json"
        design = json.loads(design_path.read_text())
        saved = design_path.read_text()
        import hashlib
        for entry in design["plans"]:
            if entry["list"] == list_id and entry["session"] == 1:
                entry["sha256"] = hashlib.sha256(changed.encode()).hexdigest()
        design_path.write_text(json.dumps(design, indent=2))
        r = launch(study, "P04")
        assert r.returncode == 2 and "changed since this session began" in r.stderr
        assert path.read_bytes() == before                     # the data file untouched
        design_path.write_text(saved)
    finally:
        plan_file.write_bytes(original)
    r = launch(study, "P04")                                   # the original plan resumes
    assert r.returncode == 0, r.stderr[-3000:]


def test_resume_positions_refuses_data_out_of_step_with_the_plan():
    plan = pd.DataFrame({"position": [1, 2, 3], "stimulus_id": ["a", "b", "c"]})
    done = pd.DataFrame({"position": ["1", "2"], "stimulus_id": ["a", "b"]})
    assert S.resume_positions(done, plan) == {1, 2}
    with pytest.raises(DatasetError, match="position 2 showed 'c' but the plan has 'b'"):
        S.resume_positions(done.assign(stimulus_id=["a", "c"]), plan)


def test_a_suite_without_a_study_is_refused(suite, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(f"task: classify\nmanifest: {suite}\n")
    r = subprocess.run([sys.executable, str(SCRIPT), "--participant", "P01", "--session", "1",
                        "--config", str(config), "--data-dir", str(tmp_path / "d"),
                        "--windowed"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "experiments plan --manifest" in r.stderr
    assert not (tmp_path / "d").exists() or not list((tmp_path / "d").glob("*.csv"))


def test_a_started_study_is_never_replaced(study, suite):
    from avmit_psych.experiments.plan import plan_study as again
    with pytest.raises(DatasetError, match="this study has started"):
        again(suite, study, DESIGN, force=True)
