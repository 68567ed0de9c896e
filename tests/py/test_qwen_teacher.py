# labels: slow
"""The real Qwen2.5-Coder-0.5B-Instruct teacher (Q4_K_M GGUF: Q4_K/Q5_0/Q6_K/Q8_0/F32 tensors, qwen2 arch,
separate output.weight, rope θ 1e6; `scripts/teacher.sh qwen2.5-coder-0.5b`). Slow label: the model is 491 MB
and setup does not fetch it by default (exit 77 = skipped when models/qwen2.5-coder-0.5b.gguf is absent);
tiny random Qwen2 models cover the same code paths in the fast suite (test_qwen2_logits.py).

Tokenizer: jet on the GGUF vs HF `tokenizers` on the tokenizer.json jet exports, on >= 2,000 strings (code,
digit runs, many scripts, ChatML specials) plus random-id decoding; the exported pre-tokenizer is the Qwen2
one (NFC normalizer, Split on the Qwen2 pattern, one digit per token); no BOS; ChatML ids 151643-151645; and, as an
independent oracle, transformers' own GGUF tokenizer conversion must give the same ids on every string.
Model: test_teacher's checks (convert + HF load, fp32 logits on 5 prompts, 32-token greedy plain and --chat,
transformers' GGUF loader); the --chat answer to a coding question is printed."""
import json
import os
import subprocess
import sys
import tempfile

import torch
from tokenizers import Tokenizer

import test_teacher
from test_tokenizer_parity import CODE, QWEN2_PATTERN, check_decode_random, check_tokenizer, corpus, jet_lines

ROOT = os.environ.get("JET_ROOT", ".")
GGUF = os.path.join(ROOT, "models", "qwen2.5-coder-0.5b.gguf")
PROMPTS = test_teacher.PROMPTS[:2] + [  # and three with more code and digit runs
    "import numpy as np\n\n# Compute the mean of each column of a 2-D array\ndef column_means(a):\n",
    "Water boils at 100 degrees Celsius. At high altitude, it boils at a lower temperature because",
    "// 12345 + 67890 = 80235\nfn main() { let v: Vec<u64> = (1..=10).collect(); println!(\"{:?}\", v); } 東京 🙂",
]
CHAT = "Write a Python function that checks whether a string is a palindrome."


def code_and_digits(n=400, seed=99):
    """Extra code snippets and digit runs (the qwen2 pre-tokenizer splits every digit)."""
    import random
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        k = rng.randrange(4)
        if k == 0:
            out.append("".join(rng.choice("0123456789") for _ in range(rng.randint(1, 40))))
        elif k == 1:
            out.append(f"x{rng.randint(0, 10**9)} = {rng.random():.{rng.randint(1, 12)}f} * {rng.randint(0, 99999)}")
        elif k == 2:
            out.append("\n".join(rng.choice(CODE) for _ in range(rng.randint(1, 4))))
        else:
            ind = " " * rng.choice([0, 2, 4, 8])
            out.append(f"{ind}for i in range({rng.randint(0, 1000)}):\n{ind}    total += arr[i] ** {rng.randint(2, 9)}\n")
    return out


def check_tokenizer_facts(tj):
    j = json.load(open(tj))
    steps = j["pre_tokenizer"].get("pretokenizers", [])
    split = [s for s in steps if s.get("type") == "Split"]
    good = len(split) == 1 and split[0]["pattern"].get("Regex") == QWEN2_PATTERN and j["normalizer"] == {"type": "NFC"}
    print(f"{'ok  ' if good else 'FAIL'} exported normalizer {j['normalizer']}, pre_tokenizer Split(qwen2 pattern) + "
          f"ByteLevel: {json.dumps(steps)[:120]}")
    ids = jet_lines(["tokenize", "--model", GGUF], [{"text": "12345"}, {"text": "<|endoftext|><|im_start|><|im_end|>"},
                                                    {"text": "hello"}])
    facts = [("digits one per token", len(ids[0]["ids"]) == 5),
             ("ChatML ids 151643-151645", ids[1]["ids"] == [151643, 151644, 151645]),
             ("no BOS: 'hello' is one token", len(ids[2]["ids"]) == 1)]
    cfg = json.load(open(os.path.join(os.path.dirname(tj), "tokenizer_config.json")))
    facts.append(("add_bos_token false", cfg.get("add_bos_token") is False))
    for what, f in facts:
        print(f"{'ok  ' if f else 'FAIL'} {what}")
        good &= f
    return good


def check_transformers_gguf_tokenizer(texts):
    """transformers builds its own Qwen2 tokenizer from the GGUF metadata: it must agree with jet everywhere."""
    from transformers import AutoTokenizer
    oracle = AutoTokenizer.from_pretrained(os.path.dirname(GGUF), gguf_file=os.path.basename(GGUF))
    enc = jet_lines(["tokenize", "--model", GGUF], [{"text": t} for t in texts])
    same = sum(oracle.encode(t, add_special_tokens=False) == e["ids"] for t, e in zip(texts, enc))
    good = same == len(texts)
    print(f"{'ok  ' if good else 'FAIL'} transformers' GGUF tokenizer: identical ids on {same}/{len(texts)} strings")
    return good


def main():
    if not os.path.exists(GGUF):
        print(f"skip: {GGUF} absent (scripts/teacher.sh qwen2.5-coder-0.5b)")
        return 77
    torch.set_num_threads(2)
    ok = True
    texts = corpus(2000) + code_and_digits()
    with tempfile.TemporaryDirectory() as tmp:
        tj = os.path.join(tmp, "tokenizer.json")
        p = subprocess.run([test_teacher.JET, "tokenize", "--model", GGUF, "--export-json", tj], capture_output=True,
                           text=True)
        if p.returncode != 0:
            sys.exit(f"FAIL: export: {p.stderr}")
        hf = Tokenizer.from_file(tj)
        ok &= check_tokenizer_facts(tj)
        ok &= check_tokenizer("Qwen2.5-Coder (GGUF) vs HF tokenizers on jet's tokenizer.json", GGUF, hf, texts)
        ok &= check_decode_random("Qwen2.5-Coder (GGUF) vs HF tokenizers", GGUF, hf)
        ok &= check_transformers_gguf_tokenizer(texts)
    good, answer = test_teacher.check_teacher(GGUF, PROMPTS, CHAT, name="qwen2.5-coder-0.5b")
    ok &= good
    print(f"--chat {CHAT!r} ->\n{answer}")
    print("test_qwen_teacher:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
