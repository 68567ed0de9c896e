# Writes the fuzzers' seed corpora: a few tiny valid GGUF files (with the `gguf` package), safetensors
# files (by hand, per the format), HF config.json files and tokenizer directories (tokenizer.json, a NUL
# byte, tokenizer_config.json: the input layout of fuzz_tokenizer). Run with .venv's python from the repo
# root; the output is committed (tests/fuzz/corpus_<target>/).
import json
import os
import struct
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T, GGUFValueType as V

HERE = os.path.dirname(os.path.abspath(__file__))


def write_gguf(path, build, alignment=None):
    w = gguf.GGUFWriter(path, "llama")
    if alignment:
        w.add_custom_alignment(alignment)
    build(w)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def meta(w):
    w.add_uint8("a.u8", 7)
    w.add_int8("a.i8", -7)
    w.add_uint16("a.u16", 700)
    w.add_int16("a.i16", -700)
    w.add_uint32("a.u32", 70000)
    w.add_int32("a.i32", -70000)
    w.add_float32("a.f32", 0.5)
    w.add_bool("a.bool", True)
    w.add_uint64("a.u64", 1 << 40)
    w.add_int64("a.i64", -(1 << 40))
    w.add_float64("a.f64", 0.25)
    w.add_string("a.str", "hi")
    w.add_array("a.strs", ["x", "yz"])
    w.add_key_value("a.u8s", [1, 2, 3], V.ARRAY, sub_type=V.UINT8)
    w.add_array("a.nested", [[1, 2], [3]])


def blocks(qtype, n_blocks, rng):
    """Random blocks of a quantised type with a small fp16 scale in the first two bytes."""
    _, size = gguf.GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, size=(n_blocks, size), dtype=np.uint8)
    raw[:, 0:2] = np.full((n_blocks, 1), 0.01, np.float16).view(np.uint8)
    return raw


def tensors(w):
    rng = np.random.default_rng(0)
    w.add_tensor("f32", np.arange(6, dtype=np.float32).reshape(2, 3))
    w.add_tensor("f16", np.arange(4, dtype=np.float16))
    w.add_tensor("q8_0", gguf.quants.quantize(rng.standard_normal((1, 32)).astype(np.float32), T.Q8_0),
                 raw_dtype=T.Q8_0)
    w.add_tensor("q4_k", blocks(T.Q4_K, 1, rng), raw_dtype=T.Q4_K)


def main():
    gdir = os.path.join(HERE, "corpus_gguf")
    sdir = os.path.join(HERE, "corpus_safetensors")
    os.makedirs(gdir, exist_ok=True)
    os.makedirs(sdir, exist_ok=True)
    write_gguf(os.path.join(gdir, "meta_only.gguf"), meta)
    write_gguf(os.path.join(gdir, "tensors.gguf"), tensors)
    write_gguf(os.path.join(gdir, "both_align64.gguf"), lambda w: (meta(w), tensors(w)), alignment=64)
    rng = np.random.default_rng(1)
    for qtype in (T.Q4_0, T.Q5_1, T.Q2_K, T.Q3_K, T.Q5_K, T.Q6_K):
        write_gguf(os.path.join(gdir, f"{qtype.name.lower()}.gguf"),
                   lambda w: w.add_tensor("t", blocks(qtype, 1, rng), raw_dtype=qtype))

    def safetensors(path, items, metadata=None):
        header, data = {}, b""
        if metadata:
            header["__metadata__"] = metadata
        for name, arr, dtype in items:
            raw = arr.tobytes()
            header[name] = {"dtype": dtype, "shape": list(arr.shape),
                            "data_offsets": [len(data), len(data) + len(raw)]}
            data += raw
        h = json.dumps(header, separators=(",", ":")).encode()
        h += b" " * (-len(h) % 8)
        with open(path, "wb") as f:
            f.write(struct.pack("<Q", len(h)) + h + data)

    safetensors(os.path.join(sdir, "f32.safetensors"),
                [("w", np.arange(6, dtype=np.float32).reshape(2, 3), "F32")], {"format": "pt"})
    safetensors(os.path.join(sdir, "mixed.safetensors"),
                [("a", np.ones(3, np.float16), "F16"), ("b", np.arange(2, dtype=np.int64), "I64"),
                 ("c", np.zeros((0, 4), np.float32), "F32"), ("d", np.array(1, np.uint8), "U8")])
    safetensors(os.path.join(sdir, "empty.safetensors"), [])
    configs(os.path.join(HERE, "corpus_config"))
    tokenizers(os.path.join(HERE, "corpus_tokenizer"))
    print(f"wrote {len(os.listdir(gdir))} GGUF and {len(os.listdir(sdir))} safetensors seeds, config and tokenizer "
          "seeds", file=sys.stderr)


def configs(cdir):
    os.makedirs(cdir, exist_ok=True)
    base = {"vocab_size": 300, "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
            "max_position_embeddings": 256, "tie_word_embeddings": True, "bos_token_id": 1, "eos_token_id": 2}
    seeds = {
        "llama.json": dict(base, model_type="llama", architectures=["LlamaForCausalLM"], attention_bias=False,
                           rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                         "high_freq_factor": 4.0, "original_max_position_embeddings": 128}),
        "qwen2.json": dict(base, model_type="qwen2", layer_types=["full_attention", "sliding_attention"],
                           sliding_window=64, eos_token_id=[2, 3], rope_scaling={"type": "linear", "factor": 2.0}),
        "jet.json": dict(base, model_type="jet_nemotron", layer_types=["jet", "swa"], head_dim=8,
                         rope_parameters={"rope_type": "default", "rope_theta": 1e6},
                         efficient_attention_config={"swa": {"window_size": 32},
                                                     "jet": {"num_heads": 2, "head_dim": 8, "expand_v": 2.0,
                                                             "conv_size": 4, "dconv_generator_reduction": 8,
                                                             "norm_eps": "1e-5"}}),
    }
    for name, c in seeds.items():
        with open(os.path.join(cdir, name), "w") as f:
            json.dump(c, f, indent=1)


def tokenizers(tdir):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    os.makedirs(tdir, exist_ok=True)
    words = "the quick brown fox jumps over a lazy dog 0123456789 ünï , . ! ?".split()
    text = [" ".join(words[(i * 7 + k) % len(words)] for k in range(12)) for i in range(40)]
    chatml = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
              "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
    for name, digits in (("gpt2", False), ("smollm", True)):
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = (pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                      pre_tokenizers.ByteLevel(add_prefix_space=False)])
                             if digits else pre_tokenizers.ByteLevel(add_prefix_space=False))
        tok.decoder = decoders.ByteLevel()
        tok.train_from_iterator(text, trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>", "<|im_start|>",
                                                                                       "<|im_end|>"]))
        cfg = {"eos_token": "<|im_end|>", "bos_token": "<|endoftext|>", "add_bos_token": digits, "chat_template": chatml}
        with open(os.path.join(tdir, name), "wb") as f:
            f.write(tok.to_str().encode() + b"\0" + json.dumps(cfg).encode())


if __name__ == "__main__":
    main()
