"""Plug-in effects a suite names by dotted path (``tests.plugin_effects:brightness``), as a
lab's own module would define them: moviepy clip in, moviepy clip out, plus verifiers that
measure the realised level of a generated stimulus against its source."""
from __future__ import annotations

import numpy as np


def brightness(clip, level, *, seed, scale=1.0):
    """Every pixel ``level * scale`` grey levels brighter (0-255, clipped)."""
    shift = float(level) * float(scale)
    return clip.image_transform(
        lambda frame: np.clip(frame.astype(np.float64) + shift, 0, 255).astype(np.uint8))


def measure_brightness(stimulus, source, *, seed, scale=1.0):
    """Mean grey-level difference stimulus - source over the pixels the shift did not clip
    (below 245 in the stimulus), in units of ``level``."""
    total, count = 0.0, 0
    for s, r in zip(stimulus.iter_frames(), source.iter_frames()):
        s, r = s.astype(np.float64), r.astype(np.float64)
        kept = s < 245
        total += float((s - r)[kept].sum())
        count += int(kept.sum())
    return total / count / float(scale)


def gain_db(clip, level, *, seed):
    """The audio scaled by ``level`` dB (a moviepy audio transform)."""
    g = 10 ** (float(level) / 20.0)
    return clip.with_audio(clip.audio.transform(lambda get_frame, t: get_frame(t) * g))


def measure_gain_db(stimulus, source, *, seed):
    """Least-squares gain of the stimulus audio on the source audio, in dB."""
    rate = int(source.audio.fps)
    n = int(round(min(stimulus.audio.duration, source.audio.duration) * rate))
    t = np.arange(n) / rate
    out, ref = stimulus.audio.get_frame(t), source.audio.get_frame(t)
    return float(20 * np.log10(np.sum(out * ref) / np.sum(ref * ref)))


def wrong_signature(clip):
    """Takes no level: a suite naming it is refused."""
    return clip


not_a_function = 3


def broken(clip, level, *, seed):
    """Fails on every clip: its stimuli are failures, the rest of the suite is made."""
    raise RuntimeError("no such filter on this machine")
