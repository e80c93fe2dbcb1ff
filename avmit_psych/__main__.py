"""``python -m avmit_psych``: the built-in demo, and the map of the toolkit's commands."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ._cli import Formatter, dispatch, run
from .dataset import ratings, synthetic
from .dataset.__main__ import write_synthetic

COMMANDS = """\
commands of the toolkit:
  python -m avmit_psych demo                 run the pipeline on built-in synthetic data
  python -m avmit_psych.dataset download     fetch the AVMIT record (CSVs, embeddings)
  python -m avmit_psych.dataset synthetic    write synthetic raw ratings to try things on
  python -m avmit_psych.dataset synthetic-embeddings   synthetic TFRecords + split CSVs
  python -m avmit_psych.stimuli generate     manipulated stimulus suites + verified manifest
  python -m avmit_psych.stimuli verify       measure every stimulus of a manifest
  python -m avmit_psych.experiments plan     a counterbalanced study plan (lists, sessions,
                                             practice, repeats, power) for a manifest
  python -m avmit_psych.features extract     embed videos into released-layout TFRecords
  python -m avmit_psych.features probe       frame rate, duration and audio of videos
  python -m avmit_psych.analysis ratings     aggregate / summary / select annotations
  python -m avmit_psych.analysis train       train a baseline (analysis/configs/...)
  python -m avmit_psych.analysis evaluate    test it: metrics.json + predictions.csv
  python -m avmit_psych.analysis predict     predictions for a stimulus manifest
  python -m avmit_psych.analysis search      the paper's bootstrap random search
  python -m avmit_psych.analysis replicate   all 24 baselines beside Tables 6 and 7
  python -m avmit_psych.analysis compare     humans vs DNNs: statistics, error consistency,
                                             psychometric fits, figures and a report
--verbose (with any command) also shows TensorFlow's own log lines, hidden otherwise.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m avmit_psych", formatter_class=Formatter,
                                     description=__doc__, epilog=COMMANDS)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    d = sub.add_parser(
        "demo", formatter_class=Formatter, help="run the pipeline on built-in synthetic data",
        description="Simulate an AVMIT-scale annotation campaign (57,177 videos, 11 raters), "
                    "then run the ratings pipeline on it: aggregate -> summary (votes, "
                    "Figure 2, reliability) -> select (test set, AVMIT and MIT-16 training "
                    "sets); then write synthetic embeddings as TFRecords, train the "
                    "VGGish+VGG16 GRU baseline on them and test it (metrics and predictions); "
                    "finally compare humans with DNNs on a demo study built from the toolkit's "
                    "own parts (synthetic clips -> manipulated suite -> embeddings -> trained "
                    "recognition and SAVC RNNs; simulated cue-integration observers), in "
                    "classification and in correspondence, cached in the user data folder after "
                    "the first run. Every step writes what the command-line tools write.")
    d.add_argument("--out", type=Path, default=Path("demo_output"), metavar="DIR")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--n-videos", type=int, default=synthetic.PAPER_N_VIDEOS)
    d.add_argument("--epochs", type=int, default=12, help="training epochs of the demo model")
    d.add_argument("--demo-root", type=Path, default=None, metavar="DIR",
                   help="where the human-vs-DNN demo study is built and cached, one folder "
                        "per seed (default: $AVMIT_PSYCH_DATA/demo_study, else "
                        "~/.local/share/avmit_psych/demo_study)")
    d.set_defaults(handler=demo)
    return parser


def demo(args) -> int:
    out = args.out
    print(f"1/8 simulating {args.n_videos:,} videos rated by {synthetic.PAPER_N_RATERS} raters")
    sim = synthetic.simulate_ratings(args.n_videos, seed=args.seed)
    inputs = write_synthetic(out / "synthetic", sim)
    # The class filter (500 prominent-by-majority videos) is scaled with a smaller pool.
    threshold = ratings.MIN_PROMINENT_VIDEOS_PER_CLASS
    if args.n_videos < synthetic.PAPER_N_VIDEOS:
        threshold = max(1, round(threshold * args.n_videos / synthetic.PAPER_N_VIDEOS))
        print(f"    class filter scaled to {threshold} videos for the smaller pool")
    steps = [
        ("2/8 aggregating raw ratings", ["ratings", "aggregate", str(inputs["raw_ratings.csv"]),
                                         "-o", str(out / "video_ratings.csv"),
                                         "--dropped", str(out / "dropped_videos.csv")]),
        ("3/8 summarising (votes, Figure 2, reliability)",
         ["ratings", "summary", str(inputs["raw_ratings.csv"]), "--out", str(out / "summary"),
          "--ground-truth", str(inputs["ground_truth.csv"]),
          "--min-class-videos", str(threshold)]),
        ("4/8 selecting the test set and training sets",
         ["ratings", "select", str(out / "video_ratings.csv"), "--out",
          str(out / "selection"), "--seed", str(args.seed), "--fps", str(inputs["fps.csv"]),
          "--exclude", str(inputs["exclusions.csv"]), "--min-class-videos", str(threshold)]),
    ]
    from .analysis.__main__ import main as analysis_main
    from .dataset.__main__ import synthetic_embeddings

    def run(title, argv):
        print(f"\n{title}\n$ python -m avmit_psych.analysis {' '.join(argv)}")
        code = analysis_main(argv)
        if code:
            raise SystemExit(code)

    for title, argv in steps:
        run(title, argv)

    emb = out / "embeddings"
    print(f"\n5/8 writing synthetic VGGish+VGG16 embeddings as TFRecords -> {emb}")
    splits = synthetic_embeddings(emb, seed=args.seed)
    config = Path(__file__).resolve().parents[1] / "analysis" / "configs" / "recognition" / \
        "vggish_vgg16_gru_avmit.yaml"
    run("6/8 training the VGGish+VGG16 GRU baseline (Table 5) for a few epochs",
        ["train", "--config", str(config), "--tfrecords", str(emb / "tfrecords"),
         "--train-csv", str(splits["AVMIT_train"]), "--val-csv", str(splits["AVMIT_validation"]),
         "--out", str(out / "models" / "vggish_vgg16_gru_avmit"), "--epochs",
         str(args.epochs), "--seed", str(args.seed)])
    run("7/8 testing it: metrics and per-trial predictions",
        ["evaluate", "--model", str(out / "models" / "vggish_vgg16_gru_avmit"), "--tfrecords",
         str(emb / "tfrecords"), "--test-csv", str(splits["test_set"]), "--out",
         str(out / "models" / "vggish_vgg16_gru_avmit" / "test")])
    demo_root = [] if args.demo_root is None else ["--demo-root", str(args.demo_root)]
    run("8/8 humans vs DNNs: building (or reusing) the demo study and comparing "
        "classification (recognition RNNs)",
        ["compare", "--out", str(out / "comparison"), "--seed", str(args.seed), *demo_root])
    run("    ... and correspondence (SAVC models, same/different)",
        ["compare", "--out", str(out / "comparison_correspondence"), "--seed", str(args.seed),
         "--demo-task", "correspondence", *demo_root])
    print(f"\ndemo finished: outputs in {out}/ (reports: {out / 'comparison' / 'report.md'}, "
          f"{out / 'comparison_correspondence' / 'report.md'}; figures: "
          f"{out / 'summary' / 'fig2.png'}, {out / 'comparison'}/*.png)")
    return 0


def main(argv=None) -> int:
    return dispatch(build_parser, argv)


if __name__ == "__main__":
    sys.exit(run(main))
