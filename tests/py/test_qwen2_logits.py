# labels: fast
"""Tiny random Qwen2 models (q/k/v bias, GQA, odd sizes, tied and untied embeddings, sliding-window
layers) built with HF transformers: jet's fp32 logits equal HF's within 1e-4, for the full forward and for prefill +
one-token decode through the KV cache."""
import sys
import tempfile

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from hf_tiny import check_case, save_random

CASES = {
    "gqa_tied": dict(vocab_size=223, hidden_size=56, intermediate_size=88, num_hidden_layers=3,
                     num_attention_heads=7, num_key_value_heads=1, tie_word_embeddings=True,
                     rope_theta=1000000.0),
    "gqa_untied": dict(vocab_size=173, hidden_size=48, intermediate_size=100, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False,
                       rms_norm_eps=1e-5),
    # Sliding-window layers (jet's "swa" mixer; each token sees itself and the 4 before it).
    "sliding_window": dict(vocab_size=181, hidden_size=48, intermediate_size=80, num_hidden_layers=3,
                           num_attention_heads=6, num_key_value_heads=2, use_sliding_window=True,
                           sliding_window=5, layer_types=["sliding_attention", "full_attention",
                                                          "sliding_attention"]),
}


def main():
    torch.set_num_threads(2)
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, kw) in enumerate(CASES.items()):
            model = save_random(Qwen2ForCausalLM, Qwen2Config(**kw), f"{tmp}/{name}", seed=10 + i)
            assert model.model.layers[0].self_attn.q_proj.bias is not None
            ok &= check_case(name, model, f"{tmp}/{name}", tmp, kw["vocab_size"], seq_len=21 + i, seed=i)
    print("test_qwen2_logits:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
