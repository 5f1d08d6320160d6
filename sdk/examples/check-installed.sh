#!/usr/bin/env bash
# check-installed.sh <prefix> - checks an installed tostore the way a third
# party uses it:
#   1. builds this folder (the countfs and chainhash plugins and
#      example_host) out of tree with find_package(tostore) from <prefix>,
#      with strict warnings;
#   2. checks that countfs.so and chainhash.so export the entry symbol and
#      nothing else;
#   3. compiles and runs a one-line program with `pkg-config tostore`;
#   4. runs example_host, which fails unless countfs loaded and counted I/O;
#   5. runs <prefix>/bin/tostore plugins with a config loading countfs, and
#      one loading chainhash, and checks that the listings name them.
# Exits non-zero on the first failure.
set -euo pipefail

if [ $# -ne 1 ] || [ ! -d "$1" ]; then
  echo "usage: $0 <install prefix>" >&2
  exit 2
fi
prefix="$(cd "$1" && pwd)"
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
fail() { echo "check-installed: FAIL: $*" >&2; exit 1; }

# lib, lib64 or lib/<multiarch>, whichever GNUInstallDirs chose.
lib="$(find "$prefix" -name 'libtostore.so*' -print -quit)"
[ -n "$lib" ] || fail "no libtostore.so under $prefix"
libdir="$(dirname "$lib")"
[ -f "$libdir/pkgconfig/tostore.pc" ] || fail "no $libdir/pkgconfig/tostore.pc"
export LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

echo "== build the example against $prefix =="
cmake -S "$here" -B "$work/build" -DCMAKE_PREFIX_PATH="$prefix" \
      -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DCMAKE_C_FLAGS="-Wall -Wextra -Wpedantic -Wstrict-prototypes -Wmissing-prototypes -Werror" \
      >"$work/configure.log" 2>&1 || { cat "$work/configure.log" >&2; fail "cmake configure"; }
cmake --build "$work/build" >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; fail "build"; }
for p in countfs chainhash; do
  so="$work/build/$p.so"
  [ -f "$so" ] || fail "$p.so was not built as $so"
  echo "== exported symbols of $p.so =="
  if command -v nm >/dev/null; then
    syms="$(nm -D --defined-only "$so" | awk '$2 ~ /^[TDBRVW]$/ {print $3}' | sort -u)"
    echo "$syms"
    [ "$syms" = "tostore_plugin" ] || fail "$p.so must export only tostore_plugin"
  else
    echo "(nm not found: skipped)"
  fi
done

echo "== pkg-config =="
export PKG_CONFIG_PATH="$libdir/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
flags="$(pkg-config --cflags --libs tostore)" || fail "pkg-config --cflags --libs tostore"
echo "pkg-config --cflags --libs tostore: $flags"
printf '#include <tostore/tostore.h>\n#include <stdio.h>\nint main(void) { return puts(ts_version()) < 0; }\n' \
  >"$work/pc.c"
# shellcheck disable=SC2086 # flags are words
cc -std=c11 -Wall -Werror "$work/pc.c" -o "$work/pc" $flags || fail "compile with pkg-config flags"
"$work/pc" || fail "program built with pkg-config flags did not run"
# A plugin takes only the headers: --cflags, never -ltostore.
# shellcheck disable=SC2046
cc -std=c11 -Wall -Werror -shared -fPIC -fvisibility=hidden -Wl,--no-undefined \
   $(pkg-config --cflags tostore) "$here/countfs.c" -o "$work/countfs-pc.so" \
  || fail "build countfs.so with pkg-config --cflags"
if command -v nm >/dev/null; then
  [ "$(nm -D --defined-only "$work/countfs-pc.so" | awk '$2 ~ /^[TDBRVW]$/ {print $3}')" \
    = "tostore_plugin" ] || fail "countfs-pc.so must export only tostore_plugin"
fi

echo "== example_host =="
cd "$work/build"
rm -rf countfs_data
./example_host countfs.json | tee "$work/host.out" || fail "example_host"
grep -Eq '^storage +countfs ' "$work/host.out" || fail "example_host did not list countfs"

echo "== $prefix/bin/tostore plugins =="
"$prefix/bin/tostore" plugins --config countfs.json | tee "$work/cli.out" \
  || fail "tostore plugins --config countfs.json"
grep -Eq "^storage +countfs .*countfs\.so\$" "$work/cli.out" \
  || fail "tostore plugins did not list countfs"
rm -rf chainhash_data
"$prefix/bin/tostore" plugins --config chainhash.json | tee "$work/cli2.out" \
  || fail "tostore plugins --config chainhash.json"
grep -Eq "^index +chainhash .*chainhash\.so\$" "$work/cli2.out" \
  || fail "tostore plugins did not list chainhash"

echo "check-installed: OK"
