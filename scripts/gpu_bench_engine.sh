#!/usr/bin/env bash
# Issue 4's engine benchmarks ON THE DEVICE, in one call (scripts/gpu_bench.sh runs it last; it also runs
# alone): scripts/gpu_engine_check.sh with jet from BUILD (default build-gpu) and every benchmark run (64K max
# batch hybrid and full, Qwen B=32 jet vs HF, batch-1 overhead rows). Logs and JSON under $OUT, table last.
set -uo pipefail
BIN=${BUILD:-build-gpu} RUNS="jetlm_2B_max qwen_max qwen_b32 hf_b32 smol_b1_graph smol_b1_eager jetlm_2B_b1" \
  exec bash "$(dirname "$0")/gpu_engine_check.sh"
