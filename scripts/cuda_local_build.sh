#!/usr/bin/env bash
# Builds the CUDA targets HERE, on a machine without a GPU (scripts/cuda_local.sh compile-checks single files):
# nvcc 13.0 from PyPI plus the CUDA
# headers/libraries of the venv's torch wheel (2.11+cu130) merged into one toolkit root, and a link-only stub
# of the driver library. Then `cmake -S . -B build-cuda ...` as printed below builds jet and jet_gpu_tests for
# sm_90a; the binaries ran on the lent H200 (Ubuntu, newer glibc) with LD_LIBRARY_PATH set to the device's
# torch/lib and nvidia/cu13/lib (see bench/RESULTS.md, 2026-12-01), so a device call need not build.
set -euo pipefail
cd "$(dirname "$0")/.."
PREFIX=${CUDATK:-/opt/cudatk}
V=$(ls -d .venv/lib/python3*/site-packages/nvidia/cu13)
if [ ! -x $PREFIX/nvidia/cu13/bin/nvcc ]; then
  # One pip call: a second `pip install --target` would replace the shared nvidia/ folder.
  .venv/bin/pip install -q --target $PREFIX "nvidia-cuda-nvcc==13.0.88" "nvidia-cuda-crt==13.0.88" \
    "nvidia-cuda-cccl==13.0.85" "nvidia-cuda-runtime==13.0.96" "nvidia-nvvm==13.0.88"
fi
T=$PREFIX/nvidia/cu13
for f in $V/include/*; do b=$(basename $f); [ -e $T/include/$b ] || ln -s $(realpath $f) $T/include/$b; done
for f in $V/lib/*.so*; do
  b=$(basename $f); [ -e $T/lib/$b ] || ln -s $(realpath $f) $T/lib/$b
  n=${b%%.so*}; [ -e $T/lib/$n.so ] || ln -s $(realpath $f) $T/lib/$n.so
done
[ -e $T/lib64 ] || ln -s lib $T/lib64
if [ ! -e $T/lib/stubs/libcuda.so ]; then
  mkdir -p $T/lib/stubs && echo 'void cuGetErrorString(void){}' > /tmp/cuda_stub.c && gcc -shared -o $T/lib/stubs/libcuda.so /tmp/cuda_stub.c
fi
$T/bin/nvcc --version | tail -2
TP=$(.venv/bin/python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
echo "configure: cmake -S . -B build-cuda -G Ninja -DJET_CUDA=ON -DCMAKE_CUDA_COMPILER=$T/bin/nvcc -DCUDAToolkit_ROOT=$T -DCMAKE_PREFIX_PATH=$TP -DPython3_EXECUTABLE=$PWD/.venv/bin/python3"
echo "build:     ninja -C build-cuda -j2 jet jet_gpu_tests"
echo "one file:  $T/bin/nvcc -gencode arch=compute_90a,code=sm_90a -std=c++17 -O3 --expt-relaxed-constexpr -DJET_CUDA=1 -DFMT_HEADER_ONLY=1 -Xptxas -v -Isrc -isystem ${TP%/share/cmake}/include -isystem ${TP%/share/cmake}/include/torch/csrc/api/include -isystem $T/include -c FILE.cu -o /tmp/x.o"
