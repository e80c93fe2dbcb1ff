"""Benchmark one training epoch and TFRecord loading.

1. One epoch of the YAMNet+EfficientNetB0 GRU (Table 5) on 6,560 synthetic sequences at batch
   16: our trainer (``avmit_psych.models.training.train``) against a plain Keras ``model.fit``
   on the same in-memory arrays (the authors' way: the model as they built it with
   TimeDistributed layers and a rolled RNN, one step per call, ``shuffle=True``). Both are timed
   on their second epoch (the first includes graph tracing), and the first epoch is reported too.
2. Loading 22,496 TFRecords (the MIT-16 training split's size, VGGish+VGG16 sizes): files per
   second cold (from the TFRecords) and cached (from the split cache).

Run: ``.venv/bin/python benchmarks/bench_training.py [--skip-loading]``; figures are printed and
written to benchmarks/results/training.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import numpy as np  # noqa: E402

from avmit_psych import _tf  # noqa: E402
from avmit_psych.dataset import schema, synthetic, tfrecords  # noqa: E402
from avmit_psych.models import config, training  # noqa: E402

N_TRAIN = 6_560
N_LOAD = 22_496
CONFIG = HERE.parent / "analysis" / "configs" / "recognition" / "yamnet_effnetb0_gru_avmit.yaml"


def authors_model(cfg):
    """The recognition model as the authors built it (TimeDistributed, rolled RNN)."""
    keras = _tf.keras()
    L = keras.layers
    T = cfg.timesteps
    inputs, streams = [], []
    for name, size in zip(("audio", "visual"), cfg.sizes):
        x_in = keras.Input(shape=(T, size))
        y = L.Reshape((T, 1, 1, size))(x_in)
        y = L.TimeDistributed(L.Conv2D(cfg.bottleneck, 1))(y)
        y = L.TimeDistributed(L.BatchNormalization())(y)
        y = L.TimeDistributed(L.Activation(cfg.activation))(y)
        y = L.TimeDistributed(L.GlobalAveragePooling2D())(y)
        inputs.append(x_in)
        streams.append(y)
    y = L.Concatenate(axis=2)(streams)
    y = L.GRU(cfg.rnn_units, dropout=cfg.dropout)(y)
    out = L.Activation("softmax")(L.Dense(16)(y))
    return keras.Model(inputs, out)


class EpochTimer:
    def __new__(cls):
        keras = _tf.keras()

        class Timer(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.times = []

            def on_epoch_begin(self, epoch, logs=None):
                self.t = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                self.times.append(time.perf_counter() - self.t)
        return Timer()


def bench_epoch(tmp: Path) -> dict:
    keras = _tf.keras()
    cfg = config.load_config(CONFIG)
    labels = np.repeat(np.arange(16), N_TRAIN // 16)
    emb = synthetic.simulate_embeddings([schema.TEST_CLASSES[i] for i in labels],
                                        "yamnet_effnetb0", seed=0)
    audio = np.stack([tfrecords.pad_timesteps(a) for a, _ in emb])
    visual = np.stack([tfrecords.pad_timesteps(v) for _, v in emb])
    split = tfrecords.Split(audio, visual, labels.astype(np.int64), schema.TEST_CLASSES,
                            rows=None)
    val = tfrecords.Split(audio[:256], visual[:256], labels[:256].astype(np.int64),
                          schema.TEST_CLASSES, rows=None)

    _tf.set_seeds(0)
    model = authors_model(cfg)
    model.compile(keras.optimizers.Adam(cfg.learning_rate), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    timer = EpochTimer()
    model.fit([audio, visual], labels, batch_size=16, epochs=2, shuffle=True,
              validation_data=([val.audio, val.visual], val.labels), callbacks=[timer],
              verbose=0)
    plain = timer.times

    timer = EpochTimer()
    shutil.rmtree(tmp / "run", ignore_errors=True)
    training.train(cfg, split, val, tmp / "run", epochs=2, verbose=0, callbacks=[timer])
    ours = timer.times
    return {"plain_keras_fit_s": plain, "ours_s": ours,
            "speedup_second_epoch": plain[1] / ours[1], "speedup_first_epoch": plain[0] / ours[0]}


def bench_loading(tmp: Path) -> dict:
    root, csvs = tmp / "tfrecords", tmp / "csv"
    t = time.perf_counter()
    paths = synthetic.write_embedding_dataset(root, csvs, feature_set="vggish_vgg16",
                                              per_class={"MIT16_train": N_LOAD // 16})
    write_s = time.perf_counter() - t
    csv = paths["MIT16_train"]
    os.system("sync")
    t = time.perf_counter()
    split = tfrecords.load_split(csv, root, cache_dir=tmp / "cache")
    cold_s = time.perf_counter() - t
    assert len(split) == N_LOAD and not split.from_cache
    t = time.perf_counter()
    again = tfrecords.load_split(csv, root, cache_dir=tmp / "cache")
    cached_s = time.perf_counter() - t
    assert again.from_cache and np.array_equal(again.audio, split.audio)
    return {"files": N_LOAD, "write_s": write_s, "cold_s": cold_s, "cached_s": cached_s,
            "cold_files_per_s": N_LOAD / cold_s, "cached_files_per_s": N_LOAD / cached_s}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-loading", action="store_true")
    args = parser.parse_args()
    report = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "platform": platform.platform()}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        report["epoch"] = e = bench_epoch(tmp)
        print(f"one epoch, {N_TRAIN} sequences, batch 16, YAMNet+EffNetB0 GRU:")
        print(f"  plain Keras fit   first {e['plain_keras_fit_s'][0]:6.2f} s   second "
              f"{e['plain_keras_fit_s'][1]:6.2f} s")
        print(f"  avmit_psych train first {e['ours_s'][0]:6.2f} s   second {e['ours_s'][1]:6.2f} s")
        print(f"  speed-up: {e['speedup_second_epoch']:.2f}x (second epoch), "
              f"{e['speedup_first_epoch']:.2f}x (first epoch)")
        if not args.skip_loading:
            report["loading"] = ld = bench_loading(tmp)
            print(f"loading {ld['files']} TFRecords: cold {ld['cold_s']:.1f} s "
                  f"({ld['cold_files_per_s']:.0f} files/s), cached {ld['cached_s']:.1f} s "
                  f"({ld['cached_files_per_s']:.0f} files/s); writing them took "
                  f"{ld['write_s']:.1f} s")
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "training.json").write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
