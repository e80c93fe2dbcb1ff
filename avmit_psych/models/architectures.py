"""The paper's two model families, built with Keras 3.

Recognition (Experiment 1): a multimodal squeeze unit — per modality and per timestep a 1x1
Conv2D with ``bottleneck`` filters, BatchNorm, the activation and global average pooling — the
two streams concatenated per timestep, then a SimpleRNN (FRNN), GRU or LSTM and Dense(16)
softmax. Trainable parameters equal Table 5 for the six published configurations.

The authors wrapped each layer in ``TimeDistributed`` over a (T, 1, 1, A) reshape; here the
timesteps are the height of one (T, 1, A) image, so a single 1x1 Conv2D and a BatchNorm over its
channels do the same arithmetic per timestep (BatchNorm statistics over batch x timesteps, as
``TimeDistributed`` computes them) with the same parameters, and global average pooling over a
1x1 map is the identity (a reshape). The RNN is unrolled over its 7 steps (faster on a CPU; the
same function).

SAVC (Experiment 2), AVE-Net fusion: per timestep, each modality through two Dense(128) layers
(linear, as released), L2-normalised, then the Euclidean distance between them (one value per
timestep) -> RNN(256, dropout 0.1) -> Dense(2) softmax (index 1 = congruent).
"""
from __future__ import annotations

from .. import _tf
from .config import ModelConfig

_RNN_LAYERS = {"frnn": "SimpleRNN", "gru": "GRU", "lstm": "LSTM"}


def _rnn(keras, cfg: ModelConfig):
    layer = getattr(keras.layers, _RNN_LAYERS[cfg.rnn])
    return layer(cfg.rnn_units, dropout=cfg.dropout, unroll=True, name=cfg.rnn)


def build_model(cfg: ModelConfig):
    """The Keras model for a config (recognition or SAVC)."""
    return build_recognition(cfg) if cfg.task == "recognition" else build_savc(cfg)


def build_recognition(cfg: ModelConfig):
    keras = _tf.keras()
    L = keras.layers
    audio_size, visual_size = cfg.sizes
    T = cfg.timesteps
    inputs, streams = [], []
    for modality, size in (("audio", audio_size), ("visual", visual_size)):
        x_in = keras.Input(shape=(T, size), name=f"{modality}_input")
        x = L.Reshape((T, 1, size), name=f"{modality}_reshape")(x_in)
        x = L.Conv2D(cfg.bottleneck, 1, name=f"{modality}_bottleneck")(x)
        x = L.BatchNormalization(name=f"{modality}_bn")(x)
        x = L.Activation(cfg.activation, name=f"{modality}_activation")(x)
        x = L.Reshape((T, cfg.bottleneck), name=f"{modality}_pooling")(x)
        inputs.append(x_in)
        streams.append(x)
    y = L.Concatenate(axis=2, name="squeeze_unit")(streams)
    y = _rnn(keras, cfg)(y)
    y = L.Dense(cfg.n_classes, name="logits")(y)
    out = L.Activation("softmax", dtype="float32", name="predictions")(y)
    return keras.Model(inputs=inputs, outputs=out, name=cfg.name)


def build_savc(cfg: ModelConfig):
    keras = _tf.keras()
    L = keras.layers
    ops = keras.ops
    audio_size, visual_size = cfg.sizes
    T = cfg.timesteps
    inputs, streams = [], []
    for modality, size in (("audio", audio_size), ("visual", visual_size)):
        x_in = keras.Input(shape=(T, size), name=f"{modality}_input")
        x = L.Dense(cfg.fusion_units, name=f"{modality}_dense_1")(x_in)
        x = L.Dense(cfg.fusion_units, name=f"{modality}_dense_2")(x)
        x = L.UnitNormalization(axis=-1, name=f"{modality}_l2norm")(x)
        inputs.append(x_in)
        streams.append(x)
    a, v = streams
    distance = L.Lambda(
        lambda t: ops.sqrt(ops.maximum(ops.sum(ops.square(t[0] - t[1]), axis=-1, keepdims=True),
                                       keras.backend.epsilon())),
        output_shape=(T, 1), name="euclidean_distance")([a, v])
    y = _rnn(keras, cfg)(distance)
    y = L.Dense(2, name="logits")(y)
    out = L.Activation("softmax", dtype="float32", name="predictions")(y)
    return keras.Model(inputs=inputs, outputs=out, name=cfg.name)


def trainable_params(model) -> int:
    import numpy as np
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))
