"""Model folders on disk: written atomically (a temporary folder swapped in), read back only if this version can."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agents.errors import DataError, ModelNotTrained


def write_folder(out: Path, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp)` on a fresh folder next to `out`, then replace `out` with it; a failure keeps the old one."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        write(tmp)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def read_manifest(folder: Path, expected_format: str) -> dict[str, Any]:
    """The folder's manifest.json, if it was written by this version; otherwise an error that says what to do."""
    path = Path(folder) / "manifest.json"
    if not path.is_file():
        raise ModelNotTrained(str(folder))
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(str(path), f"is not valid JSON ({exc.msg})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != expected_format:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise ModelNotTrained(str(folder), f"saved as format {found!r}, this version reads {expected_format!r}")
    return manifest


def check_embedder(where: str, trained_with: str, embedder_name: str) -> None:
    """Vectors from another embedder mean nothing to a trained model: refuse them by name."""
    if trained_with != embedder_name:
        raise DataError(
            where, f"trained with embedder {trained_with!r}, not {embedder_name!r}: retrain with `triage train`"
        )
