#!/usr/bin/env bash
# Set everything up, then run the full test suite under a virtual screen (Xvfb).
# Extra arguments go to pytest (e.g. -k ratings).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export MPLBACKEND=Agg
exec xvfb-run -a -s "-screen 0 1280x800x24" .venv/bin/python -m pytest "$@"
