"""Synthetic annotation campaigns: raw ratings of an AVMIT-like video pool (seeded).

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

from .. import schema

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
