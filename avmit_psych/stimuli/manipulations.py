"""Stimulus manipulations as pure functions on arrays (librosa style: units in the names).

Audio arrays are float (n_samples, n_channels) in [-1, 1] with their sample rate in Hz; frames
are uint8 (n_frames, height, width, 3) RGB. Nothing here reads or writes files. These are the
definitions; :mod:`.effects` wraps each as a moviepy effect (a function on a clip) that the
suite runner composes.

Definitions:

- ``av_offset_ms`` > 0: the audio lags the video. The audio is shifted by
  round(offset_ms * sample_rate / 1000) samples, digital silence fills the gap and the
  overhang is cut, so the duration is unchanged.
- SNR (``snr_db``): 20 log10(active RMS of the clip's own audio / RMS of the added noise).
  The active RMS is taken over the 20-ms windows (all channels) whose RMS is within 50 dB of
  the clip's loudest window, so pauses do not dilute the signal level. If signal + noise would
  peak above 0.99 of full scale, both are scaled by the same factor: the SNR is unchanged.
- Visual noise (``pixel_sd``): achromatic Gaussian noise with that standard deviation on the
  0-255 scale, added to all three channels of a pixel alike, then rounded and clipped to
  0-255; frame k's noise is drawn from a generator seeded with (seed, k).
"""
from __future__ import annotations

import numpy as np

ACTIVE_WINDOW_MS = 20.0
ACTIVE_RANGE_DB = 50.0
PEAK_LIMIT = 0.99


def _as_2d(audio: np.ndarray) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float64)
    return audio[:, None] if audio.ndim == 1 else audio


def av_offset(audio: np.ndarray, sample_rate_hz: int, offset_ms: float) -> np.ndarray:
    """Shift the audio against the video (+ = audio later); same length as the input."""
    audio = _as_2d(audio)
    shift = int(round(offset_ms * sample_rate_hz / 1000.0))
    out = np.zeros_like(audio)
    n = len(audio)
    if shift >= 0:
        if shift < n:
            out[shift:] = audio[:n - shift]
    else:
        if -shift < n:
            out[:n + shift] = audio[-shift:]
    return out


def active_rms(audio: np.ndarray, sample_rate_hz: int, *, window_ms: float = ACTIVE_WINDOW_MS,
               range_db: float = ACTIVE_RANGE_DB) -> float:
    """RMS over the windows within ``range_db`` of the loudest window (see the module doc)."""
    audio = _as_2d(audio)
    win = max(1, int(round(window_ms * sample_rate_hz / 1000.0)))
    n = len(audio) // win
    if n == 0:
        return float(np.sqrt(np.mean(audio ** 2))) if audio.size else 0.0
    power = np.mean(audio[:n * win].reshape(n, win, -1) ** 2, axis=(1, 2))
    if power.max() <= 0:
        return 0.0
    active = power >= power.max() * 10 ** (-range_db / 10)
    return float(np.sqrt(power[active].mean()))


def noise(n_samples: int, n_channels: int, color: str, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS white or pink (1/f power) Gaussian noise, independent per channel."""
    white = rng.standard_normal((n_samples, n_channels))
    if color == "white":
        out = white
    elif color == "pink":
        spectrum = np.fft.rfft(white, axis=0)
        f = np.arange(spectrum.shape[0], dtype=np.float64)
        f[0] = 1.0
        out = np.fft.irfft(spectrum / np.sqrt(f)[:, None], n=n_samples, axis=0)
    else:
        raise ValueError(f"noise color must be 'white' or 'pink', got {color!r}")
    return out / np.sqrt(np.mean(out ** 2))


def audio_noise(audio: np.ndarray, sample_rate_hz: int, snr_db: float, *, color: str = "white",
                seed: int = 0) -> tuple[np.ndarray, dict]:
    """Add noise at ``snr_db`` against the clip's active RMS.

    Returns (mixed audio, info) where info has ``signal_rms``, ``noise_rms`` (before any peak
    scaling), ``gain`` (the common scaling applied to keep peaks below full scale).
    """
    audio = _as_2d(audio)
    s_rms = active_rms(audio, sample_rate_hz)
    if s_rms == 0:
        raise ValueError("the clip is digitally silent: an SNR is undefined")
    n_rms = s_rms / 10 ** (snr_db / 20.0)
    rng = np.random.default_rng(int(seed))
    mixed = audio + noise(len(audio), audio.shape[1], color, rng) * n_rms
    peak = np.abs(mixed).max()
    gain = min(1.0, PEAK_LIMIT / peak) if peak > 0 else 1.0
    return mixed * gain, {"signal_rms": s_rms, "noise_rms": n_rms, "gain": gain}


def unit_noise(n_samples: int, n_channels: int, color: str, seed: int) -> np.ndarray:
    """The unit-RMS noise :func:`audio_noise` adds for ``seed`` (regenerated for measuring)."""
    return noise(n_samples, n_channels, color, np.random.default_rng(int(seed)))


def measured_snr_db(output: np.ndarray, clean: np.ndarray, sample_rate_hz: int, *,
                    added_noise: np.ndarray | None = None) -> float:
    """The SNR of ``output`` against the ``clean`` audio it was made from.

    The clean part is a * clean, with a from a least-squares fit of the output on the clean
    signal — together with the noise that was added (``added_noise``, e.g. from
    :func:`unit_noise`) when it is known, so that the chance correlation of noise and signal
    does not leak into the signal estimate. Everything else in the output counts as noise
    (including any coding error).
    """
    out, s = _as_2d(output), _as_2d(clean)
    n = min(len(out), len(s))
    out, s = out[:n], s[:n]
    if added_noise is None:
        g = float(np.sum(out * s) / np.sum(s * s))
    else:
        z = _as_2d(added_noise)[:n]
        design = np.stack([s.ravel(), z.ravel()], axis=1)
        g = float(np.linalg.lstsq(design, out.ravel(), rcond=None)[0][0])
    residual = out - g * s
    return 20 * np.log10(active_rms(g * s, sample_rate_hz) /
                         np.sqrt(np.mean(residual ** 2)))


def visual_noise(frames: np.ndarray, pixel_sd: float, *, seed: int = 0) -> np.ndarray:
    """Achromatic Gaussian pixel noise (SD on the 0-255 scale), rounded and clipped."""
    frames = np.asarray(frames)
    if pixel_sd == 0:
        return frames.copy()
    out = np.empty_like(frames)
    for k, frame in enumerate(frames):
        out[k] = visual_noise_frame(frame, pixel_sd, seed=seed, index=k)
    return out


def visual_noise_frame(frame: np.ndarray, pixel_sd: float, *, seed: int = 0,
                       index: int = 0) -> np.ndarray:
    """Frame ``index`` of :func:`visual_noise` (its noise drawn with the seed (seed, index))."""
    frame = np.asarray(frame)
    if pixel_sd == 0:
        return frame.copy()
    rng = np.random.default_rng([int(seed), int(index)])
    n = rng.standard_normal(frame.shape[:2])[..., None] * pixel_sd
    return np.clip(np.rint(frame.astype(np.float64) + n), 0, 255).astype(np.uint8)


def blur(frames: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian blur of every frame (sigma in pixels)."""
    import cv2
    if sigma_px <= 0:
        return np.asarray(frames).copy()
    return np.stack([cv2.GaussianBlur(f, (0, 0), sigmaX=sigma_px) for f in frames])


def contrast(frames: np.ndarray, factor: float) -> np.ndarray:
    """Scale contrast about the clip's mean level (factor 1 = unchanged, 0 = flat grey)."""
    frames = np.asarray(frames, dtype=np.float64)
    mean = frames.mean()
    return np.clip(np.rint(mean + (frames - mean) * factor), 0, 255).astype(np.uint8)


def mean_grey(frames: np.ndarray) -> np.ndarray:
    """``audio_only``: every frame replaced by one constant grey at the clip's mean level."""
    frames = np.asarray(frames)
    level = int(round(float(frames.mean())))
    return np.full_like(frames, level)


def silence(audio: np.ndarray) -> np.ndarray:
    """``visual_only``: digital silence of the same length."""
    return np.zeros_like(_as_2d(audio))


def fit_length(audio: np.ndarray, n_samples: int) -> np.ndarray:
    """Cut or zero-pad (at the end) to ``n_samples``."""
    audio = _as_2d(audio)
    if len(audio) >= n_samples:
        return audio[:n_samples]
    out = np.zeros((n_samples, audio.shape[1]))
    out[:len(audio)] = audio
    return out


def match_channels(audio: np.ndarray, n_channels: int) -> np.ndarray:
    audio = _as_2d(audio)
    if audio.shape[1] == n_channels:
        return audio
    mono = audio.mean(axis=1, keepdims=True)
    return np.repeat(mono, n_channels, axis=1)


def assign_donors(labels, *, seed: int = 0) -> np.ndarray:
    """A seeded derangement by class: ``donor[i]`` is a video of another class, and every video
    donates exactly once, so every donor class is used as often as it has videos (equally often
    for a balanced test set).

    Raises
    ------
    ValueError
        If one class holds more than half of the videos (no such derangement exists).
    """
    labels = np.asarray(labels)
    n = len(labels)
    counts = np.unique(labels, return_counts=True)[1]
    if n < 2 or counts.max() * 2 > n:
        raise ValueError("semantic swaps need no class to hold more than half of the videos")
    rng = np.random.default_rng([int(seed), 41])
    perm = rng.permutation(n)
    for _ in range(100 * n):
        bad = np.flatnonzero(labels[perm] == labels)
        if not len(bad):
            return perm
        i = bad[rng.integers(len(bad))]
        candidates = np.flatnonzero((labels[perm] != labels[i]) & (labels != labels[perm[i]]))
        j = candidates[rng.integers(len(candidates))]
        perm[i], perm[j] = perm[j], perm[i]
    raise RuntimeError("could not find a derangement")  # pragma: no cover
