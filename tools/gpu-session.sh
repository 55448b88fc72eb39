#!/usr/bin/env bash
# tools/gpu-session.sh STAGE [OUT_DIR]: one call of a lent GPU session (docs/gpu.md, "A GPU
# session"), run from the repository root with gpu-bundle/ (tools/gpu-bundle.sh) carried along.
# OUT_DIR defaults to $OUT, the device tool's output folder. Each stage fits one call (10 min):
#   check    tools/gpu-check.sh: GPU tests, reference checks (f32, bf16), kernel and end-to-end
#            benchmarks                                                         (~5 min)
#   compare  benchmarks/compare.sh with MODES (default fp32,bf16: no torch.compile) and CONFIGS
#            (default: f32, tf32, tf32-auto, bf16, bf16-auto)                       (~4 min)
#   run      the real run: the seed-size model on Fashion-MNIST for MINUTES (default 3), batch
#            BATCH (default 128), in PRECISION (default bf16; tf32 = f32 on TF32 tensor cores),
#            then a sample grid (8 per class, guidance 3, DDPM 100 steps) and `ddpm eval` on 1000
#            samples at each of
#            GUIDANCES (default "3 1") with each of EVAL_SAMPLERS (SAMPLER:STEPS or
#            SAMPLER:STEPS:ETA, default ddpm:100; e.g. "ddpm:100 ddim:100:1 ddpm:1000"; ddim with
#            eta 1 is DDPM with the posterior's smaller variance), EVAL_BATCH images per network
#            call (default 500)                                                     (~5 min)
#   all      for a short loan: check without the kernel micro-benchmarks and CPU tests, PyTorch's
#            eager twin beside our end-to-end numbers, then run for MINUTES (default 4, less if
#            the check ran long: what STAGE_LIMIT leaves after 130 s for the grid and the evals),
#            in bf16 if the bf16 checks passed, else tf32                           (~7 min)
#   more     what `all` leaves out: attention (f32, TF32, bf16) against PyTorch's SDPA, the kernels
#            on bf16 data, compute-sanitizer memcheck on the bf16, broadcast and matmul GPU
#            tests                                                                   (~1 min)
#   quick    check as in `all`, the eager twin, then `more`: everything but the real run (~3 min)
#   graphs   steps replayed as CUDA graphs against launched op by op: test_gpu (all, then
#            "[graph]" under compute-sanitizer memcheck), bench_sample (the reverse step's network)
#            and bench_train --graph (the training step's forward and backward) in bf16 and TF32,
#            100 timed steps (and in bf16 the whole 999-step chain), graph on and off (~3.5 min)
#   conv     our convolution kernels: test_gpu (all; "[conv]" again alone if any fails, and under
#            compute-sanitizer memcheck), bench_kernels in bf16 (every op, ~60 s),
#            bench_conv (ours, v6 and v4 in
#            bf16, cuDNN and backend Measured per shape and summed over a step, TF32 and bf16;
#            benchmarks/report.py conv), then bench_train and bench_sample with --conv cudnn,
#            measured and ours in bf16 and TF32; v4 only (DDPM_CONV_WGMMA=0) once v6 failed a
#            test or ended or stalled bench_conv                                   (~5 min)
#   profile  Nsight Compute (ncu) on the bf16 attention at 4096 tokens (forward, dK/dV, dQ) and
#            the group norm + GELU at 64x64, forward and backward: stall reasons, occupancy,
#            issue, the most sampled SASS                                         (~2.5 min)
# The device tool returns at most 8 files, so each stage packs OUT_DIR into OUT_DIR/STAGE.tar.gz
# and leaves beside it only the summary (written step by step), the comparison table, the grid and
# the loss curve, also when it is stopped at STAGE_LIMIT (default 540 s: run the call with
# timeout_s 600). An OUT_DIR used before loses those four loose files at the start (the earlier
# stage's tarball, packed into this one, holds them). With torch.compile (MODES=...,compile)
# `compare` needs more than one call: its twin alone took ~7.5 minutes on the H200.
# The run's checkpoints stay in runs/gpu-session (too big to fetch); OUT_DIR gets its loss log and
# curve (tools/plot_loss.py), logs with the wall times, the grid, the worst-classified grid and
# the eval JSON.
set -euo pipefail
# Absolute paths before the cd: the child below runs this script again from the repository root.
self=$(realpath "$0")
stage=${1:?usage: tools/gpu-session.sh check|compare|run|all|more|quick|graphs|conv|profile [OUT_DIR]}
out=$(realpath -m "${2:-${OUT:?give OUT_DIR or set OUT}}")
cd "$(dirname "$self")/.."
# The packing below empties OUT_DIR: never the repository or a folder above it.
case "$(pwd -P)/" in
  "${out%/}/"*) echo "gpu-session: OUT_DIR $out holds the repository; give another folder" >&2; exit 2 ;;
esac
mkdir -p "$out"

# The device tool kills a call at its limit and returns only 8 files, so the stage runs in a child
# under STAGE_LIMIT seconds and this parent always packs what it wrote. The child is a session of
# its own (setsid; it notes its id): each step's own `timeout` starts a process group that the outer
# timeout's signal does not reach, so at the limit the whole session is killed before packing.
if [ -z "${GPU_SESSION_CHILD:-}" ]; then
  # kill_session SID: SIGKILL to every process left in session SID, said in the summary. Without
  # pkill, the processes whose /proc/PID/stat names SID (the 4th field after the command's ')').
  kill_session() {
    local sid=$1 d stat s pids=()
    if command -v pkill >/dev/null; then
      if pkill -KILL -s "$sid"; then echo "gpu-session: killed what was left of session $sid"; fi
    else
      for d in /proc/[0-9]*; do
        stat=$(cat "$d/stat" 2>/dev/null) || continue  # gone meanwhile
        read -r _ _ _ s _ <<<"${stat##*) }"
        [ "$s" != "$sid" ] || pids+=("${d#/proc/}")
      done
      [ ${#pids[@]} -eq 0 ] || kill -KILL "${pids[@]}" || true
      echo "gpu-session: no pkill; killed session $sid's processes from /proc: ${pids[*]:-none}"
    fi
  }
  rm -f "$out"/{summary.txt,compare.md,run-samples.png,run-loss.svg}
  rc=0
  GPU_SESSION_CHILD=1 timeout -k 10 "${STAGE_LIMIT:-540}" setsid bash "$self" "$stage" "$out" || rc=$?
  if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
    [ ! -f "$out/.session" ] || kill_session "$(cat "$out/.session")" | tee -a "$out/summary.txt"
    echo "gpu-session: $stage stopped at STAGE_LIMIT=${STAGE_LIMIT:-540} s; packing what it wrote" | tee -a "$out/summary.txt"
    # gpu-check writes its summary as it goes; a stage cut inside it has not copied it yet.
    if [ -f "$out/check/summary.txt" ] && ! grep -q '^result: ' "$out/check/summary.txt"; then
      cat "$out/check/summary.txt" >>"$out/summary.txt"
    fi
  fi
  rm -f "$out/.session"
  trc=0
  tar --warning=no-file-changed -C "$out" -czf "/tmp/$stage.tar.gz" . || trc=$?
  if [ $trc -le 1 ]; then  # 1: a file changed while read; the archive is whole
    find "$out" -mindepth 1 -maxdepth 1 ! -name summary.txt ! -name compare.md ! -name run-samples.png \
      ! -name run-loss.svg -exec rm -rf {} +
    mv "/tmp/$stage.tar.gz" "$out/"
  else
    echo "gpu-session: tar failed (exit $trc); OUT_DIR stays unpacked" | tee -a "$out/summary.txt"
  fi
  exit $rc
fi

echo $$ >"$out/.session"  # setsid made this shell a session leader: its id is the session's
if [ ! -f gpu-bundle/bin.tar.xz ]; then
  echo "gpu-session: gpu-bundle/ was not carried (tools/gpu-bundle.sh here, then carry gpu-bundle)" |
    tee -a "$out/summary.txt"
  exit 1
fi
# The binaries' commit (the tree is copied to the GPU machine without .git).
COMMIT=$(cat gpu-bundle/COMMIT 2>/dev/null || git rev-parse --short HEAD 2>/dev/null || echo unknown)
export COMMIT
# A warm machine keeps build/ from the last call, whose bundle may be another commit's (or the
# same commit rebuilt: a newer tarball): unpack unless build/ holds this very bundle.
stamp=build/.bundle-commit
if [ "$(cat "$stamp" 2>/dev/null)" != "$COMMIT" ] || [ gpu-bundle/bin.tar.xz -nt "$stamp" ]; then
  mkdir -p build
  tar -C build -xJf gpu-bundle/bin.tar.xz
  echo "$COMMIT" >"$stamp"
fi
# Where and when, at the head of the summary (the JSON files record it too).
echo "gpu-session $stage: $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $COMMIT, $(timeout 20 nvidia-smi -L 2>/dev/null | head -1)" |
  tee -a "$out/summary.txt"
# CUDA's and the system's libraries for every step: the binaries' RUNPATH is the build machine's.
LIBS=/usr/local/cuda-13.0/targets/x86_64-linux/lib:/usr/lib/x86_64-linux-gnu
export LD_LIBRARY_PATH=$LIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

# real_run PRECISION MINUTES: train the seed-size model, sample a grid, evaluate at each guidance
# scale of GUIDANCES (default "3 1": the grid's, and a weaker one that trades accuracy for the
# diversity FD measures). One summary line a step; fails if any step did.
real_run() {
  local precision=$1 minutes=$2 start g rc=0 failed=0
  local flags=(--device cuda) run=runs/gpu-session sum=$out/summary.txt
  echo "real run: $precision, $minutes min, batch ${BATCH:-128}" | tee -a "$sum"
  if ! compgen -G 'gpu-bundle/fashion-mnist/*.gz' >/dev/null; then
    echo "real run: no gpu-bundle/fashion-mnist/*.gz (a DATA=0 bundle): nothing to train on" | tee -a "$sum"
    return 1
  fi
  if [ "$precision" = tf32 ]; then flags+=(--tf32); else flags+=(--precision "$precision"); fi
  rm -rf "$run"
  start=$SECONDS
  # --max-minutes ends the training; the timeout only stops a hang (90 s for loading and saving).
  timeout -k 5 "$(awk -v m="$minutes" 'BEGIN { print int(m * 60) + 90 }')" \
    build/tools/ddpm train --data fashion-mnist:gpu-bundle/fashion-mnist --image-size 32 "${flags[@]}" \
    --base-channels 64 --time-dim 256 --batch "${BATCH:-128}" --steps 1000000 --max-minutes "$minutes" --ema-start 500 \
    --save-every 0 --log-every 10 --out "$run" 2>&1 | tee "$out/run-train.log" || rc=${PIPESTATUS[0]}
  echo "train wall: $((SECONDS - start)) s" | tee -a "$out/run-train.log"
  echo "train: exit $rc, wall $((SECONDS - start)) s (run-train.log)" >>"$sum"
  failed=$((failed || rc))
  { cp "$run/loss.csv" "$out/run-loss.csv" &&
    python3 tools/plot_loss.py --title "seed-size model, $precision, on the GPU" --out "$out/run-loss.svg" \
      "loss=$run/loss.csv"; } || echo "gpu-session: no loss log or picture"
  start=$SECONDS rc=0
  timeout -k 5 90 build/tools/ddpm sample --checkpoint "$run" "${flags[@]}" --classes all --per-class 8 --guidance 3 \
    --sampler ddpm --steps 100 --out "$out/run-samples.png" 2>&1 | tee "$out/run-sample.log" || rc=${PIPESTATUS[0]}
  echo "sample wall: $((SECONDS - start)) s" | tee -a "$out/run-sample.log"
  echo "sample: exit $rc, wall $((SECONDS - start)) s, run-samples.png $([ -s "$out/run-samples.png" ] && echo written || echo MISSING)" >>"$sum"
  failed=$((failed || rc))
  local sampler steps eta name s
  for g in ${GUIDANCES:-3 1}; do
    for s in ${EVAL_SAMPLERS:-ddpm:100}; do
      IFS=: read -r sampler steps eta <<<"$s"
      start=$SECONDS rc=0
      # run-eval-g3.json as before unless EVAL_SAMPLERS is set
      name=g$g${EVAL_SAMPLERS:+-$sampler$steps${eta:+-eta$eta}}
      mkdir -p "$out/eval-$name"
      timeout -k 5 "${EVAL_LIMIT:-150}" build/tools/ddpm eval --checkpoint "$run" "${flags[@]}" --samples 1000 --guidance "$g" \
        --batch "${EVAL_BATCH:-500}" \
        --sampler "$sampler" --steps "$steps" ${eta:+--eta "$eta"} --data-dir gpu-bundle/fashion-mnist --out "$out/eval-$name" \
        --json "$out/run-eval-$name.json" 2>&1 | tee "$out/run-eval-$name.log" || rc=${PIPESTATUS[0]}
      echo "eval wall (guidance $g, $sampler $steps steps): $((SECONDS - start)) s" | tee -a "$out/run-eval-$name.log"
      { echo "eval $name (guidance $g, $sampler $steps steps${eta:+, eta $eta}): exit $rc, wall $((SECONDS - start)) s"
        grep -A 3 '^set ' "$out/run-eval-$name.log" || echo "  (no result: see run-eval-$name.log)"; } >>"$sum"
      failed=$((failed || rc))
    done
  done
  return $failed
}

# timed_out STATUS JUNIT: whether a Catch2 run was stopped by its `timeout`. Catch2's own exit
# status is its number of failed assertions, 124 included; stopped, it leaves no JUnit (SIGKILL) or
# one that reports the SIGTERM as the running test's failure.
timed_out() {
  { [ "$1" -eq 124 ] || [ "$1" -eq 137 ]; } && { [ ! -s "$2" ] || grep -q 'SIGTERM - Termination request signal' "$2"; }
}

# gpu_tests NAME [SPEC]: test_gpu (the cases SPEC selects, or all; -w NoTests: a spec that matches
# nothing fails) with its JUnit report in NAME.xml and its output in NAME.log; its counts and
# failures in the summary. A crash leaves no report: then the console reporter runs the same cases
# again (NAME.console.log) to show where it stopped. Returns test_gpu's status.
gpu_tests() {
  local name=$1 rc=0 why=""
  shift
  timeout -k 5 120 build/tests/test_gpu "$@" -w NoTests -r junit -o "$out/$name.xml" >"$out/$name.log" 2>&1 || rc=$?
  if timed_out $rc "$out/$name.xml"; then why=" (timed out after 120 s)"
  elif grep -q 'test_gpu SKIPPED' "$out/$name.log"; then why=" (no GPU: test_gpu SKIPPED, see $name.log)"
  fi
  { echo "test_gpu${*:+ $*}: exit $rc$why"; python3 benchmarks/report.py junit "$out/$name.xml"; } | tee -a "$out/summary.txt"
  if [ -z "$why" ] && [ ! -s "$out/$name.xml" ]; then
    timeout -k 5 60 build/tests/test_gpu "$@" -w NoTests -r console -d yes >"$out/$name.console.log" 2>&1 || true
  fi
  return $rc
}

# memcheck NAME SPEC [FLAG...]: test_gpu SPEC under compute-sanitizer memcheck (FLAGs added), output
# in NAME.log; one summary line. Returns the sanitizer's status.
memcheck() {
  local name=$1 spec=$2 rc=0
  shift 2
  timeout -k 5 100 compute-sanitizer --tool memcheck "$@" --error-exitcode 99 build/tests/test_gpu "$spec" -w NoTests \
    >"$out/$name.log" 2>&1 || rc=$?
  echo "memcheck $spec: exit $rc $(grep -E -m2 'ERROR SUMMARY|No test cases matched' "$out/$name.log" | paste -sd ' ')" |
    tee -a "$out/summary.txt"
  return $rc
}

# have_json BASE: whether $out/BASE.json was written; if not, a line that says so.
have_json() { [ -s "$out/$1.json" ] || { echo "$1: no JSON (see $1.txt)"; return 1; }; }

# check_summary: gpu-check's summary into the stage's.
check_summary() {
  cat "$out/check/summary.txt" >>"$out/summary.txt" 2>/dev/null ||
    echo "gpu-session: gpu-check wrote no summary" | tee -a "$out/summary.txt"
}

# bench_run LABEL LIMIT BENCH ARG...: one run of build/benchmarks/BENCH, stopped after LIMIT seconds,
# into LABEL's words joined by '-' (.json, .txt); its table rows (or last lines) in the summary.
bench_run() {
  local label=$1 limit=$2 bench=$3 file=${1// /-}
  shift 3
  timeout "$limit" "build/benchmarks/$bench" "$@" --commit "$COMMIT" --json "$out/$file.json" >"$out/$file.txt" 2>&1 ||
    echo "gpu-session: $label stopped"
  { echo "$label:"; grep '^|' "$out/$file.txt" || tail -n 2 "$out/$file.txt"; } | tee -a "$out/summary.txt"
}

# twin_report DIR: PyTorch's eager twin beside our end-to-end numbers in DIR (gpu-check's output).
twin_report() {
  echo "== torch_twin (eager fp32, eager bf16)"
  timeout 90 python3 benchmarks/torch_twin.py --device cuda --modes fp32,bf16 --steps 10 \
    --json "$1/torch_twin.json" >"$1/torch_twin.txt" 2>&1 || echo "gpu-session: torch_twin failed"
  python3 benchmarks/report.py e2e "$1" | tee "$out/compare.md" || true
}

# more_stage: attention against SDPA, memcheck, the kernels on bf16 data (stage `more`).
# Fails (after running everything) when memcheck did.
more_stage() {
  local rc=0
  echo "== attention: ours (f32 exact, f32 on TF32, bf16) and PyTorch's SDPA"
  for p in f32 tf32 bf16; do
    case $p in tf32) flags=(--tf32) ;; *) flags=(--precision "$p") ;; esac
    timeout 40 build/benchmarks/bench_kernels "${flags[@]}" --filter attention --commit "$COMMIT" \
      --json "$out/bench_attention_$p.json" >"$out/bench_attention_$p.txt" 2>&1 || echo "gpu-session: attention $p stopped"
  done
  timeout 60 python3 benchmarks/torch_attention.py --json "$out/torch_attention.json" >"$out/torch_attention.txt" 2>&1 ||
    echo "gpu-session: torch_attention failed"
  for p in f32 tf32 bf16; do
    echo "ours, $p:"
    if have_json "bench_attention_$p" && have_json torch_attention; then
      python3 benchmarks/report.py attention "$out/bench_attention_$p.json" "$out/torch_attention.json" ||
        echo "no attention table (report.py failed)"
    fi
  done | tee -a "$out/summary.txt"
  # The kernels rewritten since the last sanitizer run: bf16 (attention v2), the broadcast and bias
  # reductions.
  local spec="[bf16],[elementwise],[matmul]"
  echo "== compute-sanitizer memcheck on test_gpu $spec"
  memcheck sanitize-memcheck "$spec" || rc=1
  echo "== bench_kernels --precision bf16"
  timeout "${KERNELS_LIMIT:-60}" build/benchmarks/bench_kernels --precision bf16 --commit "$COMMIT" \
    --json "$out/bench_kernels_bf16.json" >"$out/bench_kernels_bf16.txt" 2>&1 || echo "gpu-session: bench_kernels bf16 stopped"
  return $rc
}

# graphs_stage: graph replay against op-by-op launches (stage `graphs`).
# Fails (after running everything) when the tests or memcheck did.
graphs_stage() {
  local p g bench extra trc=0 mrc=0
  gpu_tests test_gpu || trc=$?
  # The refusal test provokes failing CUDA calls on purpose: memcheck would list them as API errors.
  memcheck sanitize-graph "[graph]" --report-api-errors no || mrc=$?
  for p in bf16 tf32; do
    case $p in tf32) flags=(--tf32) ;; *) flags=(--precision "$p") ;; esac
    for bench in bench_sample bench_train; do
      for g in graph no-graph; do
        extra=()
        if [ $bench = bench_sample ]; then
          [ "$g" = no-graph ] && extra+=(--no-graph)
          [ "$p" = bf16 ] && extra+=(--full)  # the 999-step chains in bf16 only: ~15 s a run
        else
          [ "$g" = graph ] && extra+=(--graph)
        fi
        bench_run "$bench $p $g" 40 $bench "${flags[@]}" "${extra[@]}" --steps 100
      done
    done
  done
  return $((trc != 0 || mrc != 0))
}

# conv_stage: our convolution kernels against cuDNN, alone and end to end (stage `conv`). Fails
# (after running everything) when the tests or memcheck did.
conv_stage() {
  local arc=0 crc=0 mrc=0 p conv bench
  # All GPU tests (~30 s): since the last loan v4, v6 and v7 (thin layers), linear's cuBLASLt path,
  # the norms' version 2 and the 16-byte bf16 accesses all changed. If any fails, "[conv]" alone
  # says whether v6 is to blame.
  # A timeout of the whole run (a hang, perhaps in v6) is not spent again on "[conv]" alone.
  gpu_tests test_gpu || arc=$?
  crc=$arc
  if [ $arc -ne 0 ] && ! timed_out $arc "$out/test_gpu.xml"; then
    crc=0
    gpu_tests test_gpu_conv "[conv]" || crc=$?
  fi
  # v6 (wgmma) had not run on hardware before: if it fails its tests, or a trap or a hang ends
  # bench_conv, the rest runs on v4 (DDPM_CONV_WGMMA=0, which no benchmark or test can switch back),
  # so the loan still measures v4, cuDNN and Measured; and bench_kernels below, which runs
  # convolutions too, already on v4.
  [ $crc -eq 0 ] || { export DDPM_CONV_WGMMA=0; echo "gpu-session: conv tests failed; v4 only from here" | tee -a "$out/summary.txt"; }
  memcheck sanitize-conv "[conv]" || mrc=$?
  # Every op on bf16 data (~60 s), to set beside fc776d5's bench_kernels_bf16.txt: the norms'
  # version 2, the fused embedding and residual adds, the 16-byte accesses, the thin convolutions.
  timeout "${KERNELS_LIMIT:-60}" build/benchmarks/bench_kernels --precision bf16 --json "$out/bench_kernels_bf16.json" \
    --commit "$COMMIT" >"$out/bench_kernels_bf16.txt" 2>&1 || echo "gpu-session: bench_kernels bf16 stopped" | tee -a "$out/summary.txt"
  # bench_conv times v4 beside v6 itself; a second run on v4 alone only pays after a failure that
  # was not the time limit, while v6 was still in use.
  local brc=0
  timeout 130 build/benchmarks/bench_conv --json "$out/bench_conv.json" --commit "$COMMIT" >"$out/bench_conv.txt" 2>&1 || brc=$?
  if [ $brc -ne 0 ]; then
    echo "gpu-session: bench_conv stopped (exit $brc)" | tee -a "$out/summary.txt"
    if [ "${DDPM_CONV_WGMMA:-1}" != 0 ]; then
      export DDPM_CONV_WGMMA=0
      echo "gpu-session: v4 only from here" | tee -a "$out/summary.txt"
      if [ $brc -ne 124 ]; then
        echo "gpu-session: bench_conv again on v4 only" | tee -a "$out/summary.txt"
        timeout 100 build/benchmarks/bench_conv --json "$out/bench_conv-v4.json" --commit "$COMMIT" >"$out/bench_conv-v4.txt" 2>&1 ||
          echo "gpu-session: bench_conv on v4 stopped" | tee -a "$out/summary.txt"
      fi
    fi
  fi
  for f in bench_conv bench_conv-v4; do
    [ -f "$out/$f.txt" ] || continue  # the v4 run only after a failure
    if have_json $f; then echo "$f:"; python3 benchmarks/report.py conv "$out/$f.json" || echo "no conv table from $f.json"; fi
  done | tee -a "$out/summary.txt"
  # Within STAGE_LIMIT: about 10 s a run; the TF32 runs come last, so a slow card loses those first.
  for p in bf16 tf32; do
    case $p in tf32) flags=(--tf32) ;; *) flags=(--precision "$p") ;; esac
    for conv in cudnn measured ours; do
      for bench in bench_train bench_sample; do
        bench_run "$bench $p $conv" 25 $bench "${flags[@]}" --conv $conv --steps 30
      done
    done
  done
  return $((arc != 0 || mrc != 0))
}

# profile_stage: Nsight Compute on the kernels whose distance from their napkin floor is not yet
# understood (docs/kernels.md): the bf16 attention at 4096 tokens / D = 16 (the forward and both
# backward kernels; 1.7x and 1.3x their floors at fc776d5, "limited by neither bound") and the
# group norm + GELU at 64x64x64x64 (version 2's column sums and pass, forward and backward). The
# first NCU_LAUNCHES launches of each kernel after SKIP (below) in a one-run bench_kernels, at the
# clocks the card runs (--clock-control none); sections: speed of light, occupancy, launch, warp
# states (the stall reasons), scheduler, instruction mix, source counters (the most sampled SASS).
# One text report a kernel (ncu-NAME.txt, its headline numbers in the summary); the .ncu-rep files
# are dropped.
profile_stage() {
  local entry name filter kernel skip rc=0
  # NAME|FILTER|KERNEL|SKIP. The attention's backward kernels have names of their own; the group
  # norm's share theirs with the forward, and each runs (benchmarks/bench_kernels.cpp, op_spec and
  # Timer) forward twice and backward once while bench_kernels prepares the op, then forward 4
  # times (3 warm-ups and --runs 1), then backward: skipping 7 launches leaves the backward ones.
  for entry in "attn-fwd|attention 64x4096x192|attention_fwd_k|0" "attn-dkv|attention 64x4096x192|attention_dkv_k|0" \
    "attn-dq|attention 64x4096x192|attention_dq_k|0" "gn-sums|group_norm+gelu 64x64x64x64|column_sums_k|0" \
    "gn-pass|group_norm+gelu 64x64x64x64|gn_pass_k|0" "gn-sums-bwd|group_norm+gelu 64x64x64x64|column_sums_k|7" \
    "gn-pass-bwd|group_norm+gelu 64x64x64x64|gn_pass_k|7"; do
    IFS='|' read -r name filter kernel skip <<<"$entry"
    if ! timeout -k 5 100 ncu --clock-control none -k "regex:$kernel" --launch-skip "$skip" -c "${NCU_LAUNCHES:-2}" \
      --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats --section SchedulerStats \
      --section InstructionStats --section SourceCounters -f -o "$out/ncu-$name" \
      build/benchmarks/bench_kernels --precision bf16 --runs 1 --filter "$filter" >"$out/ncu-$name.log" 2>&1; then
      rc=1
      echo "gpu-session: ncu $name failed (ncu-$name.log)" | tee -a "$out/summary.txt"
    elif [ ! -f "$out/ncu-$name.ncu-rep" ]; then
      rc=1
      echo "gpu-session: ncu $name: no kernel profiled (ncu-$name.log)" | tee -a "$out/summary.txt"
    else
      ncu --import "$out/ncu-$name.ncu-rep" --page details >"$out/ncu-$name.txt" 2>&1 || rc=1
      { echo "ncu $name:"
        grep -E "^  [^ ].*\(|Duration|Registers Per Thread|Achieved Occupancy|Theoretical Occupancy|Issue Slots Busy|Issued Warp|No Eligible|Memory Throughput|Compute \(SM\) Throughput" \
          "$out/ncu-$name.txt" | head -40; } | tee -a "$out/summary.txt"
    fi
    rm -f "$out/ncu-$name.ncu-rep"  # also a partial one
  done
  return $rc
}

rc=0
case $stage in
  check)
    bash tools/gpu-check.sh "$out/check" || rc=$?
    check_summary
    ;;
  compare)  # the configurations most worth their time; CONFIGS= (empty) runs all nine
    CONFIGS=${CONFIGS-"f32 tf32 tf32-auto bf16 bf16-auto"} MODES=${MODES:-fp32,bf16} \
      bash benchmarks/compare.sh "$out/compare" || rc=$?
    echo "compare.sh: exit $rc" >>"$out/summary.txt"
    cp "$out/compare/compare.md" "$out/" 2>/dev/null ||
      echo "gpu-session: compare.sh wrote no compare.md" | tee -a "$out/summary.txt"
    ;;
  run) real_run "${PRECISION:-bf16}" "${MINUTES:-3}" || rc=$? ;;
  all)
    BENCH=0 CPU_TESTS=0 BUDGET=${CHECK_BUDGET:-230} bash tools/gpu-check.sh "$out/check" || rc=$?
    check_summary
    twin_report "$out/check"
    precision=tf32  # bf16 only once its checks passed on this card
    grep -q '^check-reference bf16 *PASS' "$out/check/summary.txt" && grep -q '^test_gpu *PASS' "$out/check/summary.txt" &&
      precision=bf16
    # Of STAGE_LIMIT, training gets what is left after ~130 s for sampling and the evals (17 s each
    # on the H200), at most MINUTES.
    minutes=$(python3 -c "print(round(max(0.5, min(${MINUTES:-4}, (${STAGE_LIMIT:-540} - 130 - $SECONDS) / 60)), 2))")
    EVAL_LIMIT=${EVAL_LIMIT:-60} real_run "$precision" "$minutes" ||
      { rc=1; echo "gpu-session: the real run failed" | tee -a "$out/summary.txt"; }
    ;;
  more) more_stage || rc=$? ;;
  quick)  # gpu-check without the micro-benchmarks, the eager twin, then `more`: no real run
    BENCH=0 CPU_TESTS=0 BUDGET=${CHECK_BUDGET:-150} bash tools/gpu-check.sh "$out/check" || rc=$?
    check_summary
    twin_report "$out/check"
    more_stage || rc=1
    ;;
  graphs) graphs_stage || rc=$? ;;
  conv) conv_stage || rc=$? ;;
  profile) profile_stage || rc=$? ;;
  *) echo "gpu-session: unknown stage '$stage' (check, compare, run, all, more, quick, graphs, conv or profile)" >&2; exit 2 ;;
esac
exit $rc
