#!/usr/bin/env bash
# The KV-trace benchmark on the target shape of the dual-path work: 16 layers, 8 KV heads of 64,
# f16, 16K tokens = 512 MiB of KV, against budgets from 128 MiB to 1 GiB, for the dual,
# pagecache and direct policies. Every point runs in its own memory cgroup (needs root or a
# delegated cgroup). Writes trace_bench.json and trace_bench.md into OUT_DIR (default
# ./bench-results) and prints the ratios last.
#
#   bench/trace_bench.sh [BUILD_DIR] [extra bench flags...]
#
# GEN (decode steps, default 16), COMPUTE_US (busy compute per layer, default 0), PREFETCH
# (layers read ahead, default 2: every policy runs with the pipeline, as inference does; 0 reads
# each layer only once the previous one is done, the no-overlap baseline of the pipeline sweep)
# and REPEAT (runs per point, policies interleaved, the median run reported; default 3, since
# step times on a shared machine spread by 10-20% between runs) may be set in the environment.
# The store is dualblade-data/trace.store (created and written once on first use; 1 GiB).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$root/build}"
shift || true
bin="$build/src/cli/dualblade"
[[ -x "$bin" ]] || { echo "no dualblade binary at $bin (build first)" >&2; exit 1; }
out="${OUT_DIR:-$root/bench-results}"
mkdir -p "$out"
cmd=("$bin" bench --trace --layers 16 --kv-heads 8 --head-dim 64 --ctx 16384
     --gen "${GEN:-16}" --compute-us-per-layer "${COMPUTE_US:-0}"
     --prefetch-depth "${PREFETCH:-2}" --repeat "${REPEAT:-3}"
     --budgets 128M,256M,512M,768M,1G --policies dual,pagecache,direct
     --json "$out/trace_bench.json" --md "$out/trace_bench.md" "$@")
echo "+ ${cmd[*]}"
cd "$root"
"${cmd[@]}"
