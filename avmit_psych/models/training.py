"""Training the baselines: seeded, checkpointed every epoch, resumable, fast on a CPU.

``train(cfg, train_split, val_split, out_dir)`` writes into ``out_dir``:

- ``config.yaml``: the config used (our flat format);
- ``history.csv``: one row per epoch, appended and fsynced as each epoch ends;
- ``checkpoint/state.json`` + ``checkpoint/epoch-<k>/`` (weights and optimizer state): the
  last finished epoch, so an interrupted run resumes from it when started again;
- ``best.weights.h5``: the weights of the best epoch so far (val loss, or val accuracy for SAVC);
- on completion ``model.weights.h5`` (the best weights, restored) and ``metrics.json``.

Every file and the checkpoint folder are written through :mod:`avmit_psych._atomic` (fsync,
rename, fsync of the folder), so a crash or a power cut never leaves a file that a rerun takes
for finished; a rerun of a finished run checks that its weights load before it reports them.

Recognition: sparse cross-entropy, Adam with exponential learning-rate decay, early stopping
on validation loss (``patience``, ``min_delta``) restoring the best weights. SAVC: fresh pairs
every epoch (:mod:`.savc`), fixed validation pairs, Adam with weight decay, the checkpoint with
the best validation accuracy kept.

Speed: batches are gathered from in-memory arrays inside the TF graph (one epoch's shuffle is a
stateless function of (seed, epoch), so a resumed run sees the same order an uninterrupted one
would), several steps run per call (``steps_per_execution``) and the RNN is unrolled over its 7
steps; ``benchmarks/bench_training.py`` compares this with a plain ``model.fit`` on the arrays.
"""
from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .. import _atomic, _tf
from .._atomic import atomic_path, fsync_file
from ..dataset.schema import DatasetError
from . import savc
from .architectures import build_model, trainable_params
from .config import ModelConfig, load_config, save_config

#: Upper bound of the steps run per call into the graph; the actual value divides the steps of
#: an epoch exactly (Keras would otherwise run past an epoch's last batch).
STEPS_PER_EXECUTION = 64


def steps_per_execution_for(steps_per_epoch: int, limit: int = STEPS_PER_EXECUTION) -> int:
    """The largest divisor of ``steps_per_epoch`` that is at most ``limit``."""
    return max(d for d in range(1, min(limit, steps_per_epoch) + 1) if steps_per_epoch % d == 0)


def compile_model(model, cfg: ModelConfig, steps_per_epoch: int,
                  steps_per_execution: int = STEPS_PER_EXECUTION):
    keras = _tf.keras()
    lr = cfg.learning_rate
    if cfg.lr_decay_rate < 1.0:
        lr = keras.optimizers.schedules.ExponentialDecay(
            cfg.learning_rate, decay_steps=max(1, round(steps_per_epoch * cfg.lr_decay_epochs)),
            decay_rate=cfg.lr_decay_rate, staircase=False)
    optimizer = keras.optimizers.Adam(lr, weight_decay=cfg.weight_decay or None)
    metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
    if cfg.task == "recognition":
        metrics.append(keras.metrics.SparseTopKCategoricalAccuracy(k=5, name="top5"))
    model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(),
                  metrics=metrics, steps_per_execution=steps_per_execution)
    return model


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------
@dataclass
class ArrayData:
    """Model inputs held in memory: rows of ``audio``/``visual`` are combined by index."""

    audio: np.ndarray
    visual: np.ndarray
    audio_index: np.ndarray
    visual_index: np.ndarray
    targets: np.ndarray

    def __len__(self) -> int:
        return len(self.targets)

    @classmethod
    def recognition(cls, split) -> "ArrayData":
        idx = np.arange(len(split.labels))
        return cls(split.audio, split.visual, idx, idx, split.labels.astype(np.int64))

    @classmethod
    def pairs(cls, split, pairs: savc.Pairs) -> "ArrayData":
        return cls(split.audio, split.visual, pairs.audio_index, pairs.visual_index,
                   pairs.congruent.astype(np.int64))

    def inputs(self):
        return [self.audio[self.audio_index], self.visual[self.visual_index]]


def _dataset(data_for_epoch, first_epoch: int, last_epoch: int, batch_size: int, seed: int,
             shuffle: bool):
    """A tf.data stream of batches for epochs [first_epoch, last_epoch).

    ``data_for_epoch(e)`` gives the ArrayData of epoch e (fixed for recognition, fresh pairs for
    SAVC). The arrays go into TF once; batches are gathered by index in the graph.
    """
    tf = _tf.tensorflow()
    first = data_for_epoch(first_epoch)
    audio = tf.constant(first.audio)
    visual = tf.constant(first.visual)
    epochs = list(range(first_epoch, last_epoch))
    per_epoch = [data_for_epoch(e) for e in epochs] if len(epochs) else []
    a_idx = np.concatenate([d.audio_index for d in per_epoch]).astype(np.int64)
    v_idx = np.concatenate([d.visual_index for d in per_epoch]).astype(np.int64)
    y = np.concatenate([d.targets for d in per_epoch]).astype(np.int64)
    n = len(first)
    order = []
    for k, e in enumerate(epochs):
        perm = np.random.default_rng([int(seed), 5, e]).permutation(n) if shuffle \
            else np.arange(n)
        order.append(perm + k * n)
    order = np.concatenate(order)
    # batch boundaries restart at every epoch, so a batch never straddles two epochs
    starts = np.concatenate([np.arange(0, n, batch_size) + k * n for k in range(len(epochs))])
    stops = np.append(starts[1:], len(order))
    starts, stops = tf.constant(starts), tf.constant(stops)
    order_t = tf.constant(order)
    a_idx_t, v_idx_t, y_t = tf.constant(a_idx), tf.constant(v_idx), tf.constant(y)

    def gather(i):
        rows = order_t[starts[i]:stops[i]]
        return ((tf.gather(audio, tf.gather(a_idx_t, rows)),
                 tf.gather(visual, tf.gather(v_idx_t, rows))), tf.gather(y_t, rows))

    ds = tf.data.Dataset.range(len(stops)).map(gather, num_parallel_calls=1, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE), math.ceil(n / batch_size)


# --------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------
def _atomic_json(path: Path, obj) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=2)
        fsync_file(fh)


def _save_weights(model, path: Path) -> None:
    with atomic_path(path, suffix=".weights.h5") as tmp:
        model.save_weights(tmp)


class _EpochKeeper:
    """Keras callback: history row, best weights, last checkpoint and early stopping."""

    def __new__(cls, *args, **kwargs):
        keras = _tf.keras()

        class Keeper(keras.callbacks.Callback):
            def __init__(self, cfg, out_dir, state):
                super().__init__()
                self.cfg, self.out_dir, self.state = cfg, out_dir, state
                self.monitor = cfg.monitor
                self.mode_max = cfg.monitor == "val_accuracy"
                self.epoch_start = time.perf_counter()

            def on_epoch_begin(self, epoch, logs=None):
                self.epoch_start = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                logs = dict(logs or {})
                seconds = time.perf_counter() - self.epoch_start
                lr = self.model.optimizer.learning_rate
                row = {"epoch": epoch + 1, **{k: float(v) for k, v in logs.items()},
                       "learning_rate": float(np.asarray(lr)), "seconds": round(seconds, 3)}
                _append_history(self.out_dir / "history.csv", row)
                value = logs.get(self.monitor)
                if value is None:
                    raise DatasetError(f"no '{self.monitor}' in the epoch's logs",
                                       fix="give a validation split")
                best = self.state.get("best")
                improved = best is None or (
                    value > best + self.cfg.min_delta if self.mode_max
                    else value < best - self.cfg.min_delta)
                if improved:
                    self.state.update(best=float(value), best_epoch=epoch + 1, wait=0)
                    _save_weights(self.model, self.out_dir / "best.weights.h5")
                else:
                    self.state["wait"] = self.state.get("wait", 0) + 1
                self.state["epoch"] = epoch + 1
                _save_checkpoint(self.model, self.out_dir, self.state)
                if self.cfg.patience is not None and self.state["wait"] >= self.cfg.patience:
                    self.model.stop_training = True
                    self.state["stopped_early"] = True
                    _atomic_json(self.out_dir / "checkpoint" / "state.json", self.state)

        return Keeper(*args, **kwargs)


def _append_history(path: Path, row: dict) -> None:
    with _atomic.appending(path) as (fh, new):
        pd.DataFrame([row]).to_csv(fh, header=new, index=False, lineterminator="\n")


def _trim_history(path: Path, last_epoch: int) -> None:
    """Drop history rows after the checkpointed epoch (a run killed between writing an epoch's
    row and its checkpoint redoes that epoch) and rows torn by a crash."""
    if not path.exists() or path.stat().st_size == 0:
        return
    history = pd.read_csv(path, on_bad_lines="skip")
    if "epoch" not in history.columns:
        return
    epochs = pd.to_numeric(history["epoch"], errors="coerce")
    keep = history[epochs.notna() & (epochs <= last_epoch)]
    if len(keep) != len(history):
        with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as fh:
            keep.to_csv(fh, index=False, lineterminator="\n")


def _save_checkpoint(model, out_dir: Path, state: dict) -> None:
    ckpt_root = _atomic.make_folder(out_dir / "checkpoint")
    target = ckpt_root / f"epoch-{state['epoch']}"
    if target.exists():
        _atomic.remove(target)
    with atomic_path(target) as tmp:  # the folder appears whole, fsynced, or not at all
        tmp.mkdir()
        model.save_weights(tmp / "model.weights.h5")
        opt_vars = {f"v{i}": np.asarray(v) for i, v in enumerate(model.optimizer.variables)}
        np.savez(tmp / "optimizer.npz", **opt_vars)
    _atomic_json(ckpt_root / "state.json", {**state, "checkpoint": target.name})
    for old in ckpt_root.glob("epoch-*"):
        if old.name != target.name:
            shutil.rmtree(old, ignore_errors=True)


def _restore_checkpoint(model, out_dir: Path) -> dict | None:
    state_file = out_dir / "checkpoint" / "state.json"
    if not state_file.exists():
        return None
    state = json.loads(state_file.read_text())
    ckpt = out_dir / "checkpoint" / state["checkpoint"]
    model.load_weights(ckpt / "model.weights.h5")
    model.optimizer.build(model.trainable_variables)
    with np.load(ckpt / "optimizer.npz") as z:
        for i, var in enumerate(model.optimizer.variables):
            var.assign(z[f"v{i}"])
    return state


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------
@dataclass
class TrainResult:
    out_dir: Path
    history: pd.DataFrame
    metrics: dict
    model: object


def _check_sizes(cfg: ModelConfig, split, what: str) -> None:
    sizes = (split.audio.shape[2], split.visual.shape[2])
    if sizes != cfg.sizes:
        raise DatasetError(f"{what} embeddings are {sizes} but config '{cfg.name}' expects "
                           f"{cfg.embeddings} {cfg.sizes}", path=cfg.source or None,
                           fix="point --tfrecords at the matching embedding set or pick the "
                               "matching config")
    if split.audio.shape[1] != cfg.timesteps:
        raise DatasetError(f"{what} has {split.audio.shape[1]} timesteps, config expects "
                           f"{cfg.timesteps}", path=cfg.source or None)


def has_audio_mask(split):
    """Which videos of a split have an audio stream: the CSV's ``has_audio`` column when it
    has one (true/false, 1/0, yes/no), else all of them."""
    if "has_audio" not in split.rows.columns:
        return None
    return split.rows["has_audio"].astype(str).str.strip().str.lower().isin(
        ["1", "true", "yes"]).to_numpy()


def train(cfg: ModelConfig, train_split, val_split, out_dir, *, epochs: int | None = None,
          seed: int | None = None, verbose: int = 1, steps_per_execution: int =
          STEPS_PER_EXECUTION, callbacks=()) -> TrainResult:
    """Train one model; resume if ``out_dir`` holds an unfinished run of the same config."""
    out_dir = Path(out_dir)
    changes = {}
    if epochs is not None:
        changes["epochs"] = int(epochs)
    if seed is not None:
        changes["seed"] = int(seed)
    cfg = cfg.replace(**changes) if changes else cfg
    _check_sizes(cfg, train_split, "training")
    _check_sizes(cfg, val_split, "validation")

    out_dir.mkdir(parents=True, exist_ok=True)
    saved = out_dir / "config.yaml"
    if saved.exists():
        previous = load_config(saved)
        if previous.to_dict() != cfg.replace(name=previous.name).to_dict() and \
                (out_dir / "checkpoint" / "state.json").exists():
            raise DatasetError("this folder holds a run of a different config", path=saved,
                               fix="use a new --out folder, or the same config to resume")
    if (out_dir / "metrics.json").exists():
        return _finished_run(cfg, out_dir)
    save_config(cfg, saved)
    _atomic.remove_stale_temporaries(out_dir)  # left by a run killed mid-write

    _tf.set_seeds(cfg.seed)
    if cfg.task == "recognition":
        train_data = ArrayData.recognition(train_split)
        val_data = ArrayData.recognition(val_split)
        data_for_epoch = lambda e: train_data  # noqa: E731
    else:
        t_keep = savc.per_class_subset(train_split.labels, cfg.savc_train_per_class,
                                       seed=cfg.seed)
        v_keep = savc.per_class_subset(val_split.labels, cfg.savc_val_per_class, seed=cfg.seed)
        t_audio, v_audio = has_audio_mask(train_split), has_audio_mask(val_split)

        def subset_pairs(split, keep, has_audio, epoch):
            mask = None if has_audio is None else has_audio[keep]
            p = savc.sample_pairs(split.labels[keep], seed=cfg.seed, epoch=epoch,
                                  has_audio=mask)
            return savc.Pairs(keep[p.audio_index], keep[p.visual_index], p.congruent)

        val_data = ArrayData.pairs(val_split, subset_pairs(val_split, v_keep, v_audio, 10**6))
        data_for_epoch = lambda e: ArrayData.pairs(  # noqa: E731
            train_split, subset_pairs(train_split, t_keep, t_audio, e))

    steps_per_epoch = math.ceil(len(data_for_epoch(0)) / cfg.batch_size)
    model = build_model(cfg)
    compile_model(model, cfg, steps_per_epoch,
                  steps_per_execution_for(steps_per_epoch, steps_per_execution))
    state = _restore_checkpoint(model, out_dir) or {"epoch": 0, "best": None, "wait": 0}
    _trim_history(out_dir / "history.csv", state["epoch"])
    if state.get("stopped_early") or state["epoch"] >= cfg.epochs:
        first_epoch = cfg.epochs if state["epoch"] >= cfg.epochs else state["epoch"]
    else:
        first_epoch = state["epoch"]
    if state["epoch"] and verbose:
        print(f"resuming {cfg.name} after epoch {state['epoch']}")
    start = time.perf_counter()
    if first_epoch < cfg.epochs and not state.get("stopped_early"):
        train_ds, steps = _dataset(data_for_epoch, first_epoch, cfg.epochs, cfg.batch_size,
                                   cfg.seed, shuffle=True)
        val_inputs = val_data.inputs()
        keeper = _EpochKeeper(cfg, out_dir, state)
        model.fit(train_ds, epochs=cfg.epochs, initial_epoch=first_epoch, steps_per_epoch=steps,
                  validation_data=(val_inputs, val_data.targets),
                  validation_batch_size=max(cfg.batch_size, 256), shuffle=False,
                  callbacks=[keeper, *callbacks], verbose=2 if verbose else 0)
    model.load_weights(out_dir / "best.weights.h5")
    _save_weights(model, out_dir / "model.weights.h5")
    history = pd.read_csv(out_dir / "history.csv")
    best = history.loc[history["epoch"] == state["best_epoch"]].iloc[0]
    metrics = {
        "model": cfg.name, "task": cfg.task, "trainable_params": trainable_params(model),
        "epochs_run": int(history["epoch"].max()), "best_epoch": int(state["best_epoch"]),
        "stopped_early": bool(state.get("stopped_early", False)),
        "val_loss": float(best["val_loss"]), "val_accuracy": float(best["val_accuracy"]),
        "train_seconds_this_run": round(time.perf_counter() - start, 3),
        "n_train": len(data_for_epoch(0)), "n_val": len(val_data), "seed": cfg.seed,
    }
    if "val_top5" in best:
        metrics["val_top5"] = float(best["val_top5"])
    _atomic_json(out_dir / "metrics.json", metrics)
    shutil.rmtree(out_dir / "checkpoint", ignore_errors=True)
    return TrainResult(out_dir, history, metrics, model)


def _load_weights(model, path: Path) -> None:
    """``model.load_weights`` with a file that is cut short or corrupt as a DatasetError."""
    try:
        model.load_weights(path)
    except Exception as err:  # h5py / Keras raise OSError, ValueError, KeyError...
        raise DatasetError(f"the weights do not load ({type(err).__name__}: "
                           f"{' '.join(str(err).split())[:200]})", path=path,
                           fix="train again into a new --out folder") from None


def _finished_run(cfg: ModelConfig, out_dir: Path) -> TrainResult:
    """A finished run, checked before it is reported: metrics.json parses and the final
    weights load (rewritten from best.weights.h5, which they copy, when they do not)."""
    try:
        metrics = json.loads((out_dir / "metrics.json").read_text())
        history = pd.read_csv(out_dir / "history.csv")
    except (ValueError, OSError) as err:
        raise DatasetError(f"a finished run whose metrics.json or history.csv does not read "
                           f"({type(err).__name__})", path=out_dir,
                           fix="train again into a new --out folder") from None
    model = build_model(cfg)
    try:
        _load_weights(model, out_dir / "model.weights.h5")
    except DatasetError:
        _load_weights(model, out_dir / "best.weights.h5")
        _save_weights(model, out_dir / "model.weights.h5")
    return TrainResult(out_dir, history, metrics, model)


def load_trained(model_dir):
    """(config, model with its trained weights) from a training output folder."""
    model_dir = Path(model_dir)
    if not (model_dir / "model.weights.h5").exists():
        raise DatasetError("no trained model here (model.weights.h5 missing)", path=model_dir,
                           fix="give the --out folder of a finished 'train' run")
    cfg = load_config(model_dir / "config.yaml")
    model = build_model(cfg)
    _load_weights(model, model_dir / "model.weights.h5")
    return cfg, model
