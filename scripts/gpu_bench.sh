#!/usr/bin/env bash
# Device benchmarks (called by scripts/gpu_check.sh phase 2, after the gpu tests). Prints tables.
set -uo pipefail
BUILD=${BUILD:-build-gpu}
T=models/SmolLM2-135M-Instruct.Q4_1.gguf
# The device copy has no .git: device_prepare.sh writes .devdeps/commit, gpu_check.sh phase 1 keeps it.
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || cat /tmp/jetdev/commit 2>/dev/null || echo unknown)
echo "== commit $COMMIT, $(date -u +%F), $(nvidia-smi --query-gpu=name --format=csv,noheader)"
echo "== fused decode-step kernels (JetBlock-2B shapes)"
$BUILD/bench_linear_attention_step
echo "== engine benchmarks (jet bench: CUDA-graph decode unless --no-graph)"
$BUILD/jet bench --model $T --device cuda --dtype bf16 --batch 1 --context 512 --gen 256
$BUILD/jet bench --model $T --device cuda --dtype bf16 --batch 1 --context 512 --gen 256 --no-graph
$BUILD/jet bench --model $T --device cuda --dtype bf16 --batch 64 --context 512 --gen 128
$BUILD/jet bench --config tests/model/data/jetlm_2B.json --random-init --device cuda --dtype bf16 --batch 1 --context 512 --gen 128 || true
echo "== teacher decode, batch 1 (jet generate, greedy, 256 new tokens)"
for dt in bf16 fp32; do
  $BUILD/jet generate --model $T --prompt "Write a long story about a lighthouse keeper." --chat \
    --max-new-tokens 256 --temperature 0 --device cuda --dtype $dt 2>&1 | tail -1 | sed "s/^/cuda $dt: /"
done
echo "== engine benchmarks of issue 4 (64K max batch, hybrid vs full, jet vs HF; table last)"
BUILD=$BUILD bash scripts/gpu_bench_engine.sh
