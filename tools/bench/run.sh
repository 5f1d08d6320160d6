#!/usr/bin/env bash
# Builds tostore (Release) with the benchmarks in build-bench/ and runs them.
#   tools/bench/run.sh                 # both: bench_commit (~3.5 min), then bench_index (~2 min)
#   tools/bench/run.sh commit          # only bench_commit (issue 3: commit path)
#   tools/bench/run.sh index           # only bench_index (issue 4: btree/hash vs LMDB, SQLite)
#   BENCH_BIG=1 tools/bench/run.sh     # commit: open test on a 1 GB database;
#                                      # index: 10M keys (bulk loads, latency at 10M; ~4-9 min)
#   BENCH_ROUNDS=7 BENCH_TIME=2 ...    # more / longer rounds
#   BENCH_ONLY=ab ...                  # a subset of workloads (commit: a-f; index: l g r s t i;
#                                      # a tool none of whose letters are given is skipped)
# Data goes to build-bench/benchdata (same disk as the repository) and is
# removed afterwards (BENCH_KEEP=1 keeps it).  Output is also saved to
# build-bench/bench_commit.txt and build-bench/bench_index.txt.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="${BENCH_BUILD_DIR:-$root/build-bench}"
what="${1:-all}"
case "$what" in
  all) targets=(bench_commit bench_index) ;;
  commit) targets=(bench_commit) ;;
  index) targets=(bench_index) ;;
  *) echo "usage: $0 [all|commit|index]" >&2; exit 2 ;;
esac
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
cmake --build "$build" -j"$(nproc)" --target "${targets[@]}"
for t in "${targets[@]}"; do
  # BENCH_ONLY: each tool gets its own letters (commit a-f, index lgrsti);
  # a tool with none of its letters in BENCH_ONLY is skipped.
  only=""
  if [ -n "${BENCH_ONLY:-}" ]; then
    case "$t" in
      bench_commit) only="$(tr -cd 'abcdef' <<<"$BENCH_ONLY")" ;;
      bench_index) only="$(tr -cd 'lgrsti' <<<"$BENCH_ONLY")" ;;
    esac
    [ -n "$only" ] || continue
  fi
  BENCH_ONLY="$only" "$build/$t" "${BENCH_DIR:-$build/benchdata}" 2>&1 | tee "$build/$t.txt"
done
