"""Probe clips: synthetic audiovisual videos with known events (a flash frame and a click
at the same instant, class-coloured shapes and class tones), written as H.264/AAC files with a
test-set CSV, so manipulations and timing can be measured against a known answer.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd

from ...media import encode
from .. import schema

PROBE_FLASH_S = 1.0   # the flash frame and the click start together here
PROBE_CLICK_MS = 2.0


def probe_clip_arrays(class_index: int, k: int = 0, *, seed: int = 0, size=(160, 120),
                      fps: int = 30, sample_rate_hz: int = 44_100, duration_s: float = 3.0,
                      grey: bool = False):
    """Frames and audio of one probe clip.

    Frames: a class-coloured square moving across a class-dependent background, with one
    full-white frame at ``PROBE_FLASH_S``. Audio (stereo): a class tone (300 + 60 x class
    index Hz, a different tone on the right), a 2-ms click at ``PROBE_FLASH_S`` and faint
    noise, so cross-correlation finds an offset unambiguously. ``grey=True`` gives a uniform
    mid-grey (128) clip with the same audio, for measuring pixel noise.
    """
    w, h = size
    n = int(round(duration_s * fps))
    rng = np.random.default_rng([seed, class_index, k])
    if grey:
        frames = np.full((n, h, w, 3), 128, dtype=np.uint8)
    else:
        bg = np.array([40 + 10 * (class_index % 8), 60 + 7 * (class_index % 5), 90], np.uint8)
        colour = np.array([200, 80 + 10 * class_index, 255 - 12 * class_index], np.uint8)
        frames = np.broadcast_to(bg, (n, h, w, 3)).copy()
        side = h // 4
        speed = 1 + (class_index + k) % 4
        for i in range(n):
            x = (i * speed * 2 + 7 * k) % (w - side)
            y = (h - side) // 2 + int(10 * np.sin(i / 5 + class_index))
            frames[i, y:y + side, x:x + side] = colour
        frames[int(round(PROBE_FLASH_S * fps))] = 255
    t = np.arange(int(round(duration_s * sample_rate_hz))) / sample_rate_hz
    f0 = 300 + 60 * class_index
    left = 0.2 * np.sin(2 * np.pi * f0 * t + rng.uniform(0, 2 * np.pi))
    right = 0.15 * np.sin(2 * np.pi * 1.5 * f0 * t + rng.uniform(0, 2 * np.pi))
    audio = np.stack([left, right], axis=1) + 0.01 * rng.standard_normal((len(t), 2))
    click = int(round(PROBE_FLASH_S * sample_rate_hz))
    width = int(round(PROBE_CLICK_MS * sample_rate_hz / 1000))
    audio[click:click + width] += 0.6
    return frames, audio


def write_probe_clips(root, csv_path, *, per_class: int = 2, classes=schema.TEST_CLASSES,
                      seed: int = 0, size=(160, 120), fps: int = 30,
                      sample_rate_hz: int = 44_100, duration_s: float = 3.0,
                      grey: bool = False, workers: int = 2):
    """Write probe clips as H.264/AAC .mp4 files under ``root`` (``<label>/<label>_<k>.mp4``,
    the test set's ``new_filename``) and a test-set CSV naming them; returns the CSV path.

    Clips already there are kept; the others are encoded ``workers`` at a time (each by its own
    ffmpeg process; every clip is a function of its class, ``k`` and ``seed`` alone, so the
    files are the same whatever ``workers``)."""
    from concurrent.futures import ThreadPoolExecutor

    root, rows, missing = Path(root), [], []
    for ci, label in enumerate(classes):
        class_index = schema.LABEL_TO_INT.get(label, ci)
        for k in range(1, per_class + 1):
            new = f"{label}/{label}_{k}.mp4"
            if not (root / new).exists():
                missing.append((class_index, k, root / new))
            stem = f"probe-{seed}-{label}-{k}"
            rows.append({"filename": f"{label}/{stem}.mp4", "AVMIT_label": label,
                         "MIT_label": label, "video_location": "training",
                         "new_filename": new,
                         "tfrecord_filename": f"{label}/{stem}.tfrecord"})

    def write(job) -> None:
        class_index, k, path = job
        frames, audio = probe_clip_arrays(class_index, k, seed=seed, size=size, fps=fps,
                                          sample_rate_hz=sample_rate_hz,
                                          duration_s=duration_s, grey=grey)
        encode(path, frames, Fraction(fps), audio, sample_rate_hz)

    with ThreadPoolExecutor(max_workers=max(1, int(workers))) as pool:
        list(pool.map(write, missing))
    return schema.write_csv(pd.DataFrame(rows), csv_path)
