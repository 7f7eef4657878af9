#!/bin/sh
# Makes a venv of pinned Python clients and installs them; skipped when the venv already holds exactly
# these pins (a stamp of the requirement files), so repeated runs cost nothing.
#
#   sh setup.sh            test/python/.venv from requirements.txt + constraints.txt (the main suite)
#   sh setup.sh NAME       test/python/.venvs/NAME from envs/NAME/requirements.txt (+ constraints.txt there)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
name=${1:-}
if [ -z "$name" ]; then
  venv="$here/.venv"
  reqdir="$here"
else
  venv="$here/.venvs/$name"
  reqdir="$here/envs/$name"
  [ -f "$reqdir/requirements.txt" ] || { echo "test/python/setup.sh: no $reqdir/requirements.txt" >&2; exit 1; }
fi
stamp="$venv/.requirements.sha256"
want=$(cat "$reqdir/requirements.txt" "$reqdir"/constraints.txt 2>/dev/null | sha256sum | cut -d' ' -f1)

if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi

if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  echo "test/python/setup.sh: python3 lacks the venv module (on Debian: apt-get install python3-venv)" >&2
  exit 1
fi
rm -rf "$venv"
mkdir -p "$(dirname "$venv")"
python3 -m venv "$venv"
# --no-compile: bytecode is written on first import instead, which halves the install's CPU time.
(cd "$reqdir" && "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-compile -r requirements.txt)
echo "$want" > "$stamp"
