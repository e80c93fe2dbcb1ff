"""SAVC models on a stimulus suite: the human's correspondence trial, one row per stimulus.

`predict --model SAVC --manifest M --embeddings E` feeds each stimulus's own audio and visual
embeddings (a semantic_swap stimulus: the donor's audio, the source's picture) to the model
and writes one row per stimulus on the manifest's stimulus_id, answer key same/different as
the human correspondence task scores it. The paper's random test pairs stay with `evaluate`.
"""
from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from avmit_psych.dataset import schema, synthetic, tfrecords
from avmit_psych.models import evaluation, savc
from tests.conftest import REPO, requires_tf

SAVC_CONFIG = REPO / "analysis" / "configs" / "savc" / "vggish_vgg16_frnn_avmit.yaml"
SEED = 4
#: (manipulation, level, level_unit) of each stimulus made from a source, as a suite has them
CONDITIONS = [("none", "", ""), ("av_offset", 200, "ms"), ("audio_noise", 0, "dB"),
              ("semantic_swap", None, "donor class"), ("audio_only", "", ""),
              ("visual_only", "", "")]
ANSWERED = ("none", "av_offset", "audio_noise", "semantic_swap")


def _stimulus_embeddings(manipulation, own, donor):
    """(audio, visual) of a stimulus as extraction would embed its file."""
    audio, visual = own
    if manipulation == "semantic_swap":
        return donor[0], visual
    if manipulation == "av_offset":  # 200 ms later: the audio sequence, one step behind
        return np.vstack([np.zeros_like(audio[:1]), audio[:-1]]), visual
    if manipulation == "audio_noise":
        noise = np.random.default_rng(1).normal(0, 1, audio.shape)
        return np.maximum(audio + noise, 0).astype(np.float32), visual
    if manipulation == "audio_only":  # mean-grey frames
        return audio, np.full_like(visual, 0.1)
    if manipulation == "visual_only":  # digital silence
        return np.zeros_like(audio), visual
    return audio, visual


def write_suite(root, manifest_path, *, per_class: int = 1):
    """A suite as `stimuli generate` + `features extract` leave it: manifest.csv (no
    tfrecord_filename column) and one TFRecord per stimulus at <label>/<stimulus>.tfrecord.
    Returns (manifest, {source filename: (audio, visual)})."""
    labels = [c for c in schema.TEST_CLASSES for _ in range(per_class)]
    sources = [f"{c}/yt-{c}-{k}.mp4" for c in schema.TEST_CLASSES for k in range(per_class)]
    new_names = [f"{c}/{c}_{k + 1}" for c in schema.TEST_CLASSES for k in range(per_class)]
    own = dict(zip(sources, synthetic.simulate_embeddings(labels, seed=SEED, sample_seed=9,
                                                          class_separation=1.5)))
    donor_of = {i: (i + 5 * per_class) % len(sources) for i in range(len(sources))}  # another class
    rows = []
    for i, (source, label, new) in enumerate(zip(sources, labels, new_names)):
        donor = sources[donor_of[i]]
        for manipulation, level, unit in CONDITIONS:
            tag = manipulation if level in ("", None) else \
                f"{manipulation}_{level:+g}ms" if manipulation == "av_offset" else \
                f"{manipulation}_{level:g}dB"
            sid = f"{new}__{tag}"
            swap = manipulation == "semantic_swap"
            audio, visual = _stimulus_embeddings(manipulation, own[source], own[donor])
            tfrecords.write_example(root / tfrecords.manifest_tfrecord_filename(label, sid),
                                    source, label, audio, visual)
            rows.append({"stimulus_id": sid, "path": sid + ".mp4", "source_filename": source,
                         "label": label, "manipulation": manipulation,
                         "level": labels[donor_of[i]] if swap else level, "level_unit": unit,
                         "audio_source": donor if swap else
                         ("" if manipulation == "visual_only" else source)})
    manifest = pd.DataFrame(rows)
    schema.write_csv(manifest, manifest_path)
    return manifest, own


@pytest.fixture(autouse=True)
def _split_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AVMIT_PSYCH_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    base = tmp_path_factory.mktemp("suite")
    manifest, own = write_suite(base / "embeddings", base / "manifest.csv")
    return base, manifest, own


@pytest.fixture(scope="module")
def savc_model(tmp_path_factory):
    """A SAVC model trained (briefly) and saved by the toolkit's trainer."""
    from avmit_psych.models import config, training
    base = tmp_path_factory.mktemp("savc")
    paths = synthetic.write_embedding_dataset(
        base / "root", base / "csv", seed=SEED, class_separation=1.5,
        per_class={"AVMIT_train": 10, "AVMIT_validation": 3, "test_set": 5})
    load = {k: tfrecords.load_split(p, base / "root", cache=False) for k, p in paths.items()}
    cfg = config.load_config(SAVC_CONFIG).replace(batch_size=64, learning_rate=3e-3)
    result = training.train(cfg, load["AVMIT_train"], load["AVMIT_validation"], base / "run",
                            epochs=2, seed=0, verbose=0)
    return result.out_dir, base, paths


def _predict(cli, model_dir, manifest, root, out, *extra, flag="--embeddings"):
    return cli("analysis", ["predict", "--model", model_dir, "--manifest", manifest, flag, root,
                            "--out", out, *extra])


# -- the answer key ---------------------------------------------------------------------------
@pytest.mark.parametrize("manipulation, key", [
    ("none", "same"), ("av_offset", "same"), ("audio_noise", "same"), ("visual_noise", "same"),
    ("semantic_swap", "different"), ("audio_only", None), ("visual_only", None)])
def test_correspondence_answer_key(manipulation, key):
    assert savc.correspondence_answer(manipulation) == key


def test_the_human_script_scores_the_same_key_on_every_question_both_ask():
    """The human task's correct_response and the models' key agree wherever the models ask."""
    from avmit_psych.experiments import human_vs_dnn
    for manipulation, _, _ in CONDITIONS:
        key = savc.correspondence_answer(manipulation)
        if key is not None:
            assert human_vs_dnn.correct_response(
                "correspondence", {"label": "barking", "manipulation": manipulation}) == key


class _FixedModel:
    """Stands in for a Keras SAVC model: p(congruent) is the mean of each pair's first audio
    value, so every input row's answer is known."""

    def predict(self, inputs, batch_size=None, verbose=0):
        audio, visual = inputs
        assert len(audio) == len(visual)
        p_same = audio[:, 0, 0].astype(np.float64)
        return np.stack([1.0 - p_same, p_same], axis=1)


class _Cfg:
    name = "stub_savc"


def test_predict_correspondence_rows_keys_and_threshold():
    manipulations = ["none", "semantic_swap", "audio_only", "av_offset", "visual_only",
                     "semantic_swap"]
    p_same = np.array([0.9, 0.5, 0.7, 0.49, 0.3, 0.1], dtype=np.float32)
    audio = np.zeros((6, 7, 128), np.float32)
    audio[:, 0, 0] = p_same
    rows = pd.DataFrame({"stimulus_id": [f"s{i}" for i in range(6)],
                         "manipulation": manipulations,
                         "level": ["", "diving", "", 200, "", "barking"],
                         "audio_source": ["a0", "d1", "a2", "a3", "", "d5"],
                         "source_filename": [f"a{i}" for i in range(6)],
                         "row": np.arange(1, 7)})
    split = tfrecords.Split(audio, np.zeros((6, 7, 512), np.float32),
                            np.zeros(6, np.int64), schema.TEST_CLASSES, rows)
    pred, metrics = evaluation.predict_correspondence(_Cfg(), _FixedModel(), split)
    assert pred["stimulus_id"].tolist() == ["s0", "s1", "s3", "s5"]
    assert list(pred.columns[:7]) == evaluation.PREDICTION_COLUMNS
    assert pred["label"].tolist() == ["same", "different", "same", "different"]
    assert pred["response"].tolist() == ["same", "same", "different", "different"]  # 0.5: same
    assert pred["correct"].tolist() == [True, False, False, True]
    np.testing.assert_allclose(pred["p_same"] + pred["p_different"], 1.0)
    first = schema.TEST_CLASSES[0]  # every row's label index is 0
    assert pred["audio_class"].tolist() == [first, "diving", first, "barking"]
    assert pred["visual_class"].tolist() == [first] * 4
    assert pred["audio_source"].tolist() == ["a0", "d1", "a3", "d5"]
    assert pred["visual_source"].tolist() == ["a0", "a1", "a3", "a5"]
    assert (pred["task"] == "correspondence").all()
    assert metrics["n"] == 4 and metrics["accuracy"] == 0.5
    assert metrics["accuracy_same"] == 0.5 and metrics["accuracy_different"] == 0.5
    assert metrics["left_out"] == {"audio_only": 1, "visual_only": 1}
    # the cross-entropy against the key, computed here independently
    p_key = np.array([0.9, 0.5, 0.49, 0.9])  # p of the right answer
    assert metrics["loss"] == pytest.approx(-np.mean(np.log(p_key)), rel=1e-6)


def test_predict_correspondence_needs_manipulations():
    split = tfrecords.Split(np.zeros((1, 7, 128), np.float32), np.zeros((1, 7, 512), np.float32),
                            np.zeros(1, np.int64), schema.TEST_CLASSES,
                            pd.DataFrame({"stimulus_id": ["s0"], "row": [1]}))
    with pytest.raises(schema.DatasetError, match="no manipulation column"):
        evaluation.predict_correspondence(_Cfg(), _FixedModel(), split)
    split.rows["manipulation"] = [np.nan]
    with pytest.raises(schema.DatasetError, match="stimulus 's0' has no manipulation"):
        evaluation.predict_correspondence(_Cfg(), _FixedModel(), split)


# -- the predict command ----------------------------------------------------------------------
@requires_tf
def test_predict_on_a_suite_answers_each_stimulus_s_correspondence_trial(
        suite, savc_model, cli, tmp_path):
    base, manifest, own = suite
    model_dir, _, _ = savc_model
    r = _predict(cli, model_dir, base / "manifest.csv", base / "embeddings", tmp_path / "p.csv")
    assert r.code == 0, r.err
    pred = pd.read_csv(tmp_path / "p.csv", keep_default_na=False)
    asked = manifest[manifest["manipulation"].isin(ANSWERED)]
    assert pred["stimulus_id"].tolist() == asked["stimulus_id"].tolist()  # one row each, ids equal
    assert pred["stimulus_id"].is_unique
    assert list(pred.columns[:7]) == evaluation.PREDICTION_COLUMNS
    assert set(pred["response"]) <= {"same", "different"}
    expected_key = np.where(asked["manipulation"] == "semantic_swap", "different", "same")
    assert pred["label"].tolist() == expected_key.tolist()
    assert pred["manipulation"].tolist() == asked["manipulation"].tolist()
    assert pred["level"].astype(str).tolist() == asked["level"].astype(str).tolist()
    assert ((pred["p_same"] >= 0) & (pred["p_same"] <= 1)).all()
    np.testing.assert_allclose(pred["p_same"] + pred["p_different"], 1.0, atol=1e-6)
    assert (pred["response"] == np.where(pred["p_same"] >= 0.5, "same", "different")).all()
    assert (pred["correct"] == (pred["response"] == pred["label"])).all()
    # audio_only / visual_only: no correspondence question; said, not silently dropped
    assert "left out 32 stimuli without a correspondence question" in r.err
    assert "16 audio_only" in r.err and "16 visual_only" in r.err
    metrics = json.loads(r.out.strip().splitlines()[-1])
    assert metrics["n"] == len(pred) and metrics["n_left_out"] == 32
    assert metrics["accuracy"] == pytest.approx(pred["correct"].mean())
    # --tfrecords, the flag's older name, does the same
    r = _predict(cli, model_dir, base / "manifest.csv", base / "embeddings", tmp_path / "q.csv",
                 flag="--tfrecords")
    assert r.code == 0, r.err
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "q.csv"), pd.read_csv(tmp_path / "p.csv"))


@requires_tf
def test_p_same_is_the_model_on_the_human_s_sound_and_picture(suite, savc_model, cli, tmp_path):
    """Each row's p_same is the model's answer for that stimulus's own audio and picture,
    built here from the manifest's audio_source and source_filename (a swap: the donor's
    audio with the source's frames), not from a random partner."""
    from avmit_psych.models import training
    base, manifest, own = suite
    model_dir, _, _ = savc_model
    r = _predict(cli, model_dir, base / "manifest.csv", base / "embeddings", tmp_path / "p.csv")
    assert r.code == 0, r.err
    pred = pd.read_csv(tmp_path / "p.csv").set_index("stimulus_id")
    cfg, model = training.load_trained(model_dir)
    rows = manifest.set_index("stimulus_id").loc[pred.index]
    audio, visual = [], []
    for sid, row in rows.iterrows():
        a, v = _stimulus_embeddings(row["manipulation"], own[row["source_filename"]],
                                    own[row["audio_source"]])
        audio.append(tfrecords.pad_timesteps(a, cfg.timesteps))
        visual.append(tfrecords.pad_timesteps(v, cfg.timesteps))
    p = model.predict([np.stack(audio), np.stack(visual)], verbose=0)
    np.testing.assert_allclose(pred["p_same"].to_numpy(), p[:, 1], atol=1e-5)
    swaps = rows["manipulation"] == "semantic_swap"
    assert (rows.loc[swaps, "audio_source"] != rows.loc[swaps, "source_filename"]).all()
    assert (pred.loc[swaps.to_numpy(), "audio_class"] != pred.loc[swaps.to_numpy(),
                                                                   "visual_class"]).all()


@requires_tf
def test_a_missing_or_broken_stimulus_tfrecord_is_one_line_naming_it(suite, savc_model, cli,
                                                                     tmp_path):
    base, manifest, _ = suite
    model_dir, _, _ = savc_model
    root = tmp_path / "embeddings"
    shutil.copytree(base / "embeddings", root)
    gone = manifest["stimulus_id"].iloc[7]
    gone_file = root / tfrecords.manifest_tfrecord_filename(manifest["label"].iloc[7], gone)
    gone_file.unlink()
    r = _predict(cli, model_dir, base / "manifest.csv", root, tmp_path / "p.csv")
    assert r.code == 2
    assert r.err.count("\n") == 1 and r.err.startswith("error: ")
    assert f"stimulus '{gone}'" in r.err and str(gone_file) in r.err
    assert "TFRecord file not found" in r.err and "--skip-bad" in r.err
    assert not (tmp_path / "p.csv").exists()
    # a corrupt one (cut short) is named the same way
    broken = manifest["stimulus_id"].iloc[2]
    broken_file = root / tfrecords.manifest_tfrecord_filename(manifest["label"].iloc[2], broken)
    broken_file.write_bytes(broken_file.read_bytes()[:40])
    r = _predict(cli, model_dir, base / "manifest.csv", root, tmp_path / "p.csv", "--no-cache")
    assert r.code == 2 and r.err.count("\n") == 1
    assert f"stimulus '{broken}'" in r.err and str(broken_file) in r.err
    # --skip-bad: both left out and listed by stimulus, the rest predicted
    r = _predict(cli, model_dir, base / "manifest.csv", root, tmp_path / "p.csv", "--skip-bad")
    assert r.code == 0, r.err
    pred = pd.read_csv(tmp_path / "p.csv")
    asked = manifest[manifest["manipulation"].isin(ANSWERED)
                     & ~manifest["stimulus_id"].isin([gone, broken])]
    assert pred["stimulus_id"].tolist() == asked["stimulus_id"].tolist()
    skipped = pd.read_csv(tmp_path / "p_skipped.csv")
    assert sorted(skipped["stimulus_id"]) == sorted([gone, broken])
    assert f"(stimulus {gone})" in r.err


@requires_tf
def test_savc_predict_refuses_a_csv_without_manipulations(savc_model, cli, tmp_path):
    model_dir, base, paths = savc_model
    r = _predict(cli, model_dir, paths["test_set"], base / "root", tmp_path / "p.csv")
    assert r.code == 2 and r.err.count("\n") == 1
    assert "no stimulus_id column" in r.err and "`evaluate`" in r.err


@requires_tf
def test_evaluate_still_scores_the_paper_s_random_test_pairs(savc_model, cli, tmp_path):
    model_dir, base, paths = savc_model
    r = cli("analysis", ["evaluate", "--model", model_dir, "--tfrecords", base / "root",
                         "--test-csv", paths["test_set"], "--out", tmp_path / "ev"])
    assert r.code == 0, r.err
    pred = pd.read_csv(tmp_path / "ev" / "predictions.csv")
    assert len(pred) == 2 * 16 * 5 and (pred["label"] == "congruent").sum() == 16 * 5
    assert pred["stimulus_id"].str.contains("|", regex=False).all()
    assert {"p_congruent", "p_incongruent"} <= set(pred.columns)
