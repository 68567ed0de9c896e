#!/usr/bin/env python3
"""HF transformers decode speed for the jet-vs-HF comparison (scripts/gpu_bench_engine.sh).

Random weights from a config.json (seeded, bf16, on the GPU), a batch of random prompts of --context
tokens, then HF's own generate() loop (greedy, its default cache and attention implementation, no
compile), or with --loop the plain loop a user writes by hand: one prefill forward, then one forward per token
with the returned past_key_values, greedy argmax (no logits processors, no stopping criteria). Decode tok/s counts the tokens after the first, like `jet bench`: B * (N - 1) / (t(N) - t(1)),
where t(n) is the wall time of generate(max_new_tokens=n) on the same prompts (each after a sync).
Prints one line of JSON.
"""
import argparse
import json
import time

import torch
import transformers


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--context", type=int, default=4096)
    ap.add_argument("--gen", type=int, default=32)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--loop", action="store_true", help="a plain forward loop instead of generate()")
    args = ap.parse_args()
    with open(args.config) as f:
        cfg = json.load(f)
    config = transformers.AutoConfig.for_model(**cfg)
    torch.manual_seed(0)
    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    with dev:
        model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.eval()
    ids = torch.randint(0, config.vocab_size, (args.batch, args.context), device=dev)
    mask = torch.ones_like(ids)

    def generate(n):
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=n, min_new_tokens=n,
                             do_sample=False, pad_token_id=0)
        assert out.shape[1] == args.context + n, out.shape

    def loop(n):
        out = model(input_ids=ids, use_cache=True)
        tok = out.logits[:, -1].argmax(-1, keepdim=True)
        for _ in range(n - 1):
            out = model(input_ids=tok, past_key_values=out.past_key_values, use_cache=True)
            tok = out.logits[:, -1].argmax(-1, keepdim=True)

    def run(n):
        sync()
        t0 = time.perf_counter()
        with torch.inference_mode():
            (loop if args.loop else generate)(n)
        sync()
        return time.perf_counter() - t0

    run(2)  # warm-up
    t1 = run(1)
    tn = run(args.gen)
    steps = args.gen - 1
    print(json.dumps({
        "impl": f"transformers {transformers.__version__} {'plain forward loop' if args.loop else 'generate'} "
                f"(greedy, default cache, attn {model.config._attn_implementation}), torch {torch.__version__}",
        "device": torch.cuda.get_device_name() if dev.type == "cuda" else "cpu", "batch": args.batch, "context": args.context, "gen": args.gen,
        "prefill_s": t1, "decode_s": tn - t1, "ms_per_step": 1e3 * (tn - t1) / steps,
        "decode_tok_per_s": args.batch * steps / (tn - t1)}))


if __name__ == "__main__":
    main()
