# Sourced ON THE DEVICE by the device scripts: files bigger than one call may carry (<= 64 MiB) arrive in
# pieces (scripts/device_prepare.sh cuts them into PREFIX1/ .. PREFIXN/, each with `part` and `manifest`:
# "NAME N SHA256"), carried by back-to-back calls of a warm machine in any order and grouping:
#   .teacherK  the teacher GGUF          teacher_take / teacher_path
#   .cargoK    a tar.xz of data folders  cargo_take (unpacks it under $DEV/cargo: data/tokens-..., data/eval)
# and the token set for the distillation benches: tokens_take / tokens_path (below)
DEV=${DEV:-/tmp/jetdev}

# pieces_take PREFIX: keeps the pieces of PREFIX* this call carries under $DEV/<prefix>/SHA/; once all N are
# there, joins them (temp file, sha256 check, rename) into $DEV/<prefix>/NAME; returns 1 while pieces are missing.
pieces_take() {
  local pre=$1 store=$DEV/${1#.} p k name n sha have
  mkdir -p $store
  for p in $pre*/; do
    [ -f "$p/manifest" ] && [ -f "$p/part" ] || continue
    read -r name n sha < "$p/manifest"
    k=${p#$pre}; k=${k%/}
    mkdir -p $store/$sha
    cp "$p/manifest" $store/manifest
    [ -f $store/$name ] || cp "$p/part" $store/$sha/$k
  done
  [ -f $store/manifest ] || { echo "${pre#.}: no piece carried yet (carry ${pre}1 ...)"; return 1; }
  read -r name n sha < $store/manifest
  [ -f $store/$name ] && [ -f $store/$name.ok ] && return 0
  have=$(ls $store/$sha 2>/dev/null | wc -l)
  if [ "$have" -lt "$n" ]; then
    echo "${pre#.}: $have of $n pieces of $name here; still to carry:$(for k in $(seq 1 "$n"); do [ -f $store/$sha/$k ] || printf " $pre%s" "$k"; done)"
    return 1
  fi
  for k in $(seq 1 "$n"); do cat $store/$sha/$k; done > $store/$name.tmp
  if [ "$(sha256sum < $store/$name.tmp | cut -d' ' -f1)" != "$sha" ]; then
    rm -rf $store/$name.tmp $store/$sha
    echo "${pre#.}: joined $name has the wrong sha256; pieces dropped, carry them again"
    return 1
  fi
  mv $store/$name.tmp $store/$name && touch $store/$name.ok && rm -rf $store/$sha
  echo "${pre#.}: $name joined from $n pieces (sha256 ok)"
}

pieces_path() { local name n sha; read -r name n sha < $DEV/${1#.}/manifest; echo $DEV/${1#.}/$name; }

teacher_take() { pieces_take .teacher; }
teacher_path() { pieces_path .teacher; }

# cargo_take: once the cargo is whole, unpacks it into $DEV/cargo/root (once); returns 1 while pieces are missing.
cargo_take() {
  pieces_take .cargo || return 1
  [ -f $DEV/cargo/root.ok ] && return 0
  rm -rf $DEV/cargo/root && mkdir -p $DEV/cargo/root && tar -C $DEV/cargo/root -xJf "$(pieces_path .cargo)" &&
    touch $DEV/cargo/root.ok && echo "cargo: unpacked $(ls $DEV/cargo/root/data | tr '\n' ' ')"
}

# data_take DIR...: keeps each carried DIR (one that this call has) as $DEV/data/<its name>, which outlives the call.
data_take() {
  local d
  for d in "$@"; do
    [ -d "$d" ] || continue
    mkdir -p $DEV/data && rm -rf "$DEV/data/$(basename "$d")" && cp -r "$d" $DEV/data/
  done
  return 0
}

# The SmolLM2 training tokens, wherever a call brought them. tokens_take keeps a carried data/tokens-smollm2 or its
# one-shard copy data/tokens-smollm2-bench under $DEV/data; tokens_path prints the fullest set here (the unpacked
# cargo's, a carried full set, the one-shard copy), nothing when there is none.
tokens_take() { data_take data/tokens-smollm2 data/tokens-smollm2-bench; }
tokens_path() {
  ls -d $DEV/cargo/root/data/tokens-smollm2 $DEV/data/tokens-smollm2 $DEV/data/tokens-smollm2-bench 2>/dev/null | head -1
}

# unxz_programs SRC DEST: every SRC/NAME.xz a call carries, decompressed to DEST/NAME and made executable.
unxz_programs() {
  local f
  mkdir -p "$2"
  for f in "$1"/*.xz; do
    [ -f "$f" ] && xz -dc "$f" > "$2/$(basename "$f" .xz)" && chmod +x "$2/$(basename "$f" .xz)"
  done
  return 0
}

# ab_take: keeps the jet binaries a call carries in .xfer-ab (jet-NAME.xz, NAME.refs) in $DEV/ab for
# scripts/gpu_supernet_ab.sh, whichever script the call runs (a background comparison takes them up later).
ab_take() {
  unxz_programs .xfer-ab $DEV/ab
  cp .xfer-ab/*.refs $DEV/ab/ 2>/dev/null
  return 0
}

# unpack_prebuilt: a phase-1 call of a script that runs binaries built HERE (scripts/device_prepare.sh --bin): the
# Debian packages under $DEV/root, the wheels into $DEV/site, the official modeling files (when carried) into
# $DEV/official, any teacher piece and .xfer-ab binary carried, .xfer-bin's programs into $DEV/bin and their commit
# into $DEV/commit.
unpack_prebuilt() {
  local f
  mkdir -p $DEV/root
  for f in .devdeps/deb/*.deb; do dpkg -x "$f" $DEV/root; done
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target $DEV/site .devdeps/whl/*.whl > $DEV/pip.log 2>&1 || tail -3 $DEV/pip.log
  [ -d .devdeps/official ] && rm -rf $DEV/official && cp -r .devdeps/official $DEV/official
  teacher_take || true
  ab_take
  unxz_programs .xfer-bin $DEV/bin
  cp .xfer-bin/commit $DEV/commit
}
