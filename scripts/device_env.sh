# Sourced ON THE DEVICE before running binaries built HERE by scripts/cuda_local_build.sh (no device build):
# their RPATH points into this machine's .venv, so the device's torch/lib and the CUDA libraries of its
# torch wheel (site-packages/nvidia/*/lib) go on LD_LIBRARY_PATH, plus the unpacked .devdeps debs
# (scripts/device_lib.sh unpacks them into $DEV/root).
_jet_site=$(python3 -c 'import torch, os; print(os.path.dirname(os.path.dirname(torch.__file__)))')
_jet_libs=$_jet_site/torch/lib
for _d in "$_jet_site"/nvidia/*/lib "$_jet_site"/nvidia/cu13/lib; do [ -d "$_d" ] && _jet_libs=$_jet_libs:$_d; done
export LD_LIBRARY_PATH=$_jet_libs:${DEV:-/tmp/jetdev}/root/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
unset _jet_site _jet_libs _d
