#!/usr/bin/env bash
# The main job: set up and build, format the default store (a preallocated store file under
# ./dualblade-data/, no raw device needed), measure its sequential O_DIRECT read bandwidth, then
# generate a `kv-heavy` model once and run a long prompt on it with the `dual` KV policy, its KV
# cache in the store.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
BIN=${DUALBLADE_BUILD_DIR:-build}/src/cli/dualblade
DATA=dualblade-data
STORE=$DATA/kv.store            # the store `dualblade run` uses when --kv-store is not given
SIZE=${DUALBLADE_STORE_SIZE:-2G}
MODEL=$DATA/kv-heavy-q8_0.gguf
mkdir -p "$DATA"

if ! "$BIN" info "$STORE" >/dev/null 2>&1; then
  echo "demo: formatting $STORE ($SIZE)"
  "$BIN" format "$STORE" --size "$SIZE"
fi
"$BIN" info "$STORE"

echo
echo "demo: sequential read bandwidth with O_DIRECT, 1 MiB requests, queue depth 32"
"$BIN" iobench "$STORE" --bs 1M --qd 32 --rw read --seconds 3

if [ ! -f "$MODEL" ]; then
  echo
  echo "demo: generating a random-weight kv-heavy model (small weights, large KV per token)"
  "$BIN" mkmodel --out "$MODEL" --preset kv-heavy --type q8_0
fi

# A long prompt: about 1,300 tokens of this model's byte-level vocabulary.
PROMPT=$DATA/demo-prompt.txt
for i in $(seq 1 30); do
  printf 'Chapter %d. The edge box had little memory, so the KV cache lived on the SSD. ' "$i"
done > "$PROMPT"

echo
echo "demo: dualblade run, KV policy dual, KV cache in $STORE, memory budget 256 MiB"
echo "      (the model's weights, activations and KV do not all fit: dual keeps part of the KV in the"
echo "      page cache and reads the rest with O_DIRECT; random weights, so the text is noise)"
"$BIN" run -m "$MODEL" -f "$PROMPT" -n 32 --temp 0 --kv-policy dual --kv-store "$STORE" \
  --mem-budget 256M --no-echo --stats-json "$DATA/demo-stats.json"
echo "demo: statistics written to $DATA/demo-stats.json"
