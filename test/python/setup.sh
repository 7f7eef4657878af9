#!/bin/sh
# Creates test/python/.venv and installs the pinned requirements into it. The install is skipped when the
# venv already holds exactly these pins (a stamp of the requirement files), so repeated runs cost nothing.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
venv="$here/.venv"
stamp="$venv/.requirements.sha256"
want=$(cat "$here/requirements.txt" "$here/constraints.txt" | sha256sum | cut -d' ' -f1)

if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi

if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  echo "test/python/setup.sh: python3 lacks the venv module (on Debian: apt-get install python3-venv)" >&2
  exit 1
fi
rm -rf "$venv"
python3 -m venv "$venv"
# --no-compile: bytecode is written on first import instead, which halves the install's CPU time.
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-compile -r "$here/requirements.txt"
echo "$want" > "$stamp"
