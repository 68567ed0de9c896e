#!/usr/bin/env bash
# Run HERE (not on the device) before a device session: the lent GPU machine has no network, so this
# gathers what it lacks into git-ignored folders that device calls carry:
#   .devdeps/deb  Debian packages the image lacks (pcre2 headers), unpacked there
#   .devdeps/boost-headers.tar.xz  the Boost libraries (whole header trees) that src/server/http.cpp reaches
#                 (Beast, Asio and their dependencies: ~2 MB instead of the 9.5 MB libboost1.74-dev deb)
#   .devdeps/whl  Python wheels the image lacks (gguf oracle, flash-linear-attention peer)
#   .teacher1 .teacher2  the teacher GGUF in two halves (one call carries at most 64 MiB)
#   .xfer-bin     with --bin: xz-compressed jet and jet_gpu_tests from build-cuda/ (scripts/cuda_local_build.sh),
#                 built from this commit, so a device call need not compile (scripts/gpu_postnas.sh uses them),
#                 plus the benchmark programs named in JET_XFER_BENCH (e.g. "bench_postnas_step bench_jet_layer";
#                 scripts/gpu_distill.sh uses those two)
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qxF '/.devdeps/' .git/info/exclude 2>/dev/null || echo '/.devdeps/' >> .git/info/exclude
for d in .teacher1 .teacher2 .xfer-bin; do grep -qxF "/$d/" .git/info/exclude || echo "/$d/" >> .git/info/exclude; done
mkdir -p .devdeps/deb .devdeps/whl
(cd .devdeps/deb && apt-get download libpcre2-dev libpcre2-8-0 2>/dev/null)
bash scripts/apt_need.sh libboost1.74-dev
grep -h '^#include <boost/' src/server/http.cpp | g++ -std=c++17 -M -x c++ - | tr ' \\' '\n\n' |
  sed -n 's|^/usr/include/\(boost/[^/]*\)/.*|\1|p; s|^/usr/include/\(boost/[^/]*\.hpp\)$|\1|p' | sort -u |
  tar -C /usr/include -cJf .devdeps/boost-headers.tar.xz -T -
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .devdeps/whl gguf==0.19.0 flash-linear-attention==0.6.0 fla-core==0.6.0 einops==0.8.2
T=models/SmolLM2-135M-Instruct.Q4_1.gguf
[ -f "$T" ] || { echo "run scripts/setup.sh first ($T missing)"; exit 1; }
mkdir -p .teacher1 .teacher2
half=$(( ($(stat -c %s "$T") + 1) / 2 ))
head -c "$half" "$T" > .teacher1/part
tail -c +"$((half + 1))" "$T" > .teacher2/part
git rev-parse --short HEAD > .devdeps/commit
[ -z "$(git status --porcelain --untracked-files=no)" ] || echo "dirty" >> .devdeps/commit
du -sh .devdeps .teacher1 .teacher2
if [ "${1:-}" = --bin ]; then
  ninja -C build-cuda jet jet_gpu_tests ${JET_XFER_BENCH:-}
  rm -rf .xfer-bin && mkdir -p .xfer-bin
  for b in jet tests/jet_gpu_tests ${JET_XFER_BENCH:-}; do strip -o /tmp/$(basename $b) build-cuda/$b && xz -T2 -6 -c /tmp/$(basename $b) > .xfer-bin/$(basename $b).xz; done
  cp .devdeps/commit .xfer-bin/commit
  du -sh .xfer-bin
fi
