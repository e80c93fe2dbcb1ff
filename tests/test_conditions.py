"""Every level its own condition, and all of model-vs-human's released layouts read.

Model-vs-human raw data are written here in the toolbox's own layout (file names
``<dataset>_<subject>_session_1.csv``, ``Session`` or ``session``, its condition codes from
``modelvshuman/datasets/experiments.py``, image names with the ``0001_cop_s01_`` prefix);
error consistency is checked against the toolbox's definition
(``modelvshuman/plotting/analyses.py``: per condition, trials sorted by image, observed
consistency, expected consistency from the two accuracies, kappa = 1 when observed is 1).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from avmit_psych.analysis import consistency as EC
from avmit_psych.analysis import psychometric as PF
from avmit_psych.analysis.compare import run_comparison, write_comparison
from avmit_psych.analysis.observers import TOOLBOX_LEVELS, load_observations
from avmit_psych.dataset.schema import DatasetError

CATEGORIES = ["airplane", "bear", "bicycle", "bird", "boat", "bottle", "car", "cat", "chair",
              "clock", "dog", "elephant", "keyboard", "knife", "oven", "truck"]
#: the toolbox's data_conditions per dataset (modelvshuman/datasets/experiments.py); the five
#: single-condition datasets write condition 0
TOOLBOX_CODES = {
    "colour": ["cr", "bw"],
    "contrast": ["c100", "c50", "c30", "c15", "c10", "c05", "c03", "c01"],
    "high-pass": ["inf", "3.0", "1.5", "1.0", "0.7", "0.55", "0.45", "0.4"],
    "low-pass": ["0", "1", "3", "5", "7", "10", "15", "40"],
    "phase-scrambling": ["0", "30", "60", "90", "120", "150", "180"],
    "power-equalisation": ["0", "pow"],
    "false-colour": ["True", "False"],
    "rotation": ["0", "90", "180", "270"],
    "eidolonI": ["1-10-10", "2-10-10", "4-10-10", "8-10-10", "16-10-10", "32-10-10",
                 "64-10-10", "128-10-10"],
    "eidolonII": ["1-3-10", "2-3-10", "4-3-10", "8-3-10", "16-3-10", "32-3-10", "64-3-10",
                  "128-3-10"],
    "eidolonIII": ["1-0-10", "2-0-10", "4-0-10", "8-0-10", "16-0-10", "32-0-10", "64-0-10",
                   "128-0-10"],
    "uniform-noise": ["0.0", "0.03", "0.05", "0.1", "0.2", "0.35", "0.6", "0.9"],
    "sketch": ["0"], "stylized": ["0"], "edge": ["0"], "silhouette": ["0"],
    "cue-conflict": ["0"],
}
LOWER_CASE_SESSION = {"cue-conflict", "edge", "silhouette", "sketch", "stylized"}


def write_toolbox_file(folder, dataset, subject, correct_by_code, *, session_column="Session",
                       experiment="cop", seed=0):
    """One observer's raw data in the toolbox layout; ``correct_by_code``: code -> bools per
    image (image k of every code is the same picture under that condition)."""
    rng = np.random.default_rng(seed)
    rows = []
    for code, right in correct_by_code.items():
        for k, r in enumerate(right):
            cat = CATEGORIES[k % 16]
            wrong = CATEGORIES[(k + 1) % 16]
            rows.append({"subj": subject, session_column: 1, "rt": 0.8,
                         "object_response": cat if r else wrong, "category": cat,
                         "condition": code, "image": f"{code}_{cat}_10_n{k:05d}.png"})
    df = pd.DataFrame(rows).sample(frac=1, random_state=int(rng.integers(1 << 30)))
    tag = "dnn" if not subject.startswith("subject") else f"s{subject[-2:]}"
    df.insert(2, "trial", np.arange(1, len(df) + 1))
    df["imagename"] = [f"{t:04d}_{experiment}_{tag}_{img}" for t, img in
                       zip(df["trial"], df.pop("image"))]
    name = f"{dataset}_{subject}_session{'_' if subject.startswith('subject') else '-'}1.csv"
    path = folder / name
    df.to_csv(path, index=False)
    return path


def simulate_contrast(n_subjects=4, n_images=48, seed=0):
    """Correctness per subject and contrast code: a psychometric function of log contrast,
    with per-image difficulty shared by everyone (so errors are consistent within a level)."""
    rng = np.random.default_rng(seed)
    codes = TOOLBOX_CODES["contrast"]
    percent = np.array([float(c[1:]) for c in codes])
    ease = rng.normal(0, 1.2, n_images)              # shared item difficulty
    out = {}
    for s in range(1, n_subjects + 1):
        by_code = {}
        for code, pc in zip(codes, percent):
            z = 1.8 * (np.log2(pc) - np.log2(6)) + ease
            p = 1 / 16 + (1 - 1 / 16 - 0.02) / (1 + np.exp(-z))
            by_code[code] = rng.random(n_images) < p
        out[f"subject-{s:02d}"] = by_code
    return out


def toolbox_kappa(right_a, right_b):
    """modelvshuman/plotting/analyses.py ErrorConsistency.analysis, on aligned trials."""
    a, b = np.asarray(right_a, bool), np.asarray(right_b, bool)
    p1, p2 = a.mean(), b.mean()
    expected = p1 * p2 + (1 - p1) * (1 - p2)
    observed = (a == b).sum() / len(a)
    return 1.0 if observed == 1.0 else (observed - expected) / (1.0 - expected)


@pytest.fixture(scope="module")
def contrast_study(tmp_path_factory):
    root = tmp_path_factory.mktemp("mvh")
    humans, models = root / "humans", root / "models"
    humans.mkdir()
    models.mkdir()
    data = simulate_contrast()
    for i, (subject, by_code) in enumerate(data.items()):
        # two subjects spell the column 'Session', two 'session': both are read
        write_toolbox_file(humans, "contrast", subject, by_code, seed=i,
                           session_column="Session" if i % 2 else "session")
    rng = np.random.default_rng(9)
    model = {code: rng.random(48) < 0.9 - 0.1 * j
             for j, code in enumerate(TOOLBOX_CODES["contrast"])}
    write_toolbox_file(models, "contrast", "resnet50", model, session_column="session")
    return {"humans": humans, "models": models, "data": data, "model": model}


def test_toolbox_contrast_codes_are_numeric_levels_each_its_own_condition(contrast_study):
    obs = load_observations([contrast_study["humans"]], [contrast_study["models"]])
    t = obs.trials
    assert set(t["manipulation"]) == {"contrast"}
    expected = {f"contrast={v:g}" for v in (100, 50, 30, 15, 10, 5, 3, 1)}
    assert set(t["condition"]) == expected
    assert sorted(t["level_value"].unique()) == [1, 3, 5, 10, 15, 30, 50, 100]
    res = run_comparison(obs, n_boot=0, psychometric=False)
    acc = res.accuracy
    assert len(acc) == (4 + 1) * 8            # one accuracy per observer and level
    humans = acc[acc["observer_type"] == "human"].set_index(["observer", "condition"])
    for subject, by_code in contrast_study["data"].items():
        for code, right in by_code.items():
            row = humans.loc[(f"contrast:{subject}", f"contrast={float(code[1:]):g}")]
            assert row["accuracy"] == pytest.approx(np.mean(right))
            assert row["level"] == code and row["level_value"] == float(code[1:])


def test_kappa_per_level_equals_the_toolbox_definition_and_is_averaged_not_pooled(
        contrast_study):
    obs = load_observations([contrast_study["humans"]], [contrast_study["models"]])
    res = run_comparison(obs, n_boot=0, psychometric=False)
    pairs = res.pairs
    assert len(pairs) == 8 * 10                 # 5 observers: 10 pairs in each of 8 levels
    data = contrast_study["data"]
    subjects = sorted(data)
    per_pair_means = []
    for i, a in enumerate(subjects):
        for b in subjects[i + 1:]:
            ks = []
            for code in TOOLBOX_CODES["contrast"]:
                ref = toolbox_kappa(data[a][code], data[b][code])
                row = pairs[(pairs["observer_a"] == f"contrast:{a}") &
                            (pairs["observer_b"] == f"contrast:{b}") &
                            (pairs["condition"] == f"contrast={float(code[1:]):g}")]
                assert len(row) == 1 and row["n_trials"].iloc[0] == 48
                assert row["kappa"].iloc[0] == pytest.approx(ref, abs=1e-12)
                ks.append(ref)
            per_pair_means.append(np.mean(ks))
    summary = res.consistency_summary.set_index(["condition", "pair_type"])
    mean_hh = summary.loc[("all", "human-human"), "mean_kappa"]
    assert mean_hh == pytest.approx(np.mean(per_pair_means), abs=1e-12)
    assert summary.loc[("all", "human-human"), "n_pairs"] == 6
    # pooling the eight levels into one condition inflates kappa (easy and hard levels)
    humans = obs.trials[obs.trials["observer_type"] == "human"]
    pooled = EC.error_consistency(humans, condition=None, n_boot=0)["kappa"].mean()
    assert pooled > mean_hh + 0.1


def test_toolbox_contrast_gets_a_psychometric_fit_with_the_16_way_guess_rate(contrast_study):
    obs = load_observations([contrast_study["humans"]], [])
    fits, notes = PF.fit_all(obs.trials)
    contrast = fits[fits["manipulation"] == "contrast"]
    assert set(contrast["fit"]) == {"observer", "group"}
    assert len(contrast[contrast["fit"] == "observer"]) == 4
    assert (contrast["direction"] == "increasing").all()
    assert (contrast["guess_rate"] == 1 / 16).all()
    group = contrast[contrast["fit"] == "group"].iloc[0]
    assert 2 < group["threshold"] < 15          # simulated mid-point: about 6 % contrast


@pytest.mark.parametrize("dataset", sorted(TOOLBOX_CODES))
def test_every_released_dataset_is_read_with_its_levels_apart(dataset, tmp_path):
    codes = TOOLBOX_CODES[dataset]
    column = "session" if dataset in LOWER_CASE_SESSION else "Session"
    rng = np.random.default_rng(len(dataset))
    for s in (1, 2):
        write_toolbox_file(tmp_path, dataset, f"subject-{s:02d}",
                           {c: rng.random(20) < 0.7 for c in codes}, session_column=column,
                           seed=s)
    obs = load_observations([tmp_path], [])
    t = obs.trials
    assert set(t["manipulation"]) == {dataset}
    assert t["condition"].nunique() == len(codes)
    assert len(t) == 2 * 20 * len(codes)
    numeric = t.drop_duplicates("condition").set_index("level")["level_value"]
    if dataset == "contrast":
        assert numeric.to_dict() == {c: float(c[1:]) for c in codes}
    elif dataset.startswith("eidolon"):
        assert sorted(numeric) == list(range(8))          # log2 reach, the toolbox's x-axis
    elif dataset in ("low-pass", "phase-scrambling", "rotation", "uniform-noise"):
        assert numeric.to_dict() == {c: float(c) for c in codes}
    elif dataset == "high-pass":
        assert numeric.drop("inf").to_dict() == {c: float(c) for c in codes if c != "inf"}
        assert np.isnan(numeric["inf"])
    else:
        assert numeric.isna().all()                        # text levels or no level
    if dataset in LOWER_CASE_SESSION:
        assert set(t["condition"]) == {dataset}
    if dataset == "colour":
        assert set(t["condition"]) == {"colour=colour", "colour=greyscale"}
    if dataset == "power-equalisation":
        assert set(t["condition"]) == {"power-equalisation=original",
                                       "power-equalisation=equalised"}
    res = run_comparison(obs, n_boot=0, psychometric=False)
    assert len(res.pairs) == len(codes)                   # one kappa per level


def test_rotation_levels_are_not_fitted_as_a_psychometric_function(tmp_path):
    rng = np.random.default_rng(3)
    for s in (1, 2):
        write_toolbox_file(tmp_path, "rotation", f"subject-{s:02d}",
                           {c: rng.random(40) < (0.9 if c == "0" else 0.5)
                            for c in TOOLBOX_CODES["rotation"]}, seed=s)
    obs = load_observations([tmp_path], [])
    fits, notes = PF.fit_all(obs.trials)
    assert fits.empty
    assert any("rotation" in n and "not ordered" in n for n in notes)


def test_text_levels_of_any_file_stay_apart(tmp_path):
    """A toolbox-style file of an unknown experiment with 3 text codes, and our trials with a
    semantic swap from 2 donor classes: one accuracy row and one set of kappas per level."""
    rng = np.random.default_rng(5)
    tb = tmp_path / "tb"
    tb.mkdir()
    for s in (1, 2, 3):
        write_toolbox_file(tb, "mystudy", f"subject-{s:02d}",
                           {c: rng.random(24) < p for c, p in
                            (("fog", 0.4), ("rain", 0.6), ("snow", 0.8))}, seed=s)
    obs = load_observations([tb], [])
    assert set(obs.trials["condition"]) == {"mystudy=fog", "mystudy=rain", "mystudy=snow"}
    res = run_comparison(obs, n_boot=0, psychometric=False)
    assert len(res.accuracy) == 3 * 3
    assert res.accuracy["level_value"].isna().all()
    assert res.pairs.groupby("condition").size().to_dict() == {
        "mystudy=fog": 3, "mystudy=rain": 3, "mystudy=snow": 3}

    ours = tmp_path / "ours"
    ours.mkdir()
    rows = []
    for p in ("P01", "P02"):
        for k in range(20):
            donor = "laughing" if k < 10 else "barking"
            rows.append({"participant": p, "session": 1, "task": "classify", "block": "main",
                         "trial": k + 1, "stimulus_id": f"swap_{k}", "label": "drumming",
                         "manipulation": "semantic_swap", "level": donor,
                         "response": "drumming" if rng.random() < 0.6 else donor,
                         "rt": 1.0})
        for k in range(10):
            rows.append({"participant": p, "session": 1, "task": "classify", "block": "main",
                         "trial": 21 + k, "stimulus_id": f"clean_{k}", "label": "drumming",
                         "manipulation": "none", "level": "", "response": "drumming",
                         "rt": 1.0})
    df = pd.DataFrame(rows)
    df["correct"] = df["response"] == df["label"]
    for p, part in df.groupby("participant"):
        part.to_csv(ours / f"{p}.csv", index=False)
    obs = load_observations([ours], [])
    res = run_comparison(obs, n_boot=0, psychometric=False)
    assert set(res.accuracy["condition"]) == {"none", "semantic_swap=laughing",
                                              "semantic_swap=barking"}
    acc = res.accuracy.set_index(["observer", "condition"])["accuracy"]
    for p in ("P01", "P02"):
        for donor, sl in (("laughing", slice(0, 10)), ("barking", slice(10, 20))):
            part = df[(df["participant"] == p) & (df["manipulation"] == "semantic_swap")]
            assert acc[(p, f"semantic_swap={donor}")] == pytest.approx(
                part["correct"].iloc[sl].mean())
    assert set(res.pairs["condition"]) == {"none", "semantic_swap=laughing",
                                           "semantic_swap=barking"}


def test_a_folder_whose_files_are_all_skipped_says_why(tmp_path, cli):
    pd.DataFrame({"subj": ["s1"], "trial": [1], "rt": [0.5], "object_response": ["cat"],
                  "category": ["cat"], "condition": ["0"]}).to_csv(tmp_path / "a.csv",
                                                                  index=False)
    pd.DataFrame({"x": [1]}).to_csv(tmp_path / "b.csv", index=False)
    with pytest.raises(DatasetError) as err:
        load_observations([tmp_path], [])
    message = str(err.value)
    assert "2 file(s) skipped" in message and "a.csv" in message and "imagename" in message
    out = tmp_path / "out"
    r = cli("analysis", ["compare", "--humans", tmp_path, "--out", out])
    assert r.code == 2 and not out.exists()
    assert "skipped" in r.err and len(r.err.strip().splitlines()) == 1


def test_compare_report_on_toolbox_data_lists_every_level(contrast_study, tmp_path):
    obs = load_observations([contrast_study["humans"]], [contrast_study["models"]])
    res = run_comparison(obs, n_boot=50, psychometric=True)
    files = write_comparison(res, tmp_path / "cmp")
    report = files["report.md"].read_text()
    for v in (100, 50, 30, 15, 10, 5, 3, 1):
        assert f"| contrast={v} |" in report
    assert "chance = 0.0625" in report
    assert "| contrast | humans | group |" in report


def test_decoders_cover_every_released_dataset():
    assert set(TOOLBOX_LEVELS) == set(TOOLBOX_CODES)
