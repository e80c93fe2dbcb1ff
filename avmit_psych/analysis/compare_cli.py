"""``python -m avmit_psych.analysis compare``: the command line of :mod:`.compare`.

With neither ``--humans`` nor ``--models`` the demo study (:mod:`avmit_psych.demo.study`) is
built or reused and compared; the command line sits above the demo in the layers, the
comparison itself below it.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from .._cli import Formatter
from . import compare
from . import psychometric as psy_mod
from .compare import run_comparison, terminal_table, write_comparison
from .observers import load_observations

HELP = """\
Compare humans' trials with models' predictions on the same stimuli.

Inputs are CSV files or folders of CSV files:
  --humans  our experiment's trials files (experiments/human_vs_dnn.py writes them), or the
            model-vs-human toolbox's raw data (subj, Session, trial, rt, object_response,
            category, condition, imagename; one file per subject and session)
  --models  predictions files (python -m avmit_psych.analysis predict / evaluate)
Either side may be left out: humans only gives the human-human analyses, models only the
model-model ones. With neither, a demo study is built once from the toolkit's own parts
(synthetic clips -> manipulated suite -> embeddings -> trained RNNs; simulated humans) and
compared; the report says that its humans are simulated.

Trials are matched across observers by stimulus_id (model-vs-human: imagename without the
'0001_cop_s01_' prefix). A condition is a manipulation and its level, whatever the level looks
like (audio_noise=-5, semantic_swap=laughing, colour=greyscale); model-vs-human's condition
codes are decoded into numbers where their meaning is known (c05 -> contrast=5).
"""


def add_parser(sub) -> None:
    p = sub.add_parser("compare", formatter_class=Formatter, help="humans vs DNNs: statistics, "
                       "error consistency, psychometric fits, figures, report",
                       description=HELP, epilog=compare.__doc__.split("\n\n", 1)[1])
    p.add_argument("--humans", nargs="+", type=Path, metavar="PATH", default=[])
    p.add_argument("--models", nargs="+", type=Path, metavar="PATH", default=[])
    p.add_argument("--out", type=Path, default=Path("comparison"), metavar="DIR")
    p.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                   help="bootstrap resamples for the error-consistency CIs (0: none)")
    p.add_argument("--seed", type=int, default=0, help="seeds the bootstrap (and the demo)")
    p.add_argument("--confidence", type=float, default=0.95)
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                   help="processes for the psychometric fits")
    p.add_argument("--no-psychometric", action="store_true", help="skip the psignifit fits")
    p.add_argument("--exclude-timing-failures", action=argparse.BooleanOptionalAction,
                   default=True,
                   help="leave out human trials the experiment flagged timing_ok = False "
                        "(counted in the report); --no-exclude-timing-failures keeps them")
    p.add_argument("--choices", type=int, default=psy_mod.N_CHOICES, metavar="N",
                   help="response alternatives of the classification task: chance = 1/N "
                        "(correspondence: always 1/2)")
    p.add_argument("--demo-root", type=Path, default=None, metavar="DIR",
                   help="where demo studies are built and cached, one folder per seed "
                        "(default: $AVMIT_PSYCH_DATA/demo_study, else "
                        "~/.local/share/avmit_psych/demo_study)")
    p.add_argument("--rebuild-demo", action="store_true", help="build the demo study again")
    p.add_argument("--demo-task", choices=("classify", "correspondence"), default="classify",
                   help="which task of the demo study to compare (without --humans/--models)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(handler=_compare)


def _compare(args) -> int:
    from ..dataset.schema import DatasetError
    if not 0 < args.confidence < 1:
        raise DatasetError(f"--confidence {args.confidence} is not between 0 and 1",
                           fix="give e.g. --confidence 0.95")
    if args.bootstrap < 0:
        raise DatasetError(f"--bootstrap {args.bootstrap} is negative", fix="give 0 or more")
    if args.choices < 2:
        raise DatasetError(f"--choices {args.choices} is below 2",
                           fix="give the number of response alternatives, e.g. --choices 16")
    humans, models, note = list(args.humans), list(args.models), ""
    if not humans and not models:
        from ..demo.study import build_demo_study
        root = None if args.demo_root is None else args.demo_root / f"seed-{args.seed}"
        study = build_demo_study(root, seed=args.seed, force=args.rebuild_demo,
                                 progress=not args.quiet)
        humans_dir, models_dir = study.inputs(args.demo_task)
        humans, models, note = [humans_dir], [models_dir], study.description
    t0 = time.perf_counter()
    obs = load_observations(humans, models,
                            exclude_timing_failures=args.exclude_timing_failures)
    print(f"read {len(obs.trials):,} trials: {len(obs.humans)} human(s), {len(obs.models)} "
          f"model(s), {obs.trials['condition'].nunique()} condition(s)")
    result = run_comparison(obs, n_boot=args.bootstrap, seed=args.seed,
                            confidence=args.confidence, workers=args.workers,
                            psychometric=not args.no_psychometric, n_choices=args.choices,
                            progress=not args.quiet)
    command = "python -m avmit_psych.analysis " + " ".join(sys.argv[1:]) \
        if sys.argv and sys.argv[0].endswith("__main__.py") else ""
    files = write_comparison(result, args.out, study_note=note, command=command)
    print(terminal_table(result))
    for n in result.notes:
        print(f"warning: {n}")
    print(f"wrote {len(files)} files to {args.out}/ in {time.perf_counter() - t0:.1f} s "
          f"(report: {args.out / 'report.md'})")
    return 0
