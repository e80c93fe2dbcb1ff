"""Decoding videos for feature extraction: probe, audio as the paper prepares it, frames by time.

ffmpeg comes from the ``imageio-ffmpeg`` wheel, so any container and codec it reads works.

Audio (the paper's steps): decode the first audio stream cast to 16-bit integers, mono as
0.5 L + 0.5 R (the mean of all channels), divide by 32768.0, resample to 16 kHz with
``scipy.signal.resample_poly`` (polyphase FIR, Kaiser window with beta 5.0, a half-length of
10 x max(up, down) taps; passband flat to well within 0.1 dB below 7 kHz). A video without an
audio stream gets digital silence of its duration (3 s when unknown), as the authors did.

Frames: sampled by time at 0, d, 2d, ... (while k*d is before the end of the clip) whatever
the frame rate, d = 960 ms (VGG16) or 480 ms (EfficientNetB0), taking for time k*d the frame
whose timestamp is nearest to it: index floor(k*d*fps + 1/2) (see :func:`frame_indices` for
the rule, the paper's words and how the authors' released script differs); RGB; resized to
224 x 224 with OpenCV's bilinear ``cv2.resize`` (the authors' call). A 3.0 s clip gives 4
frames at d = 960 ms and 7 at d = 480 ms.
"""
from __future__ import annotations

import math
import re
import subprocess
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

SAMPLE_RATE_HZ = 16_000
SILENCE_S = 3.0
FRAME_SIZE = 224
FRAME_INTERVAL_S = {"vgg16": 0.96, "effnetb0": 0.48}


class MediaError(Exception):
    """A video cannot be used; ``str(err)`` is the reason written to the run report."""


_FFMPEG = None


def ffmpeg_exe() -> str:
    global _FFMPEG
    if _FFMPEG is None:
        import imageio_ffmpeg
        _FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
    return _FFMPEG


@dataclass
class MediaInfo:
    path: str
    duration_s: float | None
    fps: float | None
    width: int | None
    height: int | None
    has_audio: bool
    audio_sample_rate_hz: int | None
    audio_channels: int | None
    video_codec: str | None
    audio_codec: str | None

    def as_row(self) -> dict:
        return asdict(self)


_DURATION = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")
_VIDEO = re.compile(r"Stream #\d+:\d+.*?: Video: (\w+).*?, (\d+)x(\d+)[ ,]")
_FPS = re.compile(r", (\d+(?:\.\d+)?(?:k)?) fps")
_TBR = re.compile(r", (\d+(?:\.\d+)?(?:k)?) tbr")
_AUDIO = re.compile(r"Stream #\d+:\d+.*?: Audio: (\w+).*?, (\d+) Hz, ([^,]+)")
_CHANNELS = {"mono": 1, "stereo": 2, "2.1": 3, "quad": 4, "5.0": 5, "5.1": 6, "5.1(side)": 6,
             "7.1": 8}


def _check_file(path: Path) -> None:
    if not path.exists():
        raise MediaError("file not found")
    if path.is_dir():
        raise MediaError("is a folder, not a video")
    if path.stat().st_size == 0:
        raise MediaError("zero-length file")


def probe(path) -> MediaInfo:
    """Streams, frame rate, duration and size of a video (parsed from ``ffmpeg -i``)."""
    path = Path(path)
    _check_file(path)
    proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)],
                          capture_output=True, text=True, errors="replace")
    text = proc.stderr
    if "Invalid data found" in text or "moov atom not found" in text or \
            ("Stream #" not in text):
        last = [l for l in text.strip().splitlines() if l.strip()][-1:] or ["unreadable"]
        raise MediaError(f"corrupt or unreadable container ({last[0].strip()[-120:]})")
    duration = None
    m = _DURATION.search(text)
    if m:
        h, mi, s = m.groups()
        duration = int(h) * 3600 + int(mi) * 60 + float(s)
    video = _VIDEO.search(text)
    fps = width = height = vcodec = None
    if video:
        vcodec, width, height = video.group(1), int(video.group(2)), int(video.group(3))
        line = text[video.start():text.find("\n", video.start())]
        rate = _FPS.search(line) or _TBR.search(line)
        if rate:
            value = rate.group(1)
            fps = float(value[:-1]) * 1000 if value.endswith("k") else float(value)
    audio = _AUDIO.search(text)
    return MediaInfo(
        path=str(path), duration_s=duration, fps=fps, width=width, height=height,
        has_audio=audio is not None,
        audio_sample_rate_hz=int(audio.group(2)) if audio else None,
        audio_channels=_CHANNELS.get(audio.group(3).strip(), None) if audio else None,
        video_codec=vcodec, audio_codec=audio.group(1) if audio else None)


def _run(args, what: str) -> bytes:
    proc = subprocess.run([ffmpeg_exe(), "-v", "error", "-nostdin", *args],
                          capture_output=True)
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        raise MediaError(f"cannot decode {what} ({(err[-1] if err else 'ffmpeg failed')[-160:]})")
    return proc.stdout


def read_audio_int16(path, info: MediaInfo | None = None) -> tuple[np.ndarray, int]:
    """The first audio stream as int16 samples (n, channels) at its own sample rate."""
    info = info or probe(path)
    if not info.has_audio:
        raise MediaError("no audio stream")
    channels = info.audio_channels or 2
    raw = _run(["-i", str(path), "-map", "0:a:0", "-vn", "-f", "s16le", "-acodec", "pcm_s16le",
                "-ac", str(channels), "-"], "audio")
    samples = np.frombuffer(raw, dtype="<i2")
    samples = samples[: len(samples) - len(samples) % channels].reshape(-1, channels)
    return samples, int(info.audio_sample_rate_hz)


def to_mono_float(samples_int16: np.ndarray) -> np.ndarray:
    """0.5 L + 0.5 R (the mean of the channels), divided by 32768.0."""
    x = np.asarray(samples_int16)
    mono = x.mean(axis=1) if x.ndim == 2 else x.astype(np.float64)
    return (mono / 32768.0).astype(np.float64)


def resample(waveform: np.ndarray, from_hz: int, to_hz: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """``scipy.signal.resample_poly`` from ``from_hz`` to ``to_hz`` (see the module docstring)."""
    from scipy.signal import resample_poly
    if from_hz == to_hz:
        return np.asarray(waveform, dtype=np.float64)
    ratio = Fraction(int(to_hz), int(from_hz))
    return resample_poly(np.asarray(waveform, dtype=np.float64), ratio.numerator,
                         ratio.denominator)


def audio_waveform(path, info: MediaInfo | None = None, *,
                   sample_rate_hz: int = SAMPLE_RATE_HZ) -> tuple[np.ndarray, bool]:
    """(mono float32 waveform at 16 kHz, whether it came from an audio stream).

    A video without audio gets digital silence of its duration (3 s when unknown).
    """
    info = info or probe(path)
    if not info.has_audio:
        seconds = info.duration_s or SILENCE_S
        return np.zeros(int(round(seconds * sample_rate_hz)), dtype=np.float32), False
    samples, rate = read_audio_int16(path, info)
    mono = resample(to_mono_float(samples), rate, sample_rate_hz)
    return mono.astype(np.float32), True


def audio_peak(path, info: MediaInfo | None = None) -> int:
    """Peak absolute amplitude in 16-bit units (0 = digital silence; no audio stream: 0)."""
    info = info or probe(path)
    if not info.has_audio:
        return 0
    samples, _ = read_audio_int16(path, info)
    return int(np.abs(samples.astype(np.int32)).max()) if samples.size else 0


def frame_times(duration_s: float, interval_s: float) -> np.ndarray:
    """Sampling times 0, d, 2d, ... (s) strictly before ``duration_s``: a 3.0 s clip gives
    0, 0.96, 1.92, 2.88 at d = 0.96 s and 0, 0.48, ..., 2.88 (7 times) at d = 0.48 s."""
    n = int(math.floor(duration_s / interval_s - 1e-9)) + 1
    return np.arange(max(n, 0)) * interval_s


def frame_indices(times_s: np.ndarray, fps: float, n_frames: int | None = None) -> np.ndarray:
    """Index (from 0, in decoding order) of the frame sampled for each time in ``times_s``.

    The rule: the frame whose timestamp n / fps is nearest to t, i.e.
    ``n = floor(t * fps + 1/2)`` (an exact tie goes to the later frame), clipped to
    ``n_frames - 1`` when the number of frames is given. The chosen frame starts within half
    a frame period of t (the frame on screen at t, floor(t * fps), can be up to one period
    earlier). Frame n is taken to start at n / fps, i.e. a constant frame rate and a first
    frame at 0, as in the MIT clips.

    Hand-computed for d = 480 ms (t = 0, 0.48, ..., 2.88 s):

    ========  =====================  ==============================
    fps       t * fps                indices
    ========  =====================  ==============================
    25        0, 12, 24, ..., 72     0, 12, 24, 36, 48, 60, 72
    29.97     0, 14.39, 28.77, ...   0, 14, 29, 43, 58, 72, 86
    30        0, 14.4, 28.8, ...     0, 14, 29, 43, 58, 72, 86
    ========  =====================  ==============================

    The paper (Methods, "Neural network embeddings"): "For visual processing, we sampled
    frames according to the frequency of the complementary audio features; 960ms for VGG-16
    and 480ms for EfficientNetB0. This was to provide a similar number of audio and visual
    embeddings per sample." (facts.md: "frames sampled every 960 ms (VGG16) or 480 ms
    (EfficientNetB0)"; sequences padded to 7 timesteps.) So visual timestep k stands for time
    k*d, where audio example k starts; the paper names no rounding rule, and nearest is the
    one that keeps each frame within half a frame of its time at any frame rate.

    The authors' released script (``feature_extractor/extract_features.py``) differs from
    these words: its OpenCV loop reads frames until ``CAP_PROP_POS_MSEC`` (the timestamp of
    the last frame read) reaches the previous such timestamp + d, then keeps the *next*
    frame. So each kept frame is one frame after its time, and the times drift by
    ceil(d * fps) frames, not d: at 30 fps and d = 480 ms frames 0, 16, 31, 46, 61, 76
    (0, 533, 1033, 1533, 2033, 2533 ms; 6 frames in 3 s, not 7), at 25 fps 0, 13, 25, 37,
    49, 61, 73 (``benchmarks/bench_extract.py`` runs that loop and prints both).
    """
    idx = np.floor(np.asarray(times_s, dtype=np.float64) * float(fps) + 0.5 + 1e-9)
    idx = idx.astype(np.int64)
    if n_frames is not None:
        idx = np.minimum(idx, n_frames - 1)
    return idx


def _frame_plan(info: MediaInfo, interval_s: float):
    if info.width is None:
        raise MediaError("no video stream")
    if not info.fps:
        raise MediaError("unknown frame rate")
    if info.duration_s is None:
        raise MediaError("unknown duration")
    if info.duration_s < interval_s:
        raise MediaError(f"shorter ({info.duration_s:.3f} s) than one {interval_s * 1000:.0f} ms "
                         "frame interval")
    times = frame_times(info.duration_s, interval_s)
    wanted = frame_indices(times, info.fps)
    select = "+".join(f"eq(n\\,{i})" for i in sorted(set(wanted.tolist())))
    video_args = ["-map", "0:v:0", "-vf", f"select='{select}'", "-fps_mode", "passthrough",
                  "-f", "rawvideo", "-pix_fmt", "rgb24"]
    return times, wanted, video_args


def _frames_from_raw(raw: bytes, info: MediaInfo, wanted: np.ndarray, size: int) -> np.ndarray:
    import cv2
    frame_bytes = info.width * info.height * 3
    n = len(raw) // frame_bytes
    if n == 0:
        raise MediaError("no decodable video frames")
    decoded = np.frombuffer(raw[: n * frame_bytes], dtype=np.uint8).reshape(
        n, info.height, info.width, 3)
    # map each wanted index to its decoded position (a clip may end early: use the last frame)
    order = {i: k for k, i in enumerate(sorted(set(wanted.tolist())))}
    positions = np.minimum([order[i] for i in wanted], n - 1)
    return np.stack([cv2.resize(decoded[p], (size, size)) for p in positions])


def read_frames(path, interval_s: float, info: MediaInfo | None = None, *,
                size: int = FRAME_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Frames at 0, d, 2d, ...: (uint8 (k, size, size, 3) RGB, their times in seconds).

    Raises
    ------
    MediaError
        No video stream, unknown frame rate, or a clip shorter than one interval.
    """
    info = info or probe(path)
    times, wanted, video_args = _frame_plan(info, interval_s)
    raw = _run(["-i", str(path), "-an", *video_args, "-"], "video")
    return _frames_from_raw(raw, info, wanted, size), times


def video_and_audio(path, video_args: list[str], audio_args: list[str]) -> tuple[bytes, bytes]:
    """One ffmpeg pass over ``path``: video to stdout (``video_args`` end with its output,
    e.g. ``pipe:1``) and the first audio stream, formatted by ``audio_args``, to a second pipe
    drained in a thread. Returns (video bytes, audio bytes)."""
    import os
    import threading

    read_end, write_end = os.pipe()
    chunks: list[bytes] = []

    def drain():
        with os.fdopen(read_end, "rb") as fh:
            while chunk := fh.read(1 << 16):
                chunks.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    try:
        proc = subprocess.Popen(
            [ffmpeg_exe(), "-v", "error", "-nostdin", "-i", str(path), *video_args,
             "-map", "0:a:0", *audio_args, f"pipe:{write_end}"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=(write_end,))
    finally:
        os.close(write_end)
    reader.start()
    raw, err = proc.communicate()
    reader.join()
    if proc.returncode != 0:
        lines = err.decode(errors="replace").strip().splitlines()
        raise MediaError(f"cannot decode ({(lines[-1] if lines else 'ffmpeg failed')[-160:]})")
    return raw, b"".join(chunks)


def decode(path, interval_s: float, info: MediaInfo | None = None, *,
           size: int = FRAME_SIZE, sample_rate_hz: int = SAMPLE_RATE_HZ):
    """Frames and audio of one video in a single ffmpeg pass (what extraction needs).

    Returns (frames, frame times, 16 kHz mono waveform, whether it came from an audio stream);
    the same values as :func:`read_frames` and :func:`audio_waveform`.
    """
    info = info or probe(path)
    times, wanted, video_args = _frame_plan(info, interval_s)
    if not info.has_audio:
        frames, _ = read_frames(path, interval_s, info, size=size)
        waveform, _ = audio_waveform(path, info, sample_rate_hz=sample_rate_hz)
        return frames, times, waveform, False
    channels = info.audio_channels or 2
    raw, audio = video_and_audio(path, [*video_args, "pipe:1"],
                                 ["-f", "s16le", "-acodec", "pcm_s16le", "-ac", str(channels)])
    frames = _frames_from_raw(raw, info, wanted, size)
    samples = np.frombuffer(audio, dtype="<i2")
    samples = samples[: len(samples) - len(samples) % channels].reshape(-1, channels)
    waveform = resample(to_mono_float(samples), int(info.audio_sample_rate_hz), sample_rate_hz)
    return frames, times, waveform.astype(np.float32), True
