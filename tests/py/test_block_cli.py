# labels: fast
"""`jet block` (the dev command the layer parity tests drive): for every mixer type, on random weights in
the official layout (test_hybrid_official's checkpoint, one layer of each type), prefill N then M decode steps gives
the same outputs, state and conv tails as one forward over N+M (fp32, CPU, rel. err ≤ 1e-4); bad input
(a missing or extra weight, --prefill past the input, no x) is one `jet: error:` line and exit code 1."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import load_file, save_file

from test_hybrid_official import D, EAC, TYPES, official_tensors
from checks import Checks

JET = os.environ.get("JET_BIN", "build/jet")


def jet(*args):
    return subprocess.run([JET, "block", *map(str, args)], capture_output=True, text=True)


def weights(t, seed):
    """One mixer of type t from test_hybrid_official's random official-layout checkpoint (bf16 values)."""
    i = TYPES.index(t)
    prefix = f"model.layers.{i}.self_attn."
    return {k[len(prefix):]: v.float() for k, v in official_tensors(seed).items() if k.startswith(prefix)}


def rel(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30)).item()


def main():
    check = Checks()

    tmp = tempfile.mkdtemp(prefix="jet_block_cli_")
    try:
        xpath = os.path.join(tmp, "x.st")
        save_file({"x": torch.randn(2, 70, D, generator=torch.Generator().manual_seed(3))}, xpath)
        for t in ("jet", "gdn", "deltanet", "gla", "retnet", "mamba2"):
            wpath = os.path.join(tmp, f"{t}.st")
            save_file(weights(t, 1), wpath)
            cfg = json.dumps(EAC[t])
            outs = {}
            for pre in (70, 66):
                out = os.path.join(tmp, f"{t}_{pre}.st")
                r = jet("--type", t, "--config", cfg, "--weights", wpath, "--input", xpath, "--prefill", pre, "--out", out)
                check(r.returncode == 0, f"{t}: jet block --prefill {pre} {r.stderr.strip()}")
                if r.returncode == 0:
                    outs[pre] = load_file(out)
            if len(outs) == 2:
                a, b = outs[70], outs[66]
                errs = {k: rel(b[k], a[k]) for k in a}
                check(a.keys() == b.keys() and "y" in a and "state" in a and a["y"].std().item() > 1e-2 and
                      max(errs.values()) <= 1e-4,
                      f"{t}: prefill 66 + 4 steps == forward over 70 ({', '.join(f'{k} {e:.1e}' for k, e in errs.items())})")
        w = weights("jet", 1)
        cfg = json.dumps(EAC["jet"])
        name = "dynamic_conv1d.kernel_generator.w2.bias"
        bad = {k: v for k, v in w.items() if k != name}
        save_file(bad, os.path.join(tmp, "missing.st"))
        save_file(dict(w, extra=torch.zeros(3)), os.path.join(tmp, "extra.st"))
        save_file({"y": torch.zeros(1, 2, D)}, os.path.join(tmp, "nox.st"))
        save_file(w, os.path.join(tmp, "jet.st"))
        cases = [(["--weights", os.path.join(tmp, "missing.st"), "--input", xpath], f"missing weight '{name}'"),
                 (["--weights", os.path.join(tmp, "extra.st"), "--input", xpath], "unexpected weight 'extra'"),
                 (["--weights", os.path.join(tmp, "jet.st"), "--input", os.path.join(tmp, "nox.st")], "needs a tensor 'x'"),
                 (["--weights", os.path.join(tmp, "jet.st"), "--input", xpath, "--prefill", 71], "--prefill 71")]
        for args, msg in cases:
            out = os.path.join(tmp, "bad_out.st")
            r = jet("--config", cfg, *args, "--out", out)
            lines = r.stderr.strip().splitlines()
            check(r.returncode == 1 and len(lines) == 1 and lines[0].startswith("jet: error:") and msg in lines[0]
                  and not os.path.exists(out), f"bad input -> {r.stderr.strip()}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    check.finish("test_block_cli")


if __name__ == "__main__":
    main()
