#!/usr/bin/env bash
# Set everything up, then run the main job on the built-in synthetic demo data.
# Outputs go to demo_output/ (or the folder given with --out).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m avmit_psych demo "$@"
