#!/usr/bin/env bash
# The adaptive pipeline's sweep on the KV-trace target shape (16 layers, 8 KV heads of 64, f16,
# 16K tokens = 512 MiB of KV), dual policy, budgets 128 MiB to 1 GiB. Per budget: one run at
# prefetch depth 0 with no compute measures the I/O time per layer, which becomes the busy
# compute per layer; then depth 0 (no overlap), fixed depths 1, 2, 4, 8 and auto, each point in
# its own memory cgroup (needs root or a delegated cgroup). Writes pipeline_bench.json and
# pipeline_bench.md into OUT_DIR (default ./bench-results) and prints, last, the worst budget's
# overlap efficiency of auto (target <= 1.10), auto / depth 0 (target <= 0.60) and auto / best
# fixed depth (target <= 1.05).
#
#   bench/pipeline_bench.sh [BUILD_DIR] [extra bench flags...]
#
# GEN (decode steps, default 16: auto measures the depths it weighs for a few steps each, and the
# median step should be the depth it settles on), REPEAT (runs per point, interleaved; default 3),
# BUDGETS and
# STORE (default dualblade-data/trace.store, created and written once on first use) may be set
# in the environment.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$root/build}"
shift || true
bin="$build/src/cli/dualblade"
[[ -x "$bin" ]] || { echo "no dualblade binary at $bin (build first)" >&2; exit 1; }
out="${OUT_DIR:-$root/bench-results}"
mkdir -p "$out"
cmd=("$bin" bench --trace --layers 16 --kv-heads 8 --head-dim 64 --ctx 16384
     --gen "${GEN:-16}" --budgets "${BUDGETS:-128M,256M,512M,768M,1G}"
     --pipeline-sweep --sweep-depths 1,2,4,8 --repeat "${REPEAT:-3}"
     --kv-store "${STORE:-dualblade-data/trace.store}"
     --json "$out/pipeline_bench.json" --md "$out/pipeline_bench.md" "$@")
echo "+ ${cmd[*]}"
cd "$root"
"${cmd[@]}"
