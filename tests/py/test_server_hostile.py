# labels: fast
"""`jet serve` against hostile and unusual clients, over loopback, on the tiny model of test_server.py.
Every wait is bounded (the whole file runs in well under a minute):
- 200 idle connections plus 20 slow-header clients (one byte at a time): /health and a completion still
  answer within 2 s; the slow ones are cut after --request-timeout; a slow body too;
- bodies: a chunked flood past the cap gets 413 (memory stays flat), a chunked body under it is served,
  Expect: 100-continue is honoured; malformed requests get 400 and the server carries on;
- pipelined HTTP/1.1 requests on one connection get one answer each, in order; an HTTP/1.0 client gets a
  close-delimited stream (not chunked); numeric abuse (max_tokens near 2^63, temperature 1e308) gets 400;
- disconnects mid-header, mid-body and right after the request leave the server serving; a non-streamed
  request whose client leaves stops generating;
- full: past --max-connections the longest-waiting connection makes room; past --max-queue: 503;
- SIGTERM with idle and slow connections open exits within 10 s; under 32 concurrent requests every
  client gets a full answer or a 503; past --shutdown-timeout running generations are cut (503 / an
  error event), and the process still exits in time."""
import http.client
import json
import os
import re
import signal
import socket
import sys
import tempfile
import threading
import time

import torch

from data_tiny import Checks
from test_server import Server, make_model

CTX = 512
LONG = 4096  # context of the servers whose generations must overlap


def connect(port, timeout=10):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_until_close(s, limit=30):
    """Everything the server sends until it closes (or limit seconds pass)."""
    out, t0 = b"", time.monotonic()
    while time.monotonic() - t0 < limit:
        try:
            b = s.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            break
        if not b:
            break
        out += b
    return out


def read_response(s, limit=10):
    """Bytes up to the end of one Content-Length response (the connection may stay open)."""
    out, t0 = b"", time.monotonic()
    while time.monotonic() - t0 < limit:
        head, sep, body = out.partition(b"\r\n\r\n")
        while sep and head.startswith(b"HTTP/1.1 100"):
            head, sep, body = body.partition(b"\r\n\r\n")
        m = re.search(rb"content-length: *(\d+)", head.lower()) if sep else None
        if m and len(body) >= int(m.group(1)):
            break
        try:
            b = s.recv(65536)
        except socket.timeout:
            continue
        if not b:
            break
        out += b
    return out


def parse(data):
    """HTTP responses in data: [(status, headers {lower: value}, body bytes)] (Content-Length, chunked,
    or close-delimited for the last)."""
    res = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            break
        lines = head.decode("latin1").split("\r\n")
        status = int(lines[0].split()[1])
        hdr = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
        if status == 100:
            data = rest
            continue
        if "content-length" in hdr:
            n = int(hdr["content-length"])
            body, data = rest[:n], rest[n:]
        elif hdr.get("transfer-encoding") == "chunked":
            body = b""
            while True:
                size_line, _, rest = rest.partition(b"\r\n")
                n = int(size_line.split(b";")[0], 16)
                body, rest = body + rest[:n], rest[n + 2:]
                if n == 0:
                    break
            data = rest
        else:
            body, data = rest, b""
        res.append((status, hdr, body))
    return res


def post(path, body, version="1.1", extra=""):
    b = json.dumps(body).encode()
    return (f"POST {path} HTTP/{version}\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(b)}\r\n"
            f"{extra}\r\n").encode() + b


def timed_get(port, path="/health", timeout=10):
    t0 = time.monotonic()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        r.read()
        return r.status, time.monotonic() - t0
    except (OSError, http.client.HTTPException) as e:
        return repr(e), time.monotonic() - t0
    finally:
        c.close()


def timed_complete(port, timeout=10, **kw):
    t0 = time.monotonic()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("POST", "/v1/completions", body=json.dumps(dict(dict(prompt="the quick brown fox", max_tokens=8,
                                                                        temperature=0), **kw)))
        r = c.getresponse()
        return r.status, json.loads(r.read()), time.monotonic() - t0
    except (OSError, http.client.HTTPException, ValueError) as e:
        return repr(e), None, time.monotonic() - t0
    finally:
        c.close()


def count_closed(socks, wait):
    """How many of the (silent) sockets the server has closed; closes them all."""
    closed = 0
    for s in socks:
        s.settimeout(wait)
        try:
            closed += s.recv(1) == b""
        except (socket.timeout, OSError):
            pass
        s.close()
    return closed


def rss_mb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Slow(threading.Thread):
    """Sends data one byte per `gap` seconds until the server closes the connection or stop is set;
    records when the server closed it."""

    def __init__(self, port, data, gap, stop, prefix=b""):
        super().__init__(daemon=True)
        self.sock, self.data, self.gap, self.stop = connect(port), data, gap, stop
        self.closed_after, self.t0, self.reply = None, time.monotonic(), b""
        self.sock.sendall(prefix)

    def run(self):
        self.sock.settimeout(self.gap)
        for i in range(len(self.data)):
            if self.stop.is_set():
                break
            try:
                self.sock.send(self.data[i:i + 1])
                b = self.sock.recv(4096)
                self.reply += b
                if not b:
                    self.closed_after = time.monotonic() - self.t0
                    break
            except socket.timeout:
                continue
            except OSError:
                self.closed_after = time.monotonic() - self.t0
                break
        self.sock.close()


def main():
    torch.set_num_threads(2)
    check = Checks()
    with tempfile.TemporaryDirectory() as tmp:
        model, _ = make_model(tmp)
        common = ["--ctx-size", CTX, "--threads", 1]
        srv = Server(model, "--max-batch", 4, "--request-timeout", 3, *common)
        port = srv.port
        stop = threading.Event()
        idle = []
        try:
            # 1. 200 idle connections and 20 slow-header clients (as many as would fill a thread pool).
            idle = [connect(port) for _ in range(200)]
            slow_head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200 + b"\r\n\r\n"
            slow = [Slow(port, slow_head, 0.2, stop) for _ in range(20)]
            for s in slow:
                s.start()
            time.sleep(0.5)
            st, dt = timed_get(port)
            st2, r, dt2 = timed_complete(port)
            check(st == 200 and dt < 2 and st2 == 200 and r["usage"]["completion_tokens"] > 0 and dt2 < 2,
                  f"200 idle + 20 slow-header connections: /health {st} in {dt:.2f} s, completion {st2} in {dt2:.2f} s")
            # A slow body (Content-Length 400, a byte at a time).
            req = post("/v1/completions", {"prompt": "x" * 300})
            cut_at = req.index(b"\r\n\r\n") + 4  # the header at once, then the body a byte at a time
            slow_body = Slow(port, req[cut_at:], 0.2, stop, prefix=req[:cut_at])
            slow_body.start()
            for s in slow + [slow_body]:
                s.join(8)
            cut = [s.closed_after for s in slow + [slow_body]]
            check(all(c is not None and 2.5 < c < 6 for c in cut),
                  f"slow header / body clients are cut after --request-timeout 3: "
                  f"{sorted(round(c, 1) if c else None for c in cut)[:: max(1, len(cut) - 1)]} s")
            # The idle ones were closed by the same timeout; the server answers again at once.
            closed = count_closed(idle, 0.01)
            idle = []
            st, dt = timed_get(port)
            check(closed == 200 and st == 200 and dt < 1, f"idle connections closed after the timeout ({closed}/200)")

            # 2. Bodies: a chunked flood past the 16 MiB cap -> 413, memory flat; a small chunked body is served.
            rss0 = rss_mb(srv.p.pid)
            s = connect(port, timeout=20)
            s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            piece = b"100000\r\n" + b"a" * 0x100000 + b"\r\n"
            sent = 0
            try:
                for _ in range(64):
                    s.sendall(piece)
                    sent += 1
            except OSError:
                pass
            got = parse(read_until_close(s, 10))
            s.close()
            rss1 = rss_mb(srv.p.pid)
            check(got and got[0][0] == 413 and rss1 - rss0 < 200,
                  f"a chunked flood ({sent} MiB sent) -> {got[0][0] if got else None}, RSS {rss0:.0f} -> {rss1:.0f} MB")
            s = connect(port)
            body = json.dumps({"prompt": "the quick brown fox", "max_tokens": 4, "temperature": 0}).encode()
            s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                      + b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 7]), body[i:i + 7]) for i in range(0, len(body), 7))
                      + b"0\r\n\r\n")
            got = parse(read_until_close(s))
            s.close()
            check(got and got[0][0] == 200 and json.loads(got[0][2])["usage"]["completion_tokens"] == 4,
                  "a chunked body under the cap is served")
            s = connect(port)
            s.sendall(post("/v1/completions", {"prompt": "a b", "max_tokens": 2}, extra="Expect: 100-continue\r\n")
                      .split(b"\r\n\r\n")[0] + b"\r\n\r\n")
            first = s.recv(100)
            s.sendall(json.dumps({"prompt": "a b", "max_tokens": 2}).encode())
            rest = read_response(s)
            s.close()
            check(first.startswith(b"HTTP/1.1 100") and parse(first + rest)[0][0] == 200,
                  f"Expect: 100-continue -> {first[:25]!r}, then 200")
            bad = [b"GARBAGE\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"POST /v1/completions HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
                   b"GET /health HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 100000 + b"\r\n\r\n"]
            codes = []
            for raw in bad:
                s = connect(port)
                s.sendall(raw)
                got = parse(read_until_close(s, 5))
                codes.append(got[0][0] if got else None)
                s.close()
            check(codes == [400, 400, 400, 431], f"malformed requests -> {codes}")

            # 3. Pipelining, HTTP/1.0, numeric abuse.
            s = connect(port)
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n" + post("/v1/completions", {"prompt": "a b", "max_tokens": 3,
                                                                                           "temperature": 0})
                      + b"GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            got = parse(read_until_close(s))
            s.close()
            check([g[0] for g in got] == [200, 200, 200] and b"slots" in got[0][2] and b"usage" in got[1][2]
                  and b"max_model_len" in got[2][2], f"3 pipelined requests -> {len(got)} answers in order")
            s = connect(port)
            s.sendall(post("/v1/completions", {"prompt": "a b", "max_tokens": 5, "temperature": 0, "stream": True},
                           version="1.0"))
            data = read_until_close(s)
            s.close()
            head, _, body = data.partition(b"\r\n\r\n")
            status_line = head.split(b"\r\n")[0]
            check(status_line.startswith(b"HTTP/1.") and b" 200 " in status_line and b"chunked" not in head.lower()
                  and body.startswith(b"data: {") and body.endswith(b"data: [DONE]\n\n"),
                  f"HTTP/1.0 stream: close-delimited SSE, not chunked ({status_line!r})")
            answers = []
            for body in ({"prompt": "a b", "max_tokens": 2 ** 63 - 1}, {"prompt": "a b", "max_tokens": 2 ** 63 - 2},
                         {"prompt": "a b", "temperature": 1e308}, {"prompt": "a b", "temperature": 1e400},
                         {"prompt": "a b", "max_tokens": 2 ** 64 - 1}, {"prompt": "a b", "top_k": 2 ** 63 - 1, "max_tokens": 2}):
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                c.request("POST", "/v1/completions", body=json.dumps(body).replace("Infinity", "1e400"))
                r = c.getresponse()
                answers.append(r.status)
                r.read()
                c.close()
            check(answers == [400, 400, 400, 400, 400, 200],
                  f"max_tokens 2^63-1 / 2^63-2 / 2^64-1, temperature 1e308 / 1e400, huge top_k -> {answers}")

            # 4. Disconnects: mid-header, mid-body, right after a (long) request; the server carries on.
            for raw in (b"GET /hea", post("/v1/completions", {"prompt": "x" * 50})[:-20],
                        post("/v1/completions", {"prompt": "a b", "max_tokens": 200, "temperature": 0})):
                s = connect(port)
                s.sendall(raw)
                s.close()
            s = connect(port)
            s.sendall(post("/v1/completions", {"prompt": "a b", "max_tokens": 200, "temperature": 0, "stream": True}))
            s.recv(10)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # reset
            s.close()
            st, dt = timed_get(port)
            st2, r, _ = timed_complete(port)
            check(st == 200 and st2 == 200, f"after 4 disconnecting clients: /health {st}, completion {st2}")

            # 5. SIGTERM with 100 idle and 10 slow connections open: exits (0) well within 10 s.
            idle = [connect(port) for _ in range(100)]
            slow = [Slow(port, slow_head, 0.2, stop) for _ in range(10)]
            for s in slow:
                s.start()
            time.sleep(0.3)
            t0 = time.monotonic()
            srv.p.send_signal(signal.SIGTERM)
            rc = srv.p.wait(15)
            dt = time.monotonic() - t0
            stop.set()
            check(rc == 0 and dt < 10, f"SIGTERM with 100 idle + 10 slow connections: exit {rc} in {dt:.2f} s")
        finally:
            stop.set()
            for s in idle:
                s.close()
            if srv.p.poll() is None:
                srv.p.kill()
                srv.p.wait()

        # 6. Full: --max-connections 8 (the longest-waiting connection makes room), --max-queue 1 (503).
        # (Generations long enough to overlap: this model decodes a token in well under a millisecond.)
        long_ctx = ["--ctx-size", LONG, "--threads", 1]
        srv = Server(model, "--max-batch", 1, "--http-threads", 1, "--max-queue", 1, "--max-connections", 8, *long_ctx)
        try:
            idle = [connect(srv.port) for _ in range(8)]
            time.sleep(0.2)
            st, dt = timed_get(srv.port)
            evicted = count_closed(idle, 0.5)
            check(st == 200 and dt < 2 and evicted >= 1, f"8 idle at --max-connections 8: /health {st} ({evicted} evicted)")
            results = [None] * 3

            def long(i):
                results[i] = timed_complete(srv.port, timeout=30, max_tokens=LONG - 16)[0]
            ts = []
            for i in range(3):  # the first runs, the second waits, the third finds the queue full
                ts.append(threading.Thread(target=long, args=(i,)))
                ts[-1].start()
                time.sleep(0.05)
            for t in ts:
                t.join(30)
            check(sorted(map(str, results)) == ["200", "200", "503"], f"1 worker, --max-queue 1, 3 requests -> {results}")
        finally:
            if srv.p.poll() is None:
                srv.p.kill()
                srv.p.wait()

        # 6b. A non-streamed request whose client leaves stops generating: the slot is free at once (before this
        # was handled it ran on to max_tokens: about 5 s here), and the server carries on.
        srv = Server(model, "--max-batch", 1, "--ctx-size", 16384, "--threads", 1)
        try:
            def live():
                c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
                c.request("GET", "/health")
                n = json.loads(c.getresponse().read())["slots_live"]
                c.close()
                return n
            for label, extra in (("plain", {}), ("with logprobs", {"logprobs": 1})):
                s = connect(srv.port)
                s.sendall(post("/v1/completions", dict({"prompt": "a b", "max_tokens": 16000, "temperature": 0}, **extra)))
                t0 = time.monotonic()
                while not live() and time.monotonic() - t0 < 5:
                    time.sleep(0.01)
                running = live()
                s.close()
                t0 = time.monotonic()
                while live() and time.monotonic() - t0 < 30:
                    time.sleep(0.02)
                dt = time.monotonic() - t0
                st, _, _ = timed_complete(srv.port)
                check(running == 1 and dt < 1.5 and st == 200, f"non-streamed client ({label}) leaves mid-generation: "
                      f"slot free {dt:.2f} s later (running {running}), then {st}")
        finally:
            if srv.p.poll() is None:
                srv.p.kill()
                srv.p.wait()

        # 7. SIGTERM under 32 concurrent requests (half streamed): each gets a full answer or a 503.
        for label, flags in (("default shutdown timeout", []), ("--shutdown-timeout 0.5", ["--shutdown-timeout", 0.5])):
            srv = Server(model, "--max-batch", 4, *flags, *long_ctx)
            max_tokens = LONG // 2
            outcome = [None] * 32

            def client(i):
                body = dict(prompt="the quick brown fox", max_tokens=max_tokens, temperature=0, stream=i % 2 == 1)
                try:
                    s = connect(srv.port, timeout=30)
                    s.sendall(post("/v1/completions", body, extra="Connection: close\r\n"))
                    got = parse(read_until_close(s))
                    s.close()
                except OSError as e:
                    outcome[i] = f"error {e!r}"
                    return
                if not got:
                    outcome[i] = "no answer"
                elif got[0][0] == 503:
                    outcome[i] = "503"
                elif got[0][0] == 200 and i % 2 == 0:
                    outcome[i] = "full" if json.loads(got[0][2])["choices"][0]["finish_reason"] in ("stop", "length") else "bad"
                elif got[0][0] == 200:
                    events = [json.loads(e[6:]) for e in got[0][2].decode().split("\n\n") if e.startswith("data: {")]
                    done = got[0][2].endswith(b"data: [DONE]\n\n")
                    fin = [e["choices"][0]["finish_reason"] for e in events if e.get("choices")]
                    outcome[i] = ("full" if done and fin and fin[-1] in ("stop", "length") else
                                  "503 event" if done and events and events[-1].get("error") else "cut")
                else:
                    outcome[i] = f"status {got[0][0]}"
            ts = [threading.Thread(target=client, args=(i,)) for i in range(32)]
            for t in ts:
                t.start()
            time.sleep(0.5)
            t0 = time.monotonic()
            srv.p.send_signal(signal.SIGTERM)
            try:
                rc = srv.p.wait(15)
            except Exception:
                rc = "still running"
            dt = time.monotonic() - t0
            for t in ts:
                t.join(20)
            kinds = {k: outcome.count(k) for k in sorted(set(map(str, outcome)))}
            ok = all(o in ("full", "503", "503 event") for o in outcome)
            check(ok and rc == 0 and dt < 10, f"SIGTERM under 32 requests ({label}): {kinds}, exit {rc} in {dt:.2f} s")
            if srv.p.poll() is None:
                srv.p.kill()
                srv.p.wait()
    print("PASS" if check.ok else "FAIL")
    sys.exit(0 if check.ok else 1)


if __name__ == "__main__":
    main()
