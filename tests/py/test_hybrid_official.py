# labels: fast
"""A Jet-Nemotron checkpoint in the official layout, written here from the official module structure
(JetNemotronForCausalLM: model.layers.{i}.self_attn.<name> for every mixer; JetBlock of
jetai/modeling/hf/jet_block.py; the PostNAS candidates as their fla layers), with a config.json in the
official schema (layer_types + efficient_attention_config, norm_eps as the string "1e-5"). jet must
load it with no name or shape left over (parameter count equal to the one computed here), run it
(prefill + one-token decode == one forward; greedy generation deterministic, fp32 and bf16), and reject
the directory with one error line when a tensor is missing or an extra one is present."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import load_file, save_file
from checks import Checks

JET = os.environ.get("JET_BIN", "build/jet")
D, V, I, HEADS, KV, HD = 48, 101, 64, 4, 2, 12
TYPES = ["jet", "attn", "gdn", "swa", "deltanet", "gla", "retnet", "mamba2", "jet"]
EAC = {
    "jet": {"conv_size": 4, "dconv_generator_reduction": 8, "dconv_implementation": "triton",
            "expand_v": 2.0, "head_dim": 16, "mode": "chunk", "norm_eps": "1e-5", "num_heads": 3},
    "swa": {"window_size": 6},
    "gdn": {"num_heads": 2, "head_dim": 16, "expand_v": 2.0, "conv_size": 4},
    "deltanet": {"num_heads": 2, "expand_k": 1.0, "expand_v": 1.0, "conv_size": 4},
    "gla": {"num_heads": 2, "expand_k": 0.5, "expand_v": 1.0, "gate_low_rank_dim": 8},
    "retnet": {"num_heads": 2, "expand_k": 1.0, "expand_v": 2.0},
    "mamba2": {"head_dim": 16, "state_size": 16, "expand": 2, "n_groups": 1, "conv_kernel": 4},
}


def mixer_shapes(t):
    """Official parameter names (relative to self_attn) and shapes of one mixer."""
    c = EAC.get(t, {})
    if t in ("attn", "swa"):
        return {"q_proj.weight": [HEADS * HD, D], "q_proj.bias": [HEADS * HD], "k_proj.weight": [KV * HD, D],
                "k_proj.bias": [KV * HD], "v_proj.weight": [KV * HD, D], "v_proj.bias": [KV * HD],
                "o_proj.weight": [D, HEADS * HD]}
    if t == "jet":
        h, kd = c["num_heads"], c["num_heads"] * c["head_dim"]
        vd, w = int(kd * c["expand_v"]), c["conv_size"]
        gh = vd // c["dconv_generator_reduction"]
        return {"q_proj.weight": [kd, D], "k_proj.weight": [kd, D], "v_proj.weight": [vd, D],
                "b_proj.weight": [h, D], "a_proj.weight": [h, D], "A_log": [h], "dt_bias": [h],
                "dynamic_conv1d.kernel_generator.w1.weight": [gh, D],
                "dynamic_conv1d.kernel_generator.w2.weight": [vd * w, gh],
                "dynamic_conv1d.kernel_generator.w2.bias": [vd * w],
                "g_proj.weight": [vd, D], "o_norm.weight": [vd // h], "o_proj.weight": [D, vd]}
    if t == "gdn":
        h, kd = c["num_heads"], c["num_heads"] * c["head_dim"]
        vd, w = int(kd * c["expand_v"]), c["conv_size"]
        return {"q_proj.weight": [kd, D], "k_proj.weight": [kd, D], "v_proj.weight": [vd, D],
                "a_proj.weight": [h, D], "b_proj.weight": [h, D], "A_log": [h], "dt_bias": [h],
                "q_conv1d.weight": [kd, 1, w], "k_conv1d.weight": [kd, 1, w], "v_conv1d.weight": [vd, 1, w],
                "g_proj.weight": [vd, D], "o_norm.weight": [vd // h], "o_proj.weight": [D, vd]}
    if t == "deltanet":
        h, kd, vd, w = c["num_heads"], int(D * c["expand_k"]), int(D * c["expand_v"]), c["conv_size"]
        return {"q_proj.weight": [kd, D], "k_proj.weight": [kd, D], "v_proj.weight": [vd, D],
                "b_proj.weight": [h, D], "q_conv1d.weight": [kd, 1, w], "k_conv1d.weight": [kd, 1, w],
                "v_conv1d.weight": [vd, 1, w], "o_norm.weight": [vd // h], "o_proj.weight": [D, vd]}
    if t == "gla":
        h, kd, vd, r = c["num_heads"], int(D * c["expand_k"]), int(D * c["expand_v"]), c["gate_low_rank_dim"]
        return {"q_proj.weight": [kd, D], "k_proj.weight": [kd, D], "v_proj.weight": [vd, D],
                "g_proj.weight": [vd, D], "gk_proj.0.weight": [r, D], "gk_proj.1.weight": [kd, r],
                "gk_proj.1.bias": [kd], "g_norm_swish_gate.weight": [vd // h], "o_proj.weight": [D, vd]}
    if t == "retnet":
        h, kd, vd = c["num_heads"], int(D * c["expand_k"]), int(D * c["expand_v"])
        return {"q_proj.weight": [kd, D], "k_proj.weight": [kd, D], "v_proj.weight": [vd, D],
                "g_proj.weight": [vd, D], "g_norm_swish_gate.weight": [vd // h], "o_proj.weight": [D, vd]}
    if t == "mamba2":
        inner = c["expand"] * D
        h = inner // c["head_dim"]
        conv = inner + 2 * c["n_groups"] * c["state_size"]
        return {"in_proj.weight": [inner + conv + h, D], "conv1d.weight": [conv, 1, c["conv_kernel"]],
                "conv1d.bias": [conv], "dt_bias": [h], "A_log": [h], "D": [h], "norm.weight": [inner],
                "out_proj.weight": [D, inner]}
    raise ValueError(t)


def official_tensors(seed):
    g = torch.Generator().manual_seed(seed)
    shapes = {"model.embed_tokens.weight": [V, D], "model.norm.weight": [D]}
    for i, t in enumerate(TYPES):
        p = f"model.layers.{i}."
        shapes.update({p + "input_layernorm.weight": [D], p + "post_attention_layernorm.weight": [D],
                       p + "mlp.gate_proj.weight": [I, D], p + "mlp.up_proj.weight": [I, D],
                       p + "mlp.down_proj.weight": [D, I]})
        shapes.update({p + "self_attn." + n: s for n, s in mixer_shapes(t).items()})
    out = {}
    for name, shape in shapes.items():
        if name.endswith("A_log"):
            x = torch.empty(shape).uniform_(1, 16, generator=g).log()
        elif name.endswith("dt_bias"):
            x = torch.empty(shape).uniform_(-4, -2, generator=g)
        elif "norm" in name or name.endswith(".D"):
            x = 1 + 0.1 * torch.randn(shape, generator=g)
        else:
            x = 0.15 * torch.randn(shape, generator=g)
        out[name] = x.to(torch.bfloat16)  # the released checkpoints are bf16 throughout
    return out


def write_dir(path, tensors):
    os.makedirs(path, exist_ok=True)
    config = {"architectures": ["JetNemotronForCausalLM"], "model_type": "jet_nemotron",
              "auto_map": {"AutoConfig": "configuration_jet_nemotron.JetNemotronConfig",
                           "AutoModelForCausalLM": "modeling_jet_nemotron.JetNemotronForCausalLM"},
              "attention_dropout": 0.0, "hidden_act": "silu", "hidden_size": D, "intermediate_size": I,
              "initializer_range": 0.02, "max_position_embeddings": 512, "max_window_layers": len(TYPES),
              "num_attention_heads": HEADS, "num_hidden_layers": len(TYPES), "num_key_value_heads": KV,
              "rms_norm_eps": 1e-6, "rope_scaling": None, "rope_theta": 1000000.0, "tie_word_embeddings": True,
              "torch_dtype": "bfloat16", "use_cache": True, "use_mrope": False, "vocab_size": V,
              "bos_token_id": 1, "eos_token_id": 2, "layer_types": TYPES, "efficient_attention_config": EAC}
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    save_file(tensors, os.path.join(path, "model.safetensors"), metadata={"format": "pt"})


def jet(*args):
    return subprocess.run([JET, *map(str, args)], capture_output=True, text=True)


def main():
    check = Checks()

    tmp = tempfile.mkdtemp(prefix="jet_hybrid_official_")
    try:
        tensors = official_tensors(7)
        model = os.path.join(tmp, "model")
        write_dir(model, tensors)
        n = sum(t.numel() for t in tensors.values())
        info = jet("info", "--model", model)
        check(info.returncode == 0 and f"parameters:     {n} " in info.stdout,
              f"jet info: {n} parameters ({info.stdout.splitlines()[2:4] if info.returncode == 0 else info.stderr.strip()})")

        ids = [(i * 37 + 5) % V for i in range(23)]
        full, dec = os.path.join(tmp, "full.st"), os.path.join(tmp, "dec.st")
        r1 = jet("logits", "--model", model, "--ids", json.dumps(ids), "--out", full)
        r2 = jet("logits", "--model", model, "--ids", json.dumps(ids), "--out", dec, "--decode-from", 9)
        check(r1.returncode == 0 and r2.returncode == 0, f"jet logits runs {r1.stderr.strip()} {r2.stderr.strip()}")
        if r1.returncode == 0 and r2.returncode == 0:
            a, b = load_file(full)["logits"].float(), load_file(dec)["logits"].float()
            err, scale = (a - b).abs().max().item(), a.abs().max().item()
            check(torch.isfinite(a).all().item() and a.std().item() > 0.1,
                  f"logits finite and not flat (std {a.std().item():.3f})")
            check(err < 1e-4 * scale, f"prefill 9 + 14 decode steps == forward (max err {err:.2e}, scale {scale:.2f})")

        outs = []
        for dtype in ("fp32", "fp32", "bf16"):
            g = jet("generate", "--model", model, "--prompt-ids", json.dumps(ids[:7]), "--temperature", 0,
                    "--max-new-tokens", 12, "--dtype", dtype, "--print-token-ids")
            outs.append(g.stdout.splitlines()[1] if g.returncode == 0 else None)
            check(g.returncode == 0, f"jet generate --dtype {dtype} {g.stderr.strip()}")
        check(outs[0] is not None and outs[0] == outs[1], f"greedy fp32 generation deterministic: {outs[0]}")
        print(f"     bf16 greedy: {outs[2]}")

        # jet's writer (jet convert of an HF directory) keeps the official layout bit for bit.
        again = os.path.join(tmp, "again")
        c = jet("convert", "--model", model, "--out", again)
        check(c.returncode == 0, f"jet convert {c.stderr.strip()}")
        if c.returncode == 0:
            back = load_file(os.path.join(again, "model.safetensors"))
            same = back.keys() == tensors.keys() and all(
                back[k].dtype == t.dtype and torch.equal(back[k], t) for k, t in tensors.items())
            with open(os.path.join(again, "config.json")) as f:
                cfg = json.load(f)
            check(same, f"saved tensors bit-identical ({len(back)} tensors)")
            def norm(eac):  # norm_eps may come back as a number
                return {t: {k: (float(v) if k == "norm_eps" else v) for k, v in c.items()} for t, c in eac.items()}
            check(cfg.get("layer_types") == TYPES and cfg.get("model_type") == "jet_nemotron" and
                  norm(cfg.get("efficient_attention_config", {})) == norm(EAC),
                  "saved config keeps layer_types and efficient_attention_config")

        name = "model.layers.0.self_attn.dynamic_conv1d.kernel_generator.w2.bias"
        broken = dict(tensors)
        del broken[name]
        write_dir(os.path.join(tmp, "missing"), broken)
        e = jet("generate", "--model", os.path.join(tmp, "missing"), "--prompt-ids", "[1]")
        lines = e.stderr.strip().splitlines()
        check(e.returncode == 1 and len(lines) == 1 and f"missing weight '{name}'" in lines[0],
              f"missing tensor: {e.stderr.strip()}")
        extra = dict(tensors)
        extra["model.layers.2.self_attn.q_conv1d.bias"] = torch.zeros(32, dtype=torch.bfloat16)
        write_dir(os.path.join(tmp, "extra"), extra)
        e = jet("generate", "--model", os.path.join(tmp, "extra"), "--prompt-ids", "[1]")
        check(e.returncode == 1 and "unexpected weight 'model.layers.2.self_attn.q_conv1d.bias'" in e.stderr,
              f"extra tensor: {e.stderr.strip()}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    check.finish("test_hybrid_official")


if __name__ == "__main__":
    main()
