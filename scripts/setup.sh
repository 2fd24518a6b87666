#!/usr/bin/env bash
# Installs what dualblade needs on Debian 12 (only what is missing), then configures and builds
# it in ./build (Release, -j2). Safe to run again: a second run only rebuilds what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  build-essential cmake pkg-config git
  liburing-dev        # io_uring
  libblkid-dev        # recognise filesystems, partition tables, RAID/LVM/LUKS, swap before format
  libxxhash-dev       # checksums
  libcli11-dev        # command line
  nlohmann-json3-dev  # JSON output
  libgtest-dev libgmock-dev libbenchmark-dev
  libopenblas-dev     # GEMM for prefill
  libpcre2-dev        # Unicode-aware pre-tokenizer patterns
  fio                 # the benchmark yardstick
  util-linux e2fsprogs fdisk  # losetup, mkfs.ext4, sfdisk for the integration tests
  python3
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing Debian packages: ${missing[*]} (run as root, or install them)" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

BUILD_DIR=${DUALBLADE_BUILD_DIR:-build}
JOBS=${DUALBLADE_JOBS:-2}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD_DIR" -j"$JOBS"
