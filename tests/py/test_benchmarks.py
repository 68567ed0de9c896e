# labels: fast
"""`jet eval` on the lm-evaluation-harness benchmarks against the harness itself. Items: of every set in
data/eval (scripts/eval_data.sh) the shortest 20 of its first 200 lines, to keep it quick on a CPU; of MMLU the
shortest 10 world-religions questions (the subject with the shortest 5-shot prompt), 5-shot from its dev
questions. `jet eval` scores them on the teacher GGUF (in its CPU batches of 512 tokens, several per task);
lm-eval 0.4.13 scores them on the teacher converted by `jet convert`: the harness's own task definitions (its
packaged YAMLs, included with only the data source swapped for the local files) build the requests, its HF
model ("hf") tokenises them, and its tasks score and aggregate the results; only the HF forward is batched
here (SharedContextHF: one forward per shared context). Every per-choice log-likelihood agrees within 1e-3
nats and every per-item prediction (acc, acc_norm, LAMBADA greedy) is the same. Bad or missing eval files
give one error line naming the file."""
import json
import logging
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# One thread, here and in jet: ctest runs two tests at once on CI's 2 cores, and two OpenMP threads on a
# busy core wait for each other (measured: 2 threads took 2-4x the time of 1 on a loaded 2-core machine).
os.environ.setdefault("OMP_NUM_THREADS", "1")

from checks import Checks  # noqa: E402

JET = os.environ.get("JET_BIN", "build/jet")
ROOT = os.path.abspath(os.environ.get("JET_ROOT", "."))
GGUF = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
EVAL = os.path.join(ROOT, "data", "eval")
N, N_MMLU, POOL = 20, 10, 200
MMLU_SUBJECT = "world_religions"
TOL = 1e-3

# jet task -> (lm-eval YAML under lm_eval/tasks, overrides for our field names)
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
    "mmlu": (f"mmlu/default/mmlu_{MMLU_SUBJECT}.yaml", {}),
}


def jet(*args):
    return subprocess.run([JET, *map(str, args)], capture_output=True, text=True)


def shortest(src, dst, keep=lambda line: True, n=N, pool=POOL):
    """Writes the n shortest lines among the first `pool` kept lines of src to dst, in their order."""
    with open(src) as f:
        lines = [line for line in f if keep(line)][:pool]
    picked = sorted(sorted(range(len(lines)), key=lambda i: len(lines[i]))[:n])
    with open(dst, "w") as g:
        g.writelines(lines[i] for i in picked)


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


def shared_context_hf():
    """lm-eval's HF model ("hf") with its batched forward replaced: the choices that share a context are scored
    from one forward of the context (its KV cache repeated per choice) and one forward of their continuations,
    where HFLM forwards each choice's whole text. Tokenisation (HFLM._encode_pair) stays the harness's."""
    import torch
    from lm_eval.models.huggingface import HFLM

    class SharedContextHF(HFLM):
        def _loglikelihood_tokens(self, requests, disable_tqdm=False, override_bs=None):
            groups = {}
            for k, (_, ctx, _) in enumerate(requests):
                groups.setdefault(tuple(ctx), []).append(k)
            out = [None] * len(requests)
            with torch.no_grad():
                for ctx, ks in groups.items():
                    conts = [requests[k][2] for k in ks]
                    first = self.model(torch.tensor([ctx]), use_cache=True, logits_to_keep=1)
                    logits = first.logits.expand(len(ks), 1, -1)  # predicts each continuation's first token
                    T = max(map(len, conts)) - 1
                    if T > 0:
                        cache = first.past_key_values
                        cache.batch_repeat_interleave(len(ks))
                        # right-padded with the last token: causal attention keeps it out of every read position
                        ids = torch.tensor([c[:-1] + c[-1:] * (T + 1 - len(c)) for c in conts])
                        logits = torch.cat([logits, self.model(ids, past_key_values=cache).logits], 1)
                    logp = logits.float().log_softmax(-1)
                    for row, (k, c) in enumerate(zip(ks, conts)):
                        lp, tgt = logp[row, :len(c)], torch.tensor(c)
                        out[k] = (lp.gather(-1, tgt[:, None]).sum().item(), bool((lp.argmax(-1) == tgt).all()))
            return out

    return SharedContextHF


def main():
    check = Checks()
    if not os.path.isdir(EVAL):
        sys.exit(f"FAIL: {EVAL} missing (run scripts/eval_data.sh)")
    import torch
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    with tempfile.TemporaryDirectory() as tmp:
        edir = os.path.join(tmp, "eval")
        os.makedirs(edir)
        in_subject = lambda line: json.loads(line)["subject"] == MMLU_SUBJECT  # noqa: E731
        for name in TASKS:
            if name == "mmlu":
                shortest(os.path.join(EVAL, "mmlu.jsonl"), os.path.join(edir, "mmlu.jsonl"), in_subject, n=N_MMLU)
            else:
                shortest(os.path.join(EVAL, name + ".jsonl"), os.path.join(edir, name + ".jsonl"))
        shortest(os.path.join(EVAL, "mmlu_dev.jsonl"), os.path.join(edir, "mmlu_dev.jsonl"), in_subject, n=None, pool=None)

        t0 = time.time()
        out = os.path.join(tmp, "jet.json")
        p = jet("eval", "--model", GGUF, "--tasks", ",".join(TASKS), "--eval-dir", edir, "--json", out)
        if not check(p.returncode == 0, f"jet eval ran: {p.stderr.strip().splitlines()[-1:] if p.returncode else ''}"):
            check.finish("test_benchmarks")
        mine = json.load(open(out))["models"][0]["metrics"]
        print(f"jet eval: {time.time() - t0:.1f} s")

        t0 = time.time()
        hf = os.path.join(tmp, "hf")
        p = jet("convert", "--model", GGUF, "--out", hf)
        check(p.returncode == 0, "jet convert")
        ydir = os.path.join(tmp, "yaml")
        os.makedirs(ydir)
        write_yamls(ydir, edir)
        logging.disable(logging.WARNING)
        import lm_eval
        from lm_eval.tasks import TaskManager
        lm = shared_context_hf()(pretrained=hf, dtype="float32", device="cpu")
        res = lm_eval.simple_evaluate(model=lm, tasks=["jet_" + t for t in TASKS], log_samples=True,
                                      task_manager=TaskManager(include_path=ydir, include_defaults=False),
                                      bootstrap_iters=0)
        print(f"lm-eval with HF: {time.time() - t0:.1f} s")
        for name in TASKS:
            samples = sorted(res["samples"]["jet_" + name], key=lambda s: s["doc_id"])
            m = mine[name]
            n = N_MMLU if name == "mmlu" else N
            check(len(samples) == n == m["items"], f"{name}: {len(samples)} harness / {m['items']} jet items")
            worst, same, same_norm, choices = 0.0, True, True, True
            for i, s in enumerate(samples):
                ll = [r[0][0] for r in s["resps"]]
                choices &= len(ll) == len(m["ll"][i])
                worst = max([worst] + [abs(a - b) for a, b in zip(ll, m["ll"][i])])
                same &= s["acc"] == m["correct"][i]
                if "acc_norm" in s:
                    same_norm &= s["acc_norm"] == m["correct_norm"][i]
            check(choices, f"{name}: every item has as many choices in jet as in the harness")
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
