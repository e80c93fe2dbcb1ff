"""The baselines: configs, architectures (Table 5), training, evaluation, SAVC pairs, search."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import requires_tf  # noqa: E402

pytestmark = requires_tf

from avmit_psych.dataset import synthetic, tfrecords  # noqa: E402
from avmit_psych.models import (architectures, config, evaluation, paper, savc,  # noqa: E402
                                search, training)
from tests.conftest import REPO  # noqa: E402

CONFIGS = REPO / "analysis" / "configs"

#: SAVC trainable parameters (documented in analysis/configs/savc and the README): two
#: Dense(128) per modality, the RNN(256) on one distance per timestep, Dense(2).
SAVC_TRAINABLE_PARAMS = {
    ("vggish_vgg16", "frnn"): 181_762, ("vggish_vgg16", "gru"): 314_626,
    ("vggish_vgg16", "lstm"): 379_906, ("yamnet_effnetb0", "frnn"): 394_754,
    ("yamnet_effnetb0", "gru"): 527_618, ("yamnet_effnetb0", "lstm"): 592_898,
}


# -- configs and architectures ----------------------------------------------------------------
def test_there_are_12_recognition_and_12_savc_configs():
    rec = sorted(p.stem for p in (CONFIGS / "recognition").glob("*.yaml"))
    sv = sorted(p.stem for p in (CONFIGS / "savc").glob("*.yaml"))
    expected = sorted(f"{e}_{r}_{t}" for e in ("yamnet_effnetb0", "vggish_vgg16")
                      for r in ("frnn", "gru", "lstm") for t in ("avmit", "mit16"))
    assert rec == expected and sv == expected


@pytest.mark.parametrize("path", sorted((CONFIGS / "recognition").glob("*_avmit.yaml")),
                         ids=lambda p: p.stem)
def test_dry_run_reports_table_5_trainable_params(cli, path):
    r = cli("analysis", ["train", "--config", path, "--dry-run"])
    assert r.code == 0, r.err
    last = json.loads(r.out.strip().splitlines()[-1])
    cfg = config.load_config(path)
    assert last["trainable_params"] == paper.TABLE5_TRAINABLE_PARAMS[(cfg.embeddings, cfg.rnn)]
    assert "Trainable params" in r.out  # the model summary is printed first


@pytest.mark.parametrize("path", sorted((CONFIGS / "savc").glob("*.yaml")), ids=lambda p: p.stem)
def test_savc_trainable_params_are_as_documented(path):
    cfg = config.load_config(path)
    model = architectures.build_model(cfg)
    assert architectures.trainable_params(model) == \
        SAVC_TRAINABLE_PARAMS[(cfg.embeddings, cfg.rnn)]
    assert model.output_shape == (None, 2)
    assert cfg.batch_size == 512 and cfg.learning_rate == 1e-4 and cfg.weight_decay == 1e-5


def test_savc_parameter_counts_are_documented_in_the_configs():
    for (emb, rnn), n in SAVC_TRAINABLE_PARAMS.items():
        text = (CONFIGS / "savc" / f"{emb}_{rnn}_avmit.yaml").read_text()
        assert f"{n:,} trainable parameters" in text


def test_mit16_configs_match_their_avmit_twins():
    for path in (CONFIGS / "recognition").glob("*_avmit.yaml"):
        a = config.load_config(path)
        m = config.load_config(path.with_name(path.name.replace("_avmit", "_mit16")))
        assert a.replace(name=m.name, train_set="mit16") == m


def test_published_configs_load_and_build(avmit_reference):
    published = sorted((avmit_reference / "published_configs").glob("*.yaml"))
    assert len(published) == 24
    for path in published:
        cfg = config.load_config(path)
        model = architectures.build_model(cfg)
        n = architectures.trainable_params(model)
        if cfg.task == "recognition":
            assert n == paper.TABLE5_TRAINABLE_PARAMS[(cfg.embeddings, cfg.rnn)], path.name
            ours = config.load_config(CONFIGS / "recognition" /
                                      f"{cfg.embeddings}_{cfg.rnn}_{cfg.train_set}.yaml")
            assert (cfg.rnn_units, cfg.bottleneck, cfg.activation, cfg.dropout) == \
                (ours.rnn_units, ours.bottleneck, ours.activation, ours.dropout)
            assert cfg.learning_rate == pytest.approx(ours.learning_rate, rel=1e-4)
        else:
            assert n == SAVC_TRAINABLE_PARAMS[(cfg.embeddings, cfg.rnn)], path.name


@pytest.mark.parametrize("text, expected", [
    ("task: recognition\nembeddings: vggish_vgg16\ntrain_set: avmit\nrnn: gru\nrnn_units: 8\n"
     "dropout: 0.1\nlearning_rate: 0.001\nbottleneck: 8\nactivation: relu\nbatchsize: 4\n",
     "column 'batchsize': unknown key 'batchsize'. Fix: did you mean 'batch_size'?"),
    ("task: recognition\nembeddings: vggish\ntrain_set: avmit\nrnn: gru\nrnn_units: 8\n"
     "dropout: 0.1\nlearning_rate: 0.001\nbottleneck: 8\nactivation: relu\n",
     "'vggish' is not a valid embeddings. Fix: use one of: vggish_vgg16, yamnet_effnetb0"),
    ("task: recognition\nembeddings: vggish_vgg16\ntrain_set: avmit\nrnn: transformer\n"
     "rnn_units: 8\ndropout: 0.1\nlearning_rate: 0.001\nbottleneck: 8\nactivation: relu\n",
     "'transformer' is not a valid rnn"),
    ("task: recognition\nembeddings: vggish_vgg16\ntrain_set: avmit\nrnn: gru\nrnn_units: -3\n"
     "dropout: 0.1\nlearning_rate: 0.001\nbottleneck: 8\nactivation: relu\n",
     "rnn_units must be a whole number >= 1, got -3"),
    ("task: recognition\nembeddings: vggish_vgg16\ntrain_set: avmit\nrnn: gru\nrnn_units: 8\n"
     "dropout: 1.5\nlearning_rate: 0.001\nbottleneck: 8\nactivation: relu\n",
     "dropout must be in [0, 1)"),
    ("task: recognition\nembeddings: vggish_vgg16\nrnn: gru\nrnn_units: 8\n"
     "dropout: 0.1\nlearning_rate: 0.001\nbottleneck: 8\nactivation: relu\n",
     "missing key 'train_set'"),
    ("task: [unclosed\n", "not valid YAML"),
])
def test_bad_configs_exit_2_with_a_clear_message(tmp_path, cli, text, expected):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    r = cli("analysis", ["train", "--config", path, "--dry-run"])
    assert r.code == 2
    assert expected in r.err and str(path) in r.err
    assert r.err.count("\n") == 1


# -- SAVC pairs -------------------------------------------------------------------------------
def test_savc_sampler_balance_and_spread():
    labels = np.repeat(np.arange(16), 405)
    p = savc.sample_pairs(labels, seed=3, epoch=0)
    assert len(p) == 2 * len(labels)
    assert p.congruent.sum() == len(labels)  # exactly balanced
    a_cls, v_cls = labels[p.audio_index], labels[p.visual_index]
    assert (a_cls[p.congruent == 1] == v_cls[p.congruent == 1]).all()
    assert (a_cls[p.congruent == 0] != v_cls[p.congruent == 0]).all()
    for c in range(16):
        partners = Counter(v_cls[(p.congruent == 0) & (a_cls == c)])
        assert set(partners) == set(range(16)) - {c}
        assert set(partners.values()) == {27}  # 405 / 15, even over the other 15
    # each audio stream is used once congruently and once incongruently
    assert Counter(p.audio_index.tolist()) == {i: 2 for i in range(len(labels))}
    q = savc.sample_pairs(labels, seed=3, epoch=1)
    assert (q.visual_index != p.visual_index).mean() > 0.9  # resampled every epoch
    again = savc.sample_pairs(labels, seed=3, epoch=0)
    np.testing.assert_array_equal(again.visual_index, p.visual_index)


def test_savc_sampler_excludes_videos_without_audio():
    labels = np.repeat(np.arange(16), 30)
    has_audio = np.ones(len(labels), dtype=bool)
    has_audio[::7] = False
    p = savc.sample_pairs(labels, seed=0, has_audio=has_audio)
    assert has_audio[p.audio_index].all()
    assert len(p) == 2 * has_audio.sum()


def test_savc_test_pairs_are_1920_fixed_and_half_congruent():
    labels = np.repeat(np.arange(16), 60)
    t1, t2 = savc.test_pairs(labels), savc.test_pairs(labels)
    assert len(t1) == savc.N_TEST_PAIRS and t1.congruent.sum() == 960
    np.testing.assert_array_equal(t1.visual_index, t2.visual_index)
    inc = t1.congruent == 0
    for c in range(16):
        counts = Counter(labels[t1.visual_index[inc & (labels[t1.audio_index] == c)]])
        assert set(counts.values()) == {4}


# -- training on synthetic embeddings ---------------------------------------------------------
@pytest.fixture(scope="module")
def embeddings(tmp_path_factory):
    base = tmp_path_factory.mktemp("models")
    paths = synthetic.write_embedding_dataset(
        base / "root", base / "csv", seed=4,
        per_class={"AVMIT_train": 30, "AVMIT_validation": 8, "MIT16_train": 30,
                   "MIT16_validation": 8, "test_set": 10})
    cache = base / "cache"
    load = {name: tfrecords.load_split(p, base / "root", cache_dir=cache)
            for name, p in paths.items()}
    return base, paths, load


GRU = CONFIGS / "recognition" / "vggish_vgg16_gru_avmit.yaml"


def _train_gru(embeddings, out, seed=1, epochs=12):
    _, _, load = embeddings
    cfg = config.load_config(GRU)
    return training.train(cfg, load["AVMIT_train"], load["AVMIT_validation"], out,
                          epochs=epochs, seed=seed, verbose=0)


@pytest.fixture(scope="module")
def trained_gru(embeddings, tmp_path_factory):
    out = tmp_path_factory.mktemp("gru") / "run"
    return _train_gru(embeddings, out)


def test_gru_reaches_90_percent_on_held_out_synthetic_data(embeddings, trained_gru):
    _, _, load = embeddings
    cfg, model = training.load_trained(trained_gru.out_dir)
    predictions, metrics = evaluation.evaluate(cfg, model, load["test_set"])
    assert metrics["top1"] > 0.90
    assert metrics["top5"] >= metrics["top1"]
    assert predictions["correct"].mean() == pytest.approx(metrics["top1"])


def test_training_outputs_and_same_seed_same_metrics(embeddings, trained_gru, tmp_path):
    out = trained_gru.out_dir
    assert {p.name for p in out.iterdir()} >= {"config.yaml", "history.csv", "best.weights.h5",
                                               "model.weights.h5", "metrics.json"}
    assert not (out / "checkpoint").exists()
    history = pd.read_csv(out / "history.csv")
    assert history["epoch"].tolist() == list(range(1, len(history) + 1))
    assert history["learning_rate"].is_monotonic_decreasing  # exponential decay
    again = _train_gru(embeddings, tmp_path / "again")
    assert again.metrics["val_loss"] == trained_gru.metrics["val_loss"]
    pd.testing.assert_frame_equal(again.history.drop(columns="seconds"),
                                  trained_gru.history.drop(columns="seconds"))


def test_an_interrupted_run_resumes_from_its_last_epoch(embeddings, tmp_path):
    keras = pytest.importorskip("keras")

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 2:
                raise KeyboardInterrupt

    _, _, load = embeddings
    cfg = config.load_config(GRU)
    with pytest.raises(KeyboardInterrupt):
        training.train(cfg, load["AVMIT_train"], load["AVMIT_validation"], tmp_path / "run",
                       epochs=6, seed=2, verbose=0, callbacks=[Interrupt()])
    state = json.loads((tmp_path / "run" / "checkpoint" / "state.json").read_text())
    assert state["epoch"] == 3 and not (tmp_path / "run" / "metrics.json").exists()
    result = training.train(cfg, load["AVMIT_train"], load["AVMIT_validation"], tmp_path / "run",
                            epochs=6, seed=2, verbose=0)
    assert result.history["epoch"].tolist() == [1, 2, 3, 4, 5, 6]
    assert result.metrics["epochs_run"] == 6
    # the resumed run matches an uninterrupted one epoch for epoch in its loss trajectory
    straight = training.train(cfg, load["AVMIT_train"], load["AVMIT_validation"],
                              tmp_path / "straight", epochs=6, seed=2, verbose=0)
    np.testing.assert_allclose(result.history["loss"], straight.history["loss"], rtol=0.05)


def test_early_stopping_restores_the_best_weights(embeddings, tmp_path):
    _, _, load = embeddings
    cfg = config.load_config(GRU).replace(patience=2, min_delta=10.0)  # nothing counts as better
    result = training.train(cfg, load["AVMIT_train"], load["AVMIT_validation"], tmp_path / "es",
                            epochs=50, seed=0, verbose=0)
    assert result.metrics["stopped_early"] and result.metrics["epochs_run"] == 3
    assert result.metrics["best_epoch"] == 1


def test_savc_training_and_evaluation(embeddings, tmp_path):
    _, _, load = embeddings
    cfg = config.load_config(CONFIGS / "savc" / "vggish_vgg16_gru_avmit.yaml").replace(
        batch_size=64, learning_rate=3e-3)
    result = training.train(cfg, load["AVMIT_train"], load["AVMIT_validation"], tmp_path / "s",
                            epochs=3, seed=0, verbose=0)
    assert result.metrics["n_train"] == 2 * 30 * 16  # every audio stream twice per epoch
    predictions, metrics = evaluation.evaluate(cfg, result.model, load["test_set"])
    assert metrics["n"] == 2 * 160 and (predictions["label"] == "congruent").sum() == 160
    assert predictions["correct"].mean() == pytest.approx(metrics["accuracy"])
    assert {"p_congruent", "p_incongruent"} <= set(predictions.columns)


# -- CLI: train, evaluate, predict ------------------------------------------------------------
def test_cli_train_evaluate_predict(embeddings, trained_gru, cli, tmp_path):
    base, paths, load = embeddings
    r = cli("analysis", ["evaluate", "--model", trained_gru.out_dir, "--tfrecords",
                         base / "root", "--test-csv", paths["test_set"], "--out", tmp_path / "ev"])
    assert r.code == 0, r.err
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    preds = pd.read_csv(tmp_path / "ev" / "predictions.csv")
    assert set(metrics) >= {"loss", "top1", "top5"} and len(preds) == 160
    assert preds["correct"].mean() == pytest.approx(metrics["top1"])
    assert list(preds.columns[:7]) == evaluation.PREDICTION_COLUMNS
    assert np.allclose(preds.filter(like="p_").sum(axis=1), 1.0, atol=1e-5)
    # a stimulus manifest: rows carry manipulation and level through to predictions
    test = pd.read_csv(paths["test_set"])
    manifest = pd.DataFrame({
        "stimulus_id": [f"s{i:03d}" for i in range(len(test))],
        "path": [f"stimuli/s{i:03d}.mp4" for i in range(len(test))],
        "source_filename": test["filename"], "label": test["AVMIT_label"],
        "manipulation": ["av_offset"] * len(test), "level": [100] * len(test),
        "tfrecord_filename": test["tfrecord_filename"]})
    manifest.to_csv(tmp_path / "manifest.csv", index=False)
    r = cli("analysis", ["predict", "--model", trained_gru.out_dir, "--tfrecords", base / "root",
                         "--manifest", tmp_path / "manifest.csv", "--out", tmp_path / "p.csv"])
    assert r.code == 0, r.err
    p = pd.read_csv(tmp_path / "p.csv")
    assert p["stimulus_id"].tolist() == manifest["stimulus_id"].tolist()
    assert (p["manipulation"] == "av_offset").all() and (p["level"] == 100).all()
    assert p["correct"].mean() == pytest.approx(json.loads(r.out.splitlines()[-1])["top1"])


def test_cli_train_errors_exit_2(embeddings, cli, tmp_path):
    base, paths, _ = embeddings
    yamnet = CONFIGS / "recognition" / "yamnet_effnetb0_gru_avmit.yaml"
    r = cli("analysis", ["train", "--config", yamnet, "--tfrecords", base / "root",
                         "--train-csv", paths["AVMIT_train"], "--val-csv",
                         paths["AVMIT_validation"], "--out", tmp_path / "x", "--no-cache"])
    assert r.code == 2 and "expected (1024, 1280) for yamnet_effnetb0" in r.err
    r = cli("analysis", ["evaluate", "--model", tmp_path / "nothing", "--tfrecords",
                         base / "root", "--test-csv", paths["test_set"], "--out", tmp_path / "e"])
    assert r.code == 2 and "no trained model here" in r.err


# -- search -----------------------------------------------------------------------------------
def test_bootstrap_and_params_are_pure_functions_of_seed_and_trial():
    a, oob = search.bootstrap(100, seed=1, trial=4)
    b, oob2 = search.bootstrap(100, seed=1, trial=4)
    np.testing.assert_array_equal(a, b)
    assert not set(oob) & set(a) and set(oob) | set(a) == set(range(100))
    space = search.load_space(REPO / "analysis" / "search" / "recognition.yaml")
    assert space["trials"] == 300 and space["patience"] == 8
    p = search.sample_params(space["space"], 1, 4)
    assert p == search.sample_params(space["space"], 1, 4)
    assert p["bottleneck"] in (32, 64, 128, 256) and 1e-5 <= p["learning_rate"] <= 5e-3
    draws = [p["rnn_units"] for p in search.plan_params(space["space"], 1, 200)]
    assert set(draws) == {32, 64, 128, 256}


def test_search_writes_results_and_resumes(embeddings, cli, tmp_path):
    base, paths, _ = embeddings
    args = ["search", "--space", REPO / "analysis" / "search" / "recognition.yaml",
            "--config", GRU, "--tfrecords", base / "root", "--data-csv", paths["MIT16_train"],
            paths["MIT16_validation"], "--out", tmp_path / "s", "--epochs", "2", "--seed", "5"]
    r = cli("analysis", args + ["--trials", "2"])
    assert r.code == 0, r.err
    results = pd.read_csv(tmp_path / "s" / "results.csv")
    assert results["trial"].tolist() == [0, 1]
    n = 16 * 38
    assert (results["n_in_bag_unique"] + results["n_out_of_bag"] == n).all()
    r = cli("analysis", args + ["--trials", "3"])
    assert r.code == 0, r.err
    again = pd.read_csv(tmp_path / "s" / "results.csv")
    assert again["trial"].tolist() == [0, 1, 2]
    pd.testing.assert_frame_equal(again.iloc[:2], results)  # old rows kept, not re-run
    assert not [p for p in (tmp_path / "s").iterdir() if p.name.startswith("trial")]


# -- replicate --------------------------------------------------------------------------------
def test_replicate_prints_tables_6_and_7_beside_the_paper(embeddings, cli, tmp_path):
    base, paths, _ = embeddings
    csvs = Path(paths["test_set"]).parent
    r = cli("analysis", ["replicate", "--tfrecords-vggish", base / "root", "--tfrecords-yamnet",
                         base / "root", "--csvs", csvs, "--out", tmp_path / "rep", "--epochs",
                         "1", "--only", "vggish_vgg16_frnn"])
    assert r.code == 0, r.err
    t6 = pd.read_csv(tmp_path / "rep" / "table6.csv")
    t7 = pd.read_csv(tmp_path / "rep" / "table7.csv")
    assert sorted(t6["train"]) == ["avmit", "mit16"] and sorted(t7["train"]) == ["avmit", "mit16"]
    assert t6.set_index("train").loc["avmit", "paper_top1"] == 90.73
    assert t7.set_index("train").loc["mit16", "paper_accuracy"] == 71.09
    assert "Table 6" in r.out and "Table 7" in r.out and "90.73" in r.out
