"""The benchmarks compare like with like (issue 12 point 6): their equivalence checks pass on
a tiny input and fail when the two ways' outputs differ. No wall-clock times are asserted.

Loads TensorFlow (bench_extract): do not run in one process with tests/test_player.py.
"""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from tests.conftest import REPO


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


# -- bench_extract ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def extract_run(tmp_path_factory):
    from avmit_psych.features import encoders, extract
    B = _load("bench_extract")
    tmp = tmp_path_factory.mktemp("bench_extract")
    jobs = B.make_jobs(tmp, 2)
    audio = encoders.AudioEncoder.load("yamnet", "random")
    visual = encoders.VisualEncoder.load("effnetb0", "random")
    report = extract.extract(jobs, audio, visual, tmp / "ours", progress=False)
    assert (report["status"] == "written").all()
    taken = B.authors_way(jobs, audio, visual, tmp / "authors")
    return B, tmp, jobs, taken, visual


def test_extract_benchmark_both_ways_compute_the_same_embeddings(extract_run):
    B, tmp, jobs, taken, visual = extract_run
    check = B.check_same_embeddings(jobs, tmp / "ours", tmp / "authors", taken, visual)
    # why the shapes differ: the frames each way takes of a 3 s, 30 fps clip
    assert check["ours_indices"] == [0, 14, 29, 43, 58, 72, 86]
    assert check["authors_indices"] == [0, 16, 31, 46, 61, 76]
    assert check["shared_frames"] == 2 and check["authors_frames"] == 12
    assert check["limit"] < check["between_frames_min_diff"] / 10


@pytest.mark.parametrize("tamper", ["frames in another order", "audio off by 0.1 %"])
def test_extract_benchmark_check_fails_when_the_embeddings_differ(extract_run, tmp_path,
                                                                    tamper):
    from avmit_psych.dataset import tfrecords
    B, tmp, jobs, taken, visual = extract_run
    bad = tmp_path / "authors"
    for job in jobs:
        ex = tfrecords.read_example(tmp / "authors" / job.tfrecord_filename)
        audio, frames = ex.audio, ex.visual
        if job is jobs[-1]:
            if tamper == "frames in another order":
                frames = frames[[0, 2, 1, 3, 4, 5]]
            else:
                audio = audio * 1.001
        tfrecords.write_example(bad / job.tfrecord_filename, ex.filename, ex.label, audio,
                                frames)
    with pytest.raises(AssertionError, match="embeddings differ"):
        B.check_same_embeddings(jobs, tmp / "ours", bad, taken, visual)


# -- bench_stimuli ------------------------------------------------------------------------------
def _old_noise_command(B, cond, src_path, out):
    """The baseline before issue 12: noise amplitude from an assumed signal RMS of 0.2, no
    active-RMS measurement, no AAC calibration."""
    amp = 0.2 / 10 ** (cond.level / 20)
    return [B.ffmpeg_exe(), "-y", "-v", "error", "-nostdin", "-i", src_path,
            "-filter_complex", f"anoisesrc=a={min(amp, 1):g}:c=white:d=3:r=44100[n];"
            "[0:a][n]amix=inputs=2:normalize=0[a]", "-map", "0:v", "-map", "[a]",
            *B.VIDEO_ENCODE, "-c:a", "aac", "-b:a", "192k", out]


@pytest.fixture(scope="module")
def stimuli_run(tmp_path_factory):
    from avmit_psych.dataset import schema, synthetic
    from avmit_psych.stimuli import generate
    B = _load("bench_stimuli")
    S = B.S
    tmp = tmp_path_factory.mktemp("bench_stimuli")
    csv = synthetic.write_probe_clips(tmp / "videos", tmp / "t.csv", per_class=1,
                                      classes=list(schema.TEST_CLASSES[:2]), size=(160, 120))
    sources = generate.sources_from_test_set(csv, tmp / "videos")
    suite = replace(S.load_suite(B.SUITE), name="tiny", text="tiny",
                    conditions=[S.Condition("av_offset", -100.0), S.Condition("av_offset", 50.0),
                                S.Condition("audio_noise", -10.0)])
    generate.generate(suite, sources, tmp / "ours", seed=0, workers=2, progress=False,
                      verify=False)
    (tmp / "ff").mkdir()
    plan = B.baseline_plan(suite, sources["source_path"].tolist(), tmp / "ff")
    B.run_baseline(plan, workers=2)
    manifest = pd.read_csv(tmp / "ours" / "manifest.csv")
    return B, tmp, plan, manifest


def test_stimuli_benchmark_baseline_does_the_toolkits_job(stimuli_run):
    B, tmp, plan, manifest = stimuli_run
    check = B.check_same_job(manifest, tmp / "ours", plan)
    assert len(check) == 6
    offsets = check[check["manipulation"] == "av_offset"]
    assert np.all(np.abs(offsets["toolkit"] - offsets["ffmpeg"]) <= B.OFFSET_AGREE_MS)
    noise = check[check["manipulation"] == "audio_noise"]
    assert np.all(np.abs(noise["ffmpeg"] - noise["level"]) <= 0.5)
    assert np.all(np.abs(noise["toolkit"] - noise["ffmpeg"]) <= B.SNR_AGREE_DB)


@pytest.mark.parametrize("tamper", ["old noise command", "noise 1 dB off", "offset 5 ms off"])
def test_stimuli_benchmark_check_fails_when_snr_or_offset_differ(stimuli_run, tmp_path,
                                                                   tamper):
    B, tmp, plan, manifest = stimuli_run
    kind = "av_offset" if tamper.startswith("offset") else "audio_noise"
    s = next(p for p in plan if p.condition.manipulation == kind)
    bad = replace(s, path=str(tmp_path / "bad.mp4"))
    src = B.measure_source(s.source_path)
    if tamper == "old noise command":
        subprocess.run(_old_noise_command(B, s.condition, s.source_path, bad.path), check=True)
    elif tamper == "noise 1 dB off":
        B.ffmpeg_audio_noise(s.source_path, bad.path, src, s.condition.level + 1.0,
                             seed=s.seed)
    else:
        wrong = replace(s.condition, level=s.condition.level + 5.0)
        subprocess.run(B.ffmpeg_command(wrong, s.source_path, s.donor_path, bad.path, src),
                       check=True)
    tampered = [bad if p is s else p for p in plan]
    with pytest.raises(AssertionError, match=f"{kind}.*ffmpeg"):
        B.check_same_job(manifest, tmp / "ours", tampered)


# -- bench_dask ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dask_suite_run(tmp_path_factory):
    B = _load("bench_dask")
    tmp = tmp_path_factory.mktemp("bench_dask")
    tiny = (B.S.Condition("none"), B.S.Condition("av_offset", 100.0))
    return B, tmp, B.bench_suite(tmp, 1, conditions=tiny)


def test_dask_benchmark_runs_write_the_single_process_files(dask_suite_run):
    B, tmp, result = dask_suite_run
    assert result["stimuli"] == 2 and [r["workers"] for r in result["runs"]] == [1, 2]
    assert [r["stimuli"] for r in result["runs"]] == [2, 2]
    assert B.check_same_manifest(tmp / "suite_single", tmp / "suite_2") == 2


@pytest.mark.parametrize("tamper", ["a byte changed", "a file missing"])
def test_dask_benchmark_check_fails_when_the_files_differ(dask_suite_run, tmp_path, tamper):
    import shutil
    B, tmp, _ = dask_suite_run
    bad = tmp_path / "suite"
    shutil.copytree(tmp / "suite_2", bad)
    victim = sorted(bad.rglob("*.mp4"))[0]
    if tamper == "a byte changed":
        data = bytearray(victim.read_bytes())
        data[len(data) // 2] ^= 0xFF
        victim.write_bytes(bytes(data))
    else:
        victim.unlink()
    with pytest.raises(AssertionError, match="differ"):
        B.check_same_files(tmp / "suite_single", bad, "*.mp4")


# -- bench_search -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def search_bench(tmp_path_factory):
    import json
    B = _load("bench_search")
    out = tmp_path_factory.mktemp("bench_search") / "search.json"
    assert B.main(["--quick", "--out", str(out)]) == 0
    return B, json.loads(out.read_text())


def test_search_benchmark_one_and_two_workers_run_the_same_trials(search_bench):
    B, result = search_bench
    r = result["sqlite"]
    assert r["same_results"] and r["1_worker"]["trials"] == r["2_workers"]["trials"] == 2
    assert [sum(w["trials_run"] for w in r[k]["worker_stats"]) for k in
            ("1_worker", "2_workers")] == [2, 2]
    for key in ("1_worker", "2_workers"):  # the overhead is measured, not asserted
        o = r[key]["overhead"]
        assert o["optuna_s_per_trial"] == pytest.approx(
            o["storage_s_per_trial"] + o["export_s_per_trial"] + o["heartbeat_s_per_trial"])
        assert o["trial_train_s"] > 0 and o["csv_append_s_per_trial"] > 0


@pytest.mark.parametrize("tamper", ["a score", "a parameter", "a trial missing"])
def test_search_benchmark_check_fails_when_a_trial_differs(tamper):
    B = _load("bench_search")
    a = pd.DataFrame({"trial": [0, 1], "activation": ["relu", "swish"], "bottleneck": [32, 64],
                      "dropout": [0.1, 0.3], "learning_rate": [1e-3, 2e-3],
                      "rnn_units": [32, 64], "oob_loss": [1.5, 1.25], "oob_top1": [0.5, 0.6],
                      "oob_top5": [0.9, 0.95], "best_epoch": [3, 4], "epochs_run": [11, 12],
                      "n_in_bag_unique": [380, 390], "n_out_of_bag": [228, 218]})
    B.check_same_results(a, a.copy())
    b = a.copy()
    if tamper == "a score":
        b.loc[1, "oob_loss"] += 1e-7
    elif tamper == "a parameter":
        b.loc[0, "learning_rate"] *= 1.0000001
    else:
        b = b.iloc[:1]
    with pytest.raises(AssertionError, match="results differ"):
        B.check_same_results(a, b)
