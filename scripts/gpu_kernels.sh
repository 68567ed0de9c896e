#!/usr/bin/env bash
# Runs ON THE DEVICE, from the repo root, in one call (the machine starts bare): the issue-3 kernel work.
#   build (jet, jet_gpu_tests, the two CUDA benches) while the official layer is timed (it needs no jet);
#   then the gpu gtests alongside the official-parity test (nothing timed there); then jet's benches alone
#   on the GPU; then compute-sanitizer (memcheck, racecheck) on the step-kernel tests with the time left.
#   Logs go to $OUT, a short summary is printed last.
#   DEVDEPS: folder with deb/, whl/ and official/ (scripts/device_prepare.sh, scripts/official_copy.sh).
#   MODE=check: only build jet_gpu_tests, run it, then compute-sanitizer (no official code, no benches).
#   PREBUILT=dir: no device build; dir holds jet, jet_gpu_tests, bench_jet_layer, bench_linear_attention_step
#     built HERE by scripts/cuda_local_build.sh (the device's torch/CUDA libraries go on LD_LIBRARY_PATH);
#     then the official bench runs alone first, the jet benches alone next, the tests after them.
set -uo pipefail
MODE=${MODE:-all}
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
DEVDEPS=$(cd "${DEVDEPS:-.devdeps}" && pwd)
DEV=/tmp/jetdev; BUILD=build-gpu
T0=$(date +%s); stamp() { echo "[$(( $(date +%s) - T0 )) s] $*"; }
mkdir -p $DEV/root
for f in "$DEVDEPS"/deb/*.deb; do dpkg -x "$f" $DEV/root; done
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target $DEV/site \
  "$DEVDEPS"/whl/*.whl > $DEV/pip.log 2>&1 || { cat $DEV/pip.log; echo "PIP FAILED"; }
export PYTHONPATH=$DEV/site:$PWD/tests/py:${PYTHONPATH:-}
export LD_LIBRARY_PATH=$DEV/root/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
export JET_OFFICIAL=$DEVDEPS/official JET_ROOT=$PWD JET_BIN=$PWD/$BUILD/jet PYTHONUNBUFFERED=1
if [ -n "${PREBUILT:-}" ]; then
  BUILD=$(cd "$PREBUILT" && pwd); export JET_BIN=$BUILD/jet
  if [ -f scripts/device_env.sh ]; then . scripts/device_env.sh; else
    TL=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')/lib
    NL=$(python3 -c 'import nvidia,os;print(os.path.dirname(nvidia.__path__[0]))')/nvidia/cu13/lib
    export LD_LIBRARY_PATH=$TL:$NL:$LD_LIBRARY_PATH
  fi
  echo 0 > $DEV/build.rc
  if [ "$MODE" != check ]; then
    timeout 240 python3 bench/cuda/bench_jetblock_official.py > "$OUT/official_bench.log" 2>&1
    echo "official bench rc=$?" >> "$OUT/official_bench.log"; stamp "official bench done"
    timeout 150 $BUILD/bench_jet_layer > "$OUT/jet_bench.log" 2>&1; echo "jet bench rc=$?" >> "$OUT/jet_bench.log"
    timeout 40 $BUILD/bench_linear_attention_step > "$OUT/step_bench.log" 2>&1
    echo "---- JET_LA_STEP_VEC=1 (one column per lane)" >> "$OUT/step_bench.log"
    JET_LA_STEP_VEC=1 timeout 40 $BUILD/bench_linear_attention_step >> "$OUT/step_bench.log" 2>&1
    stamp "benches done"
  fi
  BUILD_PID=
else
TORCH_PREFIX=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
( cmake -S . -B $BUILD -G Ninja -DJET_CUDA=ON -DCMAKE_PREFIX_PATH="$TORCH_PREFIX;$DEV/root/usr" \
    -DPython3_EXECUTABLE="$(which python3)" > "$OUT/build.log" 2>&1 &&
  if [ "$MODE" = check ]; then TARGETS=jet_gpu_tests; else TARGETS="jet jet_gpu_tests bench_jet_layer bench_linear_attention_step"; fi
  nice -n 10 ninja -C $BUILD -j16 $TARGETS >> "$OUT/build.log" 2>&1
  echo $? > $DEV/build.rc ) &
BUILD_PID=$!
stamp "build started"
if [ "$MODE" != check ]; then
  timeout 240 python3 bench/cuda/bench_jetblock_official.py > "$OUT/official_bench.log" 2>&1
  echo "official bench rc=$?" >> "$OUT/official_bench.log"
  stamp "official bench done"
fi
fi
[ -n "$BUILD_PID" ] && wait $BUILD_PID
stamp "build rc=$(cat $DEV/build.rc 2>/dev/null)"
if [ "$(cat $DEV/build.rc 2>/dev/null)" != 0 ]; then grep -B2 -A12 "error" "$OUT/build.log" | head -60; echo "BUILD FAILED"; exit 1; fi
GTESTS=$BUILD/tests/jet_gpu_tests; [ -x "$GTESTS" ] || GTESTS=$BUILD/jet_gpu_tests
( timeout 150 $GTESTS > "$OUT/gtest.log" 2>&1; echo "gtest rc=$?" >> "$OUT/gtest.log" ) &
CHECK_PID=$!
if [ "$MODE" != check ]; then
  timeout 200 python3 tests/py/test_jetblock_official_gpu.py > "$OUT/parity.log" 2>&1
  echo "parity rc=$?" >> "$OUT/parity.log"
  stamp "parity done"
fi
wait $CHECK_PID
stamp "gtests done"
if [ "$MODE" != check ] && [ -z "${PREBUILT:-}" ]; then
  timeout 150 $BUILD/bench_jet_layer > "$OUT/jet_bench.log" 2>&1; echo "jet bench rc=$?" >> "$OUT/jet_bench.log"
  timeout 40 $BUILD/bench_linear_attention_step > "$OUT/step_bench.log" 2>&1
  stamp "benches done"
fi
# compute-sanitizer last, within what is left of a ${BUDGET_S:-330} s budget: memcheck on every step- and
# chunk-kernel test, racecheck on the chunk kernels (packed sequences, the other members), the JetBlock step
# and the output-gate kernel (the shared-memory patterns of the other instantiations are the same code).
SAN=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null || echo)
for spec in "memcheck:LinearAttentionStepCuda.*:LinearAttentionChunkCuda.*:DynamicConvCuda.*" \
    "racecheck:LinearAttentionChunkCuda.PackedSequences*:LinearAttentionChunkCuda.OtherMembers*:LinearAttentionStepCuda.JetBlock*:LinearAttentionStepCuda.GatedRms*"; do
  tool=${spec%%:*}; filter=${spec#*:}; left=$(( ${BUDGET_S:-330} - ($(date +%s) - T0) ))
  if [ -z "$SAN" ]; then echo "compute-sanitizer: not found" > "$OUT/sanitizer_$tool.log"; continue; fi
  if [ $left -lt 20 ]; then echo "$tool: skipped, no time left" > "$OUT/sanitizer_$tool.log"; continue; fi
  timeout $left "$SAN" --tool $tool --error-exitcode 9 $GTESTS --gtest_filter="$filter" \
    > "$OUT/sanitizer_$tool.log" 2>&1
  echo "$tool rc=$? (filter $filter, limit $left s)" >> "$OUT/sanitizer_$tool.log"
done
stamp "sanitizer done"
echo "================ summary ($(cat COMMIT 2>/dev/null), $(nvidia-smi --query-gpu=name --format=csv,noheader))"
grep -E "^\[  (PASSED|FAILED)|FAILED  \]|gtest rc" "$OUT/gtest.log"
grep -E "^  (gdn|deltanet|fixed|linear|retnet|mamba2)" "$OUT/gtest.log" | awk '{o=$(NF-2); s=$NF; if (o>mo) mo=o; if (s>ms) ms=s} END {print "chunk kernel max rel err: o " mo ", state " ms " (" NR " cases)"}'
for t in memcheck racecheck; do grep -E "ERROR SUMMARY|rc=|not found|skipped" "$OUT/sanitizer_$t.log" 2>/dev/null | tail -2; done
[ "$MODE" = check ] && exit 0
grep -vE "^ok " "$OUT/parity.log" | tail -12; grep -cE "^ok " "$OUT/parity.log" | sed 's/^/parity ok lines: /'
grep -E "rel err" "$OUT/parity.log" | sed -E 's/^(ok|FAIL) +//' | awk '{print}' | head -16
cat "$OUT/official_bench.log" | grep -v -i warn | tail -11
cat "$OUT/jet_bench.log" | tail -14
grep -E "copy|jet step|gdn step|----" "$OUT/step_bench.log" | grep -E "copy| 256 |----"
