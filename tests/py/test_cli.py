# labels: fast
"""Bad flags and bad files through the real jet binary: exit code 1, exactly one stderr line starting
with "jet: error:", nothing on stdout, and no partial output directory (DIR or DIR.tmp.*) left."""
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile

JET = os.environ.get("JET_BIN", "build/jet")
ROOT = os.environ.get("JET_ROOT", ".")
TEACHER = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")


def expect_error(args, must_contain, tmp, out_dir=None):
    p = subprocess.run([JET, *args], capture_output=True, text=True)
    lines = p.stderr.strip("\n").split("\n")
    ok = (p.returncode == 1 and len(lines) == 1 and lines[0].startswith("jet: error:")
          and must_contain in lines[0] and p.stdout == "")
    leftovers = []
    if out_dir:
        leftovers = [x for x in [out_dir] + glob.glob(out_dir + ".tmp.*") if os.path.exists(x)]
        ok &= not leftovers
    print(f"{'ok  ' if ok else 'FAIL'} jet {' '.join(a if len(a) < 40 else '...' for a in args)} -> "
          f"rc={p.returncode} {p.stderr.strip()!r}" + (f" leftovers={leftovers}" if leftovers else ""))
    return ok


def main():
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        # An HF directory with a good config and tensors, then variants of it.
        good = os.path.join(tmp, "good")
        os.makedirs(good)
        cfg = {"model_type": "llama", "vocab_size": 16, "hidden_size": 8, "intermediate_size": 12,
               "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1}
        json.dump(cfg, open(os.path.join(good, "config.json"), "w"))
        import torch
        from safetensors.torch import save_file
        w = {"model.embed_tokens.weight": torch.zeros(16, 8), "model.norm.weight": torch.ones(8),
             "lm_head.weight": torch.zeros(16, 8),
             "model.layers.0.input_layernorm.weight": torch.ones(8),
             "model.layers.0.post_attention_layernorm.weight": torch.ones(8),
             "model.layers.0.self_attn.q_proj.weight": torch.zeros(8, 8),
             "model.layers.0.self_attn.k_proj.weight": torch.zeros(4, 8),
             "model.layers.0.self_attn.v_proj.weight": torch.zeros(4, 8),
             "model.layers.0.self_attn.o_proj.weight": torch.zeros(8, 8),
             "model.layers.0.mlp.gate_proj.weight": torch.zeros(12, 8),
             "model.layers.0.mlp.up_proj.weight": torch.zeros(12, 8),
             "model.layers.0.mlp.down_proj.weight": torch.zeros(8, 12)}
        save_file(w, os.path.join(good, "model.safetensors"))
        ids = os.path.join(tmp, "ids.json")
        json.dump([1, 2, 3], open(ids, "w"))
        out = os.path.join(tmp, "logits.safetensors")
        p = subprocess.run([JET, "logits", "--model", good, "--ids", ids, "--out", out], capture_output=True, text=True)
        ok &= p.returncode == 0
        print(f"{'ok  ' if p.returncode == 0 else 'FAIL'} the good directory loads: {p.stderr.strip()}")
        # --ids as inline JSON longer than a file name may be (it was a filesystem error once).
        long_ids = json.dumps([i % 16 for i in range(200)])
        p = subprocess.run([JET, "logits", "--model", good, "--ids", long_ids, "--out", out], capture_output=True, text=True)
        ok &= p.returncode == 0
        print(f"{'ok  ' if p.returncode == 0 else 'FAIL'} --ids inline JSON of {len(long_ids)} characters: {p.stderr.strip()}")

        def variant(name, edit_cfg=None, edit_w=None, raw_cfg=None, truncate=None):
            d = os.path.join(tmp, name)
            shutil.copytree(good, d)
            if raw_cfg is not None:
                open(os.path.join(d, "config.json"), "w").write(raw_cfg)
            if edit_cfg:
                c = dict(cfg); edit_cfg(c); json.dump(c, open(os.path.join(d, "config.json"), "w"))
            if edit_w:
                ww = dict(w); edit_w(ww); save_file(ww, os.path.join(d, "model.safetensors"))
            if truncate:
                f = os.path.join(d, "model.safetensors")
                os.truncate(f, os.path.getsize(f) - truncate)
            return d

        no_config = variant("no_config"); os.remove(os.path.join(no_config, "config.json"))
        malformed = variant("malformed", raw_cfg='{"model_type": "llama",')
        unsupported = variant("unsupported", edit_cfg=lambda c: c.update(model_type="bert"))
        shape = variant("shape", edit_w=lambda ww: ww.update({"model.layers.0.mlp.up_proj.weight": torch.zeros(12, 7)}))
        missing = variant("missing", edit_w=lambda ww: ww.pop("model.layers.0.self_attn.v_proj.weight"))
        truncated = variant("truncated", truncate=64)
        bad_gguf = os.path.join(tmp, "bad.gguf")
        open(bad_gguf, "wb").write(b"GGUF\x03\x00\x00\x00" + b"\x00" * 5)
        nonempty = os.path.join(tmp, "nonempty")
        os.makedirs(nonempty)
        open(os.path.join(nonempty, "keep"), "w").write("x")

        L = ["logits", "--ids", ids, "--out", out, "--model"]
        cases = [
            (["generate", "--model", good, "--prompt-ids", "[1]", "--device", "tpu"], "unknown device 'tpu'"),
            (["generate", "--model", good, "--prompt-ids", "[1]", "--dtype", "int3"], "unknown dtype 'int3'"),
            (["generate", "--model", good, "--prompt-ids", "[1]", "--top-p", "1.5"], "--top-p"),
            (["generate", "--model", good, "--prompt-ids", "[1]", "--max-new-tokens", "many"], "--max-new-tokens"),
            (["generate", "--model", good, "--prompt-ids", "[1]", "--bogus-flag"], "--bogus-flag"),
            (["generate", "--prompt-ids", "[1]"], "--model is required"),
            (["generate", "--model", good, "--prompt", "hello"], "no tokenizer"),
            (["info", "--model", os.path.join(tmp, "does_not_exist")], "no such file or directory"),
            (["info", "--model", no_config], "missing config.json"),
            (["info", "--model", malformed], "malformed JSON"),
            (["info", "--model", unsupported], "unsupported architecture 'bert'"),
            (L + [shape], "weight 'model.layers.0.mlp.up_proj.weight' has shape [12, 7], expected [12, 8]"),
            (L + [missing], "missing weight 'model.layers.0.self_attn.v_proj.weight'"),
            (L + [truncated], "truncated safetensors file"),
            (["logits", "--model", good, "--ids", "[1, 99]", "--out", out], "token id out of range"),
            (["info", "--model", bad_gguf], "bad.gguf"),
        ]
        for args, text in cases:
            ok &= expect_error(args, text, tmp)
        conv = os.path.join(tmp, "converted")
        ok &= expect_error(["convert", "--model", bad_gguf, "--out", conv], "bad.gguf", tmp, out_dir=conv)
        ok &= expect_error(["convert", "--model", truncated, "--out", conv], "truncated", tmp, out_dir=conv)
        ok &= expect_error(["convert", "--model", good, "--out", nonempty], "not empty (use --force", tmp)
        ok &= os.listdir(nonempty) == ["keep"]
        if os.path.exists(TEACHER):
            ok &= expect_error(["convert", "--model", TEACHER, "--out", nonempty], "not empty", tmp)
    print("test_cli:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
