"""``python -m avmit_psych.analysis <command>``: the analysis commands of avmit_psych."""
from __future__ import annotations

import sys

from .._cli import command_group, dispatch, run
from . import compare_cli, models_cli, ratings_cli

build_parser = command_group("python -m avmit_psych.analysis",
                             "Analyses of AVMIT data. Each command has its own --help.",
                             ratings_cli.add_parser, models_cli.add_parsers, compare_cli.add_parser)


def main(argv=None) -> int:
    return dispatch(build_parser, argv)


if __name__ == "__main__":
    sys.exit(run(main))
