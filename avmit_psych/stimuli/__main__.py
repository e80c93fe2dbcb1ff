"""``python -m avmit_psych.stimuli {generate,verify,probe-clips}``: stimulus suites."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import _cluster
from .._cli import Formatter, dispatch, run
from ..dataset import schema
from ..dataset.schema import DatasetError

REPO_SUITES = Path(__file__).resolve().parents[2] / "stimuli" / "suites"

GENERATE_HELP = f"""\
Make a stimulus suite from test-set videos: every video under every condition of the suite
(audiovisual asynchrony, auditory noise, visual noise, semantic swaps, unimodal versions),
encoded as H.264 + AAC (or PCM in .mov), then verified, and listed in DIR/manifest.csv.

  python -m avmit_psych.stimuli generate --suite {REPO_SUITES / 'avmit_test_960.yaml'} \\
      --videos AVMIT_test_videos/ --test-set test_set.csv --out suite/ --workers 2

Videos are found as ROOT/<new_filename>, ROOT/<filename> or ROOT/<video_location>/<filename>.
Every file is written under a temporary name and renamed when complete; running the same
command again after an interruption finishes the suite without redoing finished stimuli.
DIR/verify.csv has every measurement; DIR/failures.csv the stimuli that could not be made.
The manifest lists only complete, verified stimuli. Exit code 1 if anything failed.

Your own manipulation (a plug-in): name a moviepy effect by dotted path in the suite YAML,
with its levels and unit; it is generated, verified (when a verifier is named) and listed in
the manifest like a built-in:

  lab_blur:
    manipulation: mylab.effects:blur    # effect(clip, level, *, seed, **params) -> clip
    levels: [1, 2, 4]
    level_unit: px sigma
    verify: mylab.effects:measure_blur  # optional: (stimulus, source, *, seed) -> level
    tolerance: 0.2

The module must be importable from where the command runs (working folder or PYTHONPATH).
See avmit_psych/stimuli/effects.py for the built-ins written the same way.

On several processes or machines (Dask): --cluster local:4 starts 4 worker processes here;
--scheduler tcp://HOST:8786 joins a running `dask scheduler` whose `dask worker`s see the same
paths. Source videos go out in shards of --shard-size; the files and the manifest's checksums
are the same as on one machine. See README.md, "On a Dask cluster".
"""


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m avmit_psych.stimuli",
                                     formatter_class=Formatter,
                                     description="Stimulus suites for humans and DNNs.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    g = sub.add_parser("generate", help="make (or finish) a stimulus suite",
                       description=GENERATE_HELP, formatter_class=Formatter)
    g.add_argument("--suite", required=True, type=Path, metavar="S.yaml")
    g.add_argument("--videos", required=True, type=Path, metavar="ROOT")
    g.add_argument("--test-set", required=True, type=Path, metavar="test_set.csv")
    g.add_argument("--out", required=True, type=Path, metavar="DIR")
    g.add_argument("--workers", type=int, default=2,
                   help="worker processes (without --scheduler/--cluster)")
    g.add_argument("--seed", type=int, default=0,
                   help="seed of the noise and of the semantic-swap donors")
    g.add_argument("--no-verify", action="store_true",
                   help="skip verification (the manifest's 'verified' column stays false)")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    _cluster.add_arguments(g, shard_size=2, unit="source videos")
    g.set_defaults(handler=_generate)

    v = sub.add_parser(
        "verify", formatter_class=Formatter, help="measure every stimulus of a manifest",
        description="Decode every stimulus in a manifest and measure what it should be: "
                    "duration, frame count and rate, sample rate, the achieved AV offset "
                    "(cross-correlation with the source audio), SNR, pixel-noise SD, the "
                    "donor for swaps, constant frames / silence for unimodal stimuli. Writes "
                    "verify.csv beside the manifest; exit code 1 if any stimulus is outside "
                    "tolerance.")
    v.add_argument("--manifest", required=True, type=Path, metavar="DIR/manifest.csv")
    v.set_defaults(handler=_verify)

    p = sub.add_parser(
        "probe-clips", formatter_class=Formatter,
        help="write synthetic 3-s audiovisual clips and a test-set CSV for them",
        description="Seeded synthetic clips with known events (a flash and a click at 1.0 s, "
                    "class tones, moving shapes) in the test-set layout, to try suites "
                    "without real videos.")
    p.add_argument("--out", required=True, type=Path, metavar="DIR")
    p.add_argument("--per-class", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--grey", action="store_true", help="uniform mid-grey frames")
    p.set_defaults(handler=_probe_clips)
    return parser


def _generate(args) -> int:
    from . import generate, suite
    cluster = _cluster.from_arguments(args)
    s = suite.load_suite(args.suite)
    sources = generate.sources_from_test_set(args.test_set, args.videos)
    manifest, failures, verification = generate.generate(
        s, sources, args.out, seed=args.seed, workers=args.workers,
        progress=not args.quiet, verify=not args.no_verify, cluster=cluster,
        shard_size=args.shard_size, retries=args.retries)
    n_bad = 0 if verification is None else int((~verification["ok"]).sum())
    print(f"{len(manifest)} stimuli in {args.out / 'manifest.csv'}; {len(failures)} could not "
          f"be made; {n_bad} failed verification")
    for row in failures.head(5).itertuples():
        print(f"  failed: {row.stimulus_id}: {row.error}", file=sys.stderr)
    if verification is not None:
        for row in verification[~verification["ok"]].head(5).itertuples():
            print(f"  not verified: {row.stimulus_id}: {row.problems}", file=sys.stderr)
    return 1 if len(failures) or n_bad else 0


def _verify(args) -> int:
    from .verify import verify_manifest
    if not args.manifest.exists():
        raise DatasetError("manifest not found", path=args.manifest,
                           fix="give DIR/manifest.csv of a generated suite")
    manifest = schema.read_csv(args.manifest)
    for col in ("stimulus_id", "path", "manipulation", "level", "seed", "sha256",
                "source_path", "audio_source_path"):
        if col not in manifest.columns:
            raise DatasetError(f"required column '{col}' is missing", path=args.manifest,
                               column=col, fix="give a manifest written by 'generate'")
    table = verify_manifest(manifest, args.manifest.parent)
    schema.write_csv(table, args.manifest.parent / "verify.csv")
    bad = int((~table["ok"]).sum())
    print(f"{len(table) - bad} of {len(table)} stimuli within tolerance -> "
          f"{args.manifest.parent / 'verify.csv'}")
    return 1 if bad else 0


def _probe_clips(args) -> int:
    from ..dataset.synthetic.clips import write_probe_clips
    csv = write_probe_clips(args.out / "videos", args.out / "test_set.csv",
                                      per_class=args.per_class, seed=args.seed, grey=args.grey)
    print(f"clips -> {args.out / 'videos'}; test set -> {csv}")
    return 0


def main(argv=None) -> int:
    return dispatch(build_parser, argv)


if __name__ == "__main__":
    sys.exit(run(main))
