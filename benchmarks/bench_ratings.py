"""Benchmark the ratings pipeline at the paper's scale.

- aggregate: 171,630 synthetic raw ratings (57,210 videos x 3) read, validated, counted, written
  (``ratings aggregate`` end to end);
- summary: 57,177 videos of video ratings read, voted, tabled, plotted (fig2.png) and their
  reliability computed (``ratings summary`` end to end).

Target: each under 5 s. Run: ``.venv/bin/python benchmarks/bench_ratings.py [--repeats 3]``.
Prints the best and median wall time of each, in-process and as a fresh command, and writes benchmarks/results/ratings.json.
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
from avmit_psych.dataset import ratings, schema, synthetic  # noqa: E402

N_RATINGS = 171_630
N_VIDEOS_SUMMARY = 57_177
TARGET_S = 5.0


def timed(argv, repeats):
    """Wall time of the command in this process (imports already done)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        code = analysis_main([str(a) for a in argv])
        times.append(time.perf_counter() - start)
        assert code == 0
    return times


def timed_cold(argv, repeats):
    """Wall time of ``python -m avmit_psych.analysis ...`` as a user runs it (with start-up)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "avmit_psych.analysis", *map(str, argv)],
                       check=True, capture_output=True, cwd=HERE.parent)
        times.append(time.perf_counter() - start)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sim = synthetic.simulate_ratings(N_RATINGS // 3, seed=0, p_extra=0.0, p_fewer=0.0)
        assert len(sim.raw) == N_RATINGS
        schema.write_csv(sim.raw, tmp / "raw.csv")
        big = synthetic.simulate_ratings(N_VIDEOS_SUMMARY, seed=1, p_extra=0.03, p_fewer=0.0)
        vr = ratings.aggregate(big.raw).video_ratings
        assert len(vr) == N_VIDEOS_SUMMARY
        schema.write_csv(vr, tmp / "vr.csv")
        aggregate = ["ratings", "aggregate", tmp / "raw.csv", "-o", tmp / "out.csv"]
        summary = ["ratings", "summary", tmp / "vr.csv", "--out", tmp / "summary"]
        results = {
            "aggregate_171630_ratings": timed(aggregate, args.repeats),
            "aggregate_171630_ratings_cold_command": timed_cold(aggregate, args.repeats),
            "summary_57177_videos": timed(summary, args.repeats),
            "summary_57177_videos_cold_command": timed_cold(summary, args.repeats),
        }
    print()
    report = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "platform": platform.platform()}, "target_s": TARGET_S, "results": {}}
    for name, times in results.items():
        best, median = min(times), statistics.median(times)
        ok = "OK" if median < TARGET_S else "OVER TARGET"
        print(f"{name:40s} best {best:6.2f} s   median {median:6.2f} s   ({ok}, target {TARGET_S} s)")
        report["results"][name] = {"best_s": best, "median_s": median, "runs_s": times}
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "ratings.json").write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
