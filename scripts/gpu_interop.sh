#!/usr/bin/env bash
# ON THE DEVICE, one call: jet <-> official Jet-Nemotron interop (tests/py/test_official_interop_gpu.py), with the
# jet binary built HERE. Prepare here first:
#   scripts/cuda_local_build.sh && JET_OFFICIAL_GIT=<NVlabs/Jet-Nemotron git dir> scripts/device_prepare.sh --bin
# then run on the device, carrying .devdeps .devdeps-official .xfer-bin (no teacher: the test makes a tiny
# random Qwen2 teacher there):
#   bash scripts/gpu_interop.sh
# The official modeling code needs transformers <= 4.53 (its config classes), fla 0.6.0's own models need
# transformers 5: the test runs on a separate site folder with transformers 4.53.0 and fla without its
# fla.models package (the official code uses only fla.layers.utils, fla.modules and fla.ops).
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
DEV=/tmp/jetdev; BIN=$DEV/bin-interop; SITE=$DEV/site-official  # its own bin: a run in the background may be using $DEV/bin/jet
mkdir -p $DEV/root $BIN
for f in .devdeps/deb/*.deb; do dpkg -x "$f" $DEV/root; done
rm -rf $SITE
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target $SITE \
  .devdeps/whl/*.whl .devdeps-official/*.whl > $DEV/pip-official.log 2>&1 || tail -3 $DEV/pip-official.log
rm -rf $SITE/fla/models
rm -rf $DEV/official && cp -r .devdeps/official $DEV/official || { echo "no .devdeps/official (JET_OFFICIAL_GIT)"; exit 1; }
for f in .xfer-bin/jet.xz; do xz -dc "$f" > $BIN/jet; done
chmod +x $BIN/jet
source scripts/device_env.sh
echo "commit $(cat .xfer-bin/commit) | official $(cat $DEV/official/commit) | $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader)"
PYTHONPATH=$SITE:$PWD/tests/py PYTHONUNBUFFERED=1 JET_BIN=$BIN/jet JET_ROOT=$PWD JET_OFFICIAL=$DEV/official \
  timeout 480 python3 tests/py/test_official_interop_gpu.py 2>&1 | grep -v -i "warn" | tee "$OUT/interop.log" | tail -20
