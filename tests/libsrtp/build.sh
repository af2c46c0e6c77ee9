#!/bin/sh
# Build the libsrtp2 reference tool used by the Rust interop tests.
# Usage: tests/libsrtp/build.sh [OUTPUT_PATH]   (default: <repo>/target/srtp_tool)
# Requires Debian's libsrtp2-dev (pkg-config name: libsrtp2).
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=${1:-"$ROOT/target/srtp_tool"}
case "$OUT" in /*) ;; *) OUT="$PWD/$OUT" ;; esac  # relative to caller's cwd
mkdir -p "$(dirname "$OUT")"
cd "$HERE"
# shellcheck disable=SC2046  # pkg-config output must word-split
cc -O2 -Wall -Wextra -o "$OUT" srtp_tool.c $(pkg-config --cflags --libs libsrtp2)
echo "$OUT"
