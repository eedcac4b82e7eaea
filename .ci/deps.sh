#!/usr/bin/env bash
# Install what moep builds and tests with (Debian 12). Idempotent: returns at
# once when everything is already there.
set -euo pipefail
pkgs=(bazel-bootstrap bazel-rules-java gcc g++ check libsubunit-dev
      libucx-dev ucx-utils libfabric-dev libfabric-bin
      libopenblas-dev libopenmpi-dev openmpi-bin valgrind)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q || echo "apt-get update failed; trying the cached package lists" >&2
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
