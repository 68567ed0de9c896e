# labels: gpu
"""JetBlock parity with the official layer on the GPU (issue 3, acceptance 2).

The official JetBlock (NVlabs/Jet-Nemotron jetai/modeling/hf/jet_block.py, on flash-linear-attention
0.6.0's Triton kernels) and jet's JetBlock get the same random bf16 weights (written here to a
safetensors file that `jet block` loads) and the same input. Both prefill T tokens in chunk mode (T > 64,
the official layer's switch to chunk_gated_delta_rule), then decode M tokens one at a time through their
caches (official: fused_recurrent_gated_delta_rule + the Triton conv step; jet: the fused CUDA step).
Compared, as relative L2 errors ||jet − official|| / ||official||: the prefill outputs, the decode outputs,
the final recurrent state and the conv cache. Both sides run in bf16 with an fp32 state; jet's fp32 run
against the same official bf16 outputs is printed next to it, which shows how much of the gap is bf16
rounding. Tolerance: 3e-2 for outputs and state (bf16 has 2^-8 relative resolution and the output passes
six bf16 GEMMs; a wrong conv alignment, gate or norm gives errors of order 1), 1e-2 for the conv cache
(raw v_proj outputs, one bf16 GEMM).

The official code is not part of this repository: its .py files are copied at run time into an ignored
folder ($JET_OFFICIAL, default $JET_ROOT/.devdeps/official; scripts/official_copy.sh makes it), and
flash-linear-attention comes from the .devdeps wheels (scripts/gpu_check.sh installs them); see
official_jetblock.py for the one shim (fla 0.6.0 vs the fork the official code pins)."""
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import load_file, save_file

import official_jetblock
from checks import Checks
from official_jetblock import StateCache

JET = os.environ.get("JET_BIN", "build/jet")
TOL, TOL_CONV = 3e-2, 1e-2


def die(msg):
    print(f"test_jetblock_official_gpu: FAIL: {msg}")
    sys.exit(1)


def randomise(block, seed):
    """Every parameter drawn (the generator's w1/w2 too, which the layer's own init leaves at zero), at
    scales that keep activations of order one."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in block.named_parameters():
            shape = p.shape
            if name == "A_log":
                x = torch.empty(shape).uniform_(1, 16, generator=g).log()
            elif name == "dt_bias":
                x = torch.empty(shape).uniform_(-5, -2, generator=g)
            elif "norm" in name:
                x = 1 + 0.1 * torch.randn(shape, generator=g)
            elif name.endswith("w2.bias"):
                x = 0.3 * torch.randn(shape, generator=g)
            elif name.endswith("w2.weight"):
                x = 0.5 * torch.randn(shape, generator=g) / math.sqrt(shape[1])
            else:
                x = torch.randn(shape, generator=g) / math.sqrt(shape[1])
            p.copy_(x)


def rel(a, b):
    a, b = a.double().cpu(), b.double().cpu()
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


def run_case(JetBlock, JetBlockConfig, tmp, name, cfg, D, B, T, M, check):
    dev = "cuda"
    block = JetBlock(hidden_size=D, initializer_range=0.02, layer_idx=0,
                     jet_block_config=JetBlockConfig(**cfg))
    randomise(block, 11)
    block = block.to(dev, torch.bfloat16).eval()
    weights = {k: v.detach().contiguous().cpu() for k, v in block.state_dict().items()}
    g = torch.Generator().manual_seed(5)
    x = torch.randn(B, T + M, D, generator=g).to(torch.bfloat16)
    wpath, xpath = os.path.join(tmp, f"{name}_w.st"), os.path.join(tmp, f"{name}_x.st")
    save_file(weights, wpath)
    save_file({"x": x}, xpath)

    # Official: chunk prefill of T tokens, then M one-token calls through the cache.
    with torch.no_grad():
        cache = StateCache()
        xd = x.to(dev)
        ys = [block(xd[:, :T], past_key_value=cache, use_cache=True)[0]]
        for t in range(T, T + M):
            ys.append(block(xd[:, t:t + 1], past_key_value=cache, use_cache=True)[0])
        y_off = torch.cat(ys, 1).float().cpu()
        s_off = cache[0]["recurrent_state"].float().cpu()
        conv_off = cache[0]["conv_state"].float().cpu()  # [B, C, W]: the last W raw values

    res = {}
    for dtype in ("bf16", "fp32"):
        out = os.path.join(tmp, f"{name}_{dtype}.st")
        r = subprocess.run([JET, "block", "--config", json.dumps(cfg), "--weights", wpath, "--input", xpath,
                            "--prefill", str(T), "--device", "cuda", "--dtype", dtype, "--out", out],
                           capture_output=True, text=True)
        check(r.returncode == 0, f"{name}: jet block --dtype {dtype} runs {r.stderr.strip()}")
        if r.returncode != 0:
            return
        res[dtype] = load_file(out)

    print(f"     {name}: B={B} D={D} H={cfg['num_heads']} K={cfg['head_dim']} expand_v={cfg['expand_v']:.4g} "
          f"prefill {T} + {M} decode steps; official: y std {y_off.std().item():.3f}, state std {s_off.std().item():.3f}")
    check(torch.isfinite(y_off).all().item() and y_off.std().item() > 1e-2, f"{name}: official output finite, not flat")
    for dtype in ("bf16", "fp32"):
        o = res[dtype]
        y, s, conv = o["y"], o["state"], o["conv0"]
        ok_shapes = y.shape == y_off.shape and s.shape == s_off.shape and conv.shape[:2] == conv_off.shape[:2]
        check(ok_shapes, f"{name} jet {dtype}: shapes y {tuple(y.shape)} state {tuple(s.shape)} conv {tuple(conv.shape)}")
        if not ok_shapes:
            continue
        check(torch.isfinite(y).all().item() and torch.isfinite(s).all().item(), f"{name} jet {dtype}: finite")
        errs = {"prefill y": rel(y[:, :T], y_off[:, :T]), "decode y": rel(y[:, T:], y_off[:, T:]),
                "final state": rel(s, s_off), "conv cache": rel(conv, conv_off[:, :, 1:])}
        for what, e in errs.items():
            tol = TOL_CONV if what == "conv cache" else TOL
            check(e <= tol, f"{name} jet {dtype} vs official bf16: {what} rel err {e:.2e} (tol {tol:g})")


def main():
    if not torch.cuda.is_available():
        die("no CUDA device (this test is labelled gpu)")
    try:
        JetBlock, JetBlockConfig = official_jetblock.load()
    except RuntimeError as e:
        die(str(e))
    check = Checks()

    tmp = tempfile.mkdtemp(prefix="jet_jetblock_official_")
    try:
        common = {"mode": "chunk", "dconv_implementation": "triton", "norm_eps": 1e-5,
                  "conv_size": 4, "dconv_generator_reduction": 8}
        # JetBlock-2B shapes (expand_v as in jetlm_2B.json: head_v_dim 256), and a smaller one with other widths.
        run_case(JetBlock, JetBlockConfig, tmp, "2B", dict(common, num_heads=12, head_dim=96, expand_v=2.6666666667),
                 1536, 2, 137, 5, check)
        run_case(JetBlock, JetBlockConfig, tmp, "small", dict(common, num_heads=4, head_dim=64, expand_v=2.0),
                 256, 3, 200, 3, check)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    check.finish("test_jetblock_official_gpu")


if __name__ == "__main__":
    main()
