#!/usr/bin/env bash
# Installs the Debian packages tostore needs to build and test, if missing.
# Sourced by tools/demo.sh and tools/test.sh so that each is one command on
# a fresh machine.
set -euo pipefail
ts_pkgs=(cmake gcc g++ make pkg-config libjansson-dev libsodium-dev libssl-dev check)
ts_missing=()
for p in "${ts_pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || ts_missing+=("$p")
done
if [ ${#ts_missing[@]} -gt 0 ]; then
  ts_sudo=""
  [ "$(id -u)" -eq 0 ] || ts_sudo="sudo"
  echo "installing: ${ts_missing[*]}"
  $ts_sudo env DEBIAN_FRONTEND=noninteractive apt-get update
  $ts_sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${ts_missing[@]}"
fi
