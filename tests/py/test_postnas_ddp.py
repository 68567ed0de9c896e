# labels: fast
"""Data-parallel PostNAS on the CPU (c10d, Gloo) with a tiny random teacher, through the jet binary:
- `supernet --nproc 2` at batch 4 (2 rows a rank) reproduces the one-process run at batch 4: the first step's loss
  bit for bit, every step within 1e-6 relative, the trained blocks within 1e-4 (sums of other sizes, then AdamW's
  normalised steps at lr 1e-2), with the attention transfer and micro-batches on, and with one gradient bucket or
  one per few parameters; the buckets start from the gradient hooks during the backward;
- torchrun's environment (RANK, WORLD_SIZE, MASTER_ADDR/PORT; rank 0 hosts the store) is the same run, bit for bit;
- `finetune --nproc 2` with synthetic retrieval rows and the hidden-state loss, and `select --nproc 2`, reproduce the
  one-process curves (and held-out KL);
- a 2-rank run stopped after 3 steps resumes with 1 rank, and a 1-rank run with 2, on the uninterrupted curve;
- one rank killed: the job stops within seconds, non-zero, its last line naming the rank, no output written (under
  torchrun's environment: the other rank's next collective fails, in one line);
- ranks that sample other sub-networks, a batch the ranks cannot split, a step that is not data parallel under a
  world, a world without its port: one error line each."""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

from safetensors.torch import load_file

from checks import Checks
from data_tiny import make_corpus
from hf_tiny import tiny_llama_teacher

JET = os.environ.get("JET_BIN", "build/jet")
ENV = {k: v for k, v in os.environ.items()
       if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_USE_AGENT_STORE")}
ENV["OMP_NUM_THREADS"] = "1"  # the same thread count in every run: the curves are compared closely
expect = Checks()
REL_ALL = 1e-6   # every step's loss, relative (observed: a few 1e-8)
WEIGHTS = 1e-4   # the trained blocks, max abs difference after 8 steps at lr 1e-2 (observed: 1.5e-5)


def cmd(*args):
    return [JET, *map(str, args)]


def jet(*args, check=True, env=None):
    p = subprocess.run(cmd(*args), capture_output=True, text=True, errors="replace", env=env or ENV)
    if check and p.returncode != 0:
        sys.exit(f"FAIL: jet {' '.join(map(str, args))} -> {p.returncode}\n{p.stderr[-3000:]}")
    return p


def rel(a, b):
    return max(abs(x - y) / max(abs(x), 1e-12) for x, y in zip(a, b)) if len(a) == len(b) else float("inf")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def last_line(p):
    lines = p.stderr.strip().splitlines()
    return lines[-1] if lines else "(no message)"


def main():
    t_start = time.time()
    tmp = tempfile.mkdtemp(prefix="jet_ddp_")
    make_corpus(os.path.join(tmp, "train"), 40, seed=1)
    teacher = tiny_llama_teacher(tmp, os.path.join(tmp, "train"), hidden_size=32, intermediate_size=64,
                                 max_position_embeddings=256)
    data = os.path.join(tmp, "data")
    jet("data", "prepare", "--input", os.path.join(tmp, "train"), "--tokenizer", teacher, "--out", data,
        "--holdout", 0.1)
    d = lambda name: os.path.join(tmp, name)

    def supernet(out, *extra, env=None, check=True):
        return jet("postnas", "supernet", "--teacher", teacher, "--data", data, "--out", out, "--steps", 6,
                   "--batch", 4, "--seq-len", 32, "--lr", 1e-2, "--warmup", 2, "--checkpoint-every", 3,
                   "--swa-window", 8, "--max-full", 1, "--max-swa", 1, "--kl-chunk", 64, "--log-every", 2,
                   "--transfer-steps", 2, "--micro-batch", 1, *extra, env=env, check=check)

    def losses(out, key="losses"):
        return json.load(open(os.path.join(out, "supernet.json")))[key]

    def blocks(out):
        return load_file(os.path.join(out, "supernet.safetensors"))

    def max_diff(a, b):
        return max((a[k] - b[k]).abs().max().item() for k in a) if a.keys() == b.keys() else float("inf")

    # 1 rank at batch 4 against 2 ranks at 2 rows each: the same global batches and sub-networks.
    supernet(d("one"))
    two = supernet(d("two"), "--nproc", 2, env=dict(ENV, JET_DIST_BUCKET_MB="0.002"))  # ~one bucket a tensor
    l1, l2 = losses(d("one")), losses(d("two"))
    t1, t2 = losses(d("one"), "transfer_losses"), losses(d("two"), "transfer_losses")
    expect(len(l1) == 6 and len(t1) == 2 and t1[0] == t2[0] and rel(l1, l2) < REL_ALL and rel(t1, t2) < REL_ALL,
           f"supernet --nproc 2 (attention transfer, micro-batches, many buckets): first step's loss {t1[0]!r} == "
           f"{t2[0]!r}; max relative difference {rel(t1, t2):.1e} (transfer), {rel(l1, l2):.1e} (KL) < {REL_ALL:g}")
    wd = max_diff(blocks(d("one")), blocks(d("two")))
    expect(wd < WEIGHTS, f"supernet --nproc 2: trained blocks within {wd:.1e} of one process's (< {WEIGHTS:g})")
    expect(two.stderr.count("supernet: done") == 1, "only rank 0 speaks (one 'done' line)")
    m = re.search(r"supernet: data parallel over 2 ranks, (\d+) gradient bucket\(s\), (\d+)% of them started during "
                  r"the backward", two.stderr)
    expect(m and int(m.group(1)) > 10 and int(m.group(2)) >= 90,
           f"gradient buckets start from the hooks during the backward (unused layers' found before it): "
           f"{m.group(0) if m else '(no line)'}")

    # torchrun's environment: each process its own rank, rank 0 hosting the store; default bucket size.
    port = free_port()
    procs = [subprocess.Popen(cmd("postnas", "supernet", "--teacher", teacher, "--data", data, "--out", d("env"),
                                  "--steps", 6, "--batch", 4, "--seq-len", 32, "--lr", 1e-2, "--warmup", 2,
                                  "--checkpoint-every", 3, "--swa-window", 8, "--max-full", 1, "--max-swa", 1,
                                  "--kl-chunk", 64, "--log-every", 2, "--transfer-steps", 2, "--micro-batch", 1),
                              env=dict(ENV, RANK=str(r), LOCAL_RANK=str(r), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                                       MASTER_PORT=str(port)),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for r in (0, 1)]
    rcs = [p.wait(timeout=120) for p in procs]
    expect(rcs == [0, 0] and losses(d("env")) == l2 and max_diff(blocks(d("env")), blocks(d("two"))) == 0,
           f"torchrun-style environment (2 processes, rank 0 hosts the store): exit {rcs}, the --nproc run bit for bit")

    # Finetune of the uniform hybrid with retrieval rows (half the rows), the hidden-state loss, the answers'
    # cross-entropy and micro-batches.
    hyb = d("hybrid")
    jet("postnas", "export", "--teacher", teacher, "--supernet", d("one"), "--placement", "uniform", "--full", 1,
        "--swa", 1, "--out", hyb)

    def finetune(out, *extra):
        jet("postnas", "finetune", "--teacher", teacher, "--data", data, "--model", hyb, "--out", out, "--steps", 4,
            "--batch", 4, "--seq-len", 64, "--retrieval-mix", 0.5, "--hidden-mse", 0.5, "--answer-ce", 0.5, "--micro-batch", 1,
            "--log-every", 4, *extra)
        return json.load(open(os.path.join(out, "config.json")))["postnas_finetune"]["losses_first_last"]

    f1, f2 = finetune(d("ft1")), finetune(d("ft2"), "--nproc", 2)
    expect(f1[0] == f2[0] and rel(f1, f2) < REL_ALL and not os.path.exists(d("ft2") + ".ckpt"),
           f"finetune --nproc 2 (retrieval rows, hidden-state loss, answers' cross-entropy): first/last loss {f1} vs {f2}")

    # Block selection: every candidate's curve and held-out KL.
    def select(out, *extra):
        jet("postnas", "select", "--teacher", teacher, "--data", data, "--out", out, "--types", "jet,gdn", "--steps", 3,
            "--batch", 4, "--seq-len", 32, "--swa-window", 8, "--eval-windows", 2, "--eval-seq-len", 32, *extra)
        return json.load(open(out))["blocks"]

    s1, s2 = select(d("sel1.json")), select(d("sel2.json"), "--nproc", 2)
    expect(len(s1) == len(s2) == 2 and all(a["losses"][0] == b["losses"][0] and rel(a["losses"], b["losses"]) < REL_ALL
                                           and rel([a["heldout_kl"]], [b["heldout_kl"]]) < REL_ALL for a, b in zip(s1, s2)),
           "select --nproc 2: each block type's loss curve and held-out KL as one process's: " +
           ", ".join(f"{a['type']} KL {a['heldout_kl']:.6f} / {b['heldout_kl']:.6f}" for a, b in zip(s1, s2)))

    # Resume across world sizes: 2 ranks stopped after 3 steps, then 1 rank; and the reverse.
    supernet(d("r21"), "--nproc", 2, "--stop-after", 3)
    supernet(d("r21"), "--resume")
    supernet(d("r12"), "--stop-after", 3)
    supernet(d("r12"), "--resume", "--nproc", 2)
    a, b = losses(d("r21")), losses(d("r12"))
    expect(a[:3] == l2[:3] and b[:3] == l1[:3] and rel(a, l1) < REL_ALL and rel(b, l1) < REL_ALL,
           f"resume 2 ranks -> 1 and 1 -> 2: the uninterrupted curve (max relative difference {rel(a, l1):.1e}, "
           f"{rel(b, l1):.1e})")

    # One rank killed: the launcher stops the other and fails with one line naming the rank; nothing written.
    out = d("kill")
    p = subprocess.Popen(cmd("postnas", "supernet", "--teacher", teacher, "--data", data, "--out", out, "--steps",
                             100000, "--batch", 4, "--seq-len", 32, "--checkpoint-every", 5, "--swa-window", 8,
                             "--nproc", 2), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ck, children = os.path.join(out, "ckpt", "checkpoint.json"), []
    deadline = time.time() + 60
    while p.poll() is None and time.time() < deadline and not (os.path.exists(ck) and len(children) == 2):
        try:
            children = open(f"/proc/{p.pid}/task/{p.pid}/children").read().split()
        except OSError:
            children = []
        time.sleep(0.02)
    killed = time.time()
    if len(children) == 2:
        os.kill(int(children[1]), signal.SIGKILL)
    try:
        rc = p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        rc = None
    took = time.time() - killed
    err = p.stderr.read().strip().splitlines()
    last = err[-1] if err else ""
    expect(len(children) == 2 and rc == 1 and took < 15 and last.startswith("jet: error: rank 1 of 2 was killed")
           and not os.path.exists(os.path.join(out, "supernet.json")),
           f"rank 1 killed: exit {rc} after {took:.1f} s, last line '{last}'")

    # The same under torchrun's environment (no launcher): rank 0's next collective fails at once, in one line.
    out, port = d("kill-env"), free_port()
    procs = [subprocess.Popen(cmd("postnas", "supernet", "--teacher", teacher, "--data", data, "--out", out, "--steps",
                                  100000, "--batch", 4, "--seq-len", 32, "--checkpoint-every", 5, "--swa-window", 8),
                              env=dict(ENV, RANK=str(r), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for r in (0, 1)]
    ck = os.path.join(out, "ckpt", "checkpoint.json")
    deadline = time.time() + 60
    while procs[0].poll() is None and time.time() < deadline and not os.path.exists(ck):
        time.sleep(0.02)
    killed = time.time()
    procs[1].kill()
    try:
        rc = procs[0].wait(timeout=30)
    except subprocess.TimeoutExpired:
        procs[0].kill()
        rc = None
    took = time.time() - killed
    procs[1].wait()
    err = procs[0].stderr.read().strip().splitlines()
    last = err[-1] if err else ""
    expect(rc == 1 and took < 15 and last.startswith("jet: error: data parallel, rank 0 of 2:")
           and not os.path.exists(os.path.join(out, "supernet.json")),
           f"torchrun-style, rank 1 killed: rank 0 exits {rc} after {took:.1f} s, '{last}'")

    # Misuse: one error line each.
    port = free_port()
    procs = [subprocess.Popen(cmd("postnas", "supernet", "--teacher", teacher, "--data", data, "--out", d(f"seed{r}"),
                                  "--steps", 4, "--batch", 4, "--seq-len", 32, "--log-every", 2, "--seed", r,
                                  "--max-full", 1, "--max-swa", 1,
                                  "--dist-timeout", 20),
                              env=dict(ENV, RANK=str(r), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for r in (0, 1)]
    rcs, errs = [p.wait(timeout=60) for p in procs], [p.stderr.read().strip().splitlines() for p in procs]
    expect(rcs == [1, 1] and all(e and "disagrees with the others about steps 0..1" in e[-1] for e in errs)
           and not os.path.exists(os.path.join(d("seed0"), "supernet.json")),
           f"ranks with other seeds (other sub-networks): exit {rcs}, '{errs[0][-1] if errs[0] else ''}'")
    for what, args, env, want in [
            ("a batch the ranks cannot split", ["supernet", "--teacher", teacher, "--data", data, "--out", d("x1"),
                                                "--batch", 3, "--nproc", 2], ENV, "not a multiple of --nproc 2"),
            ("place under a world", ["place", "--teacher", teacher, "--data", data, "--supernet", d("one"), "--out",
                                     d("x2.json")], dict(ENV, RANK="0", WORLD_SIZE="2", MASTER_PORT="1"),
             "runs as one process"),
            ("a world without MASTER_PORT", ["finetune", "--teacher", teacher, "--data", data, "--model", hyb, "--out",
                                             d("x3")], dict(ENV, RANK="1", WORLD_SIZE="2"), "MASTER_PORT is not set")]:
        r = jet("postnas", *args, check=False, env=env)
        expect(r.returncode == 1 and r.stderr.count("\n") == 1 and want in last_line(r),
               f"{what}: {last_line(r)}")
    print(f"({time.time() - t_start:.1f} s)")
    expect.finish("test_postnas_ddp")


if __name__ == "__main__":
    main()
