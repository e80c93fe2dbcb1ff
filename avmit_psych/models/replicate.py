"""Train and evaluate the paper's 24 baselines and set the results beside Tables 6 and 7."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .._atomic import atomic_path
from ..dataset import schema, tfrecords
from ..dataset.schema import DatasetError
from . import evaluation, paper, training
from .config import load_config

SPLIT_CSVS = {"avmit": ("AVMIT_train.csv", "AVMIT_validation.csv"),
              "mit16": ("MIT16_train.csv", "MIT16_validation.csv")}


def replicate(configs_dir, *, csv_dir, roots: dict, out_dir, epochs: int | None = None,
              only: str | None = None, verbose: int = 1):
    """Train (or reuse) and test every config under ``configs_dir/{recognition,savc}``.

    Returns (table6, table7) DataFrames with our and the paper's numbers.
    """
    configs_dir, csv_dir, out_dir = Path(configs_dir), Path(csv_dir), Path(out_dir)
    for name in ("test_set.csv",) + SPLIT_CSVS["avmit"] + SPLIT_CSVS["mit16"]:
        if not (csv_dir / name).exists():
            raise DatasetError(f"{name} not found", path=csv_dir,
                               fix="give the folder holding the five released split CSVs")
    rows = {"recognition": [], "savc": []}
    paths = sorted(configs_dir.glob("recognition/*.yaml")) + sorted(configs_dir.glob("savc/*.yaml"))
    if only:
        paths = [p for p in paths if only in p.stem or only in p.parent.name]
    if not paths:
        raise DatasetError("no config matched", path=configs_dir, fix="check --only")
    for path in paths:
        cfg = load_config(path)
        if epochs:
            cfg = cfg.replace(epochs=int(epochs))
        root = roots[cfg.embeddings]
        train_csv, val_csv = (csv_dir / n for n in SPLIT_CSVS[cfg.train_set])
        def load(csv, root=root, cfg=cfg):
            return tfrecords.load_split(csv, root, feature_set=cfg.embeddings,
                                        timesteps=cfg.timesteps)

        run_dir = out_dir / cfg.task / path.stem
        if verbose:
            print(f"== {cfg.task} {path.stem}")
        result = training.train(cfg, load(train_csv), load(val_csv), run_dir,
                                verbose=verbose)
        _, metrics = evaluation.evaluate(cfg, result.model, load(csv_dir / "test_set.csv"))
        with atomic_path(run_dir / "test_metrics.json") as tmp:
            tmp.write_text(json.dumps(metrics, indent=2))
        key = (cfg.train_set, cfg.embeddings, cfg.rnn)
        if cfg.task == "recognition":
            p_loss, p_top1, p_top5 = paper.TABLE6[key]
            rows["recognition"].append({
                "train": cfg.train_set, "embeddings": cfg.embeddings, "rnn": cfg.rnn,
                "loss": metrics["loss"], "top1": 100 * metrics["top1"],
                "top5": 100 * metrics["top5"], "paper_loss": p_loss, "paper_top1": p_top1,
                "paper_top5": p_top5, "epochs_run": result.metrics["epochs_run"]})
        else:
            p_loss, p_acc = paper.TABLE7[key]
            rows["savc"].append({
                "train": cfg.train_set, "embeddings": cfg.embeddings, "rnn": cfg.rnn,
                "loss": metrics["loss"], "accuracy": 100 * metrics["accuracy"],
                "paper_loss": p_loss, "paper_accuracy": p_acc,
                "epochs_run": result.metrics["epochs_run"]})
    table6 = pd.DataFrame(rows["recognition"])
    table7 = pd.DataFrame(rows["savc"])
    out_dir.mkdir(parents=True, exist_ok=True)
    schema.write_csv(table6, out_dir / "table6.csv")
    schema.write_csv(table7, out_dir / "table7.csv")
    return table6, table7


def format_table(table: pd.DataFrame, title: str) -> str:
    """A printable table: ours beside the paper's, one line per model."""
    if table.empty:
        return f"{title}\n(no models)"
    shown = table.drop(columns=["epochs_run"]).copy()
    for col in shown.columns:
        if col.endswith("loss"):
            shown[col] = shown[col].map(lambda v: f"{v:.4f}")
        elif shown[col].dtype.kind == "f":
            shown[col] = shown[col].map(lambda v: f"{v:.2f}")
    return f"{title}\n{shown.to_string(index=False)}"
