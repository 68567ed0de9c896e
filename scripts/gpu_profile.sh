#!/usr/bin/env bash
# ON THE DEVICE, after `scripts/gpu_postnas.sh 1` (or gpu_distill.sh 1) put the binaries in /tmp/jetdev/bin:
# kernel durations of the JetBlock training path under Nsight Compute (one metric, gpu__time_duration, clocks
# left alone), grouped by kernel name, as a table and a CSV under $OUT.
#   scripts/gpu_profile.sh layer   bench_jet_layer's forward+backward at the 2B shapes (JET_BENCH_PARTS=train)
#   scripts/gpu_profile.sh step    bench_postnas_step's phase split at B16x512 on SmolLM2 (needs the joined teacher)
# ncu serialises kernels, so the sums are kernel time without overlap or launch gaps; the first N launches only
# (NCU_COUNT) to keep the call short.
set -uo pipefail
WHAT=${1:?layer or step}
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
DEV=/tmp/jetdev; BIN=$DEV/bin
source scripts/device_teacher.sh
source scripts/device_env.sh
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
[ -n "$NCU" ] || { echo "no ncu on this machine"; exit 1; }
prof() {  # $1 name, rest: the command
  local name=$1; shift
  timeout 400 "$NCU" --clock-control none --metrics gpu__time_duration.sum --csv --print-units base \
    --launch-count "${NCU_COUNT:-6000}" "$@" > $DEV/ncu-$name.csv 2> $DEV/ncu-$name.err
  echo "ncu $name rc=$? ($(wc -l < $DEV/ncu-$name.csv) lines)"
  python3 - $DEV/ncu-$name.csv "$OUT/profile-$name" <<'PY'
import csv, sys, collections
rows = [r for r in csv.reader(l for l in open(sys.argv[1]) if l.startswith('"'))]
head, body = rows[0], rows[1:]
ki, vi, ii = head.index("Kernel Name"), head.index("Metric Value"), head.index("ID")
tot, cnt = collections.Counter(), collections.Counter()
seq = []
for r in body:
    try:
        ns = float(r[vi].replace(",", ""))
    except ValueError:
        continue
    name = r[ki][:160]
    tot[name] += ns; cnt[name] += 1; seq.append((int(r[ii]), name, ns))
all_ns = sum(tot.values())
with open(sys.argv[2] + ".md", "w") as f:
    f.write(f"{len(seq)} kernels, {all_ns / 1e6:.2f} ms in all\n\n| ms | % | calls | kernel |\n|---:|---:|---:|---|\n")
    for name, ns in tot.most_common(60):
        f.write(f"| {ns / 1e6:.3f} | {100 * ns / all_ns:.1f} | {cnt[name]} | {name.replace('|', '/')} |\n")
with open(sys.argv[2] + "-seq.csv", "w") as f:
    w = csv.writer(f); w.writerow(["id", "kernel", "ns"]); w.writerows(seq)
print(open(sys.argv[2] + ".md").read()[:6000])
PY
}
case "$WHAT" in
  layer) JET_BENCH_PARTS=train prof layer $BIN/bench_jet_layer ;;
  step) teacher_take || exit 1
        prof step $BIN/bench_postnas_step "$(teacher_path)" ${BATCH:-16} 512 cuda bf16 1 0 2048 ;;
esac
