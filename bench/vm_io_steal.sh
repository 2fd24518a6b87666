#!/usr/bin/env bash
# Does reading the disk cost this machine's CPUs? On a virtual machine the host emulates the disk
# (virtio), and the host threads doing it may run on the physical cores behind the guest's vCPUs.
# The guest sees that as steal time, and only while its vCPUs want to run, which is when a
# pipeline overlaps compute with reads. This prints, for three phases of SECONDS each (default 5):
#
#   busy       one busy loop per CPU, no I/O:            steal share of the CPU time
#   fio        fio's O_DIRECT reads of FILE, CPUs idle:  steal share, fio's bandwidth
#   busy+fio   both at once:                             steal share, fio's bandwidth
#
# On bare metal, or a host with cores to spare, steal stays near 0 in every phase and fio's
# bandwidth is the same with and without the busy loops. fio opens FILE read-only (--readonly):
# nothing is written.
#
#   bench/vm_io_steal.sh FILE [SECONDS]
#
# FILE: a file or block device of at least 1 GiB with data on it (a KV store file such as
# dualblade-data/trace.store after a trace run; never-written preallocated blocks read back as
# zeros without reaching the device). Needs fio, awk and nproc.
set -euo pipefail

if [[ $# -lt 1 || $1 == -h || $1 == --help ]]; then
  sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
  exit $(( $# < 1 ? 2 : 0 ))
fi
file=$1
secs=${2:-5}
[[ -r $file ]] || { echo "vm_io_steal: cannot read $file" >&2; exit 1; }
[[ $secs =~ ^[1-9][0-9]*$ ]] || { echo "vm_io_steal: SECONDS must be a whole number above 0" >&2; exit 1; }
command -v fio >/dev/null || { echo "vm_io_steal: fio is not installed" >&2; exit 1; }

cpu_line() { head -1 /proc/stat; }
# steal / total between two "cpu" lines of /proc/stat.
steal_share() {
  awk -v a="$1" -v b="$2" 'BEGIN {
    split(a, x); split(b, y); t = 0
    for (i = 2; i <= 9; i++) t += y[i] - x[i]
    printf "%.2f", (t > 0 ? (y[9] - x[9]) / t : 0) }'
}

busy_pids=()
start_busy() {
  local n
  n=$(nproc)
  for ((i = 0; i < n; i++)); do
    bash -c 'while :; do :; done' &
    busy_pids+=($!)
  done
}
stop_busy() {
  if ((${#busy_pids[@]} > 0)); then
    kill "${busy_pids[@]}" 2>/dev/null || true
    wait "${busy_pids[@]}" 2>/dev/null || true
  fi
  busy_pids=()
}
trap stop_busy EXIT

# fio's read bandwidth in MB/s (terse output, field 7: KiB/s).
run_fio() {
  fio --name=steal --filename="$file" --readonly --rw=randread --bs=1M --direct=1 \
      --ioengine=io_uring --iodepth=8 --runtime="$secs" --time_based --output-format=terse |
    awk -F';' '{ printf "%.0f", $7 * 1024 / 1e6 }'
}

printf '%-9s %6s %10s\n' phase steal "fio MB/s"
a=$(cpu_line); start_busy; sleep "$secs"; stop_busy; b=$(cpu_line)
printf '%-9s %6s %10s\n' busy "$(steal_share "$a" "$b")" -
a=$(cpu_line); bw=$(run_fio); b=$(cpu_line)
printf '%-9s %6s %10s\n' fio "$(steal_share "$a" "$b")" "$bw"
a=$(cpu_line); start_busy; bw=$(run_fio); stop_busy; b=$(cpu_line)
printf '%-9s %6s %10s\n' busy+fio "$(steal_share "$a" "$b")" "$bw"
