"""One writer per session (issue 13, point 5).

- Two writers for one participant, session and task: the second raises ``SessionBusy`` naming
  the first's process and host; another task or session, or the same one after ``close()``, is
  fine.
- A real second launch of either experiment script while a first process holds the session
  exits 2 with that message and leaves every file of the data folder byte-identical.
- Two real launches at once: exactly one runs and completes, the other is refused; the data
  file holds each stimulus once.
- A lock left by a SIGKILLed process is taken over by the next launch, which says so (naming
  the killed process) and resumes the data file.

The scripts run as subprocesses (``--simulate SEED --fast --windowed`` under Xvfb), on a small
probe suite and pool so that a session takes seconds.
"""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from avmit_psych.dataset.schema import TEST_CLASSES, DatasetError
from avmit_psych.experiments import human_vs_dnn as H
from avmit_psych.experiments.annotation import ROW_COLUMNS
from avmit_psych.experiments.datafile import SessionBusy, TrialWriter, lock_path
from tests.conftest import REPO

HVD_SCRIPT = REPO / "experiments" / "human_vs_dnn.py"
ANNOTATION_SCRIPT = REPO / "experiments" / "annotation_task.py"
needs_display = pytest.mark.skipif(not os.environ.get("DISPLAY"),
                                   reason="needs a display: run under xvfb-run (scripts/test.sh)")
BUSY = "is already running: process {pid} on host {host} since "
FIX = "Fix: finish or close that session first; this launch changed nothing"


# -- in one process -----------------------------------------------------------------------------
def test_second_writer_for_a_session_is_refused_naming_the_first(tmp_path):
    cols = ["trial", "response"]
    first = TrialWriter(tmp_path, "P01", 1, "classify", cols)
    first.write({"trial": 1, "response": "barking"})
    before = first.path.read_bytes()
    with pytest.raises(SessionBusy) as busy:
        TrialWriter(tmp_path, "P01", 1, "classify", cols)
    message = str(busy.value)
    assert isinstance(busy.value, DatasetError)  # the scripts' run() prints it, exit 2
    assert message.startswith(f"{first.path}: participant P01 session 1 (task classify) "
                              + BUSY.format(pid=os.getpid(), host=socket.gethostname()))
    assert message.endswith(FIX)
    assert busy.value.holder["pid"] == os.getpid()
    assert first.path.read_bytes() == before
    # another task, session or participant is another lock
    for other in (("P01", 1, "correspondence"), ("P01", 2, "classify"),
                  ("P02", 1, "classify")):
        TrialWriter(tmp_path, *other, cols).close()
    first.write({"trial": 2, "response": "crying"})
    first.close()
    assert not lock_path(tmp_path, "P01", 1, "classify").exists()  # released cleanly
    again = TrialWriter(tmp_path, "P01", 1, "classify", cols)  # after close(): resumes
    assert again.taken_over_from is None
    assert again.completed["trial"].tolist() == ["1", "2"]
    again.close()


def test_finished_writer_keeps_the_session_until_closed(tmp_path):
    """finish() keeps the lock (no other launch may start a new run while this process runs);
    a new writer in the same process takes it over, and close() releases it."""
    cols = ["trial"]
    first = TrialWriter(tmp_path, "P01", 1, "annotationtraining", cols)
    first.write({"trial": 1})
    first.finish()
    lock = lock_path(tmp_path, "P01", 1, "annotationtraining")
    holder = json.loads(lock.read_text())
    assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
    assert {"since", "script", "argv"} <= set(holder)
    code = ("import sys; from avmit_psych.experiments.datafile import TrialWriter, SessionBusy\n"
            "try:\n"
            "    TrialWriter(sys.argv[1], 'P01', 1, 'annotationtraining', ['trial'])\n"
            "except SessionBusy as e:\n"
            "    print(e); sys.exit(2)\n")
    other = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=REPO,
                           capture_output=True, text=True, timeout=120)
    assert other.returncode == 2 and f"process {os.getpid()} on host" in other.stdout
    assert not (tmp_path / "sub-P01_ses-1_task-annotationtraining_run-2_beh.csv").exists()
    second = TrialWriter(tmp_path, "P01", 1, "annotationtraining", cols)  # this process
    assert second.run == 2 and second.taken_over_from is None
    first.close()  # handed over: does not release the second writer's lock
    with pytest.raises(SessionBusy):
        TrialWriter(tmp_path, "P01", 1, "annotationtraining", cols)
    second.close()
    assert not lock.exists()


def _stale_lock(data_dir, host, pid, age_s, task="classify"):
    data_dir.mkdir(parents=True, exist_ok=True)
    since = time.time() - age_s
    lock_path(data_dir, "P01", 1, task).write_text(json.dumps({
        "pid": pid, "host": host, "since": "2026-12-01T09:00:00", "since_unix": since,
        "script": "experiments/human_vs_dnn.py", "argv": []}))


def test_lock_of_another_machine_is_taken_over_with_a_warning(tmp_path, capsys):
    _stale_lock(tmp_path, "lab-pc-3", 4242, age_s=600)
    writer = TrialWriter(tmp_path, "P01", 1, "classify", ["trial"])
    assert writer.taken_over_from["host"] == "lab-pc-3"
    err = capsys.readouterr().err
    assert "left by process 4242 on host lab-pc-3" in err and "another machine" in err
    assert "written only 10 min ago" in err and "stop this one now" in err
    writer.close()
    _stale_lock(tmp_path, "lab-pc-3", 4242, age_s=3 * 24 * 3600)
    TrialWriter(tmp_path, "P01", 1, "classify", ["trial"]).close()
    err = capsys.readouterr().err
    assert "another machine" in err and "stop this one now" not in err


def test_lock_naming_our_own_pid_is_a_killed_earlier_process(tmp_path, capsys):
    """In a container every launch may get the same pid: a lock file naming it, unlocked, was
    left by an earlier process that was killed."""
    _stale_lock(tmp_path, socket.gethostname(), os.getpid(), age_s=60)
    writer = TrialWriter(tmp_path, "P01", 1, "classify", ["trial"])
    assert writer.taken_over_from["pid"] == os.getpid()
    assert "ended without closing the session (killed or crashed)" in capsys.readouterr().err
    writer.close()


# -- helpers for real processes -------------------------------------------------------------------
HOLDER = """
import json, sys, time
from pathlib import Path
from avmit_psych.experiments.datafile import TrialWriter
data, participant, session, marker, spec = sys.argv[1:6]
writers = []
for task, columns, rows in json.loads(spec):
    writer = TrialWriter(data, participant, int(session), task, columns)
    for row in rows:
        writer.write(row)
    writers.append(writer)
Path(marker).write_text(str(writers[-1].path))
while True:
    time.sleep(1)
"""


def _hold(data_dir: Path, participant: str, session: int, spec, marker: Path):
    """A process holding TrialWriters (task, columns, rows) until killed; returns it once they
    are open."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(data_dir), participant,
                             str(session), str(marker), json.dumps(spec)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.monotonic() + 120
    while not marker.exists():
        if proc.poll() is not None:
            raise AssertionError(f"holder exited {proc.returncode}: {proc.stderr.read()}")
        if time.monotonic() > deadline:
            _kill(proc)
            raise AssertionError("holder did not open its writers in 120 s")
        time.sleep(0.1)
    return proc


def _kill(proc) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _launch(script, args):
    return subprocess.Popen([sys.executable, str(script), *map(str, args)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def _finish(proc, timeout=600):
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill(proc)
        raise
    return proc.returncode, out, err


# -- a small probe suite (human-vs-DNN) and pool (annotation) ------------------------------------
@pytest.fixture(scope="module")
def probe_clips(tmp_path_factory):
    from avmit_psych.dataset import synthetic
    root = tmp_path_factory.mktemp("probe_clips")
    csv = synthetic.write_probe_clips(root / "videos", root / "test_set.csv", per_class=1,
                                      classes=TEST_CLASSES[:8])
    clips = pd.read_csv(csv, keep_default_na=False)
    clips["path"] = [str(root / "videos" / p) for p in clips["new_filename"]]
    return clips


@pytest.fixture(scope="module")
def hvd_config(probe_clips, tmp_path_factory):
    """A config without a manifest: the script runs its demo suite, ``<data-dir>/demo_suite``
    (see :func:`_hvd_data`), here 8 probe clips instead of the 48-stimulus default."""
    root = tmp_path_factory.mktemp("hvd_suite")
    manifest = pd.DataFrame({"stimulus_id": [f"probe{i}" for i in range(len(probe_clips))],
                             "path": probe_clips["path"], "label": probe_clips["AVMIT_label"],
                             "manipulation": "none", "level": ""})
    config = root / "hvd.yaml"
    config.write_text("task: classify\nheadphone_check: woods\npractice_trials: 2\n"
                      "repeat_fraction: 0\nbreak_every: 100\nseed: 0\n"
                      "window: {size: [800, 600], fullscr: false}\n")
    return config, manifest


def _hvd_data(tmp_path: Path, manifest: pd.DataFrame) -> Path:
    """A data folder whose demo suite (built on first use by the script) is the small one."""
    data = tmp_path / "data"
    (data / "demo_suite" / "suite").mkdir(parents=True)
    manifest.to_csv(data / "demo_suite" / "suite" / "manifest.csv", index=False)
    return data


@pytest.fixture(scope="module")
def annotation_config(probe_clips, tmp_path_factory):
    root = tmp_path_factory.mktemp("annotation_pool")
    pool = probe_clips[["filename", "AVMIT_label", "MIT_label", "video_location", "path"]].copy()
    pool["ground_truth"] = ""
    pool["true_rating"] = np.random.default_rng(5).choice([1, 2, 3], size=len(pool))
    pool.to_csv(root / "pool.csv", index=False)
    config = root / "annotation.yaml"
    config.write_text(f"task: annotation\npool_csv: {root / 'pool.csv'}\n"
                      "raters_per_video: 1\nbonus_pence: 10\ntrials_per_block: 100\n"
                      "window: {size: [800, 600], fullscr: false}\n")
    return config, pool


def _hvd_args(config, data, participant="P01", seed=1):
    return ["--participant", participant, "--session", 1, "--task", "classify", "--simulate",
            seed, "--fast", "--windowed", "--data-dir", data, "--config", config]


def _annotation_args(config, data, participant="P01", seed=1):
    return ["--participant", participant, "--session", 1, "--simulate", seed, "--fast",
            "--windowed", "--data-dir", data, "--config", config]


def _hvd_rows(manifest, n):
    trials = H.trial_list(manifest, "P01", seed=0, practice_n=2)
    return [{"participant": "P01", "session": 1, "task": "classify", "block": t["block"],
             "trial": t["trial"], "stimulus_id": t["stimulus_id"], "label": t["label"],
             "manipulation": "none", "level": "", "response": t["label"], "correct": True,
             "rt": 0.5} for t in trials.head(n).to_dict("records")]


def _busy_message(err: str, holder_pid: int, task: str, data_file: Path) -> None:
    """One line on stderr naming the data file, the session and the holding process."""
    lines = [x for x in err.splitlines() if x.startswith("error: ")]
    assert len(lines) == 1, err[-3000:]
    expected = (re.escape(f"error: {data_file}: participant P01 session 1 (task {task}) "
                          + BUSY.format(pid=holder_pid, host=socket.gethostname()))
                + r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d" + re.escape(" (python -c). " + FIX))
    assert re.fullmatch(expected, lines[0]), lines[0]


# -- a second launch while the first is alive ----------------------------------------------------
@needs_display
def test_second_human_vs_dnn_launch_exits_and_changes_nothing(hvd_config, tmp_path):
    config, manifest = hvd_config
    data = _hvd_data(tmp_path, manifest)
    holder = _hold(data, "P01", 1, [["classify", H.TRIAL_COLUMNS, _hvd_rows(manifest, 3)]],
                   tmp_path / "held")
    try:
        before = _snapshot(data)
        code, out, err = _finish(_launch(HVD_SCRIPT, _hvd_args(config, data)))
        assert code == 2, err[-3000:]
        _busy_message(err, holder.pid, "classify",
                      data / "sub-P01_ses-1_task-classify_beh.csv")
        assert _snapshot(data) == before
    finally:
        _kill(holder)


@needs_display
def test_second_annotation_launch_exits_and_changes_nothing(annotation_config, tmp_path):
    """The holder does what a running annotation_task.py has done by then: the assignment
    database filled, the three writers open (training, screening, main), rows written."""
    config, pool = annotation_config
    data = tmp_path / "data"
    from avmit_psych.experiments.assignment import AssignmentDB
    db = AssignmentDB(data / "annotation.sqlite", raters_per_video=1)
    db.add_videos(pool, seed=0)
    db.close()
    rows = [{"filename": f, "AVMIT_label": "x", "MIT_label": "x", "video_location": "training",
             "rating": 3, "participant": "P01", "session": 1, "trial": i + 1, "block": "main"}
            for i, f in enumerate(pool["filename"][:2])]
    holder = _hold(data, "P01", 1, [["annotationtraining", ROW_COLUMNS, []],
                                    ["annotationscreening", ROW_COLUMNS, []],
                                    ["annotation", ROW_COLUMNS, rows]], tmp_path / "held")
    try:
        before = _snapshot(data)
        code, out, err = _finish(_launch(ANNOTATION_SCRIPT, _annotation_args(config, data)))
        assert code == 2, err[-3000:]
        # refused at its first writer: nothing of the session is touched
        _busy_message(err, holder.pid, "annotation",
                      data / "sub-P01_ses-1_task-annotation_beh.csv")
        assert _snapshot(data) == before
    finally:
        _kill(holder)


# -- two launches at once ------------------------------------------------------------------------
def _race(script, args):
    procs = [_launch(script, args) for _ in range(2)]
    results = [_finish(p) for p in procs]
    codes = sorted(r[0] for r in results)
    assert codes[0] == 0 and codes[1] != 0, [r[2][-2000:] for r in results]
    ran, refused = sorted(zip(results, procs), key=lambda rp: rp[0][0])
    assert "is already running: process " in refused[0][2] and FIX in refused[0][2]
    assert f"process {ran[1].pid} on host {socket.gethostname()}" in refused[0][2]
    return ran[0]


@needs_display
def test_two_human_vs_dnn_launches_at_once_one_runs(hvd_config, tmp_path):
    config, manifest = hvd_config
    data = _hvd_data(tmp_path, manifest)
    code, out, err = _race(HVD_SCRIPT, _hvd_args(config, data))
    assert out.splitlines()[-1].startswith("complete: data in ")
    assert sorted(p.name for p in data.glob("*_beh.csv")) == [
        "sub-P01_ses-1_task-classify_beh.csv", "sub-P01_ses-1_task-headphonecheck_beh.csv"]
    rows = pd.read_csv(data / "sub-P01_ses-1_task-classify_beh.csv")
    main = rows[rows["block"] == "main"]
    assert sorted(main["stimulus_id"]) == sorted(manifest["stimulus_id"])  # each once
    assert rows["trial"].tolist() == list(range(1, len(manifest) + 3))
    assert len(pd.read_csv(data / "sub-P01_ses-1_task-headphonecheck_beh.csv")) == 6
    assert not list(data.glob(".*.lock"))


@needs_display
def test_two_annotation_launches_at_once_one_runs(annotation_config, tmp_path):
    config, pool = annotation_config
    data = tmp_path / "data"
    code, out, err = _race(ANNOTATION_SCRIPT, _annotation_args(config, data))
    assert out.splitlines()[-1].startswith("complete: data in ")
    assert not list(data.glob("*_run-2_*"))
    rows = pd.read_csv(data / "sub-P01_ses-1_task-annotation_beh.csv")
    assert sorted(rows["filename"]) == sorted(pool["filename"])  # each video rated once
    assert rows["trial"].tolist() == list(range(1, len(pool) + 1))
    assert not list(data.glob(".*.lock"))


# -- a lock left by a killed process ------------------------------------------------------------
def test_lock_of_a_killed_process_is_taken_over_and_the_file_resumed(tmp_path, capsys):
    rows = [{"trial": i, "rating": 3} for i in (1, 2)]
    holder = _hold(tmp_path, "P01", 1, [["annotation", ["trial", "rating"], rows]],
                   tmp_path / "held")
    lock = lock_path(tmp_path, "P01", 1, "annotation")
    assert json.loads(lock.read_text())["pid"] == holder.pid
    with pytest.raises(SessionBusy, match=f"process {holder.pid} on host"):
        TrialWriter(tmp_path, "P01", 1, "annotation", ["trial", "rating"])
    _kill(holder)  # SIGKILL: no clean-up ran, the lock file still names it
    assert json.loads(lock.read_text())["pid"] == holder.pid
    writer = TrialWriter(tmp_path, "P01", 1, "annotation", ["trial", "rating"])
    assert writer.taken_over_from["pid"] == holder.pid
    err = capsys.readouterr().err
    assert f"left by process {holder.pid} on host {socket.gethostname()}" in err
    assert "ended without closing the session (killed or crashed)" in err
    assert writer.completed["trial"].tolist() == ["1", "2"]  # resumed, rows kept
    assert json.loads(lock.read_text())["pid"] == os.getpid()
    writer.write({"trial": 3, "rating": 1})
    writer.finish()
    writer.close()
    assert pd.read_csv(writer.path)["trial"].tolist() == [1, 2, 3]
    assert not lock.exists()


@needs_display
def test_killed_human_vs_dnn_session_is_taken_over_and_resumed(hvd_config, tmp_path):
    config, manifest = hvd_config
    data = _hvd_data(tmp_path, manifest)
    data_file = data / "sub-P01_ses-1_task-classify_beh.csv"
    first = _launch(HVD_SCRIPT, _hvd_args(config, data))
    deadline = time.monotonic() + 300
    while not (data_file.exists() and data_file.read_text().count("\n") >= 4):  # 3 trials
        assert first.poll() is None, first.stderr.read()[-3000:]
        assert time.monotonic() < deadline, "no trials written in 300 s"
        time.sleep(0.05)
    _kill(first)
    kept = data_file.read_bytes()
    kept = kept[:kept.rfind(b"\n") + 1]  # a row torn by the kill is cut on resuming
    assert json.loads(lock_path(data, "P01", 1, "classify").read_text())["pid"] == first.pid
    code, out, err = _finish(_launch(HVD_SCRIPT, _hvd_args(config, data)))
    assert code == 0, err[-3000:]
    assert f"left by process {first.pid} on host {socket.gethostname()}" in err
    assert "killed or crashed" in err
    assert data_file.read_bytes().startswith(kept)  # the killed session's rows kept
    rows = pd.read_csv(data_file)
    main = rows[rows["block"] == "main"]
    assert sorted(main["stimulus_id"]) == sorted(manifest["stimulus_id"])  # each once
    assert rows["trial"].tolist() == list(range(1, len(manifest) + 3))
    assert not lock_path(data, "P01", 1, "classify").exists()  # released at the end
