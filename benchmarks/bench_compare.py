"""Benchmark ``compare`` at the issue's scale: 50 humans and 12 models, 15,000 trials each.

The data are simulated psychometric observers (``dataset.synthetic.simulate_comparison``) on
the default suite's 27 conditions: one trials CSV per human, one predictions CSV per model.
Timed: the whole ``python -m avmit_psych.analysis compare`` (read, accuracy, single-case
tests with a bootstrap over stimuli, ANOVAs, error consistency with 1,000 bootstrap resamples
for 1,891 pairs x 27 conditions, confusions, 192 psignifit fits, figures, report),
in-process and as a fresh command.

Target: under 30 s. Run: ``.venv/bin/python benchmarks/bench_compare.py [--repeats 2]``;
writes benchmarks/results/compare.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from avmit_psych.analysis.__main__ import main as analysis_main  # noqa: E402
from avmit_psych.dataset import synthetic  # noqa: E402

TARGET_S = 30.0


def write_data(root: Path, n_humans: int, n_models: int, n_trials: int) -> tuple[Path, Path]:
    trials, predictions = synthetic.simulate_comparison(n_humans, n_models, n_trials, seed=0)
    humans, models = root / "humans", root / "models"
    humans.mkdir(parents=True)
    models.mkdir(parents=True)
    for p, rows in trials.groupby("participant"):
        rows.to_csv(humans / f"sub-{p}_ses-1_task-classify_beh.csv", index=False)
    for m, rows in predictions.groupby("model"):
        rows.to_csv(models / f"{m}.csv", index=False)
    return humans, models


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--humans", type=int, default=50)
    ap.add_argument("--models", type=int, default=12)
    ap.add_argument("--trials", type=int, default=15_000)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        humans, models = write_data(tmp, args.humans, args.models, args.trials)
        print(f"data: {args.humans} humans + {args.models} models x {args.trials:,} trials "
              f"written in {time.perf_counter() - t0:.1f} s")
        argv = ["compare", "--humans", str(humans), "--models", str(models), "--out"]
        inproc = []
        for i in range(args.repeats):
            start = time.perf_counter()
            code = analysis_main(argv + [str(tmp / f"out{i}")])
            inproc.append(time.perf_counter() - start)
            assert code == 0, code
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "avmit_psych.analysis", *argv,
                        str(tmp / "out_cmd")], check=True, stdout=subprocess.DEVNULL,
                       cwd=HERE.parent)
        command = time.perf_counter() - start
    result = {"humans": args.humans, "models": args.models, "trials_each": args.trials,
              "in_process_s": inproc, "in_process_median_s": statistics.median(inproc),
              "fresh_command_s": command, "target_s": TARGET_S, "cpus": os.cpu_count(),
              "machine": platform.platform()}
    print(f"compare in-process: median {statistics.median(inproc):.1f} s "
          f"({', '.join(f'{t:.1f}' for t in inproc)}); fresh command {command:.1f} s; "
          f"target < {TARGET_S:.0f} s on {os.cpu_count()} cores")
    out = HERE / "results" / "compare.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
