#!/usr/bin/env bash
# benchmarks/compare.sh OUT_DIR: our training and sampling speed against PyTorch's, on the same
# card in the same run (docs/performance.md). Run from the repository root on the GPU machine with
# a build made on the development machine (docs/gpu.md):
#   1. bench_train and bench_sample in nine configurations: f32 (exact), tf32 (TF32 tensor cores,
#      cuDNN convolutions), tf32-ours (TF32, our convolution kernels), tf32-measured (per shape the
#      backend measured faster, a fixed rule), tf32-auto (per shape the faster, timed), and the
#      same four for bf16 mixed precision (bf16 activations, cuBLAS bf16 GEMMs; bf16 = cuDNN's bf16
#      convolutions, bf16-ours, bf16-measured, bf16-auto);
#   2. benchmarks/torch_twin.py: PyTorch eager fp32, eager bf16 autocast, bf16 + torch.compile;
#   3. on the GPU, the attention alone: bench_kernels --filter attention against
#      benchmarks/torch_attention.py (PyTorch's scaled_dot_product_attention, fp32 and bf16) at the
#      model's attention shapes (benchmarks/report.py attention: OUT_DIR/attention.md);
#   4. benchmarks/report.py e2e OUT_DIR: the side-by-side table and the ratios, printed last and
#      written to OUT_DIR/compare.md.
# Each step's output is shown and saved in OUT_DIR (<bench>-<config>.txt, torch_twin.txt, ...). A
# step that fails (or writes no JSON) is counted and the run goes on: the tables show what did
# succeed, the failed steps are listed after them (also in compare.md), and the exit status is 1.
# Before anything runs, a DEVICE other than cuda or cpu, a CONFIGS name that is not a configuration,
# a BUILD without the benchmarks or an OUT_DIR that cannot be made stop it with exit status 2.
# Environment: BUILD (default build), COMMIT (default git rev-parse --short HEAD), SETUPS (default
# 64x3x64,32x1x128), STEPS (default 20), MODES (PyTorch's, default fp32,bf16,compile; compile
# spends about 75 s per setup compiling), BASE (U-Net width, default 64 = the seed), DEVICE
# (default cuda; cpu runs only the f32 configuration, e.g. DEVICE=cpu BASE=16 SETUPS=32x1x16
# MODES=fp32,bf16 for a comparison on the development machine), ATTENTION (default 1; 0 skips step
# 3, e.g. for a torch.compile comparison that must fit one call: SETUPS=64x3x64 CONFIGS=bf16
# MODES=compile ATTENTION=0, then the same with SETUPS=32x1x128).
set -uo pipefail
if [ $# -ne 1 ]; then
  echo "usage: [BUILD=build] [MODES=fp32,bf16,compile] [CONFIGS='f32 tf32 ...'] benchmarks/compare.sh OUT_DIR" >&2
  exit 2
fi
die() {
  echo "compare: $*" >&2
  exit 2
}
OUT=$1
BUILD=${BUILD:-build}
COMMIT=${COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
SETUPS=${SETUPS:-64x3x64,32x1x128}
STEPS=${STEPS:-20}
MODES=${MODES:-fp32,bf16,compile}
BASE=${BASE:-64}
DEVICE=${DEVICE:-cuda}
ATTENTION=${ATTENTION:-1}
[ "$DEVICE" = cuda ] || [ "$DEVICE" = cpu ] || die "DEVICE is '$DEVICE', not cuda or cpu"
configs=("f32|" "tf32|--tf32" "tf32-ours|--tf32 --conv ours" "tf32-measured|--tf32 --conv measured"
  "tf32-auto|--tf32 --conv auto" "bf16|--precision bf16" "bf16-ours|--precision bf16 --conv ours"
  "bf16-measured|--precision bf16 --conv measured" "bf16-auto|--precision bf16 --conv auto")
[ "$DEVICE" = cpu ] && configs=("f32|")
# CONFIGS="tf32 bf16 ..." runs only the configurations named (default: all); a name that is not one
# of them (a typo, or a GPU configuration on the CPU) stops the run before anything runs.
if [ -n "${CONFIGS:-}" ]; then
  valid="${configs[*]%%|*}"
  read -r -a wanted <<<"$CONFIGS"
  for name in "${wanted[@]}"; do
    [[ " $valid " == *" $name "* ]] || die "CONFIGS: no configuration '$name' on $DEVICE (valid: $valid)"
  done
  chosen=()
  for cfg in "${configs[@]}"; do [[ " ${wanted[*]} " == *" ${cfg%%|*} "* ]] && chosen+=("$cfg"); done
  [ ${#chosen[@]} -gt 0 ] || die "CONFIGS='$CONFIGS' selects nothing (valid: $valid)"
  configs=("${chosen[@]}")
fi
bins=(bench_train bench_sample)
[ "$DEVICE" = cuda ] && [ "$ATTENTION" != 0 ] && bins+=(bench_kernels)
for bin in "${bins[@]}"; do
  [ -x "$BUILD/benchmarks/$bin" ] || die "no $BUILD/benchmarks/$bin (BUILD is the build folder, docs/gpu.md)"
done
mkdir -p "$OUT" || die "cannot create $OUT"
# For our binaries only: with it, a pyenv Python can pick up the system libpython and lose its packages.
LIBS=/usr/local/cuda-13.0/targets/x86_64-linux/lib:/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

failed=()
fail() {
  echo "compare: $1"
  failed+=("$1")
}
# step JSON CMD...: CMD, its output shown and saved beside JSON as .txt (written as it comes: a step
# stopped at its limit still leaves it). It failed if it exited non-zero or wrote no JSON: without a
# GPU, bench_train and bench_sample say so and exit 0 with nothing timed.
step() {
  local json=$1 label rc=0
  label=$(basename "$json" .json)
  shift
  rm -f "$json"  # a file from an earlier run into OUT must not pass for this one's
  "$@" 2>&1 | tee "${json%.json}.txt" || rc=$?
  if [ $rc -ne 0 ]; then
    fail "$label: exit status $rc$([ $rc -eq 124 ] && echo ', timed out')"
  elif [ ! -s "$json" ]; then
    fail "$label: no JSON written (see $label.txt)"
  fi
}

for cfg in "${configs[@]}"; do
  name=${cfg%%|*}
  read -r -a flags <<<"${cfg#*|}"
  for bench in bench_train bench_sample; do
    echo "== $bench $name"
    step "$OUT/$bench-$name.json" env LD_LIBRARY_PATH="$LIBS" timeout 180 "$BUILD/benchmarks/$bench" --device "$DEVICE" \
      --base "$BASE" --setups "$SETUPS" --steps "$STEPS" "${flags[@]}" --commit "$COMMIT" --json "$OUT/$bench-$name.json"
  done
done
echo "== torch_twin ($MODES)"
step "$OUT/torch_twin.json" timeout 480 python3 -u benchmarks/torch_twin.py --device "$DEVICE" --base "$BASE" \
  --setups "$SETUPS" --modes "$MODES" --steps "$STEPS" --json "$OUT/torch_twin.json"
if [ "$DEVICE" = cuda ] && [ "$ATTENTION" != 0 ]; then
  echo "== attention: ours (bench_kernels) and PyTorch's SDPA"
  step "$OUT/bench_attention.json" env LD_LIBRARY_PATH="$LIBS" timeout 120 "$BUILD/benchmarks/bench_kernels" \
    --filter attention --commit "$COMMIT" --json "$OUT/bench_attention.json"
  step "$OUT/torch_attention.json" timeout 180 python3 -u benchmarks/torch_attention.py --setups "$SETUPS" \
    --json "$OUT/torch_attention.json"
  if [ -s "$OUT/bench_attention.json" ] && [ -s "$OUT/torch_attention.json" ]; then
    python3 benchmarks/report.py attention "$OUT/bench_attention.json" "$OUT/torch_attention.json" 2>&1 |
      tee "$OUT/attention.md" || fail "report.py attention: exit status $?"
  fi
fi
# The table from whatever succeeded, then the failed steps, also at the end of compare.md.
python3 benchmarks/report.py e2e "$OUT" 2>&1 | tee "$OUT/compare.md" || fail "report.py e2e: exit status $?"
if [ ${#failed[@]} -gt 0 ]; then
  { echo; echo "compare: ${#failed[@]} step(s) failed:"; printf -- '- %s\n' "${failed[@]}"; } | tee -a "$OUT/compare.md"
  exit 1
fi
