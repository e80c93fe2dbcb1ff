"""Import TensorFlow and Keras quietly, only when a stage needs them."""
from __future__ import annotations

import os


def tensorflow():
    """The ``tensorflow`` module, imported with its C++ info logging silenced."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    return tf


def keras():
    """Keras 3 on the TensorFlow backend."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    tensorflow()
    import keras as _keras
    return _keras


def set_seeds(seed: int, *, deterministic: bool = True) -> None:
    """Seed Python, NumPy and TensorFlow; ask TF for deterministic kernels where it has them."""
    tf = tensorflow()
    _keras = keras()
    _keras.utils.set_random_seed(int(seed))
    if deterministic:
        try:
            tf.config.experimental.enable_op_determinism()
        except (AttributeError, RuntimeError):  # older TF, or already configured
            pass
