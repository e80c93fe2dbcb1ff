"""Media I/O for every stage: probe, decode and encode audio and video (ffmpeg from the
``imageio-ffmpeg`` wheel). The bottom layer: stimuli, features and experiments all read and
write media through this module and nothing else.

Decoding for feature extraction
-------------------------------
ffmpeg comes from the ``imageio-ffmpeg`` wheel, so any container and codec it reads works.
:func:`probe_many` and :func:`decode_many` give several videos one ffmpeg process each, with
the values (and messages) that :func:`probe` and :func:`decode` give them one at a time.

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

Reading whole clips and encoding stimuli
----------------------------------------
Encoding: H.264 (libx264, yuv420p, CRF 18 by default, preset medium, the source's frame size
and frame rate) with AAC at 192 kbit/s in .mp4, or 16-bit PCM in .mov when asked. x264 and
ffmpeg's AAC encoder are deterministic for the same input and settings, and the muxer writes no
creation time, so the same stimulus gives the same file bytes (tests check this).

The audio of a stimulus goes to ffmpeg through a WAV in the system's temporary folder, so a
killed run leaves nothing in the stimulus folder (the video itself is written under a
temporary name and renamed: see :mod:`avmit_psych._atomic`).
"""
from __future__ import annotations

import functools
import math
import re
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from ._atomic import atomic_path

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
    return _parse_probe(path, proc.stderr)


#: Videos that :func:`probe_many` and :func:`decode_many` give one ffmpeg process. Starting
#: this ffmpeg (a 170 MB binary) costs ~10 ms of CPU, as much as probing a clip; extraction
#: starts one process per few videos, not two per video.
VIDEOS_PER_PROCESS = 4

_INPUT_HEADER = re.compile(r"Input #(\d+), ")


def probe_many(paths) -> list:
    """:func:`probe` of several videos with one ``ffmpeg -i a -i b ...``: per video its
    :class:`MediaInfo`, or the :class:`MediaError` that :func:`probe` raises for it.

    ffmpeg prints each input (an ``Input #k`` line, then indented lines) as soon as it has
    opened it, after any warnings about it, and stops at the first one it cannot open. Each
    video's part of the text is parsed as :func:`probe` parses its own; a video ffmpeg did not
    get to, or whose part does not parse, is probed alone, for :func:`probe`'s own answer.
    """
    paths = [Path(p) for p in paths]
    results: list = [None] * len(paths)
    todo = []
    for i, path in enumerate(paths):
        try:
            _check_file(path)
            todo.append(i)
        except MediaError as err:
            results[i] = err
    while len(todo) > 1:
        args = [ffmpeg_exe(), "-hide_banner"]
        for i in todo:
            args += ["-i", str(paths[i])]
        text = subprocess.run(args, capture_output=True, text=True, errors="replace").stderr
        parsed = 0
        for k, section in enumerate(_input_sections(text)[:len(todo)]):
            try:
                results[todo[k]] = _parse_probe(paths[todo[k]], section)
            except MediaError:
                break
            parsed += 1
        if parsed < len(todo):
            results[todo[parsed]] = _probe_or_error(paths[todo[parsed]])
        todo = todo[parsed + 1:]
    for i in todo:
        results[i] = _probe_or_error(paths[i])
    return results


def _probe_or_error(path):
    try:
        return probe(path)
    except MediaError as err:
        return err


def _input_sections(text: str) -> list[str]:
    """``ffmpeg -i a -i b ...``'s stderr cut per input, in order: the lines before an
    ``Input #k`` line (since the previous input's) and that input's indented lines."""
    sections, before, current = [], [], None
    for line in text.splitlines(keepends=True):
        header = _INPUT_HEADER.match(line)
        if header and int(header.group(1)) == len(sections):
            current = [*before, line]
            sections.append(current)
            before = []
        elif current is not None and line[:1].isspace():
            current.append(line)
        else:
            current = None
            before.append(line)
    return ["".join(lines) for lines in sections]


def _parse_probe(path: Path, text: str) -> MediaInfo:
    """:func:`probe`'s reading of ``ffmpeg -i``'s text about one input."""
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
                         ratio.denominator,
                         window=_resample_filter(ratio.numerator, ratio.denominator))


@functools.lru_cache(maxsize=16)
def _resample_filter(up: int, down: int) -> np.ndarray:
    """The FIR filter ``resample_poly(x, up, down)`` designs for itself (its default Kaiser
    window, beta 5.0), designed once per rate pair: 8,821 taps for 44.1 -> 16 kHz."""
    from scipy.signal import firwin
    max_rate = max(up, down)
    taps = firwin(2 * 10 * max_rate + 1, 1.0 / max_rate, window=("kaiser", 5.0))
    taps.flags.writeable = False  # resample_poly copies the filter it is given
    return taps


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


#: One decoding thread per video: extraction decodes several videos at once, and on short
#: clips ffmpeg's frame threads cost more CPU than they save (a 3 s 320 x 240 clip: 27 ms of
#: CPU with one thread, 31 ms with its default). The decoded frames are the same.
_DECODER_THREADS = ("-threads", "1")


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
    decoded = np.frombuffer(raw, dtype=np.uint8, count=n * frame_bytes).reshape(
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
    raw = _run([*_DECODER_THREADS, "-i", str(path), "-an", *video_args, "-"], "video")
    return _frames_from_raw(raw, info, wanted, size), times


def video_and_audio(path, video_args: list[str], audio_args: list[str], *,
                    input_args: tuple[str, ...] = ()) -> tuple[bytes, bytes]:
    """One ffmpeg pass over ``path``: video to stdout (``video_args`` end with its output,
    e.g. ``pipe:1``) and the first audio stream, formatted by ``audio_args``, to a second pipe
    drained in a thread. ``input_args`` go before ``-i`` (decoder options). Returns (video
    bytes, audio bytes)."""
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
            [ffmpeg_exe(), "-v", "error", "-nostdin", *input_args, "-i", str(path),
             *video_args, "-map", "0:a:0", *audio_args, f"pipe:{write_end}"],
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
    raw, audio = video_and_audio(path, [*video_args, "pipe:1"], _pcm_args(info),
                                 input_args=_DECODER_THREADS)
    return _decoded(raw, audio, info, times, wanted, size, sample_rate_hz)


def _pcm_args(info: MediaInfo) -> list[str]:
    return ["-f", "s16le", "-acodec", "pcm_s16le", "-ac", str(info.audio_channels or 2)]


def _decoded(raw: bytes, pcm: bytes, info: MediaInfo, times, wanted, size: int,
             sample_rate_hz: int):
    """:func:`decode`'s values from ffmpeg's bytes (rgb24 frames, s16le audio)."""
    channels = info.audio_channels or 2
    frames = _frames_from_raw(raw, info, wanted, size)
    samples = np.frombuffer(pcm, dtype="<i2")
    samples = samples[: len(samples) - len(samples) % channels].reshape(-1, channels)
    waveform = resample(to_mono_float(samples), int(info.audio_sample_rate_hz), sample_rate_hz)
    return frames, times, waveform.astype(np.float32), True


def decode_many(videos, interval_s: float, *, size: int = FRAME_SIZE,
                sample_rate_hz: int = SAMPLE_RATE_HZ) -> list:
    """:func:`decode` of several videos, ``[(path, MediaInfo), ...]``, in one ffmpeg process:
    per video decode's 4-tuple, or the :class:`MediaError` it raises.

    The process has every video as an input and, per video, its frames and its audio each to
    a pipe of its own: the bytes each video gets are the ones its own process would give.
    Videos without audio, and every video when the shared process fails, are decoded one by
    one, for :func:`decode`'s own values and messages.
    """
    results: list = [None] * len(videos)
    shared = []  # (index, plan) of the videos decoded together
    for i, (path, info) in enumerate(videos):
        try:
            plan = _frame_plan(info, interval_s)
        except MediaError as err:
            results[i] = err
            continue
        if info.has_audio:
            shared.append((i, plan))
    if len(shared) > 1:
        inputs, outputs = [], []
        for k, (i, (_, _, video_args)) in enumerate(shared):
            inputs += [*_DECODER_THREADS, "-i", str(videos[i][0])]
            outputs += [[f"{k}:v:0" if arg == "0:v:0" else arg for arg in video_args],
                        ["-map", f"{k}:a:0", *_pcm_args(videos[i][1])]]
        try:
            streams = _ffmpeg_to_pipes(inputs, outputs)
        except MediaError:
            streams = None  # one video's fault, or the process's: each is decoded alone below
        if streams is not None:
            for k, (i, (times, wanted, _)) in enumerate(shared):
                try:
                    results[i] = _decoded(streams[2 * k], streams[2 * k + 1], videos[i][1],
                                          times, wanted, size, sample_rate_hz)
                except MediaError as err:
                    results[i] = err
    for i, (path, info) in enumerate(videos):
        if results[i] is None:
            try:
                results[i] = decode(path, interval_s, info, size=size,
                                    sample_rate_hz=sample_rate_hz)
            except MediaError as err:
                results[i] = err
    return results


def _ffmpeg_to_pipes(input_args: list[str], outputs: list[list[str]]) -> list[bytes]:
    """Run ffmpeg on ``input_args`` with each of ``outputs`` (an output's options) written to
    a pipe of its own, all drained at once; returns each output's bytes.

    Raises
    ------
    MediaError
        ffmpeg failed (its last line in the message).
    """
    import os
    import selectors

    pipes = [os.pipe() for _ in outputs]
    args = [ffmpeg_exe(), "-v", "error", "-nostdin", *input_args]
    for (_, write_end), options in zip(pipes, outputs):
        args += [*options, f"pipe:{write_end}"]
    try:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE,
                                pass_fds=[write_end for _, write_end in pipes])
    except BaseException:
        for read_end, _ in pipes:
            os.close(read_end)
        raise
    finally:
        for _, write_end in pipes:
            os.close(write_end)
    chunks: dict[int, list[bytes]] = {read_end: [] for read_end, _ in pipes}
    err = proc.stderr.fileno()
    chunks[err] = []
    open_fds = len(chunks)
    try:
        with selectors.DefaultSelector() as selector:
            for fd in chunks:
                selector.register(fd, selectors.EVENT_READ)
            while open_fds:
                for key, _ in selector.select():
                    chunk = os.read(key.fd, 1 << 16)
                    if chunk:
                        chunks[key.fd].append(chunk)
                    else:
                        selector.unregister(key.fd)
                        open_fds -= 1
    finally:
        for read_end, _ in pipes:
            os.close(read_end)
        proc.stderr.close()
        if proc.poll() is None and open_fds:  # interrupted: do not leave ffmpeg behind
            proc.kill()
    if proc.wait() != 0:
        lines = b"".join(chunks[err]).decode(errors="replace").strip().splitlines()
        raise MediaError(f"cannot decode ({(lines[-1] if lines else 'ffmpeg failed')[-160:]})")
    return [b"".join(chunks[read_end]) for read_end, _ in pipes]


# --- whole clips and stimulus encoding ---

CONTAINERS = {"mp4": ("aac", [".mp4"]), "mov": ("pcm_s16le", [".mov"])}


@dataclass
class Clip:
    frames: np.ndarray          # (n_frames, height, width, 3) uint8 RGB
    fps: Fraction
    audio: np.ndarray           # (n_samples, n_channels) float64 in [-1, 1]
    sample_rate_hz: int
    has_audio: bool

    @property
    def duration_s(self) -> float:
        return len(self.frames) / float(self.fps)


def exact_fps(fps: float) -> Fraction:
    """The frame rate as a fraction (29.97 -> 30000/1001)."""
    return Fraction(fps).limit_denominator(1001)


def read_clip(path, *, default_sample_rate_hz: int = 44_100) -> Clip:
    """Every frame and the whole audio of a video (float audio at its own rate and channels).

    A video without audio gets silence at ``default_sample_rate_hz`` (stereo), flagged
    ``has_audio=False``.
    """
    info = probe(path)
    if info.width is None or not info.fps:
        raise MediaError("no video stream or unknown frame rate")
    video_args = ["-map", "0:v:0", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]
    channels = info.audio_channels or 2
    audio_bytes = b""
    if info.has_audio:
        raw, audio_bytes = video_and_audio(
            path, video_args, ["-f", "f32le", "-acodec", "pcm_f32le", "-ac", str(channels)])
    else:
        proc = subprocess.run([ffmpeg_exe(), "-v", "error", "-nostdin", "-i", str(path),
                               *video_args], capture_output=True)
        if proc.returncode != 0:
            lines = proc.stderr.decode(errors="replace").strip().splitlines()
            raise MediaError(
                f"cannot decode ({(lines[-1] if lines else 'ffmpeg failed')[-160:]})")
        raw = proc.stdout
    frame_bytes = info.width * info.height * 3
    n = len(raw) // frame_bytes
    if n == 0:
        raise MediaError("no decodable video frames")
    frames = np.frombuffer(raw[: n * frame_bytes], np.uint8).reshape(n, info.height, info.width, 3)
    fps = exact_fps(info.fps)
    if info.has_audio:
        samples = np.frombuffer(audio_bytes, dtype="<f4")
        audio = samples[: len(samples) - len(samples) % channels].reshape(-1, channels)
        rate = int(info.audio_sample_rate_hz)
        # the audio track is cut or padded to the video's duration, sample-exact
        n_samples = int(round(n / fps * rate))
        audio = _fit(audio.astype(np.float64), n_samples)
    else:
        rate = default_sample_rate_hz
        audio = np.zeros((int(round(n / fps * rate)), 2))
    return Clip(frames=frames.copy(), fps=fps, audio=audio, sample_rate_hz=rate,
                has_audio=info.has_audio)


def _fit(audio: np.ndarray, n_samples: int) -> np.ndarray:
    if len(audio) >= n_samples:
        return audio[:n_samples]
    out = np.zeros((n_samples, audio.shape[1]))
    out[:len(audio)] = audio
    return out


def encode(path, frames: np.ndarray, fps: Fraction, audio: np.ndarray, sample_rate_hz: int, *,
           container: str = "mp4", crf: int = 18, audio_bitrate: str = "192k",
           preset: str = "medium") -> Path:
    """Write one stimulus (via a temporary name and a rename)."""
    import soundfile

    path = Path(path)
    if container not in CONTAINERS:
        raise ValueError(f"container must be one of {', '.join(CONTAINERS)}")
    audio_codec = CONTAINERS[container][0]
    frames = np.ascontiguousarray(frames, dtype=np.uint8)
    n, h, w, _ = frames.shape
    pad = []
    if h % 2 or w % 2:  # yuv420p needs even sizes: repeat the last row/column
        pad = ["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2:0:0,format=yuv420p"]
    audio = np.clip(np.asarray(audio, dtype=np.float64), -1.0, 1.0)
    if audio.ndim == 1:
        audio = audio[:, None]
    with tempfile.TemporaryDirectory(prefix="avmit-audio-") as tmp:
        wav = Path(tmp) / "audio.wav"
        soundfile.write(str(wav), audio.astype(np.float32), int(sample_rate_hz), subtype="FLOAT")
        suffix = path.suffix
        with atomic_path(path, suffix=suffix) as tmp_out:
            args = [ffmpeg_exe(), "-y", "-v", "error", "-nostdin",
                    "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
                    "-framerate", f"{fps.numerator}/{fps.denominator}", "-i", "pipe:0",
                    "-i", str(wav), "-map", "0:v:0", "-map", "1:a:0", *pad,
                    "-c:v", "libx264", "-preset", preset, "-crf", str(int(crf)),
                    "-pix_fmt", "yuv420p", "-c:a", audio_codec]
            if audio_codec == "aac":
                # no low-pass: the noise (and any content) keeps its energy up to Nyquist
                args += ["-b:a", audio_bitrate, "-cutoff", str(int(sample_rate_hz) // 2)]
            args += ["-ar", str(int(sample_rate_hz)), "-fflags", "+bitexact",
                     "-flags:v", "+bitexact", "-flags:a", "+bitexact",
                     "-map_metadata", "-1", str(tmp_out)]
            proc = subprocess.run(args, input=frames.tobytes(), capture_output=True)
            if proc.returncode != 0:
                raise RuntimeError(f"ffmpeg could not encode {path.name}: "
                                   f"{proc.stderr.decode(errors='replace').strip()[-300:]}")
    return path


def aac_roundtrip(audio: np.ndarray, sample_rate_hz: int, *, audio_bitrate: str = "192k",
                  work_dir=None) -> np.ndarray:
    """The audio as it will come out of the stimulus file: encoded with the same AAC settings
    as :func:`encode` (in an .m4a, so the encoder delay is undone on decoding) and decoded."""
    import soundfile

    audio = np.clip(np.asarray(audio, dtype=np.float64), -1.0, 1.0)
    if audio.ndim == 1:
        audio = audio[:, None]
    with tempfile.TemporaryDirectory(dir=work_dir, prefix=".aac-") as tmp:
        wav, m4a = Path(tmp) / "in.wav", Path(tmp) / "out.m4a"
        soundfile.write(str(wav), audio.astype(np.float32), int(sample_rate_hz), subtype="FLOAT")
        subprocess.run([ffmpeg_exe(), "-y", "-v", "error", "-nostdin", "-i", str(wav),
                        "-c:a", "aac", "-b:a", audio_bitrate, "-cutoff",
                        str(int(sample_rate_hz) // 2), "-ar", str(int(sample_rate_hz)),
                        "-flags:a", "+bitexact", "-fflags", "+bitexact", str(m4a)], check=True,
                       capture_output=True)
        raw = subprocess.run([ffmpeg_exe(), "-v", "error", "-nostdin", "-i", str(m4a),
                              "-f", "f32le", "-acodec", "pcm_f32le", "-ac",
                              str(audio.shape[1]), "-"], check=True,
                             capture_output=True).stdout
    out = np.frombuffer(raw, dtype="<f4").reshape(-1, audio.shape[1]).astype(np.float64)
    return _fit(out, len(audio))
