#!/usr/bin/env bash
# ON THE DEVICE: loss curves of several jet binaries on the same `jet postnas supernet` run (a bisect of a training
# change: which commit moves the curve). Build here, one binary per commit, xz-compressed as .xfer-ab/jet-NAME.xz
# (3.5 MB each; e.g. `git checkout C && ninja -C build-cuda jet && strip -o /tmp/j build-cuda/jet && xz -c /tmp/j >
# .xfer-ab/jet-C.xz`). Any call that carries .xfer-ab keeps the binaries in $DEV/ab (ab_take: this script, the
# phase-1 calls of gpu_distill.sh and gpu_postnas.sh, `gpu_postnas.sh pieces`), so a set too big for one call comes
# over several; the teacher comes in pieces (.teacherK, scripts/device_teacher.sh) and the tokens as
# data/tokens-smollm2-bench (or the cargo) in any earlier call of the same warm machine. Then:
#   bash scripts/gpu_supernet_ab.sh       runs every binary in $DEV/ab not run yet, fast path; REF=1 also each one's
#                                         reference path (JET_DISTILL_REFERENCE=1), a carried NAME.refs other variants
#                                         (todo below); STEPS (200), BATCH (16), SEQ (512), LR (1e-3), TRANSFER (0;
#                                         attention-transfer steps first, the regime of real runs);
#                                         REPS=N: N replicates of each, seeds 0..N−1 for every variant (the 200-step
#                                         curve from random blocks scatters: identical runs part after ~5 steps, by
#                                         nondeterministic reductions, and some reach a much lower curve than others,
#                                         up to 1.8 apart)
#   BG=1 bash scripts/gpu_supernet_ab.sh  the same in the background (beside a long job, e.g. a quality run), from a
#                                         private copy of the scripts; binaries a later call brings are taken up too
#   SHOW=1 bash scripts/gpu_supernet_ab.sh  only prints the results so far
# Prints each run's (each replicate group's mean ± sd) 20-step mean losses side by side; the runs' supernet.json
# (losses) as ab-NAME.json in $OUT/ab.tgz (a call brings back only a few files).
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
DEV=/tmp/jetdev
source scripts/device_teacher.sh
R=$DEV/ab-out; mkdir -p $R
ab_take
cargo_take || true
tokens_take

show() {
  tar -C $R -czf $OUT/ab.tgz .
  python3 - "$R" <<'PY'
import glob, json, os, re, statistics as st, sys
runs = {os.path.basename(p)[3:-5]: json.load(open(p)) for p in sorted(glob.glob(os.path.join(sys.argv[1], "ab-*.json")))}
if not runs: sys.exit("no finished runs yet")
groups = {}  # replicates (LABEL-rK) together
for name, r in runs.items():
    groups.setdefault(re.sub(r"-r[0-9]+$", "", name), []).append(r)
n = min(len(r["losses"]) for rs in groups.values() for r in rs)
def mean_sd(rs, a, b):
    v = [sum(r["losses"][a:b]) / (b - a) for r in rs]
    return st.mean(v), (st.stdev(v) if len(v) > 1 else float("nan")), v
print("20-step mean loss; replicates: mean ± sd (n)")
print("steps    " + " ".join(f"{g[-22:]:>22}" for g in groups))
for w in range(0, n, 20):
    cells = []
    for rs in groups.values():
        m, sd, v = mean_sd(rs, w, min(w + 20, n))
        cells.append(f"{m:.4f}" + (f" ± {sd:.3f} ({len(v)})" if len(v) > 1 else ""))
    print(f"{w:3d}-{min(w + 20, n) - 1:3d}  " + " ".join(f"{c:>22}" for c in cells))
print("tok/s    " + " ".join(f"{st.mean(r['tokens_per_s'] for r in rs):22.0f}" for rs in groups.values()))
# Each reference variant against its binary's fast path over the last 20 steps: the difference of the means and
# twice its standard error (replicates on both sides); "apart" where the difference is larger.
a = max(0, n - 20)
for g, rs in groups.items():
    base = g.split("-ref-")[0]
    if g == base or base not in groups:
        continue
    mf, sf, vf = mean_sd(groups[base], a, n)
    mr, sr, vr = mean_sd(rs, a, n)
    if len(vf) < 2 or len(vr) < 2:
        print(f"{base}: fast {mf:.4f} vs {g}: {mr:.4f} (steps {a}-{n - 1}; one run a side: no error bar, REPS=N)")
        continue
    d, se2 = mf - mr, 2 * (sf ** 2 / len(vf) + sr ** 2 / len(vr)) ** 0.5
    print(f"{base}: fast - {g[len(base) + 1:]} = {d:+.4f} ± {se2:.4f} (2 s.e., steps {a}-{n - 1}, {len(vf)}+{len(vr)} runs)"
          f" {'apart' if abs(d) > se2 else 'within'}")
PY
}
if [ "${SHOW:-0}" = 1 ]; then
  [ -f $DEV/ab-bg.log ] && tail -5 $DEV/ab-bg.log
  show; exit 0
fi
teacher_take || exit 0
[ -n "$(tokens_path)" ] || { echo "no tokens yet: carry data/tokens-smollm2-bench or the cargo"; exit 0; }
if [ "${BG:-0}" = 1 ]; then
  if [ -f $DEV/ab-bg.pid ] && kill -0 "$(cat $DEV/ab-bg.pid)" 2>/dev/null; then echo "background runs going on"; exit 0; fi
  rm -rf $DEV/ab-work && mkdir -p $DEV/ab-work && cp -r scripts $DEV/ab-work/
  (cd $DEV/ab-work && BG=0 setsid bash scripts/gpu_supernet_ab.sh > $DEV/ab-bg.log 2>&1 < /dev/null & echo $! > $DEV/ab-bg.pid)
  echo "background runs started"; exit 0
fi
source scripts/device_env.sh
T=$(teacher_path) TOKENS=$(tokens_path)
run() {  # $1 binary, $2 label; replicate K (label ...-rK) draws its data and sub-networks with seed K − 1
  local seed=0
  [[ $2 =~ -r([0-9]+)$ ]] && seed=$(( ${BASH_REMATCH[1]} - 1 ))
  rm -rf $DEV/ab-run
  "$1" postnas supernet --teacher $T --data $TOKENS --out $DEV/ab-run --steps ${STEPS:-200} --batch ${BATCH:-16} \
    --seq-len ${SEQ:-512} --device cuda --dtype bf16 --lr ${LR:-1e-3} --warmup 20 --kl-chunk 2048 --checkpoint-every 0 \
    --max-full 2 --max-swa 2 --seed $seed --transfer-steps ${TRANSFER:-0} > $R/ab-$2.log 2>&1 || echo "$2: rc=$? ($(tail -c 300 $R/ab-$2.log))"
  cp $DEV/ab-run/supernet.json $R/ab-$2.json 2>/dev/null
}
# The next run to do, "BINARY VARIANT LABEL": each binary's fast path, or the variants a carried NAME.refs beside
# jet-NAME.xz lists instead (fast, 1, kl, adam, sync or sums of them, e.g. "fast kl adam,sync"); REF=1 adds the whole
# reference path (1) to each. Empty when all are done.
todo() {
  local f n v b l k
  for f in $DEV/ab/*; do
    [ -e "$f" ] || continue  # none carried yet
    case $f in *.refs) continue ;; esac
    n=$(basename $f)
    for v in $(cat $f.refs 2>/dev/null || echo fast) $([ "${REF:-0}" = 1 ] && echo 1); do
      b=$n; [ $v = fast ] || b=$n-ref-${v//,/+}
      for k in $(seq 1 ${REPS:-1}); do
        l=$b; [ ${REPS:-1} = 1 ] || l=$b-r$k
        [ -e $R/ab-$l.log ] || { echo "$f $v $l"; return; }
      done
    done
  done
}
# Until every run is done (binaries that come while this runs are taken up too).
while true; do
  next=$(todo); [ -n "$next" ] || break
  set -- $next
  if [ $2 = fast ]; then run $1 $3; else JET_DISTILL_REFERENCE=$2 run $1 $3; fi
done
show
