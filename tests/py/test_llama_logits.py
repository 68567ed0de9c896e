# labels: fast
"""Tiny random Llama models (GQA, odd sizes, tied/untied embeddings, llama3 and linear rope scaling,
attention bias) built with HF transformers: jet's fp32 logits equal HF's within 1e-4, for the full
forward and for prefill + one-token decode through the KV cache."""
import sys
import tempfile

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from hf_tiny import check_case, save_random

CASES = {
    "gqa_untied": dict(vocab_size=211, hidden_size=48, intermediate_size=80, num_hidden_layers=3,
                       num_attention_heads=6, num_key_value_heads=2, tie_word_embeddings=False),
    "tied_mha_headdim": dict(vocab_size=157, hidden_size=40, intermediate_size=72, num_hidden_layers=2,
                             num_attention_heads=4, num_key_value_heads=4, head_dim=14,
                             tie_word_embeddings=True, rms_norm_eps=1e-5),
    "llama3_rope": dict(vocab_size=199, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=1, tie_word_embeddings=True,
                        rope_theta=500000.0, max_position_embeddings=256,
                        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                      "high_freq_factor": 4.0, "original_max_position_embeddings": 8}),
    "linear_rope_bias": dict(vocab_size=131, hidden_size=36, intermediate_size=60, num_hidden_layers=2,
                             num_attention_heads=3, num_key_value_heads=3, attention_bias=True,
                             mlp_bias=True, rope_scaling={"rope_type": "linear", "factor": 2.5}),
}


def main():
    torch.set_num_threads(2)
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, kw) in enumerate(CASES.items()):
            cfg = LlamaConfig(**kw)
            model = save_random(LlamaForCausalLM, cfg, f"{tmp}/{name}", seed=i)
            ok &= check_case(name, model, f"{tmp}/{name}", tmp, kw["vocab_size"], seq_len=23 + i, seed=i)
    print("test_llama_logits:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
