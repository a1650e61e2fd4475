"""What a model version records about itself (version.json), the current pointer, and the version errors."""

from __future__ import annotations

import getpass
import socket
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agents.classical.calibration import ThresholdChoice
from agents.errors import TriageError

RECORD_FORMAT: Literal["triage-version.v1"] = "triage-version.v1"
Source = Literal["first-start", "train", "retrain", "legacy"]
EvalSet = Literal["held-out", "recent"]


def who() -> str:
    """user@host of the process that saves a version (best effort: containers may have no user name)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FieldFigures(_Model):
    """One field's abstention threshold and the held-out precision and coverage at it (from training)."""

    threshold: float
    precision: float
    coverage: float
    support: int


class TrainingData(_Model):
    """What a version learned from: the original labelled file and the tickets people reviewed."""

    source_file: str | None  # None: not recorded (a legacy folder)
    source_rows: int
    source_sha256: str | None = None
    reviewed_rows: int = 0
    last_feedback_id: int | None = None  # the newest feedback row behind the reviewed rows used
    held_back_reviewed: int = 0  # the newest reviewed tickets kept out of training to judge the candidate


class GateScore(_Model):
    """One field on one evaluation set: the accuracy of the current recipe and of the candidate's."""

    field: str
    set: EvalSet
    n: int
    current: float
    candidate: float
    delta: float
    ok: bool  # candidate >= current - tolerance


class GateRecord(_Model):
    """The retrain gate's verdict on a candidate, kept with the candidate's version."""

    passed: bool
    promoted: bool
    reason: str
    compared_with: str
    tolerance: float
    scores: list[GateScore]
    method: str  # how the comparison was made fair, in words


class VersionRecord(_Model):
    """version.json: who made a version, from what data, with which embedder, and its held-out figures."""

    format: Literal["triage-version.v1"] = RECORD_FORMAT
    id: str = ""  # filled in when the version is saved
    created_at: datetime | None = None
    source: Source
    made_by: str = Field(default_factory=who)
    embedder: str
    members: str | None = None
    data: TrainingData
    figures: dict[str, FieldFigures] = {}
    gate: GateRecord | None = None
    note: str = ""


class Pointer(_Model):
    """current.json: the version to serve, and the ones that were current before it (newest last)."""

    current: str
    history: list[str] = []
    updated_at: datetime


def figures_from(thresholds: Mapping[str, ThresholdChoice]) -> dict[str, FieldFigures]:
    """Per field, the held-out precision and coverage at the abstention threshold, as training measured them."""
    return {
        name: FieldFigures(threshold=c.threshold, precision=c.precision, coverage=c.coverage, support=c.support)
        for name, c in thresholds.items()
    }


def legacy_record(manifest: dict[str, Any]) -> VersionRecord:
    """What a models folder saved before versions tells about itself (manifest.json), as a version record."""
    found = manifest.get("info")
    info: dict[str, Any] = found if isinstance(found, dict) else {}
    figures = {}
    for name, choice in (manifest.get("thresholds") or {}).items():
        try:
            figures[name] = FieldFigures.model_validate({k: choice.get(k) for k in FieldFigures.model_fields})
        except (ValidationError, AttributeError):
            continue  # a figure this version cannot read is left out, not guessed
    trained = f", trained {info['trained_at']}" if info.get("trained_at") else ""
    return VersionRecord(
        source="legacy",
        embedder=str(manifest.get("embedder", "unknown")),
        members=info.get("members"),
        data=TrainingData(source_file=None, source_rows=int(info.get("n_train") or 0)),
        figures=figures,
        note=f"models saved before versions ({manifest.get('format')}{trained}), adopted as they were",
    )


class UnknownVersion(TriageError):
    def __init__(self, ref: str, known: list[str], ambiguous: bool = False) -> None:
        self.ref, self.known = ref, known
        what = f"{ref!r} matches several model versions" if ambiguous else f"no model version {ref!r}"
        listed = f"versions: {', '.join(known)}" if known else "no versions saved yet (`triage train`)"
        super().__init__(f"{what}; {listed}")


class NoPreviousVersion(TriageError):
    def __init__(self, current: str | None, known: list[str]) -> None:
        self.current, self.known = current, known
        where = f"no version was current before {current}" if current else "no version is current yet"
        hint = f"; `triage models promote ID` picks any of {', '.join(known)}" if known else ""
        super().__init__(f"nothing to roll back to: {where}{hint}")
