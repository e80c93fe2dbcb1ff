"""Benchmark extraction and suite generation on Dask: throughput with 1 and 2 worker processes
(``--cluster local:1`` / ``local:2``) on this machine, and the ratio.

Extraction: YAMNet+EfficientNetB0 with random weights on synthetic clips (3 s, 30 fps, 320x240,
stereo AAC; ``bench_extract.make_jobs``), ``features.extract.extract_on_dask`` in shards of
``--shard-size`` videos. Each worker builds the encoders and traces the model calls on one clip
of its own before the clock starts (a worker does that once per run, whatever the run's size),
so the timed figure is the steady-state throughput; the cluster's start-up and that warm-up are
reported beside it. The single-process ``extract`` (no Dask) is timed on the same clips for
reference.

Suite generation: 8 conditions of the default suite (the original, offsets -100/+100 ms, 0 dB
white noise calibrated for AAC, pixel noise SD 32, a semantic swap, audio only, visual only)
on synthetic probe clips (320x240), ``stimuli.generate.generate(cluster=...)`` in shards of one
source, verification off.

Like with like: before any figure is reported, :func:`check_same_files` checks that every run
wrote byte-identical files (TFRecords; stimuli and the manifest's SHA-256 column) to the
single-process run's.

The ratio is only as good as the machine is quiet: on a 2-core machine two TensorFlow workers
share the cores (each also runs TensorFlow's own threads), and anything else running takes
its share; the load average at the start and end is recorded.

Run: ``.venv/bin/python benchmarks/bench_dask.py [--videos 48] [--sources 8]``; figures are
printed and written to benchmarks/results/dask.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import pandas as pd  # noqa: E402

from avmit_psych import _cluster  # noqa: E402
from avmit_psych.dataset import schema, synthetic  # noqa: E402
from avmit_psych.features import extract  # noqa: E402
from avmit_psych.stimuli import generate, suite as S  # noqa: E402

SUITE = HERE.parent / "stimuli" / "suites" / "avmit_test_960.yaml"
SPEC = extract.EncoderSpec("yamnet", "random", "effnetb0", "random", seed=0)
CONDITIONS = [S.Condition("none"), S.Condition("av_offset", -100.0),
              S.Condition("av_offset", 100.0), S.Condition("audio_noise", 0.0),
              S.Condition("visual_noise", 32.0), S.Condition("semantic_swap"),
              S.Condition("audio_only"), S.Condition("visual_only")]


def check_same_files(a: Path, b: Path, pattern: str) -> int:
    """Raise ``AssertionError`` unless the two folders hold the same ``pattern`` files with
    the same bytes; returns how many."""
    files_a = sorted(p.relative_to(a) for p in a.rglob(pattern))
    files_b = sorted(p.relative_to(b) for p in b.rglob(pattern))
    if files_a != files_b:
        raise AssertionError(f"{a} and {b} hold different {pattern} files: "
                             f"{sorted(set(map(str, files_a)) ^ set(map(str, files_b)))[:5]}")
    for rel in files_a:
        if (a / rel).read_bytes() != (b / rel).read_bytes():
            raise AssertionError(f"{rel}: the files differ between {a} and {b}")
    return len(files_a)


def check_same_manifest(a: Path, b: Path) -> int:
    """Raise ``AssertionError`` unless both suites' manifests list the same stimuli with the
    same SHA-256 (and their files are byte-identical); returns how many."""
    ma, mb = pd.read_csv(a / "manifest.csv"), pd.read_csv(b / "manifest.csv")
    if ma["stimulus_id"].tolist() != mb["stimulus_id"].tolist() or \
            ma["sha256"].tolist() != mb["sha256"].tolist():
        raise AssertionError(f"the manifests of {a} and {b} differ in their stimuli or checksums")
    check_same_files(a, b, "*.mp4")
    return len(ma)


def _warm_up(client, jobs, out: Path) -> None:
    """Each worker builds the encoders and traces the model calls on one clip of its own."""
    addresses = sorted(client.scheduler_info()["workers"])
    futures = []
    for i, address in enumerate(addresses):
        job = jobs[i % len(jobs)]
        job = replace(job, video_path=Path(job.video_path).absolute())
        futures.append(client.submit(extract.extract_shard, [job], SPEC, str(out / f"w{i}"),
                                     workers=[address], pure=False))
    client.gather(futures)


def extraction(jobs, out: Path, n_workers: int, shard_size: int) -> dict:
    """Steady-state videos/s of ``extract_on_dask`` on ``local:n_workers``."""
    start = time.perf_counter()
    with _cluster.connect(f"local:{n_workers}") as client:
        _warm_up(client, jobs, out.parent / f"warm{n_workers}")
        ready = time.perf_counter()
        report = extract.extract_on_dask(jobs, SPEC, out, client, shard_size=shard_size,
                                         progress=False)
        seconds = time.perf_counter() - ready
    if not (report["status"] == "written").all():
        raise AssertionError(f"extraction on {n_workers} workers: "
                             f"{report['status'].value_counts().to_dict()}")
    return {"workers": n_workers, "seconds": seconds, "videos_per_s": len(jobs) / seconds,
            "start_and_warm_up_s": ready - start}


def suite_generation(suite, sources, out: Path, n_workers: int, shard_size: int = 1) -> dict:
    """Stimuli/s of ``generate(cluster=local:n_workers)`` (the cluster started beforehand)."""
    start = time.perf_counter()
    with _cluster.connect(f"local:{n_workers}") as client:
        ready = time.perf_counter()
        manifest, failures, _ = generate.generate(suite, sources, out, seed=0, progress=False,
                                                  verify=False, cluster=client,
                                                  shard_size=shard_size)
        seconds = time.perf_counter() - ready
    if len(failures):
        raise AssertionError(f"suite on {n_workers} workers: {len(failures)} failures")
    return {"workers": n_workers, "seconds": seconds, "stimuli": len(manifest),
            "stimuli_per_s": len(manifest) / seconds, "start_s": ready - start}


def bench_suite(tmp: Path, n_sources: int, conditions=tuple(CONDITIONS)) -> dict:
    classes = list(schema.TEST_CLASSES[:max(2, n_sources)])[:n_sources]
    csv = synthetic.write_probe_clips(tmp / "clips", tmp / "t.csv", per_class=1,
                                      classes=classes, size=(320, 240))
    sources = generate.sources_from_test_set(csv, tmp / "clips")
    suite = replace(S.load_suite(SUITE), name="bench_dask", text="bench_dask",
                    conditions=list(conditions))
    start = time.perf_counter()
    generate.generate(suite, sources, tmp / "suite_single", seed=0, workers=1, progress=False,
                      verify=False)
    single_s = time.perf_counter() - start
    runs = [suite_generation(suite, sources, tmp / f"suite_{n}", n) for n in (1, 2)]
    same = [check_same_manifest(tmp / "suite_single", tmp / f"suite_{n}") for n in (1, 2)]
    return {"sources": n_sources, "conditions": len(conditions), "stimuli": same[0],
            "single_process_1_worker_s": single_s, "runs": runs,
            "ratio_2_vs_1": runs[1]["stimuli_per_s"] / runs[0]["stimuli_per_s"]}


def bench_extraction(tmp: Path, n_videos: int, shard_size: int) -> dict:
    from bench_extract import make_jobs
    jobs = make_jobs(tmp / "ex", n_videos)
    audio, visual = SPEC.load()
    extract.extract(jobs[:1], audio, visual, tmp / "warm_single", progress=False)
    start = time.perf_counter()
    extract.extract(jobs, audio, visual, tmp / "single", progress=False)
    single_s = time.perf_counter() - start
    runs = [extraction(jobs, tmp / f"dask_{n}", n, shard_size) for n in (1, 2)]
    for n in (1, 2):
        check_same_files(tmp / "single", tmp / f"dask_{n}", "*.tfrecord")
    return {"videos": n_videos, "shard_size": shard_size,
            "single_process_s": single_s, "single_process_videos_per_s": n_videos / single_s,
            "runs": runs, "ratio_2_vs_1": runs[1]["videos_per_s"] / runs[0]["videos_per_s"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=48, help="clips to embed")
    parser.add_argument("--shard-size", type=int, default=4, help="clips per extraction shard")
    parser.add_argument("--sources", type=int, default=8, help="source clips of the suite")
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ex = bench_extraction(tmp, args.videos, args.shard_size)
        su = bench_suite(tmp, args.sources)
    result = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "platform": platform.platform(),
                          "load_average_1min_before_after": [load_before[0],
                                                              os.getloadavg()[0]]},
              "extraction": ex, "suite": su}
    print(f"machine: {os.cpu_count()} cores, 1-min load average {load_before[0]:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after (shared with other work: ratios are indicative)")
    print(f"extraction, YAMNet+EfficientNetB0 (random weights), {ex['videos']} clips 3 s "
          f"320x240, shards of {ex['shard_size']}; TFRecords byte-identical in all runs:")
    print(f"  single process (no Dask)  {ex['single_process_s']:7.2f} s  "
          f"{ex['single_process_videos_per_s']:6.2f} videos/s")
    for r in ex["runs"]:
        print(f"  Dask, {r['workers']} worker(s)         {r['seconds']:7.2f} s  "
              f"{r['videos_per_s']:6.2f} videos/s  (+ {r['start_and_warm_up_s']:.1f} s cluster "
              "start and per-worker model build, once per run)")
    print(f"  2 vs 1 workers: {ex['ratio_2_vs_1']:.2f}x")
    print(f"suite generation, {su['conditions']} conditions x {su['sources']} sources = "
          f"{su['stimuli']} stimuli (320x240, H.264 + AAC); manifests' SHA-256 identical:")
    print(f"  single process, 1 worker  {su['single_process_1_worker_s']:7.2f} s")
    for r in su["runs"]:
        print(f"  Dask, {r['workers']} worker(s)         {r['seconds']:7.2f} s  "
              f"{r['stimuli_per_s']:6.2f} stimuli/s  (+ {r['start_s']:.1f} s cluster start)")
    print(f"  2 vs 1 workers: {su['ratio_2_vs_1']:.2f}x")
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "dask.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
