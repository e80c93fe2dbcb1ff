"""The audio-video bench check (issue 14, point 2, analysis side): ``calibrate analyse``.

Synthetic stereo recordings (photodiode plateaus and clicks at known sub-sample offsets, with
noise, 44.1 and 48 kHz) must give every offset back within 0.1 ms and the counts exactly; a
missing click is a note naming the flash, swapped channels a clear error, bad files one line.
"""
from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from avmit_psych.dataset.schema import DatasetError
from avmit_psych.experiments import calibrate as cal_mod
from avmit_psych.experiments.calibrate import (
    analyse_loopback, analyse_recording, config_with_latency, find_events, find_onsets,
    pair_onsets, synthetic_recording, write_recording)

REPO = Path(__file__).resolve().parents[1]
TOLERANCE_MS = 0.1
#: not a whole number of samples at either rate, so flash onsets fall between samples too
INTERVAL_S = 0.98731
FIRST_S = 0.5


#: an experiment config like experiments/human_vs_dnn.yaml (inline: others edit that file)
CONFIG = """\
# The human-vs-DNN test: humans classify the same stimuli the models see.
task: classify              # [demo] classify (16 buttons) | correspondence
headphone_check: true       # antiphase screen first
fixation_s: 0.5
seed: 0                     # with the participant id, fixes the trial order
window:
  size: [1280, 800]
  fullscr: true
  color: [-1, -1, -1]
"""


def flash_times(n: int) -> np.ndarray:
    return FIRST_S + INTERVAL_S * np.arange(n)


def known_offsets(base_ms: float, sd_ms: float, n: int = 50, seed: int = 1) -> np.ndarray:
    return base_ms + sd_ms * np.random.default_rng(seed).standard_normal(n)


def recording(offsets_ms, rate_hz=48000, noise_rms=0.003, seed=2):
    return synthetic_recording(offsets_ms, rate_hz=rate_hz, interval_s=INTERVAL_S,
                               first_s=FIRST_S, noise_rms=noise_rms, seed=seed)


def synthetic_wav(path: Path, offsets_ms, rate_hz=48000, bits=16) -> Path:
    x, rate = recording(offsets_ms, rate_hz)
    return write_recording(path, x, rate, bits=bits)


# --------------------------------------------------------------------------------------------
# Acceptance: every offset within 0.1 ms, the count exactly
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("rate_hz", [44100, 48000])
@pytest.mark.parametrize("base_ms, sd_ms", [(12.337, 0.3), (-8.613, 0.5), (103.71, 2.0)])
def test_offsets_recovered_within_0_1_ms(rate_hz, base_ms, sd_ms):
    truth = known_offsets(base_ms, sd_ms)
    cal = analyse_recording(recording(truth, rate_hz))
    assert (cal.n_flashes, cal.n_clicks, cal.n_pairs) == (50, 50, 50)
    assert cal.offsets["flash"].tolist() == list(range(1, 51))
    assert np.abs(cal.offset_ms - truth).max() < TOLERANCE_MS
    assert np.abs(cal.offsets["video_s"].to_numpy() - flash_times(50)).max() * 1000 \
        < TOLERANCE_MS
    assert cal.unpaired_flashes_s == [] and cal.unpaired_clicks_s == []
    assert cal.notes == ([] if sd_ms < 1 else [n for n in cal.notes if "not below 1 ms" in n])


@pytest.mark.parametrize("rate_hz, bits", [(44100, 16), (48000, 24), (44100, "float"),
                                           (48000, 32)])
def test_offsets_recovered_from_wav_files(tmp_path, rate_hz, bits):
    truth = known_offsets(12.337, 0.3, seed=5)
    path = synthetic_wav(tmp_path / "rec.wav", truth, rate_hz, bits)
    cal = analyse_recording(path)
    assert cal.n_pairs == 50 and cal.rate_hz == rate_hz
    assert np.abs(cal.offset_ms - truth).max() < TOLERANCE_MS
    assert cal.recording == str(path)


def test_statistics_are_numpys_on_the_offsets():
    truth = known_offsets(12.337, 0.3)
    cal = analyse_recording(recording(truth))
    off = cal.offsets["offset_ms"].to_numpy()
    assert cal.mean_ms == pytest.approx(np.mean(off))
    assert cal.sd_ms == pytest.approx(np.std(off, ddof=1))
    assert (cal.min_ms, cal.max_ms) == (off.min(), off.max())
    assert cal.latency_ms == round(np.mean(off), 1)
    # and they describe the known offsets (within the 0.1 ms of each offset)
    assert cal.mean_ms == pytest.approx(truth.mean(), abs=TOLERANCE_MS)
    assert cal.sd_ms == pytest.approx(truth.std(ddof=1), abs=0.01)
    assert cal.stable and abs(cal.drift_ms_per_min) < 0.5
    summary = cal.summary()
    assert summary["n_pairs"] == 50 and summary["latency_ms"] == cal.latency_ms
    json.dumps(summary)  # JSON-ready


def test_unstable_setup_is_noted():
    cal = analyse_recording(recording(known_offsets(20.0, 3.0)))
    assert not cal.stable
    assert any("is not below 1 ms" in n for n in cal.notes)


@pytest.mark.parametrize("rate_hz", [44100, 48000])
def test_find_onsets_either_polarity(rate_hz):
    x, rate = recording(known_offsets(5.0, 0.2), rate_hz)
    truth = flash_times(50)
    for sign in (1, -1):  # a recorder may invert the photodiode
        onsets = find_onsets(sign * x[:, 0], rate)
        assert onsets.size == 50
        assert np.abs(onsets - truth).max() * 1000 < TOLERANCE_MS
    events = find_events(x[:, 0], rate)
    assert list(events.columns) == ["onset_s", "width_s", "peak"]
    assert events["width_s"].median() == pytest.approx(2 / 60, abs=0.002)  # the plateau
    assert find_events(x[:, 1], rate)["width_s"].median() < 0.002  # a click


def test_ac_coupled_input_counts_each_flash_once():
    """A sound card input is AC-coupled: the plateau sags and undershoots when it ends."""
    from scipy.signal import butter, lfilter
    truth = known_offsets(12.337, 0.3)
    x, rate = recording(truth)
    b, a = butter(1, 10 / (rate / 2), "high")
    cal = analyse_recording((lfilter(b, a, x, axis=0), rate))
    assert (cal.n_flashes, cal.n_clicks, cal.n_pairs) == (50, 50, 50)
    assert np.abs(cal.offset_ms - truth).max() < TOLERANCE_MS


def test_no_noise_and_digital_silence_between_events():
    truth = known_offsets(12.337, 0.3, n=10)
    cal = analyse_recording(recording(truth, noise_rms=0.0))
    assert cal.n_pairs == 10 and np.abs(cal.offset_ms - truth).max() < TOLERANCE_MS


# --------------------------------------------------------------------------------------------
# Acceptance: a missing click, or channels swapped
# --------------------------------------------------------------------------------------------
def test_missing_click_is_a_note_naming_the_flash():
    truth = known_offsets(12.337, 0.3)
    truth_missing = truth.copy()
    truth_missing[7] = np.nan  # flash 8 has no click
    cal = analyse_recording(recording(truth_missing))
    assert (cal.n_flashes, cal.n_clicks, cal.n_pairs) == (50, 49, 49)
    t8 = flash_times(50)[7]
    assert cal.unpaired_flashes_s == [pytest.approx(t8, abs=1e-4)]
    assert cal.notes == [f"flash 8 at {t8:.3f} s has no click within +-250 ms (left out)"]
    assert 8 not in cal.offsets["flash"].tolist()
    keep = np.isfinite(truth_missing)
    assert np.abs(cal.offset_ms - truth[keep]).max() < TOLERANCE_MS


def test_extra_click_is_a_note_naming_the_click():
    truth = known_offsets(12.337, 0.3, n=20)
    x, rate = recording(truth)
    extra = synthetic_recording([0.0], rate_hz=rate, first_s=4.9, noise_rms=0.0)[0]
    x[: len(extra), 1] += extra[:, 1]  # a click between flashes 5 and 6
    cal = analyse_recording((x, rate))
    assert (cal.n_flashes, cal.n_clicks, cal.n_pairs) == (20, 21, 20)
    assert cal.unpaired_clicks_s == [pytest.approx(4.9, abs=1e-4)]
    assert cal.notes == ["click at 4.900 s has no flash within +-250 ms (left out)"]
    assert np.abs(cal.offset_ms - truth).max() < TOLERANCE_MS


def test_many_missing_clicks_is_an_error_naming_them():
    truth = known_offsets(12.337, 0.3, n=20)
    truth[[2, 5, 6, 9, 11, 15]] = np.nan
    with pytest.raises(DatasetError) as err:
        analyse_recording(recording(truth))
    msg = str(err.value)
    assert "6 flashes without a click" in msg and "more than 5 unpaired" in msg
    assert f"{flash_times(20)[2]:.3f} s" in msg and "--max-unpaired" in msg
    cal = analyse_recording(recording(truth), max_unpaired=6)  # accepted when asked
    assert cal.n_pairs == 14 and len(cal.notes) == 6


def test_expected_count_differs_is_a_note():
    cal = analyse_recording(recording(known_offsets(12.0, 0.3, n=10)), expected_flashes=12)
    assert "10 flashes detected, 12 shown" in cal.notes


def test_swapped_channels_are_a_clear_error():
    truth = known_offsets(12.337, 0.3)
    x, rate = recording(truth)
    swapped = (x[:, ::-1].copy(), rate)
    with pytest.raises(DatasetError) as err:
        analyse_recording(swapped)
    msg = str(err.value)
    assert "channels look swapped" in msg
    assert "--video-channel 1 --audio-channel 0" in msg
    # the fix it names works
    cal = analyse_recording(swapped, video_channel=1, audio_channel=0)
    assert cal.n_pairs == 50 and np.abs(cal.offset_ms - truth).max() < TOLERANCE_MS


def test_no_pairs_is_an_error():
    with pytest.raises(DatasetError, match="no click within \\+-250 ms of any flash"):
        analyse_recording(recording(known_offsets(400.0, 0.3, n=10)))
    cal = analyse_recording(recording(known_offsets(400.0, 0.3, n=10)), max_offset_ms=450)
    assert cal.n_pairs == 10


def test_channel_without_pulses_is_an_error_naming_it():
    x, rate = recording(known_offsets(12.0, 0.3, n=10))
    x[:, 1] = np.random.default_rng(0).normal(0, 0.003, len(x))
    with pytest.raises(DatasetError, match="no clicks \\(audio output\\) on channel 1"):
        analyse_recording((x, rate))
    with pytest.raises(DatasetError, match="video_channel 2 does not exist"):
        analyse_recording((x, rate), video_channel=2)


# --------------------------------------------------------------------------------------------
# Pairing
# --------------------------------------------------------------------------------------------
def test_pair_onsets_each_event_once_within_the_window():
    video = np.array([1.0, 2.0, 3.0, 4.0])
    audio = np.array([0.992, 2.011, 2.013, 3.5, 4.009])  # 2.013: a second click near flash 2
    p = pair_onsets(video, audio, max_offset_ms=100)
    assert p.video_index.tolist() == [0, 1, 3]
    assert p.audio_index.tolist() == [0, 1, 4]
    np.testing.assert_allclose(p.offset_ms, [-8.0, 11.0, 9.0], atol=1e-9)
    np.testing.assert_allclose(p.unpaired_video_s, [3.0])
    np.testing.assert_allclose(p.unpaired_audio_s, [2.013, 3.5])
    empty = pair_onsets([], [1.0])
    assert empty.offset_ms.size == 0 and empty.unpaired_audio_s.tolist() == [1.0]


def test_pair_onsets_follows_the_typical_offset():
    """With a latency near the window, the click of the previous flash must not be taken."""
    video = np.arange(10) * 0.3
    audio = video + 0.14
    p = pair_onsets(video, audio, max_offset_ms=200)
    assert p.audio_index.tolist() == list(range(10))
    np.testing.assert_allclose(p.offset_ms, 140.0)


def test_loopback_against_scheduled_times():
    truth = known_offsets(4.2, 0.05, n=20)
    x, rate = recording(truth)
    cal = analyse_loopback((x[:, 1], rate), flash_times(20), channel=0)
    assert cal.reference == "scheduled" and cal.n_pairs == 20
    # clicks timed against exact times: only the click's own onset bias remains
    assert np.abs(cal.offset_ms - truth).max() < 0.02


# --------------------------------------------------------------------------------------------
# Writing latency_ms into an experiment config
# --------------------------------------------------------------------------------------------
def test_config_with_latency_adds_a_block_and_keeps_comments():
    text = CONFIG
    new, kept = config_with_latency(text, 12.04, comment="measured")
    assert kept and new.startswith(text)
    assert new.endswith("audio:\n  latency_ms: 12.0  # measured\n")
    old, now = yaml.safe_load(text), yaml.safe_load(new)
    assert now.pop("audio") == {"latency_ms": 12.0} and now == old


def test_config_with_latency_edits_the_line_in_place():
    text = ("# lab A\naudio:\n    device: 3   # the USB card\n    latency_ms: 4.5  # old\n"
            "    rate: 48000\nwindow:\n    latency_ms: 1  # not this one\n")
    new, kept = config_with_latency(text, -3.26)
    assert kept
    assert new == text.replace("latency_ms: 4.5  # old", "latency_ms: -3.3")
    new, kept = config_with_latency("audio:  # sound\n  device: 3\nseed: 1\n", 7.0)
    assert kept and new == "audio:  # sound\n  latency_ms: 7.0\n  device: 3\nseed: 1\n"


def test_config_with_latency_flow_style_is_rewritten_without_comments():
    text = "# lab A\naudio: {device: 3, latency_ms: 2}\nseed: 1\n"
    new, kept = config_with_latency(text, 9.96)
    assert not kept
    assert yaml.safe_load(new) == {"audio": {"device": 3, "latency_ms": 10.0}, "seed": 1}
    with pytest.raises(DatasetError, match="'audio' must be a mapping"):
        config_with_latency("audio: 3\n", 1.0)


# --------------------------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------------------------
def test_cli_analyse_end_to_end(tmp_path, cli):
    truth = known_offsets(12.337, 0.3)
    rec = synthetic_wav(tmp_path / "rec.wav", truth, 44100, bits=24)
    out = tmp_path / "out"
    r = cli("experiments", ["calibrate", "analyse", rec, "--out", out, "--flashes", 50])
    assert r.code == 0, r.err
    table = pd.read_csv(out / "offsets.csv")
    assert list(table.columns) == ["flash", "video_s", "audio_s", "offset_ms"]
    assert len(table) == 50 and np.abs(table["offset_ms"] - truth).max() < TOLERANCE_MS
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_pairs"] == 50 and summary["notes"] == []
    assert summary["mean_ms"] == pytest.approx(table["offset_ms"].mean(), abs=1e-3)
    assert (out / "histogram.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "report.txt").read_text().strip() in r.out
    m = table["offset_ms"]
    assert (f"mean {m.mean():.2f} ms, SD {m.std(ddof=1):.2f} ms, min {m.min():.2f} ms, "
            f"max {m.max():.2f} ms, n 50") in r.out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "rec.wav"]  # no leftovers


def test_cli_default_out_beside_the_recording(tmp_path, cli):
    rec = synthetic_wav(tmp_path / "bench.wav", known_offsets(12.0, 0.3, n=10))
    r = cli("experiments", ["calibrate", "analyse", rec])
    assert r.code == 0, r.err
    assert (tmp_path / "bench_calibration" / "offsets.csv").exists()


def test_cli_missing_click_note(tmp_path, cli):
    truth = known_offsets(12.337, 0.3, n=20)
    truth[3] = np.nan
    rec = synthetic_wav(tmp_path / "rec.wav", truth)
    r = cli("experiments", ["calibrate", "analyse", rec, "--out", tmp_path / "out"])
    assert r.code == 0, r.err
    assert f"note: flash 4 at {flash_times(20)[3]:.3f} s has no click" in r.out
    assert "n 19" in r.out


def _mono(path):
    from scipy.io import wavfile
    x, rate = recording(known_offsets(12.0, 0.3, n=5))
    wavfile.write(path, rate, (x[:, 0] * 32767).astype(np.int16))


def _empty(path):
    from scipy.io import wavfile
    wavfile.write(path, 48000, np.zeros((0, 2), np.int16))


def _noise_only(path):
    rng = np.random.default_rng(0)
    write_recording(path, rng.normal(0, 0.003, (48000 * 5, 2)), 48000)


def _not_a_wav(path):
    path.write_text("hello, not audio")


def _swapped(path):
    x, rate = recording(known_offsets(12.0, 0.3, n=10))
    write_recording(path, x[:, ::-1], rate)


@pytest.mark.parametrize("make, expected", [
    (_mono, "has 1 channel; the bench check needs 2"),
    (_empty, "holds no samples"),
    (_noise_only, "no flashes (photodiode) on channel 0"),
    (_not_a_wav, "not a readable WAV file"),
    (None, "recording not found"),
    (_swapped, "the channels look swapped"),
])
def test_cli_bad_recordings_one_line_exit_2_nothing_written(tmp_path, cli, make, expected):
    rec = tmp_path / "rec.wav"
    if make is not None:
        make(rec)
    config = tmp_path / "config.yaml"
    config.write_text("seed: 0  # keep\n")
    r = cli("experiments", ["calibrate", "analyse", rec, "--out", tmp_path / "out",
                            "--write-config", config])
    assert r.code == 2
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert str(rec) in lines[0] and expected in lines[0]
    assert not (tmp_path / "out").exists()
    assert config.read_text() == "seed: 0  # keep\n"
    assert r.out == ""


@pytest.mark.parametrize("option, value, expected", [
    ("--onset-fraction", 0.7, "onset_fraction must be above 0 and at most threshold_fraction"),
    ("--max-offset-ms", 0, "max_offset_ms must be above 0"),
    ("--video-channel", 1, "the photodiode and the audio are both channel 1"),
])
def test_cli_bad_settings_one_line_exit_2(tmp_path, cli, option, value, expected):
    rec = synthetic_wav(tmp_path / "rec.wav", known_offsets(12.0, 0.3, n=5))
    r = cli("experiments", ["calibrate", "analyse", rec, "--out", tmp_path / "out",
                            option, value])
    assert r.code == 2 and len(r.err.strip().splitlines()) == 1 and expected in r.err
    assert not (tmp_path / "out").exists()


def test_cli_write_config_keeps_the_other_keys(tmp_path, cli):
    truth = known_offsets(12.337, 0.3)
    rec = synthetic_wav(tmp_path / "rec.wav", truth)
    config = tmp_path / "human_vs_dnn.yaml"
    original = CONFIG
    config.write_text(original, encoding="utf-8")
    r = cli("experiments", ["calibrate", "analyse", rec, "--out", tmp_path / "out",
                            "--write-config", config])
    assert r.code == 0, r.err
    mean = pd.read_csv(tmp_path / "out" / "offsets.csv")["offset_ms"].mean()
    new = yaml.safe_load(config.read_text(encoding="utf-8"))
    assert new.pop("audio") == {"latency_ms": round(mean, 1)}
    assert new == yaml.safe_load(original)
    assert config.read_text(encoding="utf-8").startswith(original)  # comments kept
    assert f"wrote audio: latency_ms: {round(mean, 1):.1f} to {config}" in r.out
    assert abs(round(mean, 1) - truth.mean()) < 0.1 + 0.05


def test_cli_write_config_refused_for_an_unstable_setup(tmp_path, cli):
    rec = synthetic_wav(tmp_path / "rec.wav", known_offsets(20.0, 3.0, n=20))
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    r = cli("experiments", ["calibrate", "analyse", rec, "--out", tmp_path / "out",
                            "--write-config", config])
    assert r.code == 1
    assert r.err.strip().startswith(f"error: {config}: latency_ms not written: SD ")
    assert "NOT stable" in r.out and (tmp_path / "out" / "histogram.png").exists()
    assert config.read_text() == CONFIG


def test_cli_write_config_missing_config_writes_nothing(tmp_path, cli):
    rec = synthetic_wav(tmp_path / "rec.wav", known_offsets(12.0, 0.3, n=10))
    r = cli("experiments", ["calibrate", "analyse", rec, "--out", tmp_path / "out",
                            "--write-config", tmp_path / "nope.yaml"])
    assert r.code == 2 and "experiment config not found" in r.err
    assert len(r.err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists() and not (tmp_path / "nope.yaml").exists()


def test_cli_synthetic_then_analyse(tmp_path, cli):
    rec = tmp_path / "synthetic.wav"
    r = cli("experiments", ["calibrate", "synthetic", rec, "--flashes", 30, "--latency-ms",
                            -4.5, "--jitter-ms", 0.2, "--rate-hz", 44100, "--seed", 3])
    assert r.code == 0, r.err
    truth = -4.5 + 0.2 * np.random.default_rng(3).standard_normal(30)
    cal = analyse_recording(rec)
    assert cal.n_pairs == 30 and np.abs(cal.offset_ms - truth).max() < TOLERANCE_MS


@pytest.fixture
def no_presentation(monkeypatch):
    """calibrate_run as if not written yet (whether or not it exists meanwhile)."""
    import avmit_psych.experiments as pkg
    monkeypatch.setitem(sys.modules, "avmit_psych.experiments.calibrate_run", None)
    monkeypatch.delattr(pkg, "calibrate_run", raising=False)


@pytest.mark.parametrize("argv", [["calibrate", "run"], ["calibrate", "--loopback"]])
def test_cli_presentation_not_available_is_one_line(cli, no_presentation, argv):
    r = cli("experiments", argv)
    assert r.code == 2
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and "calibrate_run.py: not available yet" in lines[0]
    assert "calibrate analyse REC.wav" in lines[0]


def test_cli_presentation_file_absent_is_one_line(tmp_path):
    """The real case (no calibrate_run.py), in a copy of the package without that file."""
    import shutil
    copy = tmp_path / "avmit_psych"
    shutil.copytree(REPO / "avmit_psych", copy,
                    ignore=shutil.ignore_patterns("calibrate_run.py", "__pycache__"))
    r = subprocess.run([sys.executable, "-m", "avmit_psych.experiments", "calibrate", "run"],
                       capture_output=True, text=True, cwd=tmp_path,
                       env={**__import__("os").environ, "PYTHONPATH": str(tmp_path),
                            "MPLBACKEND": "Agg"})
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip() == (
        "error: avmit_psych/experiments/calibrate_run.py: not available yet (the presentation "
        "side of calibrate: run_flashes, loopback). Fix: show flashes and play clicks with any "
        "setup, record them, then run: python -m avmit_psych.experiments calibrate analyse "
        "REC.wav")


@pytest.fixture
def fake_presentation(monkeypatch):
    """A stand-in calibrate_run: records its calls; loopback measures a synthetic click track."""
    import avmit_psych.experiments as pkg
    calls = []
    fake = types.ModuleType("avmit_psych.experiments.calibrate_run")

    def run_flashes(**kw):
        calls.append(("run_flashes", kw))

    def loopback(**kw):
        calls.append(("loopback", kw))
        x, rate = recording(known_offsets(3.0, 0.05, n=kw["n_clicks"]))
        return analyse_loopback((x[:, 1], rate), flash_times(kw["n_clicks"]), channel=0)

    fake.run_flashes, fake.loopback = run_flashes, loopback
    monkeypatch.setitem(sys.modules, fake.__name__, fake)
    monkeypatch.setattr(pkg, "calibrate_run", fake, raising=False)
    return calls


def test_cli_run_and_loopback_call_the_presentation_side(tmp_path, cli, fake_presentation):
    r = cli("experiments", ["calibrate", "run", "--flashes", 7, "--interval-s", 0.8])
    assert r.code == 0, r.err
    assert fake_presentation[-1] == ("run_flashes",
                                     {"n_flashes": 7, "interval_s": 0.8, "config": None})
    r = cli("experiments", ["calibrate", "--loopback", "--clicks", 12, "--loopback-out",
                            tmp_path / "lb"])
    assert r.code == 0, r.err
    assert fake_presentation[-1] == ("loopback", {"n_clicks": 12, "interval_s": 1.0})
    assert "12 scheduled clicks, 12 clicks, 12 pairs" in r.out
    assert (tmp_path / "lb" / "histogram.png").exists()


def test_cli_calibrate_without_a_step_is_a_usage_error(cli):
    with pytest.raises(SystemExit) as exit_:
        cli("experiments", ["calibrate"])
    assert exit_.value.code == 2


def test_cli_python_m_end_to_end(tmp_path):
    truth = known_offsets(12.337, 0.3, n=20)
    rec = synthetic_wav(tmp_path / "rec.wav", truth, 48000, bits=16)
    r = subprocess.run([sys.executable, "-m", "avmit_psych.experiments", "calibrate",
                        "analyse", str(rec), "--out", str(tmp_path / "out")],
                       capture_output=True, text=True, cwd=REPO,
                       env={**__import__("os").environ, "MPLBACKEND": "Agg"})
    assert r.returncode == 0, r.stderr
    assert "20 flashes, 20 clicks, 20 pairs" in r.stdout
    assert "audio - video offset: mean" in r.stdout
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "histogram.png", "offsets.csv", "report.txt", "summary.json"]


def test_docs_name_the_defaults():
    assert cal_mod.N_FLASHES == 50 and cal_mod.STABLE_SD_MS == 1.0
    readme = (REPO / "experiments" / "README.md").read_text(encoding="utf-8")
    assert "calibrate analyse" in readme and "calibration_example.png" in readme
    assert (REPO / "experiments" / "calibration_example.png").exists()
