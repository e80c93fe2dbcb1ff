"""The demo study: the simulated observer model, and one real build (cached, resumable)."""
from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from avmit_psych.demo import participants as P
from avmit_psych.demo import study as D
from avmit_psych.analysis import psychometric as PF
from avmit_psych.dataset import schema
from avmit_psych.experiments import cue_integration as CI
from avmit_psych.experiments import human_vs_dnn as H
from tests.conftest import REPO, requires_tf

TRIALS_CONTRACT = ["participant", "session", "task", "block", "trial", "stimulus_id", "label",
                   "manipulation", "level", "response", "correct", "rt"]
PREDICTIONS_CONTRACT = ["model", "stimulus_id", "label", "manipulation", "level", "response",
                        "correct"]
MANIFEST_CONTRACT = ["stimulus_id", "path", "source_filename", "label", "manipulation", "level",
                     "level_unit", "audio_source", "seed", "duration_s", "fps", "sample_rate",
                     "sha256"]
GUESS = 1 / 16


def _phi(z):
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


# -- the observer model (no TensorFlow) --------------------------------------------------------
def test_psychometric_observer_answers_as_its_function_says():
    """Independent computation: P(correct) = 1/16 + (1 - 1/16 - lapse) * Phi(+-(x - t) / s),
    compared with the share of correct answers in 4,000 simulated trials per level."""
    obs = H.PsychometricObserver(7, functions={"audio_noise": (10.0, 4.0),
                                               "visual_noise": (100.0, 20.0)},
                                 base_accuracy={"none": 0.9, "audio_only": 0.6}, lapse=0.05)
    # at threshold: half way between chance and the ceiling 1 - lapse
    assert obs.p_correct("audio_noise", 10.0) == pytest.approx(GUESS + (1 - GUESS - 0.05) / 2)
    assert obs.p_correct("audio_noise", 60.0) == pytest.approx(0.95, abs=1e-9)   # ceiling
    assert obs.p_correct("audio_noise", -60.0) == pytest.approx(GUESS, abs=1e-9)  # chance
    assert obs.p_correct("visual_noise", 140.0) < obs.p_correct("visual_noise", 60.0)
    assert obs.p_correct("none", "") == 0.9 and obs.p_correct("audio_only", None) == 0.6
    assert obs.p_correct("semantic_swap", "barking") == 0.9  # no function: like 'none'
    n = 4000
    for manipulation, level, sign, (t, s) in (("audio_noise", 6.0, 1, (10.0, 4.0)),
                                              ("audio_noise", 14.0, 1, (10.0, 4.0)),
                                              ("visual_noise", 120.0, -1, (100.0, 20.0)),
                                              ("none", "", 0, (0, 1))):
        expected = 0.9 if manipulation == "none" else \
            GUESS + (1 - GUESS - 0.05) * _phi(sign * (level - t) / s)
        stim = {"label": "barking", "manipulation": manipulation, "level": level}
        right = np.mean([obs.respond("classify", stim) == "barking" for _ in range(n)])
        # 4.5 binomial standard errors: a false failure about once in 150,000 runs
        assert abs(right - expected) < 4.5 * math.sqrt(expected * (1 - expected) / n), \
            (manipulation, level, right, expected)


def test_observer_errors_favour_the_confusable_classes_and_hard_trials_are_slower():
    obs = H.PsychometricObserver(3, functions={"audio_noise": (10.0, 4.0)}, lapse=0.02,
                                 confusable_share=0.8)
    stim = {"label": "drumming", "manipulation": "audio_noise", "level": -20.0}  # ~chance
    answers = pd.Series([obs.respond("classify", stim) for _ in range(3000)])
    wrong = answers[answers != "drumming"]
    assert len(wrong) > 2500
    confusable = wrong.isin(H.CONFUSABLE_CLASSES["drumming"]).mean()
    assert confusable == pytest.approx(0.8, abs=0.03)
    assert set(wrong) - set(H.CONFUSABLE_CLASSES["drumming"])  # other errors exist too
    easy = {"label": "drumming", "manipulation": "audio_noise", "level": 40.0}
    assert np.median([obs.rt(stim) for _ in range(500)]) > \
        1.3 * np.median([obs.rt(easy) for _ in range(500)])
    assert H.PsychometricObserver(3).respond("correspondence",
                                             {"manipulation": "none"}) in ("same", "different")
    with pytest.raises(ValueError, match="no psychometric direction"):
        H.PsychometricObserver(1, functions={"semantic_swap": (0.0, 1.0)})


def test_simulated_observers_differ_within_the_population():
    table = D.simulate_observers(10, seed=4)
    assert table["participant"].tolist() == [f"P{i:02d}" for i in range(1, 11)]
    assert table["lapse"].between(0.01, 0.05).all()
    # demo_small's SNRs run from 30 to 0 dB: the 50 % point of d'_A is drawn around 13 dB
    assert table["audio_snr50_db"].nunique() == 10
    assert abs(table["audio_snr50_db"].mean() - 13.0) < 3 * 2.5 / math.sqrt(10)
    assert all(isinstance(o, CI.CueIntegrationObserver) for o in table["observer"])
    assert table["observer"].iloc[0].audio_snr50_db == table["audio_snr50_db"].iloc[0]
    again = D.simulate_observers(10, seed=4)
    pd.testing.assert_frame_equal(table.drop(columns="observer"),
                                  again.drop(columns="observer"))
    assert not table["lapse"].equals(D.simulate_observers(10, seed=5)["lapse"])


def test_simulated_participants_integrate_the_cues(tmp_path):
    """No TensorFlow: a stand-in manifest of demo_small's conditions, 10 observers x 40
    stimuli a condition through the TrialWriter path. The cue-integration properties the
    issue asks of the demo: auditory noise at its worst level with a clean picture is about as
    good as the picture alone, visual noise at its worst with clean sound about as good as the
    sound alone, and clean AV at least as good as either (binomial SE of a condition's mean
    over 400 trials <= 0.025, so +-0.05 is two SEs)."""
    conditions = [("none", ""), ("audio_only", ""), ("visual_only", "")] + \
        [("audio_noise", f"{x:.1f}") for x in (30, 20, 10, 0)] + \
        [("visual_noise", f"{x:.1f}") for x in (32, 64, 128, 192)]
    rows = [{"stimulus_id": f"{m}-{lv}-{i}", "label": schema.TEST_CLASSES[i % 16],
             "manipulation": m, "level": lv, "audio_source": "", "duration_s": "1.5",
             "fps": "30"} for m, lv in conditions for i in range(40)]
    manifest = pd.DataFrame(rows)
    observers = D.simulate_observers(10, seed=0)
    D.simulate_participants(manifest, tmp_path / "classify", observers, seed=0)
    humans = pd.concat([schema.read_csv(p) for p in sorted((tmp_path / "classify").glob(
        "*.csv"))], ignore_index=True)
    assert len(humans) == 10 * len(manifest) and (humans["task"] == "classify").all()
    correct = humans["correct"].eq("True")
    single = correct.groupby(humans["manipulation"]).mean()
    audio, visual = _accuracy(humans, "audio_noise"), _accuracy(humans, "visual_noise")
    assert audio[0.0] == pytest.approx(single["visual_only"], abs=0.05)
    assert visual[192.0] == pytest.approx(single["audio_only"], abs=0.05)
    assert visual[128.0] == pytest.approx(single["audio_only"], abs=0.05)
    assert single["none"] >= max(single["audio_only"], single["visual_only"])
    assert audio[30.0] > audio[0.0] and visual[32.0] > visual[192.0]
    # the same people in the correspondence task: one-modality stimuli ask no question, the
    # label is the answer key
    D.simulate_participants(manifest, tmp_path / "corr", observers, seed=0,
                            task="correspondence")
    corr = pd.concat([schema.read_csv(p) for p in sorted((tmp_path / "corr").glob("*.csv"))],
                     ignore_index=True)
    assert not corr["manipulation"].isin(["audio_only", "visual_only"]).any()
    assert len(corr) == 10 * 40 * 9 and (corr["task"] == "correspondence").all()
    assert set(corr["label"]) == {"same"} and set(corr["response"]) == {"same", "different"}
    assert (corr["correct"] == (corr["response"] == "same").astype(str)).all()
    by = corr["correct"].eq("True").groupby(corr["manipulation"]).mean()
    assert by["none"] > by["visual_noise"]


def test_default_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("AVMIT_PSYCH_DATA", str(tmp_path / "data"))
    assert D.default_root(3) == tmp_path / "data" / "demo_study" / "seed-3"
    monkeypatch.delenv("AVMIT_PSYCH_DATA")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert D.default_root() == tmp_path / "xdg" / "avmit_psych" / "demo_study" / "seed-0"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert D.default_root() == \
        tmp_path / "home" / ".local" / "share" / "avmit_psych" / "demo_study" / "seed-0"


def test_importing_the_demo_study_does_not_import_tensorflow():
    code = ("import sys, avmit_psych.demo.study; "
            "sys.exit('tensorflow' in sys.modules or 'keras' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0


def test_clearing_a_root_removes_only_what_a_build_writes(tmp_path):
    for name in ("clips", "humans", "models"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "x.csv").write_text("a\n")
    (tmp_path / D.MARKER).write_text("{}")
    (tmp_path / "my_notes.txt").write_text("keep me")
    D._clear(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my_notes.txt"]


def test_force_rebuilds_and_an_unfinished_marker_is_not_reused(tmp_path, monkeypatch):
    """Without TensorFlow: the build itself is replaced by a stand-in that records calls."""
    calls = []

    def fake_build(root, seed, log, progress=True):
        calls.append(sorted(p.name for p in root.iterdir()))
        return "built"

    monkeypatch.setattr(D, "_build", fake_build)
    (tmp_path / "humans").mkdir()
    (tmp_path / D.MARKER).write_text('{"version": ')  # a marker cut short
    assert D.read_marker(tmp_path) is None
    assert D.build_demo_study(tmp_path, log=lambda m: None) == "built"
    assert "humans" not in calls[-1]  # an unknown build: cleared, then built
    (tmp_path / "humans").mkdir()
    assert D.build_demo_study(tmp_path, log=lambda m: None) == "built"
    assert "humans" in calls[-1]  # the same build stamp: resumed, not cleared
    assert D.build_demo_study(tmp_path, force=True, log=lambda m: None) == "built"
    assert "humans" not in calls[-1]


# -- one real build -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def study(demo_study_parent):
    root = demo_study_parent / "seed-0"
    lines = []
    start = time.perf_counter()
    built = D.build_demo_study(root, seed=0, log=lines.append)
    return built, lines, time.perf_counter() - start


def _humans(built) -> pd.DataFrame:
    return pd.concat([schema.read_csv(p) for p in sorted(built.humans_dir.glob("*.csv"))],
                     ignore_index=True)


def _models(built) -> pd.DataFrame:
    return pd.concat([schema.read_csv(p) for p in sorted(built.models_dir.glob("*.csv"))],
                     ignore_index=True)


def _accuracy(table: pd.DataFrame, manipulation: str, by=()) -> pd.Series:
    rows = table[table["manipulation"] == manipulation]
    level = rows["level"].astype(float) if manipulation in ("audio_noise", "visual_noise") \
        else rows["level"]
    keys = [rows[c] for c in by] + [level]
    return rows["correct"].eq("True").groupby(keys).mean()


@requires_tf
def test_the_demo_study_has_its_observers_models_and_stimuli(study):
    built, lines, seconds = study
    manifest = schema.read_csv(built.manifest)
    assert len(manifest) == 32 * 12 and manifest["verified"].eq("True").all()
    assert manifest["label"].value_counts().eq(24).all()  # 2 sources x 12 conditions a class
    assert set(MANIFEST_CONTRACT) <= set(manifest.columns)
    # classification: every stimulus but the semantic swaps (the correspondence task's
    # "different" trials)
    classified = manifest[manifest["manipulation"] != "semantic_swap"]
    assert len(classified) == 32 * 11
    humans, models = _humans(built), _models(built)
    assert humans["participant"].nunique() == D.N_OBSERVERS == 10
    assert len(list(built.humans_dir.glob("*.csv"))) == 10
    assert len(humans) == 10 * len(classified)
    assert set(TRIALS_CONTRACT) <= set(humans.columns)
    assert (humans["task"] == "classify").all() and (humans["session"] == "1").all()
    assert humans.groupby("participant")["stimulus_id"].apply(set).map(
        lambda s: s == set(classified["stimulus_id"])).all()
    assert humans["rt"].astype(float).between(0.2, 10).all()
    assert sorted(models["model"].unique()) == ["yamnet_effnetb0_gru_demo",
                                                "yamnet_effnetb0_lstm_demo"]
    # the correspondence task: the same people, the SAVC models, stimuli with both modalities
    corr_humans_dir, corr_models_dir = built.inputs("correspondence")
    assert corr_humans_dir == built.correspondence_humans_dir
    corr_humans = pd.concat([schema.read_csv(p) for p in sorted(corr_humans_dir.glob("*.csv"))],
                            ignore_index=True)
    corr_models = pd.concat([schema.read_csv(p) for p in sorted(corr_models_dir.glob("*.csv"))],
                            ignore_index=True)
    asked = manifest[~manifest["manipulation"].isin(["audio_only", "visual_only"])]
    assert len(corr_humans) == 10 * len(asked) == 10 * 32 * 10
    assert (corr_humans["task"] == "correspondence").all()
    # the answer key: "different" exactly for the 32 semantic swaps (donor of another class)
    swap = corr_humans["manipulation"] == "semantic_swap"
    assert (corr_humans.loc[swap, "label"] == "different").all()
    assert (corr_humans.loc[~swap, "label"] == "same").all() and swap.sum() == 10 * 32
    swaps = manifest[manifest["manipulation"] == "semantic_swap"]
    assert (swaps["level"] != swaps["label"]).all() and swaps["level"].isin(
        schema.TEST_CLASSES).all()
    assert sorted(corr_models["model"].unique()) == ["savc_yamnet_effnetb0_gru_demo",
                                                     "savc_yamnet_effnetb0_lstm_demo"]
    assert len(corr_models) == 2 * len(asked)
    assert set(corr_models["stimulus_id"]) == set(asked["stimulus_id"])
    assert set(corr_models["response"]) <= {"same", "different"}
    assert len(models) == 2 * len(classified)
    assert set(PREDICTIONS_CONTRACT) <= set(models.columns)
    p = models[[f"p_{c}" for c in schema.TEST_CLASSES]].astype(float)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-4)
    # trials and predictions share their condition columns value for value
    assert set(zip(humans["manipulation"], humans["level"])) == \
        set(zip(models["manipulation"], models["level"]))
    info = json.loads((built.root / D.MARKER).read_text())
    assert info["seed"] == 0 and info["n_stimuli"] == 384 and info["n_observers"] == 10
    assert info["n_classification_stimuli"] == 352 and info["n_semantic_swaps"] == 32
    assert info["n_correspondence_stimuli"] == 320
    assert "semantic_swap" in info["conditions"] and len(info["conditions"]) == 12
    assert all((built.root / f).is_file() for f in info["files"])
    assert "SIMULATED" in built.description and "random weights" in built.description
    assert "10 SIMULATED observers" in built.description
    assert "cue-integration" in built.description and "SAVC" in built.description
    assert "32 semantic swaps" in built.description
    # built here, or already by the demo test that shares the folder
    assert any("built in" in line or "reusing" in line for line in lines)
    print(f"demo study built in {seconds:.0f} s; stage seconds {info['stage_seconds']}")


@requires_tf
def test_simulated_participants_integrate_the_cues_in_the_built_study(study):
    """10 people x 32 stimuli a condition. The observers' exact P(correct) shows the
    cue-integration properties (worst auditory noise = the picture alone, worst visual noise =
    the sound alone, clean AV better than either); the data files show them within sampling
    error (3 binomial SEs of a difference between two conditions' shares, 0.06-0.1 here)."""
    built = study[0]
    humans = _humans(built)
    single = humans["correct"].eq("True").groupby(humans["manipulation"]).mean()
    audio = _accuracy(humans, "audio_noise")          # SNR 0, 10, 20, 30 dB
    assert list(audio.index) == [0.0, 10.0, 20.0, 30.0]
    visual = _accuracy(humans, "visual_noise")        # pixel SD 32, 64, 128, 192
    assert list(visual.index) == [32.0, 64.0, 128.0, 192.0]
    observers = D.simulate_observers(10, seed=0)["observer"]

    def exact(manipulation, level=""):
        return float(np.mean([o.p_correct(manipulation, level) for o in observers]))

    assert exact("audio_noise", 0.0) == pytest.approx(exact("visual_only"), abs=0.01)
    assert exact("visual_noise", 192.0) == pytest.approx(exact("audio_only"), abs=0.01)
    assert exact("none") > max(exact("audio_only"), exact("visual_only")) + 0.05

    def same_within_noise(a, b, n=10 * 32):
        return abs(a - b) < 3 * math.sqrt((a * (1 - a) + b * (1 - b)) / n)

    # the worst auditory noise leaves vision; the worst visual noise leaves hearing
    assert same_within_noise(audio[0.0], single["visual_only"])
    assert same_within_noise(visual[192.0], single["audio_only"])
    assert same_within_noise(visual[128.0], single["audio_only"])
    assert single["none"] >= max(single["audio_only"], single["visual_only"])
    assert audio[30.0] > audio[0.0] and visual[32.0] > visual[192.0]
    per_person = _accuracy(humans, "audio_noise", by=["participant"]).unstack()
    assert (per_person[30.0] >= per_person[0.0]).mean() >= 0.8
    # errors favour the confusable classes, so confusion matrices have structure
    wrong = humans[humans["correct"] == "False"]
    confusable = [r in H.CONFUSABLE_CLASSES[l] for l, r in zip(wrong["label"],
                                                                wrong["response"])]
    assert np.mean(confusable) > 0.6


@requires_tf
def test_models_are_right_on_clean_stimuli_and_worse_in_noise(study):
    models = _models(study[0])
    for name, table in models.groupby("model"):
        none = table.loc[table["manipulation"] == "none", "correct"].eq("True").mean()
        audio, visual = _accuracy(table, "audio_noise"), _accuracy(table, "visual_noise")
        assert none > 0.8, name
        assert audio[0.0] < none - 0.2 and visual[192.0] < none - 0.2, name
        assert visual[32.0] > visual[192.0] and audio[30.0] > audio[0.0], name


def _d_prime(hits, n_signal, false_alarms, n_noise) -> float:
    """d' with the log-linear correction, computed here (not with analysis.sdt)."""
    from scipy.stats import norm
    return float(norm.ppf((hits + 0.5) / (n_signal + 1)) -
                 norm.ppf((false_alarms + 0.5) / (n_noise + 1)))


@requires_tf
def test_the_savc_models_tell_congruent_from_incongruent_stimuli(study):
    """On the clean stimuli (own sound and picture: "same") and the semantic swaps ("different":
    a donor's sound): clearly above chance, d' > 1, and p_same ranks congruent above
    incongruent (Mann-Whitney AUC); both answers are given (not one answer throughout, as
    on the uncentred random-weight embeddings)."""
    from scipy.stats import mannwhitneyu
    _, corr_models_dir = study[0].inputs("correspondence")
    for path in sorted(corr_models_dir.glob("*.csv")):
        table = schema.read_csv(path)
        assert set(table["response"]) == {"same", "different"}, path.name
        clean = table[table["manipulation"].isin(["none", "semantic_swap"])]
        correct = clean["correct"].eq("True")
        assert correct.mean() > 0.65, (path.name, correct.mean())
        swap = clean["manipulation"] == "semantic_swap"
        said_different = clean["response"] == "different"
        d = _d_prime((swap & said_different).sum(), swap.sum(),
                     (~swap & said_different).sum(), (~swap).sum())
        assert d > 1.0, (path.name, d)
        p_same = clean["p_same"].astype(float)
        auc = mannwhitneyu(p_same[~swap], p_same[swap]).statistic / (swap.sum() * (~swap).sum())
        assert auc > 0.85, (path.name, auc)


@requires_tf
def test_the_simulated_trials_carry_the_timing_columns(study):
    """The columns the experiment's player writes (schema.TIMING_COLUMNS), with simulated
    values of a bench-tested setup: every trial within the 2 ms tolerance, timing_ok true."""
    built = study[0]
    for folder in built.inputs("classify")[0], built.inputs("correspondence")[0]:
        trials = pd.concat([schema.read_csv(p) for p in sorted(folder.glob("*.csv"))],
                           ignore_index=True)
        assert set(schema.TIMING_COLUMNS) <= set(trials.columns)
        assert trials["timing_ok"].eq("True").all()
        assert (trials["audio_backend"] == P.SIMULATED_AUDIO_BACKEND).all()
        error = trials["audio_start_error_ms"].astype(float)
        assert error.abs().max() <= 1.0 and error.std() > 0
        lead = trials["scheduled_lead_ms"].astype(float)
        np.testing.assert_allclose(lead, P.SIMULATED_LATENCY_MS - error, atol=1e-3)
        assert (trials["latency_ms"].astype(float) == P.SIMULATED_LATENCY_MS).all()
        assert trials["frame_interval_sd_ms"].astype(float).between(0.1, 0.3).all()
        np.testing.assert_allclose(trials["av_onset_asynchrony_ms"].astype(float), error)


def _compare(cli, humans, models, out) -> Path:
    r = cli("analysis", ["compare", "--humans", humans, "--models", models, "--out", out,
                         "--bootstrap", "0"])
    assert r.code == 0, r.err
    return out


#: The levels demo_small.yaml tests, per manipulation (the psychometric fits' range).
TESTED = {"audio_noise": (0.0, 30.0), "visual_noise": (32.0, 192.0)}
FLOORS = {"audio_noise": "visual_only", "visual_noise": "audio_only"}


@requires_tf
def test_the_psychometric_fits_of_the_demo_converge(study, tmp_path, cli):
    """From compare's CSV output: each one-modality noise is fitted with its floor at the
    other modality's unimodal accuracy (recorded in ``floor``, value in ``guess_rate``); the
    humans' group fit and every model's fit rise from their floor within the tested levels
    (threshold inside them, the function at the easiest level above half-way) and report a
    95% CI around the threshold. Single people answer 32 trials a level, so their thresholds
    are rougher: most, and their median, inside the tested levels."""
    built = study[0]
    out = _compare(cli, *built.inputs("classify"), tmp_path / "classify")
    fits = pd.read_csv(out / "psychometric.csv")
    assert set(fits["manipulation"]) == set(TESTED)
    assert (fits["floor"] == fits["manipulation"].map(FLOORS)).all()
    assert (fits["ceiling"] == "none").all()
    assert fits[["threshold", "threshold_ci_low", "threshold_ci_high"]].notna().all().all()
    assert (fits["threshold_ci_low"] < fits["threshold"]).all()
    assert (fits["threshold"] < fits["threshold_ci_high"]).all()
    humans = pd.concat([schema.read_csv(p) for p in sorted(built.humans_dir.glob("*.csv"))])
    visual_only = humans.loc[humans["manipulation"] == "visual_only", "correct"].eq("True")
    group = fits[(fits["observer"] == "humans")].set_index("manipulation")
    assert group.loc["audio_noise", "guess_rate"] == pytest.approx(visual_only.mean(),
                                                                    abs=1e-9)
    main = fits[(fits["observer"] == "humans") | (fits["observer_type"] == "model")]
    assert len(main) == 2 * 4  # humans, models (group), and the two models, per manipulation
    for r in main.itertuples(index=False):
        low, high = TESTED[r.manipulation]
        assert low <= r.threshold <= high, (r.manipulation, r.observer, r.threshold)
        easiest = high if r.manipulation == "audio_noise" else low
        top = 1 - r.lapse
        assert top - r.guess_rate > 0.1, (r.manipulation, r.observer)   # not stuck at it
        reached = PF.predict([easiest], r._asdict())[0]
        assert reached - r.guess_rate > (top - r.guess_rate) / 2, (r.manipulation, r.observer)
    people = fits[(fits["fit"] == "observer") & (fits["observer_type"] == "human")]
    inside = [TESTED[m][0] <= t <= TESTED[m][1]
              for m, t in zip(people["manipulation"], people["threshold"])]
    assert np.mean(inside) >= 0.75
    for manipulation, rows in people.groupby("manipulation"):
        low, high = TESTED[manipulation]
        assert low <= rows["threshold"].median() <= high
    report = (out / "report.md").read_text()
    assert "visual-only (audio-only) accuracy" in report and "Ernst & Banks 2002" in report
    # the correspondence comparison: hits and false alarms, so d' for humans and models
    out = _compare(cli, *built.inputs("correspondence"), tmp_path / "correspondence")
    sdt = pd.read_csv(out / "sdt.csv")
    clean = sdt[sdt["condition"] == "none"].set_index("observer")
    assert (clean["n_signal"] > 0).all() and (clean["n_noise"] > 0).all()
    models = clean[clean["observer_type"] == "model"]
    assert len(models) == 2 and (models["d_prime"] > 1).all()
    assert clean.loc[clean["observer_type"] == "human", "d_prime"].mean() > 0.5


@requires_tf
def test_a_second_call_reuses_the_study(study):
    built = study[0]
    files = [p for p in built.root.rglob("*") if p.is_file() and p.name != ".lock"]
    before = {p: p.stat().st_mtime_ns for p in files}
    lines = []
    start = time.perf_counter()
    again = D.build_demo_study(built.root, seed=0, log=lines.append)
    assert time.perf_counter() - start < 5
    assert lines == [f"demo study: reusing {built.root}"]
    assert again == built
    assert {p: p.stat().st_mtime_ns for p in files} == before


@requires_tf
def test_the_same_seed_gives_the_same_trials(study, tmp_path):
    built = study[0]
    manifest = schema.read_csv(built.manifest)
    D.simulate_participants(manifest, tmp_path / "same", D.simulate_observers(10, seed=0),
                            seed=0)
    D.simulate_participants(manifest, tmp_path / "other", D.simulate_observers(10, seed=1),
                            seed=1)
    for path in sorted(built.humans_dir.glob("*.csv")):
        assert (tmp_path / "same" / path.name).read_bytes() == path.read_bytes()
        assert (tmp_path / "other" / path.name).read_bytes() != path.read_bytes()
    D.simulate_participants(manifest, tmp_path / "corr", D.simulate_observers(10, seed=0),
                            seed=0, task="correspondence")
    for path in sorted(built.correspondence_humans_dir.glob("*.csv")):
        assert (tmp_path / "corr" / path.name).read_bytes() == path.read_bytes()


@requires_tf
def test_an_unfinished_study_is_finished_not_reused(study, tmp_path, capfd):
    """A copy with its marker cut short and some outputs missing (as after a kill): the next
    call finishes it from what is there, without embedding anything again."""
    built = study[0]
    root = tmp_path / "copy"
    shutil.copytree(built.root, root)
    marker = (root / D.MARKER).read_text()
    (root / D.MARKER).write_text(marker[: len(marker) // 2])
    human = sorted((root / "humans").glob("*.csv"))[3]
    human.unlink()
    (root / "models" / "yamnet_effnetb0_lstm_demo.csv").unlink()
    embedding = next((root / "embeddings").rglob("*.tfrecord"))
    embedded_at = embedding.stat().st_mtime_ns
    assert D.read_marker(root) is None
    lines = []
    capfd.readouterr()
    again = D.build_demo_study(root, seed=0, log=lines.append)
    bars = capfd.readouterr().err.replace("\r", "\n")
    # each long step shows a progress bar, finished (reused work counts as done)
    for step, total in (("probe clips", 128), ("training", 240),
                        ("simulated participants", 20)):
        assert f"demo study: {step}: 100%" in bars and f"{total}/{total}" in bars, (step, bars)
    assert lines[0] == f"demo study: finishing an interrupted build in {root}"
    assert not any(line.startswith("demo study: embedding ") for line in lines)
    assert embedding.stat().st_mtime_ns == embedded_at
    assert D.read_marker(root) is not None
    assert human.read_bytes() == (built.humans_dir / human.name).read_bytes()
    pd.testing.assert_frame_equal(
        schema.read_csv(again.models_dir / "yamnet_effnetb0_lstm_demo.csv"),
        schema.read_csv(built.models_dir / "yamnet_effnetb0_lstm_demo.csv"))
