#!/usr/bin/env bash
# The gloo headers that c10d's ProcessGroupGloo.hpp includes (data parallel on the CPU, src/postnas/dist.cpp): the
# torch wheel links gloo into libtorch_cpu but ships none of its headers. Debian's libgloo-dev (pinned version and
# sha256) provides them; only its headers are used (jet links no libgloo: the symbols are libtorch_cpu's, and
# ProcessGroupGloo's layout holds gloo types only behind pointers). Writes .deps/gloo/include/gloo; idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=0.0~git20220518.5b14351-3
DEB=libgloo-dev_${VERSION}_amd64.deb
SHA256=80529c9fd8af452faf489e686b94bf87075965c40673803810c4f41634b1e299
DEST=.deps/gloo
[ "$(cat "$DEST/version" 2>/dev/null)" = "$VERSION" ] && [ -f "$DEST/include/gloo/context.h" ] && exit 0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && apt-get download "libgloo-dev=$VERSION" >/dev/null 2>&1) ||
  (cd "$tmp" && python3 -c "import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])" \
     "https://deb.debian.org/debian/pool/main/g/gloo/${DEB//\~/%7E}" "$DEB")
echo "$SHA256  $tmp/$DEB" | sha256sum -c --quiet
dpkg-deb -x "$tmp/$DEB" "$tmp/x"
rm -rf "$DEST"
mkdir -p "$DEST/include"
cp -r "$tmp/x/usr/include/gloo" "$DEST/include/"
echo "$VERSION" > "$DEST/version"
echo "gloo headers $VERSION in $DEST/include"
