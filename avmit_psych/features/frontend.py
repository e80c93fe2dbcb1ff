"""The audio front end of VGGish and YAMNet as the AVMIT paper describes it (librosa style).

A 16 kHz mono waveform in [-1, 1] -> STFT magnitude (25 ms periodic Hann window, 10 ms hop, FFT
length the next power of two: 512 samples) -> 64 mel bands between 125 and 7500 Hz (HTK mel
scale, triangular filters, as VGGish's ``mel_features``) -> log(mel + 0.01) -> 96-frame
(960 ms) examples every 960 ms (VGGish) or 480 ms (YAMNet). Units are in the names: ``_hz``,
``_s`` seconds, frames of 10 ms. No padding: a 3.0 s clip gives 298 STFT frames, so 3 VGGish
examples and 5 YAMNet examples.
"""
from __future__ import annotations

import numpy as np

SAMPLE_RATE_HZ = 16_000
WINDOW_S = 0.025
HOP_S = 0.010
N_MELS = 64
FMIN_HZ = 125.0
FMAX_HZ = 7500.0
LOG_OFFSET = 0.01
EXAMPLE_WINDOW_S = 0.96
EXAMPLE_HOP_S = {"vggish": 0.96, "yamnet": 0.48}


def hz_to_mel(frequency_hz):
    """HTK mel scale: 1127 ln(1 + f / 700)."""
    return 1127.0 * np.log1p(np.asarray(frequency_hz, dtype=np.float64) / 700.0)


def periodic_hann(window_length: int) -> np.ndarray:
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(window_length) / window_length)


def stft_magnitude(waveform: np.ndarray, *, sample_rate_hz: int = SAMPLE_RATE_HZ,
                   window_s: float = WINDOW_S, hop_s: float = HOP_S) -> np.ndarray:
    """|STFT| frames (n_frames, fft_length // 2 + 1) of a mono waveform, no padding."""
    window = int(round(window_s * sample_rate_hz))
    hop = int(round(hop_s * sample_rate_hz))
    fft_length = 1 << (window - 1).bit_length()
    x = np.asarray(waveform, dtype=np.float64)
    n_frames = 1 + (len(x) - window) // hop if len(x) >= window else 0
    if n_frames <= 0:
        return np.zeros((0, fft_length // 2 + 1))
    idx = np.arange(window)[None, :] + hop * np.arange(n_frames)[:, None]
    frames = x[idx] * periodic_hann(window)
    return np.abs(np.fft.rfft(frames, n=fft_length, axis=1))


def mel_matrix(*, n_spectrum_bins: int = 257, sample_rate_hz: int = SAMPLE_RATE_HZ,
               n_mels: int = N_MELS, fmin_hz: float = FMIN_HZ,
               fmax_hz: float = FMAX_HZ) -> np.ndarray:
    """(n_spectrum_bins, n_mels) triangular mel weights; the DC bin gets no weight."""
    nyquist = sample_rate_hz / 2.0
    bins_mel = hz_to_mel(np.linspace(0.0, nyquist, n_spectrum_bins))
    edges = np.linspace(hz_to_mel(fmin_hz), hz_to_mel(fmax_hz), n_mels + 2)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins_mel[:, None] - lower) / (center - lower)
    falling = (upper - bins_mel[:, None]) / (upper - center)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights[0, :] = 0.0
    return weights


def log_mel_spectrogram(waveform: np.ndarray, *, sample_rate_hz: int = SAMPLE_RATE_HZ,
                        window_s: float = WINDOW_S, hop_s: float = HOP_S, n_mels: int = N_MELS,
                        fmin_hz: float = FMIN_HZ, fmax_hz: float = FMAX_HZ,
                        log_offset: float = LOG_OFFSET) -> np.ndarray:
    """log(mel + 0.01) frames, shape (n_frames, n_mels)."""
    spectrum = stft_magnitude(waveform, sample_rate_hz=sample_rate_hz, window_s=window_s,
                              hop_s=hop_s)
    weights = mel_matrix(n_spectrum_bins=spectrum.shape[1], sample_rate_hz=sample_rate_hz,
                         n_mels=n_mels, fmin_hz=fmin_hz, fmax_hz=fmax_hz)
    return np.log(spectrum @ weights + log_offset)


def frame_examples(log_mel: np.ndarray, *, example_window_s: float = EXAMPLE_WINDOW_S,
                   example_hop_s: float = 0.96, hop_s: float = HOP_S) -> np.ndarray:
    """Cut log-mel frames into (n_examples, 96, n_mels) examples, no padding."""
    window = int(round(example_window_s / hop_s))
    hop = int(round(example_hop_s / hop_s))
    if len(log_mel) < window:
        return np.zeros((0, window, log_mel.shape[1]), dtype=np.float32)
    n = 1 + (len(log_mel) - window) // hop
    idx = np.arange(window)[None, :] + hop * np.arange(n)[:, None]
    return log_mel[idx].astype(np.float32)


def log_mel_examples(waveform: np.ndarray, model: str = "vggish", *,
                     sample_rate_hz: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """The examples a built-in VGGish ('vggish') or YAMNet ('yamnet') architecture takes."""
    return frame_examples(log_mel_spectrogram(waveform, sample_rate_hz=sample_rate_hz),
                          example_hop_s=EXAMPLE_HOP_S[model])
