#!/usr/bin/env bash
# Compile-check CUDA sources HERE (no GPU): nvcc 13.0 from PyPI in /opt/cudatk, the venv torch's (cu130)
# headers and CUDA runtime headers. Set up once (versions must match: nvvm 13.0, not the newest) with
#   .venv/bin/pip install --target /opt/cudatk nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 \
#       nvidia-nvvm==13.0.88 nvidia-cuda-cccl==13.0.85 nvidia-cuda-runtime==13.0.96
# Usage: scripts/cuda_local.sh a.cu [b.cu ...]   (objects to /tmp; prints ptxas register/spill lines)
set -euo pipefail
cd "$(dirname "$0")/.."
SP=$(echo "$PWD"/.venv/lib/python3*/site-packages)
TK=/opt/cudatk/nvidia/cu13
for f in "$@"; do
  "$TK/bin/nvcc" -std=c++17 -O2 -arch=sm_90a --expt-relaxed-constexpr -lineinfo -Xptxas -v \
    -DJET_CUDA=1 -DFMT_HEADER_ONLY=1 -Isrc -I"$SP/torch/include" -I"$SP/torch/include/torch/csrc/api/include" \
    -I"$TK/include" -I"$SP/nvidia/cu13/include" -I"$TK/include/cccl" -diag-suppress 128,2417 \
    -c "$f" -o "/tmp/$(basename "$f").o" 2>&1 | grep -E "error|warning|spill|registers" | grep -v "0 bytes spill" || true
done
