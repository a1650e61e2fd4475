"""Writing command results to disk."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_json(out_dir: Path, name: str, data: dict[str, Any]) -> Path:
    """Write `data` as indented JSON to out_dir/name (creating the folder) and return the path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / name
    path.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    return path
