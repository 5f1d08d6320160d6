#!/usr/bin/env bash
# Builds and runs every test: a -Werror build, an ASan+UBSan build, then an
# install to a temporary prefix with the SDK example plugin built out of tree
# against it and loaded.  TS_TEST_LONG=1 enables the long modes of the suites.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
source "$root/tools/deps.sh"
jobs="$(nproc)"

echo "== plain build (-Werror) =="
cmake -S "$root" -B "$root/build-ci" -DTS_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$root/build-ci" -j"$jobs"
(cd "$root/build-ci" && ctest --output-on-failure -j"$jobs")

echo "== ASan + UBSan build =="
cmake -S "$root" -B "$root/build-asan" -DTS_WERROR=ON -DCMAKE_BUILD_TYPE=Debug \
      -DTS_SANITIZE=address,undefined >/dev/null
cmake --build "$root/build-asan" -j"$jobs"
(cd "$root/build-asan" && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j"$jobs")

echo "== ThreadSanitizer (tests labelled tsan) =="
cmake -S "$root" -B "$root/build-tsan" -DTS_WERROR=ON -DCMAKE_BUILD_TYPE=Debug \
      -DTS_SANITIZE=thread >/dev/null
cmake --build "$root/build-tsan" -j"$jobs" --target test_concurrency test_tables_concurrency test_vector_concurrency test_ngh
(cd "$root/build-tsan" && ctest -L tsan --output-on-failure)

echo "== install + out-of-tree SDK example =="
prefix="$(mktemp -d)"
trap 'rm -rf "$prefix"' EXIT
cmake --install "$root/build-ci" --prefix "$prefix" >/dev/null
"$root/sdk/examples/check-installed.sh" "$prefix"
echo "all tests passed"
