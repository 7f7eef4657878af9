#!/bin/sh
# Builds E2B's envd from e2b-dev/infra for `ENVD_BIN=… npm run bench`; source and binary stay outside
# the repo. Usage: sh bench/build-envd.sh <git dir of e2b-dev/infra> [out dir, default /work/envd]
# (a bare mirror, or the .git of a clone of https://github.com/e2b-dev/infra).
set -eu
src=$1
out=${2:-/work/envd}
mkdir -p "$out"
git --git-dir="$src" archive HEAD packages/envd packages/shared | tar -x -C "$out"
cd "$out/packages/envd"
CGO_ENABLED=0 go build -o "$out/envd" .
echo "ENVD_BIN=$out/envd"
