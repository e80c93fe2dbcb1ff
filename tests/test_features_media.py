"""Feature extraction preprocessing: audio as the paper prepares it, the log-mel front end,
frame times, probing."""
from __future__ import annotations

import numpy as np
import pytest

from avmit_psych.dataset import schema
from avmit_psych import media
from avmit_psych.features import frontend
from tests.videos import make_indexed_video, make_video, write_wav

LSB = 1 / 32768


# -- audio --------------------------------------------------------------------------------------
def test_stereo_becomes_half_left_plus_half_right_within_one_lsb(tmp_path):
    rng = np.random.default_rng(0)
    n = 16000
    left = (0.5 * np.sin(2 * np.pi * 300 * np.arange(n) / 16000) * 32767).astype(np.int16)
    right = rng.integers(-20000, 20000, n).astype(np.int16)
    path = write_wav(tmp_path / "s.wav", np.stack([left, right], axis=1), 16000, "PCM_16")
    waveform, has_audio = media.audio_waveform(path)
    expected = (0.5 * left.astype(np.float64) + 0.5 * right.astype(np.float64)) / 32768.0
    assert has_audio and waveform.shape == (n,)
    assert np.max(np.abs(waveform - expected)) <= LSB


@pytest.mark.parametrize("subtype, scale", [("PCM_24", 2 ** 31), ("FLOAT", 1.0)])  # int32 is full scale
def test_24_bit_and_float_inputs_are_cast_to_16_bit(tmp_path, subtype, scale):
    rng = np.random.default_rng(1)
    x = rng.uniform(-0.9, 0.9, (16000, 2))
    data = np.round(x * scale).astype(np.int32) if subtype == "PCM_24" else x.astype(np.float32)
    path = write_wav(tmp_path / "x.wav", data, 16000, subtype)
    waveform, _ = media.audio_waveform(path)
    expected = x.mean(axis=1)
    # casting to 16 bits loses at most one LSB per channel, averaging keeps that bound
    assert np.max(np.abs(waveform - expected)) <= LSB + 1e-7
    # and the values are on the 16-bit grid (x 2 for the average of two channels)
    assert np.allclose(np.round(waveform * 65536) / 65536, waveform, atol=1e-9)


def test_tone_resampled_from_44_1_to_16_khz_keeps_frequency_and_rms(tmp_path):
    sr, n = 44100, 44100
    tone = 0.5 * np.sin(2 * np.pi * 1000 * np.arange(n) / sr)
    path = write_wav(tmp_path / "tone.wav", (tone * 32767).astype(np.int16), sr, "PCM_16")
    waveform, _ = media.audio_waveform(path)
    assert len(waveform) == 16000
    core = waveform[1000:-1000]  # away from the filter's edges
    spectrum = np.abs(np.fft.rfft(core * np.hanning(len(core))))
    peak_hz = np.argmax(spectrum) * 16000 / len(core)
    assert abs(peak_hz - 1000) <= 16000 / len(core)
    rms_in = np.sqrt(np.mean(np.round(tone * 32767) ** 2)) / 32768
    rms_out = np.sqrt(np.mean(core.astype(np.float64) ** 2))
    assert abs(20 * np.log10(rms_out / rms_in)) < 0.1


def test_a_video_without_audio_gets_silence_of_its_duration(tmp_path):
    path = make_video(tmp_path / "n.mp4", duration=2.0, audio="none")
    waveform, has_audio = media.audio_waveform(path)
    assert not has_audio and len(waveform) == 32000 and not waveform.any()
    info = media.MediaInfo(str(path), None, 30.0, 64, 48, False, None, None, "h264", None)
    waveform, _ = media.audio_waveform(path, info)
    assert len(waveform) == 48000  # unknown duration: 3 s, as the authors did


# -- log-mel front end --------------------------------------------------------------------------
def _independent_log_mel(x, sr=16000):
    """The paper's definition, written out again: 25 ms periodic Hann frames every 10 ms,
    |FFT| (512 points), 64 HTK-mel triangles 125-7500 Hz (no DC), log(mel + 0.01)."""
    win, hop, nfft = 400, 160, 512
    hann = np.array([0.5 - 0.5 * np.cos(2 * np.pi * i / win) for i in range(win)])
    n_frames = 1 + (len(x) - win) // hop
    mags = np.empty((n_frames, nfft // 2 + 1))
    k = np.arange(nfft // 2 + 1)
    for f in range(n_frames):
        seg = np.zeros(nfft)
        seg[:win] = x[f * hop:f * hop + win] * hann
        # a direct DFT, not np.fft.rfft
        basis = np.exp(-2j * np.pi * np.outer(k, np.arange(nfft)) / nfft)
        mags[f] = np.abs(basis @ seg)
    mel = lambda hz: 1127.0 * np.log(1 + hz / 700.0)  # noqa: E731
    bin_mel = mel(k * (sr / 2) / (nfft // 2))
    edges = np.linspace(mel(125.0), mel(7500.0), 66)
    weights = np.zeros((len(k), 64))
    for m in range(64):
        lo, c, hi = edges[m], edges[m + 1], edges[m + 2]
        for b in range(1, len(k)):
            v = bin_mel[b]
            if lo < v <= c:
                weights[b, m] = (v - lo) / (c - lo)
            elif c < v < hi:
                weights[b, m] = (hi - v) / (hi - c)
    return np.log(mags @ weights + 0.01)


def test_log_mel_matches_an_independent_computation():
    rng = np.random.default_rng(3)
    t = np.arange(4000) / 16000
    x = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(len(t))
    ours = frontend.log_mel_spectrogram(x)
    reference = _independent_log_mel(x)
    assert ours.shape == reference.shape == (23, 64)
    assert np.max(np.abs(ours - reference)) < 1e-4


@pytest.mark.parametrize("model, n_examples", [("vggish", 3), ("yamnet", 5)])
def test_examples_of_a_3_second_clip(model, n_examples):
    x = np.random.default_rng(0).uniform(-0.5, 0.5, 48000)
    examples = frontend.log_mel_examples(x, model)
    assert examples.shape == (n_examples, 96, 64)
    log_mel = frontend.log_mel_spectrogram(x, model)
    hop = 96 if model == "vggish" else 48
    np.testing.assert_allclose(examples[1], log_mel[hop:hop + 96], rtol=1e-6)


# -- frames -------------------------------------------------------------------------------------
@pytest.mark.parametrize("fps", ["25", "30000/1001", "30", "60"])
@pytest.mark.parametrize("interval, n_expected", [(0.96, 4), (0.48, 7)])
def test_frames_are_sampled_at_k_times_d_within_half_a_frame(tmp_path, fps, interval,
                                                             n_expected):
    path = make_indexed_video(tmp_path / "idx.mkv", fps)
    frames, times = media.read_frames(path, interval)
    num, _, den = fps.partition("/")
    rate = float(num) / float(den or 1)
    assert len(frames) == n_expected and frames.shape[1:] == (224, 224, 3)
    np.testing.assert_allclose(times, np.arange(n_expected) * interval)
    shown_index = frames[:, 112, 112, 0].astype(float)  # grey level = frame index
    shown_time = shown_index / rate
    assert np.all(np.abs(shown_time - times) <= 0.5 / rate + 1e-9)


def test_frames_are_rgb(tmp_path):
    import subprocess
    from tests.videos import ffmpeg
    path = tmp_path / "red.mkv"
    subprocess.run([ffmpeg(), "-y", "-v", "error", "-f", "lavfi", "-i",
                    "color=c=red:size=32x32:rate=30:duration=1", "-c:v", "ffv1",
                    str(path)], check=True)
    frames, _ = media.read_frames(path, 0.48)
    r, g, b = frames[0, 16, 16].astype(int)
    assert r > 200 and g < 40 and b < 40


# -- probe and bad input ------------------------------------------------------------------------
def test_probe_reports_rate_duration_size_audio_and_peak(tmp_path):
    path = make_video(tmp_path / "v.mp4", fps="30000/1001", size="80x60", audio="stereo")
    info = media.probe(path)
    assert info.fps == pytest.approx(29.97, abs=0.01) and info.duration_s == pytest.approx(3.0, abs=0.05)
    assert (info.width, info.height, info.has_audio) == (80, 60, True)
    assert media.audio_peak(path, info) > 0.25 * 32768
    silent = make_video(tmp_path / "s.mp4", audio="silent")
    assert media.probe(silent).has_audio and media.audio_peak(silent) == 0


@pytest.mark.parametrize("kind, reason", [
    ("missing", "file not found"), ("empty", "zero-length file"),
    ("corrupt", "corrupt or unreadable container"),
    ("short", "shorter (0.500 s) than one 960 ms frame interval"),
])
def test_bad_videos_raise_media_errors_with_a_reason(tmp_path, kind, reason):
    path = tmp_path / "bad.mp4"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "corrupt":
        path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(500))
    elif kind == "short":
        make_video(path, duration=0.5)
    with pytest.raises(media.MediaError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        info = media.probe(path)
        media.read_frames(path, 0.96, info)


def test_media_csv_works_as_frame_rate_metadata(tmp_path):
    import pandas as pd
    table = pd.DataFrame({"filename": ["a.mp4", "b.mp4"], "fps": [30.0, np.nan],
                          "has_audio": [True, False], "audio_peak": [1200, np.nan]})
    schema.write_csv(table, tmp_path / "media.csv")
    fps = schema.read_csv(tmp_path / "media.csv", schema.FPS_METADATA)
    assert fps["fps"].iloc[0] == 30.0 and np.isnan(fps["fps"].iloc[1])


@pytest.mark.parametrize("audio", ["stereo", "none"])
def test_single_pass_decode_equals_separate_reads(tmp_path, audio):
    path = make_video(tmp_path / "v.mp4", size="80x60", audio=audio)
    info = media.probe(path)
    frames, times, waveform, has_audio = media.decode(path, 0.48, info)
    f2, t2 = media.read_frames(path, 0.48, info)
    w2, h2 = media.audio_waveform(path, info)
    np.testing.assert_array_equal(frames, f2)
    np.testing.assert_array_equal(times, t2)
    np.testing.assert_array_equal(waveform, w2)
    assert has_audio == h2 == (audio != "none")


# -- several videos per ffmpeg process (extraction's way) --------------------------------------
def _mixed_videos(root):
    """Good clips with bad files between them: ffmpeg stops probing at the first it cannot
    open, and the good ones after it must still be probed."""
    paths = [make_video(root / "a.mp4", size="80x60", tone_hz=300),
             make_video(root / "mute.mp4", size="80x60", audio="none"),
             root / "missing.mp4",
             make_video(root / "short.mp4", duration=0.5),
             root / "corrupt.mp4",
             make_video(root / "b.mp4", size="64x48", fps="25", tone_hz=500),
             root / "empty.mp4",
             make_video(root / "mono.mp4", size="80x60", audio="mono")]
    (root / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(500))
    (root / "empty.mp4").write_bytes(b"")
    return paths


def _one_at_a_time(fn, *args):
    try:
        return fn(*args)
    except media.MediaError as err:
        return err


def test_probing_and_decoding_several_videos_per_process_equals_one_at_a_time(tmp_path):
    paths = _mixed_videos(tmp_path)
    infos = media.probe_many(paths)
    alone = [_one_at_a_time(media.probe, p) for p in paths]
    assert [type(i).__name__ for i in infos] == ["MediaInfo", "MediaInfo", "MediaError",
                                                "MediaInfo", "MediaError", "MediaInfo",
                                                "MediaError", "MediaInfo"]
    for got, want in zip(infos, alone):
        assert type(got) is type(want) and str(got) == str(want)  # messages too
        if isinstance(want, media.MediaInfo):
            assert got == want
    videos = [(p, i) for p, i in zip(paths, infos) if isinstance(i, media.MediaInfo)]
    for interval in (0.48, 0.96):
        for (path, info), got in zip(videos, media.decode_many(videos, interval)):
            want = _one_at_a_time(media.decode, path, interval, info)
            if isinstance(want, media.MediaError):  # the 0.5 s clip
                assert isinstance(got, media.MediaError) and str(got) == str(want)
                assert "shorter (0.500 s)" in str(got)
                continue
            for a, b in zip(got, want):
                np.testing.assert_array_equal(a, b)
            assert got[3] == want[3] == (path.name != "mute.mp4")


def test_a_failing_shared_decode_falls_back_to_one_video_at_a_time(tmp_path, monkeypatch):
    paths = [make_video(tmp_path / f"v{k}.mp4", size="64x48", tone_hz=300 + 100 * k)
             for k in range(3)]
    videos = list(zip(paths, media.probe_many(paths)))

    def failing(input_args, outputs):
        raise media.MediaError("cannot decode (a stand-in for one bad input)")

    monkeypatch.setattr(media, "_ffmpeg_to_pipes", failing)
    for (path, info), got in zip(videos, media.decode_many(videos, 0.48)):
        for a, b in zip(got, media.decode(path, 0.48, info)):
            np.testing.assert_array_equal(a, b)
