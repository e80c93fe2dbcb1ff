"""The paper's hyperparameter random search with the bootstrap.

Each trial samples hyperparameters uniformly from the space, trains on a bootstrap resample of
the data (rows drawn with replacement) and scores on the out-of-bag rows, with early stopping
(patience 8 in the paper) on the out-of-bag loss. A trial is a pure function of
(config, data, seed, trial number): :func:`run_trial` can be handed to any parallel engine.
:func:`search` runs trials in order, appends each result to ``results.csv`` as it finishes, and
skips trials already there, so an interrupted search resumes.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from .._atomic import fsync_file
from ..dataset.schema import DatasetError, read_yaml, write_csv
from .config import ModelConfig

_SEARCHABLE = ("bottleneck", "activation", "rnn_units", "dropout", "learning_rate")


def load_space(path) -> dict:
    """Read a search space YAML: ``trials``, ``patience`` and ``space`` (lists of choices, or
    ``{uniform: [low, high]}``)."""
    path = Path(path)
    spec = read_yaml(path, what="search space file", example="analysis/search/recognition.yaml")
    if not isinstance(spec, dict) or not isinstance(spec.get("space"), dict):
        raise DatasetError("a search space needs a 'space' mapping", path=path)
    unknown = set(spec) - {"trials", "patience", "space"}
    if unknown:
        raise DatasetError(f"unknown key '{sorted(unknown)[0]}'", path=path,
                           fix="keys are trials, patience and space")
    for key, choice in spec["space"].items():
        if key not in _SEARCHABLE:
            raise DatasetError(f"'{key}' cannot be searched", path=path, column=key,
                               fix=f"searchable: {', '.join(_SEARCHABLE)}")
        ok = (isinstance(choice, list) and choice) or (
            isinstance(choice, dict) and set(choice) == {"uniform"}
            and len(choice["uniform"]) == 2 and choice["uniform"][0] < choice["uniform"][1])
        if not ok:
            raise DatasetError(f"'{key}' needs a list of values or {{uniform: [low, high]}}",
                               path=path, column=key)
    spec.setdefault("trials", 300)
    spec.setdefault("patience", 8)
    return spec


def sample_params(space: dict, seed: int, trial: int) -> dict:
    rng = np.random.default_rng([int(seed), 31, int(trial)])
    params = {}
    for key in sorted(space):
        choice = space[key]
        if isinstance(choice, dict):
            low, high = choice["uniform"]
            params[key] = float(rng.uniform(low, high))
        else:
            value = choice[int(rng.integers(0, len(choice)))]
            params[key] = value.item() if hasattr(value, "item") else value
    return params


def bootstrap(n: int, seed: int, trial: int) -> tuple[np.ndarray, np.ndarray]:
    """(in-bag indices drawn with replacement, out-of-bag indices) for one trial."""
    rng = np.random.default_rng([int(seed), 37, int(trial)])
    in_bag = rng.integers(0, n, n)
    out_of_bag = np.setdiff1d(np.arange(n), in_bag)
    return in_bag, out_of_bag


def run_trial(cfg: ModelConfig, data, *, space: dict, trial: int, seed: int = 0,
              patience: int = 8, epochs: int | None = None, work_dir=None) -> dict:
    """Train and score one surrogate model; a pure function of its arguments."""
    from .training import train

    params = sample_params(space, seed, trial)
    trial_cfg = cfg.replace(**params, patience=patience, seed=int(seed) + int(trial),
                            name=f"{cfg.name}_trial{trial:04d}",
                            **({"epochs": int(epochs)} if epochs else {}))
    in_bag, oob = bootstrap(len(data), seed, trial)
    tmp = Path(tempfile.mkdtemp(prefix=f"trial{trial:04d}-", dir=work_dir))
    try:
        result = train(trial_cfg, data.take(in_bag), data.take(oob), tmp, verbose=0)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    m = result.metrics
    return {"trial": trial, **params, "oob_loss": m["val_loss"],
            "oob_top1": m["val_accuracy"], "oob_top5": m.get("val_top5"),
            "best_epoch": m["best_epoch"], "epochs_run": m["epochs_run"],
            "n_in_bag_unique": int(len(np.unique(in_bag))), "n_out_of_bag": int(len(oob)),
            "seed": int(seed)}


def search(cfg: ModelConfig, data, space_path, out_dir, *, trials: int | None = None,
           epochs: int | None = None, seed: int = 0, progress: bool = True) -> pd.DataFrame:
    """Run the random search; results go to ``out_dir/results.csv`` (one row per trial)."""
    spec = load_space(space_path)
    n_trials = int(trials or spec["trials"])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results_path = out_dir / "results.csv"
    done = set()
    if results_path.exists():
        previous = pd.read_csv(results_path)
        if len(previous) and int(previous["seed"].iloc[0]) != int(seed):
            raise DatasetError(f"results here come from seed {int(previous['seed'].iloc[0])}",
                               path=results_path, fix="use the same --seed or a new --out")
        done = set(previous["trial"].astype(int))
    from tqdm.auto import tqdm
    todo = [t for t in range(n_trials) if t not in done]
    for trial in tqdm(todo, desc=f"search {cfg.name}", disable=not progress):
        row = run_trial(cfg, data, space=spec["space"], trial=trial, seed=seed,
                        patience=int(spec["patience"]), epochs=epochs, work_dir=out_dir)
        new = not results_path.exists()
        with open(results_path, "a", encoding="utf-8", newline="") as fh:
            pd.DataFrame([row]).to_csv(fh, header=new, index=False, lineterminator="\n")
            fsync_file(fh)
    results = pd.read_csv(results_path)
    results = results[results["trial"] < n_trials].sort_values("trial")
    write_csv(results.sort_values("oob_loss", kind="stable"), out_dir / "ranked.csv")
    return results.reset_index(drop=True)
