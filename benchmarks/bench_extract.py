"""Benchmark feature extraction: videos per second, YAMNet+EfficientNetB0 (random weights).

Ours: ``avmit_psych.features.extract.extract`` (decoding ahead of inference, a few videos per
ffmpeg process, with the audio front end, in threads; frames of several videos in one model
call, through graphs with the weights folded in; TFRecords written by a thread of their own).
The authors' way
(``feature_extractor/extract_features.py`` of the AVMIT repository): per video, audio through
the audio model, frames read one by one with OpenCV at 480 ms steps and each passed through
``visual_model(np.expand_dims(frame, 0))``, one TFRecord written. Both read the same clips
(3 s, 30 fps, 320x240, stereo AAC) with the same decoded audio; models are loaded before timing.

The two ways do not take the same frames. Ours samples every 480 ms, the frame nearest each
time (the paper's words; ``avmit_psych.media.frame_indices``): 7 frames of a 3 s
clip at 30 fps, 0, 14, 29, 43, 58, 72, 86. The authors' OpenCV loop keeps the frame *after*
the first one at or past the last such time + 480 ms, so its times drift by ceil(0.48 x 30)
= 15 frames (500 ms) and each kept frame is one frame late: 0, 16, 31, 46, 61, 76, i.e. 6
frames. So before any time is reported the benchmark checks that
the two compute the same thing (:func:`check_same_embeddings`): the same audio embeddings; the
same embeddings for the frames both ways take; and the authors' frames, decoded by our decoder
and embedded by our batched model calls, give the authors' per-frame embeddings. The ratio is
then given per video and per embedded frame.

The two ways are timed in turns, ``--repeat`` times each (ours, the authors', ours, ...), and
the ratio is of the best time of each: the machine's other load then weighs on both alike.
``--profile`` also times each stage of ours on its own, one after the other (probe, the
ffmpeg pass, resizing, the audio front end, the two models, writing; wall and CPU seconds,
ffmpeg's CPU included), and prints where :func:`extract`'s own thread spends its time
(cProfile): in the models, waiting for decoded videos, or waiting for writes.

Run: ``.venv/bin/python benchmarks/bench_extract.py [--videos 24] [--repeat 3] [--profile]``;
figures are printed and written to benchmarks/results/extract.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from avmit_psych import media  # noqa: E402
from avmit_psych.dataset import schema, tfrecords  # noqa: E402
from avmit_psych.features import encoders, extract  # noqa: E402
from tests.videos import make_video  # noqa: E402

#: the authors' frame_interval (ms) and frame size
AUTHORS_INTERVAL_MS = 480
FRAME_SIZE = 224
#: embeddings "the same": max |a - b| <= RTOL * max |b| (float32 sums in another order:
#: batched vs one-frame model calls, one vs several waveforms per call). Relative, because a
#: random-weight EfficientNetB0 gives embeddings of about 1e-5 whose frames differ by about
#: 1e-7; the check also makes sure the limit is well below that difference.
RTOL = 1e-4


def authors_frames(path, interval_ms: float = AUTHORS_INTERVAL_MS):
    """The authors' ``yield_visual_frames`` loop; yields (frame index, RGB 224x224 frame).

    Frames are thrown away until ``CAP_PROP_POS_MSEC`` (the timestamp of the last frame read)
    reaches the last kept timestamp + ``interval_ms``; then that timestamp is kept and the
    *next* frame read. The index is ``CAP_PROP_POS_FRAMES`` before that read (bookkeeping for
    the comparison; the authors' loop does not ask for it).
    """
    import cv2
    cap = cv2.VideoCapture(str(path))
    last_ts = -99999.0
    try:
        while True:
            end = False
            while cap.get(cv2.CAP_PROP_POS_MSEC) < interval_ms + last_ts:
                if not cap.read()[0]:
                    end = True
                    break
            if end:
                break
            last_ts = cap.get(cv2.CAP_PROP_POS_MSEC)
            index = int(cap.get(cv2.CAP_PROP_POS_FRAMES))
            ok, frame = cap.read()
            if not ok:
                break
            yield index, cv2.resize(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB),
                                    (FRAME_SIZE, FRAME_SIZE))
    finally:
        cap.release()


def authors_way(jobs, audio_encoder, visual_encoder, out_root: Path) -> dict:
    """The authors' per-video loop; returns {filename: the frame indices it embedded}."""
    model = visual_encoder.model
    taken = {}
    for job in jobs:
        info = media.probe(job.video_path)
        waveform, _ = media.audio_waveform(job.video_path, info)
        audio = audio_encoder.embed(waveform)
        indices, frames = [], []
        for index, frame in authors_frames(job.video_path):
            x = visual_encoder.preprocess(frame[None])
            frames.append(np.asarray(model(x))[0])
            indices.append(index)
        tfrecords.write_example(out_root / job.tfrecord_filename, job.filename, job.label,
                                audio, np.stack(frames))
        taken[job.filename] = indices
    return taken


def our_frame_indices(job, interval_s: float) -> list[int]:
    """The frames extraction embeds for ``job`` (``media.frame_indices`` of its times)."""
    info = media.probe(job.video_path)
    return media.frame_indices(media.frame_times(info.duration_s, interval_s),
                               info.fps).tolist()


def _all_frames_resized(path) -> np.ndarray:
    """Every frame through our decoder (ffmpeg rgb24), resized as extraction resizes."""
    import cv2
    from avmit_psych.media import read_clip
    return np.stack([cv2.resize(f, (FRAME_SIZE, FRAME_SIZE)) for f in read_clip(path).frames])


def _limit(b: np.ndarray) -> float:
    return RTOL * (float(np.max(np.abs(b))) if np.size(b) else 0.0)


def _max_diff(a: np.ndarray, b: np.ndarray, what: str) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise AssertionError(f"{what}: shapes {a.shape} and {b.shape} differ")
    diff = float(np.max(np.abs(a - b))) if a.size else 0.0
    limit = _limit(b)
    if not diff <= limit:
        raise AssertionError(f"{what}: embeddings differ by up to {diff:.3g} "
                             f"(allowed {limit:.3g})")
    return diff


def check_same_embeddings(jobs, ours_root: Path, authors_root: Path, authors_taken: dict,
                          visual_encoder, *, interval_s: float = AUTHORS_INTERVAL_MS / 1000
                          ) -> dict:
    """Do both ways compute the same embeddings? Raises ``AssertionError`` if not.

    1. audio: the two TFRecords' audio rows;
    2. the frames both ways take (the same frame index): their rows in the two TFRecords;
    3. the frames the authors' loop took, decoded by our decoder (pixels equal to OpenCV's)
       and embedded by our batched model calls: the authors' per-frame rows.
    And the check must be able to tell frames apart: the limit must be under a tenth of the
    smallest difference between two frames' embeddings of a clip.
    Returns the frame indices of the first video both ways and the largest differences.
    """
    out = {"audio_max_diff": 0.0, "shared_frames": 0, "shared_max_diff": 0.0,
           "authors_frames": 0, "authors_frames_max_diff": 0.0,
           "limit": 0.0, "between_frames_min_diff": np.inf}
    for job in jobs:
        ours = tfrecords.read_example(ours_root / job.tfrecord_filename)
        theirs = tfrecords.read_example(authors_root / job.tfrecord_filename)
        name = job.filename
        out["audio_max_diff"] = max(out["audio_max_diff"],
                                    _max_diff(ours.audio, theirs.audio, f"{name} audio"))
        between = min(float(np.max(np.abs(x - y))) for x, y in
                      zip(theirs.visual[:-1].astype(np.float64), theirs.visual[1:]))
        if not _limit(theirs.visual) < between / 10:
            raise AssertionError(f"{name}: frames' embeddings differ by as little as "
                                 f"{between:.3g}, too close to the tolerance "
                                 f"{_limit(theirs.visual):.3g} to tell frames apart")
        out["between_frames_min_diff"] = min(out["between_frames_min_diff"], between)
        out["limit"] = max(out["limit"], _limit(theirs.visual))
        our_idx = our_frame_indices(job, interval_s)
        their_idx = list(authors_taken[name])
        if len(our_idx) != len(ours.visual) or len(their_idx) != len(theirs.visual):
            raise AssertionError(f"{name}: {len(ours.visual)} and {len(theirs.visual)} visual "
                                 f"rows for {len(our_idx)} and {len(their_idx)} frames")
        shared = sorted(set(our_idx) & set(their_idx))
        if shared:
            a = ours.visual[[our_idx.index(i) for i in shared]]
            b = theirs.visual[[their_idx.index(i) for i in shared]]
            out["shared_max_diff"] = max(out["shared_max_diff"], _max_diff(
                a, b, f"{name} frames {shared} (taken both ways)"))
            out["shared_frames"] += len(shared)
        decoded = _all_frames_resized(job.video_path)
        opencv = dict(authors_frames(job.video_path))
        for i in their_idx:
            if not np.array_equal(decoded[i], opencv[i]):
                raise AssertionError(f"{name} frame {i}: our decoder and OpenCV give "
                                     "different pixels")
        again = visual_encoder.embed(decoded[their_idx])
        out["authors_frames_max_diff"] = max(out["authors_frames_max_diff"], _max_diff(
            again, theirs.visual, f"{name} the authors' frames {their_idx}, embedded our way"))
        out["authors_frames"] += len(their_idx)
    first = jobs[0]
    out["ours_indices"] = our_frame_indices(first, interval_s)
    out["authors_indices"] = list(authors_taken[first.filename])
    return out


def _clock() -> tuple[float, float]:
    """(wall s, CPU s of this process and its finished children: ffmpeg's decoding too)."""
    import resource
    own, children = (resource.getrusage(resource.RUSAGE_SELF),
                     resource.getrusage(resource.RUSAGE_CHILDREN))
    return time.perf_counter(), (own.ru_utime + own.ru_stime + children.ru_utime +
                                 children.ru_stime)


def profile_stages(jobs, audio_encoder, visual_encoder, out_root: Path, *,
                   interval_s: float = AUTHORS_INTERVAL_MS / 1000) -> dict:
    """Each stage of extraction on its own, one after the other, over every job: {stage:
    (wall s, CPU s)}. The same calls :func:`extract` makes (``media.decode`` split into its
    steps), without the overlap, so that each stage's cost shows."""
    stages: dict[str, list[float]] = {}

    def timed(stage, fn, *args, **kwargs):
        wall, cpu = _clock()
        out = fn(*args, **kwargs)
        wall2, cpu2 = _clock()
        total = stages.setdefault(stage, [0.0, 0.0])
        total[0] += wall2 - wall
        total[1] += cpu2 - cpu
        return out

    decoded = []
    per_process = media.VIDEOS_PER_PROCESS
    for first in range(0, len(jobs), per_process):
        chunk = jobs[first:first + per_process]
        infos = timed(f"probe ({per_process} videos per ffmpeg -i)", media.probe_many,
                      [job.video_path for job in chunk])
        plans = [media._frame_plan(info, interval_s) for info in infos]
        inputs, outputs = [], []
        for k, (job, info, (_, _, video_args)) in enumerate(zip(chunk, infos, plans)):
            inputs += [*media._DECODER_THREADS, "-i", str(job.video_path)]
            outputs += [[f"{k}:v:0" if a == "0:v:0" else a for a in video_args],
                        ["-map", f"{k}:a:0", *media._pcm_args(info)]]
        streams = timed(f"decode ({per_process} videos per ffmpeg: frames + audio)",
                        media._ffmpeg_to_pipes, inputs, outputs)
        for k, (job, info, (_, wanted, _)) in enumerate(zip(chunk, infos, plans)):
            decoded.append(decode_rest(timed, job, info, wanted, streams[2 * k],
                                       streams[2 * k + 1], audio_encoder))
    frames = np.concatenate([d[1] for d in decoded])
    visual = timed(f"visual model ({len(frames)} frames; uint8 -> float32 included)",
                   visual_encoder.embed, frames)
    examples = [d[2] for d in decoded]
    audio = timed(f"audio model ({sum(map(len, examples))} examples)",
                  lambda: audio_encoder.embed_many([np.zeros(1, np.float32)] * len(examples),
                                                   examples=examples))
    start = 0
    for (job, f, _), a in zip(decoded, audio):
        timed("write TFRecord (gzip, fsync, rename)", tfrecords.write_example,
              out_root / job.tfrecord_filename, job.filename, job.label, a,
              visual[start:start + len(f)])
        start += len(f)
    return {stage: tuple(v) for stage, v in stages.items()}


def decode_rest(timed, job, info, wanted, raw, pcm, audio_encoder):
    """The Python side of decoding one video, stage by stage (``media.decode``'s steps)."""
    from avmit_psych.features import frontend
    frames = timed("resize (cv2, 224 x 224)", media._frames_from_raw, raw, info, wanted,
                   FRAME_SIZE)
    samples = np.frombuffer(pcm, "<i2").reshape(-1, info.audio_channels or 2)
    waveform = timed("audio to mono 16 kHz (resample_poly)", lambda: media.resample(
        media.to_mono_float(samples), info.audio_sample_rate_hz).astype(np.float32))
    examples = timed("audio front end (log-mel examples)", frontend.log_mel_examples,
                     waveform, audio_encoder.name)
    return job, frames, examples


def profile_extract_thread(jobs, audio_encoder, visual_encoder, out_root: Path,
                           top: int = 12) -> str:
    """cProfile of :func:`extract`'s own thread (the decoding and writing threads are not
    profiled: time this thread waits for them shows as lock acquisition)."""
    import cProfile
    import io
    import pstats
    profiler = cProfile.Profile()
    profiler.enable()
    extract.extract(jobs, audio_encoder, visual_encoder, out_root, progress=False)
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(top)
    return text.getvalue()


def make_jobs(root: Path, n_videos: int) -> list:
    rows = []
    for i in range(n_videos):
        label = schema.TEST_CLASSES[i % 16]
        name = f"{label}/clip{i:03d}.mp4"
        make_video(root / "videos" / name, size="320x240", audio="stereo", tone_hz=300 + i)
        rows.append({"filename": name, "AVMIT_label": label, "MIT_label": label,
                     "video_location": "training",
                     "tfrecord_filename": schema.tfrecord_filename(label, name)})
    pd.DataFrame(rows).to_csv(root / "v.csv", index=False)
    return extract.plan(root / "v.csv", root / "videos")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=24)
    parser.add_argument("--repeat", type=int, default=3,
                        help="time each way this many times, in turns; the best counts")
    parser.add_argument("--profile", action="store_true",
                        help="also time each stage of ours on its own, and profile extract()")
    args = parser.parse_args()
    interval_s = AUTHORS_INTERVAL_MS / 1000
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        jobs = make_jobs(tmp, args.videos)
        audio = encoders.AudioEncoder.load("yamnet", "random")
        visual = encoders.VisualEncoder.load("effnetb0", "random")
        assert media.FRAME_INTERVAL_S[visual.name] == interval_s
        # warm both paths up (graph tracing) on one video, outside the timing
        start = time.perf_counter()
        extract.extract(jobs[:1], audio, visual, tmp / "warm1", progress=False)
        warm_up_s = time.perf_counter() - start
        authors_way(jobs[:1], audio, visual, tmp / "warm2")
        ours_runs, authors_runs, ours_cpu, authors_cpu = [], [], [], []
        for k in range(max(1, args.repeat)):
            start, cpu = _clock()
            report = extract.extract(jobs, audio, visual, tmp / f"ours{k}", progress=False)
            end, cpu_end = _clock()
            ours_runs.append(end - start)
            ours_cpu.append(cpu_end - cpu)
            assert (report["status"] == "written").all()
            start, cpu = _clock()
            taken = authors_way(jobs, audio, visual, tmp / f"authors{k}")
            end, cpu_end = _clock()
            authors_runs.append(end - start)
            authors_cpu.append(cpu_end - cpu)
        ours_s, authors_s = min(ours_runs), min(authors_runs)
        check = check_same_embeddings(jobs, tmp / "ours0", tmp / "authors0", taken, visual,
                                      interval_s=interval_s)
        ours_frames = int(report["visual_timesteps"].sum())
        authors_frames = sum(len(v) for v in taken.values())
        stages = thread_profile = None
        if args.profile:
            stages = profile_stages(jobs, audio, visual, tmp / "stages", interval_s=interval_s)
            thread_profile = profile_extract_thread(jobs, audio, visual, tmp / "profiled")
        shutil.rmtree(tmp / "videos")
    n = args.videos
    result = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "platform": platform.platform(),
                          "load_average_before": load_before,
                          "load_average_after": os.getloadavg()},
              "videos": n, "ours_s": ours_s, "authors_way_s": authors_s,
              "ours_runs_s": ours_runs, "authors_way_runs_s": authors_runs,
              "ours_runs_cpu_s": ours_cpu, "authors_way_runs_cpu_s": authors_cpu,
              "cpu_ratio": min(authors_cpu) / min(ours_cpu),
              "ours_warm_up_s": warm_up_s,
              "ours_videos_per_s": n / ours_s, "authors_videos_per_s": n / authors_s,
              "ours_frames": ours_frames, "authors_frames": authors_frames,
              "speedup": authors_s / ours_s,
              "speedup_per_frame": (authors_s / authors_frames) / (ours_s / ours_frames),
              "same_embeddings": check}
    print(f"{n} clips (3 s, 30 fps), YAMNet+EfficientNetB0 (random weights):")
    print(f"  frames per clip: ours {len(check['ours_indices'])} "
          f"{check['ours_indices']} (every 480 ms, the nearest frame: the paper's rule)")
    print(f"                   authors' loop {len(check['authors_indices'])} "
          f"{check['authors_indices']} (its OpenCV loop: times drift by ceil(0.48 s x fps) "
          "frames, each kept frame one after its time)")
    print(f"  same embeddings, checked before any time is reported (max |diff|; allowed {RTOL:g} x max "
          f"|embedding| <= {check['limit']:.2g}; two frames of a clip differ by >= "
          f"{check['between_frames_min_diff']:.2g}):")
    print(f"    audio {check['audio_max_diff']:.2g}; the {check['shared_frames']} frames both "
          f"ways take {check['shared_max_diff']:.2g}; the authors' {check['authors_frames']} "
          f"frames through our decoder and batched model {check['authors_frames_max_diff']:.2g}")
    print(f"  ours          {ours_s:7.2f} s  {n / ours_s:6.2f} videos/s  "
          f"{ours_frames / ours_s:6.1f} frames/s")
    print(f"  authors' way  {authors_s:7.2f} s  {n / authors_s:6.2f} videos/s  "
          f"{authors_frames / authors_s:6.1f} frames/s")
    print(f"  speed-up {result['speedup']:.1f}x per video ({ours_frames} frames embedded by "
          f"ours, {authors_frames} by the authors' way); {result['speedup_per_frame']:.1f}x "
          "per embedded frame")
    print(f"  best of {len(ours_runs)} runs each, in turns: ours "
          f"{', '.join(f'{t:.2f}' for t in ours_runs)} s; authors' way "
          f"{', '.join(f'{t:.2f}' for t in authors_runs)} s; load average (1 min) "
          f"{load_before[0]:.1f} before, {result['machine']['load_average_after'][0]:.1f} "
          f"after, on {os.cpu_count()} CPUs")
    print(f"  CPU seconds (this process and ffmpeg): ours "
          f"{', '.join(f'{t:.2f}' for t in ours_cpu)}; authors' way "
          f"{', '.join(f'{t:.2f}' for t in authors_cpu)}; ratio of the least "
          f"{result['cpu_ratio']:.1f}x (the work each way does, whatever else the machine runs)")
    print(f"  once per process, not timed: the warm-up run on one video took {warm_up_s:.1f} s "
          "(tracing; folding the weights of EfficientNetB0 and YAMNet into their graphs)")
    if stages:
        result["stages"] = stages
        print("  stages of ours, each on its own over every clip (wall s, CPU s incl. ffmpeg):")
        for stage, (wall, cpu) in stages.items():
            print(f"    {stage:54s} {wall:6.2f} {cpu:6.2f}")
        print(f"    {'sum':54s} {sum(w for w, _ in stages.values()):6.2f} "
              f"{sum(c for _, c in stages.values()):6.2f}")
        print("  extract()'s own thread (cProfile):")
        print("\n".join("    " + line for line in thread_profile.strip().splitlines()))
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "extract.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
