# labels: gpu
"""Interop with the official Jet-Nemotron code (NVlabs/Jet-Nemotron jetai/modeling/hf, copied by
scripts/official_copy.sh into $JET_OFFICIAL, default .devdeps/official; never committed). Needs CUDA and
flash-linear-attention (the official JetBlock's kernels), so it runs on the device (scripts/gpu_interop.sh).

1. jet -> official: a random-init tiny Qwen2 teacher (HF transformers, made here), a short `jet postnas
   supernet` and `jet postnas export` of a placement with full, sliding-window and JetBlock layers: the
   hybrid's config has model_type jet_nemotron; the official JetNemotronForCausalLM loads it with no missing or
   unexpected tensor; its logits equal jet's (fp32, relative error <= TOL, same argmax at every position)
   and its greedy continuation equals `jet generate --temperature 0` token for token.
2. official -> jet: a JetNemotronForCausalLM the official code initialises (random, its own config with
   jet/attn/swa layers) and saves with save_pretrained loads in jet with the same logits and greedy tokens."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

# The official code needs transformers <= 4.53: scripts/gpu_interop.sh installs that stack in its own folder.
SITE = os.environ.get("JET_OFFICIAL_SITE", "/tmp/jetdev/site-official")
if os.path.isdir(SITE):
    sys.path.insert(0, SITE)
import torch  # noqa: E402
from transformers import Qwen2Config, Qwen2ForCausalLM  # noqa: E402

import official_jetblock  # noqa: E402
from checks import Checks  # noqa: E402
from data_tiny import tiny_corpus  # noqa: E402
from hf_tiny import save_random  # noqa: E402

JET = os.environ.get("JET_BIN", "build/jet")
TOL = 2e-3  # fp32 both sides; fla's Triton kernels use tf32 dots
GEN = 16
JET_CFG = {"num_heads": 2, "head_dim": 64, "expand_v": 2.0, "conv_size": 4, "dconv_generator_reduction": 8,
           "norm_eps": 1e-5}
check = Checks()


def jet(*args):
    p = subprocess.run([JET, *map(str, args)], capture_output=True, text=True, errors="replace")
    if p.returncode != 0:
        check(False, f"jet {' '.join(map(str, args))[:160]} -> {p.returncode}: {p.stderr.strip()[-400:]}")
        check.finish("test_official_interop_gpu")
    return p.stdout


def jet_logits(model_dir, ids, tmp):
    out = os.path.join(tmp, "logits.safetensors")
    jet("logits", "--model", model_dir, "--ids", json.dumps(ids), "--out", out, "--device", "cuda", "--dtype", "fp32")
    from safetensors.torch import load_file
    return load_file(out)["logits"].double()


def jet_greedy(model_dir, prompt):
    out = jet("generate", "--model", model_dir, "--prompt", prompt, "--temperature", 0, "--max-new-tokens", GEN,
              "--print-token-ids", "--device", "cuda", "--dtype", "fp32")
    return json.loads(out.rstrip("\n").split("\n")[-2])


def compare(name, model, model_dir, tok, tmp):
    """Logits on random ids and greedy tokens from a text prompt: official (model) vs jet (model_dir)."""
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(0, model.config.vocab_size, (45,), generator=g).tolist()
    # With the attention mask a tokenizer returns (generate() passes one too). Without it the official forward
    # builds its causal mask one key too wide (target length T + 1, as for a static cache): its sliding-window
    # layers then slice that mask one column off (each query sees the keys before it, not itself; the first row is
    # unmasked whole) and its JetBlocks read the last row as a padding mask that drops the last token. Seen on the
    # device (2026-12-07): without the mask, jet vs official logits differed by 0.37 (SWA-only model) and 0.012
    # (JetBlock-only), the same on jet's CPU and CUDA paths; on the CPU (no fla needed) the SWA model then matches
    # exactly with the mask, and the official JetBlock's padding mask is all ones with it, [1, ..., 1, 0] without.
    with torch.no_grad():
        x = torch.tensor([ids], device="cuda")
        ref = model(x, attention_mask=torch.ones_like(x)).logits[0].double().cpu()
    mine = jet_logits(model_dir, ids, tmp)
    rel = ((mine - ref).norm() / ref.norm()).item()
    same_argmax = (mine.argmax(-1) == ref.argmax(-1)).float().mean().item()
    check(mine.shape == ref.shape and rel <= TOL and same_argmax == 1.0,
          f"{name}: logits T={len(ids)} rel err {rel:.2e} (tol {TOL:g}), argmax agreement {same_argmax:.3f}")
    prompt = "the quick brown fox jumps over"
    pids = tok.encode(prompt).ids
    with torch.no_grad():
        out = model.generate(torch.tensor([pids], device="cuda"), max_new_tokens=GEN, do_sample=False,
                             min_new_tokens=GEN, eos_token_id=None, pad_token_id=0)
    ref_ids = out[0, len(pids):].tolist()
    mine_ids = jet_greedy(model_dir, prompt)
    eos = model.config.eos_token_id  # jet stops there; the official call was told not to: compare up to it
    ref_ids, mine_ids = [x[:x.index(eos)] if eos in x else x for x in (ref_ids, mine_ids)]
    check(mine_ids == ref_ids, f"{name}: greedy {GEN} tokens {'identical' if mine_ids == ref_ids else 'differ'}"
                               f"{'' if mine_ids == ref_ids else f': jet {mine_ids} official {ref_ids}'}")


def main():
    if not torch.cuda.is_available():
        print("FAIL no CUDA device (this test is labelled gpu)")
        return 1
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        official_jetblock.load()  # patches the fla fork's extra argument; imports the package
        from jet_nemotron_hf.configuration_jet_nemotron import JetNemotronConfig
        from jet_nemotron_hf.modeling_jet_nemotron import JetNemotronForCausalLM
    except Exception as e:  # noqa: BLE001 - a missing dependency is one clear line
        print(f"FAIL the official modeling code does not import: {type(e).__name__}: {e}")
        return 1
    tmp = tempfile.mkdtemp(prefix="jet_interop_")
    try:
        train, held, tokdir, tok = tiny_corpus(tmp, 60, 12)
        V = tok.get_vocab_size()
        # 1. jet -> official.
        teacher = os.path.join(tmp, "teacher")
        save_random(Qwen2ForCausalLM, Qwen2Config(vocab_size=V, hidden_size=128, intermediate_size=256,
                                                  num_hidden_layers=6, num_attention_heads=2, num_key_value_heads=1,
                                                  max_position_embeddings=512, rope_theta=1e6,
                                                  tie_word_embeddings=False, bos_token_id=0, eos_token_id=0),
                    teacher, seed=4)
        for f in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(os.path.join(tokdir, f), teacher)
        data = os.path.join(tmp, "data")
        jet("data", "prepare", "--input", train, "--holdout-input", held, "--tokenizer", teacher, "--out", data)
        sn = os.path.join(tmp, "sn")
        jet("postnas", "supernet", "--teacher", teacher, "--data", data, "--out", sn, "--steps", 6, "--batch", 2,
            "--seq-len", 48, "--swa-window", 8, "--linear-config", json.dumps(JET_CFG), "--checkpoint-every", 0)
        hyb, place = os.path.join(tmp, "hybrid"), os.path.join(tmp, "placement.json")
        json.dump({"full": [2], "swa": [4]}, open(place, "w"))
        jet("postnas", "export", "--teacher", teacher, "--supernet", sn, "--placement",
            place, "--out", hyb)
        cfg = json.load(open(os.path.join(hyb, "config.json")))
        check(cfg.get("model_type") == "jet_nemotron" and cfg.get("architectures") == ["JetNemotronForCausalLM"]
              and cfg["layer_types"] == ["jet", "jet", "attn", "jet", "swa", "jet"],
              f"export: model_type {cfg.get('model_type')}, architectures {cfg.get('architectures')}, "
              f"layer_types {cfg.get('layer_types')}")
        model, info = JetNemotronForCausalLM.from_pretrained(hyb, config=JetNemotronConfig.from_pretrained(hyb),
                                                             torch_dtype=torch.float32, attn_implementation="sdpa",
                                                             output_loading_info=True)
        left = {k: v for k, v in info.items() if v}
        check(not left, f"official JetNemotronForCausalLM loads jet's hybrid with nothing left over {left or ''}")
        compare("jet -> official", model.cuda().eval(), hyb, tok, tmp)
        del model

        # 2. official -> jet.
        ocfg = JetNemotronConfig(vocab_size=V, hidden_size=128, intermediate_size=256, num_hidden_layers=5,
                                 num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512,
                                 tie_word_embeddings=False, bos_token_id=0, eos_token_id=0,
                                 layer_types=["jet", "attn", "jet", "swa", "jet"],
                                 efficient_attention_config={"jet": dict(JET_CFG, norm_eps="1e-5", mode="chunk",
                                                                         dconv_implementation="triton"),
                                                             "swa": {"window_size": 8}})
        ocfg._attn_implementation = "sdpa"
        torch.manual_seed(6)
        model = JetNemotronForCausalLM(ocfg).eval()
        with torch.no_grad():  # away from the official init's tiny values, so that logits are peaked
            for name, p in model.named_parameters():
                if p.dim() >= 2:
                    p.normal_(0.0, 0.2)
        off = os.path.join(tmp, "official")
        model.save_pretrained(off, safe_serialization=True)
        for f in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(os.path.join(tokdir, f), off)
        compare("official -> jet", model.cuda().eval(), off, tok, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    check.finish("test_official_interop_gpu")


if __name__ == "__main__":
    sys.exit(main())
