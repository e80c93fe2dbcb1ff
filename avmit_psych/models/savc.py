"""Pairs for the Supervised Audiovisual Correspondence (SAVC) task.

A pair is the audio stream of one video and the visual stream of another (or the same) video.
Congruent: both from the same class; incongruent: from different classes. Every epoch, each
audio stream is paired once congruently and once incongruently (equal numbers of each), with
visual partners drawn afresh, and the incongruent partner classes of each class spread evenly
over the other 15 classes (exactly even when a class's count is a multiple of 15, which is why
the paper takes 405/45 AVMIT and 600/60 MIT-16 videos per class). Videos without an audio
stream are left out as audio sources first.

Label 1 = congruent, 0 = incongruent (the model's softmax index 1 is "congruent").

A stimulus of a suite is one such pair made into a file: its audio track and its picture come
from a manifest row's ``audio_source`` and ``source_filename``. Its answer key in the
correspondence task, for humans and SAVC models alike, is :func:`correspondence_answer`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_TEST_PAIRS = 1920

#: The correspondence task's answers (the model's softmax index 1, "congruent", is "same").
SAME, DIFFERENT = "same", "different"
#: Manipulations that take one modality away (grey frames, digital silence): such a stimulus
#: has no sound-picture pair to judge, so it has no correspondence answer key.
ONE_MODALITY = ("audio_only", "visual_only")


@dataclass
class Pairs:
    """Index pairs into a split: audio from ``audio_index``, visual from ``visual_index``."""

    audio_index: np.ndarray
    visual_index: np.ndarray
    congruent: np.ndarray  # 1 congruent, 0 incongruent

    def __len__(self) -> int:
        return len(self.congruent)


def per_class_subset(labels: np.ndarray, per_class: int | None, *, seed: int = 0) -> np.ndarray:
    """Indices of at most ``per_class`` items of each class (seeded choice, sorted)."""
    labels = np.asarray(labels)
    if per_class is None:
        return np.arange(len(labels))
    rng = np.random.default_rng([seed, 17])
    keep = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        keep.append(np.sort(rng.permutation(idx)[:per_class]) if len(idx) > per_class else idx)
    return np.sort(np.concatenate(keep))


def sample_pairs(labels: np.ndarray, *, seed: int, epoch: int = 0,
                 has_audio: np.ndarray | None = None) -> Pairs:
    """One epoch of SAVC pairs (see the module docstring).

    Parameters
    ----------
    labels : (N,) class index of each video.
    seed, epoch : the pairs are a function of both; a new epoch gives new pairs.
    has_audio : (N,) bool; videos without audio are never audio sources (they can still lend
        their visual stream).
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng([int(seed), 23, int(epoch)])
    classes = np.unique(labels)
    if len(classes) < 2:
        raise ValueError("SAVC needs at least two classes")
    by_class = {c: np.flatnonzero(labels == c) for c in classes}
    sources = np.arange(len(labels)) if has_audio is None else np.flatnonzero(has_audio)
    audio, visual, congruent = [], [], []
    for c in classes:
        a_idx = sources[labels[sources] == c]
        if not len(a_idx):
            continue
        a_idx = rng.permutation(a_idx)
        n = len(a_idx)
        # congruent partners: any video of the same class (itself included, as in the paper)
        same = by_class[c]
        audio.append(a_idx)
        visual.append(same[rng.integers(0, len(same), n)])
        congruent.append(np.ones(n, dtype=np.int64))
        # incongruent partner classes: the other classes in equal shares, in random order
        others = classes[classes != c]
        partner_classes = rng.permutation(np.resize(rng.permutation(others), n))
        partners = np.empty(n, dtype=np.int64)
        for o in others:
            where = np.flatnonzero(partner_classes == o)
            pool = by_class[o]
            partners[where] = pool[rng.integers(0, len(pool), len(where))]
        audio.append(a_idx)
        visual.append(partners)
        congruent.append(np.zeros(n, dtype=np.int64))
    audio, visual, congruent = (np.concatenate(x) for x in (audio, visual, congruent))
    order = rng.permutation(len(congruent))
    return Pairs(audio[order], visual[order], congruent[order])


#: The "epoch" of the fixed test pairs (never reached by training epochs).
TEST_EPOCH = 2**31 - 1


def test_pairs(labels: np.ndarray, *, seed: int = 0, has_audio: np.ndarray | None = None) -> Pairs:
    """The fixed SAVC test pairs: every test video's audio once congruent and once incongruent
    (1,920 pairs from the 960-video test set, half congruent), the same for every model."""
    return sample_pairs(labels, seed=seed, epoch=TEST_EPOCH, has_audio=has_audio)


def correspondence_answer(manipulation: str) -> str | None:
    """The answer key of a suite stimulus in the correspondence task.

    ``"different"`` for ``semantic_swap`` (the audio is a donor video's, of another class),
    ``None`` for :data:`ONE_MODALITY` (``audio_only``, ``visual_only``: nothing to correspond),
    ``"same"`` for every other manipulation (the stimulus keeps its own audio: ``none``,
    ``av_offset``, ``audio_noise``, ``visual_noise``, ...).
    """
    manipulation = str(manipulation).strip()
    if manipulation == "semantic_swap":
        return DIFFERENT
    if manipulation in ONE_MODALITY:
        return None
    return SAME
