"""The feature encoders: VGGish/YAMNet (built-in, weights file, hub), VGG16/EfficientNetB0.

Everything runs offline: random weights, weights files written here and SavedModels written by
``save_hub_like_savedmodel``; ImageNet weights and TF Hub URLs are never touched.
"""
from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import requires_tf  # noqa: E402

pytestmark = requires_tf

from avmit_psych import _tf  # noqa: E402
from avmit_psych.dataset.schema import DatasetError  # noqa: E402
from avmit_psych.features import encoders, frontend  # noqa: E402
from avmit_psych.features.encoders import AudioEncoder, VisualEncoder  # noqa: E402

SR = frontend.FRONT_END["vggish"].sample_rate_hz  # YAMNet's too (test_frontend.py)


def _waveform(seconds: float, seed: int = 0) -> np.ndarray:
    """Noise plus a tone, in [-1, 1]."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * SR))) / SR
    x = 0.3 * np.sin(2 * np.pi * 440.0 * t) + 0.05 * rng.standard_normal(t.size)
    return np.clip(x, -1, 1).astype(np.float32)


def _frames(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, 224, 224, 3), dtype=np.uint8)


# Each model is built once per module (VGGish alone has 72 M parameters).
@pytest.fixture(scope="module")
def vggish():
    return AudioEncoder.load("vggish", seed=0)


@pytest.fixture(scope="module")
def yamnet():
    return AudioEncoder.load("yamnet", seed=0)


@pytest.fixture(scope="module")
def vgg16():
    return VisualEncoder.load("vgg16", seed=0)


@pytest.fixture(scope="module")
def effnetb0():
    return VisualEncoder.load("effnetb0", seed=0)


@pytest.fixture(scope="module")
def clip_3s():
    return _waveform(3.0)


# -- shapes ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, timesteps", [("vggish", 3), ("yamnet", 5)])
def test_audio_embeddings_of_a_3s_clip(request, clip_3s, name, timesteps):
    enc = request.getfixturevalue(name)
    emb = enc.embed(clip_3s)
    assert (enc.name, enc.size, enc.source) == (name, encoders.AUDIO_MODELS[name], "random")
    assert emb.shape == (timesteps, encoders.AUDIO_MODELS[name]) and emb.dtype == np.float32
    assert np.all(np.isfinite(emb)) and np.abs(emb).mean() > 1e-3  # not a vanished signal


@pytest.mark.parametrize("name", ["vggish", "yamnet"])
def test_audio_too_short_for_one_example_gives_no_rows(request, name):
    enc = request.getfixturevalue(name)
    for n_samples in (0, 100, int(0.9 * SR)):
        emb = enc.embed(np.zeros(n_samples, np.float32))
        assert emb.shape == (0, enc.size) and emb.dtype == np.float32


@pytest.mark.parametrize("name, n_frames", [("vgg16", 4), ("effnetb0", 7)])
def test_visual_embeddings_shapes(request, name, n_frames):
    enc = request.getfixturevalue(name)
    emb = enc.embed(_frames(n_frames))
    assert emb.shape == (n_frames, encoders.VISUAL_MODELS[name]) and emb.dtype == np.float32
    assert enc.embed(np.zeros((0, 224, 224, 3), np.uint8)).shape == (0, enc.size)


def test_visual_chunks_agree_and_trace_once(effnetb0):
    frames = _frames(7, seed=1)
    whole = effnetb0.embed(frames)
    chunked = effnetb0.embed(frames, batch_size=3)  # 3 + 3 + 1
    np.testing.assert_allclose(chunked, whole, rtol=1e-4, atol=1e-5)
    effnetb0.embed(frames[:2])
    # an open batch dimension: every N and the short last chunk reuse one graph
    assert effnetb0._predict.experimental_get_tracing_count() == 1


def test_bad_input_shapes_and_dtypes_are_refused(yamnet, effnetb0):
    with pytest.raises(ValueError, match="float waveform"):
        yamnet.embed((_waveform(1.0) * 32767).astype(np.int16))
    with pytest.raises(ValueError, match="mono"):
        yamnet.embed(np.zeros((SR, 2), np.float32))
    with pytest.raises(ValueError, match="224"):
        effnetb0.embed(np.zeros((2, 112, 112, 3), np.uint8))


# -- batching ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["vggish", "yamnet"])
def test_embed_many_is_one_model_call_and_equals_embed(request, monkeypatch, name):
    enc = request.getfixturevalue(name)
    waveforms = [_waveform(3.0, 1), _waveform(0.5, 2), _waveform(2.0, 3), _waveform(4.2, 4)]
    singles = [enc.embed(w) for w in waveforms]
    calls = []
    forward = enc._forward

    def counting(examples):
        calls.append(len(examples))
        return forward(examples)

    monkeypatch.setattr(enc, "_forward", counting)
    many = enc.embed_many(waveforms)
    assert len(calls) == 1 and calls[0] == sum(len(s) for s in singles)
    assert [m.shape for m in many] == [s.shape for s in singles]
    assert many[1].shape == (0, enc.size)  # 0.5 s: shorter than one example
    for m, s in zip(many, singles):
        np.testing.assert_allclose(m, s, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["effnetb0", "yamnet"])
def test_the_folded_graph_gives_the_keras_models_embeddings_whatever_the_batch(request, name):
    """EfficientNetB0 and YAMNet embed through their graph with the weights folded in
    (encoders.FOLDED_GRAPH_MODELS): the Keras model's embeddings to within 1e-5 of their
    largest value (two frames of a clip differ by far more: bench_extract checks), and an input
    alone gets the embedding it gets among others, bit for bit."""
    enc = request.getfixturevalue(name)
    assert name in encoders.FOLDED_GRAPH_MODELS
    x = (enc.preprocess(_frames(5, seed=2)) if name == "effnetb0"
         else frontend.log_mel_examples(_waveform(3.0, seed=2), name))
    keras_out = np.asarray(enc.model(x, training=False))
    folded = enc._forward(x)
    np.testing.assert_allclose(folded, keras_out, rtol=0, atol=1e-5 * np.abs(keras_out).max())
    for i in range(len(x)):
        np.testing.assert_array_equal(enc._forward(x[i:i + 1])[0], folded[i])
    np.testing.assert_array_equal(enc._forward(x[1:4]), folded[1:4])


# -- seeds -------------------------------------------------------------------------------------
def test_audio_seed_fixes_the_weights(yamnet, clip_3s):
    same = AudioEncoder.load("yamnet", seed=0)
    other = AudioEncoder.load("yamnet", seed=1)
    for a, b in zip(yamnet.model.get_weights(), same.model.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(same.embed(clip_3s), yamnet.embed(clip_3s))
    assert not np.allclose(other.embed(clip_3s), yamnet.embed(clip_3s))


def test_visual_seed_fixes_the_weights(vgg16):
    frames = _frames(1, seed=3)
    same = VisualEncoder.load("vgg16", seed=0)
    other = VisualEncoder.load("vgg16", seed=1)
    for a, b in zip(vgg16.model.get_weights(), same.model.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(same.embed(frames), vgg16.embed(frames))
    assert not np.allclose(other.model.get_weights()[0], vgg16.model.get_weights()[0])


# (VGGish: the hub-like test below rebuilds it from seed 0 and gets the fixture's embeddings.)


# -- preprocessing -----------------------------------------------------------------------------
def test_vgg16_preprocess_is_keras_caffe_mode(vgg16):
    frames = _frames(3, seed=4)
    keras = _tf.keras()
    expected = keras.applications.vgg16.preprocess_input(frames.astype(np.float32))
    got = vgg16.preprocess(frames)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)
    # BGR, ImageNet means subtracted: pixel (R, G, B) = (255, 0, 0) -> (-103.939, -116.779, 131.32)
    red = np.zeros((1, 224, 224, 3), np.uint8)
    red[..., 0] = 255
    np.testing.assert_allclose(vgg16.preprocess(red)[0, 0, 0], [-103.939, -116.779, 131.32],
                               atol=1e-3)
    assert frames.dtype == np.uint8 and frames.max() > 200  # the input is left alone


def test_effnetb0_preprocess_keeps_0_to_255(effnetb0):
    frames = _frames(2, seed=5)
    got = effnetb0.preprocess(frames)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, frames.astype(np.float32))


# -- weights files -----------------------------------------------------------------------------
def test_audio_weights_file_round_trip(yamnet, clip_3s, tmp_path):
    path = tmp_path / "x.weights.h5"
    yamnet.model.save_weights(str(path))
    loaded = AudioEncoder.load("yamnet", str(path), seed=5)  # a different seed: the file wins
    assert loaded.source == f"weights:{path}"
    np.testing.assert_array_equal(loaded.embed(clip_3s), yamnet.embed(clip_3s))


def test_audio_weights_file_of_the_other_architecture_is_refused(yamnet, tmp_path):
    path = tmp_path / "x.weights.h5"
    yamnet.model.save_weights(str(path))
    with pytest.raises(DatasetError, match="x.weights.h5") as info:
        AudioEncoder.load("vggish", str(path))
    assert "vggish" in str(info.value)
    with pytest.raises(DatasetError, match="missing.weights.h5"):
        AudioEncoder.load("yamnet", str(tmp_path / "missing.weights.h5"))


def test_visual_weights_file_round_trip_and_wrong_architecture(vgg16, effnetb0, tmp_path):
    path = tmp_path / "x.weights.h5"
    vgg16.model.save_weights(str(path))
    frames = _frames(1, seed=6)
    loaded = VisualEncoder.load("vgg16", str(path), seed=5)
    assert loaded.source == f"weights:{path}"
    np.testing.assert_array_equal(loaded.embed(frames), vgg16.embed(frames))
    other = tmp_path / "effnet.weights.h5"
    effnetb0.model.save_weights(str(other))
    with pytest.raises(DatasetError, match="effnet.weights.h5"):
        VisualEncoder.load("vgg16", str(other))


# -- hub path (local SavedModels only) ---------------------------------------------------------
@pytest.mark.parametrize("name, timesteps", [("yamnet", 5), ("vggish", 3)])
def test_hub_like_savedmodel_equals_the_builtin_model(request, tmp_path, clip_3s, name,
                                                      timesteps):
    pytest.importorskip("tensorflow_hub")
    builtin = request.getfixturevalue(name)
    path = encoders.save_hub_like_savedmodel(name, tmp_path / name, seed=0)
    hub_enc = AudioEncoder.load(name, str(path))
    assert hub_enc.source == f"hub:{path}"
    emb = hub_enc.embed(clip_3s)
    assert emb.shape == (timesteps, builtin.size)
    # same weights, and a TF front end equal to frontend.py (the model's own constants),
    # give the same embeddings
    np.testing.assert_allclose(emb, builtin.embed(clip_3s), rtol=1e-4, atol=1e-4)
    assert hub_enc.embed(np.zeros(100, np.float32)).shape == (0, builtin.size)
    if name == "yamnet":  # called like the hub model: (scores, embeddings, log_mel)
        tf = _tf.tensorflow()
        scores, embeddings, log_mel = hub_enc.model(tf.constant(clip_3s))
        assert scores.shape == (timesteps, encoders.YAMNET_CLASSES)
        # YAMNet's own front end, log(mel + 0.001), not VGGish's log(mel + 0.01)
        np.testing.assert_allclose(log_mel.numpy(),
                                   frontend.log_mel_spectrogram(clip_3s, "yamnet"), atol=1e-4)


def test_hub_handle_that_is_not_a_savedmodel_is_refused(tmp_path):
    with pytest.raises(DatasetError, match="saved_model.pb"):
        AudioEncoder.load("yamnet", str(tmp_path))


# -- names -------------------------------------------------------------------------------------
def test_unknown_model_names_are_refused(tmp_path):
    with pytest.raises(DatasetError, match="vggish, yamnet"):
        AudioEncoder.load("vgg16")
    with pytest.raises(DatasetError, match="effnetb0, vgg16"):
        VisualEncoder.load("yamnet")
    with pytest.raises(DatasetError):
        encoders.save_hub_like_savedmodel("panns", tmp_path / "m")


# -- architectures -----------------------------------------------------------------------------
def test_architectures_as_published(vggish, yamnet):
    assert vggish.model.count_params() == 72_141_184
    assert yamnet.model.count_params() == 3_217_344
    assert vggish.model.get_layer("fc2").activation.__name__ == "linear"  # vggish_slim: no ReLU
    assert vggish.model.get_layer("fc1_2").activation.__name__ == "relu"
    strides = [layer.strides[0] for layer in yamnet.model.layers
               if type(layer).__name__ in ("Conv2D", "DepthwiseConv2D")
               and layer.kernel_size == (3, 3)]
    assert strides == [s for _, _, s, _ in encoders._YAMNET_LAYER_DEFS]
    assert yamnet.model.output_shape == (None, 1024)
