"""Shared helpers of the model parity tests: tiny random HF models, running the jet binary, and
comparing its logits (full forward and prefill + one-token decode) with HF transformers in fp32."""
import json
import os
import subprocess
import sys

import torch
from safetensors.torch import load_file
from transformers.utils import logging as hf_logging

hf_logging.disable_progress_bar()

JET = os.environ.get("JET_BIN", "build/jet")


def run_jet(*args, check=True):
    p = subprocess.run([JET, *map(str, args)], capture_output=True, text=True)
    if check and p.returncode != 0:
        sys.exit(f"FAIL: jet {' '.join(map(str, args))} -> {p.returncode}\n{p.stderr}")
    return p


def jet_logits(model_dir, ids, out, decode_from=None):
    args = ["logits", "--model", model_dir, "--ids", json.dumps(ids), "--out", out]
    if decode_from is not None:
        args += ["--decode-from", decode_from]
    run_jet(*args)
    return load_file(out)["logits"]


def hf_logits(model, ids):
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].float()


def save_random(model_cls, config, path, seed):
    """Random weights (std 0.2 so the logits are far from uniform) saved as safetensors."""
    torch.manual_seed(seed)
    model = model_cls(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.normal_(0.0, 0.2 if "norm" not in name else 0.1).add_(1.0 if "norm" in name else 0.0)
    model.save_pretrained(path, safe_serialization=True)
    return model


def check_case(name, model, model_dir, tmp, vocab, tol=1e-4, seq_len=23, seed=0):
    """jet vs HF logits for one model: full forward, and prefill 9 + one-token decode steps."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (seq_len,), generator=g).tolist()
    ref = hf_logits(model, ids)
    full = jet_logits(model_dir, ids, os.path.join(tmp, f"{name}.safetensors"))
    dec = jet_logits(model_dir, ids, os.path.join(tmp, f"{name}_dec.safetensors"), decode_from=9)
    err_full = (full - ref).abs().max().item()
    err_dec = (dec - ref).abs().max().item()
    err_self = (dec - full).abs().max().item()
    ok = full.shape == ref.shape and err_full <= tol and err_dec <= tol
    print(f"{'ok  ' if ok else 'FAIL'} {name}: T={seq_len} V={vocab} |logits|max={ref.abs().max():.2f} "
          f"max abs err full={err_full:.2e} prefill+decode={err_dec:.2e} (decode vs full {err_self:.2e})")
    return ok


def tiny_llama_teacher(tmp, train_dir, hidden_size=64, intermediate_size=128, max_position_embeddings=512):
    """TMP/teacher: a random 4-layer Llama (4 heads, 2 KV heads) with a byte-level BPE tokenizer trained on
    train_dir (data_tiny.make_tokenizer, in TMP/tok); the PostNAS tests' teacher. Returns its path."""
    from transformers import LlamaConfig, LlamaForCausalLM
    from data_tiny import make_tokenizer
    tok = make_tokenizer(os.path.join(tmp, "tok"), train_dir)
    teacher = os.path.join(tmp, "teacher")
    cfg = LlamaConfig(vocab_size=tok.get_vocab_size(), hidden_size=hidden_size, intermediate_size=intermediate_size,
                      num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=max_position_embeddings, tie_word_embeddings=False, bos_token_id=0,
                      eos_token_id=0)
    save_random(LlamaForCausalLM, cfg, teacher, seed=3)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        os.replace(os.path.join(tmp, "tok", f), os.path.join(teacher, f))
    return teacher
