"""`triage eval run|gate|report` and `triage bench`: the harness commands (handlers in evals/commands.py)."""

from __future__ import annotations

from typing import Any

from agents.cli import eval_cold_start, new_categories
from agents.cli.common import SettingsFn, add_embedder, command
from evals.commands import bench, eval_gate, eval_report, eval_run


def add_parsers(ev: Any, sub: Any, settings_fn: SettingsFn) -> None:
    """`run`, `gate` and `report` under `triage eval`; `bench` at the top level."""
    new_categories.add_parsers(ev, settings_fn)  # eval new-categories: held-out labels (evals/new_categories.py)
    eval_cold_start.add_parsers(ev, settings_fn)  # eval cold-start: LLM few-shot against classical at k per class
    p = command(
        ev,
        "run",
        "every backend on every data set spec, with a report and summary.json",
        "triage eval run evals/datasets/demo_tickets.v1.yaml --out /tmp/demo-eval",
        "triage eval run evals/datasets/demo_tickets.v1.yaml evals/datasets/questions.v1.yaml "
        "--backends classical,service,cascade --limit 200 --out /tmp/eval",
    )
    p.add_argument("specs", nargs="+", help="spec files, e.g. evals/datasets/demo_tickets.v1.yaml")
    p.add_argument("--backends", default="classical,service", help="comma-separated: classical,service,cascade,llm")
    p.add_argument("--limit", type=int, help="score at most N test rows (a seeded sample)")
    p.add_argument("--folds", type=int, help="ensemble folds (default: the spec's, usually 5)")
    p.add_argument(
        "--members", help="classical ensemble members, e.g. svm,lr,knn10,knn30,ft1 (default: TRIAGE_MEMBERS)"
    )
    add_embedder(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--out", required=True, help="folder for report.md, report.html and summary.json")
    p.set_defaults(func=lambda a: eval_run(a, settings_fn(a)))

    p = command(
        ev,
        "gate",
        "fail when any metric dropped beyond tolerance against a baseline",
        "triage eval gate --baseline evals/baselines/demo.v1.json --current /tmp/demo-eval/summary.json",
    )
    p.add_argument("--baseline", required=True, help="summary.json of the accepted run (evals/baselines/...)")
    p.add_argument("--current", required=True, help="summary.json of the run to check")
    p.add_argument(
        "--tolerance", type=float, default=0.01, help="how far a metric may drop before the gate fails (%(default)s)"
    )
    p.add_argument("--all", dest="verbose_gate", action="store_true", help="print metrics that passed too")
    p.set_defaults(func=eval_gate)

    p = command(
        ev,
        "report",
        "write the report again from summary.json files (merged)",
        "triage eval report /tmp/a/summary.json /tmp/b/summary.json --note 'two machines' --out /tmp/merged",
    )
    p.add_argument("summaries", nargs="+", help="summary.json files of `triage eval run`, merged into one report")
    p.add_argument("--note", action="append", help="a line for the top of the report (repeatable)")
    p.add_argument("--out", required=True, help="folder for the merged report.md, report.html and summary.json")
    p.set_defaults(func=eval_report)

    p = command(
        sub,
        "bench",
        "latency and throughput beside plain references measured in the same run",
        "triage bench",
        "TRIAGE_EMBEDDER=minilm-static triage bench --out /tmp/bench.static.json",
    )
    p.add_argument("--data", help="labelled tickets JSONL (default: the demo tickets)")
    p.add_argument("--kb", help="folder of Markdown to index and search (default: the demo SOPs)")
    p.add_argument("-n", type=int, default=200, help="single-ticket and search repetitions (default: %(default)s)")
    p.add_argument("--folds", type=int, default=5, help="ensemble folds when training the service")
    add_embedder(p)
    p.add_argument("--out", help="write the results as JSON to this file")
    p.set_defaults(func=lambda a: bench(a, settings_fn(a)))
