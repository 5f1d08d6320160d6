#!/usr/bin/env bash
# Builds tostore (Release) with the benchmarks in build-bench/ and runs them.
#   tools/bench/run.sh                 # all: bench_commit (~3.5 min), bench_index (~2 min),
#                                      # then bench_tables (~2-3 min)
#   tools/bench/run.sh commit          # only bench_commit (issue 3: commit path)
#   tools/bench/run.sh index           # only bench_index (issue 4: btree/hash vs LMDB, SQLite)
#   tools/bench/run.sh tables          # only bench_tables (issue 5: ts_insert/ts_get/KV vs SQLite)
#   tools/bench/run.sh query           # only bench_query (issue 6: queries, cursors, joins, lookups
#                                      # vs SQLite; 200K rows, ~3-4 min; not part of "all")
#   tools/bench/run.sh vector          # only bench_vector (issue 7: ts_vector_search vs hnswlib and
#                                      # FAISS HNSW; synthetic 100K x 128-d, then fashion-mnist 60K x
#                                      # 784-d, 1000 queries; ~12 + ~15 min; not part of "all")
#   BENCH_VEC_DATA=fashion ... vector  # vector: one dataset only (synthetic or fashion)
#   TS_BENCH_FULL=1 ... vector         # vector: 1M synthetic vectors, 10K queries
#   tools/bench/run.sh migrate         # only bench_migrate (issue 8: add an indexed field online vs
#                                      # SQLite ALTER + CREATE INDEX, 200K rows, ~1 min; not in "all")
#   BENCH_BIG=1 tools/bench/run.sh migrate # migrate: 1M-row table
#   BENCH_BIG=1 tools/bench/run.sh query   # query: 1M-row tables
#   BENCH_HUGE=1 tools/bench/run.sh query  # query: lookup latency at 10M rows too (loads a 10M-row
#                                      # table in each engine: ~11 min in all, ~3.5 GB of disk)
#   BENCH_BIG=1 tools/bench/run.sh     # commit: open test on a 1 GB database;
#                                      # index: 10M keys (bulk loads, latency at 10M; ~4-9 min);
#                                      # tables: 1M-row insert in one transaction
#   BENCH_ROWS=500000 ... tables       # tables: another bulk-insert size (also BENCH_SINGLE)
#   BENCH_ROUNDS=7 BENCH_TIME=2 ...    # more / longer rounds
#   BENCH_ONLY=ab ...                  # a subset of workloads (commit: a-f; index: l g r s t i;
#                                      # tables: B G S K, upper case here (b g s k when running
#                                      # bench_tables itself); a tool none of whose letters are
#                                      # given is skipped)
# Data goes to build-bench/benchdata (same disk as the repository) and is
# removed afterwards (BENCH_KEEP=1 keeps it).  Output is also saved to
# build-bench/bench_commit.txt, bench_index.txt and bench_tables.txt (bench_query.txt,
# bench_vector.txt).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="${BENCH_BUILD_DIR:-$root/build-bench}"
what="${1:-all}"
case "$what" in
  all) targets=(bench_commit bench_index bench_tables) ;;
  commit) targets=(bench_commit) ;;
  index) targets=(bench_index) ;;
  tables) targets=(bench_tables) ;;
  query) targets=(bench_query) ;;
  vector) targets=(bench_vector) ;;
  migrate) targets=(bench_migrate) ;;
  *) echo "usage: $0 [all|commit|index|tables|query|vector|migrate]" >&2; exit 2 ;;
esac
source "$root/tools/deps.sh"
missing=()
pkgs=(libsqlite3-dev liblmdb-dev)
# bench_vector: the references (hnswlib, FAISS with BLAS/LAPACK/OpenMP), a C++
# compiler for their shims, the fashion-mnist data and zcat
[ "$what" = vector ] && pkgs=(g++ libhnswlib-dev libfaiss-dev libblas-dev liblapack-dev libgomp1
                             dataset-fashion-mnist gzip)
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
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
      bench_tables) only="$(tr -cd 'BGSK' <<<"$BENCH_ONLY" | tr 'BGSK' 'bgsk')" ;;
      bench_query) only="$(tr -cd 'erocnjl' <<<"$BENCH_ONLY")" ;;
    esac
    [ -n "$only" ] || continue
  fi
  if [ "$t" = bench_vector ]; then
    # one run per dataset (BENCH_VEC_DATA: just that one); output appended
    : >"$build/$t.txt"
    for d in ${BENCH_VEC_DATA:-synthetic fashion}; do
      "$build/$t" "${BENCH_DIR:-$build/benchdata}" --data "$d" 2>&1 | tee -a "$build/$t.txt"
    done
    continue
  fi
  BENCH_ONLY="$only" "$build/$t" "${BENCH_DIR:-$build/benchdata}" 2>&1 | tee "$build/$t.txt"
done
