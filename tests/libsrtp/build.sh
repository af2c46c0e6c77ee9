#!/bin/sh
# Build the libsrtp2 reference tool used by the Rust interop tests.
# Usage: tests/libsrtp/build.sh [OUTPUT_PATH [PREFIX]]   (default: <repo>/target/srtp_tool)
# Requires Debian's libsrtp2-dev (pkg-config name: libsrtp2). With PREFIX,
# links PREFIX/lib/libsrtp2.a statically instead (the libsrtp2 that
# tests/run builds from Debian's source package with --enable-openssl),
# so that the two tools cannot load each other's shared library.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=${1:-"$ROOT/target/srtp_tool"}
case "$OUT" in /*) ;; *) OUT="$PWD/$OUT" ;; esac  # relative to caller's cwd
mkdir -p "$(dirname "$OUT")"
cd "$HERE"
# shellcheck disable=SC2046  # pkg-config output must word-split
if [ -n "${2:-}" ]; then
    cc -O2 -Wall -Wextra -o "$OUT" srtp_tool.c -I"$2/include" "$2/lib/libsrtp2.a" -lcrypto
else
    cc -O2 -Wall -Wextra -o "$OUT" srtp_tool.c $(pkg-config --cflags --libs libsrtp2)
fi
echo "$OUT"
