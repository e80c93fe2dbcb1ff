"""``python -m avmit_psych.analysis ratings {aggregate,summary,select}``."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from .._cli import Formatter
from ..dataset import ratings, schema
from ..dataset.schema import DatasetError, OutputBatch
from . import reliability

DESCRIPTION = """\
The AVMIT annotation analysis, step by step:

  1. aggregate  raw ratings (one row per rating) -> video ratings (r1, r2, r3 per video)
  2. summary    votes per video, the Figure 2 table and figure, reliability statistics
  3. select     test classes -> the 960-video style test set and the AVMIT / MIT-16
                training and validation files, in the released layouts

Example, from raw ratings to the released files:
  python -m avmit_psych.analysis ratings aggregate raw_video_ratings.csv -o video_ratings.csv
  python -m avmit_psych.analysis ratings summary video_ratings.csv --out summary/
  python -m avmit_psych.analysis ratings select video_ratings.csv --out selection/ --seed 1

Bad input stops with one line naming the file, row and column, exit code 2, and no output.
"""


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("ratings", help="annotation analysis: aggregate, summary, select",
                              description=DESCRIPTION, formatter_class=Formatter)
    sub = p.add_subparsers(dest="ratings_command", required=True, metavar="STEP")

    a = sub.add_parser(
        "aggregate", formatter_class=Formatter,
        help="raw ratings -> one row per video with r1, r2, r3",
        description="Count each video's 1, 2 and 3 ratings. Input: raw ratings CSV(s) with "
                    "filename, AVMIT_label, MIT_label, video_location, rating (plus, from our "
                    "annotation task, participant, session, trial, ...). Videos rated fewer "
                    "than --min-ratings times are dropped and reported.")
    a.add_argument("raw", nargs="+", type=Path, metavar="RAW.csv",
                   help="raw ratings; several files are read as one")
    a.add_argument("-o", "--output", required=True, type=Path, metavar="VIDEO_RATINGS.csv",
                   help="where to write the video ratings")
    a.add_argument("--min-ratings", type=int, default=ratings.MIN_RATINGS,
                   help="drop videos with fewer ratings than this")
    a.add_argument("--dropped", type=Path, metavar="DROPPED.csv",
                   help="also write the dropped videos (filename, AVMIT_label, n_ratings)")
    a.add_argument("--classes", type=Path, metavar="CLASSES.txt",
                   help="a file with one allowed AVMIT class name per line")
    a.set_defaults(handler=_aggregate)

    s = sub.add_parser(
        "summary", formatter_class=Formatter,
        help="votes, Figure 2 table and figure, reliability",
        description="Summarise per-video ratings. RATINGS.csv may be video ratings "
                    "(r1, r2, r3, AVMIT_label ...), the released AVMIT_train/validation layout "
                    "(r1, r2, r3, label, actual_label ...), or raw ratings (then per-rater "
                    "statistics are added). Writes votes.csv, class_counts.csv (the Figure 2 "
                    "table), fig2.png, reliability.csv and, from raw ratings, raters.csv.")
    s.add_argument("ratings", nargs="+", type=Path, metavar="RATINGS.csv",
                   help="one or more files of one layout, read as one table")
    s.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    s.add_argument("--min-votes", type=int, default=ratings.MAJORITY_MIN_VOTES,
                   help="raters needed for 'present/prominent by majority'")
    s.add_argument("--min-class-videos", type=int,
                   default=ratings.MIN_PROMINENT_VIDEOS_PER_CLASS,
                   help="class filter threshold drawn on the figure")
    s.add_argument("--ground-truth", type=Path, metavar="GT.csv",
                   help="ground-truth ratings (filename, rating) for per-rater agreement")
    s.set_defaults(handler=_summary)

    c = sub.add_parser(
        "select", formatter_class=Formatter,
        help="test set and AVMIT / MIT-16 training sets",
        description="Class filter (>= --min-class-videos prominent-by-majority videos), then "
                    "the test set (unanimous videos, optional frame-rate filter and manual "
                    "exclusions, --per-class sampled uniformly per class), then the AVMIT "
                    "(prominent by majority) and MIT-16 (all videos of the test classes) "
                    "training sets with test videos removed, balanced per class and split "
                    "into train/validation. Writes test_set.csv, AVMIT_train.csv, "
                    "AVMIT_validation.csv, MIT16_train.csv, MIT16_validation.csv and "
                    "selection_report.csv. The same inputs and --seed give byte-identical "
                    "files.")
    c.add_argument("video_ratings", type=Path, metavar="VIDEO_RATINGS.csv")
    c.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    c.add_argument("--per-class", type=int, default=ratings.TEST_VIDEOS_PER_CLASS,
                   help="test videos per class")
    c.add_argument("--seed", type=int, default=0, help="seed of every sample")
    c.add_argument("--exclude", type=Path, metavar="X.csv",
                   help="manual exclusions (filename, reason)")
    c.add_argument("--fps", type=Path, metavar="FPS.csv",
                   help="frame rates (filename, fps); keeps videos at --required-fps")
    c.add_argument("--required-fps", type=float, default=ratings.TEST_FPS)
    c.add_argument("--min-class-videos", type=int,
                   default=ratings.MIN_PROMINENT_VIDEOS_PER_CLASS)
    c.add_argument("--min-votes", type=int, default=ratings.MAJORITY_MIN_VOTES)
    c.add_argument("--test-classes", metavar="A,B,...",
                   help="use these test classes instead of the class filter")
    c.add_argument("--avmit-per-class", type=int,
                   help="AVMIT videos per class (default: the most every class can fill)")
    c.add_argument("--mit16-per-class", type=int,
                   help="MIT-16 videos per class (default: the most every class can fill)")
    c.add_argument("--validation-fraction", type=float, default=ratings.VALIDATION_FRACTION)
    c.set_defaults(handler=_select)


def _read_classes(path: Path | None):
    if path is None:
        return None
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DatasetError(f"cannot read the class list ({err})", path=path,
                           fix="give a UTF-8 text file with one class name per line")
    classes = [line.strip() for line in lines if line.strip()]
    if not classes:
        raise DatasetError("the class list is empty", path=path,
                           fix="one class name per line")
    return classes


def read_many(paths, layouts, *, classes=None) -> pd.DataFrame:
    """Read several CSV files of one layout as one table (rows numbered per file in errors)."""
    frames = [schema.read_csv(p, layouts, classes=classes) for p in paths]
    kinds = {f.attrs["layout"] for f in frames}
    if len(kinds) > 1:
        raise DatasetError(f"the files mix layouts ({', '.join(sorted(kinds))})",
                           path=paths[-1], fix="summarise files of one layout together")
    if len(frames) == 1:
        return frames[0]
    layout = next(l for l in schema.LAYOUTS if l.name == frames[0].attrs["layout"])
    table = pd.concat(frames, ignore_index=True)
    keys = [k for k in layout.unique if k in table.columns]
    if keys and len(keys) == len(layout.unique):
        dup = table.duplicated(subset=keys).to_numpy()
        if dup.any():
            i = int(dup.argmax())
            offsets = pd.Series([len(f) for f in frames]).cumsum()
            file_index = int((offsets <= i).sum())
            row = i - (int(offsets.iloc[file_index - 1]) if file_index else 0) + 1
            raise DatasetError(f"{' and '.join(keys)} '{table[keys[-1]].iloc[i]}' appears in "
                               "more than one file", path=paths[file_index], row=row,
                               column=keys[-1], fix="give each video once")
    table.attrs = {"path": ", ".join(str(p) for p in paths), "layout": layout.name}
    return table


def _aggregate(args) -> int:
    raw = read_many(args.raw, schema.RAW_RATINGS, classes=_read_classes(args.classes))
    result = ratings.aggregate(raw, min_ratings=args.min_ratings)
    schema.write_csv(result.video_ratings, args.output)
    if args.dropped is not None:
        schema.write_csv(result.dropped, args.dropped)
    print(f"{len(raw):,} ratings of {len(result.video_ratings) + len(result.dropped):,} videos; "
          f"kept {len(result.video_ratings):,}, dropped {len(result.dropped):,} with fewer than "
          f"{args.min_ratings} ratings -> {args.output}")
    return 0


def summarise(table: pd.DataFrame, *, min_votes: int = ratings.MAJORITY_MIN_VOTES,
              ground_truth: pd.DataFrame | None = None) -> dict[str, pd.DataFrame]:
    """The tables ``ratings summary`` writes, from any layout with ratings."""
    is_raw = table.attrs.get("layout") == schema.RAW_RATINGS.name
    video_ratings = ratings.aggregate(table).video_ratings if is_raw else \
        ratings.as_video_ratings(table)
    votes = ratings.votes(video_ratings, min_votes=min_votes)
    out = {"votes.csv": votes, "class_counts.csv": ratings.class_vote_counts(votes),
           "reliability.csv": reliability.reliability(video_ratings)}
    if is_raw and "participant" in table.columns:
        out["raters.csv"] = reliability.rater_agreement(table, ground_truth)
    return out


def _summary(args) -> int:
    layouts = (schema.VIDEO_RATINGS, schema.AVMIT_TRAIN, schema.RAW_RATINGS)
    table = read_many(args.ratings, layouts)
    gt = schema.read_csv(args.ground_truth, schema.GROUND_TRUTH) if args.ground_truth else None
    tables = summarise(table, min_votes=args.min_votes, ground_truth=gt)
    with OutputBatch(args.out) as batch:
        for name, frame in tables.items():
            schema.write_csv(frame, batch.path(name))
        ratings.plot_class_vote_counts(tables["class_counts.csv"], batch.path("fig2.png"),
                                       min_videos=args.min_class_videos)
    votes = tables["votes.csv"]
    counts = tables["class_counts.csv"]
    passing = counts.loc[counts["prominent_majority"] >= args.min_class_videos, "label"]
    rel = tables["reliability.csv"].set_index("measure")["value"]
    print(f"{len(votes):,} videos: {int(votes['present_majority'].sum()):,} present by majority, "
          f"{int(votes['prominent_majority'].sum()):,} prominent by majority "
          f"(>= {args.min_votes} votes)")
    print(f"{len(passing)} of {len(counts)} classes have >= {args.min_class_videos} "
          f"prominent-by-majority videos")
    print(f"Fleiss' kappa {rel['fleiss_kappa']:.3f}, Krippendorff's alpha (ordinal) "
          f"{rel['krippendorff_alpha_ordinal']:.3f}")
    print(f"wrote {', '.join(sorted(list(tables) + ['fig2.png']))} -> {args.out}")
    return 0


def _select(args) -> int:
    vr = read_many([args.video_ratings], (schema.VIDEO_RATINGS, schema.AVMIT_TRAIN))
    fps = schema.read_csv(args.fps, schema.FPS_METADATA) if args.fps else None
    exclude = schema.read_csv(args.exclude, schema.EXCLUSIONS) if args.exclude else None
    classes = None
    if args.test_classes:
        classes = [c.strip() for c in args.test_classes.split(",") if c.strip()]
        unknown = sorted(set(classes) - set(vr.get("AVMIT_label", vr.get("label"))))
        if unknown:
            raise DatasetError(f"--test-classes names classes with no videos: "
                               f"{', '.join(unknown)}", path=args.video_ratings,
                               column="AVMIT_label", fix="check the spelling of the classes")
    result = ratings.select(
        vr, classes=classes, per_class=args.per_class, seed=args.seed, fps=fps,
        required_fps=args.required_fps, exclude=exclude,
        min_class_videos=args.min_class_videos, min_votes=args.min_votes,
        avmit_per_class=args.avmit_per_class, mit16_per_class=args.mit16_per_class,
        validation_fraction=args.validation_fraction)
    with OutputBatch(args.out) as batch:
        for name, frame in result.files().items():
            # The released MIT-16 files carry an unnamed index column; keep that layout.
            schema.write_csv(frame, batch.path(name), index=name.startswith("MIT16"))
        schema.write_csv(result.report, batch.path("selection_report.csv"))
    report = result.report.groupby("step", sort=False)["n_videos"].agg(["sum", "min", "max"])
    report.columns = ["total", "smallest class", "largest class"]
    print(report.to_string())
    print(f"wrote {', '.join(list(result.files()) + ['selection_report.csv'])} -> {args.out}")
    return 0
