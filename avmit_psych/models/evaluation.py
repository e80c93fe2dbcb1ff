"""Evaluation and per-trial predictions, in the predictions data contract.

Predictions (one row per model x stimulus): ``model, stimulus_id, label, manipulation, level,
response, correct`` plus ``p_<class>`` probabilities; the test set's rows are condition
``none``. For SAVC the "stimulus" is an audio/visual pair: ``stimulus_id`` is
``<audio video>|<visual video>``, ``label``/``response`` are ``congruent``/``incongruent`` and the
probabilities ``p_congruent``/``p_incongruent``.
"""
from __future__ import annotations


import numpy as np
import pandas as pd

from ..dataset.schema import TEST_CLASSES
from . import savc
from .training import ArrayData, has_audio_mask

PREDICTION_COLUMNS = ["model", "stimulus_id", "label", "manipulation", "level", "response",
                      "correct"]


def _stimulus_ids(rows: pd.DataFrame) -> list[str]:
    for col in ("stimulus_id", "new_filename", "filename"):
        if col in rows.columns:
            return rows[col].astype(str).tolist()
    return [str(i) for i in range(len(rows))]


def _conditions(rows: pd.DataFrame):
    manipulation = rows["manipulation"].astype(str) if "manipulation" in rows.columns \
        else pd.Series(["none"] * len(rows))
    level = rows["level"] if "level" in rows.columns else pd.Series([""] * len(rows))
    return manipulation.to_numpy(), level.to_numpy()


def _cross_entropy(p: np.ndarray, y: np.ndarray) -> float:
    eps = 1e-7
    return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], eps, 1.0))))


def predict_recognition(cfg, model, split, *, batch_size: int = 256) -> tuple[pd.DataFrame, dict]:
    """Class probabilities for every row of a split; returns (predictions, metrics)."""
    p = np.asarray(model.predict([split.audio, split.visual], batch_size=batch_size, verbose=0),
                   dtype=np.float64)
    y = split.labels
    response = p.argmax(axis=1)
    top5 = np.argsort(-p, axis=1)[:, :5]
    manipulation, level = _conditions(split.rows)
    out = pd.DataFrame({
        "model": cfg.name, "stimulus_id": _stimulus_ids(split.rows),
        "label": [TEST_CLASSES[i] for i in y], "manipulation": manipulation, "level": level,
        "response": [TEST_CLASSES[i] for i in response], "correct": response == y,
    })
    for k, c in enumerate(TEST_CLASSES):
        out[f"p_{c}"] = p[:, k]
    metrics = {"model": cfg.name, "n": int(len(y)), "loss": _cross_entropy(p, y),
               "top1": float(np.mean(response == y)),
               "top5": float(np.mean((top5 == y[:, None]).any(axis=1)))}
    return out, metrics


def predict_savc(cfg, model, split, *, pairs: savc.Pairs | None = None,
                 batch_size: int = 512) -> tuple[pd.DataFrame, dict]:
    """Congruence judgements for SAVC pairs (default: the fixed test pairs of the split)."""
    if pairs is None:
        pairs = savc.test_pairs(split.labels, has_audio=has_audio_mask(split))
    data = ArrayData.pairs(split, pairs)
    p = np.asarray(model.predict(data.inputs(), batch_size=batch_size, verbose=0),
                   dtype=np.float64)
    y = data.targets
    response = p.argmax(axis=1)
    ids = _stimulus_ids(split.rows)
    names = np.asarray(["incongruent", "congruent"])
    manipulation, level = _conditions(split.rows)
    out = pd.DataFrame({
        "model": cfg.name,
        "stimulus_id": [f"{ids[a]}|{ids[v]}" for a, v in zip(pairs.audio_index,
                                                               pairs.visual_index)],
        "label": names[y], "manipulation": manipulation[pairs.audio_index],
        "level": level[pairs.audio_index], "response": names[response],
        "correct": response == y, "p_congruent": p[:, 1], "p_incongruent": p[:, 0],
        "audio_class": [TEST_CLASSES[i] for i in split.labels[pairs.audio_index]],
        "visual_class": [TEST_CLASSES[i] for i in split.labels[pairs.visual_index]],
    })
    metrics = {"model": cfg.name, "n": int(len(y)), "loss": _cross_entropy(p, y),
               "accuracy": float(np.mean(response == y))}
    return out, metrics


def evaluate(cfg, model, split) -> tuple[pd.DataFrame, dict]:
    """Predictions and metrics (recognition: loss, top1, top5; SAVC: loss, accuracy)."""
    if cfg.task == "recognition":
        return predict_recognition(cfg, model, split)
    return predict_savc(cfg, model, split)
