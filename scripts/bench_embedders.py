"""Embedding runtimes side by side: one-text latency, batch throughput and cosine to torch float32.

Each runtime is measured in its own process (torch's and onnxruntime's thread pools would otherwise spin
against each other), and the rounds alternate between runtimes so that a noisy neighbour hurts all of them alike.
Medians over rounds are printed as a Markdown table, and written as JSON with --out. Example:

    .venv/bin/python scripts/bench_embedders.py --rounds 2 --out evals/reports/bench/embedders.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "evals" / "data" / "demo_tickets.v1.jsonl"
RUNTIMES = {  # label -> (TRIAGE_EMBEDDER kind, precision)
    "torch bfloat16": ("minilm", "bfloat16"),
    "torch float32": ("minilm", "float32"),
    "onnx float32": ("minilm-onnx", "auto"),
    "onnx int8": ("minilm-int8", "auto"),
}


def texts_of(path: Path) -> list[str]:
    from agents.jsonl import read_jsonl
    from agents.types import ticket_text

    return [ticket_text(row.get("title"), row.get("body")) for row in read_jsonl(path)]


def measure(kind: str, precision: str, data: Path, singles: int, vectors_out: Path) -> dict[str, float]:
    """Run in the child process: load, warm up, time one batch of every text and `singles` one-text calls."""
    from retrieval.factory import make_embedder

    texts = texts_of(data)
    embedder = make_embedder(kind, precision)
    embedder.embed(texts[:8])  # load and warm up
    started = time.perf_counter()
    vectors = embedder.embed(texts)
    batch_s = time.perf_counter() - started
    one = []
    for i in range(singles):
        started = time.perf_counter()
        embedder.embed([texts[(i * 7) % len(texts)]])
        one.append((time.perf_counter() - started) * 1000)
    np.save(vectors_out, vectors)
    return {"single_ms_p50": statistics.median(one), "batch_per_s": len(texts) / batch_s}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEMO, help="JSONL tickets with title and body")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--singles", type=int, default=150, help="one-text calls per round")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)  # kind precision: measure in this process
    parser.add_argument("--vectors", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(*args.child, args.data, args.singles, args.vectors)))
        return 0
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    runs: dict[str, list[dict[str, float]]] = {label: [] for label in RUNTIMES}
    vectors_dir = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-embedders-{os.getpid()}"
    vectors_dir.mkdir(parents=True, exist_ok=True)
    for _ in range(args.rounds):
        for label, (kind, precision) in RUNTIMES.items():
            cmd = [sys.executable, __file__, "--child", kind, precision, "--data", str(args.data)]
            cmd += ["--singles", str(args.singles), "--vectors", str(vectors_dir / f"{kind}-{precision}.npy")]
            out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
            runs[label].append(json.loads(out.strip().splitlines()[-1]))
    reference = np.load(vectors_dir / "minilm-float32.npy")
    rows = []
    for label, (kind, precision) in RUNTIMES.items():
        cosine = (np.load(vectors_dir / f"{kind}-{precision}.npy") * reference).sum(1)
        rows.append(
            {
                "runtime": label,
                "setting": f"TRIAGE_EMBEDDER={kind}"
                + (f" TRIAGE_EMBED_PRECISION={precision}" if kind == "minilm" else ""),
                "single_ms_p50": round(statistics.median(r["single_ms_p50"] for r in runs[label]), 2),
                "batch_per_s": round(statistics.median(r["batch_per_s"] for r in runs[label]), 1),
                "cosine_to_torch_float32_mean": round(float(cosine.mean()), 4),
                "cosine_to_torch_float32_min": round(float(cosine.min()), 4),
            }
        )
    print("| runtime | one text p50 ms | batch texts/s | cosine to torch float32 (mean / min) |\n|---|---|---|---|")
    for r in rows:
        cos = f"{r['cosine_to_torch_float32_mean']} / {r['cosine_to_torch_float32_min']}"
        print(f"| {r['runtime']} | {r['single_ms_p50']} | {r['batch_per_s']} | {cos} |")
    if args.out:
        result = {
            "measured_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "data": str(args.data),
            "texts": len(texts_of(args.data)),
            "rounds": args.rounds,
            "cpu_count": os.cpu_count(),
            "results": rows,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
