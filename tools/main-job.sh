#!/usr/bin/env bash
# The main job: install what is missing, build, train a class-conditional DDPM on Fashion-MNIST
# (32x32) and write samples.png, one row per garment class (0 T-shirt/top ... 9 Ankle boot).
#
#  - With a GPU (nvidia-smi works and the build has the CUDA backend): the seed's model size
#    (b = 64, time_dim 256) trained on the GPU, sampled with the seed's full 999-step DDPM chain.
#  - Without: a small model (b = 16) sized to finish in about 10 minutes on 2 cores (about 8 to
#    train on 25,600 images, 2 to sample), sampled with DDPM respaced to 100 steps. Expect rough,
#    grainy but recognisable garments (docs/cli.md says how to scale up).
#
# The run lives in $OUT (default runs/main-job); running the script again continues it if it was
# stopped (Ctrl-C saves) and only re-samples if it had finished. samples.png goes to the repo root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
BUILD_DIR=build bash tools/build.sh
ddpm=./build/tools/ddpm
out=${OUT:-runs/main-job}

if nvidia-smi >/dev/null 2>&1 && ldd "$ddpm" | grep -q libcudart; then
  echo "main-job: GPU found: training the seed-size model on it"
  train=(--device cuda --tf32 --base-channels 64 --time-dim 256 --batch 64 --steps 12000 --max-minutes 10)
  sample=(--device cuda --tf32 --sampler ddpm)
else
  echo "main-job: no GPU: training a small model on the CPU"
  train=(--device cpu --base-channels 16 --time-dim 64 --batch 16 --steps 1600 --ema-start 400)
  sample=(--device cpu --sampler ddpm --steps 100)
fi

resume=()
[ -f "$out/model.safetensors" ] && resume=(--resume)
"$ddpm" train --data fashion-mnist --image-size 32 "${train[@]}" --out "$out" "${resume[@]}"
"$ddpm" sample --checkpoint "$out" --classes all --per-class 8 --guidance 3 "${sample[@]}" --out samples.png
echo "main-job: wrote samples.png (rows: classes 0..9 of Fashion-MNIST; model and loss log in $out)"
