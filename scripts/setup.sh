#!/usr/bin/env bash
# Set up everything avmit_psych needs on a Debian machine (Python 3.11): Debian packages for
# headless windows and audio, and PostgreSQL's server binaries (the tests start a throwaway
# server) when missing; a virtual environment in .venv with the pinned stack from
# requirements.txt, and the package itself (editable). Safe to run again: it skips what is
# already done.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v xvfb-run >/dev/null 2>&1 || need+=(xvfb xauth)
command -v xauth >/dev/null 2>&1 || need+=(xauth)
ldconfig -p 2>/dev/null | grep -q 'libportaudio.so.2' || need+=(libportaudio2)
# PostgreSQL server binaries: the tests start a throwaway server of their own (no service runs).
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
if ((${#need[@]})); then
  echo "setup: installing Debian packages: ${need[*]}"
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($python --version 2>&1)"
  "$python" -m venv .venv
fi
stamp=.venv/.avmit_psych-installed
want=$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing requirements.txt into .venv (a few minutes the first time)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements.txt
  .venv/bin/python -m pip install -q --no-deps -e .
  .venv/bin/python -m pip check
  echo "$want" > "$stamp"
fi
