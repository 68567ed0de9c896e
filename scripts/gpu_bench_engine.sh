#!/usr/bin/env bash
# Issue 4's engine benchmarks ON THE DEVICE, in one call (scripts/gpu_bench.sh runs it last; it also runs
# alone). BUILD holds jet (default build-gpu). Logs and JSON go to $OUT; the table is printed last.
#   1. jetlm_2B (official config), random init, bf16, context CTX (65,536), the largest batch that fits
#   2. Qwen2.5-1.5B (full attention) the same way, and the hybrid / full decode ratio
#   3. Qwen2.5-1.5B at B=32, context 4,096: jet vs HF transformers' generate (bench/hf_decode.py)
#   4. the SmolLM2-135M teacher's shape (bench/configs/smollm2-135m.json, random init) at batch 1, context
#      512: CUDA graph and eager, for the per-step overhead
# Long contexts use --synthetic-cache (random K/V and linear states instead of a prefill: a decode
# step's cost depends only on the bytes it reads); the 4,096-token comparison prefills for real.
set -uo pipefail
BUILD=${BUILD:-build-gpu}
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
J=$BUILD/jet
CTX=${CTX:-65536}
GEN=${GEN:-32}
JS=/tmp/jet_bench_json; rm -rf $JS; mkdir -p $JS
LOG=$OUT/engine_bench.log
QWEN=tests/model/data/qwen2.5-1.5b.json
JETLM=tests/model/data/jetlm_2B.json
SMOL=bench/configs/smollm2-135m.json

bench() {  # name, jet bench arguments
  local name=$1; shift
  echo "== $name: jet bench $*" | tee -a $LOG
  timeout ${BENCH_TIMEOUT:-240} $J bench "$@" --device cuda --dtype bf16 --json $JS/$name.json 2>&1 | tee -a $LOG
}
bench jetlm_2B_max --config $JETLM --random-init --context $CTX --gen $GEN --max-batch --synthetic-cache
bench qwen_max --config $QWEN --random-init --context $CTX --gen $GEN --max-batch --synthetic-cache
bench qwen_b32 --config $QWEN --random-init --context 4096 --gen $GEN --batch 32 --prefill-chunk 4096
echo "== hf_b32: python3 bench/hf_decode.py --config $QWEN --batch 32 --context 4096 --gen $GEN" | tee -a $LOG
timeout ${BENCH_TIMEOUT:-240} python3 bench/hf_decode.py --config $QWEN --batch 32 --context 4096 --gen $GEN > $JS/hf_b32.json 2>> $LOG
cat $JS/hf_b32.json | tee -a $LOG
bench smol_b1_graph --config $SMOL --random-init --batch 1 --context 512 --gen 256
bench smol_b1_eager --config $SMOL --random-init --batch 1 --context 512 --gen 64 --no-graph
bench jetlm_2B_b1 --config $JETLM --random-init --batch 1 --context 512 --gen 128

python3 - "$JS" "$OUT/engine_bench.json" <<'PY'
import json, os, sys
d = {}
for f in sorted(os.listdir(sys.argv[1])):
    try:
        d[f[:-5]] = json.load(open(os.path.join(sys.argv[1], f)))
    except Exception as e:
        d[f[:-5]] = {"error": str(e)}
json.dump(d, open(sys.argv[2], "w"), indent=1)
g = lambda k, f: d.get(k, {}).get(f)
print(f"\n== engine benchmarks ({g('jetlm_2B_max', 'machine')}, copy bandwidth {g('jetlm_2B_max', 'copy_gb_per_s') or 0:.0f} GB/s)")
print("| run | batch | context | decode tok/s | ms/step | GB/s |")
print("|---|---:|---:|---:|---:|---:|")
for k in ["jetlm_2B_max", "qwen_max", "qwen_b32", "smol_b1_graph", "smol_b1_eager", "jetlm_2B_b1"]:
    r = d.get(k, {})
    if "decode_tok_per_s" in r:
        print(f"| {k} | {r['batch']} | {r['context']} | {r['decode_tok_per_s']:.1f} | {r['ms_per_step']:.3f} | {r['achieved_gb_per_s']:.0f} |")
    else:
        print(f"| {k} | failed | | | | |")
h = d.get("hf_b32", {})
if "decode_tok_per_s" in h:
    print(f"| hf_b32 ({h['impl']}) | {h['batch']} | {h['context']} | {h['decode_tok_per_s']:.1f} | {h['ms_per_step']:.3f} | |")
a, b = g("jetlm_2B_max", "decode_tok_per_s"), g("qwen_max", "decode_tok_per_s")
if a and b: print(f"hybrid / full at context {g('jetlm_2B_max', 'context')}: {a / b:.2f}x (paper: 2,885 / 241 = 12x)")
a, b = g("qwen_b32", "decode_tok_per_s"), h.get("decode_tok_per_s")
if a and b: print(f"jet / HF, Qwen2.5-1.5B B=32 context 4096: {a / b:.1f}x (goal >= 20x)")
PY
