#!/usr/bin/env bash
# tools/gpu-variants.sh: compare builds of one kernel source side by side in one short GPU call
# (docs/gpu.md, "Kernel variants in one call").
#   here:  tools/gpu-variants.sh build SOURCE NAME='FLAGS' [NAME='FLAGS' ...]
#          After tools/gpu-bundle.sh (BUILD_DIR, default build-sm90). For each NAME, compiles SOURCE
#          (a .cu file of ddpm_kernels, e.g. kernels/attention_cuda.cu) with FLAGS added (macros
#          the source reads for the experiment, e.g. -DTILES=2), puts it into a copy of the kernels
#          library, relinks bench_kernels and test_gpu against it and packs all variants into
#          gpu-bundle/variants.tar.xz. NAME='' is the source as it is.
#   there: tools/gpu-variants.sh run 'BENCH_ARGS' ['TEST_SPEC'] [OUT_DIR]
#          Times `bench_kernels BENCH_ARGS` for every variant in ROUNDS rounds (default 2, the order
#          reversed every other round, so drift does not favour one), runs `test_gpu TEST_SPEC` for
#          each if given, and packs OUT_DIR (default $OUT) into variants-out.tar.gz. All within
#          STAGE_LIMIT seconds (default 540, so the packing happens inside a 600 s call): a step
#          that would not fit is skipped, and says so.
# Each variant's JSON carries `--commit var-NAME`. Take the lowest median of the rounds per shape.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:?usage: tools/gpu-variants.sh build SOURCE NAME=FLAGS... | run BENCH_ARGS [TEST_SPEC] [OUT_DIR]}
shift
if [ "$mode" = build ]; then
  src=$(realpath "${1:?a .cu source of ddpm_kernels}")
  shift
  dir=$(realpath "${BUILD_DIR:-build-sm90}")
  [ -f "$dir/libddpm_kernels.a" ] || { echo "gpu-variants: build $dir first (tools/gpu-bundle.sh)" >&2; exit 1; }
  # The object's compile command, as CMake runs it, without its output path.
  cmd=$(python3 -c "
import json, sys
for e in json.load(open('$dir/compile_commands.json')):
    if e['file'] == sys.argv[1]: print(e['command'].split(' -o ')[0]); break
" "$src")
  [ -n "$cmd" ] || { echo "gpu-variants: $src is not in $dir/compile_commands.json" >&2; exit 1; }
  obj=$(basename "$src").o
  work=$(mktemp -d)
  for spec in "$@"; do
    name=${spec%%=*} flags=${spec#*=}
    v=$work/$name
    mkdir -p "$v/obj"
    (cd "$dir" && eval "$cmd $flags -o '$v/obj/$obj'")
    cp "$dir/libddpm_kernels.a" "$v/libddpm_kernels.a"
    (cd "$v/obj" && ar r ../libddpm_kernels.a "$obj")
    for bin in benchmarks/bench_kernels tests/test_gpu; do
      link=$(sed "s#\.\./libddpm_kernels\.a#$v/libddpm_kernels.a#; s#-o $(basename $bin) #-o $v/$(basename $bin) #" \
        "$dir/$(dirname $bin)/CMakeFiles/$(basename $bin).dir/link.txt")
      (cd "$dir/$(dirname $bin)" && eval "$link")
      strip --strip-debug "$v/$(basename $bin)"
    done
    echo "$flags" >"$v/FLAGS"
    rm -rf "$v/obj" "$v/libddpm_kernels.a"
    echo "gpu-variants: built $name ($flags)"
  done
  mkdir -p gpu-bundle
  tar -C "$work" -cf - "${@%%=*}" | xz -T2 -6 >gpu-bundle/variants.tar.xz
  rm -rf "$work"
  du -sh gpu-bundle/variants.tar.xz
elif [ "$mode" = run ]; then
  bench=${1:?bench_kernels arguments, e.g. '--precision bf16 --filter attention'}
  spec=${2:-} out=${3:-${OUT:?give OUT_DIR or set OUT}}
  export LD_LIBRARY_PATH=/usr/local/cuda-13.0/targets/x86_64-linux/lib:/usr/lib/x86_64-linux-gnu
  deadline=$((SECONDS + ${STAGE_LIMIT:-540}))
  # step_limit MAX: seconds for the next step, at most MAX, within STAGE_LIMIT; false when 5 or less.
  step_limit() {
    t=$((deadline - SECONDS))
    t=$((t < $1 ? t : $1))
    [ $t -gt 5 ]
  }
  vdir=$(mktemp -d)
  trap 'rm -rf "$vdir"' EXIT
  tar -C "$vdir" -xJf gpu-bundle/variants.tar.xz
  mkdir -p "$out"
  mapfile -t names < <(ls "$vdir")
  for ((round = 1; round <= ${ROUNDS:-2}; ++round)); do
    order=("${names[@]}")
    if ((round % 2 == 0)); then mapfile -t order < <(printf '%s\n' "${names[@]}" | tac); fi
    for n in "${order[@]}"; do
      step_limit 60 || { echo "gpu-variants: bench $n round $round: skipped, STAGE_LIMIT reached"; continue; }
      # shellcheck disable=SC2086  # BENCH_ARGS is a list of flags
      timeout -k 5 "$t" "$vdir/$n/bench_kernels" $bench --commit "var-$n" --json "$out/bench${round}_$n.json" \
        >"$out/bench${round}_$n.txt" 2>&1 || echo "gpu-variants: bench $n round $round: exit $?"
    done
  done
  if [ -n "$spec" ]; then
    for n in "${names[@]}"; do
      step_limit 120 || { echo "gpu-variants: test $n: skipped, STAGE_LIMIT reached"; continue; }
      rc=0
      # -w NoTests: a spec that matches nothing fails
      timeout -k 5 "$t" "$vdir/$n/test_gpu" "$spec" -w NoTests >"$out/test_$n.txt" 2>&1 || rc=$?
      echo "gpu-variants: test $n: exit $rc, $(grep -E 'passed|failed|SKIPPED|No test cases matched' "$out/test_$n.txt" | tail -1)"
    done
  fi
  for n in "${names[@]}"; do cp "$vdir/$n/FLAGS" "$out/FLAGS_$n"; done
  tar -C "$out" -czf /tmp/variants-out.tar.gz . && find "$out" -mindepth 1 -delete && mv /tmp/variants-out.tar.gz "$out/"
else
  echo "gpu-variants: unknown mode '$mode' (build or run)" >&2
  exit 2
fi
