"""Seeded synthetic AVMIT-like annotation data for the demo and the tests.

A pool of videos in 41 classes gets a hidden true rating each (1 absent, 2 present, 3 present and
most prominent); simulated raters, each with their own accuracy and response bias, rate every
video. As in the real annotation, most videos get 3 ratings from distinct raters, some get 4 to 7
and a few fewer than 3 (these are dropped by aggregation). Videos from the relabelled MIT classes
(Table 1) join their AVMIT class with a lower rate of clean events, and 2,000 (scaled)
ground-truth videos carry the author's rating.

The 16 test classes and the relabelling table are the paper's; the other 25 class names are
illustrative MIT action classes (the paper does not list its 41 classes), marked as such.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import schema

#: Illustrative names for the 25 non-test AVMIT classes in synthetic data (MIT action classes;
#: NOT the published AVMIT list, which the paper does not give).
SYNTHETIC_EXTRA_CLASSES: tuple[str, ...] = (
    "applauding", "bouncing", "chopping", "clapping", "crashing", "crying", "dialing",
    "dribbling", "erupting", "flushing", "frowning", "hammering", "juggling", "kicking",
    "knocking", "ringing", "rowing", "sawing", "singing", "slicing", "splashing_water",
    "squeaking", "typing", "whisking", "yelling",
)
SYNTHETIC_CLASSES = schema.TEST_CLASSES + SYNTHETIC_EXTRA_CLASSES

PAPER_N_VIDEOS = 57_177
PAPER_N_RATERS = 11
PAPER_N_GROUND_TRUTH = 2_000
EXCLUSION_REASONS = (
    "edited to appear supernatural", "excessive time-lapses", "excessive watermarks or text",
    "two video streams", "not naturalistic (cartoon or simulation)",
)


@dataclass
class SyntheticRatings:
    """Everything :func:`simulate_ratings` made.

    raw : raw ratings (one row per rating) with participant, session, trial, timestamp, rt,
        replays, ground_truth.
    video_counts : the known per-video counts of *every* video (filename, r1, r2, r3,
        AVMIT_label, MIT_label, video_location, n_ratings), including those with < 3 ratings.
    truth : filename, AVMIT_label, MIT_label, true_rating.
    raters : participant, accuracy, bias_1, bias_2, bias_3.
    ground_truth : filename, rating (the ground-truth videos).
    fps : filename, fps (frame-rate metadata for the test-set filter).
    exclusions : filename, reason (a manual exclusion list).
    """

    raw: pd.DataFrame
    video_counts: pd.DataFrame
    truth: pd.DataFrame
    raters: pd.DataFrame
    ground_truth: pd.DataFrame
    fps: pd.DataFrame
    exclusions: pd.DataFrame


def simulate_ratings(n_videos: int = PAPER_N_VIDEOS, *, n_raters: int = PAPER_N_RATERS,
                     seed: int = 0, classes=SYNTHETIC_CLASSES,
                     test_classes=schema.TEST_CLASSES, p_extra: float = 0.03,
                     p_fewer: float = 0.015, n_ground_truth: int | None = None,
                     relabelled_fraction: float = 0.3) -> SyntheticRatings:
    """Simulate an annotation campaign.

    Parameters
    ----------
    n_videos : total videos in the pool (paper: 57,177).
    n_raters : number of raters (paper: 11); each video's raters are distinct.
    seed : everything is a function of the seed.
    classes, test_classes : the class pool; test classes get a higher rate of clean events so
        that, at the paper's scale, they pass the 500-video class filter.
    p_extra, p_fewer : fraction of videos rated 4-7 times / 1-2 times.
    n_ground_truth : ground-truth videos (default: 2,000 scaled to ``n_videos``).
    relabelled_fraction : share of a relabelled class's videos that come from its extra MIT
        classes (Table 1).
    """
    if n_raters < 3:
        raise ValueError("at least 3 raters are needed (each video is rated by 3 distinct raters)")
    rng = np.random.default_rng(seed)
    classes = tuple(classes)
    test_set = set(test_classes)
    label_idx = rng.integers(0, len(classes), n_videos)
    avmit = np.asarray(classes, dtype=object)[label_idx]
    mit = avmit.copy()
    relabelled = np.zeros(n_videos, dtype=bool)
    for target, sources in schema.RELABELLED_MIT_CLASSES.items():
        idx = np.flatnonzero(avmit == target)
        take = idx[rng.random(len(idx)) < relabelled_fraction]
        mit[take] = np.asarray(sources, dtype=object)[rng.integers(0, len(sources), len(take))]
        relabelled[take] = True

    # Hidden true rating per video: clean test classes, murkier others and relabelled videos.
    is_test = np.isin(avmit, list(test_set))
    p_true = np.where(is_test[:, None], [[0.30, 0.15, 0.55]], [[0.62, 0.18, 0.20]])
    p_true = np.where(relabelled[:, None], [[0.55, 0.20, 0.25]], p_true)
    true_rating = 1 + (rng.random(n_videos)[:, None] > np.cumsum(p_true, axis=1)).sum(axis=1)
    true_rating = np.minimum(true_rating, 3)

    # Raters: accuracy and a response bias used when they are not accurate.
    accuracy = rng.uniform(0.78, 0.95, n_raters)
    bias = rng.dirichlet([2.0, 1.5, 2.0], n_raters)
    participants = np.asarray([f"P{i + 1:02d}" for i in range(n_raters)], dtype=object)

    # Number of ratings per video.
    u = rng.random(n_videos)
    n_ratings = np.full(n_videos, 3)
    extra = u < p_extra
    fewer = (u >= p_extra) & (u < p_extra + p_fewer)
    n_ratings[extra] = rng.integers(4, min(7, n_raters) + 1, extra.sum())
    n_ratings[fewer] = rng.integers(1, 3, fewer.sum())
    slots = rng.random((n_videos, n_raters)).argsort(axis=1)
    used = np.arange(n_raters)[None, :] < n_ratings[:, None]
    video_of = np.repeat(np.arange(n_videos), n_ratings)
    rater_of = slots[used]
    accurate = rng.random(len(video_of)) < accuracy[rater_of]
    biased = 1 + (rng.random(len(video_of))[:, None] >
                  np.cumsum(bias[rater_of], axis=1)).sum(axis=1)
    rating = np.where(accurate, true_rating[video_of], np.minimum(biased, 3))

    filenames = np.asarray([f"{m}/syn-{seed}-{i:06d}.mp4" for i, m in enumerate(mit)],
                           dtype=object)
    location = np.where(rng.random(n_videos) < 0.95, "training", "validation").astype(object)

    counts = np.zeros((n_videos, 3), dtype=np.int64)
    np.add.at(counts, (video_of, rating - 1), 1)
    video_counts = pd.DataFrame({
        "filename": filenames, "r1": counts[:, 0], "r2": counts[:, 1], "r3": counts[:, 2],
        "AVMIT_label": avmit, "MIT_label": mit, "video_location": location,
        "n_ratings": n_ratings,
    })

    if n_ground_truth is None:
        n_ground_truth = int(round(PAPER_N_GROUND_TRUTH * n_videos / PAPER_N_VIDEOS))
    gt_idx = np.sort(rng.choice(n_videos, size=min(n_ground_truth, n_videos), replace=False))
    gt_rating = np.full(n_videos, "", dtype=object)
    gt_rating[gt_idx] = true_rating[gt_idx].astype(str)

    # Each rater works through their videos in sessions of up to 300 trials, in random order.
    order = np.lexsort((rng.random(len(video_of)), rater_of))
    video_of, rater_of, rating = video_of[order], rater_of[order], rating[order]
    position = np.arange(len(order)) - np.searchsorted(rater_of, rater_of)
    session = position // 300 + 1
    trial = position % 300 + 1
    start = np.datetime64("2018-09-06T09:00:00")
    seconds = (rater_of * 86400 * 30 + session * 86400 + trial * 8).astype("timedelta64[s]")
    raw = pd.DataFrame({
        "filename": filenames[video_of], "AVMIT_label": avmit[video_of],
        "MIT_label": mit[video_of], "video_location": location[video_of], "rating": rating,
        "participant": participants[rater_of], "session": session, "trial": trial,
        "timestamp": (start + seconds).astype(str),
        "rt": np.round(0.35 + rng.lognormal(-0.4, 0.5, len(video_of)), 3),
        "replays": rng.poisson(0.25, len(video_of)),
        "ground_truth": gt_rating[video_of],
    })

    fps_values = rng.choice([30.0, 25.0, 29.97, 24.0], size=n_videos, p=[0.85, 0.08, 0.05, 0.02])
    fps = pd.DataFrame({"filename": filenames, "fps": fps_values})
    candidates = np.flatnonzero(is_test & (counts[:, 2] == n_ratings) & (n_ratings >= 3))
    excluded = np.sort(rng.choice(candidates, size=int(0.03 * len(candidates)), replace=False))
    exclusions = pd.DataFrame({
        "filename": filenames[excluded],
        "reason": np.asarray(EXCLUSION_REASONS, dtype=object)[
            rng.integers(0, len(EXCLUSION_REASONS), len(excluded))],
    })
    return SyntheticRatings(
        raw=raw,
        video_counts=video_counts,
        truth=pd.DataFrame({"filename": filenames, "AVMIT_label": avmit, "MIT_label": mit,
                            "true_rating": true_rating}),
        raters=pd.DataFrame({"participant": participants, "accuracy": accuracy,
                             "bias_1": bias[:, 0], "bias_2": bias[:, 1], "bias_3": bias[:, 2]}),
        ground_truth=pd.DataFrame({"filename": filenames[gt_idx],
                                   "rating": true_rating[gt_idx]}),
        fps=fps,
        exclusions=exclusions,
    )


# --------------------------------------------------------------------------------------------
# Synthetic embeddings in the released TFRecord layout
# --------------------------------------------------------------------------------------------
#: Typical timesteps of a 3-s clip (audio, visual): 960-ms hops give 3 audio examples and 4
#: frames (0, 0.96, 1.92, 2.88 s); 480-ms hops give 5 audio examples and 7 frames.
SYNTHETIC_TIMESTEPS = {"vggish_vgg16": (3, 4), "yamnet_effnetb0": (5, 7)}


def simulate_embeddings(labels, feature_set: str = "vggish_vgg16", *, seed: int = 0,
                        sample_seed: int | None = None, noise: float = 1.0,
                        class_separation: float = 0.3):
    """Class-structured embedding sequences, one per label.

    Each class has a prototype per modality (drawn from ``seed``); a video's timesteps are its
    class prototype plus a video offset plus per-timestep noise (drawn from ``sample_seed``),
    clipped at 0 like ReLU-pooled CNN features. Splits made with one ``seed`` and different
    ``sample_seed`` share their classes, as train and test sets must.

    Returns
    -------
    list of (audio (Ta, A), visual (Tv, V)) float32 arrays.
    """
    from .tfrecords import FEATURE_SETS
    a_size, v_size = FEATURE_SETS[feature_set]
    a_steps, v_steps = SYNTHETIC_TIMESTEPS[feature_set]
    proto_rng = np.random.default_rng([seed, 1])
    classes = list(schema.TEST_CLASSES)
    a_proto = proto_rng.normal(0, 1, (len(classes), a_size)) * class_separation
    v_proto = proto_rng.normal(0, 1, (len(classes), v_size)) * class_separation
    rng = np.random.default_rng([seed, 2] if sample_seed is None else [seed, 3, sample_seed])
    out = []
    for label in labels:
        c = classes.index(label)
        ta = a_steps - int(rng.random() < 0.1)
        tv = v_steps - int(rng.random() < 0.1)
        a = a_proto[c] + rng.normal(0, noise, a_size) * 0.5 + rng.normal(0, noise, (ta, a_size))
        v = v_proto[c] + rng.normal(0, noise, v_size) * 0.5 + rng.normal(0, noise, (tv, v_size))
        out.append((np.maximum(a, 0).astype(np.float32), np.maximum(v, 0).astype(np.float32)))
    return out


def write_embedding_dataset(root, csv_dir, *, feature_set: str = "vggish_vgg16",
                            per_class: dict | None = None, seed: int = 0,
                            noise: float = 1.0, class_separation: float = 0.3) -> dict:
    """Write a synthetic embedding dataset: TFRecords under ``root`` and split CSVs in the
    released layouts under ``csv_dir``.

    per_class : videos per class for each split, default
        ``{"AVMIT_train": 40, "AVMIT_validation": 10, "test_set": 10}``. Splits named
        ``AVMIT_*`` use the released AVMIT training layout, ``MIT16_*`` the MIT-16 layout and
        ``test_set`` the test-set layout.

    Returns
    -------
    dict of split name -> CSV path.
    """
    from pathlib import Path

    from .tfrecords import write_example
    per_class = per_class or {"AVMIT_train": 40, "AVMIT_validation": 10, "test_set": 10}
    root, csv_dir = Path(root), Path(csv_dir)
    paths = {}
    for split_index, (split, n) in enumerate(per_class.items()):
        labels = [c for c in schema.TEST_CLASSES for _ in range(n)]
        order = np.random.default_rng([seed, 100 + split_index]).permutation(len(labels))
        labels = [labels[i] for i in order]
        stems = [f"syn-{split.lower()}-{seed}-{i:05d}" for i in range(len(labels))]
        embeddings = simulate_embeddings(labels, feature_set, seed=seed,
                                         sample_seed=split_index, noise=noise,
                                         class_separation=class_separation)
        rows = []
        for label, stem, (a, v) in zip(labels, stems, embeddings):
            tf_rel = f"{label}/{stem}.tfrecord"
            write_example(root / tf_rel, f"{label}/{stem}.mp4", label, a, v)
            rows.append({"filename": f"{label}/{stem}.mp4", "label": label, "tfrecord": tf_rel})
        frame = pd.DataFrame(rows)
        if split.startswith("AVMIT"):
            out = pd.DataFrame({"filename": frame.filename, "actual_label": frame.label,
                                "r1": 0, "r2": 0, "r3": 3, "label": frame.label,
                                "video_location": "MIT_training",
                                "tfrecord_filename": frame.tfrecord})
            index = False
        elif split.startswith("MIT16"):
            out = pd.DataFrame({"filename": frame.filename, "MIT label": frame.label,
                                "AVMIT label": frame.label, "tfrecord_filename": frame.tfrecord})
            index = True
        else:
            k = frame.groupby("label").cumcount() + 1
            out = pd.DataFrame({"filename": frame.filename, "AVMIT_label": frame.label,
                                "MIT_label": frame.label, "video_location": "training",
                                "new_filename": frame.label + "/" + frame.label + "_" +
                                k.astype(str) + ".mp4",
                                "tfrecord_filename": frame.tfrecord})
            index = False
        paths[split] = schema.write_csv(out, csv_dir / f"{split}.csv", index=index)
    return paths


# --------------------------------------------------------------------------------------------
# Probe clips: synthetic audiovisual videos with known events
# --------------------------------------------------------------------------------------------
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
                      grey: bool = False):
    """Write probe clips as H.264/AAC .mp4 files under ``root`` (``<label>/<label>_<k>.mp4``,
    the test set's ``new_filename``) and a test-set CSV naming them; returns the CSV path."""
    from fractions import Fraction
    from pathlib import Path

    from ..stimuli.io import encode
    root, rows = Path(root), []
    for ci, label in enumerate(classes):
        class_index = schema.LABEL_TO_INT.get(label, ci)
        for k in range(1, per_class + 1):
            new = f"{label}/{label}_{k}.mp4"
            frames, audio = probe_clip_arrays(class_index, k, seed=seed, size=size, fps=fps,
                                              sample_rate_hz=sample_rate_hz,
                                              duration_s=duration_s, grey=grey)
            if not (root / new).exists():
                encode(root / new, frames, Fraction(fps), audio, sample_rate_hz)
            stem = f"probe-{seed}-{label}-{k}"
            rows.append({"filename": f"{label}/{stem}.mp4", "AVMIT_label": label,
                         "MIT_label": label, "video_location": "training",
                         "new_filename": new,
                         "tfrecord_filename": f"{label}/{stem}.tfrecord"})
    return schema.write_csv(pd.DataFrame(rows), csv_path)


# --------------------------------------------------------------------------------------------
# Comparison data: humans' trials and models' predictions on one stimulus suite
# --------------------------------------------------------------------------------------------
#: The default suite's conditions (stimuli/suites/avmit_test_960.yaml), as (manipulation, level)
COMPARISON_CONDITIONS = (
    [("none", "")]
    + [("av_offset", v) for v in (-400, -200, -100, -50, 0, 50, 100, 200, 400)]
    + [("audio_noise", v) for v in (10, 5, 0, -5, -10, -15, -20)]
    + [("visual_noise", v) for v in (0, 8, 16, 32, 64, 96, 128)]
    + [("semantic_swap", ""), ("audio_only", ""), ("visual_only", "")])
#: P(correct) = gamma + (1 - gamma - lapse) Phi(sign (level - threshold) / sigma) for
#: numeric manipulations: (sign, mean threshold, sigma), the sign being the way the
#: manipulation makes a stimulus easier (``experiments.human_vs_dnn.PSYCHOMETRIC_DIRECTION``,
#: av_offset over |ms|); other conditions: a base accuracy
COMPARISON_OBSERVER = {"audio_noise": (1.0, -8.0, 4.0), "visual_noise": (-1.0, 60.0, 18.0),
                       "av_offset": (-1.0, 900.0, 400.0)}
COMPARISON_BASE = {"none": 0.92, "semantic_swap": 0.80, "audio_only": 0.75,
                   "visual_only": 0.85}


def comparison_stimuli(n_stimuli: int, *, classes=schema.TEST_CLASSES,
                       conditions=COMPARISON_CONDITIONS) -> pd.DataFrame:
    """A suite of ``n_stimuli`` spread evenly over ``conditions`` and classes:
    ``stimulus_id, label, manipulation, level``."""
    per = int(np.ceil(n_stimuli / len(conditions)))
    rows = [(f"{classes[i % len(classes)]}/{classes[i % len(classes)]}_{i // len(classes) + 1}"
             f"__{m}{'' if level == '' else f'_{level:+g}'}", classes[i % len(classes)], m,
             level) for m, level in conditions for i in range(per)]
    return pd.DataFrame(rows[:n_stimuli], columns=list(schema.STIMULUS_COLUMNS))


def psychometric_p_correct(stimuli: pd.DataFrame, *, threshold_shift: float = 0.0,
                           lapse: float = 0.02, guess: float = 1 / 16,
                           base_shift: float = 0.0) -> np.ndarray:
    """P(correct) of a simulated observer for each stimulus (:data:`COMPARISON_OBSERVER`);
    ``threshold_shift`` moves every threshold by that many of its own sigmas (+ = worse)."""
    from scipy.stats import norm
    p = np.empty(len(stimuli))
    manip = stimuli["manipulation"].to_numpy()
    level = pd.to_numeric(stimuli["level"], errors="coerce").to_numpy(float)
    for m in np.unique(manip):
        sel = manip == m
        if m in COMPARISON_OBSERVER:
            sign, thr, sigma = COMPARISON_OBSERVER[m]
            x = np.abs(level[sel]) if m == "av_offset" else level[sel]
            z = sign * (x - (thr + sign * threshold_shift * sigma)) / sigma
            p[sel] = guess + (1 - guess - lapse) * norm.cdf(z)
        else:
            p[sel] = np.clip(COMPARISON_BASE.get(m, 0.85) + base_shift, guess, 1 - lapse)
    return p


def simulate_comparison(n_humans: int = 8, n_models: int = 2, n_stimuli: int = 540, *,
                        seed: int = 0, item_effect: float = 1.0,
                        classes=schema.TEST_CLASSES) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Humans' trials and models' predictions on one suite (the data contracts' columns).

    Each observer is a psychometric observer (:func:`psychometric_p_correct`) with its own
    threshold shift and lapse rate; models are shifted to worse noise thresholds. Stimulus
    difficulty (``item_effect`` SD on the probit scale) is shared, so errors are consistent
    beyond chance; wrong answers go to a class-specific confusable class most of the time.
    Returns (trials, predictions); trials are in each participant's own random order.
    """
    from scipy.stats import norm
    rng = np.random.default_rng([int(seed), 83])
    stim = comparison_stimuli(n_stimuli, classes=classes)
    label_index = pd.Index(classes).get_indexer(stim["label"])
    difficulty = rng.normal(0, item_effect, len(stim)) if item_effect else np.zeros(len(stim))
    confusable = rng.permutation(len(classes))
    classes_arr = np.asarray(classes, dtype=object)

    def respond(p, r):
        z = norm.ppf(np.clip(p, 1e-6, 1 - 1e-6)) - difficulty
        correct = r.random(len(stim)) < norm.cdf(z)
        wrong = np.where(r.random(len(stim)) < 0.6, confusable[label_index],
                         r.integers(0, len(classes), len(stim)))
        wrong = np.where(wrong == label_index, (label_index + 1) % len(classes), wrong)
        response = np.where(correct, label_index, wrong)
        return classes_arr[response], response == label_index

    humans = []
    for h in range(n_humans):
        r = np.random.default_rng([int(seed), 89, h])
        p = psychometric_p_correct(stim, threshold_shift=r.normal(0, 0.4),
                                   lapse=r.uniform(0.01, 0.06), base_shift=r.normal(0, 0.03))
        response, correct = respond(p, r)
        order = r.permutation(len(stim))
        t = stim.assign(participant=f"S{h + 1:02d}", session=1, task="classify",
                        block="main", response=response, correct=correct,
                        rt=np.round(r.lognormal(np.log(0.9), 0.3, len(stim)), 3)).iloc[order]
        humans.append(t.assign(trial=np.arange(1, len(stim) + 1)))
    models = []
    for m in range(n_models):
        r = np.random.default_rng([int(seed), 97, m])
        p = psychometric_p_correct(stim, threshold_shift=1.0 + r.normal(0, 0.3), lapse=0.01,
                                   base_shift=r.normal(0.02, 0.03))
        response, correct = respond(p, r)
        models.append(stim.assign(model=f"model_{m + 1:02d}", response=response,
                                  correct=correct))
    trial_cols, pred_cols = list(schema.TRIALS_REQUIRED), list(schema.PREDICTIONS_COLUMNS)
    trials = pd.concat(humans, ignore_index=True)[trial_cols] if humans else \
        pd.DataFrame(columns=trial_cols)
    predictions = pd.concat(models, ignore_index=True)[pred_cols] if models else \
        pd.DataFrame(columns=pred_cols)
    return trials, predictions
