# labels: fast
"""Model files as a hostile user writes them (issue 15), through the real binary:
- safetensors layout rules equal the reference implementation's (the `safetensors` package): on crafted
  files (a header length one byte short with space padding, gaps, overlaps, trailing bytes, leading and
  trailing white space, empty tensors, ...) `jet tensors` accepts exactly what `safetensors.numpy.load` does;
- absurd sizes in GGUF metadata (embedding_length 0x7FFFFFF8) or config.json (10^8 layers) are refused
  with a one-line error naming the key, with the process's peak memory staying small (no allocation first);
- NaN / zero / negative rope_theta and rms_norm_eps are refused on both paths.
Each jet process runs under an address-space limit, so a regression fails instead of exhausting the machine."""
import json
import os
import resource
import struct
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import gguf
from safetensors.numpy import load as reference_load

from data_tiny import JET, Checks

AS_LIMIT = 6 << 30  # bytes of address space a jet process may map here


def run_jet(*args):
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (AS_LIMIT, AS_LIMIT))
    p = subprocess.run([JET, *map(str, args)], capture_output=True, text=True, timeout=120, preexec_fn=limit)
    return p.returncode, p.stderr.strip()


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def st_file(header, data, hlen=None, pad=b"", lead=b""):
    h = lead + json.dumps(header).encode() + pad
    return struct.pack("<Q", len(h) if hlen is None else hlen) + h + data


def safetensors_cases():
    a = {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}}
    d = np.arange(3, dtype=np.float32).tobytes()
    n = len(json.dumps(a))
    one = lambda off, shape=(2,): {"a": {"dtype": "F32", "shape": list(shape), "data_offsets": off}}
    return {
        "valid": st_file(a, d),
        "space padding": st_file(a, d, pad=b"    "),
        "header length one byte short (space padded)": st_file(a, d, pad=b" ", hlen=n),
        "header length one byte long": st_file(a, d, hlen=n + 1),
        "leading white space": st_file(a, d, lead=b"  "),
        "trailing tab and newline": st_file(a, d, pad=b"\t\n"),
        "trailing NUL in the header": st_file(a, d, pad=b"\0"),
        "trailing bytes after the data": st_file(a, d + b"\0"),
        "gap between tensors": st_file({"a": a["a"], "b": {"dtype": "F32", "shape": [1], "data_offsets": [12, 16]}},
                                       d + b"\0" * 4),
        "overlapping tensors": st_file({"a": a["a"], "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, d[:8]),
        "first tensor not at 0": st_file(one([4, 12]), d),
        "empty tensor": st_file(one([0, 0], (0,)), b""),
        "two empty tensors and one": st_file({"e": {"dtype": "F16", "shape": [0, 3], "data_offsets": [0, 0]},
                                              "f": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]},
                                              "g": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, d[:8]),
        "metadata only": st_file({"__metadata__": {"format": "pt"}}, b""),
        "empty header object": st_file({}, b""),
        "non-string metadata": st_file({"__metadata__": {"x": 1}, **one([0, 8])}, d[:8]),
        "size mismatch": st_file(one([0, 8], (3,)), d[:8]),
        "zero-length header": struct.pack("<Q", 0),
        "header past the end": struct.pack("<Q", 1000) + b"{}",
        "unknown dtype": st_file({"a": {"dtype": "Q4", "shape": [2], "data_offsets": [0, 8]}}, d[:8]),
    }


def gguf_model(path, hidden=32, heads=4, eps=1e-5, theta=1e4, layers=2):
    w = gguf.GGUFWriter(path, "llama")
    w.add_uint32("llama.embedding_length", hidden)
    w.add_uint32("llama.feed_forward_length", 48)
    w.add_uint32("llama.block_count", layers)
    w.add_uint32("llama.attention.head_count", heads)
    w.add_float32("llama.attention.layer_norm_rms_epsilon", eps)
    w.add_float32("llama.rope.freq_base", theta)
    w.add_uint32("llama.vocab_size", 97)
    w.add_tensor("token_embd.weight", np.zeros((97, 32), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def hf_model(d, **over):
    os.makedirs(d, exist_ok=True)
    cfg = {"model_type": "llama", "vocab_size": 97, "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2,
           "num_attention_heads": 4, "num_key_value_heads": 2, "rms_norm_eps": 1e-5, "rope_theta": 10000.0}
    cfg.update(over)
    json.dump(cfg, open(os.path.join(d, "config.json"), "w"))
    open(os.path.join(d, "model.safetensors"), "wb").write(
        st_file({"model.embed_tokens.weight": {"dtype": "F32", "shape": [97, 32], "data_offsets": [0, 97 * 32 * 4]}},
                b"\0" * (97 * 32 * 4)))


def main():
    check = Checks()
    with tempfile.TemporaryDirectory() as tmp:
        # 1. safetensors: jet accepts exactly what the reference accepts.
        def one(item):
            i, (name, data) = item
            path = os.path.join(tmp, f"x{i}.safetensors")
            open(path, "wb").write(data)
            try:
                reference_load(data)
                ref = True
            except Exception:  # noqa: BLE001 (the reference raises its own error types)
                ref = False
            rc, err = run_jet("tensors", "--model", path)
            ok = (rc == 0) == ref and (rc == 0 or (rc == 1 and len(err.split("\n")) == 1))
            return ok, (f"{'ok ' if ok else 'BAD'} {name}: reference {'accepts' if ref else 'rejects'}, jet rc {rc}"
                        + ("" if rc == 0 else f" {err[-90:]!r}"))
        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(one, enumerate(safetensors_cases().items())))
        agree, rows = all(ok for ok, _ in results), [row for _, row in results]
        print("\n".join("     " + r for r in rows))
        check(agree, f"safetensors: jet accepts exactly what the reference accepts ({len(rows)} crafted files)")

        # 2. Absurd sizes: refused by name, before any large allocation.
        g = os.path.join(tmp, "huge.gguf")
        gguf_model(g, hidden=0x7FFFFFF8)  # / 4 heads: an even head_dim, so no other check stops it first
        rc, err = run_jet("generate", "--model", g, "--prompt", "x", "--max-new-tokens", 1)
        check(rc == 1 and "hidden_size = 2147483640 is out of range" in err and peak_rss_mb() < 1500,
              f"GGUF embedding_length 0x7FFFFFF8: rc {rc}, {err[-90:]!r}, peak RSS {peak_rss_mb():.0f} MB")
        h = os.path.join(tmp, "layers")
        hf_model(h, num_hidden_layers=10 ** 8)
        rc, err = run_jet("generate", "--model", h, "--prompt", "x", "--max-new-tokens", 1)
        check(rc == 1 and "num_hidden_layers = 100000000 is out of range" in err and peak_rss_mb() < 1500,
              f"config.json with 10^8 layers: rc {rc}, {err[-90:]!r}, peak RSS {peak_rss_mb():.0f} MB")
        g2 = os.path.join(tmp, "odd.gguf")
        gguf_model(g2, hidden=130)
        rc, err = run_jet("generate", "--model", g2, "--prompt", "x", "--max-new-tokens", 1)
        check(rc == 1 and "hidden_size 130 is not a multiple of num_attention_heads 4" in err,
              f"GGUF hidden 130 / 4 heads (no key_length): {err[-90:]!r}")

        # 3. NaN / zero / negative rope_theta and rms_norm_eps, on both paths (every value: tests/model/test_config.cpp).
        cases = []
        for key, gkey, v in (("rms_norm_eps", "eps", float("nan")), ("rope_theta", "theta", 0.0),
                             ("rms_norm_eps", "eps", -1e-5), ("rope_theta", "theta", float("nan"))):
            gp, hp = os.path.join(tmp, f"{gkey}{v}.gguf"), os.path.join(tmp, f"hf_{key}{v}")
            gguf_model(gp, **{gkey: v})
            hf_model(hp, **{key: str(v)})  # a string: JSON has no NaN (jet reads numbers written as strings)
            cases += [(key, v, gp), (key, v, hp)]

        def refused(case):
            key, v, path = case
            rc, err = run_jet("generate", "--model", path, "--prompt", "x", "--max-new-tokens", 1)
            return None if rc == 1 and f"{key} = " in err else f"{os.path.basename(path)} {key}={v}: rc {rc} {err[-60:]!r}"
        with ThreadPoolExecutor(2) as pool:
            bad = [b for b in pool.map(refused, cases) if b]
        check(not bad, f"NaN / 0 / negative rms_norm_eps and rope_theta refused (GGUF and config.json): "
                       f"{bad or f'all {len(cases)}'}")
    print("PASS" if check.ok else "FAIL")
    sys.exit(0 if check.ok else 1)


if __name__ == "__main__":
    main()
