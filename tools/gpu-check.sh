#!/usr/bin/env bash
# gpu-check.sh OUT_DIR: everything to run on the GPU machine, in one go (docs/gpu.md).
#
# Run from the repository root, with a build folder made on the development machine
# (default ./build; BUILD=path to change). Steps, each under `timeout`, all within a 290 s budget:
#   1. nvidia-smi -L
#   2. build/tests/test_gpu            (Catch2 JUnit -> OUT_DIR/test_gpu.xml)
#   3. ddpm check-reference --device cuda, in f32 and bf16, for each tests/data/*.safetensors (if built)
#   4. bench_kernels --json OUT_DIR/bench_kernels.json   (table in OUT_DIR/bench_kernels.txt); later,
#      if time is left, the same on bf16 data (bench_kernels_bf16.*)
#   5. bench_train and bench_sample at the seed size with TF32 (fails if a timed training step
#      called cudaMalloc: the caching allocator must serve the steady state)
#   6. the CPU test binaries (test_engine, test_model), if time is left
#   7. with SANITIZE=1: compute-sanitizer memcheck and racecheck on test_gpu, filtered by
#      SANITIZE_FILTER (a Catch2 test spec, default "[gpu]"; slow: narrow it)
# A short summary, written to OUT_DIR/summary.txt step by step (so a run cut short leaves what it
# did) and printed last. Exit status 1 if any test, reference check or sanitizer run failed (or
# test_gpu found no GPU), else 0; a benchmark that stops early, or a step skipped because the
# budget ran out, is reported in the summary but does not change the status.
# Environment: BUILD, SANITIZE, SANITIZE_FILTER, BENCH (0 skips the kernel micro-benchmarks:
# bench_kernels and bench_conv), CPU_TESTS (0 skips step 6), COMMIT (default: git rev-parse --short HEAD),
# BUDGET (seconds for all steps, default 290). bench_conv (ours vs cuDNN) runs after bench_kernels.
set -uo pipefail

if [ $# -ne 1 ]; then
  echo "usage: [BUILD=build] [SANITIZE=1] tools/gpu-check.sh OUT_DIR" >&2
  exit 2
fi
OUT=$1
BUILD=${BUILD:-build}
SANITIZE=${SANITIZE:-0}
BENCH=${BENCH:-1}
CPU_TESTS=${CPU_TESTS:-1}
SANITIZE_FILTER=${SANITIZE_FILTER:-[gpu]}
COMMIT=${COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
export LD_LIBRARY_PATH=/usr/local/cuda-13.0/targets/x86_64-linux/lib:/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
mkdir -p "$OUT"
if [ ! -x "$BUILD/tests/test_gpu" ]; then
  echo "gpu-check: $BUILD/tests/test_gpu not found; build first (docs/gpu.md) or set BUILD=" >&2
  exit 2
fi

DEADLINE=$((SECONDS + ${BUDGET:-290}))
FAILED=0

# limit STEP_MAX: seconds this step may use, capped by what is left of the budget.
limit() {
  local left=$((DEADLINE - SECONDS - 5))
  echo $((left < $1 ? left : $1))
}
# time_for STEP STEP_MAX: sets t to the step's limit; false, with a note, when 5 s or less are left
# (`timeout 0` would mean no limit at all).
time_for() {
  t=$(limit "$2")
  [ "$t" -gt 5 ] || { note "$1" "skipped: no time left"; return 1; }
}
# One summary line a step, appended as it happens.
note() { printf '%-16s %s\n' "$1" "$2" >>"$OUT/summary.txt"; }
fail() {
  note "$1" "FAIL: $2"
  FAILED=1
}
# timed_out STATUS JUNIT: whether a Catch2 run was stopped by its `timeout`. Catch2's own exit
# status is its number of failed assertions, 124 included; stopped, it leaves no JUnit (SIGKILL) or
# one that reports the SIGTERM as the running test's failure.
timed_out() {
  { [ "$1" -eq 124 ] || [ "$1" -eq 137 ]; } && { [ ! -s "$2" ] || grep -q 'SIGTERM - Termination request signal' "$2"; }
}

# junit_result FILE: "P passed, F failed of N test cases" (+ the failures' first lines) from Catch2 JUnit.
junit_result() { python3 benchmarks/report.py junit "$1"; }

# run_catch NAME BINARY MAX_SECONDS [SPEC]: a Catch2 binary with the JUnit reporter (-w NoTests:
# a spec that matches nothing fails).
run_catch() {
  local name=$1 bin=$2 max=$3 spec=${4:-}
  local t rc
  time_for "$name" "$max" || return
  echo "== $name (limit ${t}s)"
  timeout -k 5 "$t" "$bin" ${spec:+"$spec"} -w NoTests -r junit -o "$OUT/$name.xml" >"$OUT/$name.log" 2>&1
  rc=$?
  # test_gpu's banner (tests/gpu_main.cpp); its exit 4 alone could be 4 failed checks.
  if grep -q 'test_gpu SKIPPED' "$OUT/$name.log"; then fail "$name" "no GPU seen: $(grep -m1 'SKIPPED' "$OUT/$name.log")"; return; fi
  if timed_out $rc "$OUT/$name.xml"; then fail "$name" "timed out after ${t}s"; return; fi
  local res jr
  res=$(junit_result "$OUT/$name.xml")
  jr=$?
  if [ $rc -ne 0 ] || [ $jr -ne 0 ]; then
    fail "$name" "exit $rc; $res"
    # A crash leaves no JUnit file: rerun with the console reporter to see where it stopped.
    if [ ! -s "$OUT/$name.xml" ]; then
      t=$(limit 60)
      if [ "$t" -gt 5 ]; then
        timeout -k 5 "$t" "$bin" ${spec:+"$spec"} -w NoTests >"$OUT/$name.console.log" 2>&1
        note "" "  console rerun: $OUT/$name.console.log"
      fi
    fi
  else
    note "$name" "PASS: $res"
  fi
}

echo "gpu-check: build $BUILD, commit $COMMIT, output $OUT"
timeout 20 nvidia-smi -L | tee "$OUT/nvidia-smi.txt"
DEVICE=$(head -n 1 "$OUT/nvidia-smi.txt" 2>/dev/null | sed 's/ (UUID.*//')
[ -n "$DEVICE" ] || DEVICE="(nvidia-smi gave nothing)"
{
  echo
  echo "================ gpu-check summary ================"
  echo "device: $DEVICE"
  echo "commit: $COMMIT   output: $OUT"
} >"$OUT/summary.txt"

run_catch test_gpu "$BUILD/tests/test_gpu" 150

# Reference checks: the model's float64 PyTorch runs replayed on the GPU, in f32 and in bf16
# mixed precision (bf16's tolerances, model/reference.hpp).
if [ -x "$BUILD/tools/ddpm" ]; then
  shopt -s nullglob
  refs=(tests/data/*.safetensors)
  for prec in f32 bf16; do
    passed=0
    bad=()
    late=()  # skipped for lack of time: not a failure
    for f in "${refs[@]}"; do
      t=$(limit 30)
      if [ "$t" -le 5 ]; then late+=("$(basename "$f")"); continue; fi
      echo "== check-reference $f --precision $prec"
      if timeout -k 5 "$t" "$BUILD/tools/ddpm" check-reference "$f" --device cuda --precision "$prec" \
        >>"$OUT/check-reference.log" 2>&1; then
        passed=$((passed + 1))
      else
        bad+=("$(basename "$f")")
      fi
    done
    skipped=${late[*]:+; skipped, no time left: ${late[*]}}
    if [ ${#refs[@]} -eq 0 ]; then note "check-reference $prec" "skipped: no tests/data/*.safetensors"
    elif [ ${#bad[@]} -gt 0 ]; then
      fail "check-reference $prec" "$passed/${#refs[@]} passed; failed: ${bad[*]} (see check-reference.log)$skipped"
    elif [ ${#late[@]} -gt 0 ]; then note "check-reference $prec" "$passed/${#refs[@]} passed$skipped"
    else note "check-reference $prec" "PASS: $passed/${#refs[@]} files"; fi
  done
else
  note check-reference "skipped: no $BUILD/tools/ddpm"
fi

if [ "$BENCH" != 1 ]; then
  note bench_kernels "skipped: BENCH=$BENCH"
elif [ ! -x "$BUILD/benchmarks/bench_kernels" ]; then
  note bench_kernels "skipped: no $BUILD/benchmarks/bench_kernels"
elif time_for bench_kernels 120; then
  echo "== bench_kernels (limit ${t}s)"
  if timeout -k 5 "$t" "$BUILD/benchmarks/bench_kernels" --json "$OUT/bench_kernels.json" --commit "$COMMIT" \
    >"$OUT/bench_kernels.txt" 2>&1; then
    if [ -s "$OUT/bench_kernels.json" ]; then note bench_kernels "ok: table in bench_kernels.txt, records in bench_kernels.json"
    else note bench_kernels "no timings: $(head -n 1 "$OUT/bench_kernels.txt")"; fi
  else
    note bench_kernels "PROBLEM: exit $? (see bench_kernels.txt; after a timeout the table and JSON hold what was measured)"
  fi
fi

if [ "$BENCH" = 1 ] && [ -x "$BUILD/benchmarks/bench_conv" ] && time_for bench_conv 75; then
  echo "== bench_conv (limit ${t}s)"
  if timeout -k 5 "$t" "$BUILD/benchmarks/bench_conv" --json "$OUT/bench_conv.json" --commit "$COMMIT" \
    >"$OUT/bench_conv.txt" 2>&1; then
    if [ -s "$OUT/bench_conv.json" ]; then note bench_conv "ok: ours vs cuDNN in bench_conv.txt / .json"
    else note bench_conv "no timings: $(head -n 1 "$OUT/bench_conv.txt")"; fi
  else note bench_conv "PROBLEM: exit $? (see bench_conv.txt)"; fi
fi

# End to end at the seed size, TF32 and bf16 mixed precision: training img/s and reverse
# img-steps/s (ours; the comparison with PyTorch is benchmarks/compare.sh), and the caching
# allocator's promise that a training step in the steady state makes no cudaMalloc call.
for cfg in "tf32|--tf32" "bf16|--precision bf16"; do
  name=${cfg%%|*}
  read -r -a flags <<<"${cfg#*|}"
  for bench in bench_train bench_sample; do
    [ -x "$BUILD/benchmarks/$bench" ] || { note "$bench" "skipped: not built"; continue; }
    time_for "$bench $name" 45 || continue
    echo "== $bench ${flags[*]} (limit ${t}s)"
    if timeout -k 5 "$t" "$BUILD/benchmarks/$bench" "${flags[@]}" --steps 10 --json "$OUT/$bench-$name.json" \
      --commit "$COMMIT" >"$OUT/$bench-$name.txt" 2>&1; then
      if [ ! -s "$OUT/$bench-$name.json" ]; then
        note "$bench $name" "no timings: $(head -n 1 "$OUT/$bench-$name.txt")"
        continue
      fi
      res=$(python3 - "$OUT/$bench-$name.json" <<'EOF'
import json, sys
recs = json.load(open(sys.argv[1]))["records"]
key = "train_img_s" if "train_img_s" in recs[0] else "reverse_img_steps_s"
out = "; ".join(f"{r['setup']} {r[key]:.0f} {'img/s' if key == 'train_img_s' else 'img-steps/s'}" for r in recs)
mallocs = [r["device_mallocs_in_timed_steps"] for r in recs if "device_mallocs_in_timed_steps" in r]
if mallocs:
    out += f"; cudaMalloc in timed steps {sum(mallocs)}"
print(out)
sys.exit(1 if sum(mallocs) else 0)
EOF
)
      if [ $? -eq 0 ]; then note "$bench $name" "ok: $res"; else fail "$bench $name" "steady-state cudaMalloc: $res"; fi
    else
      note "$bench $name" "PROBLEM: exit $? (see $bench-$name.txt)"
    fi
  done
done

# The network's kernels on bf16 data (the mixed-precision path), if time is left.
if [ "$BENCH" = 1 ] && [ -x "$BUILD/benchmarks/bench_kernels" ] && time_for "bench_kernels bf16" 60; then
  echo "== bench_kernels --precision bf16 (limit ${t}s)"
  if timeout -k 5 "$t" "$BUILD/benchmarks/bench_kernels" --precision bf16 --json "$OUT/bench_kernels_bf16.json" \
    --commit "$COMMIT" >"$OUT/bench_kernels_bf16.txt" 2>&1; then
    if [ -s "$OUT/bench_kernels_bf16.json" ]; then note "bench_kernels bf16" "ok: bench_kernels_bf16.txt / .json"
    else note "bench_kernels bf16" "no timings: $(head -n 1 "$OUT/bench_kernels_bf16.txt")"; fi
  else note "bench_kernels bf16" "stopped: exit $? (bench_kernels_bf16.txt holds what was measured)"; fi
fi

for name in test_engine test_model; do
  if [ "$CPU_TESTS" = 0 ]; then note "$name" "skipped: CPU_TESTS=0"
  elif [ -x "$BUILD/tests/$name" ]; then run_catch "$name" "$BUILD/tests/$name" 60
  else note "$name" "skipped: not built"; fi
done

if [ "$SANITIZE" = 1 ]; then
  if command -v compute-sanitizer >/dev/null; then
    for tool in memcheck racecheck; do
      time_for "$tool" 90 || continue
      echo "== compute-sanitizer $tool on test_gpu \"$SANITIZE_FILTER\" (limit ${t}s)"
      timeout -k 5 "$t" compute-sanitizer --tool "$tool" --error-exitcode 99 "$BUILD/tests/test_gpu" "$SANITIZE_FILTER" \
        -w NoTests >"$OUT/sanitize-$tool.log" 2>&1
      rc=$?
      errors=$(grep -E -m2 'ERROR SUMMARY|No test cases matched' "$OUT/sanitize-$tool.log" | sed 's/=* *//' | paste -sd ' ')
      if [ $rc -eq 0 ]; then note "$tool" "PASS: ${errors:-no errors}"
      # A finished run ends with its ERROR SUMMARY; exit 124 alone could be 124 failed checks.
      elif { [ $rc -eq 124 ] || [ $rc -eq 137 ]; } && ! grep -q 'ERROR SUMMARY' "$OUT/sanitize-$tool.log"; then
        if grep -v 'ERROR SUMMARY' "$OUT/sanitize-$tool.log" |
          grep -Eq '^========= +(Invalid|Program hit|Error|ERROR|Warning|WARN|Race|Uninitialized|Leaked)'; then fail "$tool" "errors before the ${t}s limit (sanitize-$tool.log)"
        else note "$tool" "timed out after ${t}s with no error reported so far: narrow SANITIZE_FILTER"; fi
      else fail "$tool" "exit $rc: ${errors:-see sanitize-$tool.log}"; fi
    done
  else
    note sanitize "skipped: compute-sanitizer not on PATH"
  fi
fi

# Top kernels: time per forward, count x median, from the JSON.
TOP=""
if [ -s "$OUT/bench_kernels.json" ]; then
  TOP=$(python3 - "$OUT/bench_kernels.json" <<'EOF'
import json, sys
doc = json.load(open(sys.argv[1]))
recs = [r for r in doc["records"] if "median_us" in r]
failed = [r for r in doc["records"] if "error" in r]
print(f"bench: {doc['device']}, copy {doc['copy_gbps']:.0f} GB/s, {len(recs)} timings, {len(failed)} ops failed")
for setup in sorted({r["setup"] for r in recs if r["count"] > 0}):
    rs = [r for r in recs if r["setup"] == setup and r["count"] > 0]
    total = sum(r["count"] * r["median_us"] for r in rs)
    print(f"  {setup}: fwd+bwd of the listed ops {total / 1e3:.2f} ms per step; top 6:")
    for r in sorted(rs, key=lambda r: -r["count"] * r["median_us"])[:6]:
        rate = f"{r['tflops']:.1f} TFLOP/s" if r["flops"] else f"{100 * r['copy_fraction']:.0f}% of copy"
        print(f"    {r['count']:2d} x {r['median_us']:9.1f} us  {r['op']} {r['pass']} {r['shape']}  ({rate})")
for r in failed[:5]:
    print(f"  failed: {r['setup']} {r['op']} {r['shape']}: {r['error'][:80]}")
EOF
)
fi

{
  [ -z "$TOP" ] || echo "$TOP"
  echo "elapsed: ${SECONDS}s"
  echo "result: $([ $FAILED -eq 0 ] && echo PASS || echo FAIL)"
} >>"$OUT/summary.txt"
cat "$OUT/summary.txt"
exit $FAILED
