#!/usr/bin/env bash
# Runs ON THE DEVICE (lent GPU machine), from the repo root, in phases so the teacher GGUF (too big
# for one call) can arrive in pieces (scripts/device_prepare.sh cuts them; SmolLM2: .teacher1 .teacher2):
#   phase 1 (carry .devdeps .teacher1):  unpack deps, start the CUDA build in the background
#   pieces  (carry .teacherK ...):       only keep those pieces (a teacher of more than two pieces)
#   phase 2 (carry the last piece):      join the teacher, wait for the build, run gpu tests + benches
# Logs go to $OUT; the last thing printed is a short table.
set -uo pipefail
PHASE=${1:-all}
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
ROOT=$PWD
source scripts/device_lib.sh  # DEV, BUILD, device_phase1

phase1() { device_phase1 ; }

phase2() {
  teacher_take || exit 1
  mkdir -p models && ln -sf "$(teacher_path)" models/
  while [ ! -f $DEV/build.rc ]; do sleep 2; done
  cp $DEV/build.log "$OUT/build.log"
  if [ "$(cat $DEV/build.rc)" != 0 ]; then tail -40 $DEV/build.log; echo "BUILD FAILED"; exit 1; fi
  export PYTHONPATH=$DEV/site:${PYTHONPATH:-}
  export LD_LIBRARY_PATH=$DEV/root/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
  ctest --test-dir $BUILD -L gpu --output-on-failure -j1 2>&1 | tee "$OUT/ctest_gpu.log" | tail -30
  bash scripts/gpu_bench.sh 2>&1 | tee "$OUT/bench.log"
}

case "$PHASE" in
  1) phase1 ;;
  pieces) teacher_take ;;
  2) phase2 ;;
  all) phase1; phase2 ;;
esac
