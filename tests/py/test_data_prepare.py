# labels: fast
"""`jet data prepare` through the real binary, on a small corpus and a small byte-level BPE tokenizer
trained here with HF tokenizers (the oracle): the shards, read by an independent Python reader, hold
each document's HF encoding followed by EOS; two runs give identical bytes; a run stopped after a few
shards resumes to the same bytes; the fraction split is stable; bad flags give one error line and leave
no output (neither DIR nor DIR.partial); inputs that are not regular files (/dev/zero, a FIFO), too large
or without text are refused before anything is written; the progress journal grows a line per shard."""
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

from data_tiny import JET, Checks, jet, read_split, tiny_corpus



def train_shards_recorded(stage):
    """The train shard records of a stage's journal (a line cut by a kill is skipped)."""
    out = []
    for line in open(os.path.join(stage, "progress.jsonl")).read().split("\n")[1:-1]:
        r = json.loads(line)
        if r["split"] == "train" and "shard" in r:
            out.append(r["shard"])
    return out


def tree_bytes(d):
    out = {}
    for p in sorted(glob.glob(os.path.join(d, "**"), recursive=True)):
        if os.path.isfile(p):
            out[os.path.relpath(p, d)] = open(p, "rb").read()
    return out



def main():
    check = Checks()

    with tempfile.TemporaryDirectory() as tmp:
        train, held, tokdir, hf = tiny_corpus(tmp, 40, 6)
        eos = hf.token_to_id("<|endoftext|>")
        base = ["data", "prepare", "--tokenizer", tokdir, "--shard-tokens", "150", "--no-progress"]

        # 1. Held-out input; shards == HF encoding of each document (sorted by relative path) + EOS.
        a = os.path.join(tmp, "a")
        p = jet(*base, "--input", train, "--holdout-input", held, "--out", a)
        check(p.returncode == 0, f"prepare with --holdout-input: rc={p.returncode} {p.stderr.strip()[-200:]}")
        meta = json.load(open(os.path.join(a, "meta.json")))
        for split, root in (("train", train), ("holdout", held)):
            docs = sorted(os.path.relpath(f, root) for f in glob.glob(os.path.join(root, "**", "*.txt"), recursive=True))
            want = []
            for rel in docs:
                text = open(os.path.join(root, rel)).read()
                if text.strip():
                    want += hf.encode(text).ids + [eos]
            got = read_split(a, split)
            check(got == want, f"{split}: {len(got)} tokens == HF tokenizers' per-document ids + EOS ({len(want)})")
            check(meta["splits"][split]["documents"] == len(docs) - 1 and meta["splits"][split]["skipped_empty"] == 1,
                  f"{split}: {meta['splits'][split]['documents']} documents, 1 empty skipped")
        check(len(meta["splits"]["train"]["shards"]) > 3 and meta["tokenizer"]["eos_id"] == eos
              and meta["sources"]["train"] == [{"name": "synthetic", "licence": "test data"}],
              f"meta.json: {len(meta['splits']['train']['shards'])} train shards, eos, sources copied")
        check(not os.path.exists(a + ".partial") and not glob.glob(os.path.join(a, "**", "*.tmp*"), recursive=True)
              and not os.path.exists(os.path.join(a, "progress.jsonl")), "no staging leftovers")
        # `jet data info` reads it back.
        p = jet("data", "info", a)
        check(p.returncode == 0 and f"{meta['splits']['train']['tokens']} tokens" in p.stdout, "jet data info")

        # 2. Deterministic: a second run gives the same bytes.
        b = os.path.join(tmp, "b")
        jet(*base, "--input", train, "--holdout-input", held, "--out", b)
        check(tree_bytes(a) == tree_bytes(b), "two runs: identical bytes")

        # 3. Resume: stopped after 2 shards (no DIR, DIR.partial kept), rerun continues to the same bytes.
        c = os.path.join(tmp, "c")
        p = jet(*base, "--input", train, "--holdout-input", held, "--out", c, "--stop-after-shards", "2")
        check(p.returncode == 0 and not os.path.exists(c) and os.path.exists(c + ".partial"),
              "stopped run: no DIR, DIR.partial kept")
        p = jet(*base, "--input", train, "--holdout-input", held, "--out", c)
        check(p.returncode == 0 and "resumed: 2 shard(s)" in p.stdout, f"resumed: {p.stdout.strip().splitlines()[-1:]}")
        check(tree_bytes(c) == tree_bytes(a), "resumed run: identical bytes")
        # Stopped inside the train split (after the holdout split finished), then resumed.
        p = jet(*base, "--input", train, "--holdout-input", held, "--out", c + "2", "--stop-after-shards", "4")
        p = jet(*base, "--input", train, "--holdout-input", held, "--out", c + "2")
        check(tree_bytes(c + "2") == tree_bytes(a), "resumed mid-train: identical bytes")
        # A real SIGKILL once 3 train shards are recorded (small shards make the run long enough), then resume.
        k, kref = os.path.join(tmp, "k"), os.path.join(tmp, "kref")
        small = [*base[:-3], "--shard-tokens", "30", "--no-progress", "--input", train, "--holdout-input", held]
        proc = subprocess.Popen([JET, *small, "--out", k], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        recorded = 0
        while proc.poll() is None and recorded < 3:
            try:
                recorded = len(train_shards_recorded(k + ".partial"))
            except OSError:
                pass
            time.sleep(0.001)
        killed = proc.poll() is None
        proc.kill()
        proc.wait()
        check(killed and not os.path.exists(k), f"SIGKILL after {recorded} train shards: no DIR")
        p = jet(*small, "--out", k)
        jet(*small, "--out", kref)
        if tree_bytes(k) != tree_bytes(kref):
            print("differs:", sorted(set(tree_bytes(k)) ^ set(tree_bytes(kref))))
        check(p.returncode == 0 and "resumed" in p.stdout and tree_bytes(k) == tree_bytes(kref),
              f"after SIGKILL: {p.stdout.strip().splitlines()[-1:]}, identical bytes to an uninterrupted run")
        # A partial run with other options is not reused.
        d = os.path.join(tmp, "d")
        jet(*base, "--input", train, "--holdout-input", held, "--out", d, "--stop-after-shards", "2")
        p = jet(*base[:-3], "--shard-tokens", "100", "--no-progress", "--input", train, "--holdout-input", held, "--out", d)
        check(p.returncode == 0 and "resumed" not in p.stdout and read_split(d, "train") == read_split(a, "train"),
              "changed options: starts afresh, same tokens")

        # 4. Fraction split: deterministic, disjoint, covers every document; stable under removing others.
        e = os.path.join(tmp, "e")
        p = jet(*base, "--input", train, "--holdout", "0.2", "--out", e)
        me = json.load(open(os.path.join(e, "meta.json")))
        hd = me["holdout_documents"]
        check(p.returncode == 0 and 2 <= len(hd) <= 20 and
              me["splits"]["train"]["documents"] + me["splits"]["holdout"]["documents"] == 40,
              f"--holdout 0.2: {len(hd)} of 40 documents held out")
        check(read_split(e, "train") + read_split(e, "holdout") != [] and me["sources"]["holdout"] == me["sources"]["train"],
              "fraction split: both splits non-empty")

        # 5. Bad flags: one error line, exit 1, no DIR and no DIR.partial.
        out = os.path.join(tmp, "bad")
        notxt = os.path.join(tmp, "notxt")
        os.makedirs(notxt)
        open(os.path.join(notxt, "a.md"), "w").write("x")
        cases = [
            (["--input", train, "--tokenizer", tokdir], "--out is required"),
            (["--input", os.path.join(tmp, "nope"), "--tokenizer", tokdir, "--out", out], "no such file"),
            (["--input", notxt, "--tokenizer", tokdir, "--out", out], "no .txt files"),
            (["--input", train, "--tokenizer", os.path.join(tmp, "nope"), "--out", out], "no such file"),
            (["--input", train, "--tokenizer", tokdir, "--out", out, "--holdout", "0"], "--holdout must be in"),
            (["--input", train, "--tokenizer", tokdir, "--out", out, "--holdout", "0.9"], "--holdout must be in"),
            (["--input", train, "--tokenizer", tokdir, "--out", out, "--shard-tokens", "0"], "--shard-tokens must be positive"),
            (["--input", train, "--tokenizer", tokdir, "--out", out, "--holdout", "0.1", "--holdout-input", held], "excludes"),
            (["--input", train, "--tokenizer", tokdir, "--out", out, "--holdout-input", train], "both as --input"),
            (["--input", train, "--tokenizer", tokdir, "--out", a], "already exists"),
            (["--input", os.path.join(train, "part1", "doc001.txt"), "--tokenizer", tokdir, "--out", out], "at least 2"),
        ]
        for args, must in cases:
            p = jet("data", "prepare", *args)
            lines = p.stderr.strip().split("\n")
            target = a if "already exists" in must else out
            good = (p.returncode == 1 and len(lines) == 1 and lines[0].startswith("jet: error:") and must in lines[0]
                    and (target == a or not os.path.exists(out)) and not os.path.exists(target + ".partial"))
            check(good, f"bad flags {' '.join(x if len(x) < 30 else '…' + x[-20:] for x in args)} -> {lines[0]!r}")
        # 6. Inputs (issue 15): regular files only, a size cap, text needed; all refused before anything is written.
        fifo = os.path.join(tmp, "fifo.txt")
        os.mkfifo(fifo)
        big = os.path.join(tmp, "big.txt")
        open(big, "w").write("word " * 300)
        blank = os.path.join(tmp, "blank")
        os.makedirs(blank)
        for i in range(3):
            open(os.path.join(blank, f"b{i}.txt"), "w").write(" \n\t\n" * i)
        hin = ["--holdout-input", held]
        for args, must in ((["--input", "/dev/zero", *hin], "/dev/zero: not a regular file"),
                           (["--input", fifo, *hin], f"{fifo}: not a regular file"),
                           (["--input", big, *hin, "--max-input-bytes", "1000"],
                            "1500 bytes, more than the limit of 1000 (--max-input-bytes raises it)"),
                           (["--input", blank, *hin], "the 3 documents of the train split hold no text")):
            try:
                p = subprocess.run([JET, "data", "prepare", "--tokenizer", tokdir, "--no-progress", "--out", out, *args],
                                   capture_output=True, text=True, timeout=30)
                rc, err = p.returncode, p.stderr.strip()
            except subprocess.TimeoutExpired:
                rc, err = "timeout", "(blocked)"
            check(rc == 1 and must in err and len(err.split("\n")) == 1 and not os.path.exists(out)
                  and not os.path.exists(out + ".partial"), f"--input {args[1]}: {err[-110:]!r}")
        # A FIFO named *.txt inside an input directory is not a document (listing takes regular files only).
        withfifo = os.path.join(tmp, "withfifo")
        os.makedirs(withfifo)
        open(os.path.join(withfifo, "doc.txt"), "w").write("the quick brown fox\n")
        os.mkfifo(os.path.join(withfifo, "pipe.txt"))
        try:
            p = subprocess.run([JET, *base, "--input", withfifo, "--holdout-input", held, "--out", out],
                               capture_output=True, text=True, timeout=30)
            rc = p.returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
        check(rc == 0 and json.load(open(os.path.join(out, "meta.json")))["splits"]["train"]["documents"] == 1,
              f"a directory holding a FIFO: rc {rc}, the FIFO skipped")
        # The progress journal grows one line per shard (O(1) per shard; it used to be rewritten whole).
        j = os.path.join(tmp, "j")
        p = jet(*base[:-3], "--shard-tokens", "1", "--no-progress", "--input", train, "--holdout-input", held,
                "--out", j, "--stop-after-shards", "200")
        text = open(os.path.join(j + ".partial", "progress.jsonl")).read()
        records = [json.loads(line) for line in text.split("\n")[1:-1]]
        check(p.returncode == 0 and text.endswith("\n") and sum("shard" in r for r in records) == 200
              and len(records) <= 201, f"--shard-tokens 1, stopped after 200 shards: the journal has a header and "
                                       f"{len(records)} records")
        p = jet(*base[:-3], "--shard-tokens", "1", "--no-progress", "--input", train, "--holdout-input", held,
                "--out", j, "--stop-after-shards", "10")
        n = sum("shard" in json.loads(line)
                for line in open(os.path.join(j + ".partial", "progress.jsonl")).read().split("\n")[1:-1])
        check(p.returncode == 0 and n == 210, f"a rerun resumes from it and appends: {n} shard records after 10 more")

        # --force replaces an existing data set.
        p = jet(*base, "--input", train, "--holdout-input", held, "--out", e, "--force")
        check(p.returncode == 0 and tree_bytes(e) == tree_bytes(a), "--force replaces the directory")

    print("all ok" if check.ok else "FAILED")
    sys.exit(0 if check.ok else 1)


if __name__ == "__main__":
    main()
