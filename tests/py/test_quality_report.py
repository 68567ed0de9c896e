# labels: fast
"""tools/quality_report.py on a small run folder whose JSON has the writers' shapes (place.cpp's PlaceResult
plus run_place's "uniform" and "options", select.cpp, hwsearch.cpp, eval/report.cpp, cmd_bench.cpp): the
four tables hold the numbers of the files (the chosen and uniform placements, prefill ms from tok/s, the
harness metric per benchmark, the MC average, retrieval per length, decode tok/s with its batch, the
hybrids against the teacher) and the four PNGs are written; missing inputs make "not run" tables; a
malformed or unreadable input is one error line, exit 2, and no tables.md."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

from checks import Checks

ROOT = os.environ.get("JET_ROOT", ".")
TOOL = os.path.join(ROOT, "tools", "quality_report.py")
expect = Checks()


def place(objective, gains, swa_gains, best, options=None):
    return {"objective": objective, "all_linear": -2.0, "teacher": 0.0, "full_gain": gains, "swa_gain": swa_gains,
            "top": [{"placement": best, "score": -0.25}], "best": best, "evaluations": 9,
            "uniform": {"placement": {"full": [1], "swa": [2]}, "score": -1.5}, "options": options or {}}


def candidate(**kw):
    c = {"params_per_layer": 24000, "state_bytes_per_layer": 4096, "train_loss_last10": 0.36, "heldout_kl": 0.39,
         "heldout_ppl": 30.5, "tokens_per_s": 4000.0, "losses": [0.5, 0.4]}
    c.update(kw)
    return c


def model(path, ppl, arc, mmlu, lambada, niah, passkey):
    return {"path": path, "name": os.path.basename(path), "parameters": 135e6, "max_position_embeddings": 8192,
            "seconds": 1.0, "metrics": {
                "ppl": {"ppl": ppl, "nll": 3.0, "tokens": 100, "windows": 4, "seq_len": 32, "data": "d"},
                "passkey": [{"length": 1024, "accuracy": passkey, "answer_logprob": -1.0, "samples": 4,
                             "beyond_max_position": False}],
                "arc_easy": {"file": "arc_easy.jsonl", "items": 4, "total": 4, "acc": 0.25, "acc_norm": arc, "ll": [],
                             "pred": [], "correct": [], "pred_norm": [], "correct_norm": []},
                "mmlu": {"file": "mmlu.jsonl", "items": 4, "total": 4, "acc": mmlu, "ll": [], "pred": [], "correct": []},
                "lambada": {"file": "lambada.jsonl", "items": 4, "total": 4, "acc": lambada, "ppl": 40.0, "ll": [],
                            "pred": [], "correct": []},
                "niah_single": [{"length": 1024, "score": niah, "samples": 4, "beyond_max_position": False},
                                {"length": 2048, "score": niah / 2, "samples": 4, "beyond_max_position": False}]}}


def bench(path, ctx, tps, batch):
    return {"machine": "NVIDIA H100", "device": "cuda:0", "dtype": "bf16", "mode": "cuda graph", "threads": 1,
            "model": path, "batch": batch, "context": ctx, "gen": 64, "prefill_tok_per_s": 0, "decode_tok_per_s": tps,
            "ms_per_step": 1.0, "weight_bytes": 1, "step_bytes": 1, "achieved_gb_per_s": 1, "copy_gb_per_s": 1,
            "cache_bytes_per_sequence": 1, "largest_batch": batch, "synthetic_cache": True, "max_batch": True,
            "cache_bytes_by_type": {"attn": {"layers": 2, "bytes": 1}}}


def write(d, name, obj):
    with open(os.path.join(d, name), "w") as f:
        json.dump(obj, f)


def report(run, dest, *extra):
    return subprocess.run([sys.executable, TOOL, run, "--out", dest, *extra], capture_output=True, text=True)


def main():
    tmp = tempfile.mkdtemp(prefix="jet_quality_report_")
    run = os.path.join(tmp, "run")
    os.makedirs(run)
    write(run, "config.json", {"teacher": "models/t.gguf", "out": run, "device": "cuda", "dtype": "bf16",
                               "budget": {"full": 1, "swa": 1},
                               "supernet": {"steps": 100, "batch": 16, "seq_len": 512},
                               "place": {"objectives": ["kl", "mc"], "finetune": ["kl"]}})
    write(run, "budget.json", {"minutes": 7.0, "supernet_steps": 100})
    write(run, "place-kl.json", place("kl", [0.5, 1.5, None, -0.25], [None, None, 0.125, 0.0], {"full": [1], "swa": [2]}))
    write(run, "place-mc.json", place("mc", [0.0, 0.25, 0.5, 0.0], [None] * 4, {"full": [2], "swa": [0]},
                                      {"mc_task": "arc_easy"}))
    write(run, "select.json", {"placement": {"full": [1], "swa": [2]},
                               "options": {"steps": 4, "batch": 2, "seq_len": 32, "seed": 0, "eval_windows": 2,
                                           "eval_seq_len": 32},
                               "blocks": [dict(candidate(), type="jet"), dict(candidate(heldout_kl=0.61), type="gla")]})
    write(run, "hwsearch.json", {"placement": {"full": [1], "swa": [2]}, "state": 1024,
                                 "options": {"linear_type": "jet", "device": "cuda", "dtype": "bf16", "time_batch": 64,
                                             "time_len": 512, "steps": 3, "batch": 2, "seq_len": 32},
                                 "candidates": [dict(candidate(), heads=2, d_k=16, d_v=32, decode_ms=0.5,
                                                     prefill_tok_per_s=256000.0),
                                                dict(candidate(heldout_kl=0.45), heads=4, d_k=16, d_v=16, decode_ms=0.4,
                                                     prefill_tok_per_s=512000.0)]})
    teacher, learned, uniform = "models/t.gguf", os.path.join(run, "hybrid-kl"), os.path.join(run, "hybrid-uniform")
    write(run, "eval.json", {"settings": {"tasks": ["ppl", "passkey", "arc_easy", "mmlu", "lambada", "niah_single"],
                                          "device": "cuda", "dtype": "bf16", "seq_len": 32, "ppl_windows": 4,
                                          "limit": 0, "samples": 4},
                             "models": [model(teacher, 20.0, 0.5, 0.25, 0.5, 1.0, 1.0),
                                        model(learned, 25.0, 0.5, 0.5, 0.25, 0.75, 0.5),
                                        model(uniform, 40.0, 0.25, 0.25, 0.0, 0.25, 0.0)]})
    write(run, "bench-t-4096.json", bench("/device/path/models/t.gguf", 4096, 1000.0, 8))  # matched by base name
    write(run, "bench-hybrid-kl-4096.json", bench("/elsewhere/hybrid-kl", 4096, 5000.0, 64))
    write(run, "bench-hybrid-kl-65536.json", bench(learned, 65536, 3000.0, 16))  # by path
    dest = os.path.join(tmp, "out")
    p = report(run, dest)
    md = open(os.path.join(dest, "tables.md")).read() if p.returncode == 0 else ""
    lines = md.splitlines()
    row = lambda start: next((l for l in lines if l.startswith(start)), None)  # noqa: E731
    expect(p.returncode == 0, f"report on a full run folder: {p.stderr.strip()[-300:]}")
    expect(row("| layer | kl full | kl swa | mc (arc_easy) full |") is not None
           and row("| 1 | +1.5000 | - | +0.2500 |") is not None and row("| 2 | - | +0.1250 | +0.5000 |") is not None,
           "placement: per-layer full/swa gains per objective (mc labelled with its task)")
    expect(row("| kl | -2.0000 | 0.0000 | full [1] swa [2] | -0.2500 | full [1] swa [2] | -1.5000 | 9 | yes |") is not None
           and row("| mc (arc_easy) |").endswith("| 9 |  |"), "placement: chosen and uniform placements, finetuned mark")
    expect(row("| jet | 0.024 | 4.0 | 0.3600 | 0.3900 | 30.500 | 4000 |") is not None
           and row("| gla |") is not None and "4 steps x 2 x 32 tokens" in md, "block selection table")
    expect(row("| 2 | 16 | 32 | 1024 | 0.024 | 0.5000 | 2.000 | 256000 |") is not None
           and row("| 4 | 16 | 16 | 1024 |") is not None, "hardware-aware search table (prefill ms from tok/s)")
    expect(row("| metric | t.gguf | hybrid-kl | hybrid-uniform |") is not None
           and row("| held-out ppl | 20.000 | 25.000 | 40.000 |") is not None
           and row("| arc_easy acc_norm (%) | 50.0 | 50.0 | 25.0 |") is not None
           and row("| mmlu acc (%) | 25.0 | 50.0 | 25.0 |") is not None
           and row("| lambada acc (%) | 50.0 | 25.0 | 0.0 |") is not None
           and row("| lambada ppl | 40.00 |") is not None
           and row("| MC average (%) over 2 | 37.5 | 50.0 | 25.0 |") is not None
           and row("| niah_single 1K (%) | 100.0 | 75.0 | 25.0 |") is not None
           and row("| niah_single 2K (%) | 50.0 | 37.5 | 12.5 |") is not None
           and row("| passkey 1K (%) | 100.0 | 50.0 | 0.0 |") is not None,
           "final: ppl, harness metric per benchmark, MC average without LAMBADA, retrieval per length")
    expect(row("| decode tok/s @ 4K (batch) | 1000 (8) | 5000 (64) | - |") is not None
           and row("| decode tok/s @ 64K (batch) | - | 3000 (16) | - |") is not None and "NVIDIA H100" in md,
           "final: decode tok/s per context with the batch, bench files matched to the eval models")
    expect("- hybrid-kl: held-out ppl x1.25, MC average +12.5 points" in md
           and "- hybrid-uniform: held-out ppl x2.00, MC average -12.5 points" in md, "hybrids against the teacher")
    expect("- supernet: 100 steps x 16 x 512 = 0.82 M tokens" in md and "- budget: minutes = 7.0" in md, "run header")
    pngs = ["placement.png", "select.png", "hwsearch.png", "final.png"]
    expect(all(open(os.path.join(dest, f), "rb").read(8) == b"\x89PNG\r\n\x1a\n" for f in pngs if os.path.exists(
        os.path.join(dest, f))) and all(os.path.exists(os.path.join(dest, f)) for f in pngs), "the four PNGs")

    # Missing inputs: "not run", no plots.
    empty = os.path.join(tmp, "empty")
    os.makedirs(empty)
    d2 = os.path.join(tmp, "out2")
    p = report(empty, d2)
    md = open(os.path.join(d2, "tables.md")).read() if p.returncode == 0 else ""
    expect(p.returncode == 0 and md.count("not run") == 4 and not any(f.endswith(".png") for f in os.listdir(d2)),
           "an empty run folder: four tables 'not run', no PNGs")
    only_eval = os.path.join(tmp, "only_eval")
    os.makedirs(only_eval)
    shutil.copy(os.path.join(run, "eval.json"), only_eval)
    p = report(only_eval, os.path.join(tmp, "out3"))
    md = open(os.path.join(tmp, "out3", "tables.md")).read() if p.returncode == 0 else ""
    expect(p.returncode == 0 and md.count("not run") == 4 and "decode speed: not run" in md and "| held-out ppl |" in md,
           "eval.json only: placement, select, hwsearch and decode speed 'not run'")

    # Malformed input: one line, exit 2, nothing written.
    for name, content, what in [("select.json", '{"placement": {"full": [1], "swa": []}, "blocks": []}', "select.json: unexpected content"),
                                ("eval.json", "{not json", "eval.json: not readable JSON"),
                                ("place-kl.json", json.dumps(place("kl", [0.5, 1.0], [None] * 4, {"full": [0], "swa": [1]})),
                                 "unexpected content"),
                                ("bench-hybrid-kl-4096.json", '{"model": "x"}', "bench-hybrid-kl-4096.json: unexpected content")]:
        bad = os.path.join(tmp, "bad")
        shutil.rmtree(bad, ignore_errors=True)
        shutil.copytree(run, bad)
        with open(os.path.join(bad, name), "w") as f:
            f.write(content)
        out = os.path.join(tmp, "out_bad")
        shutil.rmtree(out, ignore_errors=True)
        p = report(bad, out)
        err = p.stderr.strip().splitlines()
        expect(p.returncode == 2 and len(err) == 1 and err[0].startswith("quality_report: ") and what in err[0]
               and not os.path.exists(os.path.join(out, "tables.md")), f"malformed {name}: {err[-1] if err else '(none)'}")
    p = report(os.path.join(tmp, "nowhere"), os.path.join(tmp, "out4"))
    expect(p.returncode == 2 and "no such directory" in p.stderr, "a missing run folder: exit 2")
    shutil.rmtree(tmp)
    expect.finish("test_quality_report")


if __name__ == "__main__":
    main()
