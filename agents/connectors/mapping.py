"""The mapping file: our labels -> each vendor's ids, read and checked against the taxonomy and modes at start."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from agents.connectors.base import FIELDS, SYSTEMS, FieldMapping
from agents.errors import TriageError
from agents.modes import ModeTable

log = logging.getLogger(__name__)


class MappingInvalid(TriageError):
    """The mapping file cannot be used: `problems` lists every reason, so one start shows them all."""

    def __init__(self, path: Path | None, problems: list[str]) -> None:
        self.path, self.problems = path, problems
        where = str(path) if path else "the connector mapping"
        super().__init__(f"{where}: " + "; ".join(problems))


def read_mapping_file(path: Path | None) -> dict[str, Any]:
    """The raw mapping per system ({} when there is no file); a file that is not a JSON object is an error."""
    if path is None or not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MappingInvalid(path, [f"not valid JSON ({exc})"]) from None
    if not isinstance(data, dict):
        raise MappingInvalid(path, ["expected a JSON object keyed by system (zendesk, jira, servicenow, zammad)"])
    return data


def auto_labels(modes: ModeTable, field: str, labels: list[str]) -> list[str]:
    """The labels of a field that its mode may write to the vendor (`auto`), field-wide or value by value."""
    return [label for label in labels if modes.mode_of(field, label)[0] == "auto"]


def check_mapping(
    system: str, raw: Any, labels: dict[str, list[str]], modes: ModeTable
) -> tuple[FieldMapping, list[str]]:
    """One system's mapping, and the problems that make it unusable (empty: fine). A label we do not know, an empty
    vendor value, or an `auto` label with no vendor value is a problem now, not a failed write at 3 a.m."""
    problems: list[str] = []
    try:
        mapping = FieldMapping.model_validate(raw if raw is not None else {})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return FieldMapping(), [f"{system}.{where}: {first['msg']} (fields are {', '.join(FIELDS)})"]
    for field in FIELDS:
        values: dict[str, str] = getattr(mapping, field)
        known = labels.get(field, [])
        unknown = sorted(set(values) - set(known))
        if unknown:
            problems.append(f"{system}.{field} maps {', '.join(unknown)}, which are not {field}s ({', '.join(known)})")
        empty = sorted(label for label, value in values.items() if not str(value).strip())
        if empty:
            problems.append(f"{system}.{field} gives no vendor value for {', '.join(empty)}")
        missing = [label for label in auto_labels(modes, field, known) if label not in values]
        if missing and modes.writes_enabled:
            problems.append(
                f"{system}.{field}: mode auto may set {', '.join(missing)} but the mapping has no {system} value for "
                f"them (map them, or set TRIAGE_FIELD_MODES so {field} is suggest or shadow)"
            )
        shared = sorted({v for v in values.values() if list(values.values()).count(v) > 1})
        if shared:  # not fatal: the vendor value cannot say which of our labels it was
            log.warning(
                "%s.%s: %s stand for more than one label: those final values are not recorded",
                system,
                field,
                ", ".join(shared),
            )
    return mapping, problems


def load_mappings(
    path: Path | None, systems: list[str], labels: dict[str, list[str]], modes: ModeTable
) -> dict[str, FieldMapping]:
    """The checked mapping of every enabled system; MappingInvalid listing every problem otherwise."""
    raw = read_mapping_file(path)
    problems = [f"{name!r} is not a system ({', '.join(SYSTEMS)})" for name in raw if name not in SYSTEMS]
    out: dict[str, FieldMapping] = {}
    for system in systems:
        mapping, found = check_mapping(system, raw.get(system), labels, modes)
        problems += found
        out[system] = mapping
    if problems:
        raise MappingInvalid(path, problems)
    return out
