"""Experiment logic without a window: data files, assignment, annotation trials."""
from __future__ import annotations

import multiprocessing as mp
from collections import Counter

import pandas as pd
import pytest

from avmit_psych.dataset.schema import DatasetError
from avmit_psych.experiments import annotation as A
from avmit_psych.experiments.assignment import AssignmentDB, Video
from avmit_psych.experiments.datafile import TrialWriter, check_participant


# -- data files ---------------------------------------------------------------------------------
def test_participant_ids_are_restricted():
    assert check_participant("P01_a-b") == "P01_a-b"
    for bad in ("", "P 01", "../x", "a" * 33, "P01;rm"):
        with pytest.raises(DatasetError, match="is not allowed"):
            check_participant(bad)


def test_writer_names_resumes_repairs_and_never_overwrites(tmp_path):
    cols = ["trial", "rating"]
    w = TrialWriter(tmp_path, "P01", 1, "annotation", cols)
    assert w.path.name == "sub-P01_ses-1_task-annotation_beh.csv"
    w.write({"trial": 1, "rating": 3})
    w.write({"trial": 2, "rating": 1})
    w.close()
    with open(w.path, "a") as fh:  # a crash in the middle of writing trial 3
        fh.write("3,")
    again = TrialWriter(tmp_path, "P01", 1, "annotation", cols)
    assert again.path == w.path and again.completed["trial"].tolist() == ["1", "2"]
    again.write({"trial": 3, "rating": 2})
    again.finish()
    assert pd.read_csv(w.path)["trial"].tolist() == [1, 2, 3]
    third = TrialWriter(tmp_path, "P01", 1, "annotation", cols)  # finished: a new run
    assert third.path.name == "sub-P01_ses-1_task-annotation_run-2_beh.csv"
    assert third.completed.empty
    third.close()
    assert len(pd.read_csv(w.path)) == 3


# -- assignment ---------------------------------------------------------------------------------
def _videos(n, gt_every=0):
    return pd.DataFrame({
        "filename": [f"barking/v{i:03d}.mp4" for i in range(n)], "AVMIT_label": "barking",
        "MIT_label": "barking", "video_location": "training",
        "path": [f"/videos/v{i:03d}.mp4" for i in range(n)],
        "ground_truth": [(3 if gt_every and i % gt_every == 0 else None) for i in range(n)]})


def test_each_video_gets_n_distinct_raters_and_nobody_twice(tmp_path):
    db = AssignmentDB(tmp_path / "a.sqlite", raters_per_video=3)
    db.add_videos(_videos(10))
    taken = Counter()
    for participant in ("P1", "P2", "P3", "P4"):
        seen = set()
        while (v := db.next_video(participant, 1)) is not None:
            assert v.filename not in seen
            seen.add(v.filename)
            db.complete(v.filename, participant, 2)
            taken[v.filename] += 1
    assert set(taken.values()) == {3} and len(taken) == 10
    r = db.ratings()
    assert not r.duplicated(["filename", "participant"]).any()
    assert db.progress()["videos_complete"] == 10


def test_a_held_video_comes_back_after_a_crash_and_reconcile(tmp_path):
    db = AssignmentDB(tmp_path / "a.sqlite", raters_per_video=2)
    db.add_videos(_videos(3))
    v = db.next_video("P1", 1)
    assert db.next_video("P1", 1).filename == v.filename  # still held: same video
    db.reconcile("P1", 1, {v.filename: 3})                # it was in the data file already
    assert db.next_video("P1", 1).filename != v.filename


def test_ground_truth_videos_and_bonus_matches(tmp_path):
    db = AssignmentDB(tmp_path / "a.sqlite", raters_per_video=1)
    db.add_videos(_videos(20, gt_every=4))
    v = db.next_video("P1", 1, ground_truth=True)
    assert v.ground_truth == 3
    assert db.complete(v.filename, "P1", 3) is True
    w = db.next_video("P1", 1, ground_truth=True)
    assert db.complete(w.filename, "P1", 1) is False
    assert db.matches("P1") == 1


def _worker(path, participant, queue, start):
    import time
    db = AssignmentDB(path, raters_per_video=1)
    start.wait(60)  # both sessions start together
    got = []
    while (v := db.next_video(participant, 1)) is not None:
        got.append(v.filename)
        time.sleep(0.002)  # the trial
        db.complete(v.filename, participant, 2)
    queue.put(got)


def test_two_processes_never_take_the_same_last_slot(tmp_path):
    path = tmp_path / "a.sqlite"
    db = AssignmentDB(path, raters_per_video=1)
    db.add_videos(_videos(300))
    db.close()
    ctx = mp.get_context("spawn")
    queue, start = ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=_worker, args=(str(path), p, queue, start)) for p in ("A", "B")]
    for p in procs:
        p.start()
    import time
    time.sleep(3)  # both processes are up and waiting
    start.set()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    a, b = results
    assert not set(a) & set(b)  # one rater per video: never both
    assert len(a) + len(b) == 300 and len(a) > 0 and len(b) > 0


# -- annotation trials with a fake screen -------------------------------------------------------
class FakeIO:
    def __init__(self, plans):
        self.plans = list(plans)   # per play: (early_keys, then key after the video)
        self.clock = 100.0
        self.warnings = 0
        self.feedback = []

    def play(self, video, *, label, bonus_pence):
        early, _ = self.plans[0]
        self.clock += 3.0
        return {"early_keys": early, "ended_at": self.clock, "onset": self.clock - 3.0,
                "frames_shown": 90, "dropped_frames": 0, "av_onset_asynchrony_ms": 0.1,
                "playback_s": 3.0}

    def show_early_warning(self):
        self.warnings += 1

    def wait_key(self, keys):
        _, key = self.plans.pop(0)
        assert key in keys
        self.clock += 0.5
        return key, self.clock

    def show_feedback(self, text):
        self.feedback.append(text)

    def show_message(self, text, *, wait=True):
        pass


GT = Video("a/x.mp4", "barking", "barking", "training", "/x.mp4", 3)


def test_early_press_warns_and_is_not_the_answer_and_replays_count():
    io = FakeIO([(["2"], "space"), ([], "3")])
    bonus = A.BonusCounter(10)
    row = A.AnnotationTrial(GT, "main").run(io, participant="P1", session=1, trial=5,
                                            bonus=bonus)
    assert io.warnings == 1 and row["early_presses"] == 1
    assert row["rating"] == 3 and row["replays"] == 1 and row["rt"] == 0.5
    assert row["bonus_match"] and bonus.pence == 10 and row["bonus_pence"] == 10
    assert row["ground_truth"] == 3
    assert set(A.ROW_COLUMNS) == set(row)


def test_training_shows_reasoning_and_escape_aborts():
    io = FakeIO([([], "1")])
    row = A.AnnotationTrial(GT, "training", expected_rating=3, reasoning="The bark is loud.") \
        .run(io, participant="P1", session=1, trial=1, bonus=A.BonusCounter())
    assert row["correct"] is False and "expected rating is 3. The bark is loud." in io.feedback[0]
    assert row["bonus_pence"] == 0  # no bonus outside the main block
    with pytest.raises(A.Aborted):
        A.AnnotationTrial(GT, "main").run(FakeIO([([], "escape")]), participant="P1",
                                          session=1, trial=2, bonus=A.BonusCounter())


def test_screening_pass_mark():
    rows = [{"correct": "True"}] * 38 + [{"correct": "False"}] * 3
    assert A.screening_result(rows).passed
    assert not A.screening_result(rows[1:] + [{"correct": "False"}]).passed


def test_simulated_rater_is_seeded_and_accurate():
    a, b = A.SimulatedRater(4), A.SimulatedRater(4)
    plans = [a.plan(3) for _ in range(300)]
    assert plans == [b.plan(3) for _ in range(300)]
    accuracy = sum(p["rating"] == 3 for p in plans) / 300
    assert 0.8 < accuracy < 0.98
    assert any(p["early"] for p in plans) and any(p["replays"] for p in plans)


def test_a_video_that_failed_is_given_back_and_not_offered_again(tmp_path):
    db = AssignmentDB(tmp_path / "a.sqlite", raters_per_video=1)
    db.add_videos(_videos(3))
    v = db.next_video("P1", 1)
    db.release(v.filename, "P1")
    w = db.next_video("P1", 1, exclude={v.filename})
    assert w.filename != v.filename
    assert db.next_video("P2", 1).filename == v.filename  # someone else may still rate it
