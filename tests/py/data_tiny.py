"""Shared helpers of the data and eval tests: a small random-word corpus, a byte-level BPE tokenizer
trained on it with HF tokenizers (an HF directory with tokenizer.json + tokenizer_config.json), and a
reader of jet token shards independent of jet's."""
import glob
import json
import os
import random
import struct
import subprocess

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

JET = os.environ.get("JET_BIN", "build/jet")


def jet(*args):
    return subprocess.run([JET, *map(str, args)], capture_output=True, text=True)


class Checks:
    """check(cond, what) prints an ok/FAIL line; .ok is False once any check failed."""

    def __init__(self):
        self.ok = True

    def __call__(self, cond, what):
        self.ok &= bool(cond)
        print(f"{'ok  ' if cond else 'FAIL'} {what}")

WORDS = ("the quick brown fox jumps over a lazy dog while seven wizards quietly judge boxing matches "
         "in a small town by the river , . ; ! ? and then").split()


def make_corpus(root, n_docs, seed):
    rng = random.Random(seed)
    os.makedirs(root)
    for i in range(n_docs):
        paras = ["\n".join(" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12)))
                           for _ in range(rng.randint(1, 3))) for _ in range(rng.randint(1, 4))]
        sub = os.path.join(root, "part%d" % (i % 3))
        os.makedirs(sub, exist_ok=True)
        with open(os.path.join(sub, f"doc{i:03d}.txt"), "w") as f:
            f.write("\n\n".join(paras) + "\n")
    with open(os.path.join(root, "part0", "empty.txt"), "w") as f:
        f.write(" \n\n")
    with open(os.path.join(root, "notes.md"), "w") as f:  # not *.txt: ignored
        f.write("ignored")
    json.dump([{"name": "synthetic", "licence": "test data"}], open(os.path.join(root, "sources.json"), "w"))


def make_tokenizer(path, corpus_dir):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    files = sorted(glob.glob(os.path.join(corpus_dir, "**", "*.txt"), recursive=True))
    tok.train(files, trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                         initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    os.makedirs(path)
    tok.save(os.path.join(path, "tokenizer.json"))
    json.dump({"eos_token": "<|endoftext|>"}, open(os.path.join(path, "tokenizer_config.json"), "w"))
    return tok


def read_shard(path):
    b = open(path, "rb").read()
    magic, version, width, count, vocab, _ = struct.unpack("<8sIIQII", b[:32])
    assert magic == b"JETTOKS\0" and version == 1 and width in (2, 4), (path, magic, version, width)
    assert len(b) == 32 + count * width, path
    return list(struct.unpack("<%d%s" % (count, "H" if width == 2 else "I"), b[32:])), vocab


def read_split(d, split):
    meta = json.load(open(os.path.join(d, "meta.json")))
    toks = []
    for sh in meta["splits"][split]["shards"]:
        t, _ = read_shard(os.path.join(d, split, sh["file"]))
        assert len(t) == sh["tokens"]
        toks += t
    assert len(toks) == meta["splits"][split]["tokens"]
    return toks


def tiny_corpus(tmp, n_train, n_held):
    """TMP/train and TMP/held (corpora of n_train and n_held documents, plus one empty one each) and a
    tokenizer trained on the training part in TMP/tok: (train, held, tokdir, hf_tokenizer)."""
    train, held = os.path.join(tmp, "train"), os.path.join(tmp, "held")
    make_corpus(train, n_train, 1)
    make_corpus(held, n_held, 2)
    tokdir = os.path.join(tmp, "tok")
    return train, held, tokdir, make_tokenizer(tokdir, train)


def make_eval_dir(path, seed, n_arc=8):
    """A tiny data/eval (the fields of scripts/eval_data.sh's files): arc_easy.jsonl with n_arc questions,
    and RULER's ruler_essays.jsonl (a random-word haystack of 1500 words, 300 distinct key words) and
    ruler_squad.jsonl (3 paragraphs, 2 questions)."""
    rng = random.Random(seed)
    os.makedirs(path)
    with open(os.path.join(path, "arc_easy.jsonl"), "w") as f:
        for i in range(n_arc):
            choices = [" ".join(rng.choice(WORDS[:20]) for _ in range(rng.randint(1, 4))) for _ in range(4)]
            f.write(json.dumps({"id": f"q{i}", "question": " ".join(rng.choice(WORDS[:20]) for _ in range(6)) + "?",
                                "choices": choices, "gold": rng.randrange(4)}) + "\n")
    keys = ["".join(rng.choice("abcdefghij") for _ in range(rng.randint(4, 9))) for _ in range(300)]
    text = " ".join(rng.choice(keys + WORDS) for _ in range(1500))
    with open(os.path.join(path, "ruler_essays.jsonl"), "w") as f:
        f.write(json.dumps({"text": text}) + "\n")
    docs = [" ".join(rng.choice(WORDS) for _ in range(30)) for _ in range(3)]
    with open(os.path.join(path, "ruler_squad.jsonl"), "w") as f:
        f.write(json.dumps({"docs": docs}) + "\n")
        for q in range(2):
            f.write(json.dumps({"query": "which word?", "outputs": [docs[q].split()[0]], "context": q,
                                "more_context": [2]}) + "\n")
