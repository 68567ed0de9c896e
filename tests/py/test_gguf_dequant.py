# labels: fast
"""GGUF reader and dequantisation vs the `gguf` Python package (the oracle).

1. A synthetic GGUF written with gguf.GGUFWriter: metadata of every value type (`jet tensors --meta`
   must return the same values) and tensors of every type jet dequantises (F32, F16, BF16, F64,
   Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 quantised by gguf.quants and as random blocks; Q2_K..Q6_K, Q8_K as
   random blocks with sane fp16/fp32 scales). `jet tensors --out` must list the same names, types
   and shapes and write values BIT-EXACT equal to gguf.quants.dequantize (numpy for F64 and Q8_K,
   which the package does not dequantise).
2. The real teacher (models/SmolLM2-135M-Instruct.Q4_1.gguf): every metadata value equal to
   gguf.GGUFReader's, every tensor bit-exact equal to the package's dequantisation.
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T, GGUFValueType as V
from safetensors import safe_open

JET = os.environ.get("JET_BIN", "build/jet")
ROOT = os.environ.get("JET_ROOT", os.getcwd())
TEACHER = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")

failures = []


def check(ok, msg):
    if not ok:
        failures.append(msg)
        print("FAIL:", msg)


def jet(*args):
    r = subprocess.run([JET, "tensors", *args], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"FAIL: jet tensors {' '.join(args)}: exit {r.returncode}: {r.stderr.strip()}")
    return r.stdout


def listing(out):
    """name -> (type, shape) from `jet tensors` output."""
    rows = {}
    for line in out.splitlines():
        if line.startswith("#"):
            continue
        name, typ, shape = line.split(None, 2)
        rows[name] = (typ, json.loads(shape))
    return rows


def bits_equal(name, got, want):
    """Bit-exact comparison (NaN payloads included) with a diagnostic on mismatch."""
    want = np.ascontiguousarray(want, dtype=np.float32)
    if got.shape != want.shape:
        check(False, f"{name}: shape {list(got.shape)} != {list(want.shape)}")
        return
    same = got.view(np.uint32) == want.view(np.uint32)
    if not same.all():
        diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
        check(False, f"{name}: {int((~same).sum())} of {same.size} values differ, max |diff| {diff.max():.3g}")


# fp16 scale fields (byte offsets within a block) of each block type; Q8_K has an fp32 scale at 0.
F16_FIELDS = {T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0],
              T.Q2_K: [80, 82], T.Q3_K: [108], T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208]}


def random_blocks(qtype, shape, rng):
    """Random bytes for a tensor of `shape` elements with finite scales of either sign."""
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    *outer, n = shape
    raw = rng.integers(0, 256, size=(int(np.prod(outer, dtype=np.int64)), n // block, size), dtype=np.uint8)
    if qtype == T.Q8_K:
        raw[..., 0:4] = rng.uniform(-0.02, 0.02, raw.shape[:-1] + (1,)).astype(np.float32).view(np.uint8)
    for off in F16_FIELDS.get(qtype, []):
        raw[..., off:off + 2] = rng.uniform(-0.1, 0.1, raw.shape[:-1] + (1,)).astype(np.float16).view(np.uint8)
    return raw.reshape(*outer, n // block * size)


def oracle(raw, qtype):
    if qtype == T.F64:
        return raw.astype(np.float32)
    if qtype == T.Q8_K:
        blocks = raw.reshape(-1, 292)
        d = blocks[:, 0:4].copy().view(np.float32)
        q = blocks[:, 4:260].copy().view(np.int8).astype(np.float32)
        return (d * q).reshape(*raw.shape[:-1], raw.shape[-1] // 292 * 256)
    return gguf.quants.dequantize(raw, qtype)


def synthetic(tmp):
    rng = np.random.default_rng(1234)
    path = os.path.join(tmp, "synthetic.gguf")
    w = gguf.GGUFWriter(path, "llama")
    w.add_custom_alignment(64)
    meta = {  # key -> (value, expected JSON value)
        "t.u8": (255, V.UINT8), "t.i8": (-128, V.INT8), "t.u16": (65535, V.UINT16),
        "t.i16": (-32768, V.INT16), "t.u32": (4294967295, V.UINT32), "t.i32": (-2147483648, V.INT32),
        "t.u64": (18446744073709551615, V.UINT64), "t.i64": (-9223372036854775808, V.INT64),
        "t.f32": (0.1, V.FLOAT32), "t.f64": (-1.0e-300, V.FLOAT64), "t.true": (True, V.BOOL),
        "t.false": (False, V.BOOL), "t.str": ("héllo \u4e16\u754c \"q\"\n", V.STRING),
    }
    for k, (v, vt) in meta.items():
        w.add_key_value(k, v, vt)
    arrays = {
        "t.a.u8": ([0, 7, 255], V.UINT8), "t.a.i16": ([-5, 5], V.INT16), "t.a.u32": ([1, 2, 3], V.UINT32),
        "t.a.i64": ([-(1 << 50), 1 << 50], V.INT64), "t.a.f32": ([0.5, -1.25, 3.0e-5], V.FLOAT32),
        "t.a.f64": ([1.0e100, -2.5], V.FLOAT64), "t.a.bool": ([True, False, True], V.BOOL),
        "t.a.str": (["", "a b", "<|im_end|>", "\u0120the"], V.STRING),
    }
    for k, (v, st) in arrays.items():
        w.add_key_value(k, v, V.ARRAY, sub_type=st)
    w.add_key_value("t.a.nested", [[1, 2, 3], [4], [-5, 6]], V.ARRAY)  # inner arrays: INT32

    tensors = {}  # name -> (raw, type)

    def add(name, raw, qtype):
        tensors[name] = (raw, qtype)
        if raw.dtype == np.uint8:
            w.add_tensor(name, raw, raw_dtype=qtype)
        else:
            w.add_tensor(name, raw)

    x = rng.standard_normal((3, 64)).astype(np.float32)
    x[0, :4] = [0.0, -0.0, 1e-40, -3e-39]  # zeros and fp32 subnormals
    add("plain.f32", x, T.F32)
    h = rng.standard_normal((4, 7)).astype(np.float16)
    h[0, :3] = np.array([6e-8, -3e-6, 65504], np.float16)  # fp16 subnormals and max
    add("plain.f16", h, T.F16)
    add("plain.bf16", gguf.quants.quantize(x, T.BF16), T.BF16)
    add("plain.f64", rng.standard_normal((2, 3)) * 1e3, T.F64)
    for qtype in (T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0):
        n = qtype.name.lower()
        add(f"{n}.quantised", gguf.quants.quantize(rng.standard_normal((5, 96)).astype(np.float32), qtype), qtype)
        add(f"{n}.random", random_blocks(qtype, (2, 3, 64), rng), qtype)
    for qtype in (T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K, T.Q8_K):
        n = qtype.name.lower()
        add(f"{n}.random", random_blocks(qtype, (3, 512), rng), qtype)
        add(f"{n}.rank3", random_blocks(qtype, (2, 2, 256), rng), qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    # Metadata: every value comes back with its value (fp32 values as their fp32 rounding).
    got = json.loads(jet("--model", path, "--meta"))
    check(got.get("general.alignment") == 64, f"general.alignment: {got.get('general.alignment')}")
    check(got.get("general.architecture") == "llama", "general.architecture")
    for k, (v, vt) in meta.items():
        want = float(np.float32(v)) if vt == V.FLOAT32 else v
        check(got.get(k) == want and type(got.get(k)) is type(want), f"metadata {k}: {got.get(k)!r} != {want!r}")
    for k, (v, st) in arrays.items():
        want = [float(np.float32(e)) for e in v] if st == V.FLOAT32 else v
        check(got.get(k) == want, f"metadata {k}: {got.get(k)!r} != {want!r}")
    check(got.get("t.a.nested") == [[1, 2, 3], [4], [-5, 6]], f"metadata t.a.nested: {got.get('t.a.nested')}")

    # Tensors: listing, then values.
    out = os.path.join(tmp, "synthetic.safetensors")
    rows = listing(jet("--model", path, "--out", out))
    check(set(rows) == set(tensors), f"listed tensors {sorted(rows)}")
    with safe_open(out, framework="numpy") as f:
        check(set(f.keys()) == set(tensors), f"written tensors {sorted(f.keys())}")
        for name, (raw, qtype) in tensors.items():
            want = oracle(raw, qtype)
            typ, shape = rows.get(name, (None, None))
            check(typ == qtype.name, f"{name}: listed type {typ}, expected {qtype.name}")
            check(shape == list(want.shape), f"{name}: listed shape {shape}, expected {list(want.shape)}")
            got_t = f.get_tensor(name)
            check(got_t.dtype == np.float32, f"{name}: written dtype {got_t.dtype}")
            bits_equal(name, got_t, want)
    # The written file lists back (safetensors input) with the same names and shapes, all F32.
    back = listing(jet("--model", out))
    check(back == {n: ("F32", rows[n][1]) for n in rows}, "listing of the written safetensors file")
    print(f"synthetic: {len(meta) + len(arrays) + 1} metadata keys, {len(tensors)} tensors of "
          f"{len({q for _, q in tensors.values()})} types compared")


def field_value(field):
    if field.types[0] == V.ARRAY:
        if len(field.types) > 2:
            return None  # nested arrays: not in the teacher
        return field.contents()
    return field.contents()


def teacher(tmp):
    if not os.path.exists(TEACHER):
        print(f"SKIP teacher part: {TEACHER} missing (scripts/setup.sh downloads it)")
        return
    reader = gguf.GGUFReader(TEACHER)
    got = json.loads(jet("--model", TEACHER, "--meta"))
    n_keys = 0
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):
            continue  # the reader's own pseudo-fields (version, counts)
        want = field_value(field)
        if isinstance(want, (np.floating, float)) and field.types[0] == V.FLOAT32:
            want = float(want)
        check(got.get(key) == want, f"teacher metadata {key}: {str(got.get(key))[:80]} != {str(want)[:80]}")
        n_keys += 1
    check(len(got) == n_keys, f"teacher metadata: {len(got)} keys, reader has {n_keys}")

    out = os.path.join(tmp, "teacher.safetensors")
    text = jet("--model", TEACHER, "--out", out)
    timing = [l for l in text.splitlines() if l.startswith("# dequantised")]
    rows = listing(text)
    types = {}
    with safe_open(out, framework="numpy") as f:
        check(len(f.keys()) == len(reader.tensors), f"teacher: {len(f.keys())} tensors written")
        for t in reader.tensors:
            want = gguf.quants.dequantize(t.data, t.tensor_type)
            shape = [int(d) for d in reversed(t.shape)]
            check(rows.get(t.name) == (t.tensor_type.name, shape), f"teacher {t.name}: listed {rows.get(t.name)}")
            bits_equal("teacher " + t.name, f.get_tensor(t.name), want.reshape(shape))
            types[t.tensor_type.name] = types.get(t.tensor_type.name, 0) + 1
    print(f"teacher: {n_keys} metadata keys equal; {len(reader.tensors)} tensors {types} compared; "
          f"{timing[0][2:] if timing else ''}")


def bad_input(tmp):
    """A broken file: one 'jet: error: <file>: ...' line, exit 1, no output file."""
    src = os.path.join(tmp, "synthetic.gguf")
    data = open(src, "rb").read()
    cases = {"cut.gguf": data[: len(data) - 100], "magic.gguf": b"GGUX" + data[4:],
             "v1.gguf": data[:4] + b"\x01\x00\x00\x00" + data[8:]}
    for name, blob in cases.items():
        path, out = os.path.join(tmp, name), os.path.join(tmp, name + ".safetensors")
        with open(path, "wb") as f:
            f.write(blob)
        r = subprocess.run([JET, "tensors", "--model", path, "--out", out], capture_output=True, text=True)
        lines = r.stderr.strip().splitlines()
        check(r.returncode == 1 and len(lines) == 1 and lines[0].startswith(f"jet: error: {path}: "),
              f"{name}: exit {r.returncode}, stderr {r.stderr.strip()!r}")
        check(not os.path.exists(out) and not any(f.startswith(name + ".safetensors") for f in os.listdir(tmp)),
              f"{name}: output file left behind")
    print(f"bad input: {len(cases)} broken files rejected with one error line")


def main():
    with tempfile.TemporaryDirectory() as tmp:
        synthetic(tmp)
        bad_input(tmp)
        teacher(tmp)
    if failures:
        sys.exit(f"FAIL: {len(failures)} mismatches")
    print("PASS: GGUF metadata and dequantisation match the gguf package bit-exact")


if __name__ == "__main__":
    main()
