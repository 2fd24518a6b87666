#!/usr/bin/env bash
# The main job: set up and build, then format the default store (a preallocated store file under
# ./dualblade-data/, no raw device needed) and measure its sequential read bandwidth with O_DIRECT.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
BIN=${DUALBLADE_BUILD_DIR:-build}/src/cli/dualblade
STORE=dualblade-data/store.db
SIZE=${DUALBLADE_STORE_SIZE:-2G}
mkdir -p dualblade-data
if ! "$BIN" info "$STORE" >/dev/null 2>&1; then
  echo "demo: formatting $STORE ($SIZE)"
  "$BIN" format "$STORE" --size "$SIZE"
fi
"$BIN" info "$STORE"
echo "demo: sequential read bandwidth with O_DIRECT, 1 MiB requests, queue depth 32"
"$BIN" iobench "$STORE" --bs 1M --qd 32 --rw read --seconds 5
