#!/usr/bin/env bash
# tools/gpu-bundle.sh: prepares what a lent GPU session carries (docs/gpu.md, "A GPU session").
# Builds Release for sm_90a only (H100/H200) into BUILD_DIR (default build-sm90), and packs into
# gpu-bundle/ (git-ignored): the binaries, stripped of host debug info and xz-compressed (the
# device tool carries at most 64 MiB, and eight statically linked binaries are ~150 MB raw), the
# Fashion-MNIST files for the real run and `ddpm eval`, and the commit they were built from.
# Then carry `gpu-bundle` and run tools/gpu-session.sh there. DATA=0 leaves the data out (30 MiB:
# only the stages check, run and all read it).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${BUILD_DIR:-build-sm90}
# compile_commands.json: tools/gpu-variants.sh rebuilds single objects from it.
BUILD_DIR=$dir bash tools/build.sh -DCMAKE_CUDA_ARCHITECTURES=90a -DCMAKE_EXPORT_COMPILE_COMMANDS=ON
# BINS (space-separated) packs fewer, when the repository and the data leave too little room: a
# call that skips the CPU tests (CPU_TESTS=0) needs neither test_engine nor test_model.
all="tests/test_gpu tests/test_engine tests/test_model tools/ddpm"
all+=" benchmarks/bench_kernels benchmarks/bench_conv benchmarks/bench_train benchmarks/bench_sample"
read -ra bins <<<"${BINS:-$all}"
rm -rf gpu-bundle
mkdir -p gpu-bundle/stage gpu-bundle/fashion-mnist
for b in "${bins[@]}"; do
  mkdir -p "gpu-bundle/stage/$(dirname "$b")"
  strip --strip-debug -o "gpu-bundle/stage/$b" "$dir/$b"
done
tar -C gpu-bundle/stage -cJf gpu-bundle/bin.tar.xz "${bins[@]}"
rm -rf gpu-bundle/stage
[ "${DATA:-1}" = 0 ] || cp /usr/share/datasets/fashion-mnist/*.gz gpu-bundle/fashion-mnist/
git describe --always --dirty >gpu-bundle/COMMIT  # "-dirty": built from uncommitted changes
du -sh gpu-bundle
size=$(du -sm gpu-bundle | cut -f1)
[ "$size" -lt 64 ] || { echo "gpu-bundle: ${size} MiB, over the device tool's 64 MiB" >&2; exit 1; }
# The tool carries the working tree's files too: tracked and untracked alike, unless ignored (a
# tracked file deleted here travels not, and du would fail on it).
total=$(( size + $(git ls-files -z --cached --others --exclude-standard |
  while IFS= read -r -d '' f; do [ ! -e "$f" ] || printf '%s\0' "$f"; done | du -cm --files0-from=- | tail -1 | cut -f1) ))
[ "$total" -lt 64 ] || { echo "gpu-bundle: ${total} MiB with the repository, over the device tool's 64 MiB (set BINS)" >&2; exit 1; }
