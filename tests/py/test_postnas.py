# labels: fast
"""PostNAS end to end on a tiny random teacher (a Llama of 4 layers with a BPE tokenizer trained here),
through the jet binary: supernet distillation lowers the loss by a stated margin; a run killed mid-way
(SIGKILL) and resumed with --resume gives the same loss curve, bit for bit, as an uninterrupted run;
the placement search returns a valid placement and an importance table; export -> load -> generate
works and the hybrid has the placement's layer_types; finetune runs on the exported hybrid; bad input
is one error line."""
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import torch

from checks import Checks
from hf_tiny import tiny_llama_teacher
from data_tiny import make_corpus, make_eval_dir

JET = os.environ.get("JET_BIN", "build/jet")
ENV = dict(os.environ, OMP_NUM_THREADS="1")  # bit-exact resume compares runs at one thread count
expect = Checks()


def jet(*args, check=True, env=None, **kw):
    p = subprocess.run([JET, *map(str, args)], capture_output=True, text=True, errors="replace", env=env or ENV, **kw)
    if check and p.returncode != 0:
        sys.exit(f"FAIL: jet {' '.join(map(str, args))} -> {p.returncode}\n{p.stderr[-3000:]}")
    return p


def supernet_args(teacher, data, out):
    return ["postnas", "supernet", "--teacher", teacher, "--data", data, "--out", out, "--steps", 80, "--batch", 4,
            "--seq-len", 48, "--lr", 1e-2, "--warmup", 4, "--checkpoint-every", 4, "--swa-window", 16,
            "--max-full", 1, "--max-swa", 1, "--kl-chunk", 64]


def main():
    tmp = tempfile.mkdtemp(prefix="jet_postnas_")
    make_corpus(os.path.join(tmp, "train"), 80, seed=1)
    make_corpus(os.path.join(tmp, "holdout"), 20, seed=2)
    teacher = tiny_llama_teacher(tmp, os.path.join(tmp, "train"))
    data = os.path.join(tmp, "data")
    jet("data", "prepare", "--input", os.path.join(tmp, "train"), "--holdout-input", os.path.join(tmp, "holdout"),
        "--tokenizer", teacher, "--out", data)

    # Teacher-generated text: batches of max-batch, each file atomic; a lost file comes back identical.
    gen = os.path.join(tmp, "gen")
    gargs = ["data", "generate", "--model", teacher, "--out", gen, "--samples", 5, "--max-batch", 2,
             "--max-new-tokens", 12, "--no-chat", "--seed", 4]
    jet(*gargs)
    files = sorted(f for f in os.listdir(gen) if f.startswith("gen-"))
    first = open(os.path.join(gen, files[2]), "rb").read()  # a random model writes any bytes
    os.remove(os.path.join(gen, files[2]))
    again = jet(*gargs).stdout
    src = json.load(open(os.path.join(gen, "sources.json")))[0]
    expect(len(files) == 5 and open(os.path.join(gen, files[2]), "rb").read() == first and "2 sample(s)" in again
           and src["sampling"]["temperature"] == 0.8, "data generate: 5 samples, a lost batch regenerated identically")
    jet("data", "prepare", "--input", gen, "--tokenizer", teacher, "--out", os.path.join(tmp, "gendata"), "--holdout", 0.2)

    # Supernet, uninterrupted.
    t0 = time.time()
    sn = os.path.join(tmp, "sn")
    jet(*supernet_args(teacher, data, sn))
    losses = json.load(open(os.path.join(sn, "supernet.json")))["losses"]
    first, last = sum(losses[:8]) / 8, sum(losses[-8:]) / 8
    expect(len(losses) == 80 and last < 0.8 * first,
           f"supernet loss falls by more than 20%: first 8 steps {first:.4f}, last 8 {last:.4f} ({time.time() - t0:.1f} s)")
    # A step whose sampled sub-network keeps attention in every layer (windows wider than the rows: the teacher
    # itself, loss 0) has nothing to train: it passes.
    sn0 = os.path.join(tmp, "sn-all-attn")
    jet("postnas", "supernet", "--teacher", teacher, "--data", data, "--out", sn0, "--steps", 2, "--batch", 2,
        "--seq-len", 32, "--max-full", 2, "--max-swa", 2, "--seed", 1, "--swa-window", 64)
    l0 = json.load(open(os.path.join(sn0, "supernet.json")))["losses"]
    expect(l0[0] == 0 and l0[1] > 0, f"a sub-network without linear layers: loss {l0[0]}, then {l0[1]:.4f}")
    # Attention transfer on windows twice the KL's: half the rows, as many tokens a step, micro-batches scaled alike.
    snt = os.path.join(tmp, "sn-transfer-long")
    r = jet("postnas", "supernet", "--teacher", teacher, "--data", data, "--out", snt, "--steps", 2, "--batch", 4,
            "--seq-len", 32, "--transfer-steps", 3, "--transfer-seq-len", 64, "--micro-batch", 2, "--kl-chunk", 64)
    mt = json.load(open(os.path.join(snt, "supernet.json")))
    expect(mt["transfer_tokens"] == 3 * 2 * 64 and len(mt["transfer_losses"]) == 3 and len(mt["losses"]) == 2
           and "transfer on 2 windows of 64 tokens" in r.stderr,
           f"supernet --transfer-seq-len 64: transfer tokens {mt['transfer_tokens']}, losses {mt['transfer_losses']}")
    for v in (1, -64):  # before anything is loaded or written
        bad = jet("postnas", "supernet", "--teacher", teacher, "--data", data, "--out", os.path.join(tmp, "sn-bad-t"),
                  "--steps", 2, "--batch", 4, "--seq-len", 32, "--transfer-steps", 2, "--transfer-seq-len", v, check=False)
        expect(bad.returncode != 0 and "transfer_seq_len must be 0 (seq_len) or more than 1" in bad.stderr
               and not os.path.exists(os.path.join(tmp, "sn-bad-t")),
               f"--transfer-seq-len {v} is a one-line error: {bad.stderr.strip()[-200:]}")
    # The training options' errors (flags, JET_DISTILL_REFERENCE) also come before the output folder is made.
    for extra, env, want in ((["--answer-ce", 0.5], {}, "needs retrieval rows"),
                             ([], {"JET_DISTILL_REFERENCE": "kl,bogus"}, "'bogus' is not 1, kl, adam or sync")):
        bad = jet("postnas", "supernet", "--teacher", teacher, "--data", data, "--out", os.path.join(tmp, "sn-bad-o"),
                  "--steps", 2, "--batch", 4, "--seq-len", 32, *extra, check=False, env={**ENV, **env})
        expect(bad.returncode != 0 and want in bad.stderr and bad.stderr.count("error") == 1
               and not os.path.exists(os.path.join(tmp, "sn-bad-o")),
               f"supernet {extra} {env}: one-line error, nothing written: {bad.stderr.strip()[-200:]}")

    # The same run killed after its checkpoint at step >= 16, then resumed.
    sn2 = os.path.join(tmp, "sn2")
    p = subprocess.Popen([JET, *map(str, supernet_args(teacher, data, sn2))], env=ENV, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    ck = os.path.join(sn2, "ckpt", "checkpoint.json")
    killed_at = None
    while p.poll() is None:
        try:
            step = json.load(open(ck))["step"]
        except (OSError, ValueError):
            step = 0
        if step >= 16:
            p.send_signal(signal.SIGKILL)
            p.wait()
            killed_at = step
            break
        time.sleep(0.005)
    expect(killed_at is not None and not os.path.exists(os.path.join(sn2, "supernet.json")),
           f"run killed mid-way (checkpoint at step {killed_at}, no final output)")
    again = jet(*supernet_args(teacher, data, sn2), check=False)
    expect(again.returncode == 1 and "--resume" in again.stderr and again.stderr.count("\n") == 1,
           "a second run without --resume refuses the checkpoint: " + again.stderr.strip()[-120:])
    jet(*supernet_args(teacher, data, sn2), "--resume")
    resumed = json.load(open(os.path.join(sn2, "supernet.json")))["losses"]
    expect(resumed == losses, f"resumed loss curve == uninterrupted, bit for bit ({len(resumed)} steps)")
    w1 = open(os.path.join(sn, "supernet.safetensors"), "rb").read()
    w2 = open(os.path.join(sn2, "supernet.safetensors"), "rb").read()
    expect(w1 == w2, "resumed supernet weights == uninterrupted, byte for byte")

    # Placement search.
    place = os.path.join(tmp, "place.json")
    out = jet("postnas", "place", "--teacher", teacher, "--data", data, "--supernet", sn, "--out", place,
              "--full", 1, "--swa", 1, "--beam", 2, "--eval-windows", 4, "--eval-seq-len", 48).stdout
    r = json.load(open(place))
    best = r["best"]
    gains = r["full_gain"]
    expect(len(best["full"]) == 1 and len(best["swa"]) == 1 and set(best["full"]).isdisjoint(best["swa"])
           and all(0 <= l < 4 for l in best["full"] + best["swa"]), f"valid placement {best}")
    expect(len(gains) == 4 and all(g is not None for g in gains) and abs(r["teacher"]) < 1e-6
           and r["all_linear"] < r["top"][0]["score"] <= 1e-9,
           f"importance table {['%.4f' % g for g in gains]}, all-linear {r['all_linear']:.4f} < best {r['top'][0]['score']:.4f} <= teacher")
    expect("full-attn gain" in out and "top 1:" in out, "place prints the table and the top placements")

    # Placement on real-benchmark data: mc on a benchmark (acc_norm, ties broken by the gold choice's
    # log-probability), niah on RULER's niah_single; the teacher's score equals `jet eval` on the same items
    # (the objective samples with seed + 29 / + 31).
    edir = os.path.join(tmp, "eval")
    make_eval_dir(edir, 5, n_arc=5)
    pargs = ["postnas", "place", "--teacher", teacher, "--data", data, "--supernet", sn, "--full", 1, "--swa", 0,
             "--seed", 2]
    jet(*pargs, "--eval-dir", edir, "--objective", "mc", "--mc-task", "arc_easy", "--mc-items", 5, "--out", os.path.join(tmp, "pmc.json"))
    jet("eval", "--model", teacher, "--tasks", "arc_easy", "--eval-dir", edir, "--limit", 5, "--seed", 31,
        "--json", os.path.join(tmp, "emc.json"))
    pmc = json.load(open(os.path.join(tmp, "pmc.json")))
    arc = json.load(open(os.path.join(tmp, "emc.json")))["models"][0]["metrics"]["arc_easy"]
    golds = [json.loads(l)["gold"] for l in open(os.path.join(edir, "arc_easy.jsonl"))]
    gold_lp = [ll[g] - max(ll) - math.log(sum(math.exp(x - max(ll)) for x in ll)) for ll, g in zip(arc["ll"], golds)]
    want = arc["acc_norm"] + 1e-4 * sum(gold_lp) / len(gold_lp)
    expect(arc["items"] == 5 and pmc["objective"] == "mc" and pmc["options"]["mc_task"] == "arc_easy"
           and abs(pmc["teacher"] - want) < 1e-9 and len(pmc["full_gain"]) == 4 and "score" in pmc["uniform"],
           f"place --objective mc --mc-task arc_easy: the teacher's score {pmc['teacher']:.6f} == jet eval's acc_norm "
           f"{arc['acc_norm']} + 1e-4 x the gold choice's mean log-probability ({want:.6f})")
    jet(*pargs, "--eval-dir", edir, "--objective", "niah", "--passkey-length", 500, "--passkey-samples", 2, "--out", os.path.join(tmp, "pniah.json"))
    jet("eval", "--model", teacher, "--tasks", "niah_single", "--eval-dir", edir, "--lengths", 500, "--samples", 2,
        "--seed", 33, "--json", os.path.join(tmp, "eniah.json"))
    pn = json.load(open(os.path.join(tmp, "pniah.json")))
    en = json.load(open(os.path.join(tmp, "eniah.json")))["models"][0]["metrics"]["niah_single"][0]
    expect(pn["objective"] == "niah" and abs(pn["teacher"] - en["score"]) < 1e-12 and len(pn["full_gain"]) == 4,
           f"place --objective niah: the teacher's score {pn['teacher']} == jet eval niah_single at 500 tokens {en['score']}")
    # A sum of objectives scores every placement as the sum of its parts (the teacher's score included).
    jet(*pargs, "--eval-dir", edir, "--objective", "mc+niah", "--mc-task", "arc_easy", "--mc-items", 5,
        "--passkey-length", 500, "--passkey-samples", 2, "--out", os.path.join(tmp, "psum.json"))
    ps = json.load(open(os.path.join(tmp, "psum.json")))
    expect(ps["objective"] == "mc+niah" and abs(ps["teacher"] - (pmc["teacher"] + pn["teacher"])) < 1e-9,
           f"place --objective mc+niah: the teacher's score {ps['teacher']:.6f} == mc's + niah's")
    for extra, what, want in [(["--objective", "niah", "--eval-dir", os.path.join(tmp, "noeval")], "missing RULER data",
                               "ruler_essays.jsonl"),
                              (["--eval-dir", edir, "--objective", "mc", "--mc-task", "mmlu"], "missing benchmark file",
                               "mmlu_dev.jsonl"),
                              (["--eval-dir", edir, "--objective", "mc", "--mc-task", "quiz"], "unknown mc task", "'quiz'")]:
        p = jet(*pargs, *extra, "--out", os.path.join(tmp, "x5.json"), check=False)
        lines = p.stderr.strip().splitlines()
        expect(p.returncode == 1 and p.stderr.count("error") == 1 and lines[-1].startswith("jet: error:")
               and want in lines[-1] and not os.path.exists(os.path.join(tmp, "x5.json")),
               f"{what}: {lines[-1] if lines else '(no message)'}")

    # Export -> load -> generate; finetune.
    hyb = os.path.join(tmp, "hybrid")
    jet("postnas", "export", "--teacher", teacher, "--supernet", sn, "--placement", place, "--out", hyb)
    lt = json.load(open(os.path.join(hyb, "config.json")))["layer_types"]
    want = ["jet"] * 4
    want[best["full"][0]] = "attn"
    want[best["swa"][0]] = "swa"
    expect(lt == want, f"exported layer_types {lt}")
    g = jet("generate", "--model", hyb, "--prompt", "the quick brown", "--max-new-tokens", 8, "--temperature", 0,
            "--print-token-ids")
    expect("decode" in g.stdout + g.stderr, "jet generate runs the exported hybrid")
    ft = os.path.join(tmp, "hybrid-ft")
    jet("postnas", "finetune", "--teacher", teacher, "--data", data, "--model", hyb, "--out", ft, "--steps", 6,
        "--batch", 2, "--seq-len", 32)
    expect(json.load(open(os.path.join(ft, "config.json")))["layer_types"] == want, "finetuned hybrid keeps the placement")
    # The same first step with the per-layer hidden-state loss on top: same KL part, a larger loss.
    ft2 = os.path.join(tmp, "hybrid-ft-mse")
    jet("postnas", "finetune", "--teacher", teacher, "--data", data, "--model", hyb, "--out", ft2, "--steps", 1,
        "--batch", 2, "--seq-len", 32, "--hidden-mse", 0.5)
    src1, src2 = (json.load(open(os.path.join(d, "config.json")))["postnas_finetune"] for d in (ft, ft2))
    expect(src2["hidden_mse"] == 0.5 and src2["losses_first_last"][0] > src1["losses_first_last"][0],
           f"finetune --hidden-mse 0.5 adds the hidden-state loss: first loss {src1['losses_first_last'][0]:.4f} -> "
           f"{src2['losses_first_last'][0]:.4f}")
    # Retrieval rows with the answers' cross-entropy on top: same rows, a larger first loss; without retrieval rows
    # the option is a one-line error and nothing is written.
    def first_loss(out, *extra):
        jet("postnas", "finetune", "--teacher", teacher, "--data", data, "--model", hyb, "--out", out, "--steps", 1,
            "--batch", 2, "--seq-len", 256, "--retrieval-mix", 1, *extra)
        return json.load(open(os.path.join(out, "config.json")))["postnas_finetune"]
    src3, src4 = first_loss(os.path.join(tmp, "ft-mix")), first_loss(os.path.join(tmp, "ft-ce"), "--answer-ce", 0.5)
    expect(src4["answer_ce"] == 0.5 and src4["losses_first_last"][0] > src3["losses_first_last"][0] + 0.1,
           f"finetune --answer-ce 0.5 adds the answers' cross-entropy: first loss {src3['losses_first_last'][0]:.4f} -> "
           f"{src4['losses_first_last'][0]:.4f}")
    bad = jet("postnas", "finetune", "--teacher", teacher, "--data", data, "--model", hyb, "--out",
              os.path.join(tmp, "ft-bad"), "--steps", 1, "--batch", 2, "--seq-len", 64, "--answer-ce", 0.5, check=False)
    expect(bad.returncode != 0 and "needs retrieval rows" in bad.stderr and bad.stderr.count("error") == 1
           and not os.path.exists(os.path.join(tmp, "ft-bad")), f"--answer-ce without rows: {bad.stderr.strip()[-200:]}")
    jet("generate", "--model", ft, "--prompt", "the quick brown", "--max-new-tokens", 4, "--temperature", 0)

    # Block selection on the learned placement: every type trained with the same budget, one row each.
    sel = os.path.join(tmp, "select.json")
    out = jet("postnas", "select", "--teacher", teacher, "--data", data, "--placement", place, "--out", sel,
              "--types", "jet,gdn,deltanet,gla,retnet,mamba2", "--steps", 4, "--batch", 2, "--seq-len", 32,
              "--swa-window", 16, "--eval-windows", 2, "--eval-seq-len", 32).stdout
    rows = json.load(open(sel))["blocks"]
    expect([r["type"] for r in rows] == ["jet", "gdn", "deltanet", "gla", "retnet", "mamba2"]
           and all(r["heldout_kl"] > 0 and r["heldout_ppl"] > 1 and len(r["losses"]) == 4 and r["state_bytes_per_layer"] > 0
                   for r in rows)
           and "held-out KL" in out, "select: one row per block type " +
           ", ".join(f"{r['type']} KL {r['heldout_kl']:.3f}" for r in rows))

    # Hardware-aware search: every (heads, d_k) of the grid at the same state size H·d_k·d_v.
    hw = os.path.join(tmp, "hw.json")
    out = jet("postnas", "hwsearch", "--teacher", teacher, "--data", data, "--placement", place, "--out", hw,
              "--heads", "2,4,3", "--head-dims", "16,32", "--steps", 3, "--batch", 2, "--seq-len", 32, "--swa-window", 16,
              "--eval-windows", 2, "--eval-seq-len", 32, "--time-batch", 4, "--time-len", 32, "--time-iters", 2).stdout
    hwr = json.load(open(hw))
    dims = sorted((c["heads"], c["d_k"], c["d_v"]) for c in hwr["candidates"])
    expect(hwr["state"] == 4 * 16 * 16 and dims == [(2, 16, 32), (2, 32, 16), (4, 16, 16), (4, 32, 8)]
           and all(c["decode_ms"] > 0 and c["heldout_kl"] > 0 for c in hwr["candidates"]) and "decode ms/step" in out,
           f"hwsearch: the grid at a fixed state (3 heads divide no d_v): {dims}")

    # The whole chain from a run config, then a rerun that skips every step.
    run_dir = os.path.join(tmp, "run")
    cfg_path = os.path.join(tmp, "run.json")
    json.dump({"teacher": teacher, "out": run_dir, "device": "cpu", "dtype": "fp32", "seed": 1,
               "data": {"dir": data}, "budget": {"full": 1, "swa": 1},
               "supernet": {"steps": 12, "batch": 2, "seq_len": 32, "lr": 1e-2, "swa_window": 16, "checkpoint_every": 6},
               "place": {"objectives": ["kl", "passkey", "mc"], "eval_windows": 2, "eval_seq_len": 32,
                         "passkey_length": 400, "passkey_samples": 2, "mc_items": 4, "mc_context": 12, "mc_choice": 4},
               "hwsearch": {"heads": "2", "head_dims": "16", "steps": 2, "batch": 2, "seq_len": 32, "swa_window": 16,
                            "eval_windows": 2, "eval_seq_len": 32, "time_batch": 2, "time_len": 16, "time_iters": 1},
               "finetune": {"steps": 4, "batch": 2, "seq_len": 32},
               "eval": {"tasks": "ppl,passkey,arc_easy", "seq_len": 32, "ppl_windows": 4, "passkey_lengths": [400],
                        "samples": 2, "eval_dir": edir, "limit": 3, "batch_tokens": 256}},
              open(cfg_path, "w"))
    t0 = time.time()
    r1 = jet("postnas", "run", "--config", cfg_path)
    ev = json.load(open(os.path.join(run_dir, "eval.json")))
    names = [m["path"] for m in ev["models"]]
    expect(names == [teacher, os.path.join(run_dir, "hybrid-kl"), os.path.join(run_dir, "hybrid-uniform")]
           and all("ppl" in m["metrics"] for m in ev["models"]) and "ppl" in r1.stdout,
           f"run: eval table of teacher + learned + uniform hybrids ({time.time() - t0:.1f} s)")
    objs = [json.load(open(os.path.join(run_dir, f"place-{o}.json")))["objective"] for o in ("kl", "passkey", "mc")]
    expect(objs == ["kl", "passkey", "mc"], "run: one placement per objective")
    hwr = json.load(open(os.path.join(run_dir, "hwsearch.json")))
    expect([(c["heads"], c["d_k"]) for c in hwr["candidates"]] == [(2, 16)]
           and hwr["options"]["placement"] == os.path.join(run_dir, "place-kl.json"),
           "run: the hwsearch section runs on the first objective's placement")
    expect(all(m["metrics"]["arc_easy"]["items"] == 3 for m in ev["models"]) and ev["settings"]["batch_tokens"] == 256,
           "run: eval's limit, eval_dir and batch_tokens reach the report")
    # tools/quality_report.py on the run's real outputs (and a `jet bench --json` of the learned hybrid).
    jet("bench", "--model", os.path.join(run_dir, "hybrid-kl"), "--synthetic-cache", "--batch", 2, "--context", 64,
        "--gen", 4, "--json", os.path.join(run_dir, "bench-hybrid-kl-64.json"))
    rep = os.path.join(tmp, "report")
    q = subprocess.run([sys.executable, os.path.join(os.environ.get("JET_ROOT", "."), "tools", "quality_report.py"),
                        run_dir, "--out", rep], capture_output=True, text=True)
    md = open(os.path.join(rep, "tables.md")).read() if q.returncode == 0 else q.stderr
    expect(q.returncode == 0 and md.count("not run") == 1 and "| 2 | 16 | 32 | 1024 |" in md
           and "| arc_easy acc_norm (%) |" in md and "| decode tok/s @ 64 (batch) | - | " in md
           and all(os.path.exists(os.path.join(rep, f)) for f in ("placement.png", "hwsearch.png", "final.png")),
           "quality_report reads the run's outputs (select not run): " + md.strip().splitlines()[-1][:200])
    r2 = jet("postnas", "run", "--config", cfg_path)
    expect(r2.stderr.count("done already") >= 9, "rerun skips every finished step")
    # A run stopped inside a step (the uniform finetune, after its checkpoint at step 2 of 4) fails with one
    # line; the same command again continues that step from its checkpoint and ends with the same weights.
    uni = os.path.join(run_dir, "hybrid-uniform")
    before = open(os.path.join(uni, "model.safetensors"), "rb").read()
    shutil.rmtree(uni)
    os.remove(os.path.join(run_dir, "eval.json"))
    stopped = json.load(open(cfg_path))
    stopped["finetune"].update(checkpoint_every=2, stop_after=2)
    json.dump(stopped, open(cfg_path, "w"))
    r3 = jet("postnas", "run", "--config", cfg_path, check=False)
    del stopped["finetune"]["stop_after"]
    json.dump(stopped, open(cfg_path, "w"))
    r4 = jet("postnas", "run", "--config", cfg_path)
    expect(r3.returncode == 1 and "rerun to resume" in r3.stderr and "resumed at step 2" in r4.stderr
           and open(os.path.join(uni, "model.safetensors"), "rb").read() == before
           and os.path.exists(os.path.join(run_dir, "eval.json")),
           "a run stopped inside finetune continues it from its checkpoint when rerun: same weights, eval written")
    good = json.load(open(cfg_path))
    for bad, want in [(dict(good, surprise=1), "unknown key 'surprise'"),
                      (dict(good, eval=dict(good["eval"], lengths="1024")), "eval option 'lengths' has the wrong type")]:
        json.dump(bad, open(cfg_path, "w"))
        p = jet("postnas", "run", "--config", cfg_path, check=False)
        expect(p.returncode == 1 and want in p.stderr and p.stderr.count("\n") == 1, f"run: {p.stderr.strip()}")

    # Bad input: one error line, exit 1, no output left behind.
    for args, what in [
        (["postnas", "supernet", "--data", data, "--out", os.path.join(tmp, "x1")], "missing --teacher"),
        (supernet_args(teacher, data, os.path.join(tmp, "x2"))[:-2] + ["--kl-chunk", "abc"], "a non-number"),
        (["postnas", "place", "--teacher", teacher, "--data", data, "--supernet", os.path.join(tmp, "none"),
          "--out", os.path.join(tmp, "x3.json")], "a missing supernet"),
        (supernet_args(teacher, os.path.join(tmp, "nodata"), os.path.join(tmp, "x4")), "a missing data set"),
        (["postnas", "export", "--teacher", teacher, "--supernet", sn, "--placement", place, "--out", hyb], "an existing output"),
    ]:
        p = jet(*args, check=False)
        lines = p.stderr.strip().splitlines()
        expect(p.returncode == 1 and len(lines) == 1 and lines[0].startswith("jet: error:"),
               f"{what}: {lines[-1] if lines else '(no message)'}")
    expect(not any(os.path.exists(os.path.join(tmp, x)) for x in ("x3.json",)), "no partial outputs")

    expect.finish("test_postnas")


if __name__ == "__main__":
    main()
