"""The audiovisual player in a real PsychoPy window (run under Xvfb by scripts/test.sh).

What is on screen is read back from the back buffer after drawing and before each flip (under
Xvfb the front buffer reads back as zeros). Clips carry their frame number burnt in as a
binary code of black and white blocks, so every refresh tells which clip frame it shows.
Screenshots go to test_artifacts/ at the repo root.
"""
from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from avmit_psych.experiments import headless
from avmit_psych.experiments.player import count_dropped_frames, frame_schedule

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test_artifacts"
WIN_SIZE = (640, 480)
CORNER = (-300.0, -220.0)       # bottom-left of the video: 20 px from the window's edges
FPS = 30
N_FRAMES = 45                   # 1.5 s
N_BITS = 6                      # frame numbers 0..63
REFRESH_HZ = 60.0


# --------------------------------------------------------------------------------------------
# Without a window
# --------------------------------------------------------------------------------------------
def runs(seq):
    """(value, run length) of consecutive equal values."""
    out = []
    for v in seq:
        if out and out[-1][0] == v:
            out[-1][1] += 1
        else:
            out.append([v, 1])
    return [tuple(r) for r in out]


@pytest.mark.parametrize("fps, lengths", [(30, {2}), (25, {2, 3}), (Fraction(30000, 1001), {2, 3}),
                                          (60, {1})])
def test_frame_schedule_holds_each_frame_for_its_share_of_refreshes(fps, lengths):
    schedule = frame_schedule(90, fps, 60.0)
    assert [v for v, _ in runs(schedule)] == list(range(90))
    assert {n for _, n in runs(schedule)} == lengths
    # frame k starts at the first refresh at or after k / fps
    starts = np.searchsorted(schedule, np.arange(90))
    assert np.all(starts / 60.0 >= np.arange(90) / float(fps) - 1e-9)
    assert np.all(starts / 60.0 - np.arange(90) / float(fps) < 1 / 60.0)
    assert len(schedule) == int(np.ceil(90 * 60.0 / float(fps) - 1e-9))


def test_count_dropped_frames_counts_late_and_missing_frames():
    period = 1 / 60
    frames = [0, 0, 1, 1, 2, 2]
    on_time = [i * period for i in range(6)]
    assert count_dropped_frames(frames, on_time, 3, 30, 60.0) == 0
    late_5ms = on_time[:2] + [t + 0.005 for t in on_time[2:]]
    assert count_dropped_frames(frames, late_5ms, 3, 30, 60.0) == 0
    late_10ms = on_time[:2] + [t + 0.010 for t in on_time[2:]]
    assert count_dropped_frames(frames, late_10ms, 3, 30, 60.0) == 2   # frames 1 and 2 late
    skipped = [0, 0, 2, 2]
    assert count_dropped_frames(skipped, [0, period, 4 * period, 5 * period], 3, 30, 60.0) == 1


def test_headless_helpers(tmp_path, monkeypatch):
    text = headless.alsa_null_config_text()
    assert "pcm.nullout { type null }" in text and "pcm.!default" in text
    cards = tmp_path / "cards"
    cards.write_text("--- no soundcards ---\n")
    assert not headless.sound_card_present(cards)
    cards.write_text(" 0 [PCH            ]: HDA-Intel - HDA Intel PCH\n")
    assert headless.sound_card_present(cards)
    assert not headless.sound_card_present(tmp_path / "missing")

    monkeypatch.delenv("ALSA_CONFIG_PATH", raising=False)
    monkeypatch.setattr(headless, "_null_device_config", headless._null_device_config)
    conf = headless.ensure_alsa_null_device(tmp_path / "null.conf", force=True)
    assert conf.read_text() == text
    parts = os.environ["ALSA_CONFIG_PATH"].split(":")
    assert parts[-1] == str(conf)
    if len(parts) == 2:  # the system configuration stays first, so nothing else is lost
        assert parts[0].endswith("alsa.conf") and Path(parts[0]).is_file()
    headless.ensure_alsa_null_device(conf, force=True)  # a second call changes nothing
    assert os.environ["ALSA_CONFIG_PATH"].split(":") == parts

    message = headless.headless_error_message()
    assert 'xvfb-run -a -s "-screen 0 1280x800x24"' in message and "ALSA null" in message


# --------------------------------------------------------------------------------------------
# In a window
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def win(tmp_path_factory):
    if not os.environ.get("DISPLAY"):
        pytest.skip("no DISPLAY: the player tests need a window; run them under "
                    "xvfb-run -a -s \"-screen 0 1280x800x24\" (scripts/test.sh does)")
    # before PortAudio starts; the setting is left for the rest of the test session
    # (and on the null device, audio streams paced to real time)
    headless.ensure_alsa_null_device(tmp_path_factory.mktemp("alsa") / "alsa-null.conf")
    headless.configure_psychopy_audio("sounddevice")
    if not headless.audio_output_available():
        pytest.fail(f"no audio output device even with the ALSA null device "
                    f"(ALSA_CONFIG_PATH={os.environ.get('ALSA_CONFIG_PATH')})")
    from psychopy import visual
    window = visual.Window(WIN_SIZE, units="pix", winType="pyglet", fullscr=False,
                           color=(-1, -1, -1), allowGUI=False)
    ARTIFACTS.mkdir(exist_ok=True)
    yield window
    from avmit_psych.experiments import audio
    audio.close_session_output()
    headless.close_sound_streams()
    window.close()


def counter_clip(n=N_FRAMES, size=(160, 120), fps=FPS, sample_rate_hz=44_100):
    """Frame k: dark grey, its number as N_BITS blocks (white = 1) along the top, a red
    square at the bottom-left corner; audio a stereo tone."""
    from avmit_psych.media import Clip
    w, h = size
    frames = np.full((n, h, w, 3), 60, np.uint8)
    for k in range(n):
        for b in range(N_BITS):
            frames[k, 8:28, 8 + 20 * b:24 + 20 * b] = 255 if (k >> b) & 1 else 0
    frames[:, h - 20:h - 4, 4:20] = (255, 0, 0)
    t = np.arange(int(round(n / fps * sample_rate_hz))) / sample_rate_hz
    audio = 0.2 * np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 660 * t)], axis=1)
    return Clip(frames=frames, fps=Fraction(fps), audio=audio, sample_rate_hz=sample_rate_hz,
                has_audio=True)


def back_buffer(win) -> np.ndarray:
    """What has been drawn since the last flip, (height, width, 3) uint8, row 0 at the top."""
    image = np.asarray(win.getMovieFrame(buffer="back"))[..., :3]
    win.movieFrames.clear()
    return image


def video_origin(h):
    """Screen (column, row) of the video's top-left pixel when its bottom-left is CORNER."""
    left = int(WIN_SIZE[0] / 2 + CORNER[0])
    top = int(WIN_SIZE[1] / 2 - CORNER[1]) - h
    return left, top


def decode_frame_number(image, h=120) -> int:
    left, top = video_origin(h)
    bits = [image[top + 18, left + 16 + 20 * b, 0] > 128 for b in range(N_BITS)]
    return sum(int(bit) << b for b, bit in enumerate(bits))


def play_and_decode(win, player, **hooks):
    shown, drawn_k = [], []

    def on_frame_drawn(k):
        shown.append(decode_frame_number(back_buffer(win), player.native_size[1]))
        drawn_k.append(k)

    report = player.play(on_frame_drawn=on_frame_drawn, **hooks)
    assert shown == drawn_k                     # the screen shows what the player meant to
    assert shown == sorted(shown) and shown[0] == 0 and shown[-1] == player.frame_count - 1
    assert report.frames_shown == len(set(shown))
    return report, shown


def clean_playback(play, attempts=3):
    """``play()`` until an attempt drops no frame. Frames are dropped, correctly, when the
    machine is too busy to flip on time (seen with another PsychoPy process spinning on the
    same 2 cores), so a timing test gets up to ``attempts`` tries."""
    dropped = []
    for _ in range(attempts):
        result = play()
        report = result[0] if isinstance(result, tuple) else result
        if report.dropped_frames == 0:
            return result
        dropped.append(report.dropped_frames)
    pytest.fail(f"every playback dropped frames ({dropped} of {report.n_frames}); load "
                f"average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")


def test_null_device_sound_lasts_its_duration_without_busy_callbacks(win):
    import time

    from psychopy import sound
    if not headless.null_device_in_use():
        pytest.skip("a sound card is present: the ALSA null device is not in use")
    tone = 0.1 * np.ones((int(0.3 * 48_000), 2))
    snd = sound.Sound(tone, sampleRate=48_000, stereo=True, hamming=False)
    start = time.perf_counter()
    snd.play()
    while snd.isPlaying and time.perf_counter() - start < 2:
        time.sleep(0.002)
    assert 0.28 < time.perf_counter() - start < 0.5
    cpu, wall = time.process_time(), time.perf_counter()
    time.sleep(0.3)                             # the stream is open and idle
    assert (time.process_time() - cpu) / (time.perf_counter() - wall) < 0.3


@pytest.mark.parametrize("source", ["arrays", "mp4"])
def test_every_frame_shown_in_order_for_its_share_of_refreshes(win, source, tmp_path):
    from avmit_psych.experiments.player import AVPlayer
    from avmit_psych.media import encode
    clip = counter_clip()
    if source == "mp4":
        path = encode(tmp_path / "counter.mp4", clip.frames, clip.fps, clip.audio,
                      clip.sample_rate_hz)
        player = AVPlayer.load(win, path, pos=CORNER, anchor="bottom-left")
    else:
        player = AVPlayer.load(win, clip, pos=CORNER, anchor="bottom-left")
    assert player.frame_count == N_FRAMES
    assert player.refresh_hz == REFRESH_HZ and player.pace_flips  # Xvfb: no vsync
    assert player.audio_rate_hz == 48_000
    assert abs(len(player.audio) - 1.5 * 48_000) <= 2

    report, shown = clean_playback(lambda: play_and_decode(win, player))
    sequence = runs(shown)
    assert [k for k, _ in sequence] == list(range(N_FRAMES))
    assert all(1 <= n <= 3 for _, n in sequence), sequence      # 2 refreshes each, +-1
    assert sum(n for _, n in sequence) == len(report.flip_times)
    assert report.frames_shown == report.n_frames == N_FRAMES
    assert abs(report.duration_s - N_FRAMES / FPS) <= 1 / REFRESH_HZ
    # flips sit on the 60 Hz grid from the onset
    grid = report.onset + np.asarray(report.flip_refreshes) / REFRESH_HZ
    assert np.max(np.abs(np.asarray(report.flip_times) - grid)) < 0.5 / REFRESH_HZ
    player.close()


def test_report_audio_scheduled_once_before_the_first_flip(win):
    from avmit_psych.experiments import annotation, audio
    from avmit_psych.experiments.player import PLAYBACK_COLUMNS, AVPlayer
    player = AVPlayer.load(win, counter_clip(), pos=CORNER, anchor="bottom-left")
    assert player.output is audio.session_output()      # no output given: the session's
    original_schedule = player.output.schedule
    flips_before_schedule, flips = [], []

    def counting_schedule(*args, **kwargs):
        flips_before_schedule.append(len(flips))
        return original_schedule(*args, **kwargs)

    player.output.schedule = counting_schedule

    def play():
        flips_before_schedule.clear()
        flips.clear()
        return player.play(on_flip=lambda k, t: flips.append(t),
                           check_keys=lambda k: ["1"] if len(flips) in (10, 11) else None)

    try:
        report = clean_playback(play)
        assert flips_before_schedule == [0]         # once, before the first flip
        assert flips == report.flip_times
        assert report.onset == report.flip_times[0]
        assert report.frames_shown == report.n_frames == N_FRAMES
        # scheduled against the planned first flip, started when asked (the backend says)
        assert report.audio_backend in audio.BACKENDS
        assert report.audio["reported_start"] == report.audio_start
        assert abs(report.audio_start_error_ms) < 0.1
        assert report.scheduled_lead_ms == pytest.approx(report.latency_ms, abs=0.1)
        assert abs(report.first_flip_error_ms) < 1000 / REFRESH_HZ / 2
        assert report.av_onset_asynchrony_ms == pytest.approx(
            report.audio_start_error_ms - report.first_flip_error_ms, abs=1e-6)
        assert report.frame_interval_sd_ms < 1000 / REFRESH_HZ / 2
        # early keys are kept with their times, and playback carried on
        assert [v for _, v in report.early_keys] == [["1"], ["1"]]
        assert report.flip_times[9] <= report.early_keys[0][0] <= report.flip_times[10]

        row = report.to_row()
        assert tuple(row) == PLAYBACK_COLUMNS
        assert list(row)[:5] == ["onset", "dropped_frames", "frames_shown",
                                 "av_onset_asynchrony_ms", "playback_s"]
        assert set(row) <= set(annotation.ROW_COLUMNS)
        assert row["playback_s"] == report.duration_s
        assert row["audio_backend"] == report.audio_backend

        # a replay schedules the audio again, once
        again = play()
        assert flips_before_schedule == [0] and again.frames_shown == N_FRAMES
        assert again.onset > report.flip_times[-1]
        assert again.audio_start > report.flip_times[-1]
    finally:
        player.output.schedule = original_schedule
        player.close()


def test_a_stall_drops_frames_and_the_clip_keeps_its_duration(win):
    import time

    from avmit_psych.experiments.player import AVPlayer
    player = AVPlayer.load(win, counter_clip(), pos=CORNER, anchor="bottom-left")
    stalled = []

    def stall_once(k):
        if k == 20 and not stalled:
            stalled.append(k)
            time.sleep(0.060)               # 3.6 refreshes: frames 21 and 22 come too late

    report, shown = play_and_decode(win, player, on_flip=lambda k, t: stall_once(k))
    assert report.dropped_frames >= 1
    assert report.frames_shown < N_FRAMES
    assert set(range(21)) <= set(shown)
    assert abs(report.duration_s - N_FRAMES / FPS) <= 1 / REFRESH_HZ
    player.close()


def test_bottom_left_anchor_keeps_left_and_bottom_edges_whatever_the_size(win):
    from avmit_psych.experiments.player import AVPlayer
    edges = {}
    for w, h in [(160, 120), (320, 240)]:
        player = AVPlayer.load(win, counter_clip(n=3, size=(w, h)), pos=CORNER,
                               anchor="bottom-left")
        player.draw_frame(2)
        image = back_buffer(win)
        win.getMovieFrame(buffer="back")
        win.saveMovieFrames(str(ARTIFACTS / f"player_bottom_left_{w}x{h}.png"))
        win.flip()
        rows, cols = np.nonzero(image.max(axis=2) > 0)
        edges[(w, h)] = (cols.min(), rows.max())
        assert (cols.max() - cols.min() + 1, rows.max() - rows.min() + 1) == (w, h)
        # drawn at native size, pixel for pixel, the right way up
        left, top = video_origin(h)
        np.testing.assert_array_equal(image[top:top + h, left:left + w],
                                      player.frames[2])
        assert decode_frame_number(image, h) == 2
        player.close()
    assert edges[(160, 120)] == edges[(320, 240)] == (20, WIN_SIZE[1] - 1 - 20)


def test_centre_anchor_and_max_duration(win):
    from avmit_psych.experiments.player import AVPlayer
    clip = counter_clip()
    player = AVPlayer.load(win, clip, max_duration_s=0.5)
    assert player.frame_count == 15
    assert len(player.audio) == 24_000
    player.draw_frame(0)
    rows, cols = np.nonzero(back_buffer(win).max(axis=2) > 0)
    assert (cols.min(), cols.max(), rows.min(), rows.max()) == (240, 399, 180, 299)
    report = player.play()
    assert report.n_frames == report.frames_shown == 15
    assert abs(report.duration_s - 0.5) <= 1 / REFRESH_HZ
    player.close()


def test_screenshot_of_a_playing_frame(win):
    from avmit_psych.experiments.player import AVPlayer
    player = AVPlayer.load(win, counter_clip(size=(320, 240)), pos=CORNER, anchor="bottom-left")
    path = ARTIFACTS / "player_frame_21.png"

    def shoot(k):
        if k == 21 and not path.exists():
            win.getMovieFrame(buffer="back")
            win.saveMovieFrames(str(path))

    path.unlink(missing_ok=True)
    player.play(on_frame_drawn=shoot)
    assert path.stat().st_size > 1000
    from PIL import Image
    image = np.asarray(Image.open(path).convert("RGB"))
    assert decode_frame_number(image, 240) == 21
    player.close()
