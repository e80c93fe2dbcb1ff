"""``python -m avmit_psych.features {extract,probe}``: embeddings and media metadata from videos."""
from __future__ import annotations

import sys
from pathlib import Path

from .. import _cluster
from .._cli import Formatter, dispatch, run
from ..dataset import schema


EXTRACT_HELP = """\
Embed videos as the AVMIT paper did and write one GZIP TFRecord per video in the released
layout (OUT/<label>/<video>.tfrecord), ready for `python -m avmit_psych.analysis train`.

FILE may be video ratings, a test set, a released training file or a stimulus manifest
(manifest rows carry manipulation and level into the run report). Videos are found as
ROOT/<filename>, ROOT/<video_location>/<filename> or ROOT/<new_filename>; manifests give a path.

  python -m avmit_psych.features extract --videos Moments_in_Time_Raw/ --csv test_set.csv \\
      --out AVMIT_YamNet_EffNetB0/ --audio yamnet --visual effnetb0

By default the pretrained models are used: VGGish/YAMNet from TF Hub and VGG16/EfficientNetB0
ImageNet weights from Keras (downloaded once on a connected machine). --audio-model takes a hub
handle, a local SavedModel folder, a .weights.h5 file for the built-in architecture, or
'random'; --visual-weights takes 'imagenet', a weights file, or 'random'.
Finished videos are skipped when the command runs again. The run report
(OUT/extract_report.csv unless --report) lists every video and every failure with its reason;
the exit code is 1 if any video failed.

On several processes or machines (Dask): --cluster local:4 starts 4 worker processes here;
--scheduler tcp://HOST:8786 joins a running `dask scheduler` whose `dask worker`s see the same
paths. Videos go out in shards of --shard-size; each worker builds the models once; the
TFRecords and the report are the same as on one machine. See README.md, "On a Dask cluster".
"""


def build_parser():
    import argparse
    parser = argparse.ArgumentParser(prog="python -m avmit_psych.features",
                                     formatter_class=Formatter,
                                     description="Feature extraction from videos.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    e = sub.add_parser("extract", help="embed videos into released-layout TFRecords",
                       description=EXTRACT_HELP, formatter_class=Formatter)
    e.add_argument("--videos", required=True, type=Path, metavar="ROOT")
    e.add_argument("--csv", required=True, type=Path, metavar="FILE")
    e.add_argument("--out", required=True, type=Path, metavar="TFRECORD_ROOT")
    e.add_argument("--audio", required=True, choices=["yamnet", "vggish"])
    e.add_argument("--visual", required=True, choices=["effnetb0", "vgg16"])
    e.add_argument("--audio-model", metavar="HANDLE|random",
                   help="default: the TF Hub model of --audio")
    e.add_argument("--visual-weights", default="imagenet", metavar="PATH|imagenet|random")
    e.add_argument("--workers", type=int, default=2,
                   help="decoding threads (on Dask: one per worker process)")
    e.add_argument("--batch-frames", type=int, default=64,
                   help="frames per visual model call (across videos)")
    e.add_argument("--seed", type=int, default=0, help="seed of random weights")
    e.add_argument("--report", type=Path, metavar="CSV")
    e.add_argument("--quiet", action="store_true", help="no progress bar")
    _cluster.add_arguments(e, shard_size=16, unit="videos")
    e.set_defaults(handler=_extract)

    p = sub.add_parser(
        "probe", formatter_class=Formatter, help="frame rate, duration, audio of every video",
        description="Per video: frame rate, duration, size, whether it has an audio stream and "
                    "its peak absolute amplitude in 16-bit units (0 = digital silence). The "
                    "output works as `ratings select --fps` input and as `train --media` "
                    "input (SAVC leaves out videos without audio).")
    p.add_argument("--videos", required=True, type=Path, metavar="ROOT")
    p.add_argument("--csv", required=True, type=Path, metavar="FILE")
    p.add_argument("--out", required=True, type=Path, metavar="media.csv")
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(handler=_probe)
    return parser


def _extract(args) -> int:
    from . import encoders, extract
    cluster = _cluster.from_arguments(args)
    extract.check_pairing(args.audio, args.visual)
    jobs = extract.plan(args.csv, args.videos)
    audio_handle = args.audio_model or encoders.HUB_HANDLES[args.audio]
    if cluster is not None:  # each worker builds the models for its first shard
        spec = extract.EncoderSpec(args.audio, audio_handle, args.visual, args.visual_weights,
                                   args.seed)
        report = extract.extract_on_dask(jobs, spec, args.out, cluster,
                                         shard_size=args.shard_size,
                                         batch_frames=args.batch_frames, retries=args.retries,
                                         progress=not args.quiet)
    else:
        # models are loaded (and weights checked) before any video is touched
        audio = encoders.AudioEncoder.load(args.audio, audio_handle, seed=args.seed)
        visual = encoders.VisualEncoder.load(args.visual, args.visual_weights, seed=args.seed)
        report = extract.extract(jobs, audio, visual, args.out, workers=args.workers,
                                 batch_frames=args.batch_frames, progress=not args.quiet)
    report_path = args.report or args.out / "extract_report.csv"
    schema.write_csv(report, report_path)
    counts = report["status"].value_counts()
    failed = int(counts.get("failed", 0))
    print(f"{int(counts.get('written', 0))} written, {int(counts.get('skipped', 0))} already "
          f"there, {failed} failed -> {args.out} (report: {report_path})")
    if failed:
        for row in report[report["status"] == "failed"].head(5).itertuples():
            print(f"  failed: {row.video_path}: {row.reason}", file=sys.stderr)
    return 1 if failed else 0


def _probe(args) -> int:
    from . import extract
    jobs = extract.plan(args.csv, args.videos)
    table = extract.probe_videos(jobs, workers=args.workers, progress=not args.quiet)
    schema.write_csv(table, args.out)
    failed = int((table["error"] != "").sum())
    print(f"{len(table) - failed} probed, {failed} failed -> {args.out}")
    return 1 if failed else 0


def main(argv=None) -> int:
    return dispatch(build_parser, argv)


if __name__ == "__main__":
    sys.exit(run(main))
