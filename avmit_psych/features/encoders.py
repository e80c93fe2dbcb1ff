"""The encoders of the AVMIT baselines: VGGish and YAMNet (audio), VGG16 and EfficientNetB0.

Each encoder turns one video's audio or frames into a (timesteps, size) float32 matrix, the
per-timestep embeddings the recognition and SAVC models read from the released TFRecords:

============  ======  =====================================================================
encoder       size    one timestep
============  ======  =====================================================================
``vggish``     128    a 96-frame (960 ms) log-mel example, examples every 960 ms
``yamnet``    1024    a 96-frame (960 ms) log-mel example, examples every 480 ms
``vgg16``      512    one RGB frame, 224 x 224, global-average-pooled last conv block
``effnetb0``  1280    one RGB frame, 224 x 224, global-average-pooled last conv block
============  ======  =====================================================================

The built-in architectures read each model's own published front end,
:data:`frontend.FRONT_END <avmit_psych.features.frontend.FRONT_END>` (VGGish: log(mel + 0.01),
examples every 960 ms, from ``vggish_params.py``; YAMNet: log(mel + 0.001), patches every
480 ms, from ``yamnet/params.py``), so weights ported from the published models see the input
they were trained on. Timesteps for a 3.0 s clip. Audio, with the built-in architectures (no
padding: 298 STFT frames): VGGish gives 3 examples, YAMNet 5. The YAMNet model published on TF
Hub (``https://tfhub.dev/google/yamnet/1``) pads the waveform before framing, so that the last
patch covers the end of the clip; by its padding rule (``features.pad_waveform`` in
tensorflow/models research/audioset/yamnet) a 3.0 s clip gives 6 patches, not 5. That is what
the hub model does, not this module: a hub handle's output is taken as it comes, front end
included.
Visual timesteps are set by the frame sampler, not here: 4 frames every 960 ms for VGG16 and 7
every 480 ms for EfficientNetB0.

Where the weights come from (``source``):

* ``"random"``: the architecture with seeded random weights (``keras.utils.set_random_seed``
  before building), an untrained baseline that needs no download and makes tests possible.
* ``"weights:<path>"``: the built-in architecture with a Keras weights file (``.weights.h5``;
  legacy ``.h5`` is read by Keras too). A file that does not fit raises :class:`DatasetError`
  at load time, before any video is read.
* ``"hub:<handle>"`` (audio only): ``tensorflow_hub.load(handle)`` of a TF Hub URL or a local
  SavedModel directory, called on the waveform as the hub models are
  (:func:`save_hub_like_savedmodel` writes an offline stand-in).
* ``"imagenet"`` (visual only): the Keras ImageNet weights, downloaded by Keras on a connected
  machine and cached in ``~/.keras/models``.

The two audio architectures are rebuilt from the tensorflow/models code (research/audioset):

* VGGish (Hershey et al. 2017, ``vggish_slim.define_vggish_slim``): 3x3 convolutions (stride 1,
  SAME) 64, 128, 256 x2, 512 x2, each block followed by a 2x2/2 max-pool, flatten, two fully
  connected 4096 layers and the 128-d embedding layer. ReLU after every convolution and both
  4096 layers. The embedding layer ``fc2`` is *linear* in vggish_slim (``activation_fn=None``;
  its docstring: "the pre-activation values of a 128-D embedding layer"), so it is linear here
  too; ports of the first 2017 release (e.g. torchvggish) put a ReLU there, which
  ``build_vggish(embedding_relu=True)`` gives.
* YAMNet (``yamnet.py``, MobileNetV1 on a 96 x 64 patch): a 3x3/2 convolution with 32 filters,
  then 13 depthwise-separable layers (``_YAMNET_LAYER_DEFS``), every convolution without bias
  and followed by BatchNorm (centre, no scale, epsilon 1e-4) and ReLU, then global average
  pooling -> the 1024-d embedding (the 521-class head is not part of the encoder).

Random weights use He initialisation (normal, variance 2 / fan-in: the scale that keeps a
ReLU layer's output as large as its input; for a depthwise kernel the fan-in is its 3 x 3
window) and zero biases, rather than vggish_slim's N(0, 0.01) or the Keras default (Glorot):
with those, the signal shrinks at every layer and a random YAMNet's embeddings come out around
1e-20, leaving a random baseline (and the tests comparing two paths to it) nothing to see.
"""
from __future__ import annotations

import threading
import warnings
from pathlib import Path

import numpy as np

from .. import _tf
from ..dataset.schema import DatasetError
from . import frontend

AUDIO_MODELS: dict[str, int] = {"vggish": 128, "yamnet": 1024}
#: The TF Hub handles of the paper's audio networks (downloaded only when a command asks).
HUB_HANDLES = {"vggish": "https://tfhub.dev/google/vggish/1",
               "yamnet": "https://tfhub.dev/google/yamnet/1"}
VISUAL_MODELS: dict[str, int] = {"vgg16": 512, "effnetb0": 1280}
FRAME_SIZE = 224

#: One log-mel example: 96 frames of 10 ms x 64 mel bands, the input of both audio models
#: (their ``frontend.FRONT_END`` entries agree on it; tests/test_frontend.py checks).
EXAMPLE_SHAPE = frontend.FRONT_END["vggish"].example_shape

#: AudioSet classes scored by the YAMNet head (only the hub-like SavedModel has one).
YAMNET_CLASSES = 521

#: yamnet.py ``_YAMNET_LAYER_DEFS``: (layer kind, kernel, stride, filters).
_YAMNET_LAYER_DEFS = (
    ("conv", 3, 2, 32),
    ("separable", 3, 1, 64),
    ("separable", 3, 2, 128),
    ("separable", 3, 1, 128),
    ("separable", 3, 2, 256),
    ("separable", 3, 1, 256),
    ("separable", 3, 2, 512),
    ("separable", 3, 1, 512),
    ("separable", 3, 1, 512),
    ("separable", 3, 1, 512),
    ("separable", 3, 1, 512),
    ("separable", 3, 1, 512),
    ("separable", 3, 2, 1024),
    ("separable", 3, 1, 1024),
)
_YAMNET_BN_EPSILON = 1e-4

#: He initialisation for ReLU layers. Keras counts a depthwise kernel's fan-in as window x
#: channels although each output sees one channel's window, so those use the fan-out (= window).
_HE = "he_normal"


def _he_depthwise(keras):
    return keras.initializers.VarianceScaling(2.0, mode="fan_out",
                                              distribution="truncated_normal")


_WEIGHTS_SUFFIXES = (".weights.h5", ".h5")
#: Seconds of audio that probe a hub model: long enough for one example of either model.
_PROBE_S = 1.0


def _model_key(name: str, valid) -> str:
    """The model's key in ``valid`` (case and spaces ignored), or a DatasetError listing them."""
    key = str(name).strip().lower()
    if key not in valid:
        raise DatasetError(f"unknown model '{name}'", column="model",
                           fix="use one of: " + ", ".join(sorted(valid)))
    return key


def _load_weights_file(model, path: str, what: str) -> None:
    """``model.load_weights(path)``, with a missing or non-matching file as a DatasetError."""
    if not Path(path).is_file():
        raise DatasetError(f"{what} weights file not found", path=path,
                           fix="give the path of an existing .weights.h5 file")
    fix = (f"pass a weights file saved from the {what} architecture of "
           "avmit_psych.features.encoders (model.save_weights)")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model.load_weights(path)
        except Exception as error:  # Keras: ValueError for shapes, OSError/KeyError for layout
            detail = " ".join(str(error).split())[:300]
            raise DatasetError(f"not a {what} weights file ({type(error).__name__}: {detail})",
                               path=path, fix=fix) from error
    # Keras only warns when part of a model finds no group in the file and keeps its random
    # weights; a half-random encoder must not pass as a loaded one.
    for warning in caught:
        if "freshly-initialized" in str(warning.message):
            raise DatasetError(f"not a {what} weights file (some layers are missing from it)",
                               path=path, fix=fix)
    for warning in caught:
        warnings.warn(warning.message, warning.category, stacklevel=3)


# --------------------------------------------------------------------------------------------
# Audio architectures
# --------------------------------------------------------------------------------------------
def build_vggish(*, embedding_relu: bool = False):
    """The VGGish architecture (vggish_slim), random weights.

    Input (batch, 96, 64) log-mel examples -> (batch, 128) embeddings. Layer names are the
    vggish_slim scopes (``conv3_2``, ``fc1_1``, ...). 72,141,184 parameters.

    Parameters
    ----------
    embedding_relu
        Put a ReLU on the 128-d embedding layer, as the first (2017) vggish_slim and its ports
        did; the current vggish_slim leaves it linear (the default).
    """
    keras = _tf.keras()
    L = keras.layers
    x_in = keras.Input(shape=EXAMPLE_SHAPE, name="input_features")
    x = L.Reshape(EXAMPLE_SHAPE + (1,), name="reshape")(x_in)
    for block, (filters, repeats) in enumerate(((64, 1), (128, 1), (256, 2), (512, 2)), start=1):
        for i in range(1, repeats + 1):
            name = f"conv{block}" if repeats == 1 else f"conv{block}_{i}"
            x = L.Conv2D(filters, 3, padding="same", activation="relu",
                         kernel_initializer=_HE, name=name)(x)
        x = L.MaxPooling2D(2, strides=2, padding="same", name=f"pool{block}")(x)
    x = L.Flatten(name="flatten")(x)
    x = L.Dense(4096, activation="relu", kernel_initializer=_HE, name="fc1_1")(x)
    x = L.Dense(4096, activation="relu", kernel_initializer=_HE, name="fc1_2")(x)
    x = L.Dense(AUDIO_MODELS["vggish"], activation="relu" if embedding_relu else None,
                kernel_initializer=_HE, name="fc2")(x)
    return keras.Model(x_in, x, name="vggish")


def build_yamnet():
    """The YAMNet architecture (yamnet.py, MobileNetV1) up to its embedding, random weights.

    Input (batch, 96, 64) log-mel examples -> (batch, 1024) embeddings (global average pooling
    of the last 3 x 2 x 1024 map). Layer names follow yamnet.py with ``/`` as ``_``
    (``layer2_depthwise_conv_bn``). 3,217,344 parameters, of which 3,195,456 trainable
    (BatchNorm has no scale, so only its offset is trained).
    """
    keras = _tf.keras()
    L = keras.layers

    def bn_relu(x, name):
        x = L.BatchNormalization(center=True, scale=False, epsilon=_YAMNET_BN_EPSILON,
                                 name=f"{name}_bn")(x)
        return L.ReLU(name=f"{name}_relu")(x)

    x_in = keras.Input(shape=EXAMPLE_SHAPE, name="features")
    x = L.Reshape(EXAMPLE_SHAPE + (1,), name="reshape")(x_in)
    for i, (kind, kernel, stride, filters) in enumerate(_YAMNET_LAYER_DEFS, start=1):
        if kind == "conv":
            x = L.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False,
                         kernel_initializer=_HE, name=f"layer{i}_conv")(x)
            x = bn_relu(x, f"layer{i}_conv")
        else:
            x = L.DepthwiseConv2D(kernel, strides=stride, depth_multiplier=1, padding="same",
                                  use_bias=False, depthwise_initializer=_he_depthwise(keras),
                                  name=f"layer{i}_depthwise_conv")(x)
            x = bn_relu(x, f"layer{i}_depthwise_conv")
            x = L.Conv2D(filters, 1, strides=1, padding="same", use_bias=False,
                         kernel_initializer=_HE, name=f"layer{i}_pointwise_conv")(x)
            x = bn_relu(x, f"layer{i}_pointwise_conv")
    x = L.GlobalAveragePooling2D(name="embeddings")(x)
    return keras.Model(x_in, x, name="yamnet")


_AUDIO_BUILDERS = {"vggish": build_vggish, "yamnet": build_yamnet}


def _build_audio(name: str, seed: int):
    _tf.keras().utils.set_random_seed(int(seed))
    return _AUDIO_BUILDERS[name]()


#: Models whose built-in encoders embed through a :class:`_FoldedGraph`: the inference graph
#: with the weights as constants, in which TensorFlow's graph optimiser folds each
#: BatchNormalization into the convolution before it. On a 2-core machine, CPU per input:
#: EfficientNetB0 (49 BatchNorm layers) 15 instead of 19-20 ms per frame, YAMNet (27) 1.4
#: instead of 1.9 ms per example; embeddings within 1e-6 x their largest value of the Keras
#: model's, and the same whatever else is in the batch (the Keras YAMNet's differ for a batch
#: of one). The cost: ~3 s once (folding, then optimising the graph at its first call).
#: VGG16 and VGGish have no BatchNorm: they would gain nothing, and VGG16's first call would
#: spend ~20 s folding 58 MB of constants.
FOLDED_GRAPH_MODELS = frozenset({"effnetb0", "yamnet"})


class _FoldedGraph:
    """``predict`` (a ``tf.function`` of a Keras model with one input signature) with the
    model's weights copied in as constants when first called; later changes to the model's
    weights are not seen."""

    def __init__(self, predict):
        self._predict = predict
        self._graph = None
        self._lock = threading.Lock()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self._built()(x))

    def _built(self):
        with self._lock:
            if self._graph is None:
                from tensorflow.python.framework.convert_to_constants import (
                    convert_variables_to_constants_v2)
                tf = _tf.tensorflow()
                traced = self._predict.get_concrete_function()
                frozen = convert_variables_to_constants_v2(traced)
                # Called from a tf.function of its own: the frozen function has no input
                # signature, and called directly it would format each batch into the message
                # of a failed binding (~10 ms) before falling back to its flat call.
                self._graph = tf.function(lambda x: frozen(x)[0],
                                          input_signature=traced.structured_input_signature[0])
            return self._graph


def _as_waveform(waveform) -> np.ndarray:
    x = np.asarray(waveform)
    if x.ndim != 1:
        raise ValueError(f"expected one mono waveform (1-D), got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        # int16 PCM would give log-mels ~ 90 dB off the range every model was trained on
        raise ValueError(f"expected a float waveform in [-1, 1], got dtype {x.dtype} "
                         "(divide int16 samples by 32768)")
    return x


class AudioEncoder:
    """VGGish or YAMNet: a 16 kHz mono waveform -> (timesteps, size) embeddings.

    Attributes
    ----------
    name : str
        ``"vggish"`` or ``"yamnet"``.
    size : int
        Embedding size (128 or 1024).
    source : str
        ``"random"``, ``"weights:<path>"`` or ``"hub:<handle>"``.
    model
        The Keras model (built-in) or the loaded hub object. The built-in YAMNet embeds
        through a copy of its weights taken at its first embedding
        (:data:`FOLDED_GRAPH_MODELS`): give other weights to a new encoder, not to ``model``
        after that.
    """

    def __init__(self, name: str, model, source: str):
        self.name = name
        self.size = AUDIO_MODELS[name]
        self.source = source
        self.model = model
        self.is_hub = source.startswith("hub:")
        if not self.is_hub:
            tf = _tf.tensorflow()
            # One trace for every batch size: the batch dimension is left open.
            self._predict = tf.function(
                lambda x: self.model(x, training=False),
                input_signature=[tf.TensorSpec((None,) + EXAMPLE_SHAPE, tf.float32)])
        self._folded = (_FoldedGraph(self._predict)
                        if name in FOLDED_GRAPH_MODELS and not self.is_hub else None)

    def __repr__(self) -> str:
        return f"AudioEncoder(name={self.name!r}, size={self.size}, source={self.source!r})"

    @classmethod
    def load(cls, name: str, handle: str = "random", *, seed: int = 0) -> "AudioEncoder":
        """Build or load an audio encoder.

        Parameters
        ----------
        name
            ``"vggish"`` or ``"yamnet"`` (anything else: :class:`DatasetError`).
        handle
            ``"random"``: the built-in architecture with weights drawn from ``seed``; a path
            ending in ``.weights.h5``/``.h5``: the built-in architecture with those weights;
            anything else: a TF Hub URL or local SavedModel directory for
            ``tensorflow_hub.load``.
        seed
            Seed for random weights (set before building, so the same seed gives the same
            weights).
        """
        key = _model_key(name, AUDIO_MODELS)
        handle = str(handle)
        if handle == "random":
            return cls(key, _build_audio(key, seed), "random")
        if handle.lower().endswith(_WEIGHTS_SUFFIXES):
            model = _build_audio(key, seed)
            _load_weights_file(model, handle, key)
            return cls(key, model, f"weights:{handle}")
        encoder = cls(key, _load_hub(handle), f"hub:{handle}")
        encoder._check_hub(handle)
        return encoder

    # -- embedding ---------------------------------------------------------------------------
    def embed(self, waveform_16k: np.ndarray) -> np.ndarray:
        """(timesteps, size) float32 embeddings of one mono 16 kHz waveform in [-1, 1].

        A waveform too short for one example gives shape (0, size).
        """
        return self.embed_many([waveform_16k])[0]

    def examples(self, waveform_16k: np.ndarray) -> np.ndarray | None:
        """What a built-in model takes for one waveform: its (n, 96, 64) float32 log-mel
        examples (:func:`frontend.log_mel_examples`); None for a hub model, which takes the
        waveform itself. Pure NumPy, safe to call from several threads: extraction computes it
        while decoding, so that the model calls do not wait for it."""
        waveform = _as_waveform(waveform_16k)
        return None if self.is_hub else frontend.log_mel_examples(waveform, self.name)

    def embed_many(self, waveforms: list[np.ndarray], *,
                   examples: list[np.ndarray | None] | None = None) -> list[np.ndarray]:
        """:meth:`embed` for several videos.

        Built-in models: every video's examples go through one model call, then are split back
        per video (the caller bounds memory by how many waveforms it passes). Hub models take
        a whole waveform each, so they are called once per waveform. ``examples``, when given,
        are :meth:`examples` of each waveform, already computed.
        """
        waveforms = [_as_waveform(w) for w in waveforms]
        if self.is_hub:
            return [self._hub_embed(w) for w in waveforms]
        if examples is None or any(e is None for e in examples):
            examples = [frontend.log_mel_examples(w, self.name) for w in waveforms]
        elif len(examples) != len(waveforms):
            raise ValueError(f"{len(examples)} example arrays for {len(waveforms)} waveforms")
        counts = [len(e) for e in examples]
        if sum(counts) == 0:
            return [np.zeros((0, self.size), np.float32) for _ in waveforms]
        embeddings = self._forward(np.concatenate(examples, axis=0))
        return [part.copy() for part in np.split(embeddings, np.cumsum(counts)[:-1])]

    def _forward(self, examples: np.ndarray) -> np.ndarray:
        """One call of the built-in model on an (n, 96, 64) batch."""
        examples = np.asarray(examples, np.float32)
        if self._folded is not None:
            return self._folded(examples)
        return np.asarray(self._predict(examples), np.float32)

    def _hub_embed(self, waveform: np.ndarray) -> np.ndarray:
        tf = _tf.tensorflow()
        out = self.model(tf.constant(waveform, tf.float32))
        if isinstance(out, dict):  # signature-style exports
            out = out["embeddings"]
        elif isinstance(out, (tuple, list)):  # YAMNet: (scores, embeddings, log_mel)
            out = out[1]
        embeddings = np.asarray(out, np.float32)
        if embeddings.size == 0:
            return np.zeros((0, self.size), np.float32)
        if embeddings.ndim != 2 or embeddings.shape[1] != self.size:
            raise ValueError(f"expected (timesteps, {self.size}) embeddings from the hub model, "
                             f"got shape {embeddings.shape}")
        return embeddings

    def _check_hub(self, handle: str) -> None:
        """Run the hub model on one second of silence, so a wrong model fails at load time."""
        probe_samples = int(round(_PROBE_S * frontend.FRONT_END[self.name].sample_rate_hz))
        try:
            self._hub_embed(np.zeros(probe_samples, np.float32))
        except Exception as error:
            detail = " ".join(str(error).split())[:300]
            raise DatasetError(
                f"the hub model does not give {self.name} embeddings of size {self.size} "
                f"({type(error).__name__}: {detail})", path=handle,
                fix=f"pass a {self.name} hub handle or SavedModel directory") from error


def _load_hub(handle: str):
    """``tensorflow_hub.load(handle)``; a local path that is not a SavedModel is a DatasetError."""
    is_url = "://" in handle
    if not is_url and not (Path(handle) / "saved_model.pb").is_file():
        raise DatasetError("not a TF Hub handle or SavedModel directory (no saved_model.pb)",
                           path=handle,
                           fix="pass 'random', a .weights.h5 file, a TF Hub URL such as "
                               "https://tfhub.dev/google/yamnet/1 or a SavedModel directory")
    _tf.tensorflow()
    import tensorflow_hub as hub
    try:
        return hub.load(handle)
    except (OSError, ValueError) as error:
        detail = " ".join(str(error).split())[:300]
        raise DatasetError(f"could not load the hub model ({type(error).__name__}: {detail})",
                           path=handle,
                           fix="check the handle; offline, download the model on a connected "
                               "machine and pass its SavedModel directory") from error


# --------------------------------------------------------------------------------------------
# Visual encoders
# --------------------------------------------------------------------------------------------
def _visual_constructor(keras, name: str):
    return {"vgg16": keras.applications.VGG16,
            "effnetb0": keras.applications.EfficientNetB0}[name]


class VisualEncoder:
    """VGG16 or EfficientNetB0 (Keras applications, no top, average pooling) on RGB frames.

    Attributes
    ----------
    name : str
        ``"vgg16"`` or ``"effnetb0"``.
    size : int
        Embedding size (512 or 1280).
    source : str
        ``"random"``, ``"imagenet"`` or ``"weights:<path>"``.
    model
        The Keras model. EfficientNetB0 embeds through a copy of its weights taken at its
        first :meth:`embed` (:data:`FOLDED_GRAPH_MODELS`): give other weights to a new
        encoder, not to ``model`` after that.
    """

    def __init__(self, name: str, model, source: str):
        tf = _tf.tensorflow()
        self.name = name
        self.size = VISUAL_MODELS[name]
        self.source = source
        self.model = model
        # Traced once with an open batch dimension: any N, and the short last chunk, reuse the
        # same graph instead of retracing per batch size.
        self._predict = tf.function(
            lambda x: self.model(x, training=False),
            input_signature=[tf.TensorSpec((None, FRAME_SIZE, FRAME_SIZE, 3), tf.float32)])
        self._folded = _FoldedGraph(self._predict) if name in FOLDED_GRAPH_MODELS else None

    def __repr__(self) -> str:
        return f"VisualEncoder(name={self.name!r}, size={self.size}, source={self.source!r})"

    @classmethod
    def load(cls, name: str, weights: str = "random", *, seed: int = 0) -> "VisualEncoder":
        """Build a visual encoder.

        Parameters
        ----------
        name
            ``"vgg16"`` or ``"effnetb0"`` (anything else: :class:`DatasetError`).
        weights
            ``"imagenet"`` (Keras downloads them on a connected machine), ``"random"`` (seeded
            random weights) or the path of a weights file, loaded after building; a file that
            does not fit raises :class:`DatasetError` here.
        seed
            Seed set before building (the random weights).
        """
        keras = _tf.keras()
        key = _model_key(name, VISUAL_MODELS)
        weights = str(weights)
        constructor = _visual_constructor(keras, key)
        keras.utils.set_random_seed(int(seed))
        kwargs = dict(include_top=False, pooling="avg",
                      input_shape=(FRAME_SIZE, FRAME_SIZE, 3))
        if weights == "imagenet":
            try:
                model = constructor(weights="imagenet", **kwargs)
            except Exception as error:  # Keras' download raises a bare Exception offline
                detail = " ".join(str(error).split())[:300]
                raise DatasetError(
                    f"could not get the ImageNet weights of {key} ({detail})",
                    fix="run once on a connected machine (Keras caches them in "
                        "~/.keras/models) or pass the path of a weights file") from error
            return cls(key, model, "imagenet")
        model = constructor(weights=None, **kwargs)
        if weights == "random":
            return cls(key, model, "random")
        _load_weights_file(model, weights, key)
        return cls(key, model, f"weights:{weights}")

    def preprocess(self, frames_uint8: np.ndarray) -> np.ndarray:
        """(N, 224, 224, 3) RGB uint8 frames -> float32 model input.

        VGG16: ``keras.applications.vgg16.preprocess_input`` (ImageNet "caffe" mode: RGB ->
        BGR, the ImageNet channel means subtracted, no scaling). EfficientNetB0: the raw 0-255
        values as float32, because the Keras model rescales and normalises inside.
        """
        frames = self._check_frames(frames_uint8)
        x = frames.astype(np.float32)  # a copy: preprocess_input works in place on floats
        if self.name == "vgg16":
            x = _tf.keras().applications.vgg16.preprocess_input(x)
        return np.asarray(x, np.float32)

    def embed(self, frames_uint8: np.ndarray, *, batch_size: int = 16) -> np.ndarray:
        """(N, size) float32 embeddings of (N, 224, 224, 3) RGB uint8 frames; N may be 0.

        Frames go through the traced model ``batch_size`` at a time (preprocessing per chunk,
        so memory stays at one chunk of float32 frames). A frame's embedding does not depend
        on the others in its chunk. 8-16 frames a call cost the least CPU per frame
        (EfficientNetB0, 2 cores: 15 ms at 8-16, 19 ms at 64: the activations of a larger
        batch fall out of the cache).
        """
        frames = self._check_frames(frames_uint8)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if len(frames) == 0:
            return np.zeros((0, self.size), np.float32)
        out = np.empty((len(frames), self.size), np.float32)
        for i in range(0, len(frames), batch_size):
            out[i:i + batch_size] = self._forward(self.preprocess(frames[i:i + batch_size]))
        return out

    def _forward(self, x: np.ndarray) -> np.ndarray:
        """One model call on a preprocessed float32 (n, 224, 224, 3) batch."""
        if self._folded is not None:
            return self._folded(x)
        return np.asarray(self._predict(x))

    @staticmethod
    def _check_frames(frames) -> np.ndarray:
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[1:] != (FRAME_SIZE, FRAME_SIZE, 3):
            raise ValueError(f"expected (N, {FRAME_SIZE}, {FRAME_SIZE}, 3) RGB frames, "
                             f"got shape {frames.shape}")
        return frames


# --------------------------------------------------------------------------------------------
# An offline stand-in for the TF Hub audio models
# --------------------------------------------------------------------------------------------
def _tf_log_mel(tf, waveform, model: str):
    """``frontend.log_mel_spectrogram(waveform, model)`` in TF ops (float64, as NumPy computes).

    Every constant is ``model``'s entry of ``frontend.FRONT_END``, the table the NumPy front
    end reads (tests/test_frontend.py compares the two for each model).
    """
    params = frontend.front_end_params(model)
    hann = tf.constant(frontend.periodic_hann(params.window_samples), tf.float64)
    mel = tf.constant(frontend.mel_matrix(model), tf.float64)
    x = tf.cast(waveform, tf.float64)
    # (n_frames, 400); none if short
    frames = tf.signal.frame(x, params.window_samples, params.hop_samples, pad_end=False)
    spectrum = tf.abs(tf.signal.rfft(frames * hann, fft_length=[params.fft_length]))
    return tf.math.log(tf.matmul(spectrum, mel) + params.log_offset)


def save_hub_like_savedmodel(name: str, path, *, seed: int = 0) -> Path:
    """Save a SavedModel that is called like the TF Hub VGGish/YAMNet models, for offline use.

    The built-in architecture with the random weights of ``seed`` (the same weights as
    ``AudioEncoder.load(name, seed=seed)``) behind the front end of
    :mod:`~avmit_psych.features.frontend` written in TF ops, with the model's own constants
    (``frontend.FRONT_END[name]``): periodic Hann window of 400 samples, hop 160, FFT 512,
    magnitude, the same mel matrix (a constant), log(x + 0.01) for VGGish and log(x + 0.001)
    for YAMNet, 96-frame examples every 96 (VGGish) or 48 (YAMNet) frames, no padding (so,
    unlike the published YAMNet, a 3.0 s clip gives 5 patches, not 6). ``__call__`` takes a
    1-D float32 waveform (shape [None]) and returns, like the hub models:

    * yamnet: ``(scores (T, 521), embeddings (T, 1024), log_mel_spectrogram (frames, 64))``,
      the scores from a random sigmoid head;
    * vggish: ``embeddings (T, 128)``.

    Returns the directory, for ``AudioEncoder.load(name, str(path))``.
    """
    tf = _tf.tensorflow()
    keras = _tf.keras()
    key = _model_key(name, AUDIO_MODELS)
    model = _build_audio(key, seed)
    head = None
    if key == "yamnet":
        head = keras.layers.Dense(YAMNET_CLASSES, activation="sigmoid", name="scores")
        head.build((None, AUDIO_MODELS["yamnet"]))

    params = frontend.front_end_params(key)
    size = AUDIO_MODELS[key]

    class HubLike(tf.Module):
        def __init__(self):
            super().__init__(name=f"{key}_hub_like")
            self.model = model
            self.head = head

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="waveform")])
        def __call__(self, waveform):
            log_mel = _tf_log_mel(tf, waveform, key)
            examples = tf.signal.frame(log_mel, params.example_frames, params.example_hop_frames,
                                       axis=0)
            # A clip shorter than one example skips the model: a zero-row batch upsets
            # BatchNorm in a restored graph.
            embeddings = tf.cond(
                tf.shape(examples)[0] > 0,
                lambda: tf.reshape(self.model(tf.cast(examples, tf.float32), training=False),
                                   [-1, size]),
                lambda: tf.zeros([0, size], tf.float32))
            if self.head is None:
                return embeddings
            scores = self.head(embeddings)
            return scores, embeddings, tf.cast(log_mel, tf.float32)

    path = Path(path)
    tf.saved_model.save(HubLike(), str(path))
    return path
