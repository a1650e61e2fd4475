"""Write the demo history (evals/data/demo_tickets.v1.jsonl, ours) as a vendor-style CSV export to onboard."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from agents.settings import DEMO_TICKETS
from kb import KB_DIR
from kb.loader import load_kb

PRIORITY = {"P1": "1 - Critical", "P2": "2 - High", "P3": "3 - Moderate", "P4": "4 - Low"}  # ServiceNow-style
COLUMNS = ["Number", "Short description", "Description", "Category", "Priority", "Assignment group"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("/tmp/demo_export.csv"), help="CSV to write")
    out = parser.parse_args().out
    kb = load_kb(KB_DIR)
    rows = [json.loads(line) for line in DEMO_TICKETS.read_text(encoding="utf-8").splitlines() if line.strip()]
    with open(out, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        for n, row in enumerate(rows, start=1):
            writer.writerow(
                {
                    "Number": f"INC{n:07d}",
                    "Short description": row["title"],
                    "Description": row["body"],
                    "Category": kb.taxonomy.category(row["category"]).name,
                    "Priority": PRIORITY[row["priority"]],
                    "Assignment group": kb.teams[row["team"]].name,
                }
            )
    print(f"wrote {len(rows)} rows to {out}")


if __name__ == "__main__":
    main()
