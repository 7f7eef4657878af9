#!/bin/sh
# Runs the version matrix: each line of matrix.txt names a venv (envs/NAME) and the pytest arguments to run
# in it, against the same built daemon as the main suite. Every line runs; any failure fails the run.
set -u
here=$(cd "$(dirname "$0")" && pwd)
failed=""
while read -r name args; do
  case "$name" in '' | '#'*) continue ;; esac
  echo "== test/python matrix: $name: pytest $args"
  if sh "$here/setup.sh" "$name" </dev/null; then
    # shellcheck disable=SC2086 # args is a list of pytest arguments
    (cd "$here" && SANDBOXD_PY_ENV="$name" PYTHONPYCACHEPREFIX=".venvs/$name/pycache" ".venvs/$name/bin/python" -m pytest $args </dev/null) || failed="$failed $name"
  else
    failed="$failed $name(setup)"
  fi
done < "$here/matrix.txt"
if [ -n "$failed" ]; then
  echo "test/python matrix failed:$failed" >&2
  exit 1
fi
