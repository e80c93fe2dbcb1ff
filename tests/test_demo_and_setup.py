"""The README's two commands, .ci/run, the demo and every command's --help."""
from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from tests.conftest import REPO, requires_tf

DEMO_COMMAND = "bash scripts/demo.sh"
TEST_COMMAND = "bash scripts/test.sh"


def _readme_commands():
    lines = (REPO / "README.md").read_text().splitlines()
    assert lines[0] == "```", "the README opens with the two setup-contract commands"
    block = lines[1:lines.index("```", 1)]
    return [line.split("#")[0].strip() for line in block]


def test_readme_opens_with_exactly_the_two_commands():
    assert _readme_commands() == [DEMO_COMMAND, TEST_COMMAND]


def test_ci_runs_the_readme_test_command_and_nothing_else():
    lines = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    commands = [line for line in lines if not line.startswith(("set ", "cd "))]
    assert commands == [TEST_COMMAND]


def test_setup_script_installs_what_a_fresh_machine_lacks():
    setup = (REPO / "scripts" / "setup.sh").read_text()
    for needed in ("xvfb", "xauth", "libportaudio2", "apt-get install",
                   "-m venv .venv", "pip install -q -r requirements.txt", "pip install -q --no-deps -e ."):
        assert needed in setup
    for script in ("demo.sh", "test.sh"):
        assert "bash scripts/setup.sh" in (REPO / "scripts" / script).read_text()


def test_requirements_pin_the_chosen_stack():
    pins = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"{line} is not pinned with =="
            pins[name.lower()] = version
    for package in ("psychopy", "tensorflow", "tensorflow-hub", "moviepy", "pingouin", "pandas",
                    "numpy", "scipy", "matplotlib", "seaborn", "tqdm", "pyyaml", "statsmodels",
                    "krippendorff", "imageio-ffmpeg"):
        assert package in pins, package


@requires_tf
def test_demo_runs_the_pipeline_and_ends_with_the_comparison(main_job):
    r, out = main_job
    assert r.code == 0, r.err[-3000:]
    # every long step shows a progress bar on stderr: the comparisons' fits always, and the
    # demo study's steps when this run built it (the first run of a session does)
    assert r.err.count("psychometric fits") >= 2
    if "demo study: built in" in r.out:
        for bar in ("demo study: probe clips", "demo_small", "extract", "demo study: training",
                    "demo study: simulated participants"):
            assert f"{bar}: 100%" in r.err.replace("\r", "\n"), bar
    test_set = pd.read_csv(out / "selection" / "test_set.csv")
    assert test_set.groupby("AVMIT_label").size().to_dict() == {c: 60 for c in
                                                               sorted(test_set.AVMIT_label.unique())}
    assert (out / "summary" / "fig2.png").stat().st_size > 20_000
    raters = pd.read_csv(out / "summary" / "raters.csv")
    assert len(raters) == 11 and raters["n_ground_truth"].sum() > 0
    reliability = pd.read_csv(out / "summary" / "reliability.csv").set_index("measure")
    assert 0.3 < reliability.loc["fleiss_kappa", "value"] < 1.0
    dropped = pd.read_csv(out / "dropped_videos.csv")
    assert (dropped["n_ratings"] < 3).all() and len(dropped) > 0
    # the DNN part: a trained baseline, its test metrics and per-trial predictions
    model_dir = out / "models" / "vggish_vgg16_gru_avmit"
    history = pd.read_csv(model_dir / "history.csv")
    assert history["epoch"].tolist() == [1, 2, 3]
    metrics = json.loads((model_dir / "test" / "metrics.json").read_text())
    predictions = pd.read_csv(model_dir / "test" / "predictions.csv")
    assert len(predictions) == 160 and predictions["correct"].mean() == pytest.approx(
        metrics["top1"])
    # the end: humans vs DNNs on the demo study, every table, figure and the report
    cmp = out / "comparison"
    report = (cmp / "report.md").read_text()
    assert report.startswith("# Humans vs DNNs")
    assert "not real data" in report and "SIMULATED observers" in report
    for figure in ("accuracy.png", "error_consistency.png", "confusions.png",
                   "psychometric.png"):
        assert (cmp / figure).stat().st_size > 20_000
        assert f"]({figure})" in report
    accuracy = pd.read_csv(cmp / "accuracy.csv")
    assert accuracy["observer_type"].value_counts().to_dict() == {"human": 10 * 11,
                                                                 "model": 2 * 11}
    pairs = pd.read_csv(cmp / "error_consistency.csv")
    assert set(pairs["pair_type"]) == {"human-human", "human-model", "model-model"}
    fits = pd.read_csv(cmp / "psychometric.csv")
    assert set(fits["manipulation"]) == {"audio_noise", "visual_noise"}
    assert len(pd.read_csv(cmp / "anova.csv")) > 0
    # the simulated people integrate the cues (issue 15): the humans' mean accuracy with the
    # worst auditory noise is that of the picture alone, with the worst visual noise that of
    # the sound alone, and no degraded condition beats clean AV
    humans = pd.read_csv(cmp / "summary.csv").drop_duplicates("condition").set_index(
        "condition")["human_mean"]
    assert humans["audio_noise=0"] == pytest.approx(humans["visual_only"], abs=0.05)
    assert humans["visual_noise=128"] == pytest.approx(humans["audio_only"], abs=0.05)
    assert humans["none"] >= max(humans["audio_only"], humans["visual_only"]) - 0.02
    # psychometric fits report thresholds with confidence intervals
    assert fits[["threshold", "threshold_ci_low", "threshold_ci_high"]].notna().all().all()
    # ... and the correspondence task: the same people and the SAVC models
    corr = out / "comparison_correspondence"
    report = (corr / "report.md").read_text()
    assert "## Correspondence: signal detection" in report and "](dprime.png)" in report
    sdt = pd.read_csv(corr / "sdt.csv")
    assert sdt.groupby("observer_type")["observer"].nunique().to_dict() == {"human": 10,
                                                                           "model": 2}
    assert set(sdt.loc[sdt["observer_type"] == "model", "observer"]) == {
        "savc_yamnet_effnetb0_gru_demo", "savc_yamnet_effnetb0_lstm_demo"}
    assert not sdt["manipulation"].isin(["audio_only", "visual_only"]).any()
    assert "error consistency (mean kappa)" in r.out
    assert "demo finished" in r.out


@pytest.mark.parametrize("argv, must_mention", [
    (["-m", "avmit_psych", "--help"], "demo"),
    (["-m", "avmit_psych", "demo", "--help"], "57,177 videos"),
    (["-m", "avmit_psych.analysis", "--help"], "ratings"),
    (["-m", "avmit_psych.analysis", "ratings", "--help"], "Example, from raw ratings"),
    (["-m", "avmit_psych.analysis", "ratings", "aggregate", "--help"], "--min-ratings"),
    (["-m", "avmit_psych.analysis", "ratings", "summary", "--help"], "fig2.png"),
    (["-m", "avmit_psych.analysis", "ratings", "select", "--help"], "byte-identical"),
    (["-m", "avmit_psych.dataset", "download", "--help"], "resumes"),
    (["-m", "avmit_psych.dataset", "synthetic", "--help"], "raw_ratings.csv"),
    (["-m", "avmit_psych.dataset", "synthetic-embeddings", "--help"], "TFRecord layout"),
    (["-m", "avmit_psych.analysis", "train", "--help"], "--dry-run"),
    (["-m", "avmit_psych.features", "extract", "--help"], "extract_report.csv"),
    (["-m", "avmit_psych.stimuli", "generate", "--help"], "manifest.csv"),
    (["-m", "avmit_psych.stimuli", "verify", "--help"], "cross-correlation"),
    (["-m", "avmit_psych.stimuli", "probe-clips", "--help"], "flash"),
    (["-m", "avmit_psych.features", "probe", "--help"], "digital silence"),
    (["-m", "avmit_psych.analysis", "evaluate", "--help"], "1,920"),
    (["-m", "avmit_psych.analysis", "predict", "--help"], "manifest"),
    (["-m", "avmit_psych.analysis", "search", "--help"], "out-of-bag"),
    (["-m", "avmit_psych.analysis", "replicate", "--help"], "Table 6"),
    (["-m", "avmit_psych.analysis", "compare", "--help"], "model-vs-human"),
])
def test_every_command_has_help(argv, must_mention):
    proc = subprocess.run([sys.executable, *argv], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert must_mention in proc.stdout


def test_synthetic_command_writes_its_files(tmp_path, cli):
    r = cli("dataset", ["synthetic", "--out", tmp_path / "syn", "--n-videos", "300"])
    assert r.code == 0, r.err
    names = sorted(p.name for p in (tmp_path / "syn").iterdir())
    assert names == ["exclusions.csv", "fps.csv", "ground_truth.csv", "raters.csv",
                     "raw_ratings.csv", "video_counts.csv"]
    counts = pd.read_csv(tmp_path / "syn" / "video_counts.csv")
    raw = pd.read_csv(tmp_path / "syn" / "raw_ratings.csv")
    assert counts["n_ratings"].sum() == len(raw)
