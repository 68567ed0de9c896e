# labels: fast
"""jet's byte-level BPE vs HF `tokenizers` on >= 2,000 varied strings for the teacher's tokenizer.

jet reads the teacher GGUF's tokenizer metadata and writes tokenizer.json (`jet tokenize
--export-json`); HF tokenizers loads that file. Encode ids and decode text must be identical for every
string. A second, independent oracle: transformers' own GGUF tokenizer conversion, when it loads the
file (its pre-tokeniser may differ; the result is reported, and only counted when it agrees with the
published SmolLM2 tokenizer layout). Also a tiny hand-written tokenizer.json with merges as pairs."""
import json
import os
import random
import subprocess
import sys
import tempfile

from tokenizers import Tokenizer

JET = os.environ.get("JET_BIN", "build/jet")
ROOT = os.environ.get("JET_ROOT", ".")
GGUF = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")


def jet_lines(args, records):
    p = subprocess.run([JET, *args], input="".join(json.dumps(r) + "\n" for r in records), capture_output=True,
                       text=True)
    if p.returncode != 0:
        sys.exit(f"FAIL: jet {' '.join(args)}: {p.stderr.strip()}")
    return [json.loads(l) for l in p.stdout.splitlines()]


SCRIPTS = {
    "latin": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZéèêëàâäôöûüçñßøåæœÉÀÇ",
    "cyrillic": "абвгдеёжзийклмнопрстуфхцчшщъыьэюяАБВГДЕЖЗИЙ",
    "greek": "αβγδεζηθικλμνξοπρστυφχψωΑΒΓΔΕΖΗΘ",
    "arabic": "ابتثجحخدذرزسشصضطظعغفقكلمنهوي",
    "hebrew": "אבגדהוזחטיכלמנסעפצקרשת",
    "devanagari": "अआइईउऊएऐओऔकखगघचछजझटठडढणतथदधनपफबभमयरलवशषसह्ािीुूेैोौं",
    "cjk": "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年東京都日本語",
    "hangul": "가나다라마바사아자차카타파하한국어안녕하세요",
    "thai": "กขคงจฉชซญดตถทธนบปผพฟภมยรลวศษสหอฮะาิีึืุู",
    "emoji": ["😀", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "❤️", "🤖", "🇫🇷", "✨", "🧑🏿‍💻"],
}
CODE = [
    "def f(x):\n    return x ** 2  # square\n",
    "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}\n",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name;",
    "fn main() { println!(\"{}\", 42); }",
    "const x = async () => await fetch('/api/v1?q=1&r=2');",
    "#include <stdio.h>\nint main(void){return 0;}",
    "<div class=\"a\">Hello &amp; bye</div>",
    "    if x:\n        pass\n\n\n",
]
WORDS = ["the", "The", "THE", "don't", "I'm", "we're", "they've", "she'll", "he'd", "it's", "O'Neil", "rock'n'roll",
         "hello", "world", "tokenizer", "GPT", "e.g.", "U.S.A.", "naïve", "résumé", "co-operate", "well-known"]
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<repo_name>", "<file_sep>"]
SPACES = [" ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n ", "\t\t", "\u00a0", "\u3000", "      "]


def number(rng):
    k = rng.choice([1, 2, 3, 4, 5, 8, 12, 20])
    s = "".join(rng.choice("0123456789") for _ in range(k))
    return rng.choice([s, "-" + s, s + "." + s[::-1], "1,000,000", "3.14159", "1e-5", "٣٤٥", "²³"])


def piece(rng):
    kind = rng.randrange(8)
    if kind == 0:
        return rng.choice(WORDS)
    if kind == 1:
        name = rng.choice([k for k in SCRIPTS if k != "emoji"])
        return "".join(rng.choice(SCRIPTS[name]) for _ in range(rng.randint(1, 8)))
    if kind == 2:
        return rng.choice(SCRIPTS["emoji"])
    if kind == 3:
        return number(rng)
    if kind == 4:
        return rng.choice(SPACES)
    if kind == 5:
        return rng.choice("!?.,;:'\"()[]{}<>/\\|@#$%^&*-_=+~`…—–«»¿¡")
    if kind == 6:
        return rng.choice(CODE)
    return rng.choice(SPECIALS) if rng.random() < 0.3 else rng.choice(WORDS).upper()


def corpus(n, seed=1234):
    rng = random.Random(seed)
    out = ["", " ", "  ", "\n", "a", "1234567890", "   leading", "trailing   ", "mixed\t \n whitespace  \n",
           "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", "<|im_start|><|im_end|>", "<|im_start",
           "x" * 300, " " * 50, "1" * 40, "ab" * 100 + "12" * 50]
    while len(out) < n:
        k = rng.randint(1, 25)
        s = "".join(piece(rng) + (rng.choice(SPACES) if rng.random() < 0.4 else "") for _ in range(k))
        out.append(s)
    return out


def check_tokenizer(name, jet_model, hf, texts):
    enc = jet_lines(["tokenize", "--model", jet_model], [{"text": t} for t in texts])
    bad = 0
    all_ids = []
    for t, e in zip(texts, enc):
        ref = hf.encode(t, add_special_tokens=False).ids
        all_ids.append(ref)
        if e["ids"] != ref:
            bad += 1
            if bad <= 5:
                print(f"  encode mismatch {t!r}:\n    jet {e['ids']}\n    hf  {ref}")
    dec = jet_lines(["tokenize", "--model", jet_model, "--decode"], [{"ids": i} for i in all_ids])
    bad_dec = 0
    for ids, d in zip(all_ids, dec):
        ref = hf.decode(ids, skip_special_tokens=False)
        if d["text"] != ref:
            bad_dec += 1
            if bad_dec <= 5:
                print(f"  decode mismatch {ids}: jet {d['text']!r} hf {ref!r}")
    ntok = sum(len(i) for i in all_ids)
    print(f"{'ok  ' if bad == bad_dec == 0 else 'FAIL'} {name}: {len(texts)} strings, {ntok} tokens: "
          f"{bad} encode and {bad_dec} decode mismatches")
    return bad == 0 and bad_dec == 0


def tiny_tokenizer_json(path):
    """A hand-written byte-level BPE with pair-form merges, an added special token, GPT-2 pre-tokeniser."""
    from tokenizers import models, pre_tokenizers, decoders
    chars = pre_tokenizers.ByteLevel.alphabet()
    vocab = {c: i for i, c in enumerate(sorted(chars))}
    merges = [("h", "e"), ("l", "l"), ("he", "ll"), ("hell", "o"), ("Ġ", "w"), ("o", "r"), ("Ġw", "or"),
              ("Ġwor", "l"), ("Ġworl", "d"), ("1", "2")]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(["<|eot|>"])
    tok.save(path)
    j = json.load(open(path))
    j["model"]["merges"] = [list(m.split(" ")) if isinstance(m, str) else m for m in j["model"]["merges"]]
    json.dump(j, open(path, "w"))
    return Tokenizer.from_file(path)


def main():
    ok = True
    texts = corpus(2200)
    with tempfile.TemporaryDirectory() as tmp:
        tj = os.path.join(tmp, "tokenizer.json")
        p = subprocess.run([JET, "tokenize", "--model", GGUF, "--export-json", tj], capture_output=True, text=True)
        if p.returncode != 0:
            sys.exit(f"FAIL: export: {p.stderr}")
        hf = Tokenizer.from_file(tj)
        ok &= check_tokenizer("teacher (GGUF) vs HF tokenizers on jet's tokenizer.json", GGUF, hf, texts)
        # The exported file itself, read back by jet, must tokenise the same way.
        ok &= check_tokenizer("teacher (jet's tokenizer.json) vs HF tokenizers", tj, hf, texts[:500])

        tiny = os.path.join(tmp, "tiny", "tokenizer.json")
        os.makedirs(os.path.dirname(tiny))
        ok &= check_tokenizer("tiny pair-merges tokenizer.json", tiny, tiny_tokenizer_json(tiny),
                              ["hello world", "hello<|eot|>world 12 123", " world hello  12", ""] + texts[:200])

        # Independent oracle: transformers' GGUF tokenizer conversion (reported; it may lack the digit split).
        try:
            from transformers import AutoTokenizer
            t2 = AutoTokenizer.from_pretrained(os.path.dirname(GGUF), gguf_file=os.path.basename(GGUF))
            enc = jet_lines(["tokenize", "--model", GGUF], [{"text": t} for t in texts[:500]])
            agree = sum(e["ids"] == t2.encode(t, add_special_tokens=False) for t, e in zip(texts[:500], enc))
            digits = t2.encode("12345", add_special_tokens=False)
            print(f"info transformers' GGUF tokenizer agrees with jet on {agree}/500 strings; it encodes '12345' as "
                  f"{digits} (the published SmolLM2 tokenizer splits digits individually)")
        except Exception as e:  # an unavailable oracle is reported, not hidden
            print(f"info transformers' GGUF tokenizer loader unavailable: {type(e).__name__}: {e}")
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
