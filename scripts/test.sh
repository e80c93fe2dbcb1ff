#!/usr/bin/env bash
# Set everything up, then run the full test suite under a virtual screen (Xvfb).
# Extra arguments go to pytest (e.g. -k ratings), in one run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export MPLBACKEND=Agg
pytest_under_xvfb() { xvfb-run -a -s "-screen 0 1280x800x24" .venv/bin/python -m pytest "$@"; }
# the slowest tests are listed at the end of each run, to keep the suite well under 30 minutes
slowest=(--durations=25 --durations-min=10)
if [ $# -gt 0 ]; then
  pytest_under_xvfb "$@"
  exit $?
fi
# An OpenGL window (Mesa) and TensorFlow crash when they share a process, in either order:
# the tests that open windows in-process run on their own first, then everything else.
status=0
pytest_under_xvfb "${slowest[@]}" tests/test_player.py tests/test_audio_timing.py || status=$?
pytest_under_xvfb "${slowest[@]}" --ignore=tests/test_player.py --ignore=tests/test_audio_timing.py || {
  s=$?; [ "$status" -eq 0 ] && status=$s; }
exit "$status"
