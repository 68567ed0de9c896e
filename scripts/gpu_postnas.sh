#!/usr/bin/env bash
# PostNAS on the real teacher ON THE DEVICE, with binaries built HERE (scripts/cuda_local_build.sh,
# build-cuda/) so no device minute goes to compiling. Run `scripts/device_prepare.sh --bin` here first, then
# back-to-back calls (the machine stays warm only briefly between calls):
#   phase 1  carry .devdeps .teacher1 .xfer-bin: unpack deps, keep teacher piece 1 and the binaries in $DEV
#   pieces   carry .teacherK (one call per piece, 2..N-1, when the teacher has more than two): keep them
#   phase 2  carry the last piece and the config's data dir (SmolLM2: .teacher2 data/tokens-smollm2; a data dir
#            too big to share a call goes alone in a call `pieces` before): join the teacher (sha256-checked),
#            probe the training speed, size the run to
#            ${JET_GPU_MINUTES:-7} minutes, start `jet postnas run` in the background; while it runs, the gpu
#            gtests and the gpu py tests; then wait for the run (up to the call's time)
#   phase 3  (only if phase 2 said "still running") wait up to WAIT_S (480) seconds more; rerunning phase 2's
#            `jet postnas run` in $DEV/work continues a stopped run from its checkpoints
# Options (environment): JET_PROBE=0 keeps the config's step counts (no speed probe), JET_SCALE=0.7 scales them; JET_RUN_TESTS=0 skips the
# gpu tests beside the run; JET_BENCH_CONTEXTS="4096 16384 65536" times decode (`jet bench`, synthetic cache, the
# largest batch) of the teacher and each hybrid after the run (bench-<model>-<context>.json in the run folder);
# JET_TEACHER_EVAL="hellaswag,mmlu,..." then scores the teacher on those full sets (teacher-full.json). The run's
# select/hwsearch reports run after those benches (job below). Data may come
# as cargo (scripts/device_prepare.sh with JET_CARGO="data/tokens-smollm2 data/eval": .cargoK pieces, in `pieces`
# calls or beside the last teacher piece): the run then sees it as its data/ folder.
# The run's config is JET_CONFIG (default configs/postnas-smollm2-gpu.json; e.g.
# configs/postnas-qwen2.5-coder-0.5b-gpu.json) with the step counts set from the probe (written to its "out"
# folder as config.json with budget.json, which record the budget that was used).
set -uo pipefail
PHASE=${1:?phase 1, pieces, 2 or 3}
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
DEV=/tmp/jetdev; BIN=$DEV/bin
CONFIG=${JET_CONFIG:-configs/postnas-smollm2-gpu.json}
RUN=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["out"])' "$CONFIG")
DATA=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["data"]["dir"])' "$CONFIG")
source scripts/device_teacher.sh  # teacher, data and binaries live outside the repo copy: they outlive the calls
T0=$(date +%s); stamp() { echo "[$(( $(date +%s) - T0 )) s] $*"; }

phase1() {
  unpack_prebuilt
  source scripts/device_env.sh
  $BIN/jet --version 2>&1 | head -2; ls -la $BIN
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  stamp "phase 1 done ($(cat $DEV/commit))"
}

wait_run() {  # $1: seconds at most
  local waited=0
  while [ ! -f $DEV/run.rc ] && [ $waited -lt "$1" ]; do sleep 5; waited=$((waited + 5)); done
  tr '\r' '\n' < $DEV/run.log | grep -v '^\s*$' | awk '!/\[#/ || NR % 25 == 0' | tail -50
  # One tarball: only a few files come back per call, and none whose name has a '+' (hybrid-kl+passkey).
  local pack=$DEV/pack
  rm -rf $pack && mkdir -p $pack
  cp $RUN/*.json $RUN/*.png $RUN/supernet/supernet.json $DEV/run.log $pack/ 2>/dev/null
  for f in $RUN/hybrid-*/config.json; do [ -f "$f" ] && cp "$f" "$pack/$(basename $(dirname $f))-config.json"; done
  tar -C $pack -czf "$OUT/run-results.tgz" . && echo "results: \$OUT/run-results.tgz ($(ls $pack | wc -l) files)"
  if [ -f $DEV/run.rc ]; then echo "DONE rc=$(cat $DEV/run.rc)"; else echo "still running"; fi
}

phase2() {
  teacher_take || exit 1
  T=$(teacher_path)
  if cargo_take; then
    DATA_ROOT=$DEV/cargo/root/data
  else
    data_take "$DATA"  # carried paths do not outlive their call
    [ -d $DEV/data/$(basename $DATA) ] || { echo "carry $DATA or its cargo (in this call or a 'pieces' call before)"; exit 1; }
    DATA_ROOT=$DEV/data
  fi
  export PYTHONPATH=$DEV/site:$PWD/tests/py:${PYTHONPATH:-} PYTHONUNBUFFERED=1
  source scripts/device_env.sh
  rm -rf $DEV/probe $DEV/run.rc
  # The run works in a copy of the tree in $DEV: the next call replaces the repo copy under a running job.
  rm -rf $DEV/work && mkdir -p $DEV/work
  tar --exclude='./.teacher*' --exclude='./.cargo*' --exclude=./data --exclude=./.devdeps --exclude='./.xfer-*' -cf - . |
    tar -xf - -C $DEV/work
  cd $DEV/work && mkdir -p $RUN && ln -sfn $DATA_ROOT data  # data/eval (benchmarks) is found as in a checkout
  python3 - "$T" "$DATA_ROOT/$(basename $DATA)" "$CONFIG" "$RUN" <<'PY'
import json, os, sys
c = json.load(open(sys.argv[3]))
c["teacher"], c["data"]["dir"] = sys.argv[1], sys.argv[2]
c["data"].pop("input", None), c["data"].pop("holdout_input", None)  # prepared here; the text is not carried
scale = float(os.environ.get("JET_SCALE", "1"))  # < 1: a shorter session (fewer supernet/finetune steps)
if scale != 1:
    for sec, keys in (("supernet", ("transfer_steps", "steps")), ("finetune", ("steps",))):
        for k in keys:
            if k in c.get(sec, {}):
                c[sec][k] = max(10, int(c[sec][k] * scale))
    print("JET_SCALE", scale, {k: c[k].get("steps") for k in ("supernet", "finetune")})
json.dump(c, open(sys.argv[4] + "/config.json", "w"), indent=1)
PY
  # Probe: 12 supernet steps at the run's shapes -> tokens/s -> step counts for the time budget.
  [ "${JET_PROBE:-1}" = 0 ] || probe
  setsid bash -c "bash $PWD/scripts/gpu_postnas.sh job > $DEV/run.log 2>&1" < /dev/null > /dev/null 2>&1 &
  stamp "run started"
  [ "${JET_RUN_TESTS:-1}" = 0 ] || gpu_tests
  wait_run $(( ${CALL_S:-560} - ($(date +%s) - T0) ))
}

probe() {
  python3 - "$DEV/probe" "$BIN/jet" "$RUN" <<'PY'
import json, subprocess, sys
c = json.load(open(sys.argv[3] + "/config.json"))
s = c["supernet"]
args = [sys.argv[2], "postnas", "supernet", "--teacher", c["teacher"], "--data", c["data"]["dir"], "--out", sys.argv[1],
        "--steps", "12", "--batch", str(s["batch"]), "--seq-len", str(s["seq_len"]), "--device", "cuda", "--dtype", c["dtype"],
        "--swa-window", str(s["swa_window"]), "--checkpoint-every", "0"]
if "linear_config" in s:
    args += ["--linear-config", json.dumps(s["linear_config"])]
subprocess.run(args, check=True)
PY
  [ -f $DEV/probe/supernet.json ] || { echo "PROBE FAILED"; exit 1; }
  python3 - "$DEV/probe" "$RUN" <<'PY'
import json, os, sys
m = json.load(open(os.path.join(sys.argv[1], "supernet.json")))
run = sys.argv[2]
c = json.load(open(run + "/config.json"))
tps = m["tokens_per_s"] * 1.1  # the probe includes its warm-up steps
minutes = float(os.environ.get("JET_GPU_MINUTES", "7"))
share = {"supernet": 0.45, "finetune": 0.15}  # x2 finetunes (learned, uniform); the rest: place + eval
for k, f in share.items():
    per_step = c[k]["batch"] * c[k]["seq_len"]
    c[k]["steps"] = max(20, int(minutes * 60 * f * tps / per_step))
    c[k]["checkpoint_every"] = max(10, c[k]["steps"] // 5)
json.dump(c, open(run + "/config.json", "w"), indent=1)
json.dump({"minutes": minutes, "probed_supernet_tok_per_s": tps, "supernet_steps": c["supernet"]["steps"],
           "finetune_steps": c["finetune"]["steps"]}, open(run + "/budget.json", "w"), indent=1)
print("probe:", round(tps), "tok/s; supernet steps", c["supernet"]["steps"], "finetune steps", c["finetune"]["steps"])
PY
}

gpu_tests() {
  # While the run trains: the gpu gtests, then the gpu py tests (correctness only; nothing timed here).
  timeout 240 $BIN/jet_gpu_tests > "$OUT/gtest.log" 2>&1; echo "gtest rc=$?" >> "$OUT/gtest.log"
  stamp "gtests done"
  JET_BIN=$BIN/jet JET_ROOT=$PWD JET_OFFICIAL=$DEV/official timeout 150 python3 tests/py/test_jetblock_official_gpu.py \
    > "$OUT/parity.log" 2>&1; echo "parity rc=$?" >> "$OUT/parity.log"
  mkdir -p models && ln -sf $T models/  # test_teacher_gpu reads SmolLM2 (it reports a missing file otherwise)
  JET_BIN=$BIN/jet JET_ROOT=$PWD timeout 120 python3 tests/py/test_teacher_gpu.py > "$OUT/teacher_gpu.log" 2>&1
  echo "teacher_gpu rc=$?" >> "$OUT/teacher_gpu.log"
  stamp "py tests done"
  echo "== gtests"; grep -E "^\[  (PASSED|FAILED)|FAILED  \]|gtest rc" "$OUT/gtest.log"
  echo "== py"; tail -3 "$OUT/parity.log"; tail -3 "$OUT/teacher_gpu.log"
}

# The run's background job (in $DEV/work): the chain without its reports (select, hwsearch), the decode speed of
# the teacher and the hybrids, the reports, then the teacher's full benchmark sets; run.rc at the end holds the
# chain's exit status.
job() {
  source scripts/device_env.sh
  local T m name ctx code
  T=$(teacher_path)
  python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); [c.pop(k, None) for k in ("select", "hwsearch")]; json.dump(c, open(sys.argv[2], "w"), indent=1)' \
    $RUN/config.json $RUN/config-main.json
  $BIN/jet postnas run --config $RUN/config-main.json; code=$?
  echo "== chain rc=$code"
  for ctx in ${JET_BENCH_CONTEXTS:-}; do
    for m in $T $RUN/hybrid-*/; do
      [ -f "$m" ] || [ -f "$m/config.json" ] || continue
      case "$m" in *-init/|*-uniform/) continue ;; esac  # uniform: the same layer types elsewhere, the same speed
      name=$(basename "$m"); name=${name%.gguf}
      echo "== bench $name context $ctx"
      timeout 120 $BIN/jet bench --model "$m" --device cuda --dtype bf16 --synthetic-cache --max-batch --context $ctx \
        --gen 64 --json $RUN/bench-$name-$ctx.json 2>&1 | tail -4
    done
  done
  [ $code != 0 ] || { $BIN/jet postnas run --config $RUN/config.json; echo "== reports rc=$?"; }
  if [ -n "${JET_TEACHER_EVAL:-}" ]; then
    echo "== teacher full sets: $JET_TEACHER_EVAL"
    timeout 600 $BIN/jet eval --model $T --device cuda --dtype bf16 --tasks "$JET_TEACHER_EVAL" --batch-tokens 65536 \
      --json $RUN/teacher-full.json 2>&1 | tr '\r' '\n' | grep -v '^\s*$' | awk '!/\[#/' | tail -30
  fi
  echo $code > $DEV/run.rc
}

phase3() { cd $DEV/work && wait_run ${WAIT_S:-480}; }

case "$PHASE" in
  1) phase1 ;;
  pieces) teacher_take; cargo_take; ab_take; data_take "$DATA" ;;
  2) phase2 ;;
  3) phase3 ;;
  job) job ;;
esac
