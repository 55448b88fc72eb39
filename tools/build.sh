#!/usr/bin/env bash
# Configures and builds ddpm into BUILD_DIR (default ./build), Release, CUDA where nvcc exists.
# Extra arguments go to cmake, e.g. tools/build.sh -DDDPM_CUDA=OFF.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${BUILD_DIR:-build}
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=${BUILD_TYPE:-Release} "$@" >"$dir.configure.log" 2>&1 || { cat "$dir.configure.log"; exit 1; }
cmake --build "$dir" -j"$(nproc)"
