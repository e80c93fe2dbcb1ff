"""The trials of both experiments, defined in the library and run without a window.

Each session runs against a scripted fake presenter (a test double for the PsychoPy screen:
answers from a script, times from a fake clock), so every row, score, break, warning and
resume is checked without a display. The last test runs the same human-vs-DNN session with the
real PsychoPy presenter under Xvfb (in a subprocess: no OpenGL window in this process, which
TensorFlow tests share) and finds the same responses and scores in the rows.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from avmit_psych.dataset import schema
from avmit_psych.dataset.schema import TEST_CLASSES, DatasetError
from avmit_psych.experiments import annotation as A
from avmit_psych.experiments import headphones as HP
from avmit_psych.experiments import human_vs_dnn as H
from avmit_psych.experiments.assignment import AssignmentDB
from avmit_psych.experiments.plan import plan_study, synthetic_manifest
from avmit_psych.experiments.session import Aborted
from avmit_psych.experiments.study import session_plan, sidecar_path
from tests.conftest import REPO

SUITE = ("name: t\nconditions:\n  none: true\n  av_offset: {levels: [200]}\n"
         "  semantic_swap: true\n  audio_only: true\n  visual_only: true\n")
DESIGN = {"sessions": 1, "repeat_share": 0.2, "break_every": 4, "repeat_min_gap": 2}
#: What the fake player reports: every playback column of the schema, all filled.
PLAYBACK = {"dropped_frames": 0, "frames_shown": 90, "av_onset_asynchrony_ms": 0.25,
            "playback_s": 3.0, "planned_offset_ms": 0.0, "latency_ms": 0.0,
            "scheduled_lead_ms": 5.0, "audio_start_error_ms": 0.0125,
            "frame_interval_sd_ms": 0.5, "timing_ok": True, "audio_backend": "fake"}


# --------------------------------------------------------------------------------------------
# The human-vs-DNN test
# --------------------------------------------------------------------------------------------
class ScriptedScreen:
    """Stands in for ``screens.HumanVsDnnScreen``. ``answer(trial)`` gives each response; the
    clock advances 0.5 s (fixation), 3 s (the clip), then 0.75 s to the answer, so rt is 0.75
    and rt_from_onset 3.75 exactly. ``abort_at`` presses Escape during that position's clip,
    ``crash_at`` breaks the window while asking, ``fail_at`` are clips that cannot play."""

    def __init__(self, answer=lambda trial: trial.answer, *, abort_at=None, crash_at=None,
                 fail_at=(), headphone_answer=lambda trial: trial.answer):
        self.answer, self.headphone_answer = answer, headphone_answer
        self.abort_at, self.crash_at, self.fail_at = abort_at, crash_at, set(fail_at)
        self.clock = 1000.0
        self.messages: list[tuple[str, bool]] = []
        self.shown: list[int] = []
        self.asked: list[tuple[str, tuple]] = []
        self.headphone_trials = 0

    def now(self):
        return self.clock

    def show_message(self, text, *, wait=True):
        self.messages.append((text, wait))

    def show_stimulus(self, trial):
        if trial.position == self.abort_at:
            raise Aborted
        if trial.position in self.fail_at:
            raise OSError(f"{trial.file}: unreadable")
        self.shown.append(trial.position)
        self.clock += 0.5
        onset = self.clock
        self.clock += 3.0
        return {"onset": onset, **PLAYBACK, "ended_at": self.clock}

    def collect_response(self, trial):
        self.asked.append((trial.prompt, trial.options))
        if trial.position == self.crash_at:
            raise RuntimeError("window lost")
        self.clock += 0.75
        return self.answer(trial), self.clock

    def play_headphone_trial(self, trial):
        self.headphone_trials += 1
        return self.headphone_answer(trial), 0.625

    def texts(self):
        return [t for t, _ in self.messages]


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    """A manifest with every kind of stimulus (none, av_offset, semantic_swap, audio_only,
    visual_only) over 10 source videos, and a practice manifest; no files needed."""
    root = tmp_path_factory.mktemp("manifest")
    (root / "suite.yaml").write_text(SUITE)
    test = synthetic_manifest(root / "suite.yaml", per_class=1, classes=TEST_CLASSES[:10])
    practice = synthetic_manifest(root / "suite.yaml", per_class=1, classes=TEST_CLASSES[:4],
                                  prefix="p")
    return root, test, practice


def planned_trials(manifest, folder, task):
    root, test, practice = manifest
    study = plan_study(test, folder, {**DESIGN, "task": task, "suite_root": str(root),
                                      "practice": {"n": 3, "suite_root": str(root)}},
                       practice=practice)
    plan = session_plan(study, "P01", 1)
    plan.trials.attrs["path"] = str(plan.plan_path)
    return plan


def open_planned(data, plan, task, **options):
    return H.open_session(data, "P01", 1, task, plan.trials, plan_file=plan.plan_path,
                          plan_sha256=plan.sha256, facts={"study": "s", "list": plan.list_id},
                          **options)


def wrong_on_odd_positions(trial):
    if trial.position % 2 == 0:
        return trial.answer
    others = [answer for answer, _ in trial.options if answer != trial.answer]
    return others[trial.position % len(others)]


def test_classify_session_rows_scores_breaks_and_feedback(manifest, tmp_path):
    plan = planned_trials(manifest, tmp_path / "study", "classify")
    trials = plan.trials
    screen = ScriptedScreen(wrong_on_odd_positions)
    session = open_planned(tmp_path / "data", plan, "classify")
    assert session.run(screen) == "complete"

    rows = pd.read_csv(session.writer.path, keep_default_na=False, dtype=str)
    assert list(rows.columns) == list(schema.TRIALS_COLUMNS)
    assert rows["position"].astype(int).tolist() == trials["position"].tolist()
    assert rows["stimulus_id"].tolist() == trials["stimulus_id"].tolist()
    assert rows["trial"].tolist() == rows["position"].tolist()
    # what is recorded: the answer key is the class, whatever was done to the stimulus (the
    # one-modality stimuli are classified too)
    assert rows["label"].tolist() == trials["label"].tolist()
    assert {"audio_only", "visual_only"} <= set(rows["manipulation"])
    responses = [wrong_on_odd_positions(H.StimulusTrial("classify", t))
                 for t in trials.to_dict("records")]
    assert rows["response"].tolist() == responses
    assert rows["correct"].tolist() == [str(r == label) for r, label in
                                        zip(responses, trials["label"])]
    assert (rows["correct"] == "True").sum() == (trials["position"] % 2 == 0).sum()
    assert set(rows["rt"]) == {"0.75"} and set(rows["rt_from_onset"]) == {"3.75"}
    assert (rows[list(PLAYBACK)].astype(str) == pd.Series(PLAYBACK).astype(str)).all().all()
    assert rows["repeat"].tolist() == trials["repeat"].astype(str).tolist()
    assert rows["audio_source"].tolist() == trials["audio_source"].tolist()
    assert (rows["list"] == str(plan.list_id)).all() and (rows["error"] == "").all()
    assert (rows[["participant", "session", "task"]] == ["P01", "1", "classify"]).all().all()

    # what is shown: the introduction once, a break before each planned one, feedback after
    # each practice answer (the answer when it was wrong), then the closing message
    texts = screen.texts()
    assert texts[0] == "Watch and listen to each short video, then answer. " \
                       "Which action was it?"
    assert texts[-1] == H.FINISHED_MESSAGE
    main = trials[trials["block"] == "main"]
    assert texts.count(H.BREAK_MESSAGE) == int(main["break_before"].sum()) > 0
    practice = trials[trials["block"] == "practice"].to_dict("records")
    expected = ["Correct!" if p["position"] % 2 == 0 else f"The answer was: {p['label']}"
                for p in practice]
    assert [t for t in texts if t == "Correct!" or t.startswith("The answer was")] == expected
    assert {prompt for prompt, _ in screen.asked} == {H.RESPONSE_PROMPTS["classify"]}
    assert [a for a, _ in screen.asked[0][1]] == list(TEST_CLASSES)
    assert screen.shown == trials["position"].tolist()

    data = tmp_path / "data"
    assert (data / "sub-P01_ses-1_classify-status.txt").read_text() == "complete\n"
    assert session.writer.path.with_name(session.writer.path.name + ".done").exists()
    record = json.loads(sidecar_path(session.writer.path).read_text())
    assert record["plan_sha256"] == plan.sha256 and record["list"] == plan.list_id


def test_correspondence_session_scores_same_or_different_without_one_modality(manifest,
                                                                             tmp_path):
    plan = planned_trials(manifest, tmp_path / "study", "correspondence")
    trials = plan.trials
    assert not set(trials["manipulation"]) & {"audio_only", "visual_only"}  # left out by plan
    screen = ScriptedScreen(lambda trial: "same")
    session = open_planned(tmp_path / "data", plan, "correspondence")
    assert session.run(screen) == "complete"
    rows = pd.read_csv(session.writer.path, keep_default_na=False, dtype=str)
    assert list(rows.columns) == list(schema.TRIALS_COLUMNS)
    expected = ["different" if m == "semantic_swap" else "same" for m in trials["manipulation"]]
    assert rows["label"].tolist() == expected
    assert {"same", "different"} == set(expected)
    assert (rows["response"] == "same").all()
    assert rows["correct"].tolist() == [str(e == "same") for e in expected]
    assert screen.texts()[0].endswith("Do sound and picture show the same action?")
    assert screen.asked[0] == (H.RESPONSE_PROMPTS["correspondence"],
                               (("same", "f"), ("different", "j")))


def test_a_correspondence_session_refuses_one_modality_trials(manifest, tmp_path):
    plan = planned_trials(manifest, tmp_path / "study", "classify")
    with pytest.raises(DatasetError, match=r"trials have no correspondence question \(one "
                                           r"modality only; first: .*(audio|visual)_only\)"):
        open_planned(tmp_path / "data", plan, "correspondence")
    assert not (tmp_path / "data").exists()            # refused before anything was written


def test_demo_trials_leave_one_modality_out_of_correspondence(manifest):
    _, test, _ = manifest
    table = test.assign(file=test["path"])
    classify, _ = H.demo_trials(table, "P01", task="classify", practice_n=2, break_every=5)
    corr, sha = H.demo_trials(table, "P01", task="correspondence", practice_n=2, break_every=5)
    assert set(classify.loc[classify["block"] == "main", "stimulus_id"]) == \
        set(test["stimulus_id"])
    kept = test[~test["manipulation"].isin(["audio_only", "visual_only"])]
    assert set(corr.loc[corr["block"] == "main", "stimulus_id"]) == set(kept["stimulus_id"])
    assert corr["position"].tolist() == list(range(1, len(kept) + 3))
    main_n = (corr["block"] == "main").cumsum()
    assert corr.loc[corr["break_before"], "position"].tolist() == \
        corr.loc[(corr["block"] == "main") & (main_n % 5 == 1) & (main_n > 1),
                 "position"].tolist()
    assert len(sha) == 64


def test_resume_continues_at_the_next_planned_position_without_duplicates(manifest, tmp_path):
    plan = planned_trials(manifest, tmp_path / "study", "classify")
    positions = plan.trials["position"].tolist()
    data = tmp_path / "data"
    first = ScriptedScreen(abort_at=7)                 # Escape during the 7th clip
    session = open_planned(data, plan, "classify")
    assert session.run(first) == "aborted"
    assert (data / "sub-P01_ses-1_classify-status.txt").read_text() == "aborted\n"
    kept = session.writer.path.read_bytes()
    assert pd.read_csv(session.writer.path)["position"].tolist() == positions[:6]

    second = ScriptedScreen(crash_at=10)               # the window breaks while asking
    session = open_planned(data, plan, "classify")
    assert session.done == set(positions[:6])
    with pytest.raises(RuntimeError, match="window lost"):
        session.run(second)
    assert second.shown[0] == 7 and H.introduction("classify") not in second.texts()
    assert (data / "sub-P01_ses-1_classify-status.txt").read_text() == \
        "error: RuntimeError: window lost\n"

    third = ScriptedScreen()
    session = open_planned(data, plan, "classify")
    assert session.run(third) == "complete"
    assert third.shown == positions[9:]
    assert session.writer.path.read_bytes().startswith(kept)
    rows = pd.read_csv(session.writer.path)
    assert rows["position"].tolist() == positions             # each once, in order
    assert rows["stimulus_id"].tolist() == plan.trials["stimulus_id"].tolist()
    assert not list(data.glob("*_run-2_*"))


def test_a_clip_that_fails_is_recorded_and_the_session_goes_on(manifest, tmp_path):
    plan = planned_trials(manifest, tmp_path / "study", "classify")
    screen = ScriptedScreen(fail_at={5})
    session = open_planned(tmp_path / "data", plan, "classify")
    assert session.run(screen) == "complete"
    rows = pd.read_csv(session.writer.path, keep_default_na=False, dtype=str)
    failed = rows[rows["position"] == "5"].iloc[0]
    assert failed["error"].startswith("OSError: ") and failed["error"].endswith(": unreadable")
    assert (failed[["response", "correct", "rt_from_onset", "onset", "frames_shown"]] == ""
            ).all()
    assert failed["rt"] == "0.0"
    assert (rows.loc[rows["position"] != "5", "error"] == "").all()
    assert len(rows) == len(plan.trials)


def test_the_headphone_screen_comes_first_and_a_fail_ends_the_session(manifest, tmp_path):
    plan = planned_trials(manifest, tmp_path / "study", "classify")
    woods = HP.read_headphone_config({"headphone_check": "woods"})
    passed = ScriptedScreen()
    session = open_planned(tmp_path / "a", plan, "classify", headphones=woods,
                           headphone_seed=3)
    assert session.run(passed) == "complete"
    hp = pd.read_csv(tmp_path / "a" / "sub-P01_ses-1_task-headphonecheck_beh.csv", dtype=str)
    assert list(hp.columns) == list(schema.HEADPHONE_CHECK_COLUMNS)
    assert passed.headphone_trials == 6 and (hp["correct"] == "True").all()
    assert hp["order"].tolist() == ["-".join(o) for o in HP.woods_trials(3)]
    assert passed.texts()[0] == HP.INSTRUCTIONS["woods"]

    failed = ScriptedScreen(headphone_answer=lambda trial: str(trial.target % 3 + 1))
    session = open_planned(tmp_path / "b", plan, "classify", headphones=woods)
    assert session.run(failed) == "headphone_check_failed"
    assert failed.texts()[-1] == HP.FAILED and failed.shown == []
    assert (tmp_path / "b" / "sub-P01_ses-1_classify-status.txt").read_text() == \
        "headphone_check_failed\n"
    assert pd.read_csv(session.writer.path).empty


# --------------------------------------------------------------------------------------------
# The annotation task
# --------------------------------------------------------------------------------------------
class ScriptedRater:
    """Stands in for ``screens.AnnotationScreen``: ``rating(video)`` gives each rating;
    ``early`` videos get a key pressed while they play (first showing), ``replays`` videos
    are replayed that many times; ``abort_at`` presses Escape during the n-th main video,
    ``fail`` are videos that cannot play. Each playback lasts 3 s, each answer 0.5 s."""

    def __init__(self, rating, *, early=(), replays=None, abort_at=None, fail=(), pool=()):
        self.rating, self.early, self.replays = rating, set(early), dict(replays or {})
        self.abort_at, self.fail, self.pool = abort_at, set(fail), set(pool)
        self.clock = 50.0
        self.played: list[tuple[str, str, int]] = []
        self.warnings, self.feedback, self.messages = 0, [], []
        self._video = None
        self._main_plays = 0

    def play(self, video, *, label, bonus_pence):
        if video.filename in self.pool and video.filename not in \
                {v for v, _, _ in self.played}:
            self._main_plays += 1
            if self._main_plays == self.abort_at:
                self.aborted_on = video.filename
                raise Aborted
        if video.filename in self.fail:
            raise OSError(f"{video.path}: cannot decode")
        first = video.filename not in {v for v, _, _ in self.played}
        self.played.append((video.filename, label, bonus_pence))
        self._video = video
        self.clock += 3.0
        early = ["2"] if first and video.filename in self.early else []
        return {"early_keys": early, "ended_at": self.clock, "onset": self.clock - 3.0,
                **PLAYBACK}

    def show_early_warning(self):
        self.warnings += 1

    def wait_key(self, keys):
        self.clock += 0.5
        if self.replays.get(self._video.filename, 0) > 0:
            self.replays[self._video.filename] -= 1
            return "space", self.clock
        return str(self.rating(self._video)), self.clock

    def show_feedback(self, text):
        self.feedback.append(text)

    def show_message(self, text, *, wait=True):
        self.messages.append(text)


def _table(prefix, n, **extra):
    table = pd.DataFrame({
        "filename": [f"{prefix}/v{i:02d}.mp4" for i in range(n)],
        "AVMIT_label": [TEST_CLASSES[i % 16] for i in range(n)],
        "MIT_label": [TEST_CLASSES[i % 16] for i in range(n)],
        "video_location": "training", "path": [f"/videos/{prefix}/v{i:02d}.mp4" for i in range(n)]})
    for key, values in extra.items():
        table[key] = values
    return table


@pytest.fixture
def annotation_tables():
    pool = _table("pool", 8, ground_truth=[3, "", "", 1, "", "", 2, ""])
    training = _table("training", 2, expected_rating=[3, 1],
                      reasoning=["The bark is loud.", "Nothing is heard."])
    screening = _table("screening", 3, expected_rating=[2, 3, 1])
    return {"pool": pool, "training": training, "screening": screening}


#: The rating each video gets from the scripted rater: the ground truth on pool videos v00
#: and v03 (a bonus each), not on v06; the expected rating on training v00 and every
#: screening video.
RATINGS = {"pool/v00.mp4": 3, "pool/v03.mp4": 1, "pool/v06.mp4": 3,
           "training/v00.mp4": 3, "training/v01.mp4": 2,
           "screening/v00.mp4": 2, "screening/v01.mp4": 3, "screening/v02.mp4": 1}
SETTINGS = A.AnnotationSettings(raters_per_video=1, bonus_pence=10, trials_per_block=3,
                                ground_truth_rate=0.5)


def annotation_session(data, tables, **options):
    db = AssignmentDB(data / "annotation.sqlite", raters_per_video=1)
    writers = A.open_writers(data, "P01", 1)
    return A.AnnotationSession(writers, db=db, tables=tables, participant="P01", session=1,
                               settings=SETTINGS, **options), db


def _rating(video):
    return RATINGS.get(video.filename, 2)


def test_annotation_session_rows_scores_bonus_and_warnings(annotation_tables, tmp_path):
    data = tmp_path / "data"
    pool = annotation_tables["pool"]
    rater = ScriptedRater(_rating, early={"pool/v01.mp4", "pool/v04.mp4", "training/v01.mp4"},
                          replays={"pool/v02.mp4": 2}, pool=pool["filename"])
    session, db = annotation_session(data, annotation_tables, instructions="Rate each video.")
    assert session.run(rater) == "complete"
    read = lambda name: pd.read_csv(data / f"sub-P01_ses-1_task-{name}_beh.csv",  # noqa: E731
                                    keep_default_na=False, dtype=str)
    training, screening, main = (read(n) for n in ("annotationtraining",
                                                   "annotationscreening", "annotation"))
    for rows in (training, screening, main):
        assert list(rows.columns) == list(schema.ANNOTATION_ROW_COLUMNS)
    # training: scored against the expected rating, the reasoning shown after each answer
    assert training["correct"].tolist() == ["True", "False"]
    assert training["trial"].tolist() == ["1", "2"]
    assert rater.feedback == ["You rated 3; the expected rating is 3. The bark is loud.",
                              "You rated 2; the expected rating is 1. Nothing is heard."]
    assert (screening["correct"] == "True").all() and (screening["block"] == "screening").all()
    # main: every pool video once, numbered on; a bonus for each rating that matches the
    # ground truth, the counter carried in every row and shown on screen
    assert sorted(main["filename"]) == sorted(pool["filename"])
    assert main["trial"].tolist() == [str(i) for i in range(1, 9)]
    assert main["rating"].tolist() == [str(RATINGS.get(f, 2)) for f in main["filename"]]
    gt = dict(zip(pool["filename"], pool["ground_truth"].astype(str)))
    assert main["ground_truth"].tolist() == [gt[f] for f in main["filename"]]
    expected_match = [gt[f] != "" and int(gt[f]) == RATINGS.get(f, 2) for f in main["filename"]]
    assert main["bonus_match"].tolist() == [str(m) for m in expected_match]
    assert sum(expected_match) == 2
    running = [10 * sum(expected_match[:i + 1]) for i in range(8)]
    assert main["bonus_pence"].astype(int).tolist() == running
    shown = {f: pence for f, _, pence in rater.played}
    assert [shown[f] for f in main["filename"]] == [0] + running[:-1]
    assert db.matches("P01") == 2
    # early presses: warned, counted, not taken as the rating; replays counted
    early = main.set_index("filename")["early_presses"]
    assert early["pool/v01.mp4"] == early["pool/v04.mp4"] == "1"
    assert (early.drop(["pool/v01.mp4", "pool/v04.mp4"]) == "0").all()
    assert training.loc[1, "early_presses"] == "1" and rater.warnings == 3
    assert main.set_index("filename").loc["pool/v02.mp4", "replays"] == "2"
    assert [f for f, _, _ in rater.played].count("pool/v02.mp4") == 3
    assert set(main["rt"]) == {"0.5"} and (main["audio_backend"] == "fake").all()
    # what is shown around the trials
    assert rater.messages[0] == "Rate each video."
    assert [m for m in rater.messages if m.startswith("Time for a break")] == [
        "Time for a break. 3 videos rated so far.", "Time for a break. 6 videos rated so far."]
    assert rater.messages[-1] == A.FINISHED_MESSAGE
    assert (data / "sub-P01_ses-1_annotation-status.txt").read_text() == "complete\n"
    ratings = db.ratings().set_index("filename")
    assert (ratings["state"] == "done").all()
    assert (ratings.loc[main["filename"], "rating"].astype(str).tolist() ==
            main["rating"].tolist())


def test_annotation_screening_fail_ends_the_session(annotation_tables, tmp_path):
    data = tmp_path / "data"
    rater = ScriptedRater(lambda v: 1 if v.filename == "screening/v01.mp4" else _rating(v))
    session, _ = annotation_session(data, annotation_tables)
    assert session.run(rater) == "screening_failed"
    assert rater.messages[-1] == "Screening: 2 of 3 matched. Thank you for your time."
    assert not any(f.startswith("pool/") for f, _, _ in rater.played)
    assert pd.read_csv(data / "sub-P01_ses-1_task-annotation_beh.csv").empty
    assert (data / "sub-P01_ses-1_annotation-status.txt").read_text() == "screening_failed\n"
    assert SETTINGS.pass_mark(3) == 3 and A.AnnotationSettings().pass_mark(41) == 38


def test_annotation_resume_after_an_interruption(annotation_tables, tmp_path):
    data = tmp_path / "data"
    pool = annotation_tables["pool"]
    first = ScriptedRater(_rating, pool=pool["filename"], abort_at=4)
    session, db = annotation_session(data, annotation_tables, instructions="Rate each video.")
    assert session.run(first) == "aborted"
    db.close()
    path = data / "sub-P01_ses-1_task-annotation_beh.csv"
    before = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert len(before) == 3
    second = ScriptedRater(_rating, pool=pool["filename"])
    session, db = annotation_session(data, annotation_tables, instructions="Rate each video.")
    assert session.run(second) == "complete"
    assert "Rate each video." not in second.messages          # not a fresh session
    assert not any(f.startswith(("training/", "screening/")) for f, _, _ in second.played)
    # the interrupted video is still leased to this participant: it comes first
    assert second.played[0][0] == first.aborted_on
    rows = pd.read_csv(path)
    assert rows["filename"].is_unique and sorted(rows["filename"]) == sorted(pool["filename"])
    assert rows["trial"].tolist() == list(range(1, 9))
    pd.testing.assert_frame_equal(pd.read_csv(path, dtype=str, keep_default_na=False).iloc[:3],
                                  before)
    assert rows["bonus_pence"].is_monotonic_increasing
    assert rows["bonus_pence"].iloc[-1] == 10 * int(rows["bonus_match"].sum()) == \
        10 * db.matches("P01")
    assert len(db.ratings()) == 8 and (db.ratings()["state"] == "done").all()


def test_annotation_video_that_fails_is_logged_and_given_back(annotation_tables, tmp_path):
    data = tmp_path / "data"
    pool = annotation_tables["pool"]
    rater = ScriptedRater(_rating, pool=pool["filename"], fail={"pool/v05.mp4"})
    session, db = annotation_session(data, annotation_tables)
    assert session.run(rater) == "complete"
    rows = pd.read_csv(data / "sub-P01_ses-1_task-annotation_beh.csv")
    assert sorted(rows["filename"]) == sorted(set(pool["filename"]) - {"pool/v05.mp4"})
    assert rows["trial"].tolist() == list(range(1, 8))
    log = pd.read_csv(data / "sub-P01_ses-1_annotation-errors.csv")
    assert log["filename"].tolist() == ["pool/v05.mp4"]
    assert log["error"].iloc[0] == "OSError: /videos/pool/v05.mp4: cannot decode"
    assert db.next_video("P02", 1).filename == "pool/v05.mp4"   # free for another rater


def test_annotation_settings_from_the_config():
    import yaml
    shipped = yaml.safe_load((REPO / "experiments" / "annotation.yaml").read_text())
    settings = A.AnnotationSettings.from_config(shipped)
    assert (settings.bonus_pence, settings.screening_pass_mark, settings.screening_of) == \
        (shipped["bonus_pence"], 38, 41)
    assert settings.ground_truth_rate == shipped["ground_truth_rate"]
    with pytest.raises(DatasetError, match=r"a.yaml, column 'trials_per_block': "
                                           r"trials_per_block 'many' is not a number"):
        A.AnnotationSettings.from_config({"trials_per_block": "many"}, path="a.yaml")


# --------------------------------------------------------------------------------------------
# The same session with the PsychoPy presenter (Xvfb)
# --------------------------------------------------------------------------------------------
PSYCHOPY_RUN = """
import sys, pandas as pd, yaml
from pathlib import Path
from avmit_psych.experiments import human_vs_dnn as H, screens
from avmit_psych.experiments.audio import read_audio_config
manifest, data = Path(sys.argv[1]), Path(sys.argv[2])
table = pd.read_csv(manifest, keep_default_na=False)
table["file"] = table["path"]
trials, sha = H.demo_trials(table, "P01", practice_n=1, break_every=3)
session = H.open_session(data, "P01", 1, "classify", trials, plan_file=manifest,
                         plan_sha256=sha, planned=False, fast=True)
audio = yaml.safe_load(Path(sys.argv[3]).read_text())["audio"]
output = screens.prepare_devices(read_audio_config(audio), null_device=True)
win = screens.open_window({"size": [800, 600], "fullscr": False}, windowed=True)
try:
    screen = screens.HumanVsDnnScreen(win, "classify", fast=True,
                                      observer=H.SimulatedObserver(5, accuracy=0.6))
    print("status:", session.run(screen))
finally:
    screens.close_devices(win)
"""


def test_the_psychopy_presenter_runs_the_same_session(tmp_path):
    if not os.environ.get("DISPLAY"):
        pytest.skip("needs a display: run under xvfb-run (scripts/test.sh)")
    from avmit_psych.dataset import synthetic
    csv = synthetic.write_probe_clips(tmp_path / "videos", tmp_path / "test_set.csv",
                                      per_class=1, classes=TEST_CLASSES[:5])
    clips = pd.read_csv(csv, keep_default_na=False)
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame({"stimulus_id": [f"probe{i}" for i in range(len(clips))],
                  "path": [str(tmp_path / "videos" / p) for p in clips["new_filename"]],
                  "label": clips["AVMIT_label"], "manipulation": "none", "level": ""}
                 ).to_csv(manifest, index=False)
    config = REPO / "experiments" / "human_vs_dnn.yaml"
    proc = subprocess.run([sys.executable, "-c", PSYCHOPY_RUN, str(manifest),
                           str(tmp_path / "real"), str(config)],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "status: complete" in proc.stdout.splitlines()   # (PsychoPy logs to stdout too)
    real = pd.read_csv(tmp_path / "real" / "sub-P01_ses-1_task-classify_beh.csv",
                       keep_default_na=False, dtype=str)

    # the fake presenter answers as the simulated observer does in the real one
    observer = H.SimulatedObserver(5, accuracy=0.6)
    table = pd.read_csv(manifest, keep_default_na=False).assign(file=lambda t: t["path"])
    trials, sha = H.demo_trials(table, "P01", practice_n=1, break_every=3)
    session = H.open_session(tmp_path / "fake", "P01", 1, "classify", trials,
                             plan_file=manifest, plan_sha256=sha, planned=False, fast=True)
    screen = ScriptedScreen(lambda trial: observer.respond("classify", trial.stimulus))
    assert session.run(screen) == "complete"
    fake = pd.read_csv(session.writer.path, keep_default_na=False, dtype=str)

    assert list(real.columns) == list(fake.columns) == list(schema.TRIALS_COLUMNS)
    same = ["participant", "session", "task", "block", "trial", "stimulus_id", "label",
            "manipulation", "response", "correct", "repeat", "error", "position"]
    pd.testing.assert_frame_equal(real[same], fake[same])
    assert (real["correct"] == "False").any() and (real["correct"] == "True").any()
    assert (real["frames_shown"].astype(int) == 15).all()      # --fast: 0.5 s at 30 fps
    assert (real["rt"].astype(float) > 0).all()
    assert (real["rt_from_onset"].astype(float) > real["rt"].astype(float)).all()
