#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs the CPU test suite (ctest label "fast"). Extra args go to ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
ctest --test-dir "${JET_BUILD_DIR:-build}" -L fast --output-on-failure -j "${JET_TEST_JOBS:-2}" "$@"
