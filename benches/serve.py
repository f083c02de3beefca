"""Benchmark `ponder serve`: aggregate generated tokens/s of 16 concurrent best-of-4
requests against the same 16 sent one after another, on one server, in one run.

    python3 benches/serve.py [--ponder target/release/ponder] [--model smollm2] [--requests 16]

Starts the server itself (on a free loopback port), prints both rates and their ratio.
Not a test: nothing is asserted; the numbers depend on the machine.
"""
import argparse
import concurrent.futures as cf
import subprocess
import time

import openai

ap = argparse.ArgumentParser()
ap.add_argument("--ponder", default="target/release/ponder")
ap.add_argument("--model", default="smollm2")
ap.add_argument("--requests", type=int, default=16)
ap.add_argument("--n", type=int, default=4, help="best-of-N samples per request")
ap.add_argument("--max-tokens", type=int, default=64)
ap.add_argument("--threads", type=int, default=None, help="compute threads (default: all cores)")
a = ap.parse_args()

cmd = [a.ponder, "serve", "--model", a.model, "--port", "0", "--parallel", str(a.requests),
       "--max-sequences", str(a.n), "--max-tokens", str(a.max_tokens)]
if a.threads:
    cmd += ["--threads", str(a.threads)]
srv = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
try:
    line = srv.stdout.readline()
    base = line.strip().rsplit(" ", 1)[-1]
    client = openai.OpenAI(base_url=base + "/v1", api_key="none", max_retries=0, timeout=600)
    questions = [f"A shop sells {i + 2} apples for {3 * i + 5} dollars. How much do {2 * i + 4} apples cost?"
                 for i in range(a.requests)]

    def ask(q):
        r = client.chat.completions.create(
            model="best-of-n", messages=[{"role": "user", "content": q}],
            max_tokens=a.max_tokens, seed=0, extra_body={"ponder": {"n": a.n}})
        return r.usage.completion_tokens

    ask("warm up")  # first decode calls allocate buffers
    t = time.perf_counter()
    seq_tokens = sum(ask(q) for q in questions)
    seq_s = time.perf_counter() - t
    t = time.perf_counter()
    with cf.ThreadPoolExecutor(a.requests) as ex:
        conc_tokens = sum(ex.map(ask, questions))
    conc_s = time.perf_counter() - t
    seq_rate, conc_rate = seq_tokens / seq_s, conc_tokens / conc_s
    print(f"one after another: {seq_tokens} generated tokens in {seq_s:.1f} s = {seq_rate:.1f} tok/s")
    print(f"{a.requests} concurrent:     {conc_tokens} generated tokens in {conc_s:.1f} s = {conc_rate:.1f} tok/s")
    print(f"ratio (concurrent / one after another): {conc_rate / seq_rate:.2f}x")
finally:
    srv.terminate()
    srv.wait(timeout=60)
