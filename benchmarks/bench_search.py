"""Benchmark the search on Optuna: 1 against 2 worker processes, and the storage's cost per trial.

1. Throughput: the same study (the paper's recognition space, the VGGish+VGG16 GRU, a bootstrap
   of 1,200 synthetic MIT-16 rows, each trial capped at ``--epochs``) run by one
   ``python -m avmit_psych.analysis search`` process, then by two processes on one storage
   (SQLite by default; ``--postgres`` adds a throwaway PostgreSQL server from tests/services.py).
   Trials per minute over the study's span (first trial started to last trial finished, from
   the trials' own timestamps in the storage: process start-up not counted) and over the
   command's wall clock; the ratio 2 : 1. Both runs must give the same result for every trial
   (checked: :func:`check_same_results`).
2. Overhead: the time each worker spent in storage calls (taking a trial, recording its
   parameters and results, the stale-trial check, telling the value) and re-writing
   results.csv, per trial, as a percentage of a trial's training time (each worker prints these
   seconds as its last line), against today's way before Optuna: appending the trial's row to
   results.csv and fsyncing (:func:`csv_append_seconds`, the old ``search`` loop's code).
   Heartbeats run in their own thread; their time is counted too. Target: under 2 %. Costs
   paid once per worker (making or joining the study; polling while the other worker finishes
   its last trial) are reported beside, not spread over the trials.

Run: ``.venv/bin/python benchmarks/bench_search.py [--trials 8] [--epochs 3] [--postgres]``;
``--quick`` is a tiny run (tests/test_benchmarks.py). Figures are printed and written to
benchmarks/results/search.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

import pandas as pd  # noqa: E402

from avmit_psych._atomic import fsync_file  # noqa: E402
from avmit_psych.dataset import synthetic  # noqa: E402

CONFIG = REPO / "analysis" / "configs" / "recognition" / "vggish_vgg16_gru_avmit.yaml"
SPACE = REPO / "analysis" / "search" / "recognition.yaml"
TARGET_PERCENT = 2.0
PARAMS = ["activation", "bottleneck", "dropout", "learning_rate", "rnn_units"]
SCORES = ["oob_loss", "oob_top1", "oob_top5", "best_epoch", "epochs_run", "n_in_bag_unique",
          "n_out_of_bag"]


def make_data(root: Path, per_class: tuple[int, int] = (60, 15)) -> list[Path]:
    """Synthetic MIT-16 train and validation embeddings; the CSVs the search resamples."""
    paths = synthetic.write_embedding_dataset(
        root / "tfrecords", root / "csv", seed=4,
        per_class={"MIT16_train": per_class[0], "MIT16_validation": per_class[1]})
    return [Path(paths["MIT16_train"]), Path(paths["MIT16_validation"])]


def search_command(root: Path, csvs, out: Path, storage: str, study: str, *, trials: int,
                   epochs: int, seed: int = 0) -> list[str]:
    return [sys.executable, "-m", "avmit_psych.analysis", "search", "--space", str(SPACE),
            "--config", str(CONFIG), "--tfrecords", str(root / "tfrecords"), "--data-csv",
            *map(str, csvs), "--out", str(out), "--trials", str(trials), "--epochs",
            str(epochs), "--seed", str(seed), "--storage", storage, "--study", study,
            "--no-cache"]


def run_workers(n: int, root: Path, csvs, storage: str, study: str, work: Path, *,
                trials: int, epochs: int) -> dict:
    """Run ``n`` search processes on one study; their figures and the study's results."""
    import optuna
    env = dict(os.environ, MPLBACKEND="Agg", TF_CPP_MIN_LOG_LEVEL="2")
    procs, logs = [], []
    start = time.perf_counter()
    for k in range(n):
        out = work / f"{study}-worker{k}"
        log = open(work / f"{study}-worker{k}.log", "w")
        logs.append(log)
        procs.append(subprocess.Popen(
            search_command(root, csvs, out, storage, study, trials=trials, epochs=epochs),
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=log, text=True))
    stats = []
    for p, log in zip(procs, logs):
        out, _ = p.communicate()
        log.close()
        if p.returncode != 0:
            raise RuntimeError(f"a search worker failed (exit {p.returncode}); see {log.name}")
        stats.append(json.loads(out.strip().splitlines()[-1]))
    wall = time.perf_counter() - start
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study_ = optuna.load_study(study_name=study, storage=storage)
    done = [t for t in study_.trials if t.state == optuna.trial.TrialState.COMPLETE]
    span = (max(t.datetime_complete for t in done)
            - min(t.datetime_start for t in done)).total_seconds()
    from avmit_psych.models import search
    results = search.results_table(study_, trials)
    return {"workers": n, "trials": len(done), "wall_s": wall, "span_s": span,
            "trials_per_min": 60 * len(done) / span, "trials_per_min_wall": 60 * len(done) / wall,
            "worker_stats": stats, "results": results}


def check_same_results(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Every trial has the same parameters and scores in both runs."""
    a, b = a.set_index("trial").sort_index(), b.set_index("trial").sort_index()
    if list(a.index) != list(b.index):
        raise AssertionError(f"results differ: trials {list(a.index)} against {list(b.index)}")
    for col in PARAMS + SCORES:
        differs = a.index[(a[col] != b[col]).to_numpy()]
        if len(differs):
            i = differs[0]
            raise AssertionError(f"results differ: trial {i} {col} {a.at[i, col]!r} against "
                                 f"{b.at[i, col]!r}")


def csv_append_seconds(rows: pd.DataFrame, path: Path, repeats: int = 20) -> float:
    """Seconds per trial of the search before Optuna: append the trial's row to results.csv
    and fsync (the old ``search`` loop, verbatim)."""
    times = []
    for _ in range(repeats):
        path.unlink(missing_ok=True)
        for _, row in rows.iterrows():
            t = time.perf_counter()
            new = not path.exists()
            with open(path, "a", encoding="utf-8", newline="") as fh:
                pd.DataFrame([row.to_dict()]).to_csv(fh, header=new, index=False,
                                                    lineterminator="\n")
                fsync_file(fh)
            times.append(time.perf_counter() - t)
    return sum(times) / len(times)


def overhead(run: dict, csv_s: float) -> dict:
    """Per-trial seconds in storage calls, CSV export and heartbeats, over all workers of a
    run, as a percentage of the mean training time of a trial."""
    s = run["worker_stats"]
    n = sum(w["trials_run"] for w in s)
    train = sum(w["train_s"] for w in s) / n
    storage = sum(w["storage_s"] for w in s) / n
    export = sum(w["export_s"] for w in s) / n
    heartbeat = sum(w["heartbeat_s"] for w in s) / n
    optuna_total = storage + export + heartbeat
    return {"trial_train_s": train, "storage_s_per_trial": storage,
            "export_s_per_trial": export, "heartbeat_s_per_trial": heartbeat,
            "optuna_s_per_trial": optuna_total,
            "optuna_percent_of_trial": 100 * optuna_total / train,
            "csv_append_s_per_trial": csv_s, "csv_percent_of_trial": 100 * csv_s / train,
            # once per worker, not per trial: making or joining the study, and the storage
            # reads while it waited for the other worker's last trial
            "prepare_s": [w["prepare_s"] for w in s], "poll_s": [w["poll_s"] for w in s],
            "wait_s": [w["wait_s"] for w in s]}


def bench(work: Path, storage_of, *, trials: int, epochs: int, per_class) -> dict:
    """Both runs on one kind of storage (``storage_of(name)`` gives a fresh URL)."""
    csvs = make_data(work, per_class)
    one = run_workers(1, work, csvs, storage_of("one"), "one", work, trials=trials,
                      epochs=epochs)
    two = run_workers(2, work, csvs, storage_of("two"), "two", work, trials=trials,
                      epochs=epochs)
    check_same_results(one["results"], two["results"])
    csv_s = csv_append_seconds(one["results"], work / "old_results.csv")
    out = {"n_rows": sum(len(pd.read_csv(c)) for c in csvs), "trials": trials,
           "epochs": epochs, "same_results": True}
    for run in (one, two):
        key = f"{run['workers']}_worker{'s' if run['workers'] > 1 else ''}"
        out[key] = {k: v for k, v in run.items() if k != "results"}
        out[key]["overhead"] = overhead(run, csv_s)
    out["ratio_2_to_1"] = two["trials_per_min"] / one["trials_per_min"]
    out["ratio_2_to_1_wall"] = two["trials_per_min_wall"] / one["trials_per_min_wall"]
    return out


def report(name: str, r: dict) -> None:
    print(f"\n{name}: {r['trials']} trials, {r['n_rows']} rows, epochs <= {r['epochs']}")
    for key in ("1_worker", "2_workers"):
        run, o = r[key], r[key]["overhead"]
        print(f"  {key:9s} {run['trials_per_min']:6.2f} trials/min over the study's span "
              f"({run['span_s']:.0f} s), {run['trials_per_min_wall']:6.2f} with start-up "
              f"({run['wall_s']:.0f} s)")
        print(f"            per trial: training {o['trial_train_s']:.2f} s; Optuna "
              f"{1000 * o['optuna_s_per_trial']:.1f} ms = {o['optuna_percent_of_trial']:.2f} % "
              f"(storage calls {1000 * o['storage_s_per_trial']:.1f} ms, results.csv export "
              f"{1000 * o['export_s_per_trial']:.1f} ms, heartbeats "
              f"{1000 * o['heartbeat_s_per_trial']:.1f} ms); old CSV append "
              f"{1000 * o['csv_append_s_per_trial']:.1f} ms = "
              f"{o['csv_percent_of_trial']:.2f} %")
        print(f"            once per worker: study made or joined in "
              f"{', '.join(f'{v:.2f}' for v in o['prepare_s'])} s; storage polls at the end "
              f"{', '.join(f'{v:.2f}' for v in o['poll_s'])} s")
    print(f"  ratio 2 : 1 workers: {r['ratio_2_to_1']:.2f}x (span), "
          f"{r['ratio_2_to_1_wall']:.2f}x (wall clock); same results: {r['same_results']}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--postgres", action="store_true",
                    help="also run on a throwaway PostgreSQL server (tests/services.py)")
    ap.add_argument("--quick", action="store_true",
                    help="a tiny run: 2 trials, 1 epoch, 96 rows (for the tests)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "search.json")
    args = ap.parse_args(argv)
    trials, epochs, per_class = ((2, 1, (4, 2)) if args.quick
                                 else (args.trials, args.epochs, (60, 15)))
    result = {"cpus": os.cpu_count(), "machine": platform.platform(),
              "target_percent": TARGET_PERCENT}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "sqlite"
        work.mkdir()
        result["sqlite"] = bench(work, lambda name: f"sqlite:///{work / name}.db",
                                 trials=trials, epochs=epochs, per_class=per_class)
        report("SQLite", result["sqlite"])
        if args.postgres:
            from tests.services import PostgresServer
            with PostgresServer() as pg:
                work = Path(tmp) / "postgres"
                work.mkdir()
                result["postgresql"] = bench(work, pg.create_database, trials=trials,
                                             epochs=epochs, per_class=per_class)
                report("PostgreSQL", result["postgresql"])
    worst = max(r[k]["overhead"]["optuna_percent_of_trial"]
                for r in (result.get("sqlite"), result.get("postgresql")) if r
                for k in ("1_worker", "2_workers"))
    result["worst_optuna_percent"] = worst
    result["under_target"] = worst < TARGET_PERCENT
    print(f"\nworst Optuna overhead {worst:.2f} % of a trial (target < {TARGET_PERCENT} %)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
