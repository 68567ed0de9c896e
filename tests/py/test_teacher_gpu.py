# labels: gpu
"""The real teacher on the GPU (device only): jet on CUDA vs HF transformers on CUDA.

fp32: logits on 5 prompts within 1e-3 abs of HF fp32 (TF32 is off on both sides), and a 32-token greedy
continuation identical token for token.
bf16: there is no bit-exact bf16 answer (summation order differs between implementations), so jet's bf16
error is measured against the fp32 reference and compared with HF's own bf16 error on the same
prompts: max |jet_bf16 - ref_fp32| <= 2 x max |hf_bf16 - ref_fp32| + 0.05, and the top-1 token agrees
with the fp32 reference at >= 95% of positions (HF bf16's agreement printed beside it)."""
import json
import os
import sys
import tempfile

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

# The CPU teacher test's prompts, paths and binary runner (tests/py is on PYTHONPATH).
from test_teacher import GGUF, PROMPTS, jet


def main():
    torch.backends.cuda.matmul.allow_tf32 = False
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        hf_dir = os.path.join(tmp, "hf")
        jet("convert", "--model", GGUF, "--out", hf_dir)
        tok = AutoTokenizer.from_pretrained(hf_dir)
        m32 = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).cuda().eval()
        m16 = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.bfloat16).cuda().eval()
        e32 = e16_jet = e16_hf = 0.0
        agree_jet = agree_hf = total = 0
        for i, prompt in enumerate(PROMPTS):
            ids = tok(prompt).input_ids
            with torch.no_grad():
                ref = m32(torch.tensor([ids]).cuda()).logits[0].float().cpu()
                hf16 = m16(torch.tensor([ids]).cuda()).logits[0].float().cpu()
            outs = {}
            for dt in ("fp32", "bf16"):
                out = os.path.join(tmp, f"l{i}_{dt}.safetensors")
                jet("logits", "--model", hf_dir, "--ids", json.dumps(ids), "--out", out, "--device", "cuda",
                    "--dtype", dt)
                outs[dt] = load_file(out)["logits"].float()
            e32 = max(e32, (outs["fp32"] - ref).abs().max().item())
            e16_jet = max(e16_jet, (outs["bf16"] - ref).abs().max().item())
            e16_hf = max(e16_hf, (hf16 - ref).abs().max().item())
            top = ref.argmax(-1)
            agree_jet += (outs["bf16"].argmax(-1) == top).sum().item()
            agree_hf += (hf16.argmax(-1) == top).sum().item()
            total += len(ids)
        good32 = e32 <= 1e-3
        good16 = e16_jet <= 2 * e16_hf + 0.05 and agree_jet >= 0.95 * total
        ok &= good32 and good16
        print(f"{'ok  ' if good32 else 'FAIL'} cuda fp32 logits: max abs err vs HF fp32 {e32:.2e} (tol 1e-3)")
        print(f"{'ok  ' if good16 else 'FAIL'} cuda bf16 logits: max abs err vs HF fp32: jet {e16_jet:.3f}, "
              f"HF bf16 {e16_hf:.3f} (tol 2x HF + 0.05); top-1 agreement jet {agree_jet}/{total}, "
              f"HF bf16 {agree_hf}/{total}")

        text = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                       tokenize=False, add_generation_prompt=True)
        ids = tok(text).input_ids
        with torch.no_grad():
            ref = m32.generate(torch.tensor([ids]).cuda(), max_new_tokens=32, do_sample=False)[0, len(ids):].tolist()
        out = jet("generate", "--model", hf_dir, "--prompt-ids", json.dumps(ids), "--temperature", 0,
                  "--max-new-tokens", 32, "--print-token-ids", "--device", "cuda", "--dtype", "fp32")
        lines = out.rstrip("\n").split("\n")
        mine = json.loads(lines[-2])
        same = mine == ref
        ok &= same
        print(f"{'ok  ' if same else 'FAIL'} cuda fp32 greedy 32 tokens (chat prompt): "
              f"{'identical' if same else f'differ: jet {mine} hf {ref}'}; {lines[-1]}")
    print(f"test_teacher_gpu: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
