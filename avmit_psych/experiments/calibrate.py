"""The audio-video bench check: how late the sound is relative to the picture, measured.

The screen shows a white square N times (default 50) and the same frame starts a click; a
photodiode on the square and the headphone output go to two inputs of an audio interface (or
any recorder) and are recorded to one stereo WAV. The recorder's own latency is the same for
both inputs, so it cancels: what is measured is the audio-minus-video offset at the
participant's eyes and ears::

    python -m avmit_psych.experiments calibrate run            # show flashes, play clicks
    python -m avmit_psych.experiments calibrate analyse REC.wav --out calibration/ \\
        --write-config experiments/human_vs_dnn.yaml
    python -m avmit_psych.experiments calibrate --loopback     # cable from output to input
    python -m avmit_psych.experiments calibrate synthetic rec.wav   # try it without hardware

or from Python: ``analyse_recording("REC.wav")``, ``find_onsets(signal, rate_hz)``,
``pair_onsets(video_s, audio_s)``, ``synthetic_recording(offsets_ms, rate_hz=48000)``.
The wiring, the time it takes and the acceptable values are in ``experiments/README.md``.

Method
------
Events (:func:`find_events`)
    Each channel is made one-signed: ``|x - median(x)|``, so an inverted photodiode, a
    bipolar click and the undershoot of an AC-coupled input all count as deviations from the
    baseline. The noise SD is ``1.4826 * MAD``. An event is detected where the rectified signal
    first reaches ``threshold_fraction`` (default 0.5) of the robust peak height (the median of
    the maxima of ``min_gap_s`` blocks that reach 10 noise SDs; at least 6 noise SDs);
    crossings less than ``min_gap_s`` (default 0.2 s) after an event's start belong to that
    event (a click's later half-cycles, a photodiode's undershoot).
Onset (sub-sample)
    From the detection crossing the onset is walked back to where the event first reaches
    ``onset_fraction`` (default 0.1) of its own peak (and at least 5 noise SDs), bridging dips
    shorter than 0.5 ms (a click's zero crossings), and interpolated linearly between the two
    samples around that crossing. An edge rising linearly over R ms is thus timed 0.1 R late;
    the synthetic photodiode (exponential, 10-90 % rise 1 ms) is timed 0.05 ms late and the
    synthetic 3 kHz click 0.005 ms late, so the offsets come out ~0.05 ms short (within the
    0.1 ms the tests ask for). A slow LCD (rise 5 ms) is timed ~0.5 ms late: lower
    ``onset_fraction`` where the noise allows.
Pairing (:func:`pair_onsets`)
    The typical offset is the median over flashes of the offset to the nearest click within
    ``max_offset_ms`` (default 250 ms); then pairs are taken greedily by closeness to it, each
    event used once, only within ``max_offset_ms``. The flash interval must exceed twice
    ``max_offset_ms`` for the pairing to be unambiguous (1 s against 0.25 s by default).
Offsets
    audio minus video, in ms (positive: the sound lags the picture). Mean, SD (ddof 1), min,
    max, median, and the drift (least-squares slope over time, ms per minute). A stable setup
    has SD < 1 ms; its mean is the latency to compensate (``--write-config`` stores it,
    rounded to 0.1 ms, as ``audio: {latency_ms: X}``).

Bad recordings
    A missing click (or flash) is a note naming the unpaired event's time, and the others are
    measured; more than ``max_unpaired`` (default 5) unpaired events, or no pair at all, is a
    :class:`~avmit_psych.dataset.schema.DatasetError`. Swapped channels are an error, not a
    silent fix: the channel called photodiode having the shorter pulses (median width under
    half the audio channel's) means the wiring differs from the sheet, and the error says so
    and gives the fix (``--video-channel 1 --audio-channel 0``; ``--no-channel-check`` for a
    sound longer than the flash). A mono, empty or unreadable WAV, or a channel without any
    pulse, is an error naming the file.

Presentation (``calibrate_run.py``, imported only by ``calibrate run`` and ``--loopback``)
    ``run_flashes(n_flashes=, interval_s=, config=)`` shows the flashes and starts a click on
    each flash's frame; ``loopback(n_clicks=, interval_s=)`` plays clicks through a cable into
    an input and returns a :class:`Calibration` (e.g. :func:`analyse_loopback` of the recording
    against the scheduled times on the recording's clock), which the command prints (and
    writes with ``--loopback-out``). Without that module both say so in one line.

Tested against (tests/test_calibrate.py): synthetic stereo recordings with known sub-sample
offsets (12.337 ms +- 0.3 ms jitter, and negative ones) plus noise at 44.1 and 48 kHz, as
float arrays and as 16-, 24-bit and float WAV files: every offset within 0.1 ms, the counts
exact; the statistics against numpy on the recovered offsets.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import re
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..dataset.schema import DatasetError, OutputBatch

# -- the documented defaults (one place) -----------------------------------------------------
N_FLASHES = 50
INTERVAL_S = 1.0
THRESHOLD_FRACTION = 0.5
ONSET_FRACTION = 0.1
MIN_GAP_S = 0.2
MAX_OFFSET_MS = 250.0
MAX_UNPAIRED = 5
#: a setup whose offsets vary less than this (SD, ms) can be compensated by a constant
STABLE_SD_MS = 1.0
#: a block maximum counts towards the robust peak from this many noise SDs
PEAK_MIN_SNR = 10.0
#: the detection threshold is never below this many noise SDs
DETECT_MIN_SDS = 6.0
#: the onset level is never below this many noise SDs
ONSET_MIN_SDS = 5.0
#: how far back from the detection crossing an onset may lie, and the dips it bridges
LOOKBACK_S, BRIDGE_S = 0.02, 0.0005
#: a photodiode pulse shorter than this fraction of the click's means swapped channels
SWAP_WIDTH_RATIO = 0.5

OFFSET_COLUMNS = ["flash", "video_s", "audio_s", "offset_ms"]
OFFSETS_FILE, SUMMARY_FILE, REPORT_FILE, HISTOGRAM_FILE = (
    "offsets.csv", "summary.json", "report.txt", "histogram.png")


# --------------------------------------------------------------------------------------------
# Reading and writing recordings
# --------------------------------------------------------------------------------------------
def read_recording(path) -> tuple[np.ndarray, int]:
    """A WAV file as ``(samples, rate_hz)``: float32 of shape (frames, channels), full scale
    +-1 (int16 / 32768, int24 and int32 / 2**31, uint8 centred; float as stored). float32
    holds 24-bit samples exactly and keeps a 10-minute stereo recording at 48 kHz to 230 MB.

    Raises :class:`DatasetError` naming the file when it is missing, not a WAV, mono or
    empty."""
    from scipy.io import wavfile
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", wavfile.WavFileWarning)
            rate_hz, data = wavfile.read(path)
    except FileNotFoundError:
        raise DatasetError("recording not found", path=path,
                           fix="give the stereo WAV recorded during 'calibrate run'")
    except IsADirectoryError:
        raise DatasetError("is a folder, not a recording", path=path, fix="name the WAV file")
    except (ValueError, EOFError, OSError) as err:
        raise DatasetError(f"not a readable WAV file ({err})", path=path,
                           fix="export the recording as a PCM or float WAV")
    return _as_recording(data, rate_hz, path)


def _as_recording(data, rate_hz, path) -> tuple[np.ndarray, int]:
    data = np.asarray(data)
    if data.dtype == np.uint8:
        x = (data.astype(np.float32) - np.float32(128.0)) / np.float32(128.0)
    elif np.issubdtype(data.dtype, np.integer):
        x = data.astype(np.float32)
        x *= np.float32(1.0 / 2 ** (8 * data.dtype.itemsize - 1))
    elif np.issubdtype(data.dtype, np.floating):
        x = data.astype(np.float32, copy=False)
    else:
        raise DatasetError(f"samples of type {data.dtype} are not audio", path=path,
                           fix="give PCM or float samples")
    if x.ndim == 1 or (x.ndim == 2 and x.shape[1] == 1):
        raise DatasetError("has 1 channel; the bench check needs 2 (the photodiode and the "
                           "audio output, one on each input)", path=path,
                           fix="record both inputs to one stereo WAV")
    if x.ndim != 2:
        raise DatasetError(f"expected samples of shape (frames, channels), got {x.shape}",
                           path=path, fix="give a stereo recording")
    if x.shape[0] == 0:
        raise DatasetError("holds no samples (an empty recording)", path=path,
                           fix="record the flashes and clicks again")
    if not (isinstance(rate_hz, (int, float, np.number)) and rate_hz > 0):
        raise DatasetError(f"sample rate must be above 0 Hz, got {rate_hz!r}", path=path)
    if not np.isfinite(x).all():
        raise DatasetError("holds NaN or infinite samples", path=path,
                           fix="export the recording again as PCM")
    return x, int(rate_hz) if float(rate_hz).is_integer() else float(rate_hz)


def write_recording(path, samples, rate_hz: int, *, bits: int | str = 16) -> Path:
    """Write ``samples`` (frames x channels, full scale +-1) as a WAV: ``bits`` 16, 24 or 32
    (integer PCM, clipped) or ``"float"`` (32-bit float). Atomic (temporary name, rename)."""
    import wave

    from scipy.io import wavfile

    from .._atomic import atomic_path
    x = np.asarray(samples, dtype=np.float64)
    path = Path(path)
    with atomic_path(path, suffix=".wav") as tmp:
        if bits == "float":
            wavfile.write(tmp, int(rate_hz), x.astype(np.float32))
        elif bits in (16, 32):
            full = 2 ** (bits - 1)
            ints = np.clip(np.round(x * full), -full, full - 1).astype(f"<i{bits // 8}")
            wavfile.write(tmp, int(rate_hz), ints)
        elif bits == 24:
            full = 2 ** 23
            ints = np.clip(np.round(x * full), -full, full - 1).astype("<i4")
            frames = ints.reshape(len(ints), -1)
            raw = frames.view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
            with wave.open(str(tmp), "wb") as fh:
                fh.setnchannels(frames.shape[1])
                fh.setsampwidth(3)
                fh.setframerate(int(rate_hz))
                fh.writeframes(raw)
        else:
            raise ValueError(f"bits must be 16, 24, 32 or 'float', got {bits!r}")
    return path


# --------------------------------------------------------------------------------------------
# Synthetic recordings (the tests and the README figure)
# --------------------------------------------------------------------------------------------
def synthetic_recording(offsets_ms, *, rate_hz: int = 48000, interval_s: float = INTERVAL_S,
                        first_s: float = 0.5, flash_s: float = 2 / 60, rise_ms: float = 1.0,
                        click_hz: float = 3000.0, click_decay_ms: float = 0.5,
                        flash_level: float = 0.5, click_level: float = 0.5,
                        noise_rms: float = 0.002, seed: int = 0) -> tuple[np.ndarray, int]:
    """A stereo bench recording with known offsets: ``(samples, rate_hz)``, float32
    (frames, 2); channel 0 the photodiode, channel 1 the audio output.

    Flash k (0-based) starts at ``first_s + k * interval_s`` s: a plateau of ``flash_s`` (two
    60-Hz frames) of height ``flash_level`` that rises and falls exponentially with a 10-90 %
    time of ``rise_ms``. Its click starts ``offsets_ms[k]`` ms later (negative: earlier; NaN:
    no click): the impulse response of a resonant band-pass, ``click_level * sin(2 pi click_hz
    t) * exp(-t / click_decay_ms)``, mostly over within 1 ms. Both are evaluated at the exact
    (sub-sample) times; Gaussian noise of ``noise_rms`` (full scale) is added to both
    channels (seeded). The recording lasts until ``interval_s`` after the last flash.
    """
    offsets_ms = np.atleast_1d(np.asarray(offsets_ms, dtype=np.float64))
    flashes_s = first_s + interval_s * np.arange(offsets_ms.size)
    clicks_s = flashes_s + offsets_ms / 1000.0
    if np.nanmin(clicks_s, initial=np.inf) < 0:
        raise ValueError("a click would start before the recording: raise first_s")
    n = int(math.ceil((flashes_s[-1] + interval_s) * rate_hz)) if offsets_ms.size else \
        int(math.ceil(first_s * rate_hz))
    out = np.zeros((n, 2), dtype=np.float64)
    tau_s = rise_ms / 1000.0 / math.log(9.0)  # 10-90 % of 1 - exp(-t/tau) is tau ln 9
    decay_s = click_decay_ms / 1000.0
    for t0 in flashes_s:
        i0 = int(math.floor(t0 * rate_hz))
        i1 = min(n, int(math.ceil((t0 + flash_s + 12 * tau_s) * rate_hz)) + 1)
        t = np.arange(i0, i1) / rate_hz - t0
        on = 1.0 - np.exp(-np.clip(t, 0.0, None) / tau_s)
        top = 1.0 - math.exp(-flash_s / tau_s)
        off = top * np.exp(-np.clip(t - flash_s, 0.0, None) / tau_s)
        out[i0:i1, 0] += flash_level * np.where(t < 0, 0.0, np.where(t < flash_s, on, off))
    for t1 in clicks_s[np.isfinite(clicks_s)]:
        i0 = int(math.floor(t1 * rate_hz))
        i1 = min(n, int(math.ceil((t1 + 12 * decay_s) * rate_hz)) + 1)
        t = np.arange(i0, i1) / rate_hz - t1
        wave = np.sin(2 * np.pi * click_hz * t) * np.exp(-t / decay_s)
        out[i0:i1, 1] += click_level * np.where(t < 0, 0.0, wave)
    if noise_rms:
        out += np.random.default_rng(seed).normal(0.0, noise_rms, out.shape)
    return out.astype(np.float32), rate_hz


# --------------------------------------------------------------------------------------------
# Events on one channel
# --------------------------------------------------------------------------------------------
@dataclass
class Events:
    """The events of one channel (what :func:`find_events` returns as a table, plus the
    levels it used)."""

    onset_s: np.ndarray
    width_s: np.ndarray
    peak: np.ndarray
    baseline: float
    noise_sd: float
    threshold: float
    #: start times of events already under way at the start of the signal (not timed)
    cut_s: list = field(default_factory=list)

    def table(self) -> pd.DataFrame:
        return pd.DataFrame({"onset_s": self.onset_s, "width_s": self.width_s,
                             "peak": self.peak})


def detect_events(signal, rate_hz: float, *, threshold: float | None = None,
                  threshold_fraction: float = THRESHOLD_FRACTION,
                  onset_fraction: float = ONSET_FRACTION,
                  min_gap_s: float = MIN_GAP_S) -> Events:
    """The events of one channel with the levels used: see :func:`find_events`."""
    x = np.asarray(signal)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    if x.ndim != 1:
        raise ValueError(f"signal must be 1-D (one channel), got shape {x.shape}")
    if not rate_hz > 0:
        raise ValueError(f"rate_hz must be above 0, got {rate_hz!r}")
    if not 0 < threshold_fraction <= 1 or not 0 < onset_fraction <= threshold_fraction:
        raise ValueError("need 0 < onset_fraction <= threshold_fraction <= 1")
    n = x.size
    nothing = np.empty(0)
    if n == 0:
        return Events(nothing, nothing, nothing, 0.0, 0.0, math.nan)
    baseline = float(np.median(x))
    rect = np.abs(x - baseline)
    noise_sd = 1.4826 * float(np.median(rect))
    gap = max(1, int(round(min_gap_s * rate_hz)))

    if threshold is None:
        padded = np.zeros(-(-n // gap) * gap)
        padded[:n] = rect
        blocks = padded.reshape(-1, gap).max(axis=1)
        strong = blocks[(blocks >= PEAK_MIN_SNR * noise_sd) & (blocks > 0)]
        if strong.size == 0:
            return Events(nothing, nothing, nothing, baseline, noise_sd, math.nan)
        level = max(threshold_fraction * float(np.median(strong)), DETECT_MIN_SDS * noise_sd)
    else:
        level = float(threshold)
        if not level > 0:
            raise ValueError(f"threshold must be above 0, got {threshold!r}")

    above = rect >= level
    if not above.any():
        return Events(nothing, nothing, nothing, baseline, noise_sd, level)
    step = np.diff(above.astype(np.int8))
    starts = np.flatnonzero(step == 1) + 1
    ends = np.flatnonzero(step == -1) + 1
    if above[0]:
        starts = np.r_[0, starts]
    if above[-1]:
        ends = np.r_[ends, n]
    # runs closer than min_gap_s to an event's start belong to that event
    first = np.zeros(starts.size, dtype=bool)
    last_start = -np.inf
    for i, s in enumerate(starts):
        if s - last_start >= gap:
            first[i] = True
            last_start = s
    group = np.cumsum(first) - 1
    g_start = starts[first]
    g_end = np.zeros(g_start.size, dtype=np.int64)
    np.maximum.at(g_end, group, ends)

    lookback, bridge = max(1, int(round(LOOKBACK_S * rate_hz))), int(BRIDGE_S * rate_hz)
    onsets, widths, peaks, cut = [], [], [], []
    prev_end = 0
    for s, e in zip(g_start, g_end):
        peak = float(rect[s:e].max())
        if s == 0:  # no rising edge to time
            cut.append(0.0)
            prev_end = e
            continue
        low = min(max(onset_fraction * peak, ONSET_MIN_SDS * noise_sd), level)
        w0 = max(prev_end, s - lookback)
        idx = np.flatnonzero(rect[w0:s + 1] >= low) + w0
        breaks = np.flatnonzero(np.diff(idx) > bridge + 1)
        j = int(idx[breaks[-1] + 1] if breaks.size else idx[0])
        if j == 0:
            onset = 0.0
        else:
            lo, hi = float(rect[j - 1]), float(rect[j])
            frac = (low - lo) / (hi - lo) if hi > lo else 1.0
            onset = j - 1 + min(max(frac, 0.0), 1.0)
        onsets.append(onset / rate_hz)
        widths.append((e - s) / rate_hz)
        peaks.append(peak)
        prev_end = e
    return Events(np.asarray(onsets), np.asarray(widths), np.asarray(peaks), baseline,
                  noise_sd, level, cut)


def find_events(signal, rate_hz: float, *, threshold: float | None = None,
                threshold_fraction: float = THRESHOLD_FRACTION,
                onset_fraction: float = ONSET_FRACTION,
                min_gap_s: float = MIN_GAP_S) -> pd.DataFrame:
    """The pulses of one channel: a table with ``onset_s`` (sub-sample onset, s), ``width_s``
    (time above the detection threshold, s) and ``peak`` (height above the baseline, in the
    signal's units), one row per event in time order.

    Parameters
    ----------
    signal : 1-D array
        One channel (photodiode or audio), any units; either polarity.
    rate_hz : float
        Sample rate in Hz.
    threshold : float, optional
        Detection level as a deviation from the baseline (the median), in the signal's units.
        Default: ``threshold_fraction`` of the robust peak height, at least 6 noise SDs.
    threshold_fraction : float
        Default 0.5.
    onset_fraction : float
        The onset is where an event first reaches this fraction of its own peak (at least 5
        noise SDs), interpolated linearly between samples. Default 0.1.
    min_gap_s : float
        Events start at least this far apart (s); closer crossings belong to the event before.
        Default 0.2 s.

    Returns
    -------
    pandas.DataFrame
        Empty when nothing reaches 10 noise SDs. An event already under way at the first
        sample has no edge to time and is left out (:func:`detect_events` lists it).

    See Also
    --------
    find_onsets, analyse_recording

    Examples
    --------
    >>> x, rate = synthetic_recording([10.0, 10.0], rate_hz=48000)
    >>> find_events(x[:, 0], rate)["onset_s"].round(4).tolist()
    [0.5, 1.5]
    """
    return detect_events(signal, rate_hz, threshold=threshold,
                         threshold_fraction=threshold_fraction, onset_fraction=onset_fraction,
                         min_gap_s=min_gap_s).table()


def find_onsets(signal, rate_hz: float, *, threshold: float | None = None,
                threshold_fraction: float = THRESHOLD_FRACTION,
                onset_fraction: float = ONSET_FRACTION,
                min_gap_s: float = MIN_GAP_S) -> np.ndarray:
    """Onset times (s, sub-sample) of the pulses of one channel: :func:`find_events`'s
    ``onset_s``. Tested against synthetic pulses at known times (within 0.1 ms)."""
    return detect_events(signal, rate_hz, threshold=threshold,
                         threshold_fraction=threshold_fraction, onset_fraction=onset_fraction,
                         min_gap_s=min_gap_s).onset_s


# --------------------------------------------------------------------------------------------
# Pairing
# --------------------------------------------------------------------------------------------
@dataclass
class Pairing:
    """Flashes paired with clicks (:func:`pair_onsets`), pairs in time order."""

    video_index: np.ndarray
    audio_index: np.ndarray
    video_s: np.ndarray
    audio_s: np.ndarray
    #: audio minus video, ms
    offset_ms: np.ndarray
    unpaired_video_s: np.ndarray
    unpaired_audio_s: np.ndarray


def pair_onsets(video_s, audio_s, *, max_offset_ms: float = MAX_OFFSET_MS) -> Pairing:
    """Pair every flash with its click: each event used once, only within ``max_offset_ms``.

    The typical offset is the median, over flashes, of the offset (audio minus video) to the
    nearest click within the window; candidate pairs are then taken greedily in order of
    their distance from it (ties: earlier flash first). Events left over are returned as
    unpaired (times in s). Tested on onsets with known missing and extra events.

    Examples
    --------
    >>> p = pair_onsets([1.0, 2.0, 3.0], [1.012, 3.013, 4.5])
    >>> p.offset_ms.round(1).tolist(), p.unpaired_video_s.tolist(), p.unpaired_audio_s.tolist()
    ([12.0, 13.0], [2.0], [4.5])
    """
    v = np.asarray(video_s, dtype=np.float64).ravel()
    a = np.asarray(audio_s, dtype=np.float64).ravel()
    w = max_offset_ms / 1000.0
    a_order = np.argsort(a, kind="stable")
    a_sorted = a[a_order]
    lo = np.searchsorted(a_sorted, v - w, side="left")
    hi = np.searchsorted(a_sorted, v + w, side="right")
    cand_v, cand_a = [], []
    for i in range(v.size):
        for k in range(lo[i], hi[i]):
            cand_v.append(i)
            cand_a.append(int(a_order[k]))
    cand_v, cand_a = np.asarray(cand_v, dtype=np.int64), np.asarray(cand_a, dtype=np.int64)
    used_v = np.zeros(v.size, dtype=bool)
    used_a = np.zeros(a.size, dtype=bool)
    if cand_v.size:
        off = a[cand_a] - v[cand_v]
        nearest = {}
        for i, d in zip(cand_v, off):
            if i not in nearest or abs(d) < abs(nearest[i]):
                nearest[int(i)] = d
        typical = float(np.median(list(nearest.values())))
        taken = np.zeros(cand_v.size, dtype=bool)
        for k in np.lexsort((cand_a, cand_v, np.abs(off - typical))):
            i, j = cand_v[k], cand_a[k]
            if not used_v[i] and not used_a[j]:
                used_v[i] = used_a[j] = taken[k] = True
        pv, pa = cand_v[taken], cand_a[taken]
    else:
        pv = pa = np.empty(0, dtype=np.int64)
    order = np.argsort(v[pv], kind="stable")
    pv, pa = pv[order], pa[order]
    return Pairing(video_index=pv, audio_index=pa, video_s=v[pv], audio_s=a[pa],
                   offset_ms=(a[pa] - v[pv]) * 1000.0,
                   unpaired_video_s=np.sort(v[~used_v]), unpaired_audio_s=np.sort(a[~used_a]))


# --------------------------------------------------------------------------------------------
# A whole recording
# --------------------------------------------------------------------------------------------
@dataclass
class Calibration:
    """What :func:`analyse_recording` measured. ``offsets`` has :data:`OFFSET_COLUMNS`
    (``flash`` numbers the detected flashes from 1, so a flash without a click is a gap)."""

    offsets: pd.DataFrame
    n_flashes: int
    n_clicks: int
    unpaired_flashes_s: list
    unpaired_clicks_s: list
    notes: list
    rate_hz: float
    duration_s: float
    recording: str | None = None
    video_channel: int = 0
    audio_channel: int = 1
    flash_width_ms: float = math.nan
    click_width_ms: float = math.nan
    settings: dict = field(default_factory=dict)
    #: what the clicks are timed against: "flash" (photodiode) or "scheduled" (loopback)
    reference: str = "flash"

    @property
    def offset_ms(self) -> np.ndarray:
        return self.offsets["offset_ms"].to_numpy(dtype=np.float64)

    @property
    def n_pairs(self) -> int:
        return len(self.offsets)

    @property
    def mean_ms(self) -> float:
        return float(np.mean(self.offset_ms))

    @property
    def sd_ms(self) -> float:
        return float(np.std(self.offset_ms, ddof=1)) if self.n_pairs > 1 else math.nan

    @property
    def min_ms(self) -> float:
        return float(np.min(self.offset_ms))

    @property
    def max_ms(self) -> float:
        return float(np.max(self.offset_ms))

    @property
    def median_ms(self) -> float:
        return float(np.median(self.offset_ms))

    @property
    def drift_ms_per_min(self) -> float:
        """Least-squares slope of the offsets over the flash times (ms per minute): a
        recorder or sound card clock that runs at its own rate shows here."""
        t = self.offsets["video_s"].to_numpy(dtype=np.float64)
        if self.n_pairs < 3 or np.ptp(t) == 0:
            return math.nan
        return float(np.polyfit(t / 60.0, self.offset_ms, 1)[0])

    @property
    def latency_ms(self) -> float:
        """The mean offset rounded to 0.1 ms: what ``--write-config`` stores."""
        return round(self.mean_ms, 1) + 0.0

    @property
    def stable(self) -> bool:
        return bool(self.sd_ms < STABLE_SD_MS)

    def summary(self) -> dict:
        """Everything but the per-flash table, JSON-ready (NaN as None)."""
        def num(x, nd=4):
            return None if x is None or not math.isfinite(x) else round(float(x), nd)
        return {
            "recording": self.recording, "reference": self.reference,
            "rate_hz": self.rate_hz, "duration_s": num(self.duration_s, 6),
            "video_channel": self.video_channel, "audio_channel": self.audio_channel,
            "n_flashes": self.n_flashes, "n_clicks": self.n_clicks, "n_pairs": self.n_pairs,
            "mean_ms": num(self.mean_ms), "sd_ms": num(self.sd_ms), "min_ms": num(self.min_ms),
            "max_ms": num(self.max_ms), "median_ms": num(self.median_ms),
            "drift_ms_per_min": num(self.drift_ms_per_min),
            "latency_ms": self.latency_ms, "stable": self.stable,
            "stable_sd_ms": STABLE_SD_MS,
            "flash_width_ms": num(self.flash_width_ms, 3),
            "click_width_ms": num(self.click_width_ms, 3),
            "unpaired_flashes_s": [round(t, 6) for t in self.unpaired_flashes_s],
            "unpaired_clicks_s": [round(t, 6) for t in self.unpaired_clicks_s],
            "notes": list(self.notes), "settings": dict(self.settings),
        }

    def report(self) -> str:
        """The summary in words, as the CLI prints it."""
        what = "flashes" if self.reference == "flash" else "scheduled clicks"
        lines = [f"{self.n_flashes} {what}, {self.n_clicks} clicks, {self.n_pairs} pairs "
                 f"({self.recording or '<data>'}, {self.rate_hz:g} Hz, {self.duration_s:.1f} s)",
                 f"audio - video offset: mean {self.mean_ms:.2f} ms, SD {self.sd_ms:.2f} ms, "
                 f"min {self.min_ms:.2f} ms, max {self.max_ms:.2f} ms, n {self.n_pairs}"]
        if math.isfinite(self.drift_ms_per_min):
            lines.append(f"median {self.median_ms:.2f} ms; drift "
                         f"{self.drift_ms_per_min:+.3f} ms per minute")
        if self.stable:
            lines.append(f"stable (SD < {STABLE_SD_MS:g} ms): the latency to compensate is "
                         f"{self.latency_ms:.1f} ms (audio: latency_ms)")
        else:
            lines.append(f"NOT stable (SD {self.sd_ms:.2f} ms, needs < {STABLE_SD_MS:g} ms): "
                         "a constant cannot compensate it; see experiments/README.md")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def _load(recording, what: str = "recording") -> tuple[np.ndarray, float, str | None]:
    if isinstance(recording, (str, Path)):
        x, rate = read_recording(recording)
        return x, rate, str(recording)
    if isinstance(recording, tuple) and len(recording) == 2:
        x, rate = _as_recording(recording[0], recording[1], None)
        return x, rate, None
    raise TypeError(f"{what} must be a WAV path or (samples, rate_hz), got "
                    f"{type(recording).__name__}")


def _check_settings(where, *, threshold_fraction, onset_fraction, min_gap_s, max_offset_ms,
                    max_unpaired) -> None:
    """Detection settings in range, or one :class:`DatasetError` naming the setting."""
    checks = [
        ("threshold_fraction", threshold_fraction, 0 < threshold_fraction <= 1,
         "above 0 and at most 1"),
        ("onset_fraction", onset_fraction, 0 < onset_fraction <= threshold_fraction,
         f"above 0 and at most threshold_fraction ({threshold_fraction:g})"),
        ("min_gap_s", min_gap_s, min_gap_s > 0, "above 0"),
        ("max_offset_ms", max_offset_ms, max_offset_ms > 0, "above 0"),
        ("max_unpaired", max_unpaired, max_unpaired >= 0, "0 or more")]
    for key, value, ok, expected in checks:
        if not ok:
            raise DatasetError(f"{key} must be {expected}, got {value!r}", path=where,
                               fix=f"give --{key.replace('_', '-')} in range")


def _times(ts, limit: int = 5) -> str:
    shown = ", ".join(f"{t:.3f} s" for t in ts[:limit])
    return shown + (f" and {len(ts) - limit} more" if len(ts) > limit else "")


def analyse_recording(recording, *, video_channel: int = 0, audio_channel: int = 1,
                      threshold_fraction: float = THRESHOLD_FRACTION,
                      onset_fraction: float = ONSET_FRACTION, min_gap_s: float = MIN_GAP_S,
                      max_offset_ms: float = MAX_OFFSET_MS, max_unpaired: int = MAX_UNPAIRED,
                      expected_flashes: int | None = None,
                      check_channels: bool = True) -> Calibration:
    """Audio-minus-video offsets of a bench recording, one per flash.

    Parameters
    ----------
    recording : path or (samples, rate_hz)
        A WAV file (16/24/32-bit PCM or float) or an array (frames, channels) and its rate.
    video_channel, audio_channel : int
        The photodiode's and the audio output's channel (0-based). Default 0 (left) and 1.
    threshold_fraction, onset_fraction, min_gap_s
        Event detection, as in :func:`find_events`.
    max_offset_ms : float
        A click pairs with a flash only within this many ms (either side). Default 250.
    max_unpaired : int
        More unpaired events (flashes and clicks together) than this is an error. Default 5.
    expected_flashes : int, optional
        The number of flashes shown; a different count of detected flashes is a note.
    check_channels : bool
        Refuse a recording whose photodiode channel has the shorter pulses (swapped inputs).

    Returns
    -------
    Calibration
        ``offsets`` (flash, video_s, audio_s, offset_ms), ``mean_ms``, ``sd_ms``, ``min_ms``,
        ``max_ms``, ``n_pairs``, ``unpaired_flashes_s``, ``unpaired_clicks_s``, ``notes``.

    Raises
    ------
    DatasetError
        One line naming the file: unreadable, mono or empty, a channel without pulses,
        swapped channels, no pairs, or more than ``max_unpaired`` unpaired events.

    Notes
    -----
    Tested against synthetic recordings with known offsets (:func:`synthetic_recording`,
    44.1 and 48 kHz, with noise): every offset within 0.1 ms, the counts exact.
    """
    x, rate_hz, name = _load(recording)
    where = name
    _check_settings(where, threshold_fraction=threshold_fraction,
                    onset_fraction=onset_fraction, min_gap_s=min_gap_s,
                    max_offset_ms=max_offset_ms, max_unpaired=max_unpaired)
    n_channels = x.shape[1]
    for key, ch in (("video_channel", video_channel), ("audio_channel", audio_channel)):
        if not (isinstance(ch, (int, np.integer)) and 0 <= ch < n_channels):
            raise DatasetError(f"{key} {ch!r} does not exist: the recording has "
                               f"{n_channels} channels (0 to {n_channels - 1})", path=where,
                               fix="give --video-channel and --audio-channel from 0")
    if video_channel == audio_channel:
        raise DatasetError(f"the photodiode and the audio are both channel {video_channel}",
                           path=where, fix="give two different channels")
    settings = {"threshold_fraction": threshold_fraction, "onset_fraction": onset_fraction,
                "min_gap_s": min_gap_s, "max_offset_ms": max_offset_ms,
                "max_unpaired": max_unpaired}
    kw = dict(threshold_fraction=threshold_fraction, onset_fraction=onset_fraction,
              min_gap_s=min_gap_s)
    video = detect_events(x[:, video_channel], rate_hz, **kw)
    audio = detect_events(x[:, audio_channel], rate_hz, **kw)
    for events, ch, what, fix in (
            (video, video_channel, "flashes (photodiode)",
             "check that the photodiode sits on the white square and its cable goes to this "
             "input, or give --video-channel"),
            (audio, audio_channel, "clicks (audio output)",
             "check the cable from the headphone output to this input and the volume, or "
             "give --audio-channel")):
        if events.onset_s.size == 0:
            raise DatasetError(f"no {what} on channel {ch}: nothing rises 10 noise SDs above "
                               "the baseline", path=where, column=f"channel {ch}", fix=fix)
    flash_w = float(np.median(video.width_s)) * 1000.0
    click_w = float(np.median(audio.width_s)) * 1000.0
    if check_channels and flash_w < SWAP_WIDTH_RATIO * click_w:
        raise DatasetError(
            f"the channels look swapped: channel {video_channel} (photodiode) has pulses of "
            f"{flash_w:.1f} ms and channel {audio_channel} (audio) of {click_w:.1f} ms, but a "
            "flash lasts as long as the white square and a click ~1 ms", path=where,
            fix=f"give --video-channel {audio_channel} --audio-channel {video_channel} "
                "(--no-channel-check if your sound is longer than your flash)")

    pairing = pair_onsets(video.onset_s, audio.onset_s, max_offset_ms=max_offset_ms)
    return _calibration(pairing, video, audio, rate_hz=rate_hz, n_frames=x.shape[0],
                        name=name, where=where, settings=settings, max_unpaired=max_unpaired,
                        max_offset_ms=max_offset_ms, expected=expected_flashes,
                        video_channel=video_channel, audio_channel=audio_channel,
                        flash_w=flash_w, click_w=click_w, reference="flash")


def analyse_loopback(recording, scheduled_s, *, channel: int = 0,
                     threshold_fraction: float = THRESHOLD_FRACTION,
                     onset_fraction: float = ONSET_FRACTION, min_gap_s: float = MIN_GAP_S,
                     max_offset_ms: float = MAX_OFFSET_MS,
                     max_unpaired: int = MAX_UNPAIRED) -> Calibration:
    """The audio path alone: clicks recorded through a cable from the output to the input,
    against the times they were scheduled (``scheduled_s``, s on the recording's clock).

    ``recording`` is a WAV path or ``(samples, rate_hz)``, mono allowed; the clicks are timed
    on ``channel``. The result is a :class:`Calibration` whose "video" times are the scheduled
    times (``reference`` "scheduled"), so offsets are the output-plus-input latency.
    """
    if isinstance(recording, tuple) and np.asarray(recording[0]).ndim == 1:
        recording = (np.asarray(recording[0])[:, None].repeat(2, axis=1), recording[1])
    x, rate_hz, name = _load(recording)
    _check_settings(name, threshold_fraction=threshold_fraction,
                    onset_fraction=onset_fraction, min_gap_s=min_gap_s,
                    max_offset_ms=max_offset_ms, max_unpaired=max_unpaired)
    if not 0 <= channel < x.shape[1]:
        raise DatasetError(f"channel {channel} does not exist ({x.shape[1]} channels)",
                           path=name)
    audio = detect_events(x[:, channel], rate_hz, threshold_fraction=threshold_fraction,
                          onset_fraction=onset_fraction, min_gap_s=min_gap_s)
    if audio.onset_s.size == 0:
        raise DatasetError(f"no clicks on channel {channel}: nothing rises 10 noise SDs above "
                           "the baseline", path=name, column=f"channel {channel}",
                           fix="check the cable from the output to the input and the levels")
    ref = np.sort(np.asarray(scheduled_s, dtype=np.float64).ravel())
    video = Events(ref, np.full(ref.size, np.nan), np.full(ref.size, np.nan), 0.0, 0.0,
                   math.nan)
    pairing = pair_onsets(ref, audio.onset_s, max_offset_ms=max_offset_ms)
    settings = {"threshold_fraction": threshold_fraction, "onset_fraction": onset_fraction,
                "min_gap_s": min_gap_s, "max_offset_ms": max_offset_ms,
                "max_unpaired": max_unpaired}
    return _calibration(pairing, video, audio, rate_hz=rate_hz, n_frames=x.shape[0],
                        name=name, where=name, settings=settings, max_unpaired=max_unpaired,
                        max_offset_ms=max_offset_ms, expected=None, video_channel=-1,
                        audio_channel=channel, flash_w=math.nan,
                        click_w=float(np.median(audio.width_s)) * 1000.0,
                        reference="scheduled")


def _calibration(pairing: Pairing, video: Events, audio: Events, *, rate_hz, n_frames, name,
                 where, settings, max_unpaired, max_offset_ms, expected, video_channel,
                 audio_channel, flash_w, click_w, reference) -> Calibration:
    flash, flashes = (("flash", "flashes") if reference == "flash"
                      else ("scheduled click", "scheduled clicks"))
    notes = []
    for events, ch in ((video, video_channel), (audio, audio_channel)):
        if events.cut_s:
            notes.append(f"an event already under way at the start of channel {ch} was left "
                         "out (no edge to time)")
    number = {int(i): k + 1 for k, i in enumerate(np.argsort(video.onset_s, kind="stable"))}
    unpaired_v = [float(t) for t in pairing.unpaired_video_s]
    unpaired_a = [float(t) for t in pairing.unpaired_audio_s]
    if pairing.offset_ms.size == 0:
        raise DatasetError(
            f"found {video.onset_s.size} {flashes} and {audio.onset_s.size} clicks but no "
            f"click within +-{max_offset_ms:g} ms of any {flash}", path=where,
            fix="check the wiring; for a latency above that give a larger --max-offset-ms "
                "(below half the flash interval)")
    v_sorted = np.sort(video.onset_s)
    for t in unpaired_v:
        k = int(np.searchsorted(v_sorted, t)) + 1
        notes.append(f"{flash} {k} at {t:.3f} s has no click within +-{max_offset_ms:g} ms "
                     "(left out)")
    for t in unpaired_a:
        notes.append(f"click at {t:.3f} s has no {flash} within +-{max_offset_ms:g} ms "
                     "(left out)")
    if len(unpaired_v) + len(unpaired_a) > max_unpaired:
        parts = []
        if unpaired_v:
            parts.append(f"{len(unpaired_v)} {flashes} without a click ({_times(unpaired_v)})")
        if unpaired_a:
            parts.append(f"{len(unpaired_a)} clicks without a {flash} ({_times(unpaired_a)})")
        raise DatasetError(
            f"{' and '.join(parts)}: more than {max_unpaired} unpaired events "
            f"({video.onset_s.size} {flashes}, {audio.onset_s.size} clicks, "
            f"{pairing.offset_ms.size} pairs)", path=where,
            fix="check that the photodiode sees every flash and the input is not clipped or "
                "too quiet; --max-unpaired N accepts more")
    if expected is not None and video.onset_s.size != expected:
        notes.append(f"{video.onset_s.size} flashes detected, {expected} shown")
    offsets = pd.DataFrame({
        "flash": [number[int(i)] for i in pairing.video_index],
        "video_s": pairing.video_s, "audio_s": pairing.audio_s,
        "offset_ms": pairing.offset_ms})
    cal = Calibration(offsets=offsets, n_flashes=int(video.onset_s.size),
                      n_clicks=int(audio.onset_s.size), unpaired_flashes_s=unpaired_v,
                      unpaired_clicks_s=unpaired_a, notes=notes, rate_hz=rate_hz,
                      duration_s=n_frames / rate_hz, recording=name,
                      video_channel=video_channel, audio_channel=audio_channel,
                      flash_width_ms=flash_w, click_width_ms=click_w, settings=settings,
                      reference=reference)
    if cal.n_pairs < 2:
        notes.append("only one pair: no SD")
    elif not cal.stable:
        notes.append(f"SD {cal.sd_ms:.2f} ms is not below {STABLE_SD_MS:g} ms: the offset "
                     "varies from flash to flash (dropped frames, audio not scheduled on the "
                     "flip, a busy machine); fix that before compensating the mean")
    return cal


# --------------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------------
def plot_calibration(cal: Calibration):
    """A figure: the histogram of the offsets with the mean (solid) and +-1 SD (dashed,
    shaded), and the offsets flash by flash (to see drift and outliers)."""
    from matplotlib.figure import Figure
    off = cal.offset_ms
    fig = Figure(figsize=(8.0, 3.4), dpi=100, layout="constrained")
    ax, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    lo, hi = math.floor(off.min() * 10) / 10 - 0.1, math.ceil(off.max() * 10) / 10 + 0.1
    width = max(0.1, (hi - lo) / 40)
    bins = np.arange(lo, hi + width, width)
    ax.hist(off, bins=bins, color="0.55", edgecolor="white")
    mean, sd = cal.mean_ms, cal.sd_ms
    ax.axvline(mean, color="C3", lw=2, label=f"mean {mean:.2f} ms")
    if math.isfinite(sd):
        ax.axvspan(mean - sd, mean + sd, color="C3", alpha=0.12)
        for x in (mean - sd, mean + sd):
            ax.axvline(x, color="C3", lw=1, ls="--")
        ax.plot([], [], color="C3", lw=1, ls="--", label=f"\u00b11 SD ({sd:.2f} ms)")
    ax.set_xlabel("audio \u2212 video offset (ms)")
    ax.set_ylabel(f"{'flashes' if cal.reference == 'flash' else 'clicks'}")
    ax.set_title(f"n = {cal.n_pairs}, SD {sd:.2f} ms, min {cal.min_ms:.2f}, "
                 f"max {cal.max_ms:.2f} ms",
                 fontsize=10)
    ax.legend(fontsize=8, loc="upper left", frameon=False)
    ax2.plot(cal.offsets["flash"], off, "o", ms=3, color="0.3")
    ax2.axhline(mean, color="C3", lw=1)
    ax2.set_xlabel("flash")
    ax2.set_ylabel("offset (ms)")
    ax2.set_title("flash by flash", fontsize=10)
    return fig


def write_calibration(cal: Calibration, out_dir) -> list[Path]:
    """Write ``offsets.csv``, ``summary.json``, ``report.txt`` and ``histogram.png`` to
    ``out_dir``, all together or none (an :class:`OutputBatch`). Returns the paths."""
    out_dir = Path(out_dir)
    names = [OFFSETS_FILE, SUMMARY_FILE, REPORT_FILE, HISTOGRAM_FILE]
    fig = plot_calibration(cal)
    with OutputBatch(out_dir) as batch:
        cal.offsets[OFFSET_COLUMNS].to_csv(batch.path(OFFSETS_FILE), index=False,
                                           float_format="%.6f", lineterminator="\n")
        batch.path(SUMMARY_FILE).write_text(json.dumps(cal.summary(), indent=2) + "\n",
                                            encoding="utf-8")
        batch.path(REPORT_FILE).write_text(cal.report() + "\n", encoding="utf-8")
        fig.savefig(batch.path(HISTOGRAM_FILE), format="png")
    return [out_dir / n for n in names]


_LATENCY_LINE = re.compile(r"^(?P<indent>[ \t]+)latency_ms[ \t]*:[ \t]*(?P<value>[^#\n]*?)"
                           r"(?P<comment>[ \t]*#.*)?$")
_AUDIO_LINE = re.compile(r"^audio[ \t]*:[ \t]*(#.*)?$")


def config_with_latency(text: str, latency_ms: float, *, comment: str = "",
                        path=None) -> tuple[str, bool]:
    """The experiment config ``text`` with ``audio: {latency_ms: X}`` set to ``latency_ms``
    (rounded to 0.1 ms), everything else kept: ``(new_text, comments_kept)``.

    The line is edited (or added under ``audio:``, or an ``audio:`` block appended) so the
    file's comments survive; where the layout does not allow that (e.g. ``audio: {...}`` in
    flow style) the YAML is written out again and the comments are lost (``comments_kept``
    False). Either way the result is checked by parsing it back: the old mapping plus the new
    value, nothing else changed.
    """
    import yaml
    value = round(float(latency_ms), 1) + 0.0
    try:
        old = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as err:
        raise DatasetError(f"not valid YAML ({getattr(err, 'problem', err)})", path=path,
                           fix="check the indentation and the ':' after every key")
    old = {} if old is None else old
    if not isinstance(old, dict):
        raise DatasetError("an experiment config is a mapping of keys to values", path=path,
                           fix="give the experiment's YAML config (e.g. "
                               "experiments/human_vs_dnn.yaml)")
    audio = old.get("audio")
    if audio is not None and not isinstance(audio, dict):
        raise DatasetError(f"'audio' must be a mapping, got {audio!r}", path=path,
                           column="audio", fix="e.g. audio: {latency_ms: 0.0}")
    expected = dict(old)
    expected["audio"] = {**(audio or {}), "latency_ms": value}
    note = f"  # {comment}" if comment else ""

    def textual() -> str | None:
        lines = text.splitlines(keepends=True)
        newline = "\r\n" if text.endswith("\r\n") else "\n"
        starts = [i for i, ln in enumerate(lines) if _AUDIO_LINE.match(ln.rstrip("\r\n"))]
        if not starts:
            if "audio" in old:
                return None
            tail = "" if not text or text.endswith(("\n", "\r")) else newline
            return (text + tail + f"audio:{newline}  latency_ms: {value}{note}{newline}")
        if len(starts) != 1:
            return None
        a = starts[0]
        block_end, child_indent = len(lines), None
        for i in range(a + 1, len(lines)):
            s = lines[i].rstrip("\r\n")
            if not s.strip() or s.lstrip().startswith("#"):
                continue
            if not s[0].isspace():
                block_end = i
                break
            if child_indent is None:
                child_indent = s[:len(s) - len(s.lstrip())]
        for i in range(a + 1, block_end):
            m = _LATENCY_LINE.match(lines[i].rstrip("\r\n"))
            if m and m.group("indent") == child_indent:
                end = lines[i][len(lines[i].rstrip("\r\n")):]
                lines[i] = f"{m.group('indent')}latency_ms: {value}{note}{end or newline}"
                return "".join(lines)
        indent = child_indent or "  "
        eol = lines[a][len(lines[a].rstrip("\r\n")):] or newline
        if not lines[a].endswith(("\n", "\r")):
            lines[a] += newline
        lines.insert(a + 1, f"{indent}latency_ms: {value}{note}{eol}")
        return "".join(lines)

    new = textual()
    if new is not None:
        try:
            if yaml.safe_load(new) == expected:
                return new, True
        except yaml.YAMLError:
            pass
    return yaml.safe_dump(expected, sort_keys=False, allow_unicode=True), False


def write_latency_config(config, latency_ms: float, *, comment: str = "") -> bool:
    """Set ``audio: {latency_ms: X}`` in the experiment config YAML file ``config``
    (:func:`config_with_latency`), written atomically. Returns whether the comments were
    kept. A missing or unreadable file is a :class:`DatasetError`; nothing is written."""
    from .._atomic import atomic_path
    new, kept = _config_update(config, latency_ms, comment)
    with atomic_path(Path(config)) as tmp:
        tmp.write_text(new, encoding="utf-8")
    return kept


def _config_update(config, latency_ms, comment) -> tuple[str, bool]:
    path = Path(config)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DatasetError("experiment config not found", path=path,
                           fix="give an existing YAML config, e.g. "
                               "experiments/human_vs_dnn.yaml")
    except IsADirectoryError:
        raise DatasetError("is a folder, not an experiment config", path=path,
                           fix="name the YAML file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise DatasetError("not UTF-8 text", path=path, fix="save the config as UTF-8")
    return config_with_latency(text, latency_ms, comment=comment, path=path)


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------
HELP = """The audio-video bench check (wiring and acceptable values: experiments/README.md).

  calibrate run                   show N white squares, each starting a click; record the
                                  photodiode (input 1, left) and the headphone output (input
                                  2, right) to one stereo WAV meanwhile
  calibrate analyse REC.wav       find every flash and click onset, pair them, report the
                                  audio - video offsets (mean, SD, min, max, histogram);
                                  --write-config CONFIG.yaml stores the mean as latency_ms
  calibrate --loopback            cable from the output to an input: the audio path alone
  calibrate synthetic OUT.wav     a synthetic recording with known offsets, to try analyse

A stable setup has SD < 1 ms; its mean is the latency to compensate.
"""


def add_parser(sub) -> None:
    from .._cli import Formatter
    p = sub.add_parser("calibrate", formatter_class=Formatter, description=HELP,
                       help="bench check: audio-video offsets from a photodiode and the "
                            "audio output recorded together")
    p.add_argument("--loopback", action="store_true",
                   help="record the output through a cable to the input: the audio path alone "
                        "(needs an input device)")
    p.add_argument("--clicks", type=int, default=20, dest="loopback_clicks", metavar="N",
                   help="clicks played with --loopback")
    p.add_argument("--loopback-out", type=Path, default=None, metavar="DIR",
                   help="where --loopback writes its outputs (none: print only)")
    p.set_defaults(handler=_calibrate_command, calibrate_parser=p)
    cmds = p.add_subparsers(dest="calibrate_command", metavar="STEP")

    r = cmds.add_parser("run", formatter_class=Formatter,
                        help="show flashes and play clicks (record them meanwhile)",
                        description="Show a white square N times, each frame starting a click. "
                                    "Put the photodiode on the square (top left) and record it "
                                    "and the headphone output to one stereo WAV meanwhile.")
    r.add_argument("--flashes", type=int, default=N_FLASHES, metavar="N")
    r.add_argument("--interval-s", type=float, default=INTERVAL_S, metavar="S",
                   help="time between flashes (more than twice --max-offset-ms of analyse)")
    r.add_argument("--config", type=Path, default=None, metavar="CONFIG.yaml",
                   help="the experiment config whose window and audio settings to use")
    r.set_defaults(handler=_run_command)

    a = cmds.add_parser("analyse", aliases=["analyze"], formatter_class=Formatter,
                        help="offsets from a stereo recording of the photodiode and the audio",
                        description="Find every flash and click onset in REC.wav, pair them and "
                                    "report the audio - video offsets. Writes offsets.csv, "
                                    "summary.json, report.txt and histogram.png to --out "
                                    "(all or none).")
    a.add_argument("recording", type=Path, metavar="REC.wav")
    a.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="output folder (none: REC_calibration beside the recording)")
    a.add_argument("--video-channel", type=int, default=0, metavar="C",
                   help="the photodiode's channel (0 = left)")
    a.add_argument("--audio-channel", type=int, default=1, metavar="C",
                   help="the audio output's channel (1 = right)")
    a.add_argument("--write-config", type=Path, default=None, metavar="CONFIG.yaml",
                   help="store the mean (0.1 ms) as audio: {latency_ms: X} in this config")
    a.add_argument("--flashes", type=int, default=None, metavar="N",
                   help="flashes shown: a different count detected is noted")
    g = a.add_argument_group("detection")
    g.add_argument("--max-offset-ms", type=float, default=MAX_OFFSET_MS, metavar="MS",
                   help="a click pairs with a flash only within this many ms")
    g.add_argument("--max-unpaired", type=int, default=MAX_UNPAIRED, metavar="N",
                   help="more unpaired flashes and clicks than this is an error")
    g.add_argument("--threshold-fraction", type=float, default=THRESHOLD_FRACTION, metavar="F",
                   help="detection level, fraction of the robust peak")
    g.add_argument("--onset-fraction", type=float, default=ONSET_FRACTION, metavar="F",
                   help="onset level, fraction of each event's peak")
    g.add_argument("--min-gap-s", type=float, default=MIN_GAP_S, metavar="S",
                   help="events start at least this far apart")
    g.add_argument("--no-channel-check", action="store_true",
                   help="do not refuse a photodiode channel with shorter pulses than the audio")
    a.set_defaults(handler=_analyse_command)

    s = cmds.add_parser("synthetic", formatter_class=Formatter,
                        help="write a synthetic bench recording with known offsets",
                        description="A stereo WAV like a bench recording (photodiode left, "
                                    "clicks right) with offsets latency +- jitter (normal), "
                                    "to try 'calibrate analyse' without hardware.")
    s.add_argument("out", type=Path, metavar="OUT.wav")
    s.add_argument("--flashes", type=int, default=N_FLASHES, metavar="N")
    s.add_argument("--latency-ms", type=float, default=12.0)
    s.add_argument("--jitter-ms", type=float, default=0.3, help="SD of the offsets")
    s.add_argument("--rate-hz", type=int, default=48000)
    s.add_argument("--interval-s", type=float, default=INTERVAL_S, metavar="S")
    s.add_argument("--noise-rms", type=float, default=0.002, help="full scale")
    s.add_argument("--bits", default="24", choices=["16", "24", "32", "float"])
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(handler=_synthetic_command)


PRESENTATION_FILE = "avmit_psych/experiments/calibrate_run.py"


def _presentation(name: str):
    """``calibrate_run.<name>`` (``run_flashes`` or ``loopback``), imported only when asked
    for: it opens a window and a sound device."""
    import importlib
    module = f"{__package__}.calibrate_run"
    later = ("show flashes and play clicks with any setup, record them, then run: python -m "
             "avmit_psych.experiments calibrate analyse REC.wav")
    try:
        presentation = importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name == module:
            raise DatasetError("not available yet (the presentation side of calibrate: "
                               "run_flashes, loopback)", path=PRESENTATION_FILE, fix=later)
        raise DatasetError(f"calibrate needs a package that is not installed ({err.name})",
                           path=PRESENTATION_FILE,
                           fix="install the experiment requirements (PsychoPy)")
    except ImportError as err:
        raise DatasetError(f"could not be loaded ({err})", path=PRESENTATION_FILE, fix=later)
    fn = getattr(presentation, name, None)
    if fn is None:
        raise DatasetError(f"has no {name}() yet", path=PRESENTATION_FILE, fix=later)
    return fn


def _calibrate_command(args) -> int:
    if args.calibrate_command is not None and args.loopback:
        args.calibrate_parser.error("--loopback takes no STEP (give one or the other)")
    if not args.loopback:
        args.calibrate_parser.error("give a STEP (run, analyse, synthetic) or --loopback")
    loopback = _presentation("loopback")
    result = loopback(n_clicks=args.loopback_clicks, interval_s=INTERVAL_S)
    if not isinstance(result, Calibration):   # (recording, rate) from calibrate_run
        clicks = _presentation("scheduled_click_times")(args.loopback_clicks, INTERVAL_S)
        result = analyse_loopback(result, clicks, channel=1)
    if isinstance(result, Calibration):
        print(result.report())
        if args.loopback_out is not None:
            write_calibration(result, args.loopback_out)
            print(f"wrote {', '.join([OFFSETS_FILE, SUMMARY_FILE, REPORT_FILE, HISTOGRAM_FILE])}"
                  f" to {args.loopback_out}/")
    return 0


def _run_command(args) -> int:
    if args.flashes < 1:
        raise DatasetError(f"--flashes must be at least 1, got {args.flashes}")
    run_flashes = _presentation("run_flashes")
    run_flashes(n_flashes=args.flashes, interval_s=args.interval_s, config=args.config)
    print("now: python -m avmit_psych.experiments calibrate analyse REC.wav "
          f"--flashes {args.flashes}")
    return 0


def _analyse_command(args) -> int:
    from .._cli import EXIT_FAILED
    rec = args.recording
    out = args.out if args.out is not None else rec.with_name(f"{rec.stem}_calibration")
    cal = analyse_recording(rec, video_channel=args.video_channel,
                            audio_channel=args.audio_channel,
                            threshold_fraction=args.threshold_fraction,
                            onset_fraction=args.onset_fraction, min_gap_s=args.min_gap_s,
                            max_offset_ms=args.max_offset_ms, max_unpaired=args.max_unpaired,
                            expected_flashes=args.flashes,
                            check_channels=not args.no_channel_check)
    config_text = None
    if args.write_config is not None:  # read and checked before anything is written
        stamp = _dt.date.today().isoformat()
        comment = (f"audio - video, calibrate analyse {rec.name} {stamp}: "
                   f"SD {cal.sd_ms:.2f} ms, n {cal.n_pairs}")
        config_text, kept = _config_update(args.write_config, cal.latency_ms, comment)
    print(cal.report())
    write_calibration(cal, out)
    print(f"wrote {OFFSETS_FILE}, {SUMMARY_FILE}, {REPORT_FILE}, {HISTOGRAM_FILE} to {out}/")
    if config_text is not None:
        if not cal.stable:  # a mean that varies this much is no latency to compensate
            print(f"error: {args.write_config}: latency_ms not written: SD {cal.sd_ms:.2f} ms "
                  f"is not below {STABLE_SD_MS:g} ms. Fix: make the setup stable (see "
                  "experiments/README.md) and measure again", file=sys.stderr)
            return EXIT_FAILED
        from .._atomic import atomic_path
        with atomic_path(args.write_config) as tmp:
            tmp.write_text(config_text, encoding="utf-8")
        print(f"wrote audio: latency_ms: {cal.latency_ms:.1f} to {args.write_config}"
              + ("" if kept else " (written out again: its comments were not kept)"))
    return 0


def _synthetic_command(args) -> int:
    for key, ok, expected in (("flashes", args.flashes >= 1, "at least 1"),
                              ("rate-hz", args.rate_hz >= 8000, "at least 8000"),
                              ("interval-s", args.interval_s >= 0.1, "at least 0.1"),
                              ("jitter-ms", args.jitter_ms >= 0, "0 or more"),
                              ("noise-rms", args.noise_rms >= 0, "0 or more"),
                              ("latency-ms", abs(args.latency_ms) < 500, "within +-500")):
        if not ok:
            raise DatasetError(f"--{key} must be {expected}, got "
                               f"{getattr(args, key.replace('-', '_'))!r}")
    rng = np.random.default_rng(args.seed)
    offsets = args.latency_ms + args.jitter_ms * rng.standard_normal(args.flashes)
    x, rate = synthetic_recording(offsets, rate_hz=args.rate_hz, interval_s=args.interval_s,
                                  first_s=max(0.5, 0.1 - offsets.min() / 1000.0),
                                  noise_rms=args.noise_rms, seed=args.seed)
    write_recording(args.out, x, rate, bits=args.bits if args.bits == "float"
                    else int(args.bits))
    print(f"wrote {args.out}: {args.flashes} flashes, offsets {args.latency_ms:g} +- "
          f"{args.jitter_ms:g} ms (sample mean {offsets.mean():.3f} ms, SD "
          f"{offsets.std(ddof=1) if args.flashes > 1 else 0:.3f} ms), {rate} Hz, "
          f"{len(x) / rate:.1f} s")
    return 0
