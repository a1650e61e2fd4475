"""Two classify caps side by side on the same held-out demo tickets against the running local server: tokens per
prompt (the server's /extras/tokenize/count), latency, accuracy per field and an exact McNemar test.

`python cap_eval.py PORT N OUT.jsonl` from the repository root (HF_HUB_OFFLINE=1). The held-out rows are those of
`triage eval llm` (evals/llm_evidence.py: test share 0.2, seed 42, at most N); few-shot examples come from the
training rows only. The caps run in turn per ticket, their order alternating, on one server."""

import json
import os
import statistics
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from agents.llm.classify import Example, ExampleBank, LlmLabeller
from agents.llm.client import OpenAICompatibleChat
from agents.redact import prepare
from agents.settings import DEMO_TICKETS, Settings
from agents.similar import TicketMemory
from evals.llm_eval import label_fields
from evals.llm_evidence import SplitOptions, knowledge, load_labelled, split_table
from evals.mcnemar import PairedCounts
from retrieval.factory import make_embedder

PORT, N, OUT = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
BASE = f"http://127.0.0.1:{PORT}"
MODEL = os.environ.get("CAP_MODEL", "qwen2.5-1.5b")
CAPS: dict[str, dict[str, Any]] = {
    "now 3x220 2sop": dict(max_examples=3, example_chars=220, max_sops=2, sop_chars=160),
    "capped 2x160 1sop": dict(max_examples=2, example_chars=160, max_sops=1, sop_chars=160),
}
COUNTED_ONLY: dict[str, dict[str, Any]] = {  # tokens only, no call
    "2x160 0sop": dict(max_examples=2, example_chars=160, max_sops=0, sop_chars=160),
    "2x120 1sop x120": dict(max_examples=2, example_chars=120, max_sops=1, sop_chars=120),
}


def chatml(messages):
    return "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages) + "<|im_start|>assistant\n"


def count(text):
    body = json.dumps({"input": text, "model": MODEL}).encode()
    req = urllib.request.Request(BASE + "/extras/tokenize/count", body, {"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(req, timeout=600))["count"]


settings = Settings()
table, stratify, _ = load_labelled(DEMO_TICKETS)
train, test = split_table(table, stratify, SplitOptions(test_size=0.2, seed=42, max_test=N))
embedder = make_embedder(settings.embedder, settings.embed_precision)
kb, searcher = knowledge(settings, embedder)
vectors = embedder.embed([t or " " for t in train.texts])
memory = TicketMemory(embedder.dim)
ids = [f"train-{i}" for i in range(len(train))]
memory.add(vectors, [{"id": i} for i in ids])
bank = ExampleBank(
    Example(id=i, text=t, labels={f: train.labels[f][n] for f in train.labels})
    for n, (i, t) in enumerate(zip(ids, train.texts, strict=True))
)
fields = [f for f in label_fields(train.labels, kb) if f.name in ("category", "priority")]
chat = OpenAICompatibleChat(MODEL, base_url=BASE + "/v1", llm_timeout=300)
chat.mode_ = "json_object"  # llama-cpp-python refuses json_schema
labellers = {name: LlmLabeller(chat, fields, **caps) for name, caps in CAPS.items()}
names = list(CAPS)
rows = []
for i, text in enumerate(test.texts):
    vector = embedder.embed([text or " "])[0]
    examples = bank.for_neighbours(memory.search(vector, 5), 3)
    hits = searcher.search(text, k=3, vector=vector) if searcher else []
    order = names if i % 2 == 0 else names[::-1]
    for name, caps in COUNTED_ONLY.items():
        other = LlmLabeller(chat, fields, **caps)
        n_tokens = count(chatml(other.messages(prepare(text, other.redactor), examples, hits)))
        rows.append({"ticket": i, "cap": name, "tokens": n_tokens, "counted_only": True})
    for name in order:
        labeller = labellers[name]
        messages = labeller.messages(prepare(text, labeller.redactor), examples, hits)
        tokens = count(chatml(messages))
        started = time.perf_counter()
        try:
            out = labeller.label(text, examples, hits)
            labels, error, calls = out.labels, None, out.calls
        except Exception as exc:  # noqa: BLE001 - a failure is scored as a wrong label
            labels, error, calls = {}, f"{type(exc).__name__}: {exc}"[:200], []
        entry = {
            "ticket": i,
            "cap": name,
            "tokens": tokens,
            "usage_prompt_tokens": calls[0].prompt_tokens if calls else None,
            "latency_s": round(time.perf_counter() - started, 2),
            "calls": len(calls),
            "labels": labels,
            "truth": {f.name: test.labels[f.name][i] for f in fields},
            "error": error,
            "load1": round(os.getloadavg()[0], 2),
        }
        rows.append(entry)
        print(json.dumps(entry), flush=True)
OUT.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
summary = {}
for name in COUNTED_ONLY:
    mine = [r["tokens"] for r in rows if r["cap"] == name]
    summary[name] = {"n": len(mine), "tokens_median": statistics.median(mine), "tokens_max": max(mine)}
for name in names:
    mine = [r for r in rows if r["cap"] == name]
    summary[name] = {
        "n": len(mine),
        "tokens_median": statistics.median(r["tokens"] for r in mine),
        "tokens_max": max(r["tokens"] for r in mine),
        "latency_s_median": statistics.median(r["latency_s"] for r in mine),
        "latency_s_max": max(r["latency_s"] for r in mine),
        "within_20s": sum(r["latency_s"] <= 20 for r in mine),
        "failed": sum(r["error"] is not None for r in mine),
        "load1_median": statistics.median(r["load1"] for r in mine),
    }
    for f in fields:
        summary[name][f"{f.name}_accuracy"] = round(
            sum(r["labels"].get(f.name) == r["truth"][f.name] for r in mine) / len(mine), 3
        )
for f in fields:
    truth = [r["truth"][f.name] for r in rows if r["cap"] == names[0]]
    first = [r["labels"].get(f.name, "<failed>") for r in rows if r["cap"] == names[0]]
    second = [r["labels"].get(f.name, "<failed>") for r in rows if r["cap"] == names[1]]
    counts = PairedCounts.of(truth, first, second)
    changed = sum(a != b for a, b in zip(first, second, strict=True))
    summary[f"mcnemar {f.name}"] = {"changed": changed, "broken": counts.b, "fixed": counts.c, "p": counts.p_value}
print(json.dumps(summary, indent=1))
