#!/usr/bin/env bash
# Issue 17 ON THE DEVICE: the Qwen2.5-Coder-0.5B teacher (491 MB GGUF) carried in N pieces, then its decode speed
# (jet vs HF transformers, same call) and the speed-up of its hybrid at long context. Prepare here:
#   JET_TEACHER=models/qwen2.5-coder-0.5b.gguf JET_PIECES=.qwen JET_PIECE_MB=54 scripts/device_prepare.sh --bin
# (pieces .qwen1 .. .qwen9 beside the SmolLM2 .teacherK: a call carries at most 64 MiB with the ~8 MB tree), then
# back-to-back calls of a warm machine (keep one in flight: it is given back 30 s after the last call ends), after `scripts/gpu_postnas.sh 1` (or gpu_distill.sh 1) unpacked the binaries:
#   pieces  carry .qwenK (one or more): keep them; joined (sha256-checked) once all are there
#   bench   (the GPU otherwise idle) greedy chat answer on CUDA; `jet bench` vs bench/hf_decode.py (generate() and the
#           plain forward loop; HF gets random weights of the same config: decode speed does not depend on the
#           values) at batch 1 / context 512 and batch 32 / context 4,096; then the teacher vs its hybrid
#           (bench/configs/qwen2.5-coder-0.5b-hybrid.json, random init) at 4K / 16K / 64K context, largest batch,
#           synthetic cache. JSON and logs under $OUT, a table last.
set -uo pipefail
PHASE=${1:?pieces or bench}
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
DEV=/tmp/jetdev; BIN=$DEV/bin
source scripts/device_teacher.sh
T0=$(date +%s); stamp() { echo "[$(( $(date +%s) - T0 )) s] $*"; }

bench() {
  pieces_take .qwen || exit 1
  local Q J=$OUT/qwen
  Q=$(pieces_path .qwen)
  mkdir -p $J
  source scripts/device_env.sh
  export PYTHONPATH=$DEV/site:${PYTHONPATH:-} PYTHONUNBUFFERED=1
  echo "commit $(cat $DEV/commit) | $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader)"
  stamp "chat answer (greedy, bf16)"
  timeout 120 $BIN/jet generate --model $Q --device cuda --dtype bf16 --chat --max-new-tokens 96 --temperature 0 \
    --prompt "Write a Python function that returns the n-th Fibonacci number." 2>&1 | tail -20 | tee $J/chat.txt
  $BIN/jet convert --model $Q --out $DEV/qwen-hf > /dev/null 2>&1 || echo "convert failed"
  python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); c.pop("torch_dtype", None); json.dump(c, open(sys.argv[2], "w"))' \
    $DEV/qwen-hf/config.json $DEV/qwen-config.json
  rm -f $DEV/qwen-hf/model.safetensors
  for shape in "1 512 128" "32 4096 32"; do
    set -- $shape
    stamp "decode batch $1 context $2"
    timeout 180 $BIN/jet bench --model $Q --device cuda --dtype bf16 --batch $1 --context $2 --gen $3 \
      --prefill-chunk 4096 --json $J/jet-b$1-c$2.json 2>&1 | tail -2
    timeout 240 python3 bench/hf_decode.py --config $DEV/qwen-config.json --batch $1 --context $2 --gen $3 \
      2>/dev/null | tail -1 | tee $J/hf-generate-b$1-c$2.json
    timeout 240 python3 bench/hf_decode.py --config $DEV/qwen-config.json --batch $1 --context $2 --gen $3 --loop \
      2>/dev/null | tail -1 | tee $J/hf-loop-b$1-c$2.json
  done
  for ctx in ${CONTEXTS:-4096 16384 65536}; do
    stamp "teacher vs hybrid, context $ctx, largest batch"
    timeout 150 $BIN/jet bench --model $Q --device cuda --dtype bf16 --synthetic-cache --max-batch --context $ctx \
      --gen 32 --json $J/teacher-max-$ctx.json 2>&1 | tail -1
    timeout 150 $BIN/jet bench --config bench/configs/qwen2.5-coder-0.5b-hybrid.json --random-init --device cuda \
      --dtype bf16 --synthetic-cache --max-batch --context $ctx --gen 32 --json $J/hybrid-max-$ctx.json 2>&1 | tail -1
  done
  python3 - $J <<'PY' | tee $J/table.md
import glob, json, os, sys
d = sys.argv[1]
def get(name):
    p = os.path.join(d, name)
    if not os.path.exists(p): return None
    text = open(p).read().strip()
    for t in (text, text.splitlines()[-1] if text else ""):  # jet bench writes indented JSON, hf_decode one line
        try: return json.loads(t)
        except Exception: pass
    return None
def tps(j):
    if not j: return None
    return j.get("decode_tok_per_s") or (j.get("decode") or {}).get("tok_per_s")
print("| batch x context | jet tok/s | HF generate | HF plain loop | jet / best HF |\n|---|---:|---:|---:|---:|")
for b, c in ((1, 512), (32, 4096)):
    j, g, l = tps(get(f"jet-b{b}-c{c}.json")), tps(get(f"hf-generate-b{b}-c{c}.json")), tps(get(f"hf-loop-b{b}-c{c}.json"))
    best = max([x for x in (g, l) if x] or [0])
    f = lambda x: f"{x:,.1f}" if x else "-"
    print(f"| {b} x {c} | {f(j)} | {f(g)} | {f(l)} | {j / best:.2f}x |" if j and best else f"| {b} x {c} | {f(j)} | {f(g)} | {f(l)} | - |")
print("\n| context | teacher tok/s (batch) | hybrid tok/s (batch) | speed-up |\n|---:|---:|---:|---:|")
for c in (4096, 16384, 65536):
    t, h = get(f"teacher-max-{c}.json"), get(f"hybrid-max-{c}.json")
    if t and h:
        print(f"| {c} | {tps(t):,.0f} ({t.get('batch')}) | {tps(h):,.0f} ({h.get('batch')}) | {tps(h) / tps(t):.1f}x |")
PY
  tar -C $J -czf $OUT/qwen-bench.tgz . && rm -rf $J  # one file back (a call returns at most 8)
  stamp "bench done: \$OUT/qwen-bench.tgz"
}

case "$PHASE" in
  pieces) pieces_take .qwen ;;
  bench) bench ;;
esac
