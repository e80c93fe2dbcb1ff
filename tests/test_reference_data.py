"""The released AVMIT files (../shared/reference/avmit) read, validate and agree with facts.md."""
from __future__ import annotations

import pandas as pd
import pytest

from avmit_psych.dataset import ratings, schema


def test_summary_marks_every_released_training_video_prominent_by_majority(
        tmp_path, cli, avmit_reference):
    r = cli("analysis", ["ratings", "summary", avmit_reference / "AVMIT_train.csv",
                         avmit_reference / "AVMIT_validation.csv", "--out", tmp_path / "s"])
    assert r.code == 0, r.err
    votes = pd.read_csv(tmp_path / "s" / "votes.csv")
    assert len(votes) == 7296
    assert votes["prominent_majority"].all()
    assert votes["present_majority"].all()
    assert "7,296 videos: 7,296 present by majority, 7,296 prominent by majority" in r.out
    counts = pd.read_csv(tmp_path / "s" / "class_counts.csv")
    assert sorted(counts["label"]) == sorted(schema.TEST_CLASSES)
    assert (counts["prominent_majority"] == 456).all()


def test_a_strict_half_rule_would_drop_98_released_rows(avmit_reference):
    table = pd.concat([schema.read_csv(avmit_reference / name, schema.AVMIT_TRAIN)
                       for name in ("AVMIT_train.csv", "AVMIT_validation.csv")])
    n = table[["r1", "r2", "r3"]].sum(axis=1)
    assert int((table["r3"] * 2 <= n).sum()) == 98
    assert n.max() > 3  # some videos carry more than three ratings
    assert (table["r3"] >= ratings.MAJORITY_MIN_VOTES).all()


def test_released_test_set_reads_and_has_60_per_class(avmit_reference):
    test = schema.read_csv(avmit_reference / "test_set.csv", schema.TEST_SET)
    assert len(test) == 960
    assert test.groupby("AVMIT_label").size().eq(60).all()
    for label, group in test.groupby("AVMIT_label"):
        assert sorted(group["new_filename"]) == sorted(f"{label}/{label}_{k}.mp4"
                                                       for k in range(1, 61))


@pytest.mark.parametrize("name, layout, train, val", [
    ("AVMIT", schema.AVMIT_TRAIN, 410, 46), ("MIT16", schema.MIT16_TRAIN, 1265, 141)])
def test_released_training_sets_read_with_the_papers_sizes(avmit_reference, name, layout,
                                                           train, val):
    label = "label" if layout is schema.AVMIT_TRAIN else "AVMIT label"
    t = schema.read_csv(avmit_reference / f"{name}_train.csv", layout)
    v = schema.read_csv(avmit_reference / f"{name}_validation.csv", layout)
    assert t.groupby(label).size().eq(train).all() and len(t) == 16 * train
    assert v.groupby(label).size().eq(val).all() and len(v) == 16 * val
    test = set(schema.read_csv(avmit_reference / "test_set.csv", schema.TEST_SET)["filename"])
    assert not test & set(t["filename"]) and not test & set(v["filename"])


def test_layout_detection_on_released_files(avmit_reference):
    expected = {"test_set.csv": schema.TEST_SET, "AVMIT_train.csv": schema.AVMIT_TRAIN,
                "MIT16_validation.csv": schema.MIT16_TRAIN}
    for name, layout in expected.items():
        df = schema.read_csv(avmit_reference / name, (schema.AVMIT_TRAIN, schema.TEST_SET,
                                                      schema.MIT16_TRAIN))
        assert df.attrs["layout"] == layout.name


def test_released_relabelled_pairs_follow_table_1(avmit_reference):
    mit16 = schema.read_csv(avmit_reference / "MIT16_train.csv", schema.MIT16_TRAIN)
    pairs = set(zip(mit16["AVMIT label"], mit16["MIT label"]))
    expected = {(a, m) for a, ms in schema.RELABELLED_MIT_CLASSES.items() for m in ms}
    assert {p for p in pairs if p[0] != p[1]} == expected


def test_summary_refuses_a_mit16_file_with_a_clear_message(tmp_path, cli, avmit_reference):
    r = cli("analysis", ["ratings", "summary", avmit_reference / "MIT16_train.csv", "--out",
                         tmp_path / "s"])
    assert r.code == 2
    assert "released MIT-16 training file (a MIT-16 training file has no rating counts)" in r.err
    assert not (tmp_path / "s").exists()
