"""lm-evaluation-harness 0.4.13 against `jet serve`: its OpenAI-compatible completions client
(`local-completions`: prompts as token ids, `echo: true`, `logprobs: 1`, `max_tokens: 1`) runs the two tasks of
tests/lm_eval/*.yaml (ARC-Easy and PIQA as the harness defines them, read from the first N items of
data/eval) against a `jet serve` of the teacher GGUF; every item's acc and acc_norm and the task accuracies
equal `jet eval`'s on the same items, and the log-likelihoods agree within 1e-3 nats. The harness
tokenises with the tokenizer.json of `jet convert`. run(n) is called by test_lm_eval_serve*.py."""
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from checks import Checks  # noqa: E402

JET = os.path.abspath(os.environ.get("JET_BIN", "build/jet"))
ROOT = os.path.abspath(os.environ.get("JET_ROOT", "."))
GGUF = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
TASKS = ("arc_easy", "piqa")
TOL = 1e-3


def wait_listening(proc):
    line = proc.stdout.readline()
    if "listening on" not in line:
        sys.exit(f"FAIL: jet serve did not start: {line!r} {proc.stderr.read() if proc.poll() is not None else ''}")
    return line.strip().rsplit(" ", 1)[-1]


def run(n, name):
    check = Checks()
    with tempfile.TemporaryDirectory() as tmp:
        os.makedirs(os.path.join(tmp, "eval"))
        for t in TASKS:
            with open(os.path.join(ROOT, "data", "eval", t + ".jsonl")) as f, \
                    open(os.path.join(tmp, "eval", t + ".jsonl"), "w") as g:
                g.writelines(line for _, line in zip(range(n), f))
        out = os.path.join(tmp, "jet.json")
        p = subprocess.run([JET, "eval", "--model", GGUF, "--tasks", ",".join(TASKS), "--eval-dir",
                            os.path.join(tmp, "eval"), "--json", out], capture_output=True, text=True)
        if not check(p.returncode == 0, f"jet eval on {n} items of {TASKS}"):
            print(p.stderr[-2000:])
            check.finish(name)
        mine = json.load(open(out))["models"][0]["metrics"]
        hf = os.path.join(tmp, "hf")
        subprocess.run([JET, "convert", "--model", GGUF, "--out", hf], check=True, capture_output=True)

        serve = subprocess.Popen([JET, "serve", "--model", GGUF, "--port", "0", "--max-batch", "4"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            url = wait_listening(serve)
            logging.disable(logging.WARNING)
            import lm_eval
            from lm_eval.tasks import TaskManager
            cwd = os.getcwd()
            os.chdir(tmp)  # the YAMLs read eval/<task>.jsonl
            try:
                t0 = time.time()
                res = lm_eval.simple_evaluate(
                    model="local-completions",
                    model_args={"model": "jet", "base_url": url + "/v1/completions", "tokenizer": hf,
                                "tokenizer_backend": "huggingface", "tokenized_requests": True, "batch_size": 8,
                                "max_retries": 1, "max_length": 2048},
                    tasks=["jet_" + t for t in TASKS], log_samples=True, bootstrap_iters=0,
                    task_manager=TaskManager(include_path=os.path.join(ROOT, "tests", "lm_eval")))
                print(f"lm-eval through jet serve: {time.time() - t0:.1f} s")
            finally:
                os.chdir(cwd)
        finally:
            serve.terminate()
            serve.wait(timeout=60)
        for t in TASKS:
            r, m = res["results"]["jet_" + t], mine[t]
            samples = sorted(res["samples"]["jet_" + t], key=lambda s: s["doc_id"])
            check(len(samples) == n == m["items"], f"{t}: {len(samples)} harness items, {m['items']} jet items")
            same = all(s["acc"] == m["correct"][i] and s["acc_norm"] == m["correct_norm"][i] for i, s in enumerate(samples))
            check(same, f"{t}: every item counted alike by acc and acc_norm")
            worst = max(abs(resp[0][0] - b) for i, s in enumerate(samples) for resp, b in zip(s["resps"], m["ll"][i]))
            check(worst <= TOL, f"{t}: log-likelihood max |harness via serve - jet eval| = {worst:.2e} nats")
            check(r["acc,none"] == m["acc"] and r["acc_norm,none"] == m["acc_norm"],
                  f"{t}: acc {r['acc,none']:.4f} / {m['acc']:.4f}, acc_norm {r['acc_norm,none']:.4f} / {m['acc_norm']:.4f} "
                  "(harness via serve / jet eval)")
    check.finish(name)
