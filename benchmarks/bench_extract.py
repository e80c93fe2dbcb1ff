"""Benchmark feature extraction: videos per second, YAMNet+EfficientNetB0 (random weights).

Ours: ``avmit_psych.features.extract.extract`` (decoding in threads ahead of inference, frames
of several videos in one model call, compiled model calls). The authors' way
(``feature_extractor/extract_features.py`` of the AVMIT repository): per video, audio through
the audio model, frames read one by one with OpenCV at 480 ms steps and each passed through
``visual_model(np.expand_dims(frame, 0))``, one TFRecord written. Both read the same clips
(3 s, 30 fps, 320x240, stereo AAC) with the same decoded audio; models are loaded before timing.

The two ways do not take the same frames. Ours samples every 480 ms, the frame nearest each
time (the paper's words; ``avmit_psych.features.media.frame_indices``): 7 frames of a 3 s
clip at 30 fps, 0, 14, 29, 43, 58, 72, 86. The authors' OpenCV loop keeps the frame *after*
the first one at or past the last such time + 480 ms, so its times drift by ceil(0.48 x 30)
= 15 frames (500 ms) and each kept frame is one frame late: 0, 16, 31, 46, 61, 76, i.e. 6
frames. So before any time is reported the benchmark checks that
the two compute the same thing (:func:`check_same_embeddings`): the same audio embeddings; the
same embeddings for the frames both ways take; and the authors' frames, decoded by our decoder
and embedded by our batched model calls, give the authors' per-frame embeddings. The ratio is
then given per video and per embedded frame.

Run: ``.venv/bin/python benchmarks/bench_extract.py [--videos 24]``; figures are printed and
written to benchmarks/results/extract.json.
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

from avmit_psych.dataset import schema, tfrecords  # noqa: E402
from avmit_psych.features import encoders, extract, media  # noqa: E402
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
    from avmit_psych.stimuli.io import read_clip
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
    args = parser.parse_args()
    interval_s = AUTHORS_INTERVAL_MS / 1000
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        jobs = make_jobs(tmp, args.videos)
        audio = encoders.AudioEncoder.load("yamnet", "random")
        visual = encoders.VisualEncoder.load("effnetb0", "random")
        assert media.FRAME_INTERVAL_S[visual.name] == interval_s
        # warm both paths up (graph tracing) on one video, outside the timing
        extract.extract(jobs[:1], audio, visual, tmp / "warm1", progress=False)
        authors_way(jobs[:1], audio, visual, tmp / "warm2")
        start = time.perf_counter()
        report = extract.extract(jobs, audio, visual, tmp / "ours", progress=False)
        ours_s = time.perf_counter() - start
        assert (report["status"] == "written").all()
        start = time.perf_counter()
        taken = authors_way(jobs, audio, visual, tmp / "authors")
        authors_s = time.perf_counter() - start
        check = check_same_embeddings(jobs, tmp / "ours", tmp / "authors", taken, visual,
                                      interval_s=interval_s)
        ours_frames = int(report["visual_timesteps"].sum())
        authors_frames = sum(len(v) for v in taken.values())
        shutil.rmtree(tmp / "videos")
    n = args.videos
    result = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "platform": platform.platform()},
              "videos": n, "ours_s": ours_s, "authors_way_s": authors_s,
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
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "extract.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
