"""The audio front ends of VGGish and YAMNet, each with its published constants (librosa style).

A 16 kHz mono waveform in [-1, 1] -> STFT magnitude (25 ms periodic Hann window, 10 ms hop, FFT
length the next power of two: 512 samples) -> 64 mel bands between 125 and 7500 Hz (HTK mel
scale, triangular filters, no weight on the DC bin) -> log(mel + offset) -> 96-frame (960 ms)
examples. The two models differ in two constants, both from their published parameter files:

=========  ==========  ================  =================================================
model      log offset  example hop       published in (tensorflow/models research/audioset)
=========  ==========  ================  =================================================
``vggish``   0.01      0.96 s (96 fr.)   ``vggish/vggish_params.py``
``yamnet``   0.001     0.48 s (48 fr.)   ``yamnet/params.py``
=========  ==========  ================  =================================================

:data:`FRONT_END` holds every constant of each model, and is the only place they are written;
every function here takes ``model`` and uses that model's whole set (any single value can be
overridden by keyword). The two published feature codes compute the rest the same way:
VGGish's ``mel_features.log_mel_spectrogram`` (NumPy) and YAMNet's
``features.waveform_to_log_mel_spectrogram_patches`` (``tf.signal.stft``, periodic Hann;
``tf.signal.linear_to_mel_weight_matrix``) use the same window, FFT length, HTK mel formula
1127 ln(1 + f / 700) and triangles; tests/test_frontend.py checks this module against the
latter. Since the mel energies m are the same, YAMNet's log-mel is VGGish's plus
log((m + 0.001) / (m + 0.01)), frame by frame.

No padding, for either model: a 3.0 s clip gives 298 STFT frames, so 3 VGGish and 5 YAMNet
examples. (The published YAMNet waveform model, ``yamnet.yamnet_frames_model`` and the TF Hub
model, first pads the waveform with zeros, ``features.pad_waveform``, so that it holds a whole
number of patch hops: a 3.0 s clip becomes 3.375 s and gives 6 patches. That padding is not
part of the front-end constants and is not done here.)

Units are in the names: ``_hz``, ``_s`` seconds, ``_samples``, ``_frames`` (STFT frames of
``hop_s``).
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from ..dataset.schema import DatasetError


@dataclass(frozen=True)
class FrontEndParams:
    """The feature constants of one published audio model.

    Field names are ours (the keywords of :func:`log_mel_spectrogram` and
    :func:`frame_examples`); their published names are:

    ====================  ===============================  ======================
    field                 VGGish (``vggish_params.py``)    YAMNet (``params.py``)
    ====================  ===============================  ======================
    ``sample_rate_hz``    ``SAMPLE_RATE``                  ``sample_rate``
    ``window_s``          ``STFT_WINDOW_LENGTH_SECONDS``   ``stft_window_seconds``
    ``hop_s``             ``STFT_HOP_LENGTH_SECONDS``      ``stft_hop_seconds``
    ``n_mels``            ``NUM_MEL_BINS``                 ``mel_bands``
    ``fmin_hz``           ``MEL_MIN_HZ``                   ``mel_min_hz``
    ``fmax_hz``           ``MEL_MAX_HZ``                   ``mel_max_hz``
    ``log_offset``        ``LOG_OFFSET``                   ``log_offset``
    ``example_window_s``  ``EXAMPLE_WINDOW_SECONDS``       ``patch_window_seconds``
    ``example_hop_s``     ``EXAMPLE_HOP_SECONDS``          ``patch_hop_seconds``
    ====================  ===============================  ======================

    ``source`` names the published file. Tested against the published values, written out
    literally in tests/test_frontend.py.
    """

    sample_rate_hz: int
    window_s: float
    hop_s: float
    n_mels: int
    fmin_hz: float
    fmax_hz: float
    log_offset: float
    example_window_s: float
    example_hop_s: float
    source: str

    @property
    def window_samples(self) -> int:
        """STFT window in samples (400), rounded as both published front ends round it."""
        return int(round(self.window_s * self.sample_rate_hz))

    @property
    def hop_samples(self) -> int:
        """STFT hop in samples (160)."""
        return int(round(self.hop_s * self.sample_rate_hz))

    @property
    def fft_length(self) -> int:
        """FFT length in samples: the next power of two of the window (512)."""
        return 1 << (self.window_samples - 1).bit_length()

    @property
    def example_frames(self) -> int:
        """STFT frames in one example (96)."""
        return int(round(self.example_window_s / self.hop_s))

    @property
    def example_hop_frames(self) -> int:
        """STFT frames between the starts of two examples (VGGish 96, YAMNet 48)."""
        return int(round(self.example_hop_s / self.hop_s))

    @property
    def example_shape(self) -> tuple[int, int]:
        """(frames, mel bands) of one example, the model's input: (96, 64)."""
        return (self.example_frames, self.n_mels)


_AUDIOSET = "tensorflow/models research/audioset/"

#: The front end of each built-in audio model, as published (read-only).
FRONT_END: MappingProxyType[str, FrontEndParams] = MappingProxyType({
    "vggish": FrontEndParams(
        sample_rate_hz=16_000, window_s=0.025, hop_s=0.010, n_mels=64,
        fmin_hz=125.0, fmax_hz=7500.0, log_offset=0.01,
        example_window_s=0.96, example_hop_s=0.96,
        source=_AUDIOSET + "vggish/vggish_params.py"),
    "yamnet": FrontEndParams(
        sample_rate_hz=16_000, window_s=0.025, hop_s=0.010, n_mels=64,
        fmin_hz=125.0, fmax_hz=7500.0, log_offset=0.001,
        example_window_s=0.96, example_hop_s=0.48,
        source=_AUDIOSET + "yamnet/params.py"),
})


def front_end_params(model: str = "vggish", **overrides) -> FrontEndParams:
    """``FRONT_END[model]`` with the ``overrides`` that are not None put in.

    Parameters
    ----------
    model
        ``"vggish"`` or ``"yamnet"`` (case and surrounding spaces ignored); anything else
        raises :class:`DatasetError`.
    **overrides
        Fields of :class:`FrontEndParams` (``log_offset=...``); None keeps the model's value.
    """
    key = str(model).strip().lower()
    if key not in FRONT_END:
        raise DatasetError(f"unknown audio model '{model}' for the front end", column="model",
                           fix="use one of: " + ", ".join(sorted(FRONT_END)))
    params = FRONT_END[key]
    given = {name: value for name, value in overrides.items() if value is not None}
    return dataclasses.replace(params, **given) if given else params


def hz_to_mel(frequency_hz):
    """HTK mel scale: 1127 ln(1 + f / 700)."""
    return 1127.0 * np.log1p(np.asarray(frequency_hz, dtype=np.float64) / 700.0)


def periodic_hann(window_length: int) -> np.ndarray:
    """Periodic Hann window of ``window_length`` samples (as ``tf.signal.hann_window``)."""
    return _periodic_hann(int(window_length)).copy()


@functools.lru_cache(maxsize=8)
def _periodic_hann(window_length: int) -> np.ndarray:
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(window_length) / window_length)
    window.flags.writeable = False  # shared by every call: computed once per length
    return window


def stft_magnitude(waveform: np.ndarray, model: str = "vggish", *,
                   sample_rate_hz: int | None = None, window_s: float | None = None,
                   hop_s: float | None = None) -> np.ndarray:
    """|STFT| frames (n_frames, fft_length // 2 + 1) of a mono waveform, no padding.

    The window, hop and rate are ``model``'s (:data:`FRONT_END`) unless given.
    """
    p = front_end_params(model, sample_rate_hz=sample_rate_hz, window_s=window_s, hop_s=hop_s)
    window, hop, fft_length = p.window_samples, p.hop_samples, p.fft_length
    x = np.asarray(waveform, dtype=np.float64)
    n_frames = 1 + (len(x) - window) // hop if len(x) >= window else 0
    if n_frames <= 0:
        return np.zeros((0, fft_length // 2 + 1))
    frames = np.lib.stride_tricks.sliding_window_view(x, window)[::hop][:n_frames]
    return np.abs(np.fft.rfft(frames * _periodic_hann(window), n=fft_length, axis=1))


def mel_matrix(model: str = "vggish", *, n_spectrum_bins: int | None = None,
               sample_rate_hz: int | None = None, n_mels: int | None = None,
               fmin_hz: float | None = None, fmax_hz: float | None = None) -> np.ndarray:
    """(n_spectrum_bins, n_mels) triangular mel weights; the DC bin gets no weight.

    ``model``'s values (:data:`FRONT_END`) unless given; ``n_spectrum_bins`` defaults to
    ``fft_length // 2 + 1`` (257). Equal to ``tf.signal.linear_to_mel_weight_matrix`` (YAMNet's)
    and to VGGish's ``mel_features.spectrogram_to_mel_matrix``.
    """
    p = front_end_params(model, sample_rate_hz=sample_rate_hz, n_mels=n_mels, fmin_hz=fmin_hz,
                         fmax_hz=fmax_hz)
    if n_spectrum_bins is None:
        n_spectrum_bins = p.fft_length // 2 + 1
    return _mel_matrix(int(n_spectrum_bins), p.sample_rate_hz, p.n_mels, p.fmin_hz,
                       p.fmax_hz).copy()


@functools.lru_cache(maxsize=16)
def _mel_matrix(n_spectrum_bins: int, sample_rate_hz: int, n_mels: int, fmin_hz: float,
                fmax_hz: float) -> np.ndarray:
    """:func:`mel_matrix` of these values, computed once per set (read-only)."""
    nyquist = sample_rate_hz / 2.0
    bins_mel = hz_to_mel(np.linspace(0.0, nyquist, n_spectrum_bins))
    edges = np.linspace(hz_to_mel(fmin_hz), hz_to_mel(fmax_hz), n_mels + 2)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins_mel[:, None] - lower) / (center - lower)
    falling = (upper - bins_mel[:, None]) / (upper - center)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights[0, :] = 0.0
    weights.flags.writeable = False
    return weights


def log_mel_spectrogram(waveform: np.ndarray, model: str = "vggish", *,
                        sample_rate_hz: int | None = None, window_s: float | None = None,
                        hop_s: float | None = None, n_mels: int | None = None,
                        fmin_hz: float | None = None, fmax_hz: float | None = None,
                        log_offset: float | None = None) -> np.ndarray:
    """log(mel + log_offset) frames of ``model``'s front end, shape (n_frames, n_mels).

    Every value is ``model``'s (:data:`FRONT_END`: log offset 0.01 for VGGish, 0.001 for
    YAMNet) unless given. Tested against an independent NumPy computation of VGGish's
    (tests/test_features_media.py) and against YAMNet's published TF code
    (tests/test_frontend.py).
    """
    p = front_end_params(model, sample_rate_hz=sample_rate_hz, window_s=window_s, hop_s=hop_s,
                         n_mels=n_mels, fmin_hz=fmin_hz, fmax_hz=fmax_hz,
                         log_offset=log_offset)
    spectrum = stft_magnitude(waveform, model, sample_rate_hz=p.sample_rate_hz,
                              window_s=p.window_s, hop_s=p.hop_s)
    weights = _mel_matrix(spectrum.shape[1], p.sample_rate_hz, p.n_mels, p.fmin_hz, p.fmax_hz)
    return np.log(_matmul_in_blocks(spectrum, weights) + p.log_offset)


#: Rows per block in :func:`_matmul_in_blocks`: up to 15 x 257 x 64 multiply-adds, under
#: OpenBLAS's threshold for threading a product (2^18).
_BLOCK_ROWS = 14


def _matmul_in_blocks(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` a few rows of ``a`` at a time: the same dot products, each block small enough
    for BLAS to do in the calling thread. A 3 s clip's (298 x 257) @ (257 x 64) in one go is
    shared out to OpenBLAS's threads, whose hand-over and spinning cost ten times the CPU of
    the product (2.7 instead of 0.25 ms), taken from the models that run meanwhile. No block
    has a single row (BLAS would take its vector path, whose sums can differ in the last
    bit), so the values are those of ``a @ b``."""
    starts = list(range(0, len(a), _BLOCK_ROWS))
    if len(starts) > 1 and len(a) - starts[-1] == 1:
        starts.pop()  # the last row joins the block before it (15 rows)
    if len(starts) <= 1:
        return a @ b
    out = np.empty((len(a), b.shape[1]), np.result_type(a, b))
    for start, end in zip(starts, [*starts[1:], len(a)]):
        np.matmul(a[start:end], b, out=out[start:end])
    return out


def frame_examples(log_mel: np.ndarray, model: str = "vggish", *,
                   example_window_s: float | None = None, example_hop_s: float | None = None,
                   hop_s: float | None = None) -> np.ndarray:
    """Cut log-mel frames into (n_examples, 96, n_mels) float32 examples, no padding.

    ``model``'s example window (0.96 s) and hop (VGGish 0.96 s, YAMNet 0.48 s) and STFT hop
    (0.01 s, the duration of one log-mel frame) unless given.
    """
    p = front_end_params(model, example_window_s=example_window_s,
                         example_hop_s=example_hop_s, hop_s=hop_s)
    window, hop = p.example_frames, p.example_hop_frames
    if len(log_mel) < window:
        return np.zeros((0, window, log_mel.shape[1]), dtype=np.float32)
    n = 1 + (len(log_mel) - window) // hop
    idx = np.arange(window)[None, :] + hop * np.arange(n)[:, None]
    return log_mel[idx].astype(np.float32)


def log_mel_examples(waveform: np.ndarray, model: str = "vggish") -> np.ndarray:
    """The examples the built-in VGGish (``"vggish"``) or YAMNet (``"yamnet"``) takes.

    (n_examples, 96, 64) float32, every constant ``model``'s published one
    (:data:`FRONT_END`); ``waveform`` is mono at ``FRONT_END[model].sample_rate_hz`` (16 kHz).
    """
    return frame_examples(log_mel_spectrogram(waveform, model), model)
