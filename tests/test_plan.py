"""Study plans (issue 13): the Latin square over the default 960 x 27 suite, sessions, order,
repeats, practice from outside the test set, power against pingouin, bad designs, the file
layout the session runner reads, and determinism.

The manifests here are built the way ``stimuli/generate.py`` writes them (``_manifest``):
conditions from the suite YAML, numeric levels as floats ("-5.0"), the donor class as the level
of semantic swaps, '' for none / audio_only / visual_only. No video files are needed.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from avmit_psych.dataset.schema import TEST_CLASSES, DatasetError
from avmit_psych.experiments import plan as P
from avmit_psych.stimuli import manipulations as M
from avmit_psych.stimuli.suite import load_suite, stimulus_id
from tests.conftest import REPO

DEFAULT_SUITE = REPO / "stimuli" / "suites" / "avmit_test_960.yaml"
SMALL_SUITE = REPO / "stimuli" / "suites" / "demo_small.yaml"


def manifest_like_generate(suite_path, per_class=60, classes=TEST_CLASSES, seed=0,
                           prefix=""):
    """The manifest generate.py would write for ``suite_path`` (columns of the contract)."""
    suite = load_suite(suite_path)
    labels = np.repeat(np.asarray(classes, dtype=object), per_class)
    k = np.tile(np.arange(1, per_class + 1), len(classes))
    filenames = [f"{prefix}{c}/{prefix}{c}_{i:04d}.mp4" for c, i in zip(labels, k)]
    new = [f"{prefix}{c}/{prefix}{c}_{i}.mp4" for c, i in zip(labels, k)]
    donors = M.assign_donors(labels, seed=seed) \
        if any(c.manipulation == "semantic_swap" for c in suite.conditions) else None
    rows = []
    for i in range(len(labels)):
        for cond in suite.conditions:
            sid = stimulus_id(new[i], cond)
            if cond.manipulation == "semantic_swap":
                level, unit, audio = labels[donors[i]], "donor class", filenames[donors[i]]
            else:
                level = "" if cond.level is None else cond.level
                unit = cond.unit
                audio = "" if cond.manipulation == "visual_only" else filenames[i]
            rows.append({"stimulus_id": sid, "path": sid + suite.extension,
                         "source_filename": filenames[i], "label": labels[i],
                         "manipulation": cond.manipulation, "level": level,
                         "level_unit": unit, "audio_source": audio, "seed": 0,
                         "duration_s": 3.0, "fps": 30.0, "sample_rate": 48000,
                         "sha256": "0" * 64})
    return pd.DataFrame(rows)


def expected_conditions(suite_path) -> list[str]:
    """Condition names straight from the suite YAML (semantic_swap: one condition)."""
    return [c.manipulation if c.level is None else f"{c.manipulation}={c.level:g}"
            for c in load_suite(suite_path).conditions]


@pytest.fixture(scope="module")
def default_study(tmp_path_factory):
    """The default design of the 960 x 27 suite, planned and written once."""
    root = tmp_path_factory.mktemp("default_study")
    manifest = manifest_like_generate(DEFAULT_SUITE)
    manifest.to_csv(root / "manifest.csv", index=False)
    study = P.plan_study(root / "manifest.csv", root / "study")
    plans = {(p["list"], p["session"]): study.read_plan(p["list"], p["session"])
             for p in study.design["plans"]}
    return root, manifest, study, plans


def main_originals(plans, list_id):
    return pd.concat([t[(t["block"] == "main") & ~t["repeat"]] for (l, _), t in plans.items()
                      if l == list_id], ignore_index=True)


def condition_of(table):
    """Condition names of trial rows, computed here (not by the module under test)."""
    out = []
    for m, level in zip(table["manipulation"], table["level"]):
        out.append(m if m == "semantic_swap" or level == "" else f"{m}={float(level):g}")
    return pd.Series(out, index=table.index)


# --------------------------------------------------------------------------------------------
# The default design of the 960 x 27 suite
# --------------------------------------------------------------------------------------------
def test_default_design_is_27_lists_of_2_sessions_over_the_suites_conditions(default_study):
    root, manifest, study, plans = default_study
    d = study.design
    names = expected_conditions(DEFAULT_SUITE)
    assert len(names) == 27
    assert sorted(c["condition"] for c in d["conditions"]) == sorted(names)
    assert (d["n_lists"], d["sessions"], d["n_sources"]) == (27, 2, 960)
    assert d["trials_per_participant"] == 960 and d["participants_per_list"] == 1
    assert len(plans) == 54
    assert all(p["minutes"] <= d["max_session_minutes"] for p in d["plans"])


def test_every_participant_sees_each_source_video_exactly_once(default_study):
    root, manifest, study, plans = default_study
    sources = set(manifest["source_filename"])
    for l in range(1, 28):
        seen = main_originals(plans, l)["source_filename"]
        assert len(seen) == 960 and set(seen) == sources, l
        assert not seen.duplicated().any()


def test_per_participant_conditions_are_balanced_overall_and_over_the_classes(default_study):
    root, manifest, study, plans = default_study
    for l in range(1, 28):
        rows = main_originals(plans, l)
        cond = condition_of(rows)
        per_condition = cond.value_counts()
        assert len(per_condition) == 27
        assert per_condition.min() >= math.floor(960 / 27) - 1
        assert per_condition.max() <= math.ceil(960 / 27) + 1
        assert per_condition.max() - per_condition.min() <= 1
        table = pd.crosstab(cond, rows["label"])   # condition x class
        assert table.shape == (27, 16)
        spread = table.max(axis=1) - table.min(axis=1)
        assert spread.max() <= 1, (l, spread.idxmax())


def test_one_rotation_of_lists_shows_every_video_condition_cell_exactly_once(default_study):
    root, manifest, study, plans = default_study
    shown = pd.concat([main_originals(plans, l) for l in range(1, 28)], ignore_index=True)
    assert len(shown) == 960 * 27
    assert not shown["stimulus_id"].duplicated().any()
    assert set(shown["stimulus_id"]) == set(manifest["stimulus_id"])
    cells = pd.crosstab(shown["source_filename"], condition_of(shown))
    assert cells.shape == (960, 27) and (cells.to_numpy() == 1).all()


def test_two_participants_of_one_list_get_identical_stimulus_sets(default_study, tmp_path):
    root, manifest, study, plans = default_study
    L = study.n_lists
    assert study.list_for_participant(1) == study.list_for_participant(1 + L) == 1
    assert study.list_for_participant(5) == study.list_for_participant(5 + 2 * L) == 5
    assert sorted({study.list_for_participant(n) for n in range(1, L + 1)}) == \
        list(range(1, L + 1))
    # two participants of list 5 read the same files: the same stimuli, in the same order
    again = P.load_study(study.folder)
    for s in (1, 2):
        a = study.read_plan(study.list_for_participant(5), s)
        b = again.read_plan(again.list_for_participant(5 + L), s)
        pd.testing.assert_frame_equal(a, b)
    # and with two participants per list the lists are the same as with one
    two = P.plan_study(root / "manifest.csv", tmp_path / "two", participants_per_list=2)
    assert two.design["participants_per_list"] == 2
    for p in two.design["plans"]:
        assert p["sha256"] == study.plan_sha256(p["list"], p["session"])


def test_sessions_are_balanced_over_conditions_and_classes(default_study):
    root, manifest, study, plans = default_study
    for l in (1, 14, 27):
        s1, s2 = (plans[(l, s)][(plans[(l, s)]["block"] == "main") & ~plans[(l, s)]["repeat"]]
                  for s in (1, 2))
        assert len(s1) == len(s2) == 480
        c1, c2 = condition_of(s1).value_counts(), condition_of(s2).value_counts()
        assert ((c1 - c2.reindex(c1.index)).abs() <= 1).all()
        k1, k2 = s1["label"].value_counts(), s2["label"].value_counts()
        assert len(k1) == 16 and ((k1 - k2.reindex(k1.index)).abs() <= 1).all()


@pytest.mark.parametrize("n,C,K", [(960, 27, 16), (64, 27, 16), (300, 10, 16), (961, 26, 17),
                                   (50, 3, 2)])
@pytest.mark.parametrize("sessions", [2, 3, 4])
def test_split_sessions_balances_conditions_classes_and_sizes_exactly(n, C, K, sessions):
    g = np.arange(n)
    klass, condition = (g * K) // n, (g + 5) % C
    out = P.split_sessions(condition, klass, sessions, np.random.default_rng(1))
    for key, size in ((condition, C), (klass, K)):
        counts = np.zeros((size, sessions), int)
        np.add.at(counts, (key, out), 1)
        assert (counts.max(axis=1) - counts.min(axis=1)).max() <= 1
    sizes = np.bincount(out, minlength=sessions)
    assert sizes.max() - sizes.min() <= 1 and sizes.sum() == n


def test_no_two_consecutive_trials_share_a_class_or_a_source_video(default_study):
    root, manifest, study, plans = default_study
    for table in plans.values():
        main = table[table["block"] == "main"]
        lab, src = main["label"].to_numpy(), main["source_filename"].to_numpy()
        assert not (lab[1:] == lab[:-1]).any()
        assert not (src[1:] == src[:-1]).any()


def test_every_repeat_follows_its_original_by_at_least_the_gap_in_the_same_session(
        default_study):
    root, manifest, study, plans = default_study
    gap = study.design["repeat_min_gap"]
    assert gap == 20
    for (l, s), table in plans.items():
        main = table[table["block"] == "main"]
        reps = main[main["repeat"]]
        assert len(reps) == 48 == round(0.1 * 480)
        originals = main[~main["repeat"]].set_index("stimulus_id")["position"].astype(int)
        assert originals.index.is_unique
        for sid, pos in zip(reps["stimulus_id"], reps["position"].astype(int)):
            assert sid in originals.index, (l, s, sid)   # its original is in this session
            assert pos - originals[sid] >= gap, (l, s, sid)
        assert not reps["stimulus_id"].duplicated().any()


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("spec", [dict(lists=9, repeat_share=0.05),
                                  dict(sessions=2, repeat_share=0.3, repeat_min_gap=10)])
def test_order_constraints_and_gaps_hold_for_other_designs(small, seed, spec):
    plan = P.make_plan(small / "suite" / "manifest.csv", small_design(seed=seed, **spec))
    assert not plan.notes
    gap = plan.info["repeat_min_gap"]
    for table in plan.plans.values():
        lab, src = table["label"].to_numpy(), table["source_filename"].to_numpy()
        assert not (lab[1:] == lab[:-1]).any() and not (src[1:] == src[:-1]).any()
        first = {}
        for sid, pos, rep in zip(table["stimulus_id"], table["position"], table["repeat"]):
            if rep:
                assert pos - first[sid] >= gap
            else:
                first[sid] = pos


def test_breaks_come_every_60_main_trials_never_before_the_first(default_study):
    root, manifest, study, plans = default_study
    table = plans[(3, 2)]
    main = table[table["block"] == "main"].reset_index(drop=True)
    expected = [i for i in range(1, len(main) + 1) if i > 1 and (i - 1) % 60 == 0]
    assert list(main.index[main["break_before"]] + 1) == expected == [61, 121, 181, 241, 301,
                                                                      361, 421, 481]
    assert not table[table["block"] == "practice"]["break_before"].any()


def test_plan_files_follow_the_contract(default_study):
    root, manifest, study, plans = default_study
    d = json.loads((study.folder / "design.json").read_text())
    for key in ("version", "task", "seed", "manifest", "manifest_sha256", "suite_root",
                "conditions", "n_sources", "n_lists", "sessions", "participants_per_list",
                "trials_per_participant", "trial_duration_s", "max_session_minutes",
                "break_every", "repeat_share", "repeat_min_gap", "practice", "plans", "power"):
        assert key in d, key
    assert d["version"] == 1 and d["task"] == "classify"
    assert d["manifest"] == str(root / "manifest.csv")
    assert d["suite_root"] == str(root)
    from avmit_psych._atomic import sha256_file
    assert d["manifest_sha256"] == sha256_file(root / "manifest.csv")
    assert set(d["practice"]) >= {"manifest", "suite_root", "n", "note"}
    files = sorted(p.name for p in study.folder.iterdir())
    assert files == sorted(["design.json", "design_report.txt"] +
                           [f"list-{l:02d}_ses-{s}.csv" for l in range(1, 28) for s in (1, 2)])
    for p in d["plans"]:
        path = study.folder / p["file"]
        assert p["file"] == f"list-{p['list']:02d}_ses-{p['session']}.csv"
        assert p["sha256"] == sha256_file(path)
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
        assert list(raw.columns) == P.PLAN_COLUMNS
        assert p["n_trials"] == len(raw) == p["n_main"] + p["n_practice"]
        assert p["n_repeats"] == (raw["repeat"] == "True").sum()
        assert list(raw["position"]) == [str(i) for i in range(1, len(raw) + 1)]
        assert set(raw["repeat"]) | set(raw["break_before"]) <= {"True", "False"}
        assert (raw["list"] == str(p["list"])).all()
        assert (raw["session"] == str(p["session"])).all()
    # levels exactly as written in the manifest, never reformatted
    raw = pd.read_csv(study.plan_path(1, 1), dtype=str, keep_default_na=False)
    text = pd.read_csv(root / "manifest.csv", dtype=str, keep_default_na=False)
    merged = raw.merge(text[["stimulus_id", "level", "path"]], on="stimulus_id",
                       suffixes=("", "_m"))
    assert (merged["level"] == merged["level_m"]).all()
    assert (merged["path"] == merged["path_m"]).all()
    assert {"-5.0", "10.0", ""} <= set(text["level"]) and "-5.0" in set(raw["level"])
    swaps = raw[raw["manipulation"] == "semantic_swap"]
    assert len(swaps) and set(swaps["level"]) <= set(TEST_CLASSES)
    table = study.read_plan(1, 1)
    assert table["repeat"].dtype == bool and table["break_before"].dtype == bool
    assert table["position"].iloc[0] == 1 and table["list"].iloc[0] == 1   # numbers
    assert table["file"].iloc[0] == str(root / table["path"].iloc[0])
    assert (table["task"] == "classify").all()


def test_design_report_states_counts_sessions_practice_and_power(default_study):
    root, manifest, study, plans = default_study
    report = (study.folder / "design_report.txt").read_text()
    for fragment in ("conditions: 27", "lists: 27", "sessions per participant: 2",
                     "session 1: 0 practice + 480 main + 48 repeats = 528 trials",
                     "Counts per condition", "Counts per class", "Counts per list",
                     "audio_noise=-5", "semantic_swap", "barking", P.NO_PRACTICE_NOTE,
                     "paired t-test, d = 0.5", "repeated-measures ANOVA"):
        assert fragment in report, fragment
    assert study.design["practice"] == {"manifest": None, "suite_root": None, "n": 0,
                                        "note": P.NO_PRACTICE_NOTE}


# --------------------------------------------------------------------------------------------
# The Latin square and the session split in general
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("per_class,classes,lists", [(7, TEST_CLASSES[:5], None),
                                                      (3, TEST_CLASSES[:4], 5),
                                                      (10, TEST_CLASSES[:3], 11)])
def test_latin_square_properties_for_other_sizes(tmp_path, per_class, classes, lists):
    manifest = manifest_like_generate(SMALL_SUITE, per_class=per_class, classes=classes)
    plan = P.make_plan(manifest, {"suite_root": str(tmp_path), "lists": lists,
                                  "repeat_share": 0.0, "break_every": 10})
    C, S = len(expected_conditions(SMALL_SUITE)), per_class * len(classes)
    assert C == 12  # demo_small: none, 4 + 4 noise levels, semantic_swap, 2 unimodal
    L = C if lists is None else lists
    assert plan.assignment.shape == (S, L)
    for l in range(L):
        counts = np.bincount(plan.assignment[:, l], minlength=C)
        assert counts.max() - counts.min() <= 1
    if L == C:
        assert (np.sort(plan.assignment, axis=1) == np.arange(C)).all()  # each cell once


def test_fewer_trials_per_participant_take_a_class_balanced_subset(tmp_path):
    manifest = manifest_like_generate(SMALL_SUITE, per_class=6, classes=TEST_CLASSES[:4])
    plan = P.make_plan(manifest, {"suite_root": str(tmp_path), "trials_per_participant": 10,
                                  "repeat_share": 0.0})
    for table in plan.plans.values():
        assert len(table) == 10
        counts = table["label"].value_counts()
        assert len(counts) == 4 and counts.max() - counts.min() <= 1
    with pytest.raises(DatasetError, match="trials_per_participant 25 is more than the 24"):
        P.make_plan(manifest, {"suite_root": str(tmp_path), "trials_per_participant": 25})


def test_synthetic_manifest_helper_matches_generates_layout():
    ours = P.synthetic_manifest(SMALL_SUITE, per_class=3, classes=TEST_CLASSES[:4])
    theirs = manifest_like_generate(SMALL_SUITE, per_class=3, classes=TEST_CLASSES[:4])
    cols = ["stimulus_id", "path", "source_filename", "label", "manipulation", "level",
            "level_unit", "audio_source"]
    pd.testing.assert_frame_equal(ours[cols].astype(str), theirs[cols].astype(str))


# --------------------------------------------------------------------------------------------
# Practice from outside the test set
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small(tmp_path_factory):
    root = tmp_path_factory.mktemp("small")
    test = manifest_like_generate(DEFAULT_SUITE, per_class=4)
    (root / "suite").mkdir()
    test.to_csv(root / "suite" / "manifest.csv", index=False)
    practice = manifest_like_generate(DEFAULT_SUITE, per_class=1, prefix="train_")
    (root / "practice").mkdir()
    practice.to_csv(root / "practice" / "manifest.csv", index=False)
    return root


def small_design(**extra):
    base = {"break_every": 16, "repeat_min_gap": 6}
    base.update(extra)
    return base


def test_practice_comes_from_outside_the_test_set_and_opens_every_session(small, tmp_path):
    study = P.plan_study(small / "suite" / "manifest.csv", tmp_path / "s",
                         small_design(sessions=2), practice=small / "practice" / "manifest.csv")
    test_sources = set(pd.read_csv(small / "suite" / "manifest.csv")["source_filename"])
    assert study.design["practice"]["n"] == 8
    assert study.design["practice"]["manifest"] == str(small / "practice" / "manifest.csv")
    first = None
    for p in study.design["plans"]:
        table = study.read_plan(p["list"], p["session"])
        prac = table[table["block"] == "practice"]
        assert list(prac["position"]) == list(range(1, 9))   # practice first
        assert (table["block"].iloc[8:] == "main").all()
        assert not prac["repeat"].any() and not prac["break_before"].any()
        assert not set(prac["source_filename"]) & test_sources
        assert not set(prac["audio_source"]) & test_sources
        assert (prac["suite_root"] == str(small / "practice")).all()
        assert (table["suite_root"].iloc[8:] == str(small / "suite")).all()
        if first is None:
            first = list(prac["stimulus_id"])
        assert list(prac["stimulus_id"]) == first        # the same practice everywhere
    assert prac["manipulation"].iloc[0] == "none"
    assert prac["manipulation"].nunique() >= 6         # varied manipulations
    assert prac["source_filename"].nunique() == 8
    report = (study.folder / "design_report.txt").read_text()
    assert "8 practice stimuli from 8 source videos outside the test set" in report


def test_practice_sharing_a_source_video_with_the_test_stimuli_is_refused(small, tmp_path,
                                                                          cli):
    practice = pd.read_csv(small / "practice" / "manifest.csv", dtype=str,
                           keep_default_na=False)
    test = pd.read_csv(small / "suite" / "manifest.csv", dtype=str, keep_default_na=False)
    practice.loc[5, "source_filename"] = test["source_filename"].iloc[40]
    bad = tmp_path / "practice.csv"
    practice.to_csv(bad, index=False)
    with pytest.raises(DatasetError) as err:
        P.plan_study(small / "suite" / "manifest.csv", tmp_path / "s", practice=bad)
    msg = str(err.value)
    assert "row 6" in msg and "column 'source_filename'" in msg
    assert test["source_filename"].iloc[40] in msg and practice["stimulus_id"].iloc[5] in msg
    assert not (tmp_path / "s").exists()
    r = cli("experiments", ["plan", "--manifest", small / "suite" / "manifest.csv",
                            "--practice-manifest", bad, "--out", tmp_path / "c"])
    assert r.code == 2 and len(r.err.strip().splitlines()) == 1
    assert "a source video of the test stimuli" in r.err
    assert not (tmp_path / "c").exists()
    # a donor (audio source) from the test set is refused too
    practice = pd.read_csv(small / "practice" / "manifest.csv", dtype=str,
                           keep_default_na=False)
    practice.loc[3, "audio_source"] = test["source_filename"].iloc[0]
    practice.to_csv(bad, index=False)
    with pytest.raises(DatasetError, match="column 'audio_source'"):
        P.make_plan(small / "suite" / "manifest.csv", practice=bad)


# --------------------------------------------------------------------------------------------
# Power (pingouin)
# --------------------------------------------------------------------------------------------
def test_plan_power_gives_pingouins_n_for_d_05_paired(small, tmp_path, cli):
    import pingouin as pg
    r = cli("experiments", ["plan", "--manifest", small / "suite" / "manifest.csv",
                            "--design", _write_yaml(tmp_path, small_design()),
                            "--out", tmp_path / "s", "--power", "--effect-size", "0.5",
                            "--alpha", "0.05", "--target-power", "0.8"])
    assert r.code == 0, r.err
    power = json.loads((tmp_path / "s" / "design.json").read_text())["power"]
    n_paired = math.ceil(pg.power_ttest(d=0.5, power=0.8, alpha=0.05, contrast="paired"))
    assert n_paired == 34
    assert power["n_paired"] == n_paired
    assert power["participants_per_list_paired"] == math.ceil(34 / 27) == 2
    n_rm = math.ceil(pg.power_rm_anova(eta_squared=0.06, m=9, power=0.8, alpha=0.05, corr=0.5))
    assert power["rm_levels"] == 9 and power["n_rm_anova"] == n_rm
    assert power["power_paired_planned"] == pytest.approx(
        pg.power_ttest(d=0.5, n=27, alpha=0.05, contrast="paired"), abs=1e-4)
    assert power["power_rm_anova_planned"] == pytest.approx(
        pg.power_rm_anova(eta_squared=0.06, m=9, n=27, alpha=0.05, corr=0.5), abs=1e-4)
    assert "N = 34 (2 per list)" in r.out
    report = (tmp_path / "s" / "design_report.txt").read_text()
    assert "paired t-test 34 (2 per list)" in report
    assert f"power {power['power_paired_planned']:.3f} with N = 27" in report


def test_power_for_other_values_matches_pingouin(small):
    import pingouin as pg
    out = P.power_analysis(12, effect_size=0.3, alpha=0.01, target_power=0.9,
                           eta_squared=0.1, rm_levels=4, rm_corr=0.3, n_needed=True,
                           n_lists=5)
    assert out["n_paired"] == math.ceil(pg.power_ttest(d=0.3, power=0.9, alpha=0.01,
                                                       contrast="paired"))
    assert out["n_rm_anova"] == math.ceil(pg.power_rm_anova(eta_squared=0.1, m=4, power=0.9,
                                                            alpha=0.01, corr=0.3))
    assert out["participants_per_list_paired"] == math.ceil(out["n_paired"] / 5)
    one = P.power_analysis(1)
    assert one["power_paired_planned"] is None and one["notes"]


# --------------------------------------------------------------------------------------------
# Bad designs: one clear error, no output
# --------------------------------------------------------------------------------------------
def _write_yaml(folder, spec) -> str:
    import yaml
    path = folder / "design.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


BAD_DESIGNS = [
    ("more lists than conditions", {"lists": 28}, "more lists (28) than conditions allow (27)"),
    ("session cannot fit one block", {"max_session_minutes": 1, "break_every": 60},
     "a session cannot fit one block"),
    ("given sessions too long", {"sessions": 1, "max_session_minutes": 5, "break_every": 10},
     "exceed max_session_minutes 5"),
    ("unknown key", {"repeats": 0.2}, "unknown key 'repeats'"),
    ("unknown nested key", {"practice": {"count": 3}}, "unknown key 'practice.count'"),
    ("gap does not fit", {"repeat_min_gap": 200}, "repeat_min_gap 200"),
    ("wrong type", {"lists": "many"}, "'lists' must be a whole number"),
    ("unknown task", {"task": "rate"}, "'task' must be classify or correspondence"),
    ("unknown manipulation", {"manipulations": ["blur"]}, "manipulation 'blur' is not in"),
]


@pytest.mark.parametrize("name,spec,fragment", BAD_DESIGNS, ids=[c[0] for c in BAD_DESIGNS])
def test_bad_designs_give_one_clear_error_and_no_output(small, tmp_path, cli, name, spec,
                                                        fragment):
    design = _write_yaml(tmp_path, small_design(**spec) if name not in (
        "session cannot fit one block",) else spec)
    r = cli("experiments", ["plan", "--manifest", small / "suite" / "manifest.csv",
                            "--design", design, "--out", tmp_path / "out"])
    assert r.code == 2, r.out
    assert len(r.err.strip().splitlines()) == 1 and r.err.startswith("error: ")
    assert fragment in r.err, r.err
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".out*"))      # no staging left behind


def test_unknown_key_error_lists_the_allowed_keys(small, tmp_path):
    with pytest.raises(DatasetError) as err:
        P.load_design(_write_yaml(tmp_path, {"break_evry": 30}))
    msg = str(err.value)
    assert "did you mean 'break_every'?" in msg
    for key in ("trials_per_participant", "repeat_min_gap", "practice", "order_constraints",
                "power"):
        assert key in msg


def test_unequal_conditions_per_source_are_refused_naming_the_source(small, tmp_path):
    manifest = pd.read_csv(small / "suite" / "manifest.csv", dtype=str, keep_default_na=False)
    dropped = manifest.drop(index=30)       # source 2's second condition
    dropped.to_csv(tmp_path / "m.csv", index=False)
    with pytest.raises(DatasetError) as err:
        P.plan_study(tmp_path / "m.csv", tmp_path / "out")
    msg = str(err.value)
    src = manifest["source_filename"].iloc[30]
    assert "unequal conditions per source" in msg and f"'{src}'" in msg
    assert "26 of the 27 conditions" in msg
    assert not (tmp_path / "out").exists()
    doubled = pd.concat([manifest, manifest.iloc[[31]].assign(stimulus_id="x")])
    doubled.to_csv(tmp_path / "m2.csv", index=False)
    with pytest.raises(DatasetError, match="has 2 stimuli for condition"):
        P.make_plan(tmp_path / "m2.csv")


def test_an_order_constraint_that_cannot_be_met_is_refused(tmp_path):
    # one class (its semantic swaps, which need donors of another class, left out)
    two = manifest_like_generate(SMALL_SUITE, per_class=30, classes=("barking", "diving"))
    one_class = two[(two["label"] == "barking") & (two["manipulation"] != "semantic_swap")]
    with pytest.raises(DatasetError, match="no_repeat_class cannot be met"):
        P.make_plan(one_class, {"suite_root": str(tmp_path), "repeat_share": 0.0})
    plan = P.make_plan(one_class, {"suite_root": str(tmp_path), "repeat_share": 0.0,
                                   "order_constraints": {"no_repeat_class": False}})
    assert len(plan.plans) == 11  # demo_small's 12 conditions but the swaps


def test_missing_manifest_column_is_refused(small, tmp_path):
    manifest = pd.read_csv(small / "suite" / "manifest.csv").drop(columns="level_unit")
    manifest.to_csv(tmp_path / "m.csv", index=False)
    with pytest.raises(DatasetError, match="column 'level_unit': required column"):
        P.make_plan(tmp_path / "m.csv")


# --------------------------------------------------------------------------------------------
# Sessions from pilot data; options
# --------------------------------------------------------------------------------------------
def test_trial_duration_is_measured_from_pilot_onsets(small, tmp_path):
    pilot = tmp_path / "pilot"
    pilot.mkdir()
    for p, step, n in (("P1", 5.0, 40), ("P2", 5.2, 50)):
        onsets = np.cumsum([step] * n) + 100.0
        onsets[20:] += 180.0                  # a break: left out
        onsets[:2] -= 30.0                    # practice (with feedback): left out
        pd.DataFrame({"participant": p, "session": 1, "trial": np.arange(1, n + 1),
                      "block": ["practice"] * 2 + ["main"] * (n - 2), "onset": onsets}
                     ).to_csv(pilot / f"sub-{p}_ses-1_task-classify_beh.csv", index=False)
    (pilot / "notes.csv").write_text("a,b\n1,2\n")     # not trials: skipped
    study = P.plan_study(small / "suite" / "manifest.csv", tmp_path / "s", small_design(),
                         pilot=pilot)
    d = study.design
    assert d["trial_duration_s"] == pytest.approx(5.2)   # median of 36 x 5.0 and 46 x 5.2
    assert d["trial_duration_source"].startswith("measured")
    assert "measured" in (study.folder / "design_report.txt").read_text()
    p = d["plans"][0]
    assert p["minutes"] == pytest.approx(p["n_trials"] * d["trial_duration_s"] / 60, abs=0.01)
    with pytest.raises(DatasetError, match="no trial onsets"):
        P.measure_trial_duration(pilot / "notes.csv")


def test_the_task_of_the_design_is_in_every_row(small, tmp_path):
    study = P.plan_study(small / "suite" / "manifest.csv", tmp_path / "s",
                         _write_yaml(tmp_path, small_design(task="correspondence", lists=3)))
    assert study.design["task"] == "correspondence" and study.n_lists == 3
    assert (study.read_plan(3, 1)["task"] == "correspondence").all()


def test_default_sessions_are_the_fewest_that_fit(small, tmp_path):
    # 64 sources: 64 + 6 repeats = 70 trials x 6.5 s = 7.6 min
    plan = P.make_plan(small / "suite" / "manifest.csv", small_design(max_session_minutes=4))
    assert plan.info["sessions"] == 2
    assert all(p["minutes"] <= 4 for p in plan.info["plans"])
    plan = P.make_plan(small / "suite" / "manifest.csv", small_design())
    assert plan.info["sessions"] == 1


def test_the_example_design_file_holds_the_defaults():
    d = P.load_design(REPO / "experiments" / "study_design.yaml")
    assert P.as_design(None) == d


# --------------------------------------------------------------------------------------------
# Determinism, --force, reading a study
# --------------------------------------------------------------------------------------------
def test_same_manifest_design_and_seed_give_byte_identical_files(small, tmp_path):
    args = (small / "suite" / "manifest.csv",)
    kw = dict(design=small_design(sessions=2), practice=small / "practice" / "manifest.csv")
    a = P.plan_study(*args, tmp_path / "a", **kw)
    b = P.plan_study(*args, tmp_path / "b", **kw)
    names = sorted(p.name for p in a.folder.iterdir())
    assert names == sorted(p.name for p in b.folder.iterdir()) and len(names) == 2 + 27 * 2
    for name in names:
        assert (a.folder / name).read_bytes() == (b.folder / name).read_bytes(), name
    c = P.plan_study(*args, tmp_path / "c", seed=1, **kw)
    assert (c.folder / "list-01_ses-1.csv").read_bytes() != \
        (a.folder / "list-01_ses-1.csv").read_bytes()
    # the manifest's row order does not matter
    shuffled = pd.read_csv(args[0], dtype=str, keep_default_na=False).sample(frac=1,
                                                                           random_state=3)
    (tmp_path / "suite").mkdir()
    shuffled.to_csv(tmp_path / "suite" / "manifest.csv", index=False)
    d = P.plan_study(tmp_path / "suite" / "manifest.csv", tmp_path / "d", **kw)
    for p in d.design["plans"]:
        x = d.read_plan(p["list"], p["session"]).drop(columns=["suite_root", "file"])
        y = a.read_plan(p["list"], p["session"]).drop(columns=["suite_root", "file"])
        pd.testing.assert_frame_equal(x, y)


def test_an_existing_study_is_replaced_only_with_force(small, tmp_path, cli):
    out = tmp_path / "study"
    out.mkdir()
    (out / "old.txt").write_text("keep me")
    manifest = small / "suite" / "manifest.csv"
    design = _write_yaml(tmp_path, small_design())
    r = cli("experiments", ["plan", "--manifest", manifest, "--design", design, "--out", out])
    assert r.code == 2 and "not empty" in r.err and "--force" in r.err
    assert (out / "old.txt").read_text() == "keep me"
    r = cli("experiments", ["plan", "--manifest", manifest, "--design", design, "--out", out,
                            "--force", "--seed", "4"])
    assert r.code == 0, r.err
    assert not (out / "old.txt").exists()           # replaced as a whole
    assert P.load_study(out).design["seed"] == 4
    assert "planned 27 lists x 1 sessions" in r.out
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_load_study_and_read_plan_refuse_what_is_not_a_study(small, tmp_path):
    with pytest.raises(DatasetError, match="design.json not found"):
        P.load_study(tmp_path)
    study = P.plan_study(small / "suite" / "manifest.csv", tmp_path / "s", small_design())
    with pytest.raises(DatasetError, match="no list 28 session 1"):
        study.read_plan(28, 1)
    with pytest.raises(DatasetError, match="no list 1 session 2"):
        study.plan_path(1, 2)
    path = study.plan_path(2, 1)
    path.write_text(path.read_text().replace("False", "True", 1))
    with pytest.raises(DatasetError, match="changed since it was planned"):
        study.read_plan(2, 1)
    path.unlink()
    with pytest.raises(DatasetError, match="plan file not found"):
        study.read_plan(2, 1)
    (study.folder / "design.json").write_text("{not json")
    with pytest.raises(DatasetError, match="not valid JSON"):
        P.load_study(study.folder)
    (study.folder / "design.json").write_text(json.dumps({"version": 2}))
    with pytest.raises(DatasetError, match="version 2"):
        P.load_study(study.folder)


def test_the_command_runs_as_a_module_with_help():
    r = subprocess.run([sys.executable, "-m", "avmit_psych.experiments", "plan", "--help"],
                       capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0
    for option in ("--manifest", "--design", "--practice-manifest", "--pilot", "--power",
                   "--effect-size", "--force", "--seed"):
        assert option in r.stdout
    r = subprocess.run([sys.executable, "-m", "avmit_psych.experiments", "--help"],
                       capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0 and "plan" in r.stdout
