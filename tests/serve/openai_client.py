"""Drive a running `ponder serve` with the official `openai` Python client.

Usage: python3 openai_client.py BASE_URL API_KEY MODEL_ID
Exits 0 after every check passed; an AssertionError (with what was seen) otherwise.
"""
import sys

import httpx
import openai

base, key, model_id = sys.argv[1], sys.argv[2], sys.argv[3]
client = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0, timeout=300)
Q = [{"role": "user", "content": "What is 12 + 30?"}]
checks = 0


def check(cond, what, seen=None):
    global checks
    assert cond, f"{what}: {seen!r}"
    checks += 1


def ponder_of(obj):
    return (obj.model_extra or {}).get("ponder")


def usage_adds_up(r):
    u = r.usage
    check(u.total_tokens == u.prompt_tokens + u.completion_tokens, "total = prompt + completion", u)
    check(u.prompt_tokens > 0, "prompt tokens counted", u)
    p = ponder_of(r)
    generated = sum(c["tokens"] for c in p["candidates"])
    check(u.completion_tokens == generated, "completion tokens = every candidate's tokens", (u, p["candidates"]))
    check(p["stats"]["prompt_tokens"] == u.prompt_tokens, "usage is the policy's stats", p["stats"])


# /v1/models: the plain model and every strategy.
ids = [m.id for m in client.models.list()]
for want in [model_id, "greedy", "best-of-n", "beam", "mcts"]:
    check(want in ids, f"/v1/models lists {want}", ids)

# Chat, the plain model: greedy.
r = client.chat.completions.create(
    model=model_id,
    messages=[{"role": "system", "content": "Answer briefly."}] + Q,
    max_tokens=24,
)
check(r.object == "chat.completion", "object", r.object)
check(len(r.choices) == 1, "one choice", r.choices)
c0 = r.choices[0]
check(c0.message.role == "assistant" and c0.message.content.strip(), "nonempty assistant message", c0)
check(c0.finish_reason in ("stop", "length"), "finish_reason", c0.finish_reason)
check(ponder_of(r)["strategy"] == "greedy", "the plain model is greedy", ponder_of(r))
if c0.finish_reason == "length":
    check(r.usage.completion_tokens == 24, "length means max_tokens reached", r.usage)
usage_adds_up(r)

# Multi-turn: earlier turns are part of the prompt (more prompt tokens).
r2 = client.chat.completions.create(
    model=model_id,
    messages=[
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Remember the number 7."},
        {"role": "assistant", "content": "I will remember 7."},
    ] + Q,
    max_tokens=8,
)
check(r2.usage.prompt_tokens > r.usage.prompt_tokens, "history adds prompt tokens", (r2.usage, r.usage))

# A strategy by name, settings in the ponder object, n > 1 choices.
r = client.chat.completions.create(
    model="best-of-n:mine",
    messages=Q,
    max_tokens=24,
    n=3,
    seed=5,
    extra_body={"ponder": {"n": 4, "scorer": "verifier"}, "user": "t", "some_unknown_field": {"x": 1}},
)
p = ponder_of(r)
check(r.model == "best-of-n:mine", "model echoed", r.model)
check(p["strategy"] == "best-of-n" and p["run"].startswith("best-of-4"), "ponder.n set N", p)
check(len(p["candidates"]) == 4, "four candidates", p["candidates"])
check(1 <= len(r.choices) <= 3, "up to n choices", r.choices)
texts = [c.message.content.strip() for c in r.choices]
check(len(set(texts)) == len(texts), "choices are distinct", texts)
check([c.index for c in r.choices] == list(range(len(r.choices))), "indices", r.choices)
for c in r.choices:
    check(c.finish_reason in ("stop", "length"), "finish_reason", c.finish_reason)
usage_adds_up(r)

# Plain sampling: the plain model with temperature and n.
r = client.chat.completions.create(model=model_id, messages=Q, max_tokens=16, temperature=0.9, n=2, seed=1)
check(ponder_of(r)["strategy"] == "best-of-n" and len(ponder_of(r)["candidates"]) == 2, "n samples", ponder_of(r))
usage_adds_up(r)

# Completions: the text continued as it is.
r = client.completions.create(model=model_id, prompt="The capital of France is", max_tokens=8)
check(r.object == "text_completion", "object", r.object)
check(r.choices[0].text.strip(), "nonempty text", r.choices)
check(r.choices[0].finish_reason in ("stop", "length"), "finish_reason", r.choices[0].finish_reason)
check(r.usage.completion_tokens <= 8, "at most max_tokens", r.usage)
usage_adds_up(r)

# Streaming: progress chunks, then deltas that add up to the same answer as without
# streaming (same seed), the finish reason, the usage chunk.
kw = dict(model="best-of-n", messages=Q, max_tokens=48, seed=3, extra_body={"ponder": {"n": 4}})
whole = client.chat.completions.create(**kw)
stream = client.chat.completions.create(**kw, stream=True, stream_options={"include_usage": True})
content, progress, finish, usage, roles = "", 0, None, None, []
for chunk in stream:
    check(chunk.object == "chat.completion.chunk", "chunk object", chunk.object)
    extra = ponder_of(chunk) or {}
    if "progress" in extra:
        progress += 1
    if chunk.usage is not None:
        usage = chunk.usage
    for ch in chunk.choices:
        if ch.delta.role:
            roles.append(ch.delta.role)
        content += ch.delta.content or ""
        finish = ch.finish_reason or finish
check(progress >= 1, "progress while the search ran", progress)
check(roles == ["assistant"], "one role delta", roles)
check(content == whole.choices[0].message.content, "streamed = whole", (content, whole.choices[0].message.content))
check(finish == whole.choices[0].finish_reason, "finish reason", finish)
check(usage is not None and usage.completion_tokens == whole.usage.completion_tokens, "usage chunk", usage)

# Streaming completions.
text = ""
for chunk in client.completions.create(model=model_id, prompt="1, 2, 3, 4,", max_tokens=8, stream=True):
    for ch in chunk.choices:
        text += ch.text
check(text.strip(), "streamed completion text", text)


# Errors: the right status, OpenAI's error object, messages that say what is wrong.
def fails(exc, status, must_contain, **kw):
    args = dict(model=model_id, messages=Q, max_tokens=8)
    args.update(kw)
    try:
        client.chat.completions.create(**args)
    except exc as e:
        check(e.status_code == status, f"status {status}", (e.status_code, e.message))
        body = e.body if isinstance(e.body, dict) else {}
        check(set(["message", "type", "param", "code"]) <= set(body), "error object fields", e.body)
        for s in must_contain:
            check(s in e.message, f"message mentions {s!r}", e.message)
        return body
    raise AssertionError(f"no error for {kw}")


fails(openai.BadRequestError, 400, ["no-such-strategy", "best-of-n", "mcts", model_id], model="no-such-strategy")
fails(openai.BadRequestError, 400, ["beam", "unknown setting `nonsense`"], model="beam", extra_body={"ponder": {"set": {"nonsense": 1}}})
fails(openai.BadRequestError, 400, ["n is 999"], n=999)
b = fails(openai.BadRequestError, 400, ["max_tokens is 100000"], max_tokens=100000)
check(b["param"] == "max_tokens", "param names the field", b)
fails(openai.BadRequestError, 400, ["messages is empty"], messages=[])
b = fails(openai.BadRequestError, 400, ["context"], messages=[{"role": "user", "content": "word " * 12000}])
check(b["code"] == "context_length_exceeded", "code", b)
fails(openai.BadRequestError, 400, ["ponder.n is 0"], model="best-of-n", extra_body={"ponder": {"n": 0}})

# Malformed JSON (the client cannot send it; httpx, the client's own transport, can).
resp = httpx.post(base + "/v1/chat/completions", content=b"{not json", headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
check(resp.status_code == 400 and resp.json()["error"]["code"] == "invalid_json", "malformed JSON", resp.text)

# A wrong API key, and none.
for bad in ["wrong-key", ""]:
    try:
        openai.OpenAI(base_url=base + "/v1", api_key=bad or "x", max_retries=0).models.list() if bad else httpx.get(base + "/v1/models").raise_for_status()
        raise AssertionError("no error without the right key")
    except openai.AuthenticationError as e:
        check(e.status_code == 401, "401", e.status_code)
    except httpx.HTTPStatusError as e:
        check(e.response.status_code == 401, "401 without a key", e.response.status_code)

print(f"ok: {checks} checks")
