# labels: fast
"""`jet serve` through the real binary on a tiny random Qwen2 model with a ChatML tokenizer trained
here, over loopback only: greedy completions (text prompts, token-id prompts, chat) equal `jet generate
--temperature 0`; 6 concurrent requests with --max-batch 4 each equal their single-request output, a
seeded sampled request included (batching changes no result); streamed chunks concatenate to the whole
text; stop strings cut the text (finish "stop"), max_tokens ends with "length"; bad requests get a 4xx
OpenAI-style JSON error and the server keeps answering; SIGTERM with a request in flight answers it and
exits 0."""
import http.client
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import Qwen2Config, Qwen2ForCausalLM

from data_tiny import JET, Checks, jet, make_corpus
from hf_tiny import save_random

CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
          "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
PROMPTS = ["the quick brown fox", "seven wizards", "a lazy dog while", "in a small town by the river",
           "then the", "boxing matches ; quietly"]
NEW = 12
CTX = 512


def make_model(tmp):
    corpus = os.path.join(tmp, "corpus")
    make_corpus(corpus, 12, 3)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    files = [os.path.join(r, f) for r, _, fs in os.walk(corpus) for f in fs if f.endswith(".txt")]
    # No byte alphabet beyond the corpus' characters: every token decodes to ASCII, so texts compare exactly.
    tok.train(sorted(files), trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"]))
    d = os.path.join(tmp, "model")
    cfg = Qwen2Config(vocab_size=tok.get_vocab_size(), hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      tie_word_embeddings=True, eos_token_id=2)
    save_random(Qwen2ForCausalLM, cfg, d, seed=5)
    tok.save(os.path.join(d, "tokenizer.json"))
    json.dump({"eos_token": "<|im_end|>", "chat_template": CHATML}, open(os.path.join(d, "tokenizer_config.json"), "w"))
    return d, tok


def reference(model, prompts, chat=False):
    """`jet generate --temperature 0` ids for each prompt (one run each: a batch of one)."""
    out = []
    for p in prompts:
        args = ["generate", "--model", model, "--prompt", p, "--temperature", 0, "--max-new-tokens", NEW,
                "--print-token-ids"] + (["--chat"] if chat else [])
        r = jet(*args)
        if r.returncode != 0:
            sys.exit(f"FAIL: jet generate: {r.stderr}")
        out.append(json.loads(r.stdout.strip().splitlines()[-2]))
    return out


class Server:
    def __init__(self, model, *flags):
        self.p = subprocess.Popen([JET, "serve", "--model", model, "--host", "127.0.0.1", "--port", "0", *map(str, flags)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        ready, _, _ = select.select([self.p.stdout], [], [], 60)
        line = self.p.stdout.readline() if ready else ""  # "... listening on http://127.0.0.1:PORT"
        if "listening on http://127.0.0.1:" not in line:
            self.p.kill()
            sys.exit(f"FAIL: jet serve did not start: {line!r} {self.p.stderr.read()}")
        self.port = int(line.rsplit(":", 1)[1])

    def request(self, method, path, body=None, raw=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        c.request(method, path, body=data, headers={"Content-Type": "application/json"})
        r = c.getresponse()
        text = r.read().decode()
        c.close()
        try:
            return r.status, json.loads(text)
        except json.JSONDecodeError:
            return r.status, text

    def stream(self, path, body, first=None):
        """(chunks, saw [DONE]) of a streamed request, read event by event; first() after the first."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        c.request("POST", path, body=json.dumps(dict(body, stream=True)), headers={"Content-Type": "application/json"})
        r = c.getresponse()
        chunks, done = [], False
        while True:
            line = r.readline().decode()
            if not line:
                break
            if not line.strip():
                continue
            assert line.startswith("data: ") and r.readline() == b"\n", line
            if line.strip() == "data: [DONE]":
                done = True
            else:
                chunks.append(json.loads(line[6:]))
                if first and len(chunks) == 1:
                    first()
        c.close()
        return chunks, done


def expected(tok, ids, stop_ids):
    """The text and finish reason of a reference id list (its stop id ends it and gives no text)."""
    finish = "stop" if ids and ids[-1] in stop_ids else "length"
    return tok.decode(ids, skip_special_tokens=True), finish


def main():
    torch.set_num_threads(2)
    check = Checks()
    with tempfile.TemporaryDirectory() as tmp:
        model, tok = make_model(tmp)
        stop_ids = {tok.token_to_id("<|im_end|>"), tok.token_to_id("<|endoftext|>")}
        refs = reference(model, PROMPTS)
        chat_ref = reference(model, PROMPTS[:1], chat=True)[0]
        srv = Server(model, "--max-batch", 4, "--ctx-size", CTX, "--threads", 1)
        try:
            st, h = srv.request("GET", "/health")
            check(st == 200 and h == {"status": "ok", "slots": 4, "slots_live": 0, "waiting": 0}, f"GET /health -> {st} {h}")
            st, m = srv.request("GET", "/v1/models")
            check(st == 200 and m["data"][0]["id"] == "model", f"GET /v1/models -> {st} {m['data'][0]['id']}")

            # Greedy completions equal jet generate (text and token-id prompts).
            def complete(i, **kw):
                body = dict(prompt=PROMPTS[i], max_tokens=NEW, temperature=0, **kw)
                return srv.request("POST", "/v1/completions", body)
            good = True
            for i, ids in enumerate(refs):
                st, r = complete(i)
                text, finish = expected(tok, ids, stop_ids)
                c = r["choices"][0]
                good &= (st == 200 and c["text"] == text and c["finish_reason"] == finish and
                         r["usage"]["completion_tokens"] == len(ids) and
                         r["usage"]["prompt_tokens"] == len(tok.encode(PROMPTS[i]).ids))
            check(good, f"{len(refs)} greedy completions equal jet generate (text, finish, usage)")
            st, r = srv.request("POST", "/v1/completions",
                                dict(prompt=tok.encode(PROMPTS[0]).ids, max_tokens=NEW, temperature=0))
            check(st == 200 and r["choices"][0]["text"] == expected(tok, refs[0], stop_ids)[0],
                  "a token-id prompt gives the text prompt's completion")
            chat_body = dict(messages=[{"role": "user", "content": PROMPTS[0]}], max_tokens=NEW, temperature=0)
            st, r = srv.request("POST", "/v1/chat/completions", chat_body)
            msg = r["choices"][0]["message"] if st == 200 else {}
            check(st == 200 and msg.get("role") == "assistant" and
                  msg.get("content") == expected(tok, chat_ref, stop_ids)[0] and
                  r["choices"][0]["finish_reason"] == expected(tok, chat_ref, stop_ids)[1],
                  f"chat completion equals jet generate --chat ({len(chat_ref)} tokens)")

            # A seeded sampled request, alone, then among 6 concurrent requests with max batch 4.
            sampled = dict(prompt=PROMPTS[1], max_tokens=NEW, temperature=1.0, top_k=20, top_p=0.9, seed=11)
            _, alone = srv.request("POST", "/v1/completions", sampled)
            _, other_seed = srv.request("POST", "/v1/completions", dict(sampled, seed=12))
            results = [None] * 7

            def worker(i):
                results[i] = complete(i) if i < 6 else srv.request("POST", "/v1/completions", sampled)
            threads = [threading.Thread(target=worker, args=(i,)) for i in range(7)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            good = all(results[i][0] == 200 and results[i][1]["choices"][0]["text"] == expected(tok, refs[i], stop_ids)[0]
                       for i in range(6))
            check(good, "6 concurrent greedy requests (max batch 4) each equal their single-request output")
            check(results[6][0] == 200 and results[6][1]["choices"][0]["text"] == alone["choices"][0]["text"],
                  f"a seeded sampled request gives the same text batched as alone ({alone['choices'][0]['text']!r}; "
                  f"seed 12: {other_seed['choices'][0]['text']!r})")

            # Streaming: the pieces concatenate to the whole text; the last chunk has the finish reason.
            for path, body, key in (("/v1/completions", dict(prompt=PROMPTS[2], max_tokens=NEW, temperature=0), "text"),
                                    ("/v1/chat/completions", chat_body, "content")):
                _, whole = srv.request("POST", path, body)
                chunks, done = srv.stream(path, dict(body, stream_options={"include_usage": True}))
                pieces = [c["choices"][0].get(key) if key == "text" else c["choices"][0]["delta"].get("content", "")
                          for c in chunks if c["choices"]]
                finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
                wc = whole["choices"][0]
                text = wc["text"] if key == "text" else wc["message"]["content"]
                check(done and "".join(pieces) == text and finishes[-1] == wc["finish_reason"] and
                      all(f is None for f in finishes[:-1]) and chunks[-1]["usage"] == whole["usage"],
                      f"{path} stream: {len(chunks)} chunks concatenate to the text, finish {finishes[-1]}, usage, [DONE]")

            # Stop strings: the text ends before the first one (whole and streamed); max_tokens -> length.
            full = next(expected(tok, ids, stop_ids)[0] for ids in refs if len(expected(tok, ids, stop_ids)[0]) >= 8)
            i = next(i for i, ids in enumerate(refs) if expected(tok, ids, stop_ids)[0] == full)
            stop = full[len(full) // 2:len(full) // 2 + 2]
            want = full[:full.find(stop)]
            st, r = complete(i, stop=[stop, "never-there"])
            chunks, _ = srv.stream("/v1/completions", dict(prompt=PROMPTS[i], max_tokens=NEW, temperature=0, stop=stop))
            streamed = "".join(c["choices"][0]["text"] for c in chunks)
            check(st == 200 and r["choices"][0]["text"] == want and r["choices"][0]["finish_reason"] == "stop" and
                  streamed == want and chunks[-1]["choices"][0]["finish_reason"] == "stop",
                  f"stop {stop!r}: {full!r} -> {want!r} (whole and streamed), finish stop")
            j = next(i for i, ids in enumerate(refs) if len(ids) == NEW and not set(ids[:5]) & stop_ids)
            st, r = srv.request("POST", "/v1/completions", dict(prompt=PROMPTS[j], max_tokens=5, temperature=0))
            check(st == 200 and r["choices"][0]["finish_reason"] == "length" and r["usage"]["completion_tokens"] == 5 and
                  r["choices"][0]["text"] == tok.decode(refs[j][:5], skip_special_tokens=True),
                  f"max_tokens 5 -> finish length, 5 completion tokens")

            # Bad requests: 4xx with an OpenAI-style error; the server keeps serving.
            bad = [("/v1/completions", None, "{not json"), ("/v1/completions", [1, 2], None),
                   ("/v1/completions", {"max_tokens": 4}, None),
                   ("/v1/completions", {"prompt": "a", "max_tokens": "4"}, None),
                   ("/v1/completions", {"prompt": "a", "temperature": -1}, None),
                   ("/v1/completions", {"prompt": "a", "top_p": 0}, None),
                   ("/v1/completions", {"prompt": "a", "stop": [1]}, None),
                   ("/v1/completions", {"prompt": [1, "x"]}, None),
                   ("/v1/completions", {"prompt": [10 ** 6]}, None),
                   ("/v1/completions", {"prompt": [5] * CTX}, None),
                   ("/v1/completions", {"prompt": "a b", "max_tokens": CTX}, None),
                   ("/v1/chat/completions", {"messages": "hi"}, None),
                   ("/v1/chat/completions", {"messages": [{"role": "robot", "content": "x"}]}, None),
                   ("/v1/nothing", {"prompt": "a"}, None)]
            answers = [srv.request("POST", path, body, raw) for path, body, raw in bad]
            good = all(400 <= st < 500 and isinstance(e, dict) and isinstance(e["error"]["message"], str) and
                       "type" in e["error"] and "param" in e["error"] and "code" in e["error"] for st, e in answers)
            check(good, f"{len(bad)} bad requests -> {sorted(set(st for st, _ in answers))} with JSON errors, e.g. "
                        f"{answers[9][1]['error']['message']!r}")
            # A streaming client that goes away mid-answer: its sequence is cancelled, the rest carries on.
            sock = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
            body = json.dumps(dict(prompt=PROMPTS[3], max_tokens=CTX - 10, temperature=0, stream=True))
            sock.sendall(f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         f"Content-Length: {len(body)}\r\n\r\n{body}".encode())
            first = sock.recv(64)
            sock.close()
            for _ in range(100):  # the engine frees the slot (at the latest when the 500 tokens are done)
                st, h = srv.request("GET", "/health")
                if h["slots_live"] == 0:
                    break
                time.sleep(0.02)
            st2, r = complete(0)
            check(st == 200 and h["slots_live"] == 0 and st2 == 200 and
                  r["choices"][0]["text"] == expected(tok, refs[0], stop_ids)[0],
                  f"the server still answers /health and completions after them and a dropped stream "
                  f"({first[:15]!r})")

            # SIGTERM with requests in flight (6 streams, max batch 4): each is answered to its end, exit 0. The
            # signal goes once the server holds all 6 (live + waiting: /health), so none is still connecting.
            late, signalled = [None] * 6, []

            def streamer(i):
                late[i] = srv.stream("/v1/completions", dict(prompt=PROMPTS[i], max_tokens=CTX - 12, temperature=0)) + \
                    (time.monotonic(),)
            threads = [threading.Thread(target=streamer, args=(i,)) for i in range(6)]
            for t in threads:
                t.start()
            t0 = time.monotonic()
            while time.monotonic() - t0 < 30:
                st, h = srv.request("GET", "/health")
                if st == 200 and h["slots_live"] + h["waiting"] == 6:
                    break
                time.sleep(0.01)
            signalled.append(time.monotonic())
            srv.p.send_signal(signal.SIGTERM)
            for t in threads:
                t.join(60)
            rc = srv.p.wait(30)
            out = srv.p.stdout.read()
            complete_ = all(r and r[1] and r[0][-1]["choices"][0]["finish_reason"] in ("stop", "length") for r in late)
            check(rc == 0 and complete_ and "stopped" in out,
                  f"SIGTERM with 6 streams in flight -> all answered to the end: {complete_} "
                  f"({sum(r[2] > signalled[0] for r in late if r)} ended after the signal), exit {rc}")
        finally:
            if srv.p.poll() is None:
                srv.p.kill()
                srv.p.wait()
    print("PASS" if check.ok else "FAIL")
    sys.exit(0 if check.ok else 1)


if __name__ == "__main__":
    main()
