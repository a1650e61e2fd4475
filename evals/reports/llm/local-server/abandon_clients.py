"""The service's client before and after streaming, side by side: a long call it abandons at its deadline, then at
once a short request, timed from send to answer (how long the next ticket waits).

`python abandon_clients.py PORT TRIALS OLD_CLIENT.py` from the repository root; OLD_CLIENT.py is the module before
the change (`git show 46e88d2:agents/llm/client.py > /tmp/old_client.py`). Each trial waits for an idle server,
then runs both clients, in alternating order."""

import importlib.util
import json
import os
import statistics
import sys
import time
import urllib.request
from typing import Any

from agents.errors import BackendUnavailable
from agents.llm.client import OpenAICompatibleChat
from agents.types import Deadline

PORT, TRIALS, OLD = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
BASE = f"http://127.0.0.1:{PORT}/v1"
MODEL = "qwen2.5-1.5b"
DEADLINE_S = 5.0
LONG_ASK = "Write a detailed guide of forty numbered steps for setting up a new laptop for an employee."
spec = importlib.util.spec_from_file_location("old_client", OLD)
assert spec is not None and spec.loader is not None, f"cannot load {OLD}"
old = importlib.util.module_from_spec(spec)
spec.loader.exec_module(old)
CLIENTS = {
    "old (non-streamed)": old.OpenAICompatibleChat(MODEL, base_url=BASE, llm_timeout=DEADLINE_S, max_tokens=300),
    "new (streamed)": OpenAICompatibleChat(MODEL, base_url=BASE, llm_timeout=DEADLINE_S, max_tokens=300),
}


def post(content, max_tokens):
    body = {
        "model": MODEL,
        "temperature": 0,
        "max_tokens": max_tokens,
        "messages": [
            {"role": "system", "content": f"Session {os.urandom(6).hex()}."},
            {"role": "user", "content": content},
        ],
    }
    req = urllib.request.Request(
        BASE + "/chat/completions", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    return json.load(urllib.request.urlopen(req, timeout=600))


def idle():
    while True:
        started = time.perf_counter()
        urllib.request.urlopen(BASE + "/models", timeout=600).read()
        if time.perf_counter() - started < 0.5:
            return
        time.sleep(1)


def trial(chat):
    messages = [
        {"role": "system", "content": f"Session {os.urandom(6).hex()}."},
        {"role": "user", "content": LONG_ASK},
    ]
    started = time.perf_counter()
    try:
        chat.complete(messages, deadline=Deadline.after(DEADLINE_S))
        outcome = "answered"
    except BackendUnavailable as exc:
        outcome = exc.reason[:80]
    gave_up = time.perf_counter() - started
    started = time.perf_counter()
    post("Say OK.", 2)
    return {"gave_up_s": round(gave_up, 2), "outcome": outcome, "next_s": round(time.perf_counter() - started, 2)}


rows: dict[str, list[dict[str, Any]]] = {name: [] for name in CLIENTS}
for t in range(TRIALS):
    names = list(CLIENTS) if t % 2 == 0 else list(CLIENTS)[::-1]
    for name in names:
        idle()
        baseline_started = time.perf_counter()
        post("Say OK.", 2)
        baseline = round(time.perf_counter() - baseline_started, 2)
        idle()
        row = {"trial": t, "client": name, "baseline_s": baseline, **trial(CLIENTS[name]), "load1": os.getloadavg()[0]}
        rows[name].append(row)
        print(json.dumps(row), flush=True)
for name, mine in rows.items():
    print(
        json.dumps(
            {
                "client": name,
                "n": len(mine),
                "baseline_s_median": statistics.median(r["baseline_s"] for r in mine),
                "gave_up_s_median": statistics.median(r["gave_up_s"] for r in mine),
                "next_s_median": statistics.median(r["next_s"] for r in mine),
                "next_s_range": [min(r["next_s"] for r in mine), max(r["next_s"] for r in mine)],
                "load1_median": statistics.median(r["load1"] for r in mine),
            }
        )
    )
