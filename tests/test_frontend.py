"""Each built-in audio model's front end is its published one (issue 12, point 1).

Tested against the published constants, written out below as they stand in tensorflow/models
(research/audioset), and against YAMNet's published feature code rebuilt from TF ops. The
NumPy tests need no TensorFlow; the TF ones import it inside the test (see tests/conftest.py).
"""
from __future__ import annotations

import dataclasses
import math
from types import MappingProxyType

import numpy as np
import pytest

from avmit_psych.dataset.schema import DatasetError
from avmit_psych import media
from avmit_psych.features import frontend
from tests.conftest import requires_tf

# tensorflow/models research/audioset/vggish/vggish_params.py ("Hyperparameters used in feature
# and example generation"; NUM_MEL_BINS = NUM_BANDS = 64).
VGGISH_PARAMS = dict(
    SAMPLE_RATE=16000,
    STFT_WINDOW_LENGTH_SECONDS=0.025,
    STFT_HOP_LENGTH_SECONDS=0.010,
    NUM_MEL_BINS=64,
    MEL_MIN_HZ=125,
    MEL_MAX_HZ=7500,
    LOG_OFFSET=0.01,
    EXAMPLE_WINDOW_SECONDS=0.96,
    EXAMPLE_HOP_SECONDS=0.96,
)
# tensorflow/models research/audioset/yamnet/params.py (the Params dataclass).
YAMNET_PARAMS = dict(
    sample_rate=16000.0,
    stft_window_seconds=0.025,
    stft_hop_seconds=0.010,
    mel_bands=64,
    mel_min_hz=125.0,
    mel_max_hz=7500.0,
    log_offset=0.001,
    patch_window_seconds=0.96,
    patch_hop_seconds=0.48,
)
# FrontEndParams field -> published name (the table in FrontEndParams' docstring).
PUBLISHED_NAMES = {
    "vggish": dict(sample_rate_hz="SAMPLE_RATE", window_s="STFT_WINDOW_LENGTH_SECONDS",
                   hop_s="STFT_HOP_LENGTH_SECONDS", n_mels="NUM_MEL_BINS",
                   fmin_hz="MEL_MIN_HZ", fmax_hz="MEL_MAX_HZ", log_offset="LOG_OFFSET",
                   example_window_s="EXAMPLE_WINDOW_SECONDS",
                   example_hop_s="EXAMPLE_HOP_SECONDS"),
    "yamnet": dict(sample_rate_hz="sample_rate", window_s="stft_window_seconds",
                   hop_s="stft_hop_seconds", n_mels="mel_bands", fmin_hz="mel_min_hz",
                   fmax_hz="mel_max_hz", log_offset="log_offset",
                   example_window_s="patch_window_seconds",
                   example_hop_s="patch_hop_seconds"),
}
PUBLISHED = {"vggish": VGGISH_PARAMS, "yamnet": YAMNET_PARAMS}
SOURCES = {"vggish": "tensorflow/models research/audioset/vggish/vggish_params.py",
           "yamnet": "tensorflow/models research/audioset/yamnet/params.py"}

SR = 16000


def _waveform(seconds: float, seed: int = 0) -> np.ndarray:
    """A 440 Hz tone in noise, then 0.2 s of digital silence (mel energy 0 there)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * SR))) / SR
    x = 0.3 * np.sin(2 * np.pi * 440.0 * t) + 0.05 * rng.standard_normal(t.size)
    x[-int(0.2 * SR):] = 0.0
    return np.clip(x, -1, 1).astype(np.float32)


# -- the table ----------------------------------------------------------------------------------
def test_front_end_table_is_the_published_constants():
    assert set(frontend.FRONT_END) == {"vggish", "yamnet"}
    for model, published in PUBLISHED.items():
        params = frontend.FRONT_END[model]
        ours = {field: getattr(params, field) for field in PUBLISHED_NAMES[model]}
        assert ours == {field: published[name]
                        for field, name in PUBLISHED_NAMES[model].items()}, model
        assert params.source == SOURCES[model]
        assert {f.name for f in dataclasses.fields(params)} == set(PUBLISHED_NAMES[model]) | {
            "source"}  # no constant left out of the comparison
    # the constants the two models differ in
    assert frontend.FRONT_END["vggish"].log_offset == 0.01
    assert frontend.FRONT_END["yamnet"].log_offset == 0.001
    assert frontend.FRONT_END["vggish"].example_hop_s == 0.96
    assert frontend.FRONT_END["yamnet"].example_hop_s == 0.48


def test_derived_sizes_are_computed_as_the_published_code_computes_them():
    v = VGGISH_PARAMS  # vggish_input.waveform_to_examples, mel_features.log_mel_spectrogram
    vggish = frontend.FRONT_END["vggish"]
    window = int(round(v["SAMPLE_RATE"] * v["STFT_WINDOW_LENGTH_SECONDS"]))
    assert vggish.window_samples == window == 400
    assert vggish.hop_samples == int(round(v["SAMPLE_RATE"] * v["STFT_HOP_LENGTH_SECONDS"]))
    assert vggish.fft_length == 2 ** int(np.ceil(np.log(window) / np.log(2.0))) == 512
    rate = 1.0 / v["STFT_HOP_LENGTH_SECONDS"]
    assert vggish.example_frames == int(round(v["EXAMPLE_WINDOW_SECONDS"] * rate)) == 96
    assert vggish.example_hop_frames == int(round(v["EXAMPLE_HOP_SECONDS"] * rate)) == 96

    y = YAMNET_PARAMS  # yamnet/features.waveform_to_log_mel_spectrogram_patches
    yamnet = frontend.FRONT_END["yamnet"]
    hop = int(round(y["sample_rate"] * y["stft_hop_seconds"]))
    assert yamnet.window_samples == int(round(y["sample_rate"] * y["stft_window_seconds"]))
    assert yamnet.hop_samples == hop == 160
    assert yamnet.fft_length == 512
    rate = y["sample_rate"] / hop
    assert yamnet.example_frames == int(round(rate * y["patch_window_seconds"])) == 96
    assert yamnet.example_hop_frames == int(round(rate * y["patch_hop_seconds"])) == 48


def test_both_models_take_16k_audio_and_96_by_64_examples():
    from avmit_psych.features import encoders  # imports no TensorFlow until a model is built

    for params in frontend.FRONT_END.values():
        assert params.sample_rate_hz == media.SAMPLE_RATE_HZ  # what extraction decodes to
        assert params.example_shape == encoders.EXAMPLE_SHAPE == (96, 64)


def test_the_table_is_read_only_and_unknown_models_are_refused():
    with pytest.raises(TypeError):
        frontend.FRONT_END["yamnet"] = frontend.FRONT_END["vggish"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        frontend.FRONT_END["yamnet"].log_offset = 0.01
    with pytest.raises(DatasetError, match="vggish, yamnet"):
        frontend.log_mel_examples(np.zeros(SR), "panns")
    assert frontend.front_end_params(" YAMNet ") is frontend.FRONT_END["yamnet"]


# -- log-mel ------------------------------------------------------------------------------------
def test_yamnet_and_vggish_log_mel_differ_exactly_as_their_log_offsets():
    x = _waveform(3.0)
    vggish = frontend.log_mel_spectrogram(x, "vggish")
    yamnet = frontend.log_mel_spectrogram(x, "yamnet")
    assert vggish.shape == yamnet.shape == (298, 64)
    # the same mel energies m under both ...
    np.testing.assert_allclose(np.exp(yamnet) - 0.001, np.exp(vggish) - 0.01,
                               rtol=1e-9, atol=1e-12)
    # ... which are the STFT magnitudes through the mel matrix
    m = frontend.stft_magnitude(x) @ frontend.mel_matrix()
    np.testing.assert_allclose(yamnet - vggish, np.log((m + 0.001) / (m + 0.01)),
                               rtol=0, atol=1e-12)
    # where the clip is silent (m = 0) the two differ by log(0.1); elsewhere by less
    silent = m.sum(axis=1) == 0
    assert silent.sum() >= 15
    np.testing.assert_allclose(yamnet[silent] - vggish[silent], math.log(0.001 / 0.01),
                               rtol=0, atol=1e-12)
    assert np.all(yamnet - vggish < -1e-6)


def test_log_mel_overrides_reach_every_step():
    x = _waveform(1.0, seed=1)
    base = frontend.log_mel_spectrogram(x, "yamnet")
    np.testing.assert_allclose(frontend.log_mel_spectrogram(x, "yamnet", log_offset=0.01),
                               frontend.log_mel_spectrogram(x, "vggish"), rtol=0, atol=0)
    assert frontend.log_mel_spectrogram(x, "yamnet", n_mels=40).shape == (base.shape[0], 40)
    assert frontend.log_mel_spectrogram(x, "yamnet", hop_s=0.02).shape == (49, 64)
    assert not np.allclose(frontend.log_mel_spectrogram(x, "yamnet", fmin_hz=60.0), base)


# -- examples -----------------------------------------------------------------------------------
@pytest.mark.parametrize("model, hop_s, n_examples_3s, n_examples_10s",
                         [("vggish", 0.96, 3, 10), ("yamnet", 0.48, 5, 19)])
def test_examples_every_0_96_s_for_vggish_and_0_48_s_for_yamnet(model, hop_s, n_examples_3s,
                                                                 n_examples_10s):
    for seconds, n_examples in ((3.0, n_examples_3s), (10.0, n_examples_10s)):
        x = _waveform(seconds)
        examples = frontend.log_mel_examples(x, model)
        log_mel = frontend.log_mel_spectrogram(x, model)
        assert examples.shape == (n_examples, 96, 64) and examples.dtype == np.float32
        for k in range(n_examples):  # example k starts at k * hop_s seconds (10 ms frames)
            start = int(round(k * hop_s / 0.010))
            np.testing.assert_array_equal(examples[k],
                                          log_mel[start:start + 96].astype(np.float32))


def test_log_mel_examples_read_every_constant_of_the_models_entry(monkeypatch):
    """A changed table entry changes what log_mel_examples computes, field by field."""
    changed = dataclasses.replace(frontend.FRONT_END["yamnet"], sample_rate_hz=8000,
                                  window_s=0.032, hop_s=0.016, n_mels=40, fmin_hz=60.0,
                                  fmax_hz=3800.0, log_offset=1e-4, example_window_s=0.64,
                                  example_hop_s=0.32)
    x = _waveform(3.0, seed=2)
    expected = frontend.frame_examples(
        frontend.log_mel_spectrogram(x, "vggish", sample_rate_hz=8000, window_s=0.032,
                                     hop_s=0.016, n_mels=40, fmin_hz=60.0, fmax_hz=3800.0,
                                     log_offset=1e-4),
        "vggish", example_window_s=0.64, example_hop_s=0.32, hop_s=0.016)
    monkeypatch.setattr(frontend, "FRONT_END", MappingProxyType(
        {**frontend.FRONT_END, "yamnet": changed}))
    got = frontend.log_mel_examples(x, "yamnet")
    # 48000 samples at 8 kHz: 374 frames of 16 ms, examples of 40 frames every 20
    assert got.shape == expected.shape == (1 + (374 - 40) // 20, 40, 40)
    np.testing.assert_array_equal(got, expected)


# -- against TensorFlow -------------------------------------------------------------------------
def _published_yamnet_features(tf, waveform):
    """yamnet/features.waveform_to_log_mel_spectrogram_patches (non-TFLite branch), in float64,
    with the published params.py values: tf.signal.stft (periodic Hann), the TF mel matrix,
    log(mel + 0.001), patches of 96 frames every 48."""
    p = YAMNET_PARAMS
    window = int(round(p["sample_rate"] * p["stft_window_seconds"]))
    hop = int(round(p["sample_rate"] * p["stft_hop_seconds"]))
    fft_length = 2 ** int(np.ceil(np.log(window) / np.log(2.0)))
    magnitude = tf.abs(tf.signal.stft(tf.constant(waveform, tf.float64), frame_length=window,
                                      frame_step=hop, fft_length=fft_length))
    mel = tf.signal.linear_to_mel_weight_matrix(
        num_mel_bins=p["mel_bands"], num_spectrogram_bins=fft_length // 2 + 1,
        sample_rate=p["sample_rate"], lower_edge_hertz=p["mel_min_hz"],
        upper_edge_hertz=p["mel_max_hz"], dtype=tf.float64)
    log_mel = tf.math.log(tf.matmul(magnitude, mel) + p["log_offset"])
    rate = p["sample_rate"] / hop
    patches = tf.signal.frame(log_mel, int(round(rate * p["patch_window_seconds"])),
                              int(round(rate * p["patch_hop_seconds"])), axis=-2)
    return log_mel.numpy(), patches.numpy()


@requires_tf
def test_yamnet_front_end_equals_yamnets_published_feature_code():
    from avmit_psych import _tf
    tf = _tf.tensorflow()
    x = _waveform(3.0, seed=3)
    log_mel, patches = _published_yamnet_features(tf, x)
    ours = frontend.log_mel_spectrogram(x, "yamnet")
    assert ours.shape == log_mel.shape == (298, 64)
    np.testing.assert_allclose(ours, log_mel, rtol=0, atol=1e-9)
    np.testing.assert_allclose(frontend.log_mel_examples(x, "yamnet"), patches, rtol=0,
                               atol=1e-5)  # float32 examples
    # VGGish's front end (offset 0.01, hop 96) is not YAMNet's
    assert np.abs(frontend.log_mel_spectrogram(x, "vggish") - log_mel).max() > 1.0
    assert len(frontend.log_mel_examples(x, "vggish")) != len(patches)


@requires_tf
def test_mel_matrix_equals_tf_linear_to_mel_weight_matrix():
    from avmit_psych import _tf
    tf = _tf.tensorflow()
    for model, params in frontend.FRONT_END.items():
        tf_mel = tf.signal.linear_to_mel_weight_matrix(
            num_mel_bins=params.n_mels, num_spectrogram_bins=params.fft_length // 2 + 1,
            sample_rate=params.sample_rate_hz, lower_edge_hertz=params.fmin_hz,
            upper_edge_hertz=params.fmax_hz, dtype=tf.float64).numpy()
        np.testing.assert_allclose(frontend.mel_matrix(model), tf_mel, rtol=0, atol=1e-9)


@requires_tf
@pytest.mark.parametrize("model", ["vggish", "yamnet"])
def test_tf_stand_in_front_end_equals_the_numpy_front_end(model):
    from avmit_psych import _tf
    from avmit_psych.features import encoders
    tf = _tf.tensorflow()
    other = {"vggish": "yamnet", "yamnet": "vggish"}[model]
    x = _waveform(3.0, seed=4)
    stand_in = encoders._tf_log_mel(tf, tf.constant(x), model).numpy()
    np.testing.assert_allclose(stand_in, frontend.log_mel_spectrogram(x, model), rtol=0,
                               atol=1e-9)
    assert np.abs(stand_in - frontend.log_mel_spectrogram(x, other)).max() > 1.0


def test_log_mel_in_row_blocks_equals_the_one_product_bit_for_bit():
    """The mel product is taken a few STFT frames at a time (so BLAS keeps it in the calling
    thread); its values are those of the one product, for any number of frames."""
    rng = np.random.default_rng(5)
    weights = frontend.mel_matrix("yamnet")
    for n_frames in [*range(0, 48), 97, 298, 1001]:
        spectrum = np.abs(rng.standard_normal((n_frames, weights.shape[0])))
        np.testing.assert_array_equal(frontend._matmul_in_blocks(spectrum, weights),
                                      spectrum @ weights)
    x = (0.1 * rng.standard_normal(16_000 * 3)).astype(np.float32)
    spectrum = frontend.stft_magnitude(x, "vggish")
    np.testing.assert_array_equal(frontend.log_mel_spectrogram(x, "vggish"),
                                  np.log(spectrum @ frontend.mel_matrix("vggish") + 0.01))
