"""``python -m avmit_psych.dataset <command>``: get the AVMIT files, or make synthetic ones."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .._cli import Formatter, dispatch, run
from . import download, schema, synthetic
from .schema import OutputBatch


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m avmit_psych.dataset", formatter_class=Formatter,
        description="The AVMIT files. Each command has its own --help.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    d = sub.add_parser(
        "download", formatter_class=Formatter, help="fetch the dataset's public record",
        description=f"Download the AVMIT files from Zenodo record {download.RECORD_ID}: by "
                    f"default {', '.join(download.CSV_FILES)}; with --embeddings also "
                    f"{', '.join(download.EMBEDDING_FILES)} (large). Sizes and checksums are "
                    "verified; an interrupted download resumes when the command is run again; "
                    "a file appears under its final name only once verified.\n\n"
                    "Example:\n  python -m avmit_psych.dataset download --to data/avmit")
    d.add_argument("--to", required=True, type=Path, metavar="DIR", help="destination folder")
    d.add_argument("--files", nargs="+", metavar="NAME",
                   help="fetch exactly these files of the record")
    d.add_argument("--embeddings", action="store_true",
                   help="also fetch the two embedding archives")
    d.add_argument("--list", action="store_true", help="list the record's files and stop")
    d.add_argument("--record-url", default=download.RECORD_URL,
                   help="records API URL of the record (for mirrors)")
    d.add_argument("--quiet", action="store_true", help="no progress bars")
    d.set_defaults(handler=_download)

    s = sub.add_parser(
        "synthetic", formatter_class=Formatter,
        help="write seeded synthetic raw ratings (and metadata) for trying the pipeline",
        description="Simulate an annotation campaign (raters with their own accuracy and "
                    "bias) and write raw_ratings.csv, video_counts.csv (the known counts), "
                    "ground_truth.csv, fps.csv, exclusions.csv and raters.csv.")
    s.add_argument("--out", required=True, type=Path, metavar="DIR")
    s.add_argument("--n-videos", type=int, default=synthetic.PAPER_N_VIDEOS)
    s.add_argument("--n-raters", type=int, default=synthetic.PAPER_N_RATERS)
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(handler=_synthetic)

    e = sub.add_parser(
        "synthetic-embeddings", formatter_class=Formatter,
        help="write synthetic embeddings as real TFRecords with split CSVs",
        description="Write class-structured synthetic embedding sequences in the released "
                    "TFRecord layout (DIR/tfrecords/<label>/<video>.tfrecord) with split CSVs in "
                    "the released layouts (DIR/csv/AVMIT_train.csv, AVMIT_validation.csv, "
                    "test_set.csv and, with --mit16, MIT16_train/validation.csv), to try "
                    "training and evaluation without the real archives.")
    e.add_argument("--out", required=True, type=Path, metavar="DIR")
    e.add_argument("--feature-set", choices=["vggish_vgg16", "yamnet_effnetb0"],
                   default="vggish_vgg16")
    e.add_argument("--train-per-class", type=int, default=40)
    e.add_argument("--val-per-class", type=int, default=10)
    e.add_argument("--test-per-class", type=int, default=10)
    e.add_argument("--mit16", action="store_true", help="also write MIT-16 splits")
    e.add_argument("--seed", type=int, default=0)
    e.set_defaults(handler=_synthetic_embeddings)
    return parser


def _download(args) -> int:
    if args.list:
        for f in download.fetch_record(args.record_url):
            print(f"{f.key}\t{f.size:,} bytes\t{f.checksum}")
        return 0
    paths = download.download(args.to, args.files, embeddings=args.embeddings,
                              record_url=args.record_url, progress=not args.quiet)
    for p in paths:
        print(f"verified {p}")
    return 0


def write_synthetic(out: Path, sim: synthetic.SyntheticRatings) -> dict[str, Path]:
    files = {"raw_ratings.csv": sim.raw, "video_counts.csv": sim.video_counts,
             "ground_truth.csv": sim.ground_truth, "fps.csv": sim.fps,
             "exclusions.csv": sim.exclusions, "raters.csv": sim.raters}
    with OutputBatch(out) as batch:
        for name, frame in files.items():
            schema.write_csv(frame, batch.path(name))
    return {name: Path(out) / name for name in files}


def _synthetic(args) -> int:
    sim = synthetic.simulate_ratings(args.n_videos, n_raters=args.n_raters, seed=args.seed)
    paths = write_synthetic(args.out, sim)
    print(f"{len(sim.raw):,} ratings of {args.n_videos:,} videos by {args.n_raters} raters -> "
          f"{', '.join(str(p) for p in paths.values())}")
    return 0


def synthetic_embeddings(out: Path, *, feature_set="vggish_vgg16", train=40, val=10, test=10,
                         mit16=False, seed=0) -> dict[str, Path]:
    per_class = {"AVMIT_train": train, "AVMIT_validation": val}
    if mit16:
        per_class.update(MIT16_train=train, MIT16_validation=val)
    per_class["test_set"] = test
    return synthetic.write_embedding_dataset(Path(out) / "tfrecords", Path(out) / "csv",
                                             feature_set=feature_set, per_class=per_class,
                                             seed=seed)


def _synthetic_embeddings(args) -> int:
    paths = synthetic_embeddings(args.out, feature_set=args.feature_set,
                                 train=args.train_per_class, val=args.val_per_class,
                                 test=args.test_per_class, mit16=args.mit16, seed=args.seed)
    print(f"{args.feature_set} TFRecords -> {args.out / 'tfrecords'}; CSVs: "
          f"{', '.join(str(p) for p in paths.values())}")
    return 0


def main(argv=None) -> int:
    return dispatch(build_parser, argv)


if __name__ == "__main__":
    sys.exit(run(main))
