#!/usr/bin/env bash
# jet vs llama.cpp on the CPU, same GGUF, same thread counts: prefill of 512 tokens and decode of 128 tokens after
# a 512-token context, batch 1. llama.cpp is built from the source that the PyPI sdist of llama-cpp-python (pinned
# version and sha256 below) vendors, with CMake, CPU only, outside the repo ($LLAMA_DIR). Every round runs
# llama-bench and `jet bench --device cpu` once per thread count, interleaved; the table gives the medians of the
# rounds and jet / llama.cpp. The same rounds also run `jet bench` on a hybrid config (--random-init: llama.cpp has no
# peer for it) and a second table gives its decode tok/s and the bytes a step reads per second next to the copy
# bandwidth jet bench measures in the same run (--hybrid none skips it).
#
#   bench/cpu_vs_llamacpp.sh [--model GGUF] [--hybrid CONFIG|none] [--threads "1 2"] [--rounds 3] [--dtype q]
#                            [--jet build/jet]
#
# Needs: cmake, a C++ compiler, python3 with pip (the project's .venv). Prints markdown tables and the 1-minute load
# average before every run (other work on the machine lowers both sides' numbers; rerun when it is quiet).
set -euo pipefail
ARGS="$*"

LLAMA_CPP_PYTHON_VERSION=0.3.36
LLAMA_CPP_PYTHON_SHA256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e

ROOT=$(cd "$(dirname "$0")/.." && pwd)
MODEL=$ROOT/models/SmolLM2-135M-Instruct.Q4_1.gguf
HYBRID=$ROOT/bench/configs/smollm2-135m-hybrid.json
THREADS="1 2"
ROUNDS=3
DTYPE=q
JET=$ROOT/build/jet
LLAMA_DIR=${LLAMA_DIR:-${TMPDIR:-/tmp}/jet-llamacpp-$LLAMA_CPP_PYTHON_VERSION}
PY=${PYTHON:-$ROOT/.venv/bin/python3}
while [ $# -gt 0 ]; do
  case $1 in
    --model) MODEL=$2; shift 2 ;;
    --hybrid) HYBRID=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --dtype) DTYPE=$2; shift 2 ;;
    --jet) JET=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -f "$MODEL" ] || { echo "no model at $MODEL" >&2; exit 1; }
[ -x "$JET" ] || { echo "no jet binary at $JET (build it first)" >&2; exit 1; }
[ "$HYBRID" = none ] || [ -f "$HYBRID" ] || { echo "no hybrid config at $HYBRID" >&2; exit 1; }

# --- llama.cpp from the pinned sdist --------------------------------------------------------------------------
BENCH=$LLAMA_DIR/build/bin/llama-bench
if [ ! -x "$BENCH" ]; then
  mkdir -p "$LLAMA_DIR"
  SDIST=$LLAMA_DIR/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION.tar.gz
  if [ ! -f "$SDIST" ]; then
    "$PY" -m pip download "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" --no-deps --no-binary :all: -d "$LLAMA_DIR" >&2
  fi
  echo "$LLAMA_CPP_PYTHON_SHA256  $SDIST" | sha256sum -c - >&2
  tar xzf "$SDIST" -C "$LLAMA_DIR"
  SRC=$LLAMA_DIR/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION/vendor/llama.cpp
  cmake -S "$SRC" -B "$LLAMA_DIR/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DGGML_CUDA=OFF \
    -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF >&2
  cmake --build "$LLAMA_DIR/build" --target llama-bench -j 2 >&2
fi

# --- rounds ---------------------------------------------------------------------------------------------------
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
load() { cut -d' ' -f1 /proc/loadavg; }
echo "$(date -u '+%Y-%m-%d %H:%M UTC') | $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores |" \
  "commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown) | $0 $ARGS"
for r in $(seq "$ROUNDS"); do
  for t in $THREADS; do
    # prefill: pp512 at depth 0; decode: tg128 after a 512-token context (-d 512), one repetition per round.
    echo "round $r, $t thread(s): load $(load) llama.cpp" >&2
    "$BENCH" -m "$MODEL" -t "$t" -p 512 -n 0 -r 1 -o json > "$OUT/llama_pp_${t}_$r.json" 2>/dev/null
    "$BENCH" -m "$MODEL" -t "$t" -p 0 -n 128 -d 512 -r 1 -o json > "$OUT/llama_tg_${t}_$r.json" 2>/dev/null
    echo "round $r, $t thread(s): load $(load) jet" >&2
    OMP_NUM_THREADS=$t "$JET" bench --model "$MODEL" --device cpu --dtype "$DTYPE" --batch 1 --context 512 \
      --gen 128 --json "$OUT/jet_${t}_$r.json" > /dev/null
    if [ "$HYBRID" != none ]; then
      echo "round $r, $t thread(s): load $(load) jet hybrid" >&2
      OMP_NUM_THREADS=$t "$JET" bench --config "$HYBRID" --random-init --device cpu --dtype "$DTYPE" --batch 1 \
        --context 512 --gen 128 --json "$OUT/hybrid_${t}_$r.json" > /dev/null
    fi
    echo "$t $(load)" >> "$OUT/loads"
  done
done

"$PY" - "$OUT" "$ROUNDS" "$THREADS" "$DTYPE" "$HYBRID" <<'EOF'
import json, os, statistics, sys
out, rounds, threads, dtype, hybrid = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), sys.argv[4], sys.argv[5]
R = range(1, rounds + 1)
loads = {}
for line in open(f"{out}/loads"):
    t, l = line.split()
    loads.setdefault(t, []).append(float(l))
def med(f, t):
    return statistics.median(f(t, r) for r in R)
def llama(kind):
    return lambda t, r: json.load(open(f"{out}/llama_{kind}_{t}_{r}.json"))[0]["avg_ts"]
def jet(name, key):
    return lambda t, r: json.load(open(f"{out}/{name}_{t}_{r}.json"))[key]
def load_range(t):
    return f"{min(loads[t]):.1f}-{max(loads[t]):.1f}"
print(f"\n| threads | llama.cpp prefill 512 tok/s | jet {dtype} prefill | ratio | llama.cpp decode tok/s | jet {dtype} decode | ratio | load |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|")
for t in threads:
    lp, lt = med(llama("pp"), t), med(llama("tg"), t)
    jp, jt = med(jet("jet", "prefill_tok_per_s"), t), med(jet("jet", "decode_tok_per_s"), t)
    print(f"| {t} | {lp:,.1f} | {jp:,.1f} | {jp / lp:.2f}x | {lt:,.1f} | {jt:,.1f} | {jt / lt:.2f}x | {load_range(t)} |")
if hybrid != "none":
    h = json.load(open(f"{out}/hybrid_{threads[0]}_1.json"))
    print(f"\nhybrid {os.path.basename(hybrid)} (--random-init, {dtype}): {h['weight_bytes'] / 1e6:.1f} MB of weights, "
          f"{h['step_bytes'] / 1e6:.1f} MB read per decode step (weights + states + KV at the mean length)")
    print(f"\n| threads | prefill 512 tok/s | decode tok/s | ms/step | GB/s | copy GB/s | of copy | load |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for t in threads:
        f = lambda k: med(jet("hybrid", k), t)
        print(f"| {t} | {f('prefill_tok_per_s'):,.1f} | {f('decode_tok_per_s'):,.1f} | {f('ms_per_step'):.2f} | "
              f"{f('achieved_gb_per_s'):.1f} | {f('copy_gb_per_s'):.1f} | "
              f"{100 * f('achieved_gb_per_s') / f('copy_gb_per_s'):.0f}% | {load_range(t)} |")
EOF
