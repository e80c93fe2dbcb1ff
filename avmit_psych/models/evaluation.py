"""Evaluation and per-trial predictions, in the predictions data contract.

Predictions (one row per model x stimulus): ``model, stimulus_id, label, manipulation, level,
response, correct`` plus ``p_<class>`` probabilities; the test set's rows are condition
``none``.

SAVC models are scored two ways:

- :func:`predict_savc` (``evaluate``, the paper's Table 7): random audio/visual pairs of the
  test set, ``stimulus_id`` ``<audio video>|<visual video>``, ``label``/``response``
  ``congruent``/``incongruent``, probabilities ``p_congruent``/``p_incongruent``.
- :func:`predict_correspondence` (``predict`` on a stimulus manifest): the human's trial. One
  row per suite stimulus, on the manifest's ``stimulus_id``, judged on the stimulus's own audio
  and visual embeddings; ``label``/``response`` ``same``/``different`` (the answer key of
  :func:`~avmit_psych.models.savc.correspondence_answer`), probabilities
  ``p_same``/``p_different``.
"""
from __future__ import annotations


import numpy as np
import pandas as pd

from ..dataset import schema
from ..dataset.schema import TEST_CLASSES, DatasetError
from . import savc
from .training import ArrayData, has_audio_mask

PREDICTION_COLUMNS = list(schema.PREDICTIONS_COLUMNS)


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


def predict_correspondence(cfg, model, split, *,
                           batch_size: int = 512) -> tuple[pd.DataFrame, dict]:
    """A SAVC model's answer to every correspondence trial of a stimulus suite.

    Each stimulus is judged on its own embeddings: the audio sequence of its own audio track
    and the visual sequence of its own frames (for a ``semantic_swap`` stimulus, the donor's
    audio and the source's picture), which is exactly what a human hears and sees on that
    trial. Nothing is paired at random and nothing new is embedded.

    Parameters
    ----------
    cfg, model : a SAVC config and model (``training.load_trained``).
    split : the manifest's :class:`~avmit_psych.dataset.tfrecords.Split` (``load_split``); its
        rows need ``manipulation`` (and carry ``stimulus_id``, ``level``, ``audio_source``,
        ``source_filename`` through).

    Returns
    -------
    predictions : pandas.DataFrame
        One row per stimulus with a correspondence question, in manifest order:
        :data:`PREDICTION_COLUMNS` (``label`` the answer key, ``response`` ``same`` when
        ``p_same >= 0.5``, else ``different``), ``task`` (``correspondence``), ``p_same``,
        ``p_different`` (the model's softmax: index 1 "congruent", index 0 "incongruent"),
        ``audio_class``, ``visual_class`` and, when the manifest has them, ``audio_source``
        and ``visual_source`` (its ``source_filename``). Stimuli of
        :data:`~avmit_psych.models.savc.ONE_MODALITY` (``audio_only``, ``visual_only``) are
        left out: with grey frames or silence there is no sound-picture pair to judge.
    metrics : dict
        ``model``, ``task``, ``n``, ``loss`` (cross-entropy against the key), ``accuracy``,
        ``accuracy_same``, ``accuracy_different``, ``n_left_out`` and ``left_out`` (count
        by manipulation).

    Raises
    ------
    DatasetError
        The rows have no ``manipulation`` column, or a row's manipulation is empty.

    See Also
    --------
    predict_savc : the paper's random test pairs (``evaluate``).
    avmit_psych.models.savc.correspondence_answer : the answer key, shared with the human
        correspondence task.
    """
    rows = split.rows.reset_index(drop=True)
    ids = _stimulus_ids(rows)
    if "manipulation" not in rows.columns:
        raise DatasetError("no manipulation column: a correspondence trial's answer key "
                           "(same/different) comes from the stimulus's manipulation",
                           column="manipulation", fix="give a stimulus manifest (stimuli "
                           "generate writes one); for the paper's random test pairs use "
                           "`evaluate`")
    manipulation = rows["manipulation"]
    empty = manipulation.isna() | (manipulation.astype(str).str.strip() == "")
    if empty.any():
        i = int(np.flatnonzero(empty.to_numpy())[0])
        raise DatasetError(f"stimulus '{ids[i]}' has no manipulation", column="manipulation",
                           row=int(rows["row"].iloc[i]) if "row" in rows.columns else i + 1,
                           fix="every manifest row needs one (none, av_offset, ...)")
    manipulation = manipulation.astype(str).str.strip().to_numpy()
    key = np.asarray([savc.correspondence_answer(m) for m in manipulation], dtype=object)
    has_question = np.asarray([k is not None for k in key], dtype=bool)
    asked = np.flatnonzero(has_question)
    left_out = pd.Series(manipulation[~has_question]).value_counts(sort=False)
    if len(asked):
        p = np.asarray(model.predict([split.audio[asked], split.visual[asked]],
                                     batch_size=batch_size, verbose=0), dtype=np.float64)
    else:
        p = np.empty((0, 2))
    p_same = p[:, 1]
    label = key[asked].astype(str)
    response = np.where(p_same >= 0.5, savc.SAME, savc.DIFFERENT)
    level = rows["level"].to_numpy()[asked] if "level" in rows.columns \
        else np.full(len(asked), "")
    visual_class = np.asarray([TEST_CLASSES[i] for i in split.labels[asked]], dtype=object)
    audio_class = np.where(manipulation[asked] == "semantic_swap", level.astype(str),
                           visual_class)
    out = pd.DataFrame({
        "model": cfg.name, "stimulus_id": [ids[i] for i in asked], "label": label,
        "manipulation": manipulation[asked], "level": level, "response": response,
        "correct": response == label, "task": "correspondence", "p_same": p_same,
        "p_different": p[:, 0], "audio_class": audio_class, "visual_class": visual_class})
    for column, name in (("audio_source", "audio_source"), ("source_filename", "visual_source")):
        if column in rows.columns:
            out[name] = rows[column].to_numpy()[asked]
    y = (label == savc.SAME).astype(np.int64)
    correct = out["correct"].to_numpy(dtype=bool)

    def rate(which):
        mask = label == which
        return float(correct[mask].mean()) if mask.any() else None

    metrics = {"model": cfg.name, "task": "correspondence", "n": int(len(asked)),
               "loss": _cross_entropy(p, y) if len(asked) else None,
               "accuracy": float(correct.mean()) if len(asked) else None,
               "accuracy_same": rate(savc.SAME), "accuracy_different": rate(savc.DIFFERENT),
               "n_left_out": int(left_out.sum()),
               "left_out": {str(k): int(v) for k, v in left_out.items()}}
    return out, metrics


def evaluate(cfg, model, split) -> tuple[pd.DataFrame, dict]:
    """Predictions and metrics (recognition: loss, top1, top5; SAVC: loss, accuracy on the
    fixed random test pairs)."""
    if cfg.task == "recognition":
        return predict_recognition(cfg, model, split)
    return predict_savc(cfg, model, split)


def predict_stimuli(cfg, model, split) -> tuple[pd.DataFrame, dict]:
    """Predictions for the stimuli of a manifest, one row per stimulus on its
    ``stimulus_id``: recognition models classify each stimulus
    (:func:`predict_recognition`); SAVC models answer its correspondence trial
    (:func:`predict_correspondence`). What the ``predict`` command writes."""
    if cfg.task == "recognition":
        return predict_recognition(cfg, model, split)
    return predict_correspondence(cfg, model, split)
