#!/usr/bin/env bash
# Run HERE (not on the device) before a device session: the lent GPU machine has no network, so this
# gathers what it lacks into git-ignored folders that device calls carry:
#   .devdeps/deb  Debian packages the image lacks (pcre2 headers), unpacked there
#   .devdeps/boost-headers.tar.xz  the Boost libraries (whole header trees) that src/server/http.cpp reaches
#                 (Beast, Asio and their dependencies: ~2 MB instead of the 9.5 MB libboost1.74-dev deb)
#   .devdeps/whl  Python wheels the image lacks (gguf oracle, flash-linear-attention peer)
#   .teacher1 .. .teacherN  the teacher GGUF (JET_TEACHER, default SmolLM2; JET_PIECES=.qwen names them .qwenK) in N pieces of at most
#                 JET_PIECE_MB (60) MiB, each with a manifest (one call carries at most 64 MiB in all;
#                 scripts/device_teacher.sh joins them on the device, carried by back-to-back calls in any order).
#                 SmolLM2: 2 pieces of 47 MiB; Qwen2.5-Coder-0.5B: 8 of 59 MiB
#   .cargo1 .. .cargoN  with JET_CARGO="DIR ...": those folders (token sets, data/eval) as a tar.xz in pieces
#                 (scripts/gpu_postnas.sh unpacks them; a token set too big for one call goes this way)
#   .devdeps-official  the older Python stack the official modeling code needs (transformers <= 4.53),
#                 for scripts/gpu_interop.sh only; with JET_OFFICIAL_GIT=<Jet-Nemotron git dir> also
#                 .devdeps/official (scripts/official_copy.sh)
#   .xfer-bin     with --bin: xz-compressed jet and jet_gpu_tests from build-cuda/ (scripts/cuda_local_build.sh),
#                 built from this commit, so a device call need not compile (scripts/gpu_postnas.sh uses them),
#                 plus the benchmark programs named in JET_XFER_BENCH (e.g. "bench_postnas_step bench_jet_layer";
#                 scripts/gpu_distill.sh uses those two)
set -euo pipefail
cd "$(dirname "$0")/.."
EXCLUDE=$(git rev-parse --git-path info/exclude)  # .git is a file in a worktree
mkdir -p "$(dirname "$EXCLUDE")"
for d in .devdeps .devdeps-official '.teacher*' '.qwen*' '.cargo*' .xfer-bin; do grep -qxF "/$d/" "$EXCLUDE" 2>/dev/null || echo "/$d/" >> "$EXCLUDE"; done
mkdir -p .devdeps/deb .devdeps/whl
(cd .devdeps/deb && apt-get download libpcre2-dev libpcre2-8-0 2>/dev/null)
bash scripts/apt_need.sh libboost1.74-dev
grep -h '^#include <boost/' src/server/http.cpp | g++ -std=c++17 -M -x c++ - | tr ' \\' '\n\n' |
  sed -n 's|^/usr/include/\(boost/[^/]*\)/.*|\1|p; s|^/usr/include/\(boost/[^/]*\.hpp\)$|\1|p' | sort -u |
  tar -C /usr/include -cJf .devdeps/boost-headers.tar.xz -T -
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .devdeps/whl gguf==0.19.0 flash-linear-attention==0.6.0 fla-core==0.6.0 einops==0.8.2
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .devdeps-official transformers==4.53.0 tokenizers==0.21.4 huggingface-hub==0.34.4
[ -z "${JET_OFFICIAL_GIT:-}" ] || bash scripts/official_copy.sh "$JET_OFFICIAL_GIT" .devdeps/official
# cut_pieces FILE PREFIX MIB: FILE into PREFIX1/ .. PREFIXN/ (part + manifest "NAME N SHA256") of at most MIB MiB.
cut_pieces() {
  local f=$1 pre=$2 size max n piece sha k
  rm -rf "$pre"[0-9]*
  size=$(stat -c %s "$f")
  max=$(( $3 * 1024 * 1024 ))
  n=$(( (size + max - 1) / max ))
  piece=$(( (size + n - 1) / n ))
  sha=$(sha256sum < "$f" | cut -d' ' -f1)
  for k in $(seq 1 "$n"); do
    mkdir -p "$pre$k"
    dd if="$f" of="$pre$k/part" bs=4M iflag=skip_bytes,count_bytes skip=$(( (k - 1) * piece )) count=$piece status=none
    echo "$(basename "$f") $n $sha" > "$pre$k/manifest"
  done
  echo "$(basename "$f"): $n pieces of $((piece >> 20)) MiB, ${pre}1 .. $pre$n (carry each once; any call, any order)"
}
T=${JET_TEACHER:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
P=${JET_PIECES:-.teacher}  # the pieces' prefix: .qwen for a second teacher beside SmolLM2 (scripts/gpu_qwen.sh)
[ -f "$T" ] || { echo "device_prepare.sh: $T missing (scripts/setup.sh, scripts/teacher.sh NAME)"; exit 1; }
cut_pieces "$T" "$P" "${JET_PIECE_MB:-60}"
# JET_CARGO="data/tokens-smollm2 data/eval": those folders as one tar.xz in pieces of JET_CARGO_MB (16) MiB,
# .cargo1 .. .cargoN (scripts/device_teacher.sh's cargo_take unpacks them on the device).
if [ -n "${JET_CARGO:-}" ]; then
  tar -cf - $JET_CARGO | xz -T2 -6 > /tmp/jet-cargo.tar.xz
  cut_pieces /tmp/jet-cargo.tar.xz .cargo "${JET_CARGO_MB:-16}"
  rm -f /tmp/jet-cargo.tar.xz
fi
git rev-parse --short HEAD > .devdeps/commit
[ -z "$(git status --porcelain --untracked-files=no)" ] || echo "dirty" >> .devdeps/commit
du -sh .devdeps .teacher[0-9]* $(ls -d .cargo[0-9]* 2>/dev/null)
if [ "${1:-}" = --bin ]; then
  ninja -C build-cuda jet jet_gpu_tests ${JET_XFER_BENCH:-}
  rm -rf .xfer-bin && mkdir -p .xfer-bin
  for b in jet tests/jet_gpu_tests ${JET_XFER_BENCH:-}; do strip -o /tmp/$(basename $b) build-cuda/$b && xz -T2 -6 -c /tmp/$(basename $b) > .xfer-bin/$(basename $b).xz; done
  cp .devdeps/commit .xfer-bin/commit
  du -sh .xfer-bin
fi
