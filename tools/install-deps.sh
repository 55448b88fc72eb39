#!/usr/bin/env bash
# Installs the Debian packages ddpm builds with (skips apt when all are present).
# The CUDA toolkit (nvcc, cuBLAS, cuDNN) is optional and not installed here: where nvcc exists the
# CUDA backend is built too.
set -euo pipefail
pkgs=(cmake make g++ catch2 libstb-dev nlohmann-json3-dev libcli11-dev zlib1g-dev libopenblas-dev
      libeigen3-dev dataset-fashion-mnist
      clang libomp-dev libclang-rt-14-dev)  # clang + libFuzzer for the parsers' fuzz run
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
