"""A synthetic video pool so the shipped experiment configs run out of the box.

Probe clips (``dataset.synthetic.clips.write_probe_clips``) for the 16 test classes, two sizes so the
bottom-left placement of the annotation screen is visible, with a hidden "true" rating per clip
(used only by the simulated participant), ground-truth ratings for a quarter of them, and a
training and a screening set (one clip per class each, with the expected rating and the
reasoning shown after a training answer).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..dataset import schema
from ..dataset.synthetic.clips import write_probe_clips

REASONS = {
    1: "The labelled event cannot be both seen and heard in this clip.",
    2: "The event is there, but something else is longer or louder.",
    3: "The event is there and it is the clip's most prominent feature.",
}


def ensure_demo_pool(root, *, seed: int = 0, per_class: int = 2) -> dict[str, Path]:
    """Write the pool once under ``root``; return the paths of pool.csv, training.csv and
    screening.csv (their ``path`` column is relative to ``root``)."""
    root = Path(root)
    files = {name: root / f"{name}.csv" for name in ("pool", "training", "screening")}
    if all(p.exists() for p in files.values()):
        return files
    rng = np.random.default_rng([int(seed), 61])
    rows = []
    for split, n, size in (("pool", per_class, (160, 120)), ("pool_wide", per_class, (224, 126)),
                           ("training", 1, (200, 150)), ("screening", 1, (176, 144))):
        csv = write_probe_clips(root / "videos" / split, root / f".{split}.csv",
                                    per_class=n, seed=seed + len(rows), size=size)
        table = schema.read_csv(csv)
        table["path"] = [f"videos/{split}/{p}" for p in table["new_filename"]]
        table["filename"] = [f"{split}/{f}" for f in table["filename"]]
        table["split"] = split.replace("_wide", "")
        table["true_rating"] = rng.choice([1, 2, 3], size=len(table), p=[0.3, 0.2, 0.5])
        rows.append(table)
        Path(csv).unlink()
    table = pd.concat(rows, ignore_index=True)
    pool = table[table["split"] == "pool"].copy()
    gt = rng.random(len(pool)) < 0.25
    pool["ground_truth"] = np.where(gt, pool["true_rating"], "")
    video = list(schema.ANNOTATION_POOL_COLUMNS)
    schema.write_csv(pool[video + ["ground_truth", "true_rating"]], files["pool"])
    for split in ("training", "screening"):
        part = table[table["split"] == split].copy()
        part["expected_rating"] = part["true_rating"]
        part["reasoning"] = part["expected_rating"].map(REASONS)
        schema.write_csv(part[video + ["expected_rating", "reasoning", "true_rating"]],
                         files[split])
    return files
