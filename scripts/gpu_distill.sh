#!/usr/bin/env bash
# Issue 12 on the device: the distillation step, its kernels and the PyTorch baselines, in one warm machine's two
# back-to-back calls, with binaries built HERE (scripts/cuda_local_build.sh; `scripts/device_prepare.sh --bin`
# packs jet, jet_gpu_tests, bench_postnas_step and bench_jet_layer into .xfer-bin):
#   phase 1  carry .devdeps .teacher1 .xfer-bin: unpack; the gpu tests (GPU_TESTS filter, default all; SANITIZE=1 then
#            memcheck and racecheck on the training kernels' tests, SANITIZE_TESTS); the
#            JetBlock layer forward+backward (2B shapes) of jet and of the official layer (fla, its Hopper guard
#            off for timing) in the same call
#   phase 2  carry .teacher2 and the tokens (data/tokens-smollm2, or its cargo .cargoK carried by this or any earlier
#            call: scripts/device_prepare.sh with JET_CARGO="data/tokens-smollm2 data/eval"; or a one-shard copy
#            data/tokens-smollm2-bench carried in phase 1): join the teacher; bench_postnas_step (phase split + loop tok/s,
#            fast and reference paths, B16x512 and a larger batch); `jet postnas supernet` 200 steps fast vs
#            reference (loss curves, tok/s); the PyTorch baselines (bench/cuda/bench_distill_torch.py)
# Logs under $OUT; the summary last.
set -uo pipefail
PHASE=${1:?phase 1 or 2}
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
DEV=/tmp/jetdev; BIN=$DEV/bin
source scripts/device_teacher.sh  # the teacher's pieces (scripts/device_prepare.sh): teacher_take, teacher_path
T0=$(date +%s); stamp() { echo "[$(( $(date +%s) - T0 )) s] $*"; }
BATCH=${BATCH:-16}; SEQ=${SEQ:-512}; BIG=${BIG_BATCH:-64}

phase1() {
  unpack_prebuilt
  cargo_take || true
  tokens_take  # a small token set (data/tokens-smollm2-bench: the first training shard) may ride in this call
  source scripts/device_env.sh
  export PYTHONPATH=$DEV/site:$PWD/tests/py:${PYTHONPATH:-} PYTHONUNBUFFERED=1 JET_OFFICIAL=$DEV/official
  echo "commit $(cat $DEV/commit) | $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader)"
  stamp "gpu tests (${GPU_TESTS:-*})"
  timeout ${GTEST_S:-300} $BIN/jet_gpu_tests --gtest_filter="${GPU_TESTS:-*}" > $OUT/gtest.log 2>&1; echo "gtest rc=$?"
  grep -E "^\[  (PASSED|FAILED) |FAILED  \]" $OUT/gtest.log | head -20
  if [ "${SANITIZE:-0}" = 1 ]; then  # memcheck and racecheck on the training kernels' tests
    local san tool
    san=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null || echo)
    for tool in memcheck racecheck; do
      [ -n "$san" ] || { echo "no compute-sanitizer"; break; }
      stamp "compute-sanitizer $tool"
      timeout ${SANITIZE_S:-120} $san --tool $tool --error-exitcode 9 $BIN/jet_gpu_tests \
        --gtest_filter="${SANITIZE_TESTS:-*Norm*:*DeltaGates*:*DynamicConv*:*SiluMul*}" > $OUT/sanitize-$tool.log 2>&1
      echo "$tool rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' $OUT/sanitize-$tool.log | tail -1)"
    done
  fi
  stamp "layer forward+backward, jet then official"
  JET_BENCH_PARTS=${LAYER_PARTS:-train} $BIN/bench_jet_layer 2>&1 | tee $OUT/jet_layer.log | tail -6
  OFFICIAL_PARTS=${LAYER_PARTS:-train} OFFICIAL_TIME_HOPPER_BWD=1 timeout 240 python3 bench/cuda/bench_jetblock_official.py \
    2>&1 | tee $OUT/official_layer.log | tail -4
  stamp "phase 1 done"
}

supernet() {  # $1 label; env passes through (JET_DISTILL_REFERENCE)
  rm -rf $DEV/sn-$1
  $BIN/jet postnas supernet --teacher $T --data $TOKENS --out $DEV/sn-$1 --steps ${SN_STEPS:-200} \
    --batch $BATCH --seq-len $SEQ --device cuda --dtype bf16 --lr 1e-3 --warmup 20 --kl-chunk 2048 \
    --checkpoint-every 0 --max-full 2 --max-swa 2 > $OUT/supernet_$1.log 2>&1
  echo "supernet $1 rc=$?: $(tail -1 $OUT/supernet_$1.log | tr '\r' '\n' | tail -1)"
  cp $DEV/sn-$1/supernet.json $OUT/supernet_$1.json 2>/dev/null
}

phase2() {
  teacher_take || exit 1
  T=$(teacher_path)
  cargo_take || true
  tokens_take
  TOKENS=$(tokens_path)
  [ -n "$TOKENS" ] || { echo "no tokens: carry data/tokens-smollm2(-bench) or its cargo"; exit 1; }
  echo "tokens: $TOKENS"
  source scripts/device_env.sh
  export PYTHONPATH=$DEV/site:$PWD/tests/py:${PYTHONPATH:-} PYTHONUNBUFFERED=1 JET_OFFICIAL=$DEV/official
  stamp "bench_postnas_step"
  { $BIN/bench_postnas_step $T $BATCH $SEQ cuda bf16 20 0 2048
    if [ "${QUICK:-0}" = 0 ]; then  # QUICK=1: a short device session keeps the fast path's split and the big batch
      JET_SYNC_DEBUG=1 $BIN/bench_postnas_step $T $BATCH $SEQ cuda bf16 3 0 2048 2>&1 | grep -c -i "synchroniz" | sed 's/^/host syncs warned in 3 loop steps: /'
      JET_DISTILL_REFERENCE=1 $BIN/bench_postnas_step $T $BATCH $SEQ cuda bf16 10 0 512
    fi
    $BIN/bench_postnas_step $T $BIG $SEQ cuda bf16 10 0 2048
  } 2>&1 | tee $OUT/postnas_step.log
  stamp "jet postnas supernet, fast and reference"
  supernet fast
  JET_DISTILL_REFERENCE=1 supernet ref
  python3 - $OUT/supernet_fast.json $OUT/supernet_ref.json <<'PY' | tee $OUT/curves.txt
import json, sys
f, r = (json.load(open(p)) for p in sys.argv[1:3])
a, b = f["losses"], r["losses"]
print(f"tok/s fast {f['tokens_per_s']:.0f} reference {r['tokens_per_s']:.0f} ({f['tokens_per_s'] / r['tokens_per_s']:.2f}x)")
print("step-wise |fast - ref| / ref, first 10 steps:", " ".join(f"{abs(x - y) / y:.1e}" for x, y in zip(a[:10], b[:10])))
for w in range(0, len(a), 20):
    x, y = sum(a[w:w + 20]) / len(a[w:w + 20]), sum(b[w:w + 20]) / len(b[w:w + 20])
    print(f"steps {w:3d}-{w + 19:3d}: fast {x:.4f} ref {y:.4f} rel {abs(x - y) / y:.3f}")
PY
  stamp "PyTorch baselines"
  $BIN/jet convert --model $T --out $DEV/hf > /dev/null 2>&1 || echo "convert failed"
  timeout 300 python3 bench/cuda/bench_distill_torch.py $DEV/hf --batch $BATCH --seq-len $SEQ --steps 20 2>&1 | \
    grep -v Warning | tee $OUT/torch_baselines.log
  stamp "phase 2 done"
  echo "== summary"; grep -E "loop:|ms/step" $OUT/postnas_step.log; head -1 $OUT/curves.txt; grep "tok/s" $OUT/torch_baselines.log
}

case "$PHASE" in
  1) phase1 ;;
  2) phase2 ;;
esac
