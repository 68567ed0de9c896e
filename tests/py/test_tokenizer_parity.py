# labels: fast
"""jet's byte-level BPE vs HF `tokenizers` on >= 2,000 varied strings for the teacher's tokenizer.

jet reads the teacher GGUF's tokenizer metadata and writes tokenizer.json (`jet tokenize
--export-json`); HF tokenizers loads that file. Encode ids and decode text must be identical for every
string, and decoding random id sequences (broken UTF-8 included) must give HF's text. A second,
independent oracle: transformers' own GGUF tokenizer conversion, when it loads the
file (its pre-tokeniser may differ; the result is reported, and only counted when it agrees with the
published SmolLM2 tokenizer layout). Also a tiny hand-written tokenizer.json with merges as pairs, and
small BPEs trained by HF on the Llama-3 and Qwen2 split patterns, read by jet as tokenizer.json and as
GGUF metadata (tokenizer.ggml.pre = llama-bpe / qwen2); an unknown pre type must be a one-line error."""
import json
import os
import random
import subprocess
import sys
import tempfile
import unicodedata

import gguf
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

JET = os.environ.get("JET_BIN", "build/jet")
ROOT = os.environ.get("JET_ROOT", ".")
GGUF = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")


def jet_lines(args, records):
    p = subprocess.run([JET, *args], input="".join(json.dumps(r) + "\n" for r in records), capture_output=True,
                       text=True)
    if p.returncode != 0:
        sys.exit(f"FAIL: jet {' '.join(args)}: {p.stderr.strip()}")
    return [json.loads(l) for l in p.stdout.split("\n") if l]  # not splitlines(): it also splits at U+2028 etc.


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
# Characters where regex engines disagree about \s, \p{L}, \p{N} (U+180E is \s in PCRE2, not in Oniguruma),
# controls, format characters, combining marks, private use, non-BMP digits.
ODD = ["\u0085", "\u180e", "\u200b", "\u2028", "\u2029", "\ufeff", "\x1c", "\x1f", "\x0b", "\x0c", "\u1680",
       "\u2000", "\u202f", "\u205f", "\u200d", "\u2060", "\x00", "\x7f", "\U0010fffd", "\U0001d7d8", "\u2163",
       "\u00bd", "\u0660", "\uff11", "\u0301", "\u0e49", "\U000e0001", "\uf8ff"]


def number(rng):
    k = rng.choice([1, 2, 3, 4, 5, 8, 12, 20])
    s = "".join(rng.choice("0123456789") for _ in range(k))
    return rng.choice([s, "-" + s, s + "." + s[::-1], "1,000,000", "3.14159", "1e-5", "٣٤٥", "²³"])


def piece(rng):
    kind = rng.randrange(9)
    if kind == 8:
        return "".join(rng.choice(ODD + [" ", "a", "1", "\n"]) for _ in range(rng.randint(1, 6)))
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
    # Long words: many distinct merges inside one piece (the merge order matters here).
    for k in range(40):
        letters = SCRIPTS["latin"] if k % 2 else SCRIPTS["latin"] + SCRIPTS["cyrillic"] + SCRIPTS["cjk"]
        out.append("".join(rng.choice(letters) for _ in range(rng.randint(200, 5000))))
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


def check_decode_random(name, jet_model, hf, seed=7, n=3000):
    """Random id sequences, mostly single-byte tokens so that many are broken UTF-8 (HF: U+FFFD)."""
    rng = random.Random(seed)
    size = hf.get_vocab_size()
    single = [i for i in range(size) if len(hf.id_to_token(i) or "") == 1]
    seqs = [[rng.choice(single) if rng.random() < 0.7 else rng.randrange(size) for _ in range(rng.randint(1, 12))]
            for _ in range(n)]
    dec = jet_lines(["tokenize", "--model", jet_model, "--decode"], [{"ids": q} for q in seqs])
    bad = [(q, d["text"]) for q, d in zip(seqs, dec) if d["text"] != hf.decode(q, skip_special_tokens=False)]
    for q, t in bad[:5]:
        print(f"  decode mismatch {q}: jet {t!r} hf {hf.decode(q, skip_special_tokens=False)!r}")
    print(f"{'ok  ' if not bad else 'FAIL'} {name}: {n} random id sequences decoded, {len(bad)} mismatches")
    return not bad


def tiny_tokenizer_json(path):
    """A hand-written byte-level BPE with pair-form merges, an added special token, GPT-2 pre-tokeniser."""
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


LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                  r"\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_PATTERN = LLAMA3_PATTERN.replace(r"\p{N}{1,3}", r"\p{N}")


def nfc_stress(n, seed=5):
    """Strings where NFC changes the text: bases, combining marks of many classes in any order, precomposed
    letters, singletons (Ω U+2126, Å U+212B), composition exclusions (U+0958), Hangul jamo and syllables,
    kana + voicing mark."""
    rng = random.Random(seed)
    bases = list("aeouAEOUnczsαωиеאก") + ["\u1100", "\u1161", "\u11a8", "\uac00", "\uac01", "\u304b", "\u30cf", " ", "1"]
    marks = ["\u0300", "\u0301", "\u0302", "\u0303", "\u0308", "\u030a", "\u030c", "\u0323", "\u0327",
             "\u0328", "\u0345", "\u05b0", "\u05bc", "\u0e49", "\u3099", "\u309a", "\u0344", "\u1161", "\u11a8"]
    whole = ["é", "ǖ", "Å", "\u2126", "\u212b", "\u0958", "\u0f73", "\u1e69", "\u01d5", "\uac00\u11a8", "ﬁ", "\u0340"]
    out = []
    for _ in range(n):
        s = ""
        for _ in range(rng.randint(1, 12)):
            r = rng.random()
            s += rng.choice(bases) if r < 0.4 else rng.choice(marks) if r < 0.85 else rng.choice(whole)
        out.append(s)
    return out


def trained_tokenizer(path, pattern, ignore_merges, specials, texts, nfc=False):
    """A byte-level BPE that HF trains on `texts` with a Split(pattern) + ByteLevel pre-tokeniser (and, with
    nfc, the NFC normalizer of Qwen2's tokenizer)."""
    tok = Tokenizer(models.BPE(ignore_merges=ignore_merges))
    if nfc:
        tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=3000, show_progress=False, special_tokens=specials,
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.save(path)
    return Tokenizer.from_file(path)


def write_tokenizer_gguf(tokenizer_json, path, pre, model="gpt2"):
    """GGUF tokenizer metadata (as llama.cpp's converter lays it out) for a byte-level BPE tokenizer.json."""
    j = json.load(open(tokenizer_json))
    tokens = sorted(j["model"]["vocab"].items(), key=lambda kv: kv[1])
    assert [i for _, i in tokens] == list(range(len(tokens)))
    special = {a["id"] for a in j["added_tokens"] if a["special"]}
    w = gguf.GGUFWriter(path, "llama")
    w.add_tokenizer_model(model)
    w.add_tokenizer_pre(pre)
    w.add_token_list([t for t, _ in tokens])
    w.add_token_types([gguf.TokenType.CONTROL if i in special else gguf.TokenType.NORMAL for _, i in tokens])
    w.add_token_merges([" ".join(m) if isinstance(m, list) else m for m in j["model"]["merges"]])
    w.add_bos_token_id(min(special))
    w.add_eos_token_id(max(special))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def check_split_pattern_tokenizers(tmp, texts):
    ok = True
    # Qwen2's tokenizer normalizes to NFC (a GGUF with pre=qwen2 implies it): strings that NFC changes added.
    for name, pre, pattern, ignore_merges, specials in [
            ("Llama-3", "llama-bpe", LLAMA3_PATTERN, True, ["<|begin_of_text|>", "<|eot_id|>"]),
            ("Qwen2", "qwen2", QWEN2_PATTERN, False, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"])]:
        d = os.path.join(tmp, pre)
        os.makedirs(d)
        tj = os.path.join(d, "tokenizer.json")
        nfc = pre == "qwen2"
        if nfc:
            texts = texts + nfc_stress(600)
        hf = trained_tokenizer(tj, pattern, ignore_merges, specials, texts[::2], nfc=nfc)
        ok &= check_tokenizer(f"{name}-pattern tokenizer.json vs HF tokenizers", tj, hf, texts)
        g = os.path.join(d, f"{pre}.gguf")
        write_tokenizer_gguf(tj, g, pre)
        ok &= check_tokenizer(f"{name}-pattern GGUF (pre={pre}) vs HF tokenizers", g, hf, texts)
    # An unknown pre-tokeniser type or tokenizer model is one error line that names it.
    for pre, model in [("mystery-pre", "gpt2"), ("qwen2", "llama")]:
        g = os.path.join(tmp, f"unknown_{pre}_{model}.gguf")
        write_tokenizer_gguf(os.path.join(tmp, "qwen2", "tokenizer.json"), g, pre, model)
        p = subprocess.run([JET, "tokenize", "--model", g], input='{"text": "x"}\n', capture_output=True, text=True)
        err = p.stderr.strip()
        good = p.returncode == 1 and f"'{pre if model == 'gpt2' else model}'" in err and "\n" not in err and not p.stdout
        print(f"{'ok  ' if good else 'FAIL'} tokenizer.ggml.pre={pre} model={model}: exit {p.returncode}, {err!r}")
        ok &= good
    return ok


def check_transformers_gguf_oracle(texts):
    """transformers' own GGUF tokenizer conversion as an independent oracle. For tokenizer.ggml.pre =
    smollm it builds a ByteLevel pre-tokeniser without the Digits split, so it must agree with jet on
    every string without a number character (where that split changes nothing); on the others the
    agreement is counted and reported."""
    try:
        from transformers import AutoTokenizer
        oracle = AutoTokenizer.from_pretrained(os.path.dirname(GGUF), gguf_file=os.path.basename(GGUF))
    except Exception as e:  # an unavailable oracle is reported, not hidden
        print(f"info transformers' GGUF tokenizer loader unavailable: {type(e).__name__}: {e}")
        return True
    pre = json.loads(oracle.backend_tokenizer.to_str())["pre_tokenizer"]
    enc = jet_lines(["tokenize", "--model", GGUF], [{"text": t} for t in texts])
    same = [e["ids"] == oracle.encode(t, add_special_tokens=False) for t, e in zip(texts, enc)]
    has_num = [any(unicodedata.category(c).startswith("N") for c in t) for t in texts]
    plain = [s for s, n in zip(same, has_num) if not n]
    nums = [s for s, n in zip(same, has_num) if n]
    good = all(plain)
    print(f"{'ok  ' if all(plain) else 'FAIL'} transformers' GGUF tokenizer (pre_tokenizer {json.dumps(pre)}): identical on "
          f"{sum(plain)}/{len(plain)} strings without numbers; on {sum(nums)}/{len(nums)} strings with numbers "
          f"(it does not split digits: '\\n\\n12' is {oracle.encode(chr(10) * 2 + '12', add_special_tokens=False)}, "
          f"jet's {jet_lines(['tokenize', '--model', GGUF], [{'text': chr(10) * 2 + '12'}])[0]['ids']})")
    # With the Digits(individual_digits) step put in front, it must agree on every string, and decode alike.
    backend = oracle.backend_tokenizer
    backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                     backend.pre_tokenizer])
    fixed = sum(backend.encode(t, add_special_tokens=False).ids == e["ids"] for t, e in zip(texts, enc))
    ids = [e["ids"] for e in enc]
    dec = jet_lines(["tokenize", "--model", GGUF, "--decode"], [{"ids": i} for i in ids])
    dec_ok = sum(backend.decode(i, skip_special_tokens=False) == d["text"] for i, d in zip(ids, dec))
    good &= fixed == dec_ok == len(texts)
    print(f"{'ok  ' if fixed == dec_ok == len(texts) else 'FAIL'} transformers' GGUF tokenizer with the Digits step "
          f"added: encode identical on {fixed}/{len(texts)}, decode on {dec_ok}/{len(texts)}")
    return good


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
        ok &= check_decode_random("teacher (GGUF) vs HF tokenizers", GGUF, hf)

        tiny = os.path.join(tmp, "tiny", "tokenizer.json")
        os.makedirs(os.path.dirname(tiny))
        ok &= check_tokenizer("tiny pair-merges tokenizer.json", tiny, tiny_tokenizer_json(tiny),
                              ["hello world", "hello<|eot|>world 12 123", " world hello  12", ""] + texts[:200])

        ok &= check_split_pattern_tokenizers(tmp, texts)

        ok &= check_transformers_gguf_oracle(texts)
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
