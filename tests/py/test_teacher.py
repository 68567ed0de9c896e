# labels: fast
"""The real teacher (SmolLM2-135M-Instruct, Q4_1 GGUF): `jet convert` gives an HF directory that
transformers loads; jet's fp32 logits on 5 prompts match HF's (<= 1e-4 abs); a 32-token greedy
continuation from `jet generate --prompt` (plain and --chat) equals HF generate token for token; and, as
an independent check of the GGUF renaming and Q/K un-permutation, transformers' own GGUF loader gives
the same weights and logits. HF tokenizes with the tokenizer.json that `jet convert` wrote."""
import json
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("TQDM_DISABLE", "1")
import torch  # noqa: E402
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.utils import logging as hf_logging

hf_logging.disable_progress_bar()
hf_logging.set_verbosity_error()
JET = os.environ.get("JET_BIN", "build/jet")
ROOT = os.environ.get("JET_ROOT", ".")
GGUF = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
    "Once upon a time, in a small village by the sea, there lived",
    "Water boils at 100 degrees Celsius. At high altitude, it boils at a lower temperature because",
    "Voici une phrase en français, avec des accents: été, très, où. Ñandú, 東京, 🙂",
]
TOL = 1e-4


def jet(*args):
    p = subprocess.run([JET, *map(str, args)], capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"FAIL: jet {args[0]} -> {p.returncode}: {p.stderr.strip()}")
    return p.stdout


def jet_generate(gguf, prompt, chat):
    out = jet("generate", "--model", gguf, "--prompt", prompt, "--temperature", 0, "--max-new-tokens", 32,
              "--print-token-ids", *(["--chat"] if chat else []))
    lines = out.rstrip("\n").split("\n")
    return json.loads(lines[-2]), lines[-1]


def check_teacher(gguf, prompts=PROMPTS, chat_prompt="What is the capital of France?", tol=TOL, name="test_teacher"):
    """convert + HF load, logits on `prompts`, greedy 32 tokens (plain: prompts[2]; --chat: chat_prompt) and
    transformers' GGUF loader for one teacher GGUF. Returns (ok, the --chat answer's text)."""
    ok = True
    answer = ""
    with tempfile.TemporaryDirectory() as tmp:
        hf_dir = os.path.join(tmp, "hf")
        jet("convert", "--model", gguf, "--out", hf_dir)
        files = sorted(os.listdir(hf_dir))
        want = ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]
        ok &= files == want
        print(f"{'ok  ' if files == want else 'FAIL'} convert wrote {files}")
        tok = AutoTokenizer.from_pretrained(hf_dir)
        model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()

        worst = 0.0
        for i, prompt in enumerate(prompts):
            ids = tok(prompt).input_ids
            out = os.path.join(tmp, f"l{i}.safetensors")
            jet("logits", "--model", gguf, "--ids", json.dumps(ids), "--out", out)
            mine = load_file(out)["logits"]
            with torch.no_grad():
                ref = model(torch.tensor([ids])).logits[0]
            err = (mine - ref).abs().max().item()
            worst = max(worst, err)
            ok &= err <= tol
            print(f"{'ok  ' if err <= tol else 'FAIL'} logits prompt {i}: T={len(ids)} max abs err {err:.2e} "
                  f"(|logits| max {ref.abs().max():.1f})")

        for chat in (False, True):
            prompt = prompts[2] if not chat else chat_prompt
            text = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                           add_generation_prompt=True) if chat else prompt
            ids = tok(text).input_ids
            with torch.no_grad():
                ref = model.generate(torch.tensor([ids]), max_new_tokens=32, do_sample=False)[0, len(ids):].tolist()
            mine, speed = jet_generate(gguf, prompt, chat)
            if chat:
                answer = tok.decode(mine, skip_special_tokens=True)
            same = mine == ref and (chat or len(mine) == 32)  # the story runs the full 32 tokens
            ok &= same
            print(f"{'ok  ' if same else 'FAIL'} greedy 32 tokens{' (--chat)' if chat else ''}: "
                  f"{len(mine)} ids {'identical' if same else f'differ: jet {mine} hf {ref}'}; {speed}")

        # Independent check: transformers' GGUF loader (its own dequantisation and un-permutation).
        try:
            g = AutoModelForCausalLM.from_pretrained(os.path.dirname(gguf), gguf_file=os.path.basename(gguf),
                                                     dtype=torch.float32).eval()
        except Exception as e:  # noqa: BLE001 - report, do not hide
            print(f"FAIL transformers could not load the GGUF: {e}")
            return False, answer
        sd, gd = model.state_dict(), g.state_dict()
        wdiff = max((sd[k] - gd[k]).abs().max().item() for k in sd)
        ids = tok(prompts[2]).input_ids
        with torch.no_grad():
            gref = g(torch.tensor([ids])).logits[0]
        out = os.path.join(tmp, "g.safetensors")
        jet("logits", "--model", gguf, "--ids", json.dumps(ids), "--out", out)
        gerr = (load_file(out)["logits"] - gref).abs().max().item()
        good = set(sd) == set(gd) and wdiff == 0.0 and gerr <= tol
        ok &= good
        print(f"{'ok  ' if good else 'FAIL'} transformers GGUF loader: {len(gd)} tensors, max weight diff vs "
              f"jet convert {wdiff:.1e}, logits max abs err vs jet {gerr:.2e}")
    print(f"{name}: {'PASS' if ok else 'FAIL'} (worst logits error {worst:.2e})")
    return ok, answer


def main():
    torch.set_num_threads(2)
    return 0 if check_teacher(GGUF)[0] else 1


if __name__ == "__main__":
    sys.exit(main())
