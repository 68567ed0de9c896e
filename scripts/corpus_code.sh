#!/usr/bin/env bash
# Code text for code teachers (Qwen2.5-Coder; configs/postnas-qwen2.5-coder-*.json): the Python standard
# library's source from Debian's libpython3.X-minimal and libpython3.X-stdlib (PSF License v2), one .txt document per module file,
# under data/corpus-code/train/python-stdlib/ and data/corpus-code/holdout/python-stdlib/ (every 20th file
# in sorted order is held out), each split with a sources.json. Kept apart from scripts/corpus.sh (its
# Python docs complement this); no evaluation texts. Idempotent (stamp = this script + the package versions).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=data/corpus-code
log() { printf '\033[1m[corpus-code]\033[0m %s\n' "$*"; }
PY=$(/usr/bin/python3 -c 'import sys; print(f"python{sys.version_info[0]}.{sys.version_info[1]}")')
PKGS="lib$PY-minimal lib$PY-stdlib"
bash scripts/apt_need.sh $PKGS
VERS=$(for p in $PKGS; do printf '%s=%s ' "$p" "$(dpkg-query -W -f '${Version}' "$p")"; done)
want="$(sha256sum < scripts/corpus_code.sh | cut -d' ' -f1) $VERS"
if [ -f "$OUT/.stamp" ] && [ "$(cat "$OUT/.stamp")" = "$want" ]; then
  log "up to date ($OUT)"
  exit 0
fi
rm -rf "$OUT.tmp"
/usr/bin/python3 - "$OUT.tmp" $VERS <<'PY'
import json, os, subprocess, sys
out, pkgs = sys.argv[1], [a.split("=") for a in sys.argv[2:]]
# The packages' own file lists: their .py files, without tests, site/dist-packages and bundled wheels.
listed = subprocess.run(["dpkg", "-L", *[p for p, _ in pkgs]], capture_output=True, text=True, check=True).stdout
lib = f"/usr/lib/python{sys.version_info[0]}.{sys.version_info[1]}/"
files = sorted(set(p for p in listed.split("\n") if p.startswith(lib) and p.endswith(".py") and os.path.isfile(p) and
                   not any(s in p for s in ("/test/", "/tests/", "-packages/", "/ensurepip/"))))
what = ", ".join(f"{p} {v}" for p, v in pkgs)
stats = {"train": [0, 0], "holdout": [0, 0]}
for i, p in enumerate(files):
    split = "holdout" if i % 20 == 19 else "train"
    try:
        text = open(p, encoding="utf-8").read()
    except UnicodeDecodeError:
        continue
    if not text.strip():
        continue
    rel = p[len(lib):]
    dst = os.path.join(out, split, "python-stdlib", rel[:-3].replace("/", ".") + ".txt")
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    with open(dst, "w", encoding="utf-8") as f:
        f.write(text)
    stats[split][0] += 1
    stats[split][1] += len(text.encode())
for split, (n, b) in stats.items():
    assert n > 0, f"{what}: no {split} documents"
    with open(os.path.join(out, split, "sources.json"), "w") as f:
        json.dump([{"name": "python-stdlib", "source": f"Python standard library source (Debian {what})",
                    "licence": "PSF License v2", "documents": n, "bytes": b}], f, indent=1)
        f.write("\n")
    print(f"{split:8} python-stdlib {n:5} documents {b / 1e6:7.2f} MB")
PY
echo "$want" > "$OUT.tmp/.stamp"
rm -rf "$OUT"
mv "$OUT.tmp" "$OUT"
log "done: $OUT ($(du -sh "$OUT" | cut -f1))"
