#!/usr/bin/env bash
# tools/gpu-session.sh STAGE [OUT_DIR]: one call of a lent GPU session (docs/gpu.md, "A GPU
# session"), run from the repository root with gpu-bundle/ (tools/gpu-bundle.sh) carried along.
# OUT_DIR defaults to $OUT, the device tool's output folder. Each stage fits one call (10 min):
#   check    tools/gpu-check.sh: GPU tests, reference checks (f32, bf16), kernel and end-to-end
#            benchmarks                                                         (~5 min)
#   compare  benchmarks/compare.sh with MODES (default fp32,bf16: no torch.compile) and CONFIGS
#            (default: f32, tf32, tf32-auto, bf16, bf16-auto)                       (~4 min)
#   run      the real run: the seed-size model on Fashion-MNIST for MINUTES (default 3) in
#            PRECISION (default bf16; tf32 = f32 on TF32 tensor cores), then a sample grid (8 per
#            class, guidance 3, DDPM 100 steps) and `ddpm eval` on 1000 samples     (~5 min)
# The run's checkpoints stay in runs/gpu-session (too big to fetch); OUT_DIR gets its loss log and
# curve (tools/plot_loss.py), logs with the wall times, the grid, the worst-classified grid and
# the eval JSON.
set -euo pipefail
cd "$(dirname "$0")/.."
stage=${1:?usage: tools/gpu-session.sh check|compare|run [OUT_DIR]}
out=${2:-${OUT:?give OUT_DIR or set OUT}}
mkdir -p "$out"
if [ ! -x build/tools/ddpm ]; then
  mkdir -p build
  tar -C build -xJf gpu-bundle/bin.tar.xz
fi
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || cat gpu-bundle/COMMIT)
export COMMIT
LIBS=/usr/local/cuda-13.0/targets/x86_64-linux/lib:/usr/lib/x86_64-linux-gnu

case $stage in
  check) bash tools/gpu-check.sh "$out/check" ;;
  compare)  # the configurations most worth their time; CONFIGS= (empty) runs all seven
    CONFIGS=${CONFIGS-"f32 tf32 tf32-auto bf16 bf16-auto"} MODES=${MODES:-fp32,bf16} \
      bash benchmarks/compare.sh "$out/compare" ;;
  run)
    export LD_LIBRARY_PATH=$LIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    precision=${PRECISION:-bf16}
    flags=(--device cuda)
    if [ "$precision" = tf32 ]; then flags+=(--tf32); else flags+=(--precision "$precision"); fi
    run=runs/gpu-session
    rm -rf "$run"
    start=$SECONDS
    build/tools/ddpm train --data fashion-mnist:gpu-bundle/fashion-mnist --image-size 32 "${flags[@]}" \
      --base-channels 64 --time-dim 256 --batch 64 --steps 1000000 --max-minutes "${MINUTES:-3}" --ema-start 500 \
      --save-every 0 --log-every 10 --out "$run" 2>&1 | tee "$out/run-train.log"
    echo "train wall: $((SECONDS - start)) s" | tee -a "$out/run-train.log"
    cp "$run/loss.csv" "$out/run-loss.csv"
    python3 tools/plot_loss.py --title "seed-size model, $precision, on the GPU" --out "$out/run-loss.svg" \
      "loss=$run/loss.csv" || echo "gpu-session: no loss picture"
    start=$SECONDS
    build/tools/ddpm sample --checkpoint "$run" "${flags[@]}" --classes all --per-class 8 --guidance 3 \
      --sampler ddpm --steps 100 --out "$out/run-samples.png" 2>&1 | tee "$out/run-sample.log"
    echo "sample wall: $((SECONDS - start)) s" | tee -a "$out/run-sample.log"
    start=$SECONDS
    build/tools/ddpm eval --checkpoint "$run" "${flags[@]}" --samples 1000 --guidance 3 --sampler ddpm --steps 100 \
      --data-dir gpu-bundle/fashion-mnist --out "$out" --json "$out/run-eval.json" 2>&1 | tee "$out/run-eval.log"
    echo "eval wall: $((SECONDS - start)) s" | tee -a "$out/run-eval.log"
    ;;
  *) echo "gpu-session: unknown stage '$stage' (check, compare or run)" >&2; exit 2 ;;
esac
