"""Stimulus suites: manipulations, generation, verification, determinism, resume, bad input."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from avmit_psych.dataset import synthetic
from avmit_psych import media as io
from avmit_psych.stimuli import generate, manipulations as M, suite as S
from avmit_psych.stimuli.verify import measured_offset_ms, psnr_db
from tests.conftest import REPO

OFFSETS = [-400, -200, -100, -50, 0, 50, 100, 200, 400]
SNRS = [10, 5, 0, -5, -10, -15, -20]


# -- manipulations on arrays --------------------------------------------------------------------
def test_av_offset_is_sample_exact_and_keeps_the_length():
    audio = np.arange(1, 1001, dtype=float)[:, None]
    late = M.av_offset(audio, 1000, 10)       # 10 ms at 1 kHz = 10 samples
    early = M.av_offset(audio, 1000, -10)
    assert late.shape == early.shape == audio.shape
    assert (late[:10] == 0).all() and late[10, 0] == 1 and late[-1, 0] == 990
    assert early[0, 0] == 11 and (early[-10:] == 0).all()


@pytest.mark.parametrize("color", ["white", "pink"])
def test_audio_noise_has_the_requested_snr_before_coding(color):
    rng = np.random.default_rng(0)
    t = np.arange(44100) / 44100
    audio = np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.2 * np.sin(2 * np.pi * 660 * t)], 1)
    audio[20000:30000] = 0  # a pause: the active RMS ignores it
    for snr in (10, 0, -20):
        mixed, info = M.audio_noise(audio, 44100, snr, color=color, seed=3)
        assert np.abs(mixed).max() <= M.PEAK_LIMIT + 1e-12
        added = M.unit_noise(len(audio), 2, color, 3)
        assert M.measured_snr_db(mixed, audio, 44100, added_noise=added) == \
            pytest.approx(snr, abs=0.01)
    again, _ = M.audio_noise(audio, 44100, 0, color=color, seed=3)
    np.testing.assert_array_equal(again, M.audio_noise(audio, 44100, 0, color=color, seed=3)[0])
    assert rng is not None


def test_visual_noise_sd_and_seeding():
    grey = np.full((5, 40, 50, 3), 128, np.uint8)
    noisy = M.visual_noise(grey, 16, seed=1)
    diff = noisy.astype(float) - 128
    assert diff.std() == pytest.approx(16, rel=0.03)
    assert (noisy[..., 0] == noisy[..., 1]).all()  # achromatic
    np.testing.assert_array_equal(noisy, M.visual_noise(grey, 16, seed=1))
    assert not np.array_equal(noisy, M.visual_noise(grey, 16, seed=2))


def test_donors_are_a_balanced_derangement():
    labels = np.repeat(np.arange(16), 60)
    donors = M.assign_donors(labels, seed=5)
    assert (labels[donors] != labels).all()
    assert sorted(donors.tolist()) == list(range(960))  # every video donates exactly once
    assert set(Counter(labels[donors]).values()) == {60}
    assert not np.array_equal(donors, M.assign_donors(labels, seed=6))
    with pytest.raises(ValueError):
        M.assign_donors(np.array([0, 0, 0, 1]))


# -- generated suites ---------------------------------------------------------------------------
def _suite_file(tmp_path, conditions: str, name="t", container="mp4") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"name: {name}\ncontainer: {container}\nconditions:\n{conditions}")
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    base = tmp_path_factory.mktemp("clips")
    csv = synthetic.write_probe_clips(base / "videos", base / "test_set.csv", per_class=2,
                                      classes=["barking", "diving", "drumming", "frying"])
    return base, csv


@pytest.fixture(scope="module")
def main_suite(clips, tmp_path_factory):
    base, csv = clips
    out = tmp_path_factory.mktemp("suite")
    suite = _suite_file(out.parent, f"""  none: true
  av_offset: {{levels: {OFFSETS}}}
  audio_noise: {{levels: {SNRS}}}
  semantic_swap: true
  audio_only: true
  visual_only: true
""", name="main")
    sources = generate.sources_from_test_set(csv, base / "videos")
    manifest, failures, verification = generate.generate(
        suite, sources.iloc[[0, 2]].reset_index(drop=True), out / "suite", seed=3, workers=2,
        progress=False)
    return out / "suite", manifest, failures, verification, sources


def test_offsets_are_exact_in_the_files_and_frames_unchanged(main_suite):
    out, manifest, failures, verification, _ = main_suite
    assert failures.empty and verification["ok"].all()
    v = verification.set_index("stimulus_id")
    for source in manifest["source_new_filename"].unique():
        rows = manifest[(manifest["source_new_filename"] == source)]
        none = io.read_clip(out / rows.loc[rows["manipulation"] == "none", "path"].iloc[0])
        reference = io.read_clip(rows["source_path"].iloc[0])
        for offset in OFFSETS:
            row = rows[(rows["manipulation"] == "av_offset") & (rows["level"] == offset)].iloc[0]
            assert abs(v.loc[row["stimulus_id"], "measured"] - offset) <= 0.5
            clip = io.read_clip(out / row["path"])
            # measured here again, independently of verify.csv
            assert abs(measured_offset_ms(clip.audio, reference.audio, clip.sample_rate_hz,
                                          max_ms=500) - offset) <= 0.5
            assert len(clip.frames) == len(none.frames) and clip.duration_s == none.duration_s
            assert psnr_db(clip.frames, none.frames) > 40


def test_snr_within_half_a_db_at_every_default_level(main_suite):
    _, manifest, _, verification, _ = main_suite
    noise = verification[verification["manipulation"] == "audio_noise"]
    assert len(noise) == 2 * len(SNRS)
    assert (abs(noise["measured"] - noise["expected"]) <= 0.5).all()
    default = S.load_suite(REPO / "stimuli" / "suites" / "avmit_test_960.yaml")
    levels = sorted(c.level for c in default.conditions if c.manipulation == "audio_noise")
    assert levels == sorted(float(x) for x in SNRS)


def test_swaps_use_the_donors_audio_from_another_class(main_suite):
    out, manifest, _, verification, sources = main_suite
    swaps = manifest[manifest["manipulation"] == "semantic_swap"]
    assert len(swaps) == 2 and (swaps["level"] != swaps["label"]).all()
    for row in swaps.itertuples():
        clip = io.read_clip(out / row.path)
        donor = io.read_clip(row.audio_source_path)
        c = np.corrcoef(clip.audio.mean(1), donor.audio.mean(1)[:len(clip.audio)])[0, 1]
        assert c > 0.99
    donors = M.assign_donors(sources["AVMIT_label"].to_numpy(), seed=3)
    counts = Counter(sources["AVMIT_label"].to_numpy()[donors])
    assert max(counts.values()) - min(counts.values()) <= 1


def test_unimodal_stimuli(main_suite):
    out, manifest, _, _, _ = main_suite
    for row in manifest[manifest["manipulation"] == "audio_only"].itertuples():
        frames = io.read_clip(out / row.path).frames
        assert int(frames.max()) - int(frames.min()) <= 2
    for row in manifest[manifest["manipulation"] == "visual_only"].itertuples():
        audio = io.read_clip(out / row.path).audio
        peak = np.abs(audio).max()
        assert peak == 0 or 20 * np.log10(peak) < -90


def test_manifest_follows_the_data_contract(main_suite):
    out, manifest, _, _, _ = main_suite
    on_disk = pd.read_csv(out / "manifest.csv")
    contract = ["stimulus_id", "path", "source_filename", "label", "manipulation", "level",
                "level_unit", "audio_source", "seed", "duration_s", "fps", "sample_rate",
                "sha256"]
    assert list(on_disk.columns[:len(contract)]) == contract
    assert len(on_disk) == 2 * (1 + 9 + 7 + 3) and on_disk["verified"].all()
    assert on_disk["stimulus_id"].is_unique
    row = on_disk[on_disk["manipulation"] == "av_offset"].iloc[0]
    assert "__av_offset_" in row["path"] and row["path"].endswith(".mp4")
    assert (on_disk["fps"] == 30).all() and (on_disk["sample_rate"] == 44100).all()
    assert on_disk["duration_s"].eq(3.0).all()


def test_pixel_noise_sd_on_a_mid_grey_clip(tmp_path):
    csv = synthetic.write_probe_clips(tmp_path / "videos", tmp_path / "t.csv", per_class=1,
                                      classes=["barking"], grey=True)
    suite = _suite_file(tmp_path, "  visual_noise: {levels: [8, 16, 32]}\n")
    sources = generate.sources_from_test_set(csv, tmp_path / "videos")
    manifest, _, verification = generate.generate(suite, sources, tmp_path / "out", seed=0,
                                                  workers=1, progress=False)
    assert verification["ok"].all()
    for row in manifest.itertuples():
        frames = io.read_clip(tmp_path / "out" / row.path).frames.astype(float)
        assert frames.std() == pytest.approx(float(row.level), rel=0.10)


def test_same_suite_and_seed_give_identical_files(clips, tmp_path):
    base, csv = clips
    suite = _suite_file(tmp_path, "  audio_noise: {levels: [0]}\n  visual_noise: {levels: [16]}\n"
                                  "  av_offset: {levels: [100]}\n")
    sources = generate.sources_from_test_set(csv, base / "videos").iloc[:1]
    a, _, _ = generate.generate(suite, sources, tmp_path / "a", seed=7, workers=1,
                                progress=False, verify=False)
    b, _, _ = generate.generate(suite, sources, tmp_path / "b", seed=7, workers=1,
                                progress=False, verify=False)
    c, _, _ = generate.generate(suite, sources, tmp_path / "c", seed=8, workers=1,
                                progress=False, verify=False)
    assert a["sha256"].tolist() == b["sha256"].tolist()  # x264 + ffmpeg AAC, bit-exact flags
    for pa, pb in zip(a["path"], b["path"]):
        ca, cb = io.read_clip(tmp_path / "a" / pa), io.read_clip(tmp_path / "b" / pb)
        np.testing.assert_array_equal(ca.frames, cb.frames)
        np.testing.assert_array_equal(ca.audio, cb.audio)
    noisy = a["manipulation"] != "av_offset"
    assert (a.loc[noisy, "sha256"].to_numpy() != c.loc[noisy, "sha256"].to_numpy()).all()


def test_killed_generation_resumes_and_lists_only_complete_files(clips, tmp_path):
    base, csv = clips
    suite = _suite_file(tmp_path, f"  none: true\n  av_offset: {{levels: {OFFSETS}}}\n"
                                  "  visual_only: true\n")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "avmit_psych.stimuli", "generate", "--suite", str(suite),
           "--videos", str(base / "videos"), "--test-set", str(csv), "--out", str(out),
           "--workers", "1", "--quiet"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        journal = out / ".journal.csv"
        if journal.exists() and len(journal.read_text().splitlines()) > 12:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "manifest.csv").exists()
    done_before = set(pd.read_csv(out / ".journal.csv")["stimulus_id"])
    rerun = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    manifest = pd.read_csv(out / "manifest.csv")
    assert len(manifest) == 8 * 11 and manifest["verified"].all()
    assert done_before < set(manifest["stimulus_id"])
    listed = {out / p for p in manifest["path"]}
    on_disk = {p for p in out.rglob("*.mp4")}
    assert listed == on_disk  # nothing half-written under a final name, nothing unlisted
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]


# -- bad input ----------------------------------------------------------------------------------
@pytest.mark.parametrize("conditions, expected", [
    ("  av_ofset: {levels: [100]}\n", "unknown manipulation 'av_ofset'. Fix: did you mean 'av_offset'?"),
    ("  av_offset: {levels: [5000]}\n", "level 5000 of av_offset is outside -2000 to 2000 ms"),
    ("  visual_noise: {levels: [-3]}\n", "level -3 of visual_noise is outside 0 to 255"),
    ("  audio_noise: {levels: [0], color: blue}\n", "noise color must be white or pink"),
    ("  none: 3\n", "'none' takes no levels"),
    ("  audio_noise: 5\n", "'audio_noise' needs a list of levels"),
])
def test_bad_suites_exit_2(tmp_path, cli, clips, conditions, expected):
    base, csv = clips
    suite = _suite_file(tmp_path, conditions)
    r = cli("stimuli", ["generate", "--suite", suite, "--videos", base / "videos", "--test-set",
                        csv, "--out", tmp_path / "out", "--quiet"])
    assert r.code == 2 and expected in r.err and str(suite) in r.err
    assert not (tmp_path / "out").exists()


def test_missing_and_silent_sources_and_a_foreign_output_folder(tmp_path, cli, clips):
    base, csv = clips
    videos = tmp_path / "videos"
    table = pd.read_csv(csv).iloc[:2].copy()
    src = base / "videos" / table["new_filename"].iloc[0]
    (videos / "barking").mkdir(parents=True)
    frames, _ = synthetic.probe_clip_arrays(0)
    # a source without an audio stream
    subprocess.run([io.ffmpeg_exe(), "-y", "-v", "error", "-i", str(src), "-an", "-c:v",
                    "copy", str(videos / table["new_filename"].iloc[0])], check=True)
    table.to_csv(tmp_path / "t.csv", index=False)  # the second source is missing
    suite = _suite_file(tmp_path, "  none: true\n  av_offset: {levels: [100]}\n")
    r = cli("stimuli", ["generate", "--suite", suite, "--videos", videos, "--test-set",
                        tmp_path / "t.csv", "--out", tmp_path / "out", "--quiet"])
    assert r.code == 1
    failures = pd.read_csv(tmp_path / "out" / "failures.csv")
    reasons = dict(zip(failures["stimulus_id"], failures["error"]))
    assert "no audio stream" in reasons["barking/barking_1__av_offset_+100ms"]
    assert any("file not found" in e for e in reasons.values())
    manifest = pd.read_csv(tmp_path / "out" / "manifest.csv")
    assert manifest["stimulus_id"].tolist() == ["barking/barking_1__none"]
    # the same folder with another suite is refused
    other = _suite_file(tmp_path, "  visual_only: true\n", name="other")
    r = cli("stimuli", ["generate", "--suite", other, "--videos", videos, "--test-set",
                        tmp_path / "t.csv", "--out", tmp_path / "out", "--quiet"])
    assert r.code == 2 and "holds stimuli of a different suite" in r.err
    assert frames is not None


def test_verify_command_flags_a_tampered_stimulus(main_suite, cli, tmp_path):
    import shutil
    out, manifest, _, _, _ = main_suite
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    row = manifest[manifest["manipulation"] == "av_offset"].iloc[0]
    other = manifest[manifest["manipulation"] == "none"].iloc[0]
    shutil.copyfile(copy / other["path"], copy / row["path"])  # wrong file under that name
    r = cli("stimuli", ["verify", "--manifest", copy / "manifest.csv"])
    assert r.code == 1
    v = pd.read_csv(copy / "verify.csv").set_index("stimulus_id")
    assert not v.loc[row["stimulus_id"], "ok"]
    assert "sha256 differs" in v.loc[row["stimulus_id"], "problems"]
    assert v.drop(index=row["stimulus_id"])["ok"].all()


def test_probe_clips_are_the_same_files_on_any_number_of_workers(tmp_path):
    one = synthetic.write_probe_clips(tmp_path / "one", tmp_path / "one.csv", per_class=2,
                                      classes=("barking", "diving"), workers=1)
    two = synthetic.write_probe_clips(tmp_path / "two", tmp_path / "two.csv", per_class=2,
                                      classes=("barking", "diving"), workers=2)
    assert Path(one).read_bytes() == Path(two).read_bytes()
    names = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*.mp4"))
    assert len(names) == 4
    for name in names:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
