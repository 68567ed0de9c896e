#!/usr/bin/env bash
# Issue 18 on a device of 2+ GPUs (not run yet: no such machine kind has been lent): `jet postnas supernet` data
# parallel on NCCL against one GPU, with binaries built HERE (scripts/cuda_local_build.sh; `scripts/device_prepare.sh
# --bin` packs jet into .xfer-bin), in one warm machine's two back-to-back calls:
#   phase 1  carry .devdeps .teacher1 .xfer-bin: unpack the binaries and the first teacher piece
#   phase 2  carry .teacher2 data/tokens-smollm2: join the teacher; the supernet step
#            (a) on 1 GPU at the per-GPU batch B, (b) on NPROC GPUs at batch NPROC·B (--nproc), (c) on 1 GPU at
#            batch NPROC·B: tokens/s of (a) and (b), the scaling efficiency tok/s(b) / (NPROC · tok/s(a)), and the
#            loss curves of (b) against (c) (the same global batches: equal within fp tolerance)
# Logs under $OUT; the summary last. Numbers go to bench/RESULTS.md with the card and the commit.
set -uo pipefail
source scripts/device_lib.sh  # DEV; the teacher's pieces (scripts/device_prepare.sh): teacher_take, teacher_path
PHASE=${1:?phase 1 or 2}
BIN=$DEV/bin
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
T0=$(date +%s); stamp() { echo "[$(( $(date +%s) - T0 )) s] $*"; }
B=${BATCH:-16}; SEQ=${SEQ:-512}; STEPS=${SN_STEPS:-100}; NPROC=${NPROC:-2}

phase1() {
  unpack_prebuilt
  echo "commit $(cat $DEV/commit) | $(nvidia-smi --query-gpu=name --format=csv,noheader | sort | uniq -c | tr -s ' ')"
  stamp "phase 1 done"
}

supernet() {  # $1 label, $2 batch, then extra flags
  local label=$1 batch=$2; shift 2
  rm -rf $DEV/sn-$label
  $BIN/jet postnas supernet --teacher $T --data $DEV/data/tokens-smollm2 --out $DEV/sn-$label --steps $STEPS \
    --batch $batch --seq-len $SEQ --device cuda --dtype bf16 --lr 1e-3 --warmup 10 --kl-chunk 2048 \
    --checkpoint-every 0 --max-full 2 --max-swa 2 "$@" > $OUT/supernet_$label.log 2>&1
  echo "supernet $label rc=$?: $(grep -a 'data parallel\|supernet: done' $OUT/supernet_$label.log | tr '\n' ' ')"
  cp $DEV/sn-$label/supernet.json $OUT/supernet_$label.json 2>/dev/null
}

phase2() {
  teacher_take || exit 1
  T=$(teacher_path)
  data_take data/tokens-smollm2
  source scripts/device_env.sh
  stamp "supernet: 1 GPU at batch $B, $NPROC GPUs at batch $((NPROC * B)), 1 GPU at batch $((NPROC * B))"
  supernet one $B
  supernet ddp $((NPROC * B)) --nproc $NPROC
  supernet one-big $((NPROC * B))
  python3 - $OUT/supernet_one.json $OUT/supernet_ddp.json $OUT/supernet_one-big.json $NPROC <<'PY' | tee $OUT/ddp.txt
import json, sys
one, ddp, big = (json.load(open(p)) for p in sys.argv[1:4])
n = int(sys.argv[4])
print(f"tok/s: 1 GPU {one['tokens_per_s']:.0f}, {n} GPUs {ddp['tokens_per_s']:.0f}; scaling efficiency "
      f"{ddp['tokens_per_s'] / (n * one['tokens_per_s']):.2f} (same per-GPU batch)")
a, b = ddp["losses"], big["losses"]
print("loss, NPROC GPUs vs 1 GPU at the same global batch, |a - b| / b, first 10 steps:",
      " ".join(f"{abs(x - y) / y:.1e}" for x, y in zip(a[:10], b[:10])))
print(f"max over all {len(a)} steps: {max(abs(x - y) / y for x, y in zip(a, b)):.1e}")
PY
  stamp "phase 2 done"
}

case "$PHASE" in
  1) phase1 ;;
  2) phase2 ;;
esac
