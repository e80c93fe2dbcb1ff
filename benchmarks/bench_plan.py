"""Benchmark ``plan`` at the issue's scale: the default design of the 960 x 27 default suite.

The manifest is synthetic (``experiments.plan.synthetic_manifest`` over
``stimuli/suites/avmit_test_960.yaml``: 960 source videos, 60 per class, 25,920 stimuli; no
video files are needed to plan). Timed: planning and writing the full default design (27 lists
x 2 sessions: reading the manifest, the Latin square, the session split, ordering with the
constraints, repeats, power, 54 plan files + design.json + design_report.txt), in-process
(``plan_study``) and as a fresh ``python -m avmit_psych.experiments plan`` command. The two
ways must write byte-identical plan files (checked).

Target: under 10 s. Run: ``.venv/bin/python benchmarks/bench_plan.py [--repeats 3]``;
writes benchmarks/results/plan.json.
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

from avmit_psych.experiments import plan as P  # noqa: E402

TARGET_S = 10.0
SUITE = HERE.parent / "stimuli" / "suites" / "avmit_test_960.yaml"


def write_manifest(root: Path, per_class: int) -> Path:
    manifest = P.synthetic_manifest(SUITE, per_class=per_class)
    path = root / "suite" / "manifest.csv"
    path.parent.mkdir(parents=True)
    manifest.to_csv(path, index=False)
    return path


def same_plans(a: Path, b: Path) -> bool:
    names = sorted(p.name for p in a.glob("list-*.csv"))
    return names == sorted(p.name for p in b.glob("list-*.csv")) and all(
        (a / n).read_bytes() == (b / n).read_bytes() for n in names)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-class", type=int, default=60, help="source videos per class")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        manifest = write_manifest(tmp, args.per_class)
        print(f"manifest: {16 * args.per_class} source videos x 27 conditions written in "
              f"{time.perf_counter() - t0:.1f} s")
        inproc = []
        for i in range(args.repeats):
            start = time.perf_counter()
            study = P.plan_study(manifest, tmp / f"out{i}")
            inproc.append(time.perf_counter() - start)
        design = study.design
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "avmit_psych.experiments", "plan", "--manifest",
                        str(manifest), "--out", str(tmp / "out_cmd")], check=True,
                       stdout=subprocess.DEVNULL, cwd=HERE.parent)
        command = time.perf_counter() - start
        identical = same_plans(tmp / "out0", tmp / "out_cmd")
    result = {"sources": 16 * args.per_class, "conditions": len(design["conditions"]),
              "lists": design["n_lists"], "sessions": design["sessions"],
              "plan_files": len(design["plans"]),
              "trials_per_session": [p["n_trials"] for p in design["plans"] if p["list"] == 1],
              "in_process_s": inproc, "in_process_median_s": statistics.median(inproc),
              "fresh_command_s": command, "command_matches_in_process": identical,
              "target_s": TARGET_S, "cpus": os.cpu_count(), "machine": platform.platform()}
    print(f"plan {design['n_lists']} lists x {design['sessions']} sessions "
          f"({len(design['plans'])} files): in-process median {statistics.median(inproc):.2f} s "
          f"({', '.join(f'{t:.2f}' for t in inproc)}); fresh command {command:.2f} s; "
          f"target < {TARGET_S:.0f} s on {os.cpu_count()} cores; command and in-process plans "
          f"{'identical' if identical else 'DIFFER'}")
    out = HERE / "results" / "plan.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
