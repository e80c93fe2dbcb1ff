"""Benchmark feature extraction: videos per second, YAMNet+EfficientNetB0 (random weights).

Ours: ``avmit_psych.features.extract.extract`` (decoding in threads ahead of inference, frames
of several videos in one model call, compiled model calls). The authors' way
(``feature_extractor/extract_features.py`` of the AVMIT repository): per video, audio through
the audio model, frames read one by one with OpenCV at 480 ms steps and each passed through
``visual_model(np.expand_dims(frame, 0))``, one TFRecord written. Both read the same clips
(3 s, 30 fps, 320x240, stereo AAC) with the same decoded audio; models are loaded before timing.

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


def authors_way(jobs, audio_encoder, visual_encoder, out_root: Path) -> None:
    import cv2
    model = visual_encoder.model
    for job in jobs:
        info = media.probe(job.video_path)
        waveform, _ = media.audio_waveform(job.video_path, info)
        audio = audio_encoder.embed(waveform)
        cap = cv2.VideoCapture(str(job.video_path))
        frames, last_ts = [], -99999.0
        while True:
            end = False
            while cap.get(cv2.CAP_PROP_POS_MSEC) < 480 + last_ts:
                if not cap.read()[0]:
                    end = True
                    break
            if end:
                break
            last_ts = cap.get(cv2.CAP_PROP_POS_MSEC)
            ok, frame = cap.read()
            if not ok:
                break
            frame = cv2.resize(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), (224, 224))
            x = visual_encoder.preprocess(frame[None])
            frames.append(np.asarray(model(x))[0])
        cap.release()
        tfrecords.write_example(out_root / job.tfrecord_filename, job.filename, job.label,
                                audio, np.stack(frames))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=24)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rows = []
        for i in range(args.videos):
            label = schema.TEST_CLASSES[i % 16]
            name = f"{label}/clip{i:03d}.mp4"
            make_video(tmp / "videos" / name, size="320x240", audio="stereo", tone_hz=300 + i)
            rows.append({"filename": name, "AVMIT_label": label, "MIT_label": label,
                         "video_location": "training",
                         "tfrecord_filename": schema.tfrecord_filename(label, name)})
        pd.DataFrame(rows).to_csv(tmp / "v.csv", index=False)
        jobs = extract.plan(tmp / "v.csv", tmp / "videos")
        audio = encoders.AudioEncoder.load("yamnet", "random")
        visual = encoders.VisualEncoder.load("effnetb0", "random")
        # warm both paths up (graph tracing) on one video, outside the timing
        extract.extract(jobs[:1], audio, visual, tmp / "warm1", progress=False)
        authors_way(jobs[:1], audio, visual, tmp / "warm2")
        start = time.perf_counter()
        report = extract.extract(jobs, audio, visual, tmp / "ours", progress=False)
        ours_s = time.perf_counter() - start
        assert (report["status"] == "written").all()
        start = time.perf_counter()
        authors_way(jobs, audio, visual, tmp / "authors")
        authors_s = time.perf_counter() - start
        a = tfrecords.read_example(tmp / "ours" / jobs[0].tfrecord_filename)
        b = tfrecords.read_example(tmp / "authors" / jobs[0].tfrecord_filename)
        same_shapes = a.visual.shape == b.visual.shape and a.audio.shape == b.audio.shape
        shutil.rmtree(tmp / "videos")
    result = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "platform": platform.platform()},
              "videos": args.videos, "ours_s": ours_s, "authors_way_s": authors_s,
              "ours_videos_per_s": args.videos / ours_s,
              "authors_videos_per_s": args.videos / authors_s,
              "speedup": authors_s / ours_s, "same_shapes": same_shapes}
    print(f"{args.videos} clips, YAMNet+EfficientNetB0 (random weights):")
    print(f"  ours          {ours_s:7.2f} s  {result['ours_videos_per_s']:6.2f} videos/s")
    print(f"  authors' way  {authors_s:7.2f} s  {result['authors_videos_per_s']:6.2f} videos/s")
    print(f"  speed-up {result['speedup']:.1f}x; outputs of the same shape: {same_shapes}")
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "extract.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
