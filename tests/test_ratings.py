"""The ratings pipeline: aggregate, votes, Figure 2 table, class filter, selection."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from avmit_psych.dataset import ratings, schema, synthetic
from avmit_psych.dataset.schema import DatasetError


def _raw(rows):
    return pd.DataFrame(rows, columns=["filename", "AVMIT_label", "MIT_label", "video_location",
                                       "rating", "participant"])


# -- aggregate ----------------------------------------------------------------------------------
def test_aggregate_reproduces_known_counts_and_reports_dropped(small_campaign):
    sim = small_campaign
    result = ratings.aggregate(sim.raw)
    known = sim.video_counts
    kept_known = known[known["n_ratings"] >= 3].set_index("filename")
    got = result.video_ratings.set_index("filename")
    assert set(got.index) == set(kept_known.index)
    for col in ("r1", "r2", "r3", "AVMIT_label", "MIT_label", "video_location"):
        assert (got[col] == kept_known.loc[got.index, col]).all(), col
    dropped_known = known[known["n_ratings"] < 3]
    assert len(dropped_known) > 0, "the synthetic data must include under-rated videos"
    assert dict(zip(result.dropped["filename"], result.dropped["n_ratings"])) == \
        dict(zip(dropped_known["filename"], dropped_known["n_ratings"]))
    assert list(result.video_ratings.columns) == schema.VIDEO_RATINGS.names


def test_aggregate_keeps_videos_rated_more_than_three_times(small_campaign):
    vr = ratings.aggregate(small_campaign.raw).video_ratings
    n = vr[["r1", "r2", "r3"]].sum(axis=1)
    assert n.max() >= 4 and n.min() == 3


def test_aggregate_counts_and_tfrecord_name_on_a_hand_made_example():
    raw = _raw([
        ("laughing/a.mp4", "giggling", "laughing", "training", 3, "P1"),
        ("laughing/a.mp4", "giggling", "laughing", "training", 2, "P2"),
        ("barking/b.mp4", "barking", "barking", "validation", 1, "P1"),
        ("laughing/a.mp4", "giggling", "laughing", "training", 3, "P3"),
        ("barking/b.mp4", "barking", "barking", "validation", 1, "P2"),
        ("barking/b.mp4", "barking", "barking", "validation", 3, "P3"),
        ("barking/b.mp4", "barking", "barking", "validation", 2, "P4"),
        ("barking/c.mp4", "barking", "barking", "training", 3, "P4"),
    ])
    result = ratings.aggregate(raw)
    vr = result.video_ratings
    assert vr.to_dict("records") == [
        {"filename": "laughing/a.mp4", "r1": 0, "r2": 1, "r3": 2, "AVMIT_label": "giggling",
         "MIT_label": "laughing", "video_location": "training",
         "tfrecord_filename": "giggling/a.tfrecord"},
        {"filename": "barking/b.mp4", "r1": 2, "r2": 1, "r3": 1, "AVMIT_label": "barking",
         "MIT_label": "barking", "video_location": "validation",
         "tfrecord_filename": "barking/b.tfrecord"},
    ]
    assert result.dropped.to_dict("records") == [
        {"filename": "barking/c.mp4", "AVMIT_label": "barking", "n_ratings": 1}]


def test_aggregate_rejects_conflicting_metadata():
    raw = _raw([
        ("barking/b.mp4", "barking", "barking", "training", 3, "P1"),
        ("barking/b.mp4", "barking", "barking", "validation", 3, "P2"),
    ])
    with pytest.raises(DatasetError, match=r"row 2.*column 'video_location'.*'validation'"):
        ratings.aggregate(raw)


def test_tfrecord_filename_matches_the_released_test_set(avmit_reference):
    test = schema.read_csv(avmit_reference / "test_set.csv", schema.TEST_SET)
    made = [schema.tfrecord_filename(a, f) for a, f in zip(test["AVMIT_label"], test["filename"])]
    assert made == test["tfrecord_filename"].tolist()


# -- votes ----------------------------------------------------------------------------------
def test_votes_and_majority_threshold():
    vr = pd.DataFrame({
        "filename": ["a", "b", "c", "d"], "r1": [0, 1, 2, 3], "r2": [0, 1, 0, 0],
        "r3": [3, 1, 2, 1], "AVMIT_label": ["barking"] * 4, "MIT_label": ["barking"] * 4,
        "video_location": ["training"] * 4, "tfrecord_filename": ["x"] * 4})
    v = ratings.votes(vr)
    assert v["present_votes"].tolist() == [3, 2, 2, 1]
    assert v["prominent_votes"].tolist() == [3, 1, 2, 1]
    assert v["present_majority"].tolist() == [True, True, True, False]
    # 'c' has 2 of 4 raters giving 3: prominent by the released rule (>= 2), not by "> half".
    assert v["prominent_majority"].tolist() == [True, False, True, False]
    v3 = ratings.votes(vr, min_votes=3)
    assert v3["prominent_majority"].tolist() == [True, False, False, False]
    assert v["n_ratings"].tolist() == [3, 3, 4, 4]


def test_class_vote_counts_is_the_figure_2_table(small_campaign):
    v = ratings.votes(ratings.aggregate(small_campaign.raw).video_ratings)
    table = ratings.class_vote_counts(v)
    assert set(table["label"]) == set(v["label"])
    for measure in ("present", "prominent"):
        cols = [f"{measure}_{k}" for k in ("0", "1", "2", "3plus")]
        assert (table[cols].sum(axis=1) == table["n_videos"]).all()
        # the majority count is the 2 and 3+ bins
        assert (table[f"{measure}_2"] + table[f"{measure}_3plus"] ==
                table[f"{measure}_majority"]).all()
    row = table.set_index("label").loc["barking"]
    expected = v[v["label"] == "barking"]
    assert row["prominent_0"] == (expected["prominent_votes"] == 0).sum()
    assert row["present_3plus"] == (expected["present_votes"] >= 3).sum()
    assert table["prominent_majority"].is_monotonic_decreasing


def test_figure_2_is_written(tmp_path, small_campaign):
    v = ratings.votes(ratings.aggregate(small_campaign.raw).video_ratings)
    fig = ratings.plot_class_vote_counts(ratings.class_vote_counts(v), tmp_path / "fig2.png")
    data = (tmp_path / "fig2.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind
    assert fig is not None


# -- class filter and selection ---------------------------------------------------------------
def test_class_filter_threshold():
    v = pd.DataFrame({"label": ["a"] * 5 + ["b"] * 3,
                      "prominent_majority": [True] * 5 + [True, True, False]})
    f = ratings.class_filter(v, min_videos=3).set_index("label")
    assert f.loc["a", "selected"] and not f.loc["b", "selected"]
    assert f.loc["b", "prominent_majority"] == 2


def test_paper_scale_class_filter_finds_the_16_test_classes(paper_scale):
    v = ratings.votes(ratings.aggregate(paper_scale.raw).video_ratings)
    selected = ratings.class_filter(v).query("selected")["label"]
    assert sorted(selected) == sorted(schema.TEST_CLASSES)


@pytest.fixture(scope="module")
def selection(paper_scale):
    vr = ratings.aggregate(paper_scale.raw).video_ratings
    sel = ratings.select(vr, seed=11, fps=paper_scale.fps, exclude=paper_scale.exclusions)
    return vr, sel


def test_selection_has_exact_per_class_counts(selection):
    _, sel = selection
    assert sel.test_set.groupby("AVMIT_label").size().eq(60).all()
    assert len(sel.test_set) == 960
    for train, val in ((sel.avmit_train, sel.avmit_validation),
                       (sel.mit16_train, sel.mit16_validation)):
        label = "label" if "label" in train.columns else "AVMIT label"
        n_train = train.groupby(label).size()
        n_val = val.groupby(label).size()
        assert n_train.nunique() == 1 and n_val.nunique() == 1
        assert len(n_train) == 16
        total = n_train.iloc[0] + n_val.iloc[0]
        assert n_val.iloc[0] == int(np.floor(total * 0.1 + 0.5))


def test_selection_default_balance_is_the_largest_every_class_can_fill(selection):
    vr, sel = selection
    test_files = set(sel.test_set["filename"])
    pool = vr[vr["AVMIT_label"].isin(schema.TEST_CLASSES) & ~vr["filename"].isin(test_files)]
    avmit_pool = pool[pool["r3"] >= 2]
    assert len(sel.avmit_train) + len(sel.avmit_validation) == \
        16 * avmit_pool.groupby("AVMIT_label").size().min()
    assert len(sel.mit16_train) + len(sel.mit16_validation) == \
        16 * pool.groupby("AVMIT_label").size().min()


def test_no_test_video_in_any_training_file(selection):
    _, sel = selection
    test = set(sel.test_set["filename"])
    for frame in (sel.avmit_train, sel.avmit_validation, sel.mit16_train, sel.mit16_validation):
        assert not test & set(frame["filename"])
    assert not set(sel.avmit_train["filename"]) & set(sel.avmit_validation["filename"])
    assert not set(sel.mit16_train["filename"]) & set(sel.mit16_validation["filename"])


def test_every_test_video_is_unanimous_at_30_fps_and_not_excluded(selection, paper_scale):
    vr, sel = selection
    chosen = vr.set_index("filename").loc[sel.test_set["filename"]]
    assert (chosen["r1"] == 0).all() and (chosen["r2"] == 0).all() and (chosen["r3"] >= 3).all()
    fps = paper_scale.fps.set_index("filename")["fps"]
    assert (fps.loc[sel.test_set["filename"]] == 30.0).all()
    assert not set(paper_scale.exclusions["filename"]) & set(sel.test_set["filename"])


def test_new_filenames_follow_the_released_pattern(selection):
    _, sel = selection
    for label, group in sel.test_set.groupby("AVMIT_label"):
        assert sorted(group["new_filename"]) == sorted(f"{label}/{label}_{k}.mp4"
                                                       for k in range(1, 61))


def test_training_sets_hold_the_right_videos(selection):
    vr, sel = selection
    by_name = vr.set_index("filename")
    avmit = pd.concat([sel.avmit_train, sel.avmit_validation])
    assert (by_name.loc[avmit["filename"], "r3"] >= 2).all()
    mit16 = pd.concat([sel.mit16_train, sel.mit16_validation])
    # relabelled MIT classes are part of MIT-16 (e.g. laughing -> giggling)
    relabelled = mit16[mit16["MIT label"] != mit16["AVMIT label"]]
    assert len(relabelled) > 0
    assert set(relabelled["MIT label"]) <= {m for ms in schema.RELABELLED_MIT_CLASSES.values()
                                            for m in ms}
    assert list(sel.avmit_train.columns) == schema.AVMIT_TRAIN.names


def test_selection_report_counts_every_step(selection):
    _, sel = selection
    steps = sel.report.groupby("step", sort=False)["n_videos"].sum()
    assert steps["test set"] == 960
    assert steps["unanimous (all raters gave 3)"] >= steps["30 fps"] >= \
        steps["after manual exclusion"] >= 960
    assert steps["AVMIT train"] == len(sel.avmit_train)
    assert steps["MIT-16 validation"] == len(sel.mit16_validation)


def test_split_gives_the_papers_sizes():
    for total, n_train, n_val in ((456, 410, 46), (1406, 1265, 141)):
        frame = pd.DataFrame({"filename": [f"v{i}" for i in range(total)],
                              "AVMIT_label": "barking"})
        train, val = ratings._split(frame, ["barking"], 0.1, 0, 2)
        assert (len(train), len(val)) == (n_train, n_val)


def test_selection_does_not_depend_on_input_row_order(paper_scale):
    vr = ratings.aggregate(paper_scale.raw).video_ratings
    shuffled = vr.sample(frac=1.0, random_state=5).reset_index(drop=True)
    a = ratings.select(vr, seed=3)
    b = ratings.select(shuffled, seed=3)
    pd.testing.assert_frame_equal(a.test_set, b.test_set)
    pd.testing.assert_frame_equal(a.mit16_train, b.mit16_train)
    c = ratings.select(vr, seed=4)
    assert set(c.test_set["filename"]) != set(a.test_set["filename"])


def test_too_few_candidates_is_a_clear_error(small_campaign):
    vr = ratings.aggregate(small_campaign.raw).video_ratings
    with pytest.raises(DatasetError, match="too few candidate test videos"):
        ratings.select(vr, classes=["barking", "diving"], per_class=500)


def test_no_class_passes_the_filter_is_a_clear_error(small_campaign):
    vr = ratings.aggregate(small_campaign.raw).video_ratings
    with pytest.raises(DatasetError, match="no class has 500 prominent-by-majority videos"):
        ratings.select(vr)


# -- CLI --------------------------------------------------------------------------------------
def test_cli_select_is_byte_identical_for_the_same_seed(tmp_path, cli, paper_scale):
    vr = ratings.aggregate(paper_scale.raw).video_ratings
    schema.write_csv(vr, tmp_path / "video_ratings.csv")
    schema.write_csv(paper_scale.fps, tmp_path / "fps.csv")
    outs = []
    for run, seed in (("a", 9), ("b", 9), ("c", 10)):
        r = cli("analysis", ["ratings", "select", tmp_path / "video_ratings.csv", "--out",
                             tmp_path / run, "--seed", seed, "--fps", tmp_path / "fps.csv"])
        assert r.code == 0, r.err
        outs.append({p.name: p.read_bytes() for p in sorted((tmp_path / run).iterdir())})
    assert sorted(outs[0]) == ["AVMIT_train.csv", "AVMIT_validation.csv", "MIT16_train.csv",
                               "MIT16_validation.csv", "selection_report.csv", "test_set.csv"]
    assert outs[0] == outs[1]
    assert outs[0]["test_set.csv"] != outs[2]["test_set.csv"]
    # the files read back through the released layouts
    schema.read_csv(tmp_path / "a" / "test_set.csv", schema.TEST_SET)
    schema.read_csv(tmp_path / "a" / "AVMIT_train.csv", schema.AVMIT_TRAIN)
    mit16 = schema.read_csv(tmp_path / "a" / "MIT16_train.csv", schema.MIT16_TRAIN)
    assert mit16[""].tolist() == list(range(len(mit16)))


def test_cli_select_writes_the_released_headers(tmp_path, cli, paper_scale, avmit_reference):
    vr = ratings.aggregate(paper_scale.raw).video_ratings
    schema.write_csv(vr, tmp_path / "vr.csv")
    assert cli("analysis", ["ratings", "select", tmp_path / "vr.csv", "--out",
                            tmp_path / "out"]).code == 0
    for name in ("test_set.csv", "AVMIT_train.csv", "AVMIT_validation.csv", "MIT16_train.csv",
                 "MIT16_validation.csv"):
        ours = (tmp_path / "out" / name).read_text().splitlines()[0]
        released = (avmit_reference / name).read_text(encoding="utf-8-sig").splitlines()[0]
        assert ours == released, name


def test_cli_aggregate_reports_dropped(tmp_path, cli, small_campaign):
    schema.write_csv(small_campaign.raw, tmp_path / "raw.csv")
    r = cli("analysis", ["ratings", "aggregate", tmp_path / "raw.csv", "-o", tmp_path / "vr.csv",
                         "--dropped", tmp_path / "dropped.csv"])
    assert r.code == 0, r.err
    n_dropped = int((small_campaign.video_counts["n_ratings"] < 3).sum())
    assert f"dropped {n_dropped:,} with fewer than 3 ratings" in r.out
    assert len(pd.read_csv(tmp_path / "dropped.csv")) == n_dropped
    vr = schema.read_csv(tmp_path / "vr.csv", schema.VIDEO_RATINGS)
    assert len(vr) == 3000 - n_dropped


def test_cli_summary_from_raw_ratings_adds_per_rater_statistics(tmp_path, cli, small_campaign):
    schema.write_csv(small_campaign.raw, tmp_path / "raw.csv")
    schema.write_csv(small_campaign.ground_truth, tmp_path / "gt.csv")
    r = cli("analysis", ["ratings", "summary", tmp_path / "raw.csv", "--out", tmp_path / "s",
                         "--ground-truth", tmp_path / "gt.csv"])
    assert r.code == 0, r.err
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == [
        "class_counts.csv", "fig2.png", "raters.csv", "reliability.csv", "votes.csv"]
    raters = pd.read_csv(tmp_path / "s" / "raters.csv").set_index("participant")
    truth = small_campaign.raters.set_index("participant")
    # ground-truth agreement, computed independently by merging
    merged = small_campaign.raw.merge(small_campaign.ground_truth, on="filename",
                                      suffixes=("", "_truth"))
    expected = (merged["rating"] == merged["rating_truth"]).groupby(merged["participant"]).mean()
    assert np.allclose(raters.loc[expected.index, "ground_truth_agreement"], expected)
    # raters simulated as more accurate agree more with the others' majority
    from scipy.stats import spearmanr
    rho = spearmanr(truth.loc[raters.index, "accuracy"], raters["majority_agreement"])[0]
    assert rho > 0.6
    assert raters["n_ratings"].sum() == len(small_campaign.raw)
    votes = pd.read_csv(tmp_path / "s" / "votes.csv")
    assert list(votes.columns) == ["filename", "label", "n_ratings", "present_votes",
                                   "prominent_votes", "present_majority", "prominent_majority"]


def test_synthetic_data_is_seeded_and_raters_are_distinct():
    a = synthetic.simulate_ratings(500, seed=1)
    b = synthetic.simulate_ratings(500, seed=1)
    c = synthetic.simulate_ratings(500, seed=2)
    pd.testing.assert_frame_equal(a.raw, b.raw)
    assert not a.raw["rating"].equals(c.raw["rating"])
    assert not a.raw.duplicated(["participant", "filename"]).any()
    n = a.video_counts["n_ratings"]
    assert (n > 3).any() and (n < 3).any()
    assert set(a.raw["participant"]) == {f"P{i:02d}" for i in range(1, 12)}
    schema.validate(a.raw, schema.RAW_RATINGS)  # valid raw layout, relabelling included
