#!/usr/bin/env bash
# Fuzzes the model-file readers: GGUF and safetensors headers, HF config.json (ModelConfig), and the
# tokenizer files (tokenizer.json + tokenizer_config.json). Builds each libFuzzer target straight from
# the pure-C++ sources with clang (ASan + UBSan) into a temp dir and runs it for JET_FUZZ_TIME seconds
# (default 15) on a copy of its seed corpus (tests/fuzz/corpus_<name>/). Exits non-zero on any crash,
# leak, timeout or sanitizer report, keeping the reproducer; exits 77 (ctest: skipped) without clang.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
secs=${JET_FUZZ_TIME:-15}
cxx=${JET_FUZZ_CXX:-clang++}

if ! command -v "$cxx" >/dev/null; then
  echo "SKIP: $cxx not found (Debian: apt-get install clang libclang-rt-14-dev)"
  exit 77
fi
work=$(mktemp -d /tmp/jet-fuzz.XXXXXX)
# Debian's fmt (/usr/include/fmt), searched before anything else: LibTorch ships another fmt.
mkdir -p "$work/inc"
ln -s /usr/include/fmt "$work/inc/fmt"
flags=(-std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -DFMT_HEADER_ONLY -I"$work/inc" -I"$root/src")
echo 'extern "C" int LLVMFuzzerTestOneInput(const char*, unsigned long) { return 0; }' > "$work/probe.cpp"
if ! "$cxx" "${flags[@]}" "$work/probe.cpp" -o "$work/probe" 2>"$work/probe.log"; then
  echo "SKIP: $cxx cannot build libFuzzer targets (Debian: apt-get install libclang-rt-14-dev):"
  head -3 "$work/probe.log"
  rm -rf "$work"
  exit 77
fi

targets=(gguf safetensors config tokenizer)
# Library sources (relative to src/) each target links; every source is compiled once, two at a time.
libs_gguf="io/gguf io/gguf_dequant core/mmap"
libs_safetensors="io/safetensors core/mmap"
libs_config="model/config io/hf_json core/fs"
libs_tokenizer="text/tokenizer text/unicode_nfc $libs_gguf"

status=0
echo "== build: ${targets[*]/#/fuzz_}"
mkdir -p "$work/obj"
units=$(for name in "${targets[@]}"; do v="libs_$name"; echo "${!v}"; done | tr ' ' '\n' | sort -u)
compile() {  # compile SRC OBJ
  "$cxx" "${flags[@]}" -c "$1" -o "$2" >"$2.log" 2>&1 || { cat "$2.log"; echo "FAIL: $1 does not build"; return 1; }
}
export -f compile
export cxx work
export flags_str="${flags[*]}"
if ! { for u in $units; do echo "$root/src/$u.cpp $work/obj/${u//\//_}.o"; done
       for name in "${targets[@]}"; do echo "$here/fuzz_$name.cpp $work/obj/fuzz_$name.o"; done; } |
     xargs -P 2 -n 2 bash -c 'flags=($flags_str); compile "$0" "$1"'; then
  exit 1
fi
for name in "${targets[@]}"; do
  v="libs_$name"
  objs=("$work/obj/fuzz_$name.o")
  for u in ${!v}; do objs+=("$work/obj/${u//\//_}.o"); done
  extra=(); [ "$name" = tokenizer ] && extra=(-lpcre2-8)
  if ! "$cxx" "${flags[@]}" "${objs[@]}" "${extra[@]}" -o "$work/fuzz_$name" >"$work/link_$name.log" 2>&1; then
    cat "$work/link_$name.log"
    echo "FAIL: fuzz_$name does not link"
    exit 1
  fi
done
for name in "${targets[@]}"; do
  mkdir -p "$work/corpus_$name" "$work/artifacts_$name"
  cp "$here/corpus_$name"/* "$work/corpus_$name/"
  echo "== fuzz_$name: ${secs}s on $(ls "$here/corpus_$name" | wc -l) seeds"
  if ! UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      "$work/fuzz_$name" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
      -print_final_stats=1 -artifact_prefix="$work/artifacts_$name/" "$work/corpus_$name" \
      >"$work/fuzz_$name.log" 2>&1; then
    tail -60 "$work/fuzz_$name.log"
    echo "FAIL: fuzz_$name found a problem; reproducer(s) in $work/artifacts_$name/:"
    ls -l "$work/artifacts_$name/"
    status=1
  else
    grep -E "^stat::number_of_executed_units|^stat::new_units_added" "$work/fuzz_$name.log" || true
    echo "ok: fuzz_$name"
  fi
done
if [ "$status" = 0 ]; then rm -rf "$work"; fi
exit "$status"
