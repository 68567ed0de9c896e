#!/usr/bin/env bash
# PostNAS on the real teacher ON THE DEVICE, in calls of under 10 minutes each (the machine stays warm
# only briefly between calls, so make them back to back). Run scripts/device_prepare.sh here first.
#   phase 1  carry .devdeps .teacher1: deps and the CUDA build (jet) in the background
#   phase 2  carry .teacher2 data/tokens-smollm2: join the teacher, wait for the build (and rebuild what
#            changed since phase 1), probe the training speed, size the
#            run to ${JET_GPU_MINUTES:-8} minutes and start `jet postnas run` in the background
#   phase 3  (repeat until it prints DONE) wait up to 8 minutes, then copy results under $OUT
# The run's config is configs/postnas-smollm2-gpu.json with the step counts set from the probe
# (written to runs/smollm2-gpu/config.json, which records the budget that was used).
set -uo pipefail
PHASE=${1:?phase 1, 2 or 3}
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
source scripts/device_lib.sh  # DEV, BUILD, device_phase1
RUN=runs/smollm2-gpu
T=$DEV/SmolLM2-135M-Instruct.Q4_1.gguf  # teacher and data live outside the repo copy: they outlive the calls

phase1() { device_phase1 jet; }

phase2() {
  cat $DEV/teacher.part1 .teacher2/part > $T
  mkdir -p $DEV/data && rm -rf $DEV/data/tokens-smollm2 && cp -r data/tokens-smollm2 $DEV/data/  # carried paths do not outlive their call
  while [ ! -f $DEV/build.rc ]; do sleep 2; done
  [ "$(cat $DEV/build.rc)" = 0 ] && { ninja -C $BUILD -j16 jet >> $DEV/build.log 2>&1 || echo 1 > $DEV/build.rc; }
  cp $DEV/build.log "$OUT/build.log"
  if [ "$(cat $DEV/build.rc)" != 0 ]; then tail -40 $DEV/build.log; echo "BUILD FAILED"; exit 1; fi
  export PYTHONPATH=$DEV/site:${PYTHONPATH:-}
  export LD_LIBRARY_PATH=$DEV/root/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}  # libcpp-httplib from .devdeps
  # Probe: 12 supernet steps at the run's shapes -> tokens/s -> step counts for the time budget.
  rm -rf $DEV/probe
  mkdir -p $RUN
  python3 - "$T" "$DEV/data/tokens-smollm2" <<'PY'
import json, sys
c = json.load(open("configs/postnas-smollm2-gpu.json"))
c["teacher"], c["data"]["dir"] = sys.argv[1], sys.argv[2]
json.dump(c, open("runs/smollm2-gpu/config.json", "w"), indent=1)
PY
  python3 - "$DEV/probe" <<'PY'
import json, subprocess, sys
c = json.load(open("runs/smollm2-gpu/config.json"))
s = c["supernet"]
args = ["build-gpu/jet", "postnas", "supernet", "--teacher", c["teacher"], "--data", c["data"]["dir"], "--out", sys.argv[1],
        "--steps", "12", "--batch", str(s["batch"]), "--seq-len", str(s["seq_len"]), "--device", "cuda", "--dtype", c["dtype"],
        "--swa-window", str(s["swa_window"]), "--checkpoint-every", "0"]
subprocess.run(args, check=True)
PY
  python3 - "$DEV/probe" <<'PY'
import json, os, sys
m = json.load(open(os.path.join(sys.argv[1], "supernet.json")))
c = json.load(open("runs/smollm2-gpu/config.json"))
tps = m["tokens_per_s"] * 1.1  # the probe includes its warm-up steps
minutes = float(os.environ.get("JET_GPU_MINUTES", "8"))
share = {"supernet": 0.45, "finetune": 0.15}  # x2 finetunes (learned, uniform); the rest: place + eval
for k, f in share.items():
    per_step = c[k]["batch"] * c[k]["seq_len"]
    c[k]["steps"] = max(20, int(minutes * 60 * f * tps / per_step))
    c[k]["checkpoint_every"] = max(10, c[k]["steps"] // 5)
json.dump(c, open("runs/smollm2-gpu/config.json", "w"), indent=1)
json.dump({"minutes": minutes, "probed_supernet_tok_per_s": tps, "supernet_steps": c["supernet"]["steps"],
           "finetune_steps": c["finetune"]["steps"]}, open("runs/smollm2-gpu/budget.json", "w"), indent=1)
print("probe:", round(tps), "tok/s; supernet steps", c["supernet"]["steps"], "finetune steps", c["finetune"]["steps"])
PY
  setsid bash -c "build-gpu/jet postnas run --config $RUN/config.json > $DEV/run.log 2>&1; echo \$? > $DEV/run.rc" \
    < /dev/null > /dev/null 2>&1 &
  echo "phase 2: run started"
}

phase3() {
  local waited=0
  while [ ! -f $DEV/run.rc ] && [ $waited -lt 480 ]; do sleep 5; waited=$((waited + 5)); done
  tr '\r' '\n' < $DEV/run.log | grep -v '^\s*$' | awk '!/\[#/ || NR % 20 == 0' | tail -60
  for f in $RUN/config.json $RUN/budget.json $RUN/eval.json $RUN/place-*.json $RUN/placements.png $RUN/supernet/supernet.json; do
    [ -f "$f" ] && cp "$f" "$OUT/"
  done
  cp $DEV/run.log "$OUT/run.log" 2>/dev/null
  if [ -f $DEV/run.rc ]; then echo "DONE rc=$(cat $DEV/run.rc)"; else echo "still running"; fi
}

case "$PHASE" in
  1) phase1 ;;
  2) phase2 ;;
  3) phase3 ;;
esac
