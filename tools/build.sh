#!/usr/bin/env bash
# Configures and builds ddpm into BUILD_DIR (default ./build), Release, CUDA where nvcc exists.
# Extra arguments go to cmake, e.g. tools/build.sh -DDDPM_CUDA=OFF.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${BUILD_DIR:-build}
# Arguments from --target on go to the build step (e.g. --target ddpm), the rest to cmake.
cfg=() bld=()
while (($#)); do
  if [ "$1" = --target ]; then shift; bld=(--target "$@"); break; fi
  cfg+=("$1"); shift
done
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=${BUILD_TYPE:-Release} "${cfg[@]}" >"$dir.configure.log" 2>&1 || { cat "$dir.configure.log"; exit 1; }
cmake --build "$dir" -j"$(nproc)" "${bld[@]}"
