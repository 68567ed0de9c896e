# labels: fast
"""GGUF import beyond the teacher: tiny random Llama (untied head, GQA; Q/K rows permuted the way
llama.cpp's converter stores them) and Qwen2 (q/k/v biases, tied) models written as F32/F16 GGUF files
with the gguf package. jet's logits from the GGUF equal HF's from the original model (<= 1e-4), and
`jet convert` gives a directory that HF transformers loads with the same logits and config."""
import json
import os
import sys
import tempfile

import gguf
import numpy as np
import torch
from transformers import AutoConfig, AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

from hf_tiny import hf_logits, jet_logits, run_jet

TOL = 1e-4
BLOCK = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
         "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
         "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
         "mlp.down_proj": "ffn_down"}
TOP = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
       "lm_head.weight": "output.weight"}


def llamacpp_permute(w, heads):
    """The row order llama.cpp's converter writes for llama Q/K (and what jet must undo)."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def gguf_name(hf):
    if hf in TOP:
        return TOP[hf]
    parts = hf.split(".")  # model.layers.N.<module...>.weight|bias
    return f"blk.{parts[2]}.{BLOCK['.'.join(parts[3:-1])]}.{parts[-1]}"


def write_gguf(model, arch, path, f16):
    c = model.config
    w = gguf.GGUFWriter(path, arch)
    w.add_block_count(c.num_hidden_layers)
    w.add_context_length(c.max_position_embeddings)
    w.add_embedding_length(c.hidden_size)
    w.add_feed_forward_length(c.intermediate_size)
    w.add_head_count(c.num_attention_heads)
    w.add_head_count_kv(c.num_key_value_heads)
    w.add_rope_freq_base(c.rope_parameters["rope_theta"])
    w.add_layer_norm_rms_eps(c.rms_norm_eps)
    w.add_vocab_size(c.vocab_size)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    for name, t in model.state_dict().items():
        if name == "lm_head.weight" and c.tie_word_embeddings:
            continue
        a = t.float().numpy()
        if arch == "llama" and ".q_proj." in name:
            a = llamacpp_permute(a, c.num_attention_heads)
        if arch == "llama" and ".k_proj." in name:
            a = llamacpp_permute(a, c.num_key_value_heads)
        if f16 and a.ndim == 2:
            a = a.astype(np.float16)
        w.add_tensor(gguf_name(name), np.ascontiguousarray(a))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    torch.set_num_threads(2)
    cases = [
        ("llama", LlamaForCausalLM(LlamaConfig(vocab_size=151, hidden_size=48, intermediate_size=72,
                                                num_hidden_layers=2, num_attention_heads=6, num_key_value_heads=2,
                                                tie_word_embeddings=False, rope_theta=50000.0, rms_norm_eps=1e-5)), False),
        ("qwen2", Qwen2ForCausalLM(Qwen2Config(vocab_size=139, hidden_size=40, intermediate_size=64,
                                               num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                               tie_word_embeddings=True, rope_theta=1e6)), True),
    ]
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for arch, model, f16 in cases:
            torch.manual_seed(3)
            with torch.no_grad():
                for name, p in model.named_parameters():
                    p.copy_(torch.randn_like(p) * 0.2 + (1.0 if "norm" in name else 0.0))
                    if f16 and p.dim() == 2:  # the GGUF holds these in F16: compare against the same values
                        p.copy_(p.half().float())
            model.eval()
            path = os.path.join(tmp, f"{arch}.gguf")
            write_gguf(model, arch, path, f16)
            ids = torch.randint(0, model.config.vocab_size, (19,), generator=torch.Generator().manual_seed(1)).tolist()
            ref = hf_logits(model, ids)
            err = (jet_logits(path, ids, os.path.join(tmp, "a.safetensors")) - ref).abs().max().item()
            out = os.path.join(tmp, f"{arch}_hf")
            run_jet("convert", "--model", path, "--out", out)
            conv = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
            err_conv = (hf_logits(conv, ids) - ref).abs().max().item()
            cfg = AutoConfig.from_pretrained(out)
            same_cfg = (cfg.model_type == arch and cfg.tie_word_embeddings == model.config.tie_word_embeddings
                        and cfg.num_key_value_heads == model.config.num_key_value_heads
                        and cfg.rope_parameters["rope_theta"] == model.config.rope_parameters["rope_theta"])
            good = err <= TOL and err_conv <= TOL and same_cfg
            ok &= good
            print(f"{'ok  ' if good else 'FAIL'} {arch} GGUF ({'F16' if f16 else 'F32'}, "
                  f"{'tied' if model.config.tie_word_embeddings else 'untied'}): jet logits err {err:.2e}; "
                  f"HF on `jet convert` output err {err_conv:.2e}; config {'matches' if same_cfg else 'differs'}")
    print("test_convert:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
