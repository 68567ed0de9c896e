# labels: fast
"""`jet bench` on the CPU for a tiny hybrid config (attn, swa, jet): --synthetic-cache and --max-batch run
and write consistent JSON (the synthetic run decodes from --context, prefill is not timed; --max-batch
runs the batch it reports, at least 1), and bad flags fail with one `jet: error:` line."""
import json
import os
import subprocess
import sys
import tempfile

JET = os.environ.get("JET_BIN", "build/jet")

CONFIG = {
    "model_type": "jet_nemotron", "architectures": ["JetNemotronForCausalLM"], "vocab_size": 64,
    "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 3, "num_attention_heads": 4,
    "num_key_value_heads": 2, "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "tie_word_embeddings": True,
    "bos_token_id": 1, "eos_token_id": 2, "initializer_range": 0.02, "max_position_embeddings": 256,
    "layer_types": ["attn", "swa", "jet"],
    "efficient_attention_config": {
        "swa": {"window_size": 8},
        "jet": {"num_heads": 2, "head_dim": 16, "expand_v": 1.5, "conv_size": 4, "dconv_generator_reduction": 4,
                "norm_eps": "1e-5", "mode": "chunk"}}}


def bench(args, tmp):
    out = os.path.join(tmp, "b.json")
    p = subprocess.run([JET, "bench", *args, "--json", out], capture_output=True, text=True,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    return p, (json.load(open(out)) if p.returncode == 0 else None)


def main():
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        cfg = os.path.join(tmp, "config.json")
        json.dump(CONFIG, open(cfg, "w"))
        base = ["--config", cfg, "--random-init", "--device", "cpu", "--dtype", "fp32"]
        p, j = bench(base + ["--synthetic-cache", "--batch", "3", "--context", "40", "--gen", "4"], tmp)
        good = (p.returncode == 0 and j["synthetic_cache"] and j["batch"] == 3 and j["context"] == 40
                and j["decode_tok_per_s"] > 0 and j["prefill_tok_per_s"] == 0 and "cache: synthetic" in p.stdout
                and "| synthetic |" in p.stdout)
        print(f"{'ok  ' if good else 'FAIL'} --synthetic-cache: rc={p.returncode} {p.stderr.strip()[-200:]}")
        ok &= good
        p, j = bench(base + ["--synthetic-cache", "--max-batch", "--context", "16", "--gen", "2"], tmp)
        good = (p.returncode == 0 and j["max_batch"] and 1 <= j["batch"] <= 4096
                and j["batch"] == min(j["largest_batch"], 4096) and f"--max-batch ran {j['batch']}" in p.stdout)
        print(f"{'ok  ' if good else 'FAIL'} --max-batch: rc={p.returncode} batch={j and j['batch']}")
        ok &= good
        for args, part in [(["--context", "0"], "--context must be >= 1"),
                           (["--synthetic-cache", "--context", "300", "--gen", "0"], "--gen must be >= 1")]:
            p = subprocess.run([JET, "bench", *base, *args], capture_output=True, text=True)
            lines = p.stderr.strip().split("\n")
            good = p.returncode == 1 and len(lines) == 1 and lines[0].startswith("jet: error:") and part in lines[0]
            print(f"{'ok  ' if good else 'FAIL'} {' '.join(args)} -> rc={p.returncode} {p.stderr.strip()!r}")
            ok &= good
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
