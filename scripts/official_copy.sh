#!/usr/bin/env bash
# Copies the official modeling package (NVlabs/Jet-Nemotron, jetai/modeling/hf: every .py file, so
# JetNemotronForCausalLM and the JetBlock with their helpers) out of a git mirror into an ignored folder
# for the gpu parity tests and the layer benchmark (never into the repo):
#   scripts/official_copy.sh <Jet-Nemotron git dir> <dest, e.g. .devdeps/official>
# The files land in <dest>/jet_nemotron_hf/ (a package: they import each other relatively).
set -euo pipefail
GIT=$1
DEST=$2
mkdir -p "$DEST/jet_nemotron_hf"
: > "$DEST/jet_nemotron_hf/__init__.py"
files=$(git --git-dir "$GIT" ls-tree --name-only HEAD jetai/modeling/hf/ | grep '\.py$')
for f in modeling_jet_nemotron configuration_jet_nemotron jet_block kv_cache; do
  grep -qx "jetai/modeling/hf/$f.py" <<< "$files" || { echo "official_copy.sh: $f.py missing in the mirror"; exit 1; }
done
for f in $files; do
  git --git-dir "$GIT" show "HEAD:$f" > "$DEST/jet_nemotron_hf/$(basename "$f")"
done
git --git-dir "$GIT" rev-parse HEAD > "$DEST/commit"
echo "official modeling files ($(echo $files | wc -w)) of $(cat "$DEST/commit") in $DEST/jet_nemotron_hf"
