"""Stimulus manipulations as moviepy effects, and the plug-ins a suite can name.

An *effect* is a function on a moviepy clip (moviepy 2.x: a ``VideoClip`` whose ``.audio`` is an
``AudioClip``) that returns the manipulated clip::

    effect(clip, level, *, seed, **params) -> clip

``level`` is the condition's level in its unit (``None`` for conditions without levels),
``seed`` the stimulus's own seed (:func:`.suite.stimulus_seed`), ``params`` the suite's
settings of the manipulation. The built-ins are below (:data:`BUILTIN_EFFECTS`); the semantic
swap also takes ``donor=`` (the donor video's clip) and audio noise ``color=`` and
``aac_bitrate=``. Each is written with moviepy's own tools — ``clip.transform`` /
``image_transform`` for frames, ``with_audio`` and an ``AudioArrayClip`` for sound — around the
array definitions of :mod:`.manipulations`, which stay the one definition of every unit (so
offsets stay exact to the sample and SNRs are what :mod:`.verify` measures).

A suite can name a lab's own effect by dotted path (``manipulation: mylab.effects:blur``; see
:mod:`.suite`) and, optionally, a *verifier* that measures the realised level of a generated
stimulus::

    measure(stimulus, source, *, seed, **params) -> float

with ``stimulus`` and ``source`` moviepy clips of the decoded stimulus file and its source
video; :mod:`.verify` compares the result with the requested level within the suite's
``tolerance``. A plug-in's module must be importable where the suite is generated (the working
folder, ``PYTHONPATH`` or an installed package; on Dask workers too).

Rendering. moviepy composes; it does not write. ``write_videofile`` re-times frames through
floating-point clip time, writes audio through its own resampling buffer (``audio_fps``,
``audio_nbytes``) and runs ~2-3x slower than one ffmpeg pipe, which would break the measured
accuracy (offsets exact to the sample) and the throughput (within 1.5x of the ffmpeg CLI,
``benchmarks/bench_stimuli.py``). So :func:`render` reads the composed clip at exact frame
times ``k / fps`` and exact sample times ``n / sample_rate`` and hands the arrays to the fast
writer, :func:`avmit_psych.media.encode` (libx264 + AAC through an ffmpeg pipe). A clip no
effect changed is read straight from its arrays.
"""
from __future__ import annotations

import functools
import importlib
import inspect
from fractions import Fraction

import numpy as np
from moviepy import AudioArrayClip, VideoClip

from . import manipulations as M

#: audio_noise through AAC: the encoder keeps less of the noise than of the signal at low SNR,
#: so the noise level is corrected until the SNR measured after an AAC round trip (the very
#: audio the file will hold) is within this many dB of the request.
SNR_CALIBRATION_DB = 0.05


class FrameArrayClip(VideoClip):
    """A moviepy video clip over decoded frames ((n, h, w, 3) uint8): frame k at t = k / fps."""

    def __init__(self, frames: np.ndarray, fps):
        frames = np.asarray(frames)
        n = len(frames)
        rate = Fraction(fps)

        def frame_function(t):
            return frames[min(max(int(round(float(t) * rate)), 0), n - 1)]

        super().__init__(frame_function, duration=n / float(rate))
        self.fps = float(rate)
        self.exact_fps = rate
        self.frames = frames
        self._array_function = frame_function


class SampleArrayClip(AudioArrayClip):
    """moviepy's ``AudioArrayClip`` with any number of channels (the parent returns two for
    arrays of times): sample n at t = n / sample_rate."""

    def __init__(self, array: np.ndarray, sample_rate_hz: int):
        array = np.asarray(array, dtype=np.float64)
        array = array[:, None] if array.ndim == 1 else array
        n, channels = array.shape
        rate = int(sample_rate_hz)

        def frame_function(t):
            if isinstance(t, np.ndarray):
                index = np.round(rate * t).astype(int)
                inside = (index >= 0) & (index < n)
                out = np.zeros((len(t), channels))
                out[inside] = array[index[inside]]
                return out
            i = int(round(rate * t))
            return array[i] if 0 <= i < n else np.zeros(channels)

        super().__init__(array, rate)
        self.frame_function = frame_function
        self.nchannels = channels
        self._array_function = frame_function


def from_decoded(clip) -> VideoClip:
    """A moviepy clip of a decoded :class:`.io.Clip` (its frames and its audio, as arrays)."""
    video = FrameArrayClip(clip.frames, clip.fps)
    return video.with_audio(SampleArrayClip(clip.audio, clip.sample_rate_hz))


def audio_samples(clip: VideoClip, n_samples: int | None = None) -> np.ndarray:
    """The clip's audio as (n_samples, channels) float at its own rate, read at n / rate."""
    audio = clip.audio
    rate = int(audio.fps)
    if n_samples is None:
        n_samples = int(round(audio.duration * rate))
    if getattr(audio, "_array_function", None) is audio.frame_function and \
            len(audio.array) == n_samples:
        return audio.array
    out = np.asarray(audio.get_frame(np.arange(n_samples) / rate), dtype=np.float64)
    return out.reshape(n_samples, -1)


def video_frames(clip: VideoClip, fps, n_frames: int) -> np.ndarray:
    """The clip's frames at t = k / fps as (n_frames, h, w, 3) uint8."""
    if getattr(clip, "_array_function", None) is clip.frame_function and \
            len(clip.frames) == n_frames:
        return clip.frames
    rate = Fraction(fps)
    frames = [np.asarray(clip.get_frame(k / rate)) for k in range(n_frames)]
    frames = [f if f.dtype == np.uint8 else np.clip(np.rint(f), 0, 255).astype(np.uint8)
              for f in frames]
    return np.stack(frames)


def render(clip: VideoClip, fps, n_frames: int, sample_rate_hz: int, n_samples: int):
    """(frames, audio) of a composed clip, for :func:`avmit_psych.media.encode`: ``n_frames``
    frames at exact frame times and ``n_samples`` samples at ``sample_rate_hz`` (silence if the
    clip has no audio)."""
    frames = video_frames(clip, fps, n_frames)
    if clip.audio is None:
        audio = np.zeros((n_samples, 2))
    else:
        if int(clip.audio.fps) != int(sample_rate_hz):
            raise ValueError(f"the effect's audio is at {clip.audio.fps} Hz, "
                             f"the stimulus at {sample_rate_hz} Hz")
        audio = audio_samples(clip, n_samples)
    return frames, audio


def _with_samples(clip: VideoClip, audio: np.ndarray) -> VideoClip:
    return clip.with_audio(SampleArrayClip(audio, int(clip.audio.fps)))


# -- the built-in effects ------------------------------------------------------------------------
def none(clip, level=None, *, seed=0):
    """The source as it is."""
    return clip


def av_offset(clip, level, *, seed=0):
    """Audio shifted by ``level`` ms (+ = audio lags), exact to the sample (see
    :func:`.manipulations.av_offset`)."""
    rate = int(clip.audio.fps)
    return _with_samples(clip, M.av_offset(audio_samples(clip), rate, float(level)))


def calibrated_audio_noise(audio, rate: int, snr_db: float, *, color: str, seed: int,
                           audio_bitrate: str = "192k", max_rounds: int = 5):
    """``manipulations.audio_noise`` with the noise level corrected for AAC coding."""
    from ..media import aac_roundtrip
    target = snr_db
    best, best_error = None, np.inf
    added = M.unit_noise(len(audio), audio.shape[1], color, seed)
    for _ in range(max_rounds):
        mixed, _ = M.audio_noise(audio, rate, target, color=color, seed=seed)
        achieved = M.measured_snr_db(aac_roundtrip(mixed, rate, audio_bitrate=audio_bitrate),
                                     audio, rate, added_noise=added)
        if abs(achieved - snr_db) < best_error:   # the rounds can oscillate: keep the closest
            best, best_error = mixed, abs(achieved - snr_db)
        if best_error <= SNR_CALIBRATION_DB:
            break
        target -= achieved - snr_db
    return best


def audio_noise(clip, level, *, seed=0, color="white", aac_bitrate=None):
    """Seeded noise at ``level`` dB SNR against the active RMS; with ``aac_bitrate`` the noise
    level is corrected so the SNR holds after AAC coding at that bitrate."""
    rate = int(clip.audio.fps)
    audio = audio_samples(clip)
    if aac_bitrate:
        mixed = calibrated_audio_noise(audio, rate, float(level), color=color, seed=seed,
                                       audio_bitrate=aac_bitrate)
    else:
        mixed, _ = M.audio_noise(audio, rate, float(level), color=color, seed=seed)
    return _with_samples(clip, mixed)


def visual_noise(clip, level, *, seed=0):
    """Achromatic Gaussian pixel noise of SD ``level`` (0-255); frame k seeded with
    (seed, k), as :func:`.manipulations.visual_noise`."""
    if float(level) == 0:
        return clip
    rate = Fraction(getattr(clip, "exact_fps", None) or clip.fps)

    def add_noise(get_frame, t):
        k = int(round(float(t) * rate))
        return M.visual_noise_frame(get_frame(t), float(level), seed=seed, index=k)

    return clip.transform(add_noise)


def blur(clip, level, *, seed=0):
    """Gaussian blur of every frame (sigma ``level`` pixels)."""
    return clip.image_transform(lambda frame: M.blur(frame[None], float(level))[0])


def contrast(clip, level, *, seed=0):
    """Contrast scaled by ``level`` about the clip's mean level."""
    mean = float(np.mean([f.mean() for f in clip.iter_frames(dtype="uint8")]))
    factor = float(level)
    return clip.image_transform(
        lambda frame: np.clip(np.rint(mean + (frame.astype(np.float64) - mean) * factor),
                              0, 255).astype(np.uint8))


def audio_only(clip, level=None, *, seed=0):
    """Every frame one constant grey at the clip's mean level (the audio kept)."""
    grey = int(round(float(np.mean([f.mean() for f in clip.iter_frames(dtype="uint8")]))))
    return clip.image_transform(lambda frame: np.full_like(frame, grey))


def visual_only(clip, level=None, *, seed=0):
    """Digital silence of the same length (the frames kept)."""
    return _with_samples(clip, M.silence(audio_samples(clip)))


def semantic_swap(clip, level=None, *, seed=0, donor=None):
    """The donor clip's audio (resampled to this clip's rate, channels matched, cut or padded
    to this clip's length) under this clip's frames."""
    if donor is None or donor.audio is None:
        raise ValueError("semantic_swap needs a donor clip with audio")
    rate = int(clip.audio.fps)
    own = audio_samples(clip)
    sound = audio_samples(donor)
    donor_rate = int(donor.audio.fps)
    if donor_rate != rate:
        from ..media import resample
        sound = np.stack([resample(sound[:, c], donor_rate, rate)
                          for c in range(sound.shape[1])], axis=1)
    sound = M.match_channels(sound, own.shape[1])
    return _with_samples(clip, M.fit_length(sound, len(own)))


BUILTIN_EFFECTS = {"none": none, "av_offset": av_offset, "audio_noise": audio_noise,
                   "visual_noise": visual_noise, "blur": blur, "contrast": contrast,
                   "semantic_swap": semantic_swap, "audio_only": audio_only,
                   "visual_only": visual_only}


# -- plug-ins ------------------------------------------------------------------------------------
class PluginError(ValueError):
    """A plug-in path that does not import, or a function of the wrong signature."""


@functools.lru_cache(maxsize=None)
def load_function(dotted: str):
    """The function a dotted path names: ``package.module:function`` (or
    ``package.module.function``)."""
    if ":" in dotted:
        module_name, _, attr = dotted.partition(":")
    else:
        module_name, _, attr = dotted.rpartition(".")
    if not module_name or not attr:
        raise PluginError(f"'{dotted}' is not a dotted path like 'mylab.effects:blur'")
    try:
        obj = importlib.import_module(module_name)
    except Exception as err:  # noqa: BLE001 - any import failure is the plug-in's
        raise PluginError(f"cannot import module '{module_name}' of '{dotted}' "
                          f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})")
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise PluginError(f"module '{module_name}' has no '{attr}'")
        obj = getattr(obj, part)
    if not callable(obj):
        raise PluginError(f"'{dotted}' is not a function")
    return obj


def _check_binds(func, dotted: str, args: tuple, kwargs: dict, expected: str) -> None:
    try:
        inspect.signature(func).bind(*args, **kwargs)
    except TypeError as err:
        raise PluginError(f"'{dotted}' has the wrong signature ({err}); expected {expected}")
    except ValueError:  # no signature to inspect (a builtin): let the call decide
        pass


def check_effect(dotted: str, params: dict):
    """The effect ``dotted`` names, checked to take ``(clip, level, *, seed, **params)``."""
    func = load_function(dotted)
    _check_binds(func, dotted, (None, 0.0), {"seed": 0, **params},
                 "effect(clip, level, *, seed, **params)")
    return func


def check_verifier(dotted: str, params: dict):
    """The verifier ``dotted`` names, checked to take ``(stimulus, source, *, seed,
    **params)``."""
    func = load_function(dotted)
    _check_binds(func, dotted, (None, None), {"seed": 0, **params},
                 "measure(stimulus, source, *, seed, **params) -> float")
    return func


def apply(cond, clip: VideoClip, *, seed: int, donor: VideoClip | None = None,
          aac_bitrate: str | None = None) -> VideoClip:
    """The clip under one condition (:class:`.suite.Condition`): its built-in effect or its
    plug-in, with the condition's settings."""
    if cond.plugin:
        try:
            out = load_function(cond.plugin)(clip, cond.level, seed=seed, **cond.params_dict)
        except Exception as err:  # noqa: BLE001 - the stimulus fails, the suite goes on
            raise ValueError(f"the plug-in '{cond.plugin}' failed: "
                             f"{type(err).__name__}: {err}") from err
        if not isinstance(out, VideoClip):
            raise ValueError(f"the plug-in '{cond.plugin}' returned "
                             f"{type(out).__name__}, not a moviepy VideoClip")
        return out
    m = cond.manipulation
    if m == "audio_noise":
        return audio_noise(clip, cond.level, seed=seed, color=cond.color,
                           aac_bitrate=aac_bitrate)
    if m == "semantic_swap":
        return semantic_swap(clip, seed=seed, donor=donor)
    if m not in BUILTIN_EFFECTS:
        raise ValueError(f"unknown manipulation {m}")
    return BUILTIN_EFFECTS[m](clip, cond.level, seed=seed)
