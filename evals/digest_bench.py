"""Time and size of the daily digest on a generated history: `python -m evals.digest_bench --per-day 200`."""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from agents.app import build_service
from agents.digest.builder import DigestBuilder
from agents.digest.demo_history import WEEKDAYS, DemoHistory
from agents.digest.html import to_html
from agents.digest.render import to_json, to_markdown
from agents.digest.store import load_digest_input
from agents.digest.themes import ThemeFinder, VectorCache
from agents.jsonl import read_jsonl
from agents.settings import DEMO_TICKETS, Settings
from agents.store.tickets import Store
from kb.loader import load_kb
from retrieval.factory import EMBEDDERS, make_embedder


def weekday_rate(mean_per_day: float) -> float:
    """The weekday rate whose week (quiet weekends included) averages `mean_per_day`."""
    return mean_per_day * 7 * float(WEEKDAYS[:5].mean()) / float(WEEKDAYS.sum())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--per-day", type=float, default=200.0, help="mean tickets per day over the whole week")
    parser.add_argument("--embedder", choices=EMBEDDERS, help="embedder of the themes (default: TRIAGE_EMBEDDER)")
    parser.add_argument("--precision", default="auto", choices=["auto", "float32", "bfloat16"], help="MiniLM's")
    parser.add_argument("--triage", action="store_true", help="store real triage results (hashing-embedder service)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--at-hour", type=int, default=15, help="digest window ends at this UTC hour on the last day")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="digest-bench-"))
    kb = load_kb(Settings().kb_dir)
    end = datetime(2026, 7, 17, 18, 0, tzinfo=UTC)  # a Friday evening
    triager = None
    if args.triage:
        triager = build_service(Settings(data_dir=work / "svc", embedder="hashing", policy="classical_only"))
    history = DemoHistory(
        read_jsonl(DEMO_TICKETS),
        kb,
        days=args.days,
        per_day=weekday_rate(args.per_day),
        seed=11,
        burst=60,
        triager=triager,
    )
    store = Store.open(work)
    started = time.perf_counter()
    counts = history.seed(store, end)
    seed_s = time.perf_counter() - started
    at = end.replace(hour=args.at_hour) - timedelta(days=1)  # Thursday afternoon: a full weekday in the window
    embedder = make_embedder(args.embedder or Settings().embedder, args.precision)
    started = time.perf_counter()
    embedder.embed(["warm up"])
    load_s = time.perf_counter() - started
    builder = DigestBuilder(kb, ThemeFinder(embedder))  # no vector cache: every run embeds the window again
    timings: dict[str, list[float]] = {"load": [], "build": [], "render": []}
    cpu = time.process_time()
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        data = load_digest_input(store, at)
        t1 = time.perf_counter()
        digest = builder.build(data, now=end, at=at)
        t2 = time.perf_counter()
        texts = {"md": to_markdown(digest), "json": to_json(digest), "html": to_html(digest)}
        t3 = time.perf_counter()
        for name, value in zip(timings, (t1 - t0, t2 - t1, t3 - t2), strict=True):
            timings[name].append(value)
    cpu_s = (time.process_time() - cpu) / args.repeat
    total = [sum(parts) for parts in zip(*timings.values(), strict=True)]
    cache = VectorCache()
    cached = DigestBuilder(kb, ThemeFinder(embedder, cache=cache))
    cached.build(data, now=end, at=at)  # fills the cache, as the all-teams digest does before the team digests
    started = time.perf_counter()
    cached.build(data, now=end, at=at)
    warm_s = time.perf_counter() - started
    print(
        f"history: {counts['tickets']} tickets over {args.days} days ({counts['tickets'] / args.days:.0f}/day), "
        f"{counts['feedback']} verdicts, {counts['audit']} audit rows; seeded in {seed_s:.1f} s"
    )
    print(
        f"window: 24 h to {at:%a %Y-%m-%d %H:%M} UTC: {digest.new} new, {digest.open} open, "
        f"{len(data.tickets)} tickets read, {len(digest.themes)} themes"
    )
    precision = getattr(embedder, "precision", "-")
    print(f"embedder {embedder.name} ({precision}): first load {load_s:.2f} s (not in the times below)")
    for name, values in [*timings.items(), ("total", total)]:
        print(f"{name:7s} median {statistics.median(values) * 1000:7.0f} ms  max {max(values) * 1000:7.0f} ms")
    print(f"CPU time per run (load + build + render, all threads): {cpu_s:.2f} s")
    print(f"build with a warm vector cache: {warm_s * 1000:.0f} ms")
    for fmt, text in texts.items():
        print(f"size {fmt:4s} {len(text.encode()):>8,d} bytes")
    print("themes: " + "; ".join(f"{t.name} ({t.size})" for t in digest.themes))
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; numpy {np.__version__}")
    store.close()


if __name__ == "__main__":
    main()
