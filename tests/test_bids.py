"""BIDS export (``python -m avmit_psych.experiments bids``): a simulated study's data files
written by the experiment's own writer (two tasks, two sessions, a headphone screen) exported,
checked by the official validator (``bids-validator-deno``), every column described from the
schema's tables, read back by compare with the same accuracies, and bad input refused with
nothing written."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from avmit_psych.dataset import schema
from avmit_psych.experiments import bids
from avmit_psych.experiments import headphones as HP
from avmit_psych.experiments import human_vs_dnn as H
from avmit_psych.experiments.datafile import TrialWriter
from avmit_psych.experiments.study import bind_data_file, update_sidecar

REPO = Path(__file__).resolve().parents[1]
CLASSES = ("barking", "drumming", "raining", "whistling")
CONDITIONS = [("none", ""), ("audio_noise", "-5"), ("audio_noise", "5"), ("visual_noise", "32"),
              ("av_offset", "200"), ("semantic_swap", None), ("audio_only", ""),
              ("visual_only", "")]
PARTICIPANTS = ("P01", "P_02", "lab-3")
FAILED = "RuntimeError: clip\tfailed\nto decode"


# --------------------------------------------------------------------------------------------
# a simulated study, written by the experiment's writer
# --------------------------------------------------------------------------------------------
def manifest() -> list[dict]:
    rows = []
    for ci, c in enumerate(CLASSES):
        donor = CLASSES[(ci + 1) % len(CLASSES)]
        for m, level in CONDITIONS:
            rows.append({"stimulus_id": f"{c}_1__{m}{'_' + level if level else ''}",
                         "label": c, "manipulation": m,
                         "level": donor if m == "semantic_swap" else level,
                         "audio_source": f"{donor if m == 'semantic_swap' else c}/{c}_1.mp4"})
    return rows


def write_session(data, participant, session, task, stims, seed, *, practice=(), repeat=(),
                  failed_trial=None, finish=True, extra=None) -> Path:
    """One session through TrialWriter (with its session record), as experiments/
    human_vs_dnn.py writes it: practice, main trials, repeats; one trial whose playback
    failed; NaN timing figures now and then."""
    observer = H.SimulatedObserver(seed, accuracy=0.75)
    columns = H.TRIAL_COLUMNS + list(extra or {})
    with TrialWriter(data, participant, session, task, columns) as writer:
        bind_data_file(writer.path, plan_file="study/lists/list-1_session-1.csv",
                       plan_sha256="ab" * 32, resuming=False, participant=participant,
                       session=session, task=task, study="", list=1)
        update_sidecar(writer.path, audio_backend="sounddevice", latency_ms=12.0)
        rows = [("practice", s, False) for s in practice] + \
            [("main", s, False) for s in stims] + [("main", s, True) for s in repeat]
        onset = 10.0
        for i, (block, stim, again) in enumerate(rows, start=1):
            failed = failed_trial == i
            response = "" if failed else observer.respond(task, stim)
            rt = observer.rt()
            writer.write({
                "participant": participant, "session": session, "task": task, "block": block,
                "trial": i, "stimulus_id": stim["stimulus_id"],
                "label": H.correct_response(task, stim), "manipulation": stim["manipulation"],
                "level": stim["level"], "response": response,
                "correct": "" if failed else H.score(task, stim, response),
                "rt": "" if failed else round(rt, 4),
                "rt_from_onset": "" if failed else round(rt + 3, 4), "onset": round(onset, 4),
                "frames_shown": 0 if failed else 90, "dropped_frames": 0,
                "av_onset_asynchrony_ms": float("nan") if i % 5 == 0 else 0.4,
                "playback_s": 3.0, "repeat": again, "audio_source": stim["audio_source"],
                "error": FAILED if failed else "", "list": 1, "position": i,
                "planned_offset_ms": 0.0, "latency_ms": 12.0, "scheduled_lead_ms": 12.1,
                "audio_start_error_ms": 0.3, "frame_interval_sd_ms": 0.8,
                "timing_ok": i % 7 != 0, "audio_backend": "sounddevice", **(extra or {})})
            onset += 6.5
        if finish:
            writer.finish()
    return writer.path


def headphone_file(data, participant, session) -> Path:
    screen = HP.HeadphoneScreen(seed=3)
    with TrialWriter(data, participant, session, "headphonecheck", HP.HEADPHONE_COLUMNS) as w:
        while (trial := screen.next_trial()) is not None:
            w.write({"participant": participant, "session": session,
                     **screen.record(trial.answer, 1.2)})
        w.finish()
    return w.path


def build_study(data: Path, tasks=("classify", "correspondence")) -> Path:
    """Three participants (ids that BIDS must relabel), two sessions of each task, the
    stimuli split between the sessions, practice and repeats in classify."""
    stims = manifest()
    practice = [dict(s, stimulus_id="practice_" + s["stimulus_id"]) for s in stims[:2]]
    asked = [s for s in stims if s["manipulation"] not in ("audio_only", "visual_only")]
    for k, p in enumerate(PARTICIPANTS):
        headphone_file(data, p, 1)
        if "classify" in tasks:
            write_session(data, p, 1, "classify", stims[0::2], 10 + k, practice=practice,
                          failed_trial=4 if k == 0 else None)
            write_session(data, p, 2, "classify", stims[1::2], 20 + k, repeat=stims[0:4:2],
                          finish=k != 2)
        if "correspondence" in tasks:
            write_session(data, p, 1, "correspondence", asked[0::2], 30 + k)
            write_session(data, p, 2, "correspondence", asked[1::2], 40 + k)
    return data


def validator() -> str:
    exe = shutil.which("bids-validator-deno") or \
        str(Path(sys.executable).with_name("bids-validator-deno"))
    assert Path(exe).exists(), "bids-validator-deno is in requirements.txt: pip install it"
    return exe


def validate(folder: Path) -> tuple[list[dict], list[dict]]:
    """The official validator's errors and warnings on ``folder``."""
    done = subprocess.run([validator(), str(folder), "--format", "json"], capture_output=True,
                          text=True, timeout=300)
    issues = json.loads(done.stdout)["issues"]["issues"]
    errors = [i for i in issues if i["severity"] == "error"]
    assert (done.returncode == 0) == (not errors), done.stderr
    return errors, [i for i in issues if i["severity"] == "warning"]


def sidecar_of(tsv: Path, root: Path) -> dict:
    """The metadata that applies to a _beh.tsv (BIDS inheritance: the task's top-level file,
    then the file's own)."""
    task = bids._TASK_IN_NAME.search(tsv.name).group(1)
    merged = json.loads((root / f"task-{task}_beh.json").read_text())
    merged.update(json.loads(tsv.with_suffix(".json").read_text()))
    return merged


def read_tsv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("bids_study")
    data = build_study(root / "data")
    from avmit_psych._cli import run
    from avmit_psych.experiments.__main__ import main
    assert run(main, ["bids", "--data", str(data), "--out", str(root / "bids")]) == 0
    return {"root": root, "data": data, "bids": root / "bids"}


# --------------------------------------------------------------------------------------------
# the export
# --------------------------------------------------------------------------------------------
def test_export_of_a_simulated_study_passes_the_bids_validator(study):
    out = study["bids"]
    errors, warnings = validate(out)
    assert errors == []
    # what is left are optional metadata a lab adds (authors, licence, institution, ids)
    assert {w["code"] for w in warnings} <= {"SIDECAR_KEY_RECOMMENDED", "JSON_KEY_RECOMMENDED",
                                             "NO_AUTHORS", "TOO_FEW_AUTHORS"}
    recommended = {w.get("subCode") for w in warnings if w["code"] == "SIDECAR_KEY_RECOMMENDED"}
    assert recommended <= {"CogAtlasID", "CogPOID", "InstitutionName", "InstitutionAddress",
                           "InstitutionalDepartmentName"}   # TaskName etc. are all there
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md", "dataset_description.json", "participants.json", "participants.tsv",
        "sub-P01", "sub-P02", "sub-lab3", "task-classify_beh.json",
        "task-correspondence_beh.json", "task-headphonecheck_beh.json"]
    tsvs = sorted(p.relative_to(out).as_posix() for p in out.rglob("*_beh.tsv"))
    assert len(tsvs) == 3 * (1 + 2 + 2)
    assert "sub-P02/ses-2/beh/sub-P02_ses-2_task-correspondence_beh.tsv" in tsvs
    assert "sub-lab3/ses-1/beh/sub-lab3_ses-1_task-headphonecheck_beh.tsv" in tsvs
    assert not list(study["root"].glob(".bids.staging-*"))

    description = json.loads((out / "dataset_description.json").read_text())
    assert description["DatasetType"] == "raw" and description["BIDSVersion"] == "1.10.0"
    from avmit_psych import __version__
    assert description["GeneratedBy"][0]["Name"] == "avmit_psych"
    assert description["GeneratedBy"][0]["Version"] == __version__
    participants = read_tsv(out / "participants.tsv")
    assert participants.to_dict("list") == {"participant_id": ["sub-P01", "sub-P02",
                                                               "sub-lab3"],
                                            "source_participant": ["P01", "P_02", "lab-3"]}
    assert set(json.loads((out / "participants.json").read_text())) == set(participants)


def test_trials_are_the_source_rows_with_n_a_for_missing_values(study):
    out, data = study["bids"], study["data"]
    csv = pd.read_csv(data / "sub-P01_ses-1_task-classify_beh.csv", dtype=str,
                      keep_default_na=False)
    tsv = read_tsv(out / "sub-P01/ses-1/beh/sub-P01_ses-1_task-classify_beh.tsv")
    assert list(tsv.columns) == list(csv.columns) == H.TRIAL_COLUMNS
    assert len(tsv) == len(csv) == 2 + 16
    assert (tsv == "").sum().sum() == 0
    failed = tsv.iloc[3]
    assert failed["error"] == "RuntimeError: clip failed to decode"   # no tab, no line break
    assert failed[["response", "correct", "rt"]].tolist() == ["n/a", "n/a", "n/a"]
    assert tsv.loc[csv["level"] == "", "level"].eq("n/a").all()
    assert csv["av_onset_asynchrony_ms"].iloc[4] == "nan"
    assert tsv["av_onset_asynchrony_ms"].iloc[4] == "n/a"
    untouched = [c for c in csv.columns if c not in ("error", "level", "response", "correct",
                                                     "rt", "rt_from_onset",
                                                     "av_onset_asynchrony_ms")]
    pd.testing.assert_frame_equal(tsv[untouched], csv[untouched])
    assert tsv["participant"].eq("P01").all()
    record = json.loads((out / "sub-P02/ses-1/beh/sub-P02_ses-1_task-classify_beh.json")
                        .read_text())
    assert record["SourceFile"] == "sub-P_02_ses-1_task-classify_beh.csv"
    assert record["SessionComplete"] is True
    assert record["SessionRecord"]["plan_sha256"] == "ab" * 32
    assert record["SessionRecord"]["audio_backend"] == "sounddevice"
    unfinished = json.loads((out / "sub-lab3/ses-2/beh/sub-lab3_ses-2_task-classify_beh.json")
                            .read_text())
    assert unfinished["SessionComplete"] is False


def test_every_column_of_the_contract_is_described_from_the_schema(study):
    # the tables cover every column the experiments write
    assert set(H.TRIAL_COLUMNS) <= set(schema.TRIALS_COLUMN_DESCRIPTIONS)
    assert set(HP.HEADPHONE_COLUMNS) <= set(schema.HEADPHONE_CHECK_COLUMN_DESCRIPTIONS)
    out = study["bids"]
    generic = schema.GENERIC_COLUMN_DESCRIPTION.split("'{name}'")[1]
    for tsv in out.rglob("*_beh.tsv"):
        sidecar = sidecar_of(tsv, out)
        task = bids._TASK_IN_NAME.search(tsv.name).group(1)
        table = schema.column_descriptions(task)
        for column in read_tsv(tsv).columns:
            entry = sidecar[column]
            assert entry["Description"] == \
                table[column].task_description.get(task, table[column].description)
            assert generic not in entry["Description"]
            if table[column].units:
                assert entry["Units"] == table[column].units
    classify = json.loads((out / "task-classify_beh.json").read_text())
    assert classify["TaskName"] == "classify" and classify["Instructions"]
    assert classify["rt"]["Units"] == "s" and classify["latency_ms"]["Units"] == "ms"
    assert classify["audio_start_error_ms"]["Units"] == "ms"
    assert "Units" not in classify["level"] and "dB SNR" in classify["level"]["Description"]
    assert "pixel SD" in classify["level"]["Description"]
    assert classify["manipulation"]["Levels"] == {
        m: schema.MANIPULATION_LEVELS[m] for m, _ in dict(CONDITIONS).items()}
    assert set(CLASSES) <= set(classify["response"]["Levels"]) <= set(schema.TEST_CLASSES)
    assert classify["response"]["Levels"]["barking"] == "the action class 'barking'"
    assert classify["correct"]["Levels"] == {"False": "it was not",
                                             "True": "the response was the answer key"}
    assert set(classify["block"]["Levels"]) == {"practice", "main"}
    assert list(classify["task"]["Levels"]) == ["classify"]
    corr = json.loads((out / "task-correspondence_beh.json").read_text())
    assert set(corr["label"]["Levels"]) == set(corr["response"]["Levels"]) == \
        {"same", "different"}
    assert "semantic_swap" in corr["manipulation"]["Levels"]
    assert "audio_only" not in corr["manipulation"]["Levels"]   # only the levels present
    hp = json.loads((out / "task-headphonecheck_beh.json").read_text())
    assert set(hp["test"]["Levels"]) == {"woods", "huggins"}
    assert "participant" in hp and "task" not in hp


def test_a_column_outside_the_contract_is_kept_with_a_generic_description(tmp_path, cli):
    data = tmp_path / "data"
    stims = manifest()[:4]
    write_session(data, "P01", 1, "classify", stims, 1, extra={"eye_tracker_ok": "yes"})
    write_session(data, "P02", 1, "classify", stims, 2)
    r = cli("experiments", ["bids", "--data", data, "--out", tmp_path / "bids"])
    assert r.code == 0, r.err
    tsv = tmp_path / "bids/sub-P01/ses-1/beh/sub-P01_ses-1_task-classify_beh.tsv"
    assert read_tsv(tsv)["eye_tracker_ok"].eq("yes").all()
    own = json.loads(tsv.with_suffix(".json").read_text())   # only this file has it
    assert own["eye_tracker_ok"] == {"Description": schema.GENERIC_COLUMN_DESCRIPTION.format(
        name="eye_tracker_ok")}
    top = json.loads((tmp_path / "bids/task-classify_beh.json").read_text())
    assert "eye_tracker_ok" not in top and "rt" in top
    assert validate(tmp_path / "bids")[0] == []


def test_the_instructions_are_the_ones_the_experiment_shows():
    script = (REPO / "avmit_psych" / "experiments" / "human_vs_dnn.py").read_text()
    for sentence in ("Watch and listen to each short video, then answer.", "Which action was it?",
                     "Which action was it? Click it (or press its key), then OK.",
                     "Do sound and picture show the same action?", "F = same     J = different"):
        assert sentence in script
        assert any(sentence in t["Instructions"] for t in bids.TASKS.values())
    for text in HP.INSTRUCTIONS.values():
        assert text.replace("\n\n", " ") in bids.TASKS["headphonecheck"]["Instructions"]


# --------------------------------------------------------------------------------------------
# read back by compare
# --------------------------------------------------------------------------------------------
def _compare(cli, humans, out):
    r = cli("analysis", ["compare", "--humans", *humans, "--out", out, "--bootstrap", "0",
                         "--no-psychometric"])
    assert r.code == 0, r.err
    return pd.read_csv(out / "accuracy.csv")


@pytest.mark.parametrize("task", ["classify", "correspondence"])
def test_compare_on_the_bids_files_gives_the_same_accuracies(study, tmp_path, cli, task):
    csvs = sorted(study["data"].glob(f"*_task-{task}_beh.csv"))
    tsvs = sorted(study["bids"].glob(f"sub-*/ses-*/beh/*_task-{task}_beh.tsv"))
    assert len(csvs) == len(tsvs) == 6
    original = _compare(cli, csvs, tmp_path / "csv")
    exported = _compare(cli, tsvs, tmp_path / "bids")
    pd.testing.assert_frame_equal(exported, original)
    assert set(exported["observer"]) == set(PARTICIPANTS)   # the recorded ids
    assert len(exported) > 10 and exported["n_trials"].sum() > 50


def test_compare_reads_a_bids_dataset_folder(tmp_path, cli):
    data = build_study(tmp_path / "data", tasks=("classify",))
    r = cli("experiments", ["bids", "--data", data, "--out", tmp_path / "bids", "--validate"])
    assert r.code == 0, r.err
    assert "BIDS validator: no errors" in r.out
    assert "participant P_02 -> sub-P02" in r.out
    original = _compare(cli, [data], tmp_path / "c1")
    exported = _compare(cli, [tmp_path / "bids"], tmp_path / "c2")
    pd.testing.assert_frame_equal(exported, original)
    # a file without the participant column (a dataset edited elsewhere): participants.tsv
    tsv = tmp_path / "bids/sub-P02/ses-1/beh/sub-P02_ses-1_task-classify_beh.tsv"
    table = read_tsv(tsv).drop(columns=["participant", "session"])
    table.to_csv(tsv, sep="\t", index=False)
    back = bids.read_beh_tsv(tsv)
    assert back["participant"].eq("P_02").all() and back["session"].eq("1").all()
    assert back["level"].isin(["", "-5", "5", "32", "200", "drumming"]).all()


def test_compare_refuses_a_dataset_of_two_tasks_naming_one_tasks_files(study, tmp_path, cli):
    r = cli("analysis", ["compare", "--humans", study["bids"], "--out", tmp_path / "c",
                         "--bootstrap", "0", "--no-psychometric"])
    assert r.code == 2
    line = r.err.strip()
    assert "\n" not in line and "2 tasks (classify, correspondence)" in line
    assert "sub-*/ses-*/beh/*_task-classify_beh.tsv" in line
    assert not (tmp_path / "c").exists()


# --------------------------------------------------------------------------------------------
# bad input: one line, exit 2, nothing written
# --------------------------------------------------------------------------------------------
def _refused(cli, data, out, *extra):
    r = cli("experiments", ["bids", "--data", data, "--out", out, *extra])
    assert r.code == 2, r.out
    line = r.err.strip()
    assert line.startswith("error: ") and "\n" not in line
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]
    return line


def test_two_ids_with_one_bids_label_are_refused(tmp_path, cli):
    data = tmp_path / "data"
    stims = manifest()[:3]
    write_session(data, "P02", 1, "classify", stims, 1)
    write_session(data, "P_02", 1, "classify", stims, 2)
    line = _refused(cli, data, tmp_path / "bids")
    assert "participants 'P02' (sub-P02_ses-1_task-classify_beh.csv) and 'P_02' both become " \
           "the BIDS label 'P02'" in line
    assert "sub-P_02_ses-1_task-classify_beh.csv" in line and "column 'participant'" in line
    # labels that differ only in case clash on case-insensitive file systems
    other = tmp_path / "other"
    write_session(other, "ab1", 1, "classify", stims, 1)
    write_session(other, "AB1", 1, "classify", stims, 2)
    line = _refused(cli, other, tmp_path / "bids")
    assert "BIDS labels 'AB1' and 'ab1'" in line or "BIDS labels 'ab1' and 'AB1'" in line


def test_a_csv_without_the_participant_column_is_refused(tmp_path, cli):
    data = tmp_path / "data"
    write_session(data, "P01", 1, "classify", manifest()[:3], 1)
    bad = data / "sub-P02_ses-1_task-classify_beh.csv"
    rows = pd.read_csv(data / "sub-P01_ses-1_task-classify_beh.csv", dtype=str,
                       keep_default_na=False).drop(columns="participant")
    rows.to_csv(bad, index=False)
    line = _refused(cli, data, tmp_path / "bids")
    assert str(bad) in line and "column 'participant'" in line and "missing" in line
    assert "Fix:" in line


def test_bad_values_and_outputs_are_refused(tmp_path, cli):
    data = tmp_path / "data"
    write_session(data, "P01", 1, "classify", manifest()[:3], 1)
    path = data / "sub-P01_ses-1_task-classify_beh.csv"
    good = path.read_text()
    rows = pd.read_csv(path, dtype=str, keep_default_na=False)
    rows.loc[1, "rt"] = "fast"
    rows.to_csv(path, index=False)
    line = _refused(cli, data, tmp_path / "bids")
    assert "row 2 (line 3), column 'rt': expected a number, got 'fast'" in line
    rows.loc[1, "rt"] = "0.5"
    rows.loc[2, "participant"] = "P09"
    rows.to_csv(path, index=False)
    line = _refused(cli, data, tmp_path / "bids")
    assert "row 3 (line 4), column 'participant'" in line and "more than one participant" in line
    path.write_text(good)
    # an existing folder is never replaced unless --force, and --force only a BIDS dataset
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    r = cli("experiments", ["bids", "--data", data, "--out", taken])
    assert r.code == 2 and "already exists" in r.err and "--force" in r.err
    r = cli("experiments", ["bids", "--data", data, "--out", taken, "--force"])
    assert r.code == 2 and "not a BIDS dataset" in r.err
    assert (taken / "notes.txt").read_text() == "mine"
    r = cli("experiments", ["bids", "--data", data, "--out", tmp_path / "bids"])
    assert r.code == 0, r.err
    r = cli("experiments", ["bids", "--data", data, "--out", tmp_path / "bids", "--force"])
    assert r.code == 0, r.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bids", "data", "taken"]


def test_an_error_while_writing_leaves_no_dataset(tmp_path, monkeypatch):
    data = tmp_path / "data"
    write_session(data, "P01", 1, "classify", manifest()[:3], 1)
    write_session(data, "P02", 1, "classify", manifest()[:3], 2)
    real = bids._write_tsv
    calls = []

    def failing(path, table):
        calls.append(path)
        if len(calls) == 3:   # the second participant's trials
            raise OSError("disk full")
        real(path, table)

    monkeypatch.setattr(bids, "_write_tsv", failing)
    with pytest.raises(OSError, match="disk full"):
        bids.export_bids(data, tmp_path / "bids")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_header_only_files_are_left_out_with_a_note(tmp_path):
    data = tmp_path / "data"
    write_session(data, "P01", 1, "classify", manifest()[:3], 1)
    with TrialWriter(data, "P02", 1, "classify", H.TRIAL_COLUMNS):
        pass   # a session that ended before its first trial
    export = bids.export_bids(data, tmp_path / "bids")
    assert [p.name for p in export.files] == ["sub-P01_ses-1_task-classify_beh.tsv"]
    assert len(export.notes) == 1 and "sub-P02_ses-1_task-classify_beh.csv" in export.notes[0]
    assert export.participants["participant_id"].tolist() == ["sub-P01"]


def test_the_command_has_help():
    proc = subprocess.run([sys.executable, "-m", "avmit_psych.experiments", "bids", "--help"],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert "participants.tsv" in proc.stdout and "--validate" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "avmit_psych.experiments", "--help"],
                          capture_output=True, text=True, cwd=REPO)
    assert "bids" in proc.stdout
