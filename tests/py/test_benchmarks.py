# labels: slow
"""`jet eval` on the lm-evaluation-harness benchmarks against the harness itself: the first 20 items of every
set in data/eval (scripts/eval_data.sh; MMLU: 20 abstract-algebra questions, 5-shot from dev) are scored by
`jet eval` on the teacher GGUF and by lm-eval 0.4.13's own task definitions (its packaged YAMLs, included
with only the data source swapped for the local files) with its HF transformers model ("hf") on the
teacher converted by `jet convert`. Every per-choice log-likelihood agrees within 1e-3 nats and every
per-item prediction (acc, acc_norm, LAMBADA greedy) is the same. Bad or missing eval files give one error
line naming the file."""
import json
import logging
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from checks import Checks  # noqa: E402

JET = os.environ.get("JET_BIN", "build/jet")
ROOT = os.path.abspath(os.environ.get("JET_ROOT", "."))
GGUF = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
EVAL = os.path.join(ROOT, "data", "eval")
N = 20
TOL = 1e-3

# jet task -> (lm-eval YAML under lm_eval/tasks, its split that reads our file, overrides for our field names)
TASKS = {
    "hellaswag": ("hellaswag/hellaswag.yaml", {}),
    "arc_easy": ("arc/arc_easy.yaml", {"doc_to_choice": "{{choices}}", "doc_to_target": "{{gold}}"}),
    "arc_challenge": ("arc/arc_easy.yaml", {"doc_to_choice": "{{choices}}", "doc_to_target": "{{gold}}"}),
    "piqa": ("piqa/piqa.yaml", {}),
    "winogrande": ("winogrande/default.yaml", {}),
    "boolq": ("super_glue/boolq/default.yaml", {}),
    "openbookqa": ("openbookqa/openbookqa.yaml", {"doc_to_choice": "{{choices}}", "doc_to_target": "{{gold}}"}),
    "sciq": ("sciq/sciq.yaml", {}),
    "lambada": ("lambada/lambada_openai.yaml", {}),
    "mmlu": ("mmlu/default/mmlu_abstract_algebra.yaml", {}),
}


def jet(*args):
    return subprocess.run([JET, *map(str, args)], capture_output=True, text=True)


def head(src, dst, n):
    with open(src) as f, open(dst, "w") as g:
        for i, line in enumerate(f):
            if n is not None and i >= n:
                break
            g.write(line)


def write_yamls(ydir, edir):
    import lm_eval
    tasks_dir = os.path.join(os.path.dirname(lm_eval.__file__), "tasks")
    for name, (yaml, over) in TASKS.items():
        files = {"test": os.path.join(edir, name + ".jsonl")}
        if name == "mmlu":  # the harness's MMLU is 5-shot when asked (--num_fewshot 5)
            files["dev"] = os.path.join(edir, "mmlu_dev.jsonl")
            over = {**over, "num_fewshot": 5}
        cfg = {"include": os.path.join(tasks_dir, yaml), "task": "jet_" + name, "tag": [], "dataset_path": "json",
               "dataset_name": None, "dataset_kwargs": {"data_files": files}, "training_split": None,
               "validation_split": None, "test_split": "test", **over}
        with open(os.path.join(ydir, name + ".yaml"), "w") as f:
            json.dump(cfg, f)  # JSON is YAML


def main():
    check = Checks()
    if not os.path.isdir(EVAL):
        sys.exit(f"FAIL: {EVAL} missing (run scripts/eval_data.sh)")
    import torch
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        edir = os.path.join(tmp, "eval")
        os.makedirs(edir)
        for name in TASKS:
            head(os.path.join(EVAL, name + ".jsonl"), os.path.join(edir, name + ".jsonl"), N)
        head(os.path.join(EVAL, "mmlu_dev.jsonl"), os.path.join(edir, "mmlu_dev.jsonl"), None)

        out = os.path.join(tmp, "jet.json")
        p = jet("eval", "--model", GGUF, "--tasks", ",".join(TASKS), "--eval-dir", edir, "--json", out)
        if not check(p.returncode == 0, f"jet eval ran: {p.stderr.strip().splitlines()[-1:] if p.returncode else ''}"):
            check.finish("test_benchmarks")
        mine = json.load(open(out))["models"][0]["metrics"]

        hf = os.path.join(tmp, "hf")
        p = jet("convert", "--model", GGUF, "--out", hf)
        check(p.returncode == 0, "jet convert")
        ydir = os.path.join(tmp, "yaml")
        os.makedirs(ydir)
        write_yamls(ydir, edir)
        logging.disable(logging.WARNING)
        import lm_eval
        from lm_eval.tasks import TaskManager
        res = lm_eval.simple_evaluate(model="hf", model_args={"pretrained": hf, "dtype": "float32", "device": "cpu"},
                                      tasks=["jet_" + t for t in TASKS], num_fewshot=None, batch_size=8,
                                      log_samples=True, task_manager=TaskManager(include_path=ydir),
                                      bootstrap_iters=0)
        for name in TASKS:
            samples = sorted(res["samples"]["jet_" + name], key=lambda s: s["doc_id"])
            m = mine[name]
            check(len(samples) == N and m["items"] == N, f"{name}: {len(samples)} harness / {m['items']} jet items")
            worst, same, same_norm = 0.0, True, True
            for i, s in enumerate(samples):
                ll = [r[0][0] for r in s["resps"]]
                worst = max([worst] + [abs(a - b) for a, b in zip(ll, m["ll"][i])])
                same &= s["acc"] == m["correct"][i]
                if "acc_norm" in s:
                    same_norm &= s["acc_norm"] == m["correct_norm"][i]
            check(same and same_norm, f"{name}: every item counted alike by acc{' and acc_norm' if m.get('acc_norm') is not None else ''}")
            check(worst <= TOL, f"{name}: per-choice log-likelihood max |jet - harness/HF| = {worst:.2e} nats")
            r = res["results"]["jet_" + name]
            check(abs(r["acc,none"] - m["acc"]) < 1e-12, f"{name}: acc jet {m['acc']:.4f} harness {r['acc,none']:.4f}")
            if "acc_norm,none" in r:
                check(abs(r["acc_norm,none"] - m.get("acc_norm", -1)) < 1e-12,
                      f"{name}: acc_norm jet {m.get('acc_norm')} harness {r['acc_norm,none']:.4f}")
            if name == "lambada":
                check(abs(r["perplexity,none"] - m["ppl"]) / m["ppl"] < 1e-3,
                      f"lambada: perplexity jet {m['ppl']:.3f} harness {r['perplexity,none']:.3f}")

        # Bad or missing data: one line naming the file.
        os.remove(os.path.join(edir, "piqa.jsonl"))
        p = jet("eval", "--model", GGUF, "--tasks", "piqa", "--eval-dir", edir)
        err = p.stderr.strip().splitlines()
        check(p.returncode != 0 and len(err) == 1 and "piqa.jsonl" in err[0], f"missing file: {err}")
        with open(os.path.join(edir, "sciq.jsonl"), "a") as f:
            f.write('{"question": "no support"\n')
        p = jet("eval", "--model", GGUF, "--tasks", "sciq", "--eval-dir", edir)
        err = p.stderr.strip().splitlines()
        check(p.returncode != 0 and len(err) == 1 and f"sciq.jsonl:{N + 1}" in err[0], f"bad line: {err}")
        with open(os.path.join(edir, "boolq.jsonl"), "w") as f:
            f.write('{"passage": "p", "question": "q"}\n')
        p = jet("eval", "--model", GGUF, "--tasks", "boolq", "--eval-dir", edir)
        err = p.stderr.strip().splitlines()
        check(p.returncode != 0 and len(err) == 1 and "boolq.jsonl:1" in err[0] and "label" in err[0],
              f"missing field: {err}")
    check.finish("test_benchmarks")


if __name__ == "__main__":
    main()
