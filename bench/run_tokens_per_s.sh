#!/usr/bin/env bash
# Prefill and decode throughput of `dualblade run` (greedy, KV policy memory, 2 threads by
# default) on the kv-heavy and llama-3.2-1b random-weight presets in Q8_0 and Q4_K_M, plus
# stories260K (f32, q8_0) from ../shared/models when present, for comparison with llama.cpp.
# Models are written once into dualblade-data/models/ (llama-3.2-1b takes minutes and about
# 1.3 GB in Q8_0); delete them there when done. Prints a Markdown table.
#
#   bench/run_tokens_per_s.sh [BUILD_DIR]
#
# Environment: PROMPT_TOKENS (default 512, BOS included), N_PREDICT (64), THREADS (2),
# PRESETS ("kv-heavy llama-3.2-1b"), TYPES ("q8_0 q4_k_m"), STORIES (1; 0 skips stories260K).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$root/build}"
bin="$build/src/cli/dualblade"
[[ -x "$bin" ]] || { echo "no dualblade binary at $bin (build first)" >&2; exit 1; }
prompt_tokens="${PROMPT_TOKENS:-512}"
n_predict="${N_PREDICT:-64}"
threads="${THREADS:-2}"
presets="${PRESETS:-kv-heavy llama-3.2-1b}"
types="${TYPES:-q8_0 q4_k_m}"
models_dir="$root/dualblade-data/models"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$models_dir"

# A deterministic prompt of $1 single lowercase letters separated by spaces (a fixed LCG picks
# them). The random models' vocabulary holds "▁x" for every letter, so with BOS that is exactly
# $1 + 1 tokens there; other tokenizers are calibrated below.
make_prompt() {
  awk -v n="$1" 'BEGIN { s = 12345; out = "";
    for (i = 0; i < n; ++i) { s = (s * 1103515245 + 12345) % 2147483648;
      out = out (i ? " " : "") substr("abcdefghijklmnopqrstuvwxyz", int(s / 65536) % 26 + 1, 1) }
    printf "%s", out }' > "$2"
}

# Writes a model with mkmodel unless present, printing the file's growth while it is written.
ensure_model() {
  local preset="$1" type="$2" path="$3"
  [[ -f "$path" ]] && return 0
  echo "generating $path (the large presets take minutes)..." >&2
  local start=$SECONDS
  "$bin" mkmodel --out "$path" --preset "$preset" --type "$type" >&2 &
  local pid=$!
  local ticks=0
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    if (( ++ticks % 15 == 0 )) && [[ -f "$path.tmp" ]]; then
      echo "  ... $(( $(stat -c %s "$path.tmp") / 1048576 )) MiB written, $((SECONDS - start)) s" >&2
    fi
  done
  wait "$pid"
  echo "  done in $((SECONDS - start)) s" >&2
}

# Runs one measurement; prints "prompt_tokens prefill_tok_s decode_tok_s". The prompt is
# recalibrated (word count scaled) until it tokenizes to $prompt_tokens, at most 5 tries.
measure() {
  local model="$1" words=$((prompt_tokens - 1)) try got
  for try in 1 2 3 4 5; do
    make_prompt "$words" "$work/prompt.txt"
    "$bin" run -m "$model" -f "$work/prompt.txt" -n "$n_predict" --temp 0 -t "$threads" \
        --kv-policy memory --no-echo --stats-json "$work/stats.json" > /dev/null 2> "$work/err" ||
      { cat "$work/err" >&2; return 1; }
    got=$(jq -r .prompt_tokens "$work/stats.json")
    [[ "$got" == "$prompt_tokens" ]] && break
    words=$(( words * (prompt_tokens - 1) / (got - 1) ))
    [[ "$try" == 5 ]] || echo "  $(basename "$model"): prompt was $got tokens, retrying" >&2
  done
  jq -r '"\(.prompt_tokens) \(.prompt_tokens_per_s) \(.tokens_per_s)"' "$work/stats.json"
}

rows=()
add_row() {  # name type model
  echo "measuring $1 $2..." >&2
  local r
  r=$(measure "$3")
  read -r pt pre dec <<< "$r"
  rows+=("$(printf '| %s | %s | %s | %.0f | %.0f |' "$1" "$2" "$pt" "$pre" "$dec")")
}

stories="$root/../shared/models"
if [[ "${STORIES:-1}" != 0 && -f "$stories/stories260K.gguf" ]]; then
  add_row stories260K f32 "$stories/stories260K.gguf"
  [[ -f "$stories/stories260K-q8_0.gguf" ]] &&
    add_row stories260K q8_0 "$stories/stories260K-q8_0.gguf"
fi
for preset in $presets; do
  for type in $types; do
    path="$models_dir/$preset-$type.gguf"
    ensure_model "$preset" "$type" "$path"
    add_row "$preset" "$type" "$path"
  done
done

echo
echo "dualblade run, $threads threads, --kv-policy memory, greedy, $n_predict generated tokens;" \
  "load average $(cut -d' ' -f1-3 /proc/loadavg) at the end (the figures move with it)"
echo
echo "| model | type | prompt tokens | prefill tokens/s | decode tokens/s |"
echo "|---|---|---:|---:|---:|"
printf '%s\n' "${rows[@]}"
