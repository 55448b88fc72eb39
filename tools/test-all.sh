#!/usr/bin/env bash
# The whole test suite: installs missing packages, then
#   1. the Release build (with the CUDA backend where nvcc exists) and all its tests
#      (GPU tests report "skipped" without a GPU),
#   2. a CPU-only build with AddressSanitizer + UndefinedBehaviorSanitizer and all its tests,
#   3. a short libFuzzer run (clang) of the safetensors and IDX parsers.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
start=$SECONDS

BUILD_DIR=build bash tools/build.sh
(cd build && ctest --output-on-failure)

BUILD_DIR=build-asan BUILD_TYPE=RelWithDebInfo bash tools/build.sh -DDDPM_CUDA=OFF -DDDPM_SANITIZE=ON
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure)

export CC=clang CXX=clang++
BUILD_DIR=build-fuzz BUILD_TYPE=RelWithDebInfo bash tools/build.sh -DDDPM_CUDA=OFF -DDDPM_FUZZ=ON \
  --target fuzz_safetensors fuzz_idx
for f in fuzz_safetensors fuzz_idx; do
  echo "fuzzing $f for ${FUZZ_SECONDS:-20} s"
  mkdir -p "build-fuzz/corpus-$f"
  "build-fuzz/tests/$f" -max_total_time="${FUZZ_SECONDS:-20}" -print_final_stats=1 "build-fuzz/corpus-$f" \
    2>&1 | tail -n 3
done

echo "test-all: all passed in $((SECONDS - start)) s"
