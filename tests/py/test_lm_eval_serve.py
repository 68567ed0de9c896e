# labels: fast
"""lm-evaluation-harness 0.4.13 against `jet serve`: its OpenAI-compatible completions client
(`local-completions`: prompts as token ids, `echo: true`, `logprobs: 1`, `max_tokens: 1`) runs the tasks of
tests/lm_eval/*.yaml named in TASKS (as the harness defines them, read from the first N items of data/eval)
against a `jet serve` of the teacher GGUF; every item's acc (and acc_norm where the task has it) and the task
accuracies equal `jet eval`'s on the same items, and the log-likelihoods agree within 1e-3 nats. The harness
tokenises with the tokenizer.json of `jet convert`. PIQA and Winogrande are the two cheapest of the sets
(about 63 and 43 tokens an item against ARC-Easy's 119; on a 2-core CPU this test took 95 s, with ARC-Easy
and PIQA 138 s), and they cover both request shapes: one context with several continuations, and several
contexts with one."""
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
# One thread in jet eval and jet serve: ctest runs two tests at once on CI's 2 cores, and two OpenMP threads
# on a busy core wait for each other (measured: 2 threads took 2-4x the time of 1 on a loaded 2-core machine).
os.environ.setdefault("OMP_NUM_THREADS", "1")

from checks import Checks  # noqa: E402

JET = os.path.abspath(os.environ.get("JET_BIN", "build/jet"))
ROOT = os.path.abspath(os.environ.get("JET_ROOT", "."))
GGUF = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
TASKS = ("piqa", "winogrande")
N = 100
TOL = 1e-3


def wait_listening(proc):
    line = proc.stdout.readline()
    if "listening on" not in line:
        sys.exit(f"FAIL: jet serve did not start: {line!r} {proc.stderr.read() if proc.poll() is not None else ''}")
    return line.strip().rsplit(" ", 1)[-1]


def post(url, body):
    req = urllib.request.Request(url + "/v1/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.load(r)["choices"][0]


def check_one_token(check, url, prompts):
    """The harness's request (greedy, max_tokens 1, logprobs) takes its token from the prompt's scoring forward
    instead of generating it: the same token, finish reason and log-probabilities as a generated one (the first
    of max_tokens 2)."""
    worst, same = 0.0, True
    for ids in prompts:
        body = {"model": "jet", "prompt": ids, "temperature": 0, "logprobs": 3, "echo": True}
        one, two = post(url, {**body, "max_tokens": 1}), post(url, {**body, "max_tokens": 2})
        a, b, n = one["logprobs"], two["logprobs"], len(ids) + 1
        stopped = len(b["tokens"]) == n  # the first token ended it
        same &= a["tokens"] == b["tokens"][:n] and one["finish_reason"] == (two["finish_reason"] if stopped else "length")
        same &= all(x.keys() == y.keys() for x, y in zip(a["top_logprobs"][1:], b["top_logprobs"][1:n]))
        worst = max([worst] + [abs(x - y) for x, y in zip(a["token_logprobs"][1:], b["token_logprobs"][1:n])]
                    + [abs(x[k] - y[k]) for x, y in zip(a["top_logprobs"][1:], b["top_logprobs"][1:n]) for k in x])
    check(same and worst <= 1e-4, f"greedy max_tokens 1 from the scoring forward = generated: {len(prompts)} prompts, "
          f"same tokens, finish and top tokens, log-probabilities within {worst:.1e}")


def main():
    check = Checks()
    with tempfile.TemporaryDirectory() as tmp:
        os.makedirs(os.path.join(tmp, "eval"))
        for t in TASKS:
            with open(os.path.join(ROOT, "data", "eval", t + ".jsonl")) as f, \
                    open(os.path.join(tmp, "eval", t + ".jsonl"), "w") as g:
                g.writelines(line for _, line in zip(range(N), f))
        t0 = time.time()
        out = os.path.join(tmp, "jet.json")
        p = subprocess.run([JET, "eval", "--model", GGUF, "--tasks", ",".join(TASKS), "--eval-dir",
                            os.path.join(tmp, "eval"), "--json", out], capture_output=True, text=True)
        if not check(p.returncode == 0, f"jet eval on {N} items of {TASKS}"):
            print(p.stderr[-2000:])
            check.finish("test_lm_eval_serve")
        mine = json.load(open(out))["models"][0]["metrics"]
        print(f"jet eval: {time.time() - t0:.1f} s")
        hf = os.path.join(tmp, "hf")
        subprocess.run([JET, "convert", "--model", GGUF, "--out", hf], check=True, capture_output=True)

        serve = subprocess.Popen([JET, "serve", "--model", GGUF, "--port", "0", "--max-batch", "4"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            url = wait_listening(serve)
            from transformers import AutoTokenizer
            tok = AutoTokenizer.from_pretrained(hf)
            with open(os.path.join(tmp, "eval", "piqa.jsonl")) as f:
                goals = [json.loads(line)["goal"] for _, line in zip(range(4), f)]
            check_one_token(check, url, [tok.encode(f"Question: {g}\nAnswer:") for g in goals])
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
                    task_manager=TaskManager(include_path=os.path.join(ROOT, "tests", "lm_eval"),
                                             include_defaults=False))
                print(f"lm-eval through jet serve: {time.time() - t0:.1f} s")
            finally:
                os.chdir(cwd)
        finally:
            serve.terminate()
            serve.wait(timeout=60)
        for t in TASKS:
            r, m = res["results"]["jet_" + t], mine[t]
            samples = sorted(res["samples"]["jet_" + t], key=lambda s: s["doc_id"])
            check(len(samples) == N == m["items"], f"{t}: {len(samples)} harness items, {m['items']} jet items")
            norm = "acc_norm,none" in r
            check(norm == (m.get("acc_norm") is not None), f"{t}: acc_norm reported by both or neither")
            same = all(s["acc"] == m["correct"][i] and (not norm or s["acc_norm"] == m["correct_norm"][i])
                       for i, s in enumerate(samples))
            check(same, f"{t}: every item counted alike by acc{' and acc_norm' if norm else ''}")
            check(all(len(s["resps"]) == len(m["ll"][i]) for i, s in enumerate(samples)),
                  f"{t}: every item has as many choices in jet as in the harness")
            worst = max(abs(resp[0][0] - b) for i, s in enumerate(samples) for resp, b in zip(s["resps"], m["ll"][i]))
            check(worst <= TOL, f"{t}: log-likelihood max |harness via serve - jet eval| = {worst:.2e} nats")
            check(r["acc,none"] == m["acc"] and (not norm or r["acc_norm,none"] == m["acc_norm"]),
                  f"{t}: acc {r['acc,none']:.4f} / {m['acc']:.4f}"
                  + (f", acc_norm {r['acc_norm,none']:.4f} / {m['acc_norm']:.4f}" if norm else "")
                  + " (harness via serve / jet eval)")
    check.finish("test_lm_eval_serve")


if __name__ == "__main__":
    main()
