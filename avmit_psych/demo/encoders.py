"""The demo's random-weight encoders, their embeddings centred and on a usable scale
(:func:`embedding_standardisation` says why), each distinct frame embedded once.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

@dataclass(frozen=True)
class EmbeddingStandardisation:
    """``(embedding - mean) * scale``: one mean vector and one number, fixed on calibration
    clips (:func:`embedding_standardisation`) and applied to every embedding of a modality."""

    mean: np.ndarray
    scale: float

    def __call__(self, embeddings: np.ndarray) -> np.ndarray:
        embeddings = np.asarray(embeddings, np.float32)
        if embeddings.size == 0:
            return embeddings
        return ((embeddings - self.mean) * np.float32(self.scale)).astype(np.float32)


def embedding_standardisation(embeddings: np.ndarray) -> EmbeddingStandardisation:
    """Centre ``embeddings`` (rows: timesteps of calibration clips) on their mean and give
    them a standard deviation of 1, with one mean vector and one scale factor.

    The demo's encoders have random weights, and their embeddings are not shaped like
    pretrained ones in two ways. (1) Scale: a randomly initialised Keras EfficientNetB0 keeps
    BatchNorm's initial statistics (mean 0, variance 1), which do not fit what its random
    convolutions put out, so the signal shrinks from block to block and its embeddings come
    out around 1e-6, far below the epsilon (1e-3) of the recognition models' own BatchNorm: a
    model trained on them ignored vision altogether (chance on visual-only stimuli). (2) A
    shared offset: in both encoders' embeddings of the probe clips about 98 % of the squared
    norm lies along the mean embedding, the same for every clip; the classes differ in the
    remaining 2 % (where they are told apart without error: nearest class mean, every
    validation clip right). The recognition models' BatchNorm removes such an offset, but a
    SAVC model has none: its first step is a linear map then an L2 normalisation, so every
    clip of a modality lands at nearly the same point of the unit sphere (mean cosine 0.96
    between clips at initialisation), every audio-visual distance is about the same, congruent
    or not, and the demo's SAVC models stayed at chance (validation accuracy 0.5 at every epoch,
    with any learning rate). Subtracting the calibration mean removes the offset (cosine
    between clips about 0 at initialisation; the same SAVC configurations then learn the
    task). A translation and one scale factor keep every distance ratio between embeddings,
    so what tells the classes apart, and how noise moves an embedding relative to them, is
    unchanged. (Setting EfficientNetB0's BatchNorm statistics from the frames instead was tried
    and is worse: the flat colours of the probe clips leave many channels without variance,
    and pixel noise then blows those channels up; a per-dimension scale would do the same.)
    """
    embeddings = np.asarray(embeddings, np.float64)
    mean = embeddings.mean(axis=0)
    sd = float(np.std(embeddings - mean))
    return EmbeddingStandardisation(mean.astype(np.float32), 1.0 / max(sd, 1e-30))


class DemoVisualEncoder:
    """EfficientNetB0 as the demo uses it: every embedding standardised (see
    :func:`embedding_standardisation`), and each distinct frame embedded once.

    Most demo stimuli share their frames with another one: the audio-noise and visual-only
    versions of a clip keep the frames of its ``none`` version, and re-encoding the same frames
    with the same settings gives the same decoded frames. Frames are keyed by a hash of their
    pixels, so only new ones go through the network (about 60 % of the stimuli's frames), and
    every embedding is the one the network gives for that frame. ``embed`` is what
    :func:`avmit_psych.features.extract.extract` calls.
    """

    def __init__(self, encoder, standardise: EmbeddingStandardisation):
        self.encoder, self.standardise = encoder, standardise
        self.name, self.size = encoder.name, encoder.size
        self.source = f"{encoder.source}, embeddings centred and x {standardise.scale:.4g}"
        self._seen: dict[bytes, np.ndarray] = {}

    def embed(self, frames_uint8: np.ndarray) -> np.ndarray:
        import hashlib
        frames = np.asarray(frames_uint8)
        if len(frames) == 0:
            return np.zeros((0, self.size), np.float32)
        keys = [hashlib.blake2b(f.tobytes(), digest_size=16).digest() for f in frames]
        new = {}
        for i, key in enumerate(keys):
            if key not in self._seen and key not in new:
                new[key] = i
        if new:
            computed = self.standardise(self.encoder.embed(frames[list(new.values())]))
            self._seen.update(zip(new, computed))
        return np.stack([self._seen[k] for k in keys])


class DemoAudioEncoder:
    """YAMNet as the demo uses it: every embedding standardised (see
    :func:`embedding_standardisation`); otherwise the encoder's own ``examples``, ``embed`` and
    ``embed_many``, as :func:`avmit_psych.features.extract.extract` calls them."""

    def __init__(self, encoder, standardise: EmbeddingStandardisation):
        self.encoder, self.standardise = encoder, standardise
        self.name, self.size = encoder.name, encoder.size
        self.source = f"{encoder.source}, embeddings centred and x {standardise.scale:.4g}"

    def examples(self, waveform_16k: np.ndarray):
        return self.encoder.examples(waveform_16k)

    def embed(self, waveform_16k: np.ndarray) -> np.ndarray:
        return self.embed_many([waveform_16k])[0]

    def embed_many(self, waveforms, *, examples=None) -> list[np.ndarray]:
        return [self.standardise(e) for e in self.encoder.embed_many(waveforms,
                                                                     examples=examples)]


def _calibration_media(videos: list[Path]) -> tuple[np.ndarray, list[np.ndarray]]:
    """The frames (as EfficientNetB0 samples them) and 16 kHz waveforms of ``videos``."""
    from .. import media
    frames, waveforms = [], []
    for path in videos:
        decoded = media.decode(path, media.FRAME_INTERVAL_S["effnetb0"], media.probe(path))
        frames.append(decoded[0])
        waveforms.append(decoded[2])
    return np.concatenate(frames), waveforms


def demo_encoders(audio, visual, videos: list[Path]) -> tuple[DemoAudioEncoder,
                                                              DemoVisualEncoder]:
    """The demo's encoders: ``audio`` and ``visual`` (random-weight YAMNet and EfficientNetB0)
    with their embeddings standardised on ``videos`` (the demo passes the first training clip
    of each class, so the mean weighs every class alike)."""
    frames, waveforms = _calibration_media(videos)
    visual_std = embedding_standardisation(visual.embed(frames))
    audio_std = embedding_standardisation(np.concatenate(audio.embed_many(waveforms)))
    return DemoAudioEncoder(audio, audio_std), DemoVisualEncoder(visual, visual_std)
