"""Synthetic embeddings in the released TFRecord layout: class-structured sequences of
audio and visual CNN features, and whole split folders (TFRecords + split CSVs) for training.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .. import schema

#: Typical timesteps of a 3-s clip (audio, visual): 960-ms hops give 3 audio examples and 4
#: frames (0, 0.96, 1.92, 2.88 s); 480-ms hops give 5 audio examples and 7 frames.
SYNTHETIC_TIMESTEPS = {"vggish_vgg16": (3, 4), "yamnet_effnetb0": (5, 7)}


def simulate_embeddings(labels, feature_set: str = "vggish_vgg16", *, seed: int = 0,
                        sample_seed: int | None = None, noise: float = 1.0,
                        class_separation: float = 0.3):
    """Class-structured embedding sequences, one per label.

    Each class has a prototype per modality (drawn from ``seed``); a video's timesteps are its
    class prototype plus a video offset plus per-timestep noise (drawn from ``sample_seed``),
    clipped at 0 like ReLU-pooled CNN features. Splits made with one ``seed`` and different
    ``sample_seed`` share their classes, as train and test sets must.

    Returns
    -------
    list of (audio (Ta, A), visual (Tv, V)) float32 arrays.
    """
    from ..tfrecords import FEATURE_SETS
    a_size, v_size = FEATURE_SETS[feature_set]
    a_steps, v_steps = SYNTHETIC_TIMESTEPS[feature_set]
    proto_rng = np.random.default_rng([seed, 1])
    classes = list(schema.TEST_CLASSES)
    a_proto = proto_rng.normal(0, 1, (len(classes), a_size)) * class_separation
    v_proto = proto_rng.normal(0, 1, (len(classes), v_size)) * class_separation
    rng = np.random.default_rng([seed, 2] if sample_seed is None else [seed, 3, sample_seed])
    out = []
    for label in labels:
        c = classes.index(label)
        ta = a_steps - int(rng.random() < 0.1)
        tv = v_steps - int(rng.random() < 0.1)
        a = a_proto[c] + rng.normal(0, noise, a_size) * 0.5 + rng.normal(0, noise, (ta, a_size))
        v = v_proto[c] + rng.normal(0, noise, v_size) * 0.5 + rng.normal(0, noise, (tv, v_size))
        out.append((np.maximum(a, 0).astype(np.float32), np.maximum(v, 0).astype(np.float32)))
    return out


def write_embedding_dataset(root, csv_dir, *, feature_set: str = "vggish_vgg16",
                            per_class: dict | None = None, seed: int = 0,
                            noise: float = 1.0, class_separation: float = 0.3) -> dict:
    """Write a synthetic embedding dataset: TFRecords under ``root`` and split CSVs in the
    released layouts under ``csv_dir``.

    per_class : videos per class for each split, default
        ``{"AVMIT_train": 40, "AVMIT_validation": 10, "test_set": 10}``. Splits named
        ``AVMIT_*`` use the released AVMIT training layout, ``MIT16_*`` the MIT-16 layout and
        ``test_set`` the test-set layout.

    Returns
    -------
    dict of split name -> CSV path.
    """
    from pathlib import Path

    from ..tfrecords import write_example
    per_class = per_class or {"AVMIT_train": 40, "AVMIT_validation": 10, "test_set": 10}
    root, csv_dir = Path(root), Path(csv_dir)
    paths = {}
    for split_index, (split, n) in enumerate(per_class.items()):
        labels = [c for c in schema.TEST_CLASSES for _ in range(n)]
        order = np.random.default_rng([seed, 100 + split_index]).permutation(len(labels))
        labels = [labels[i] for i in order]
        stems = [f"syn-{split.lower()}-{seed}-{i:05d}" for i in range(len(labels))]
        embeddings = simulate_embeddings(labels, feature_set, seed=seed,
                                         sample_seed=split_index, noise=noise,
                                         class_separation=class_separation)
        rows = []
        for label, stem, (a, v) in zip(labels, stems, embeddings):
            tf_rel = f"{label}/{stem}.tfrecord"
            write_example(root / tf_rel, f"{label}/{stem}.mp4", label, a, v)
            rows.append({"filename": f"{label}/{stem}.mp4", "label": label, "tfrecord": tf_rel})
        frame = pd.DataFrame(rows)
        if split.startswith("AVMIT"):
            out = pd.DataFrame({"filename": frame.filename, "actual_label": frame.label,
                                "r1": 0, "r2": 0, "r3": 3, "label": frame.label,
                                "video_location": "MIT_training",
                                "tfrecord_filename": frame.tfrecord})
            index = False
        elif split.startswith("MIT16"):
            out = pd.DataFrame({"filename": frame.filename, "MIT label": frame.label,
                                "AVMIT label": frame.label, "tfrecord_filename": frame.tfrecord})
            index = True
        else:
            k = frame.groupby("label").cumcount() + 1
            out = pd.DataFrame({"filename": frame.filename, "AVMIT_label": frame.label,
                                "MIT_label": frame.label, "video_location": "training",
                                "new_filename": frame.label + "/" + frame.label + "_" +
                                k.astype(str) + ".mp4",
                                "tfrecord_filename": frame.tfrecord})
            index = False
        paths[split] = schema.write_csv(out, csv_dir / f"{split}.csv", index=index)
    return paths
