#!/usr/bin/env bash
# Builds tostore (Release) with bench_commit in build-bench/ and runs it.
#   tools/bench/run.sh                 # default run (~3 min), 256 MB open test
#   BENCH_BIG=1 tools/bench/run.sh     # open test on a 1 GB database
#   BENCH_ROUNDS=7 BENCH_TIME=2 ...    # more / longer rounds
#   BENCH_ONLY=ab ...                  # a subset of workloads a-f
# Data goes to build-bench/benchdata (same disk as the repository) and is
# removed afterwards (BENCH_KEEP=1 keeps it).  Output is also saved to
# build-bench/bench_commit.txt.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="${BENCH_BUILD_DIR:-$root/build-bench}"
source "$root/tools/deps.sh"
missing=()
for p in libsqlite3-dev liblmdb-dev; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  sudo_=""; [ "$(id -u)" -eq 0 ] || sudo_="sudo"
  echo "installing: ${missing[*]}"
  $sudo_ env DEBIAN_FRONTEND=noninteractive apt-get update
  $sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DTS_BUILD_TESTS=OFF \
      -DCMAKE_PROJECT_tostore_INCLUDE="$root/tools/bench/standalone.cmake" >/dev/null
cmake --build "$build" -j"$(nproc)" --target bench_commit
"$build/bench_commit" "${BENCH_DIR:-$build/benchdata}" 2>&1 | tee "$build/bench_commit.txt"
