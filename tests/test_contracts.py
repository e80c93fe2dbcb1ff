"""Contracts in one place (issue 17, item 4): every table layout passed between stages is
defined once, in ``avmit_psych.dataset.schema``, and every reader refuses a file that lacks one
of its layout's columns with a one-line error naming the file and the column.

The "defined once" check reads the source of every module under ``avmit_psych/`` and of the
scripts under ``experiments/`` with :mod:`ast`. A list, tuple or set literal of strings outside
the schema module counts as a copy of a layout when

* four or more of its items in a row are four columns in a row of one layout's column list
  (the same names in the same order: a copy-paste, whole or in part), or
* it holds every required column of a layout, in any order (a reordered copy).

Shorter selections (``["manipulation", "level"]``, a group-by key) and tables that only share
some names with a layout (the analysis tables) pass; ``test_a_planted_copy_is_caught`` shows
that the rule catches what it is for.
"""
from __future__ import annotations

import ast
import json
from pathlib import Path

import pandas as pd
import pytest

from avmit_psych.dataset import schema
from avmit_psych.dataset.schema import DatasetError
from tests.conftest import REPO

SCHEMA_FILE = REPO / "avmit_psych" / "dataset" / "schema.py"
MIN_RUN = 4


# --------------------------------------------------------------------------------------------
# The detector
# --------------------------------------------------------------------------------------------
def _string_runs(node: ast.AST) -> list[list[str]]:
    """The runs of string constants of a list/tuple/set literal (``*X`` or a non-string
    item ends a run)."""
    runs, run = [], []
    for item in node.elts:
        if isinstance(item, ast.Constant) and isinstance(item.value, str):
            run.append(item.value)
        else:
            runs.append(run)
            run = []
    runs.append(run)
    return [r for r in runs if r]


def _longest_common_run(items: list[str], columns: tuple[str, ...]) -> int:
    """The longest stretch of consecutive ``items`` that is also consecutive in ``columns``."""
    position = {c: i for i, c in enumerate(columns)}
    best = length = 0
    for i, item in enumerate(items):
        if item in position and length and i and items[i - 1] in position \
                and position[item] == position[items[i - 1]] + 1:
            length += 1
        else:
            length = 1 if item in position else 0
        best = max(best, length)
    return best


def layout_copies(source: str, filename: str = "<source>") -> list[str]:
    """Where ``source`` types a copy of a layout's column list: ``file:line``, and the layout
    it copies most of."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if not isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            continue
        runs = _string_runs(node)
        names = {s for run in runs for s in run}
        if len(names) < MIN_RUN:
            continue
        run, contract = max(((max(_longest_common_run(r, c.columns) for r in runs), c)
                             for c in schema.CONTRACTS.values()), key=lambda rc: rc[0])
        if run >= MIN_RUN:
            found.append(f"{filename}:{node.lineno}: {run} columns in a row of the "
                         f"{contract.name} layout")
            continue
        whole = [c for c in schema.CONTRACTS.values()
                 if len(c.required) >= MIN_RUN and set(c.required) <= names]
        if whole:
            found.append(f"{filename}:{node.lineno}: every required column of the "
                         f"{whole[0].name} layout")
    return found


def _modules() -> list[Path]:
    files = sorted((REPO / "avmit_psych").rglob("*.py")) + sorted(
        (REPO / "experiments").rglob("*.py"))
    return [f for f in files if f != SCHEMA_FILE]


def test_no_layout_is_defined_outside_the_schema_module():
    copies = []
    for path in _modules():
        copies += layout_copies(path.read_text(encoding="utf-8"),
                                str(path.relative_to(REPO)))
    assert not copies, ("column lists typed outside avmit_psych/dataset/schema.py (import "
                        "them from the schema module instead):\n" + "\n".join(copies))


def test_the_schema_module_itself_is_where_the_lists_are():
    """The detector sees the lists where they belong (else it would be blind)."""
    copies = layout_copies(SCHEMA_FILE.read_text(encoding="utf-8"))
    for name in ("stimulus manifest", "trials", "study plan", "annotation rows",
                 "headphone check", "model-vs-human"):
        assert any(name + " layout" in c for c in copies), name


@pytest.mark.parametrize("planted, caught", [
    # a whole layout copied
    ('COLS = ["participant", "session", "task", "block", "trial", "stimulus_id", "label",\n'
     '        "manipulation", "level", "response", "correct", "rt"]', True),
    ('PRED = ("model", "stimulus_id", "label", "manipulation", "level", "response", '
     '"correct")', True),
    # a partial copy inside a bigger list, after a starred item
    ('x = [*OTHER, "duration_s", "fps", "sample_rate", "sha256", "size"]', True),
    ('df[["source_filename", "label", "manipulation", "level"]]', True),
    # a reordered copy of a whole layout
    ('set(["correct", "response", "model", "level", "label", "stimulus_id", '
     '"manipulation"])', True),
    ('{"r3", "r1", "filename", "r2", "tfrecord_filename", "MIT_label", "AVMIT_label", '
     '"video_location"}', True),
    # legit selections: short keys, analysis tables that share a few names
    ('df.groupby(["manipulation", "level"])', False),
    ('keys = ("stimulus_id", "path", "label", "manipulation", "level")', False),
    ('OUT = ["observer", "observer_type", "file", "task", "stimulus_id", "label", "response",\n'
     '       "correct", "manipulation", "level", "level_value", "condition", "rt"]', False),
    ('w.writerow(["timestamp", "filename", "path", "error"])', False),
])
def test_a_planted_copy_is_caught(planted, caught):
    assert bool(layout_copies(planted)) is caught, layout_copies(planted)


def test_the_detector_reads_real_module_text(tmp_path):
    """A copy planted in a copy of a real module is found, at its line."""
    source = (REPO / "avmit_psych" / "models" / "evaluation.py").read_text(encoding="utf-8")
    planted = source + '\n\nPREDICTION_COLUMNS = ["model", "stimulus_id", "label", ' \
                       '"manipulation", "level", "response", "correct"]\n'
    copies = layout_copies(planted, "evaluation.py")
    assert len(copies) == 1 and copies[0].startswith(
        f"evaluation.py:{planted.count(chr(10))}:") and "predictions layout" in copies[0]


# --------------------------------------------------------------------------------------------
# The lists agree with each other and with the column descriptions
# --------------------------------------------------------------------------------------------
def test_required_columns_are_written_first_in_their_order():
    for contract in schema.CONTRACTS.values():
        assert len(set(contract.columns)) == len(contract.columns), contract.name
        assert [c for c in contract.columns if c in contract.required] == \
            list(contract.required), contract.name


def test_trials_and_predictions_share_their_core_columns():
    trials = [c for c in schema.TRIALS_REQUIRED if c in schema.PREDICTIONS_COLUMNS]
    assert trials == list(schema.OBSERVATION_COLUMNS) == list(schema.PREDICTIONS_COLUMNS[1:])
    assert set(schema.VIDEO_COLUMNS) <= set(schema.VIDEO_RATINGS_COLUMNS)
    assert set(schema.VIDEO_COLUMNS) <= set(schema.TEST_SET_COLUMNS)
    assert set(schema.STUDY_PLAN_FROM_MANIFEST) <= set(schema.MANIFEST_REQUIRED)
    assert set(schema.MANIFEST_NON_EMPTY) <= set(schema.MANIFEST_REQUIRED)


def test_the_architecture_names_are_the_contracts():
    """The names ARCHITECTURE.md lists for each layout are the schema's required columns."""
    assert schema.RAW_RATINGS_COLUMNS == (
        "filename", "AVMIT_label", "MIT_label", "video_location", "rating", "participant",
        "session", "trial", "timestamp", "rt", "replays", "ground_truth")
    assert schema.RAW_RATINGS_REQUIRED == schema.RAW_RATINGS_COLUMNS[:5]
    assert schema.VIDEO_RATINGS_COLUMNS == ("filename", "r1", "r2", "r3", "AVMIT_label",
                                            "MIT_label", "video_location",
                                            "tfrecord_filename")
    assert schema.TEST_SET_COLUMNS == ("filename", "AVMIT_label", "MIT_label", "video_location",
                                       "new_filename", "tfrecord_filename")
    assert schema.MANIFEST_REQUIRED == (
        "stimulus_id", "path", "source_filename", "label", "manipulation", "level",
        "level_unit", "audio_source", "seed", "duration_s", "fps", "sample_rate", "sha256")
    assert schema.TRIALS_REQUIRED == (
        "participant", "session", "task", "block", "trial", "stimulus_id", "label",
        "manipulation", "level", "response", "correct", "rt")
    assert schema.PREDICTIONS_COLUMNS == ("model", "stimulus_id", "label", "manipulation",
                                          "level", "response", "correct")
    assert schema.STUDY_PLAN_COLUMNS[:6] == ("list", "session", "position", "block", "task",
                                             "stimulus_id")
    assert "repeat" in schema.STUDY_PLAN_COLUMNS


@pytest.mark.parametrize("columns, descriptions", [
    (schema.TRIALS_COLUMNS, schema.TRIALS_COLUMN_DESCRIPTIONS),
    (schema.HEADPHONE_CHECK_COLUMNS, schema.HEADPHONE_CHECK_COLUMN_DESCRIPTIONS),
])
def test_descriptions_and_column_lists_cover_each_other(columns, descriptions):
    assert list(descriptions) == list(columns)


def test_a_column_without_a_description_stops_the_import():
    with pytest.raises(ValueError, match=r"no entry for \['new'\].*no column for \['old'\]"):
        schema._described(("a", "new"), {"a": schema.ColumnDescription("A"),
                                         "old": schema.ColumnDescription("B")})


def test_the_modules_use_the_schema_lists():
    from avmit_psych.analysis import observers
    from avmit_psych.experiments import (annotation, bids, headphones, human_vs_dnn, plan,
                                         player)
    from avmit_psych.models import evaluation
    from avmit_psych.stimuli import generate
    assert human_vs_dnn.TRIAL_COLUMNS == list(schema.TRIALS_COLUMNS)
    assert bids.TRIALS_CONTRACT == observers.TRIALS_COLUMNS == schema.TRIALS_REQUIRED
    assert evaluation.PREDICTION_COLUMNS == list(schema.PREDICTIONS_COLUMNS)
    assert observers.PREDICTIONS_COLUMNS == schema.PREDICTIONS_REQUIRED
    assert generate.MANIFEST_COLUMNS == list(schema.MANIFEST_COLUMNS)
    assert plan.PLAN_COLUMNS == list(schema.STUDY_PLAN_COLUMNS)
    assert annotation.ROW_COLUMNS == list(schema.ANNOTATION_ROW_COLUMNS)
    assert headphones.HEADPHONE_COLUMNS == list(schema.HEADPHONE_CHECK_COLUMNS)
    assert player.PLAYBACK_COLUMNS == schema.PLAYBACK_COLUMNS


# --------------------------------------------------------------------------------------------
# Readers refuse a file missing a contract column: one line, naming the file and the column
# --------------------------------------------------------------------------------------------
def _check(err: pytest.ExceptionInfo, path, column: str) -> None:
    message = str(err.value)
    assert "\n" not in message, message
    assert str(path) in message, message
    assert err.value.column == column and f"'{column}'" in message, message


def _write(table: pd.DataFrame, path: Path) -> Path:
    table.to_csv(path, index=False)
    return path


def _raw_ratings(n=3) -> pd.DataFrame:
    return pd.DataFrame({"filename": [f"barking/b{i}.mp4" for i in range(n)],
                         "AVMIT_label": "barking", "MIT_label": "barking",
                         "video_location": "training/barking", "rating": 3,
                         "participant": [f"P{i}" for i in range(n)]})


def _video_ratings() -> pd.DataFrame:
    return pd.DataFrame({"filename": ["b0.mp4"], "r1": [0], "r2": [1], "r3": [2],
                         "AVMIT_label": ["barking"], "MIT_label": ["barking"],
                         "video_location": ["training/barking"],
                         "tfrecord_filename": ["barking/b0.tfrecord"]})


def _test_set() -> pd.DataFrame:
    return pd.DataFrame({"filename": ["b0.mp4"], "AVMIT_label": ["barking"],
                         "MIT_label": ["barking"], "video_location": ["training/barking"],
                         "new_filename": ["barking/barking_1.mp4"],
                         "tfrecord_filename": ["barking/barking_1.tfrecord"]})


def _trials() -> pd.DataFrame:
    return pd.DataFrame({"participant": ["P01"] * 2, "session": [1, 1],
                         "task": ["classify"] * 2, "block": ["main"] * 2, "trial": [1, 2],
                         "stimulus_id": ["a", "b"], "label": ["barking"] * 2,
                         "manipulation": ["none"] * 2, "level": ["", ""],
                         "response": ["barking", "diving"], "correct": [True, False],
                         "rt": [0.8, 0.9]})


def _predictions() -> pd.DataFrame:
    return pd.DataFrame({"model": ["m"] * 2, "stimulus_id": ["a", "b"],
                         "label": ["barking"] * 2, "manipulation": ["none"] * 2,
                         "level": ["", ""], "response": ["barking", "diving"],
                         "correct": [True, False]})


@pytest.mark.parametrize("column", schema.RAW_RATINGS_REQUIRED)
def test_raw_ratings_reader(tmp_path, column):
    path = _write(_raw_ratings().drop(columns=column), tmp_path / "raw.csv")
    with pytest.raises(DatasetError) as err:
        schema.read_csv(path, schema.RAW_RATINGS)
    _check(err, path, column)


@pytest.mark.parametrize("column", schema.RAW_RATINGS_REQUIRED)
def test_annotation_rows_are_read_as_raw_ratings(tmp_path, column):
    """An annotation data file goes straight into ``ratings aggregate``."""
    rows = _raw_ratings().reindex(columns=schema.ANNOTATION_ROW_COLUMNS, fill_value="")
    path = _write(rows.drop(columns=column), tmp_path / "sub-P01_ses-1_task-annotation_beh.csv")
    with pytest.raises(DatasetError) as err:
        schema.read_csv(path, schema.RAW_RATINGS)
    _check(err, path, column)


@pytest.mark.parametrize("column", schema.VIDEO_RATINGS_COLUMNS)
def test_video_ratings_reader(tmp_path, column):
    from avmit_psych.dataset import ratings
    path = _write(_video_ratings().drop(columns=column), tmp_path / "video_ratings.csv")
    with pytest.raises(DatasetError) as err:
        ratings.as_video_ratings(schema.read_csv(path))
    _check(err, path, column)


@pytest.mark.parametrize("column", schema.TEST_SET_COLUMNS)
def test_test_set_reader(tmp_path, column):
    from avmit_psych.stimuli.generate import sources_from_test_set
    path = _write(_test_set().drop(columns=column), tmp_path / "test_set.csv")
    with pytest.raises(DatasetError) as err:
        sources_from_test_set(path, tmp_path)
    _check(err, path, column)


@pytest.mark.parametrize("column", schema.STUDY_PLAN_FROM_MANIFEST)
def test_manifest_reader_of_the_plan(tmp_path, column):
    from avmit_psych.experiments import plan
    manifest = plan.synthetic_manifest(REPO / "stimuli" / "suites" / "demo_small.yaml",
                                       per_class=1)
    assert list(manifest.columns) == list(schema.MANIFEST_REQUIRED)
    path = _write(manifest.drop(columns=column), tmp_path / "manifest.csv")
    with pytest.raises(DatasetError) as err:
        plan.make_plan(path)
    _check(err, path, column)


@pytest.mark.parametrize("column", schema.TRIALS_REQUIRED)
def test_trials_reader(tmp_path, column):
    from avmit_psych.analysis.observers import read_observer_file
    path = _write(_trials().drop(columns=column),
                  tmp_path / "sub-P01_ses-1_task-classify_beh.csv")
    with pytest.raises(DatasetError) as err:
        read_observer_file(path, "human")
    _check(err, path, column)


@pytest.mark.parametrize("column", schema.PREDICTIONS_REQUIRED)
def test_predictions_reader(tmp_path, column):
    from avmit_psych.analysis.observers import read_observer_file
    path = _write(_predictions().drop(columns=column), tmp_path / "model.csv")
    with pytest.raises(DatasetError) as err:
        read_observer_file(path, "model")
    _check(err, path, column)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    from avmit_psych.experiments import plan
    root = tmp_path_factory.mktemp("study")
    manifest = plan.synthetic_manifest(REPO / "stimuli" / "suites" / "demo_small.yaml",
                                       per_class=2)
    return plan.plan_study(_write(manifest, root / "manifest.csv"), root / "study")


@pytest.mark.parametrize("column", schema.STUDY_PLAN_COLUMNS)
def test_study_plan_reader(study, tmp_path, column):
    from avmit_psych._atomic import sha256_file
    entry = study.design["plans"][0]
    original = study.folder / entry["file"]
    path = tmp_path / entry["file"]
    path.parent.mkdir(parents=True, exist_ok=True)
    _write(pd.read_csv(original, dtype=str, keep_default_na=False).drop(columns=column), path)
    # the plan as if planned so (the reader first checks the file is the one planned)
    copy = type(study)(tmp_path, json.loads(json.dumps(study.design)))
    copy.design["plans"][0]["sha256"] = sha256_file(path)
    with pytest.raises(DatasetError) as err:
        copy.read_plan(entry["list"], entry["session"])
    _check(err, path, column)


def test_the_annotation_pool_needs_its_columns(tmp_path):
    from avmit_psych.experiments.assignment import AssignmentDB
    pool = pd.DataFrame({c: ["x"] for c in schema.ANNOTATION_POOL_COLUMNS})
    db = AssignmentDB(tmp_path / "annotation.sqlite")
    try:
        for column in schema.ANNOTATION_POOL_COLUMNS:
            with pytest.raises(DatasetError) as err:
                db.add_videos(pool.drop(columns=column))
            _check(err, "<video pool>", column)
    finally:
        db.close()


def test_a_resumed_data_file_needs_its_columns(tmp_path):
    from avmit_psych.experiments.datafile import TrialWriter
    with TrialWriter(tmp_path, "P01", 1, "classify", schema.TRIALS_COLUMNS) as w:
        w.write({c: 1 for c in schema.TRIALS_REQUIRED})
        path = w.path
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    table.drop(columns="rt").to_csv(path, index=False)
    with pytest.raises(DatasetError) as err:
        TrialWriter(tmp_path, "P01", 1, "classify", schema.TRIALS_COLUMNS)
    _check(err, path, "rt")
