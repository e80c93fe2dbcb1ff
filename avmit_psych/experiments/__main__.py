"""``python -m avmit_psych.experiments <command>``: commands around the experiments.

Each command lives in its own module, which adds its parser here (``add_parser(sub)``).
"""
from __future__ import annotations

import sys

from .._cli import command_group, dispatch, run
from . import bids, calibrate, plan

build_parser = command_group(
    "python -m avmit_psych.experiments",
    "Experiments with human participants. Each command has its own --help.",
    plan.add_parser, calibrate.add_parser, bids.add_parser)


def main(argv=None) -> int:
    return dispatch(build_parser, argv)


if __name__ == "__main__":
    sys.exit(run(main))
