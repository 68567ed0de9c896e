#!/usr/bin/env bash
# Copies the official JetBlock's Python files (NVlabs/Jet-Nemotron, jetai/modeling/hf) out of a git
# mirror into an ignored folder for the gpu parity test and the layer benchmark (never into the repo):
#   scripts/official_copy.sh <Jet-Nemotron git dir> <dest, e.g. .devdeps/official>
# The files land in <dest>/jet_nemotron_hf/ (a package: they import each other relatively).
set -euo pipefail
GIT=$1
DEST=$2
mkdir -p "$DEST/jet_nemotron_hf"
: > "$DEST/jet_nemotron_hf/__init__.py"
for f in jet_block dynamic_conv dconv_fwdbwd dconv_fwd_cache dconv_step configuration_jet_nemotron kv_cache; do
  git --git-dir "$GIT" show "HEAD:jetai/modeling/hf/$f.py" > "$DEST/jet_nemotron_hf/$f.py"
done
git --git-dir "$GIT" rev-parse HEAD > "$DEST/commit"
echo "official JetBlock files of $(cat "$DEST/commit") in $DEST/jet_nemotron_hf"
