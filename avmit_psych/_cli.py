"""What every ``python -m avmit_psych...`` command shares: one-line errors and exit codes."""
from __future__ import annotations

import argparse
import os
import sys
from typing import Callable

from .errors import DatasetError, DownloadError, UnknownFileError

#: Exit codes: 0 done, 1 failed while working (e.g. a download), 2 bad input or usage,
#: 130 interrupted.
EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 1, 2, 130


class Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keep the hand-written layout of descriptions and show defaults."""


def run(main: Callable[[list[str] | None], int | None], argv=None, prog: str = "") -> int:
    """Run a command's ``main``; turn known errors into one line on stderr and an exit code.

    ``--verbose`` anywhere in ``argv`` is taken out here and shows TensorFlow's own log lines
    (hidden otherwise on a CPU-only machine; see :mod:`avmit_psych._tf`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--verbose" in argv:
        argv = [a for a in argv if a != "--verbose"]
        os.environ["AVMIT_PSYCH_VERBOSE"] = "1"
    try:
        return int(main(argv) or 0)
    except (DatasetError, UnknownFileError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except DownloadError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted; finished outputs are kept, unfinished ones were not written",
              file=sys.stderr)
        return EXIT_INTERRUPTED


VERBOSE_HELP = ("--verbose (with any command) also shows TensorFlow's own log lines, hidden "
                "otherwise")


def dispatch(build_parser: Callable[[], argparse.ArgumentParser], argv=None) -> int:
    """Parse ``argv`` with the command's parser and call the chosen sub-command's handler."""
    args = build_parser().parse_args(argv)
    return args.handler(args)


def command_group(prog: str, description: str,
                  *add_parsers) -> Callable[[], argparse.ArgumentParser]:
    """A ``build_parser`` for ``python -m avmit_psych.<stage> COMMAND``: each of ``add_parsers``
    adds its command(s) to the sub-parsers (``add_parser(sub)``)."""
    def build_parser() -> argparse.ArgumentParser:
        parser = argparse.ArgumentParser(prog=prog, formatter_class=Formatter,
                                         description=description, epilog=VERBOSE_HELP)
        sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
        for add in add_parsers:
            add(sub)
        return parser
    return build_parser
