"""The retrain gate: a candidate trained on the original data plus reviewed tickets becomes current only if it
is not worse than the current models, field by field, on held-out original rows and on the newest reviewed tickets.

Fairness: both are judged as recipes re-trained on the same rows. The original rows are split by a seeded hash of
their id (the same rows every run, whatever is appended to the file); the current recipe (training split plus the
reviewed tickets it had, up to its last feedback id) and the candidate's (training split plus every reviewed ticket
but the newest, held back) are trained and scored on the held-out original rows and on the held-back reviewed
tickets, which neither saw; a reviewed ticket whose text equals an evaluation row's is left out of both. The kept
candidate is then trained on all original rows plus the reviewed tickets that were not held back.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agents.classical.training import FIELDS, TriageModels, save_models, train_models
from agents.errors import ModelNotTrained
from agents.jsonl import read_jsonl
from agents.models.records import EvalSet, GateRecord, GateScore, TrainingData, VersionRecord, figures_from
from agents.models.reviewed import ReviewedTicket, last_feedback_id
from agents.models.scoring import CachedEmbedder, field_accuracy
from agents.models.versions import VersionStore, file_digest
from agents.settings import DEFAULT_MEMBERS
from agents.types import ticket_text
from kb.loader import KnowledgeBase
from retrieval.embedders import Embedder

METHOD = (
    "both recipes re-trained on the same training split (original rows not held out by a seeded hash of their id, "
    "share {share:.0%}, seed {seed}); current = that split + the reviewed tickets it had (feedback id <= {last}), "
    "candidate = that split + every reviewed ticket but the {recent} newest; both scored on the held-out original "
    "rows and on those newest reviewed tickets, which neither saw"
)


class RetrainOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tolerance: float = Field(default=0.02, ge=0.0, le=1.0)  # how much worse per field accuracy may get
    recent: int = Field(default=20, ge=1)  # hold back at least this many newest reviewed tickets (at most half)
    recent_share: float = Field(default=0.2, gt=0.0, lt=1.0)  # ... or this share of them, if more
    holdout_share: float = Field(default=0.2, gt=0.0, lt=1.0)  # original rows never trained on while comparing
    seed: int = 42
    dry_run: bool = False  # judge and keep the candidate, but do not make it current


class GateReport(BaseModel):
    """What `triage retrain` did, and the figures it decided on."""

    model_config = ConfigDict(extra="forbid")

    decision: Literal["promoted", "rejected", "dry-run", "skipped"]
    reason: str
    current: str | None  # the version current before the run
    candidate: str | None = None  # the version saved for the candidate (every candidate is kept)
    passed: bool | None = None
    tolerance: float
    scores: list[GateScore] = []
    sizes: dict[str, int] = {}
    notes: list[str] = []
    method: str = ""
    seconds: float = 0.0


def is_held_out(row: dict[str, Any], share: float, seed: int) -> bool:
    """Whether an original row is held out: a seeded hash of its id (else its text) falls under `share`."""
    key = str(row.get("id") or ticket_text(row.get("title"), row.get("body")))
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def split_recent(tickets: list[ReviewedTicket], share: float, minimum: int) -> tuple[list[ReviewedTicket], ...]:
    """(older, newest): the newest max(share, minimum) reviewed tickets, but never more than half of them."""
    n = len(tickets)
    k = min(max(math.ceil(share * n), minimum), n // 2)
    return tickets[: n - k], tickets[n - k :]


def _text_key(row: dict[str, Any]) -> str:
    return " ".join(ticket_text(row.get("title"), row.get("body")).lower().split())


def compare(
    current: dict[EvalSet, dict[str, float]],
    candidate: dict[EvalSet, dict[str, float]],
    sizes: dict[EvalSet, int],
    tolerance: float,
) -> list[GateScore]:
    return [
        GateScore(
            field=name,
            set=which,
            n=sizes[which],
            current=round(current[which][name], 4),
            candidate=round(candidate[which][name], 4),
            delta=round(candidate[which][name] - current[which][name], 4),
            ok=candidate[which][name] >= current[which][name] - tolerance - 1e-9,
        )
        for which in current
        for name in FIELDS
    ]


def verdict(scores: list[GateScore], tolerance: float, current: str) -> tuple[bool, str]:
    """(passed, why): every field on every set within the tolerance, else the fields and figures that are not."""
    failed = [s for s in scores if not s.ok]
    if failed:
        worse = "; ".join(
            f"{s.field} on {s.set} ({s.n} tickets): candidate {s.candidate:.3f} vs current {s.current:.3f} "
            f"({s.delta:+.3f})"
            for s in failed
        )
        return False, f"worse than {current} by more than the tolerance {tolerance}: {worse}"
    best = max(scores, key=lambda s: s.delta)
    return True, (
        f"not worse than {current} beyond {tolerance} on any field of either set; "
        f"largest change: {best.field} on {best.set} {best.delta:+.3f} ({best.current:.3f} -> {best.candidate:.3f})"
    )


@dataclass
class Retrainer:
    """Trains and judges a candidate against the current version of `versions`; every collaborator passed in."""

    versions: VersionStore
    kb: KnowledgeBase
    embedder: Embedder
    target: float = 0.9
    folds: int = 5
    members: str = DEFAULT_MEMBERS
    intake_fields: list[str] = field(default_factory=list)
    progress: bool = False
    cached: CachedEmbedder = field(init=False)

    def __post_init__(self) -> None:
        self.cached = CachedEmbedder(self.embedder)

    def train(self, rows: list[dict[str, Any]]) -> TriageModels:
        return train_models(
            rows,
            self.cached,
            self.kb,
            target=self.target,
            folds=self.folds,
            members=self.members,
            intake_fields=self.intake_fields,
            progress=self.progress,
        )

    def run(self, original: Path, reviewed: list[ReviewedTicket], options: RetrainOptions) -> GateReport:
        started = time.perf_counter()
        self.versions.adopt_legacy()
        current_id = self.versions.current_id()
        if current_id is None:
            raise ModelNotTrained(str(self.versions.root))
        current = self.versions.record(current_id)
        known = current.data.last_feedback_id or 0
        older, recent = split_recent(reviewed, options.recent_share, options.recent)
        report = GateReport(decision="skipped", reason="", current=current_id, tolerance=options.tolerance)
        if len(reviewed) < 2:
            report.reason = f"{len(reviewed)} reviewed ticket(s): at least 2 are needed (one to learn, one to judge)"
            return report
        if not any(t.feedback_id > known for t in older):
            report.reason = (
                f"nothing new to learn: no reviewed ticket newer than {current_id}'s (last feedback id {known}) "
                f"outside the {len(recent)} newest, held back to judge"
            )
            return report
        rows = read_jsonl(original)
        scores, sizes = self._compare_recipes(rows, older, recent, known, options)
        passed, why = verdict(scores, options.tolerance, current_id)
        promote = passed and not options.dry_run
        reason = f"dry run, not promoted: {why}" if options.dry_run else why
        method = METHOD.format(share=options.holdout_share, seed=options.seed, last=known, recent=len(recent))
        final = self.train(rows + [t.row for t in older])
        record = VersionRecord(
            source="retrain",
            embedder=final.embedder_name,
            members=self.members,
            data=TrainingData(
                source_file=str(original),
                source_rows=len(rows),
                source_sha256=file_digest(original),
                reviewed_rows=len(older),
                last_feedback_id=last_feedback_id(older),
                held_back_reviewed=len(recent),
            ),
            figures=figures_from(final.thresholds),
            gate=GateRecord(
                passed=passed,
                promoted=promote,
                reason=reason,
                compared_with=current_id,
                tolerance=options.tolerance,
                scores=scores,
                method=method,
            ),
        )
        saved = self.versions.create(lambda out: save_models(final, out), record, make_current=promote)
        report.decision = "promoted" if promote else ("dry-run" if options.dry_run else "rejected")
        report.reason = reason
        report.candidate, report.passed, report.scores, report.method = saved.id, passed, scores, method
        report.sizes = {"reviewed": len(reviewed), **sizes}
        report.notes = self._notes(current, original)
        report.seconds = round(time.perf_counter() - started, 2)
        return report

    def _compare_recipes(
        self,
        rows: list[dict[str, Any]],
        older: list[ReviewedTicket],
        recent: list[ReviewedTicket],
        known: int,
        options: RetrainOptions,
    ) -> tuple[list[GateScore], dict[str, int]]:
        """Train the current recipe and the candidate's on the same training split, score both on the held-out
        original rows and on the newest reviewed tickets (see the module's docstring); the scores and set sizes."""
        train_split = [r for r in rows if not is_held_out(r, options.holdout_share, options.seed)]
        held = [r for r in rows if is_held_out(r, options.holdout_share, options.seed)]
        recent_rows = [t.row for t in recent]
        judged = {_text_key(r) for r in held + recent_rows}
        usable = [t for t in older if _text_key(t.row) not in judged]
        had = [t.row for t in usable if t.feedback_id <= known]
        twin_current = self.train(train_split + had)
        twin_candidate = twin_current if len(had) == len(usable) else self.train(train_split + [t.row for t in usable])
        sets: dict[EvalSet, list[dict[str, Any]]] = {"held-out": held, "recent": recent_rows}
        scores = compare(
            {k: field_accuracy(twin_current, v, self.kb, self.cached) for k, v in sets.items()},
            {k: field_accuracy(twin_candidate, v, self.kb, self.cached) for k, v in sets.items()},
            {k: len(v) for k, v in sets.items()},
            options.tolerance,
        )
        sizes = {
            "original": len(rows),
            "train_split": len(train_split),
            "held_out": len(held),
            "reviewed_trained": len(older),
            "reviewed_new": sum(t.feedback_id > known for t in older),
            "recent": len(recent),
            "left_out_same_text": len(older) - len(usable),
        }
        return scores, sizes

    def _notes(self, current: VersionRecord, original: Path) -> list[str]:
        """Where the current recipe, re-trained here, may differ from how the current version was made."""
        notes = []
        if current.embedder != self.embedder.name:
            notes.append(
                f"{current.id} was trained with embedder {current.embedder}; both recipes used {self.embedder.name}"
            )
        if current.members and current.members != self.members:
            notes.append(f"{current.id} was trained with members {current.members}; both recipes used {self.members}")
        if current.data.source_file and Path(current.data.source_file).resolve() != Path(original).resolve():
            notes.append(f"{current.id} was trained on {current.data.source_file}; both recipes used {original}")
        return notes
