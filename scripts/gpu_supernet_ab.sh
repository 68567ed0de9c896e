#!/usr/bin/env bash
# ON THE DEVICE: loss curves of several jet binaries on the same `jet postnas supernet` run (a bisect of a training
# change: which commit moves the curve). Build here, one binary per commit, xz-compressed as .xfer-ab/jet-NAME.xz
# (3.5 MB each; e.g. `git checkout C && ninja -C build-cuda jet && strip -o /tmp/j build-cuda/jet && xz -c /tmp/j >
# .xfer-ab/jet-C.xz`). Any call that carries .xfer-ab keeps the binaries in $DEV/ab; the teacher comes in pieces
# (.teacherK, scripts/device_teacher.sh) and the tokens as data/tokens-smollm2-bench (or the cargo) in any earlier
# call of the same warm machine. Then, in the call that completes them:
#   bash scripts/gpu_supernet_ab.sh            every binary in $DEV/ab, fast path; REF=1 also each one's reference
#                                              path (JET_DISTILL_REFERENCE=1); STEPS (200), BATCH (16), SEQ (512)
# Prints each run's 20-step mean losses side by side; the runs' supernet.json (losses) as ab-NAME.json in $OUT/ab.tgz
# (a call brings back only a few files).
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
DEV=/tmp/jetdev
source scripts/device_teacher.sh
mkdir -p $DEV/ab
for f in .xfer-ab/*.xz; do [ -f "$f" ] && xz -dc "$f" > $DEV/ab/$(basename "$f" .xz) && chmod +x $DEV/ab/$(basename "$f" .xz); done
cargo_take || true
tokens_take
teacher_take || exit 0
TOKENS=$(tokens_path)
[ -n "$TOKENS" ] || { echo "no tokens yet: carry data/tokens-smollm2-bench or the cargo"; exit 0; }
source scripts/device_env.sh
T=$(teacher_path)
R=$DEV/ab-out; rm -rf $R && mkdir -p $R
run() {  # $1 binary, $2 label
  rm -rf $DEV/ab-run
  "$1" postnas supernet --teacher $T --data $TOKENS --out $DEV/ab-run --steps ${STEPS:-200} --batch ${BATCH:-16} \
    --seq-len ${SEQ:-512} --device cuda --dtype bf16 --lr 1e-3 --warmup 20 --kl-chunk 2048 --checkpoint-every 0 \
    --max-full 2 --max-swa 2 > $R/ab-$2.log 2>&1 || echo "$2: rc=$? ($(tail -c 300 $R/ab-$2.log))"
  cp $DEV/ab-run/supernet.json $R/ab-$2.json 2>/dev/null
}
for b in $DEV/ab/*; do
  name=$(basename $b)
  run $b $name
  [ "${REF:-0}" = 1 ] && JET_DISTILL_REFERENCE=1 run $b $name-ref
done
tar -C $R -czf $OUT/ab.tgz .
python3 - "$R" <<'PY'
import glob, json, os, sys
runs = {os.path.basename(p)[3:-5]: json.load(open(p)) for p in sorted(glob.glob(os.path.join(sys.argv[1], "ab-*.json")))}
names = list(runs)
print("steps    " + " ".join(f"{n[-12:]:>12}" for n in names))
n = min(len(r["losses"]) for r in runs.values())
for w in range(0, n, 20):
    print(f"{w:3d}-{w + 19:3d}  " + " ".join(f"{sum(r['losses'][w:w + 20]) / len(r['losses'][w:w + 20]):12.4f}" for r in runs.values()))
print("tok/s    " + " ".join(f"{r['tokens_per_s']:12.0f}" for r in runs.values()))
PY
