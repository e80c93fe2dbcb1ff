"""Benchmark suite generation: stimuli per second for the default suite with 2 workers, against
ffmpeg command lines doing the same manipulations and encoding (2 at a time).

Ours: ``avmit_psych.stimuli.generate`` on synthetic probe clips (3 s, 320x240, 30 fps, AAC
stereo), the default suite ``stimuli/suites/avmit_test_960.yaml`` (27 conditions per video),
generation only and then with verification. ffmpeg: one command per stimulus with its filters
(adelay/atrim for offsets, anoisesrc + amix for noise, the noise filter for pixel noise, a
second input for swaps, drawbox for grey frames, volume=0 for silence), the same encoder
settings (libx264 CRF 18 preset medium yuv420p, AAC 192k).

Run: ``.venv/bin/python benchmarks/bench_stimuli.py [--videos 8]``; figures are printed and
written to benchmarks/results/stimuli.json.
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from avmit_psych.dataset import schema, synthetic  # noqa: E402
from avmit_psych.features.media import ffmpeg_exe  # noqa: E402
from avmit_psych.stimuli import generate, suite as S  # noqa: E402

SUITE = HERE.parent / "stimuli" / "suites" / "avmit_test_960.yaml"
ENCODE = ["-c:v", "libx264", "-preset", "medium", "-crf", "18", "-pix_fmt", "yuv420p",
          "-c:a", "aac", "-b:a", "192k"]


def ffmpeg_command(cond: S.Condition, src: str, donor: str, out: str) -> list[str]:
    base = [ffmpeg_exe(), "-y", "-v", "error", "-nostdin", "-i", src]
    m, level = cond.manipulation, cond.level
    if m == "none":
        return base + ENCODE + [out]
    if m == "av_offset":
        af = (f"adelay={level:g}:all=1,atrim=end=3" if level >= 0
              else f"atrim=start={-level / 1000:g},asetpts=PTS-STARTPTS,apad,atrim=end=3")
        return base + ["-af", af] + ENCODE + [out]
    if m == "audio_noise":
        amp = 0.2 / 10 ** (level / 20)
        return base + ["-filter_complex",
                       f"anoisesrc=a={min(amp, 1):g}:c=white:d=3:r=44100[n];"
                       "[0:a][n]amix=inputs=2:normalize=0[a]", "-map", "0:v", "-map", "[a]"] + \
            ENCODE + [out]
    if m == "visual_noise":
        return base + ["-vf", f"noise=alls={min(int(level), 100)}:allf=t"] + ENCODE + [out]
    if m == "semantic_swap":
        return [ffmpeg_exe(), "-y", "-v", "error", "-nostdin", "-i", src, "-i", donor, "-map",
                "0:v", "-map", "1:a"] + ENCODE + [out]
    if m == "audio_only":
        return base + ["-vf", "drawbox=c=gray:t=fill"] + ENCODE + [out]
    if m == "visual_only":
        return base + ["-af", "volume=0"] + ENCODE + [out]
    raise ValueError(m)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=8)
    args = parser.parse_args()
    suite = S.load_suite(SUITE)
    classes = list(schema.TEST_CLASSES[:args.videos])
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        csv = synthetic.write_probe_clips(tmp / "videos", tmp / "t.csv", per_class=1,
                                          classes=classes, size=(320, 240))
        sources = generate.sources_from_test_set(csv, tmp / "videos")
        n = len(sources) * len(suite.conditions)

        start = time.perf_counter()
        generate.generate(suite, sources, tmp / "ours", seed=0, workers=2, progress=False,
                          verify=False)
        ours_s = time.perf_counter() - start
        start = time.perf_counter()
        generate.generate(suite, sources, tmp / "ours", seed=0, workers=2, progress=False,
                          verify=True)
        verify_s = time.perf_counter() - start

        commands = []
        paths = sources["source_path"].tolist()
        for i, src in enumerate(paths):
            for k, cond in enumerate(suite.conditions):
                commands.append(ffmpeg_command(cond, src, paths[(i + 1) % len(paths)],
                                               str(tmp / f"ff_{i}_{k}.mp4")))
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(lambda c: subprocess.run(c, check=True), commands))
        ffmpeg_s = time.perf_counter() - start
    result = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "platform": platform.platform()},
              "stimuli": n, "ours_s": ours_s, "ours_stimuli_per_s": n / ours_s,
              "verify_s": verify_s, "ffmpeg_s": ffmpeg_s, "ffmpeg_stimuli_per_s": n / ffmpeg_s,
              "ratio_ours_over_ffmpeg": ours_s / ffmpeg_s}
    print(f"default suite, {len(sources)} videos x {len(suite.conditions)} conditions = {n} "
          "stimuli, 2 workers:")
    print(f"  avmit_psych generate   {ours_s:7.2f} s  {n / ours_s:6.2f} stimuli/s "
          f"(+ verification {verify_s:.2f} s)")
    print(f"  ffmpeg command lines   {ffmpeg_s:7.2f} s  {n / ffmpeg_s:6.2f} stimuli/s")
    print(f"  ratio ours / ffmpeg: {ours_s / ffmpeg_s:.2f} (target <= 1.5)")
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "stimuli.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
