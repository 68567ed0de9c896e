#!/usr/bin/env bash
# ON THE DEVICE, one call, no build: the gpu gtests and the engine's decode benchmarks with binaries built
# here by scripts/cuda_local_build.sh (stripped, carried in BIN). Run from the tree root with .devdeps next to
# it or inside it; logs and JSON under $OUT, the table last.
#   BIN=bin (jet, jet_gpu_tests)   RUNS="tests qwen_b32 hf_b32 qwen_b32_simt jetlm_2B_max"  GEN=32  CTX=65536
# Runs: tests; jetlm_2B_max / qwen_max (context CTX, largest batch, --synthetic-cache: a decode step's cost
# depends only on the bytes it reads; their ratio is hybrid / full); qwen_b32 + hf_b32 (B=32, 4,096 tokens,
# prefilled for real, jet vs HF transformers' generate); smol_b1_graph / smol_b1_eager / jetlm_2B_b1 (batch 1,
# 512 tokens: the per-step overhead).
# qwen_b32_simt / jetlm_2B_max_simt: the same runs with JET_DECODE_ATTENTION=simt (the CUDA-core attention
# kernel instead of the tensor-core one), for an A/B in the same call.
set -uo pipefail
BIN=${BIN:-bin}
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
GEN=${GEN:-32}
CTX=${CTX:-65536}
RUNS=${RUNS:-tests qwen_b32 hf_b32 qwen_b32_simt jetlm_2B_max}
DEV=${DEV:-/tmp/jetdev}; mkdir -p $DEV/root
DEPS=.devdeps; [ -d $DEPS ] || DEPS=../.devdeps
for f in $DEPS/deb/*.deb; do [ -f "$f" ] && dpkg -x "$f" $DEV/root; done
# shellcheck source=device_env.sh
. "$(dirname "$0")/device_env.sh"
JS=$OUT/json; mkdir -p $JS
LOG=$OUT/engine_bench.log
QWEN=tests/model/data/qwen2.5-1.5b.json
JETLM=tests/model/data/jetlm_2B.json
SMOL=bench/configs/smollm2-135m.json
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv,noheader | tee -a $LOG

bench() {  # name, jet bench arguments
  local name=$1; shift
  echo "== $name: jet bench $* (JET_DECODE_ATTENTION=${JET_DECODE_ATTENTION:-})" | tee -a $LOG
  timeout ${BENCH_TIMEOUT:-200} $BIN/jet bench "$@" --device cuda --dtype bf16 --json $JS/$name.json 2>&1 | tail -20 | tee -a $LOG
}
TESTS_RC=skipped
for r in $RUNS; do
  case $r in
    tests)
      timeout ${TEST_TIMEOUT:-240} $BIN/jet_gpu_tests --gtest_brief=1 > $OUT/gpu_tests.log 2>&1
      TESTS_RC=$?
      tail -5 $OUT/gpu_tests.log | tee -a $LOG ;;
    qwen_b32) bench qwen_b32 --config $QWEN --random-init --context 4096 --gen $GEN --batch 32 --prefill-chunk 4096 ;;
    qwen_b32_simt) JET_DECODE_ATTENTION=simt bench qwen_b32_simt --config $QWEN --random-init --context 4096 --gen $GEN --batch 32 --prefill-chunk 4096 ;;
    hf_b32)
      echo "== hf_b32: python3 bench/hf_decode.py --config $QWEN --batch 32 --context 4096 --gen $GEN" | tee -a $LOG
      timeout ${BENCH_TIMEOUT:-200} python3 bench/hf_decode.py --config $QWEN --batch 32 --context 4096 --gen $GEN > $JS/hf_b32.json 2>> $LOG
      cat $JS/hf_b32.json | tee -a $LOG ;;
    jetlm_2B_max) bench jetlm_2B_max --config $JETLM --random-init --context $CTX --gen $GEN --max-batch --synthetic-cache ;;
    jetlm_2B_max_simt) JET_DECODE_ATTENTION=simt bench jetlm_2B_max_simt --config $JETLM --random-init --context $CTX --gen $GEN --max-batch --synthetic-cache ;;
    qwen_max) bench qwen_max --config $QWEN --random-init --context $CTX --gen $GEN --max-batch --synthetic-cache ;;
    smol_b1_graph) bench smol_b1_graph --config $SMOL --random-init --batch 1 --context 512 --gen 256 ;;
    smol_b1_eager) bench smol_b1_eager --config $SMOL --random-init --batch 1 --context 512 --gen 64 --no-graph ;;
    jetlm_2B_b1) bench jetlm_2B_b1 --config $JETLM --random-init --batch 1 --context 512 --gen 128 ;;
    *) echo "unknown run '$r'" | tee -a $LOG ;;
  esac
done

python3 - "$JS" "$OUT/engine_bench.json" "$TESTS_RC" <<'PY'
import json, os, sys
d = {}
for f in sorted(os.listdir(sys.argv[1])):
    try:
        d[f[:-5]] = json.load(open(os.path.join(sys.argv[1], f)))
    except Exception as e:
        d[f[:-5]] = {"error": str(e)}
json.dump(d, open(sys.argv[2], "w"), indent=1)
print(f"\n== jet_gpu_tests rc {sys.argv[3]}")
print("| run | batch | context | decode tok/s | ms/step | GB/s |")
print("|---|---:|---:|---:|---:|---:|")
for k, r in d.items():
    if "decode_tok_per_s" in r:
        gbs = r.get("achieved_gb_per_s")
        print(f"| {k} | {r['batch']} | {r['context']} | {r['decode_tok_per_s']:.1f} | {r['ms_per_step']:.3f} | {gbs if gbs is None else round(gbs)} |")
    else:
        print(f"| {k} | failed | | | | |")
g = lambda k, f: d.get(k, {}).get(f)
a, b = g("jetlm_2B_max", "decode_tok_per_s"), g("qwen_max", "decode_tok_per_s")
if a and b: print(f"hybrid / full at context {g('jetlm_2B_max', 'context')}: {a / b:.2f}x (paper: 2,885 / 241 = 12x)")
a, b = g("qwen_b32", "decode_tok_per_s"), g("hf_b32", "decode_tok_per_s")
if a and b: print(f"jet / HF, Qwen2.5-1.5B B=32 context 4096: {a / b:.1f}x (goal >= 20x)")
PY
