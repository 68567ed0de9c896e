# labels: fast
"""`jet eval` through the real binary on two tiny random HF models (Llama, Qwen2) with a tokenizer
trained here: held-out perplexity equals HF transformers' on the same windows (read from the shards by
an independent reader), multiple-choice accuracy from a JSON Lines set equals HF's mean-log-prob rule,
passkey lengths past max_position_embeddings are run and marked, the side-by-side table and the JSON
agree; bad flags give one error line and no JSON file."""
import json
import os
import shutil
import sys
import tempfile

import torch
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

from data_tiny import Checks, jet, read_split, tiny_corpus
from hf_tiny import save_random

SEQ, WINDOWS = 24, 6



def hf_nll(model, windows):
    with torch.no_grad():
        lp = torch.log_softmax(model(windows).logits.double(), -1)
        return -lp[:, :-1].gather(-1, windows[:, 1:, None]).mean().item()


def hf_mc_accuracy(model, tok, items):
    right = 0
    for it in items:
        ctx = tok.encode(it["context"]).ids
        scores = []
        for c in it["choices"]:
            ch = tok.encode(c).ids
            with torch.no_grad():
                lp = torch.log_softmax(model(torch.tensor([ctx + ch])).logits[0].double(), -1)
            scores.append(sum(lp[len(ctx) - 1 + j, t].item() for j, t in enumerate(ch)) / len(ch))
        right += max(range(len(scores)), key=lambda i: (scores[i], -i)) == it["answer"]
    return right / len(items)


def main():
    torch.set_num_threads(2)
    check = Checks()

    with tempfile.TemporaryDirectory() as tmp:
        train, held, tokdir, tok = tiny_corpus(tmp, 12, 30)
        vocab = tok.get_vocab_size()
        data = os.path.join(tmp, "data")
        p = jet("data", "prepare", "--input", train, "--holdout-input", held, "--tokenizer", tokdir, "--out", data,
                "--no-progress")
        check(p.returncode == 0, f"data set: {p.stdout.strip().splitlines()[:2]}")

        models = {}
        small = dict(vocab_size=vocab, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512)
        for name, cls, cfg in (("llama", LlamaForCausalLM, LlamaConfig(**small, tie_word_embeddings=False)),
                               ("qwen2", Qwen2ForCausalLM, Qwen2Config(**small, tie_word_embeddings=True))):
            d = os.path.join(tmp, name)
            models[name] = save_random(cls, cfg, d, seed=len(models) + 1).eval()
            for f in ("tokenizer.json", "tokenizer_config.json"):
                shutil.copy(os.path.join(tokdir, f), d)

        items = [{"context": "the quick brown fox", "choices": [" jumps over", " the river", " seven", " and then"],
                  "answer": 0},
                 {"context": "seven wizards quietly", "choices": [" judge boxing", " lazy dog"], "answer": 1},
                 {"context": "in a small town by", "choices": [" the river .", " a fox", " quick"], "answer": 2},
                 {"context": "a lazy dog while", "choices": [" the", " boxing matches !"], "answer": 0},
                 {"context": "and then the", "choices": [" fox jumps", " town", " wizards judge"], "answer": 1}]
        mc = os.path.join(tmp, "mc.jsonl")
        with open(mc, "w") as f:
            for it in items:
                f.write(json.dumps(it) + "\n")

        out = os.path.join(tmp, "eval.json")
        paths = [os.path.join(tmp, n) for n in models]
        p = jet("eval", "--model", ",".join(paths), "--tasks", "ppl,passkey,mc", "--data", data, "--seq-len", SEQ,
                "--ppl-windows", WINDOWS, "--batch", 4, "--passkey-lengths", "400,600", "--samples", 2,
                "--mc-jsonl", mc, "--json", out)
        check(p.returncode == 0, f"jet eval rc={p.returncode} {p.stderr.strip().splitlines()[-1:]}")
        print(p.stdout)
        res = json.load(open(out))
        windows = torch.tensor(read_split(data, "holdout")[: SEQ * WINDOWS]).view(WINDOWS, SEQ)
        for i, (name, model) in enumerate(models.items()):
            m = res["models"][i]["metrics"]
            want = hf_nll(model, windows)
            got = m["ppl"]["nll"]
            check(abs(got - want) <= 1e-5 * max(1.0, want) and m["ppl"]["tokens"] == WINDOWS * (SEQ - 1),
                  f"{name}: held-out nll {got:.6f} == HF {want:.6f} over {WINDOWS}x{SEQ}")
            want_mc = hf_mc_accuracy(model, tok, items)
            check(m["mc"]["accuracy"] == want_mc and m["mc"]["items"] == len(items),
                  f"{name}: mc accuracy {m['mc']['accuracy']} == HF {want_mc}")
            pk = {x["length"]: x for x in m["passkey"]}
            check(set(pk) == {400, 600} and not pk[400]["beyond_max_position"] and pk[600]["beyond_max_position"]
                  and all(0 <= x["accuracy"] <= 1 and x["samples"] == 2 for x in pk.values()),
                  f"{name}: passkey at 400 and 600 (past max_position_embeddings 512, marked)")
        lines = p.stdout.splitlines()
        header = lines[0]
        check("llama" in header and "qwen2" in header and header.index("llama") < header.index("qwen2"),
              "table: one column per model, in order")
        row = next((l for l in lines if l.startswith(f"| ppl holdout ({WINDOWS}x{SEQ})")), "")
        cells = [c.strip() for c in row.strip("|").split("|")][1:]
        check(cells == [f"{r['metrics']['ppl']['ppl']:.3f}" for r in res["models"]], f"table ppl row {cells} == JSON")
        row600 = next((l for l in lines if l.startswith("| passkey 600")), "")
        check(row600.count("*") == 2 and any(l.startswith("* context length beyond") for l in lines),
              "table: passkey 600 marked beyond max_position_embeddings")

        # holdout-cloze-4 from the data set's held-out split.
        p = jet("eval", "--model", paths[0], "--tasks", "mc", "--data", data, "--mc-items", 7,
                "--mc-context-tokens", 12, "--mc-choice-tokens", 5, "--json", out)
        m = json.load(open(out))["models"][0]["metrics"]["mc"] if p.returncode == 0 else {}
        check(m.get("task") == "holdout-cloze-4" and m.get("items") == 7 and 0 <= m.get("accuracy", -1) <= 1
              and "| mc holdout-cloze-4 (7 items)" in p.stdout, f"holdout-cloze-4: {m or p.stderr.strip()[-300:]}")

        # Bad flags: exit 1, one "jet: error:" line, no JSON written.
        bad_json = os.path.join(tmp, "bad.json")
        cases = [
            (["--model", paths[0], "--tasks", "ppl,bogus", "--data", data], "unknown task 'bogus'"),
            (["--model", paths[0], "--tasks", "ppl"], "--data DIR is needed for ppl"),
            (["--model", os.path.join(tmp, "nope"), "--data", data], "no such file"),
            (["--model", paths[0], "--data", os.path.join(tmp, "nope")], "meta.json: missing"),
            (["--model", paths[0], "--data", data, "--device", "tpu"], "unknown device"),
            (["--model", paths[0], "--data", data, "--seq-len", 1], "--seq-len must be >= 2"),
            (["--model", paths[0], "--data", data, "--seq-len", 100000], "no window of 100000 tokens fits"),
            (["--model", paths[0], "--data", data, "--ppl-windows", 0], "--ppl-windows must be positive"),
            (["--model", paths[0], "--tasks", "passkey", "--passkey-lengths", "512,-1"], "not a positive length"),
            (["--model", paths[0], "--tasks", "passkey", "--passkey-lengths", "30"], "too short"),
            (["--model", paths[0], "--data", data, "--json", os.path.join(tmp, "no", "x.json")], "does not exist"),
        ]
        for args, must in cases:
            p = jet("eval", *args, *([] if "--json" in args else ["--json", bad_json]))
            lines = p.stderr.strip().split("\n")
            good = (p.returncode == 1 and len(lines) == 1 and lines[0].startswith("jet: error:") and must in lines[0]
                    and p.stdout == "" and not os.path.exists(bad_json))
            check(good, f"bad flags {' '.join(str(a) if len(str(a)) < 30 else '…' for a in args)} -> {lines[-1]!r}")

    print("all ok" if check.ok else "FAILED")
    sys.exit(0 if check.ok else 1)


if __name__ == "__main__":
    main()
