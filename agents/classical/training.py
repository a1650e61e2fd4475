"""Train, save and load the classical triage models (one calibrated ensemble per field) and the ticket memory."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np

from agents.classical.artifacts import read_manifest, write_folder
from agents.classical.calibration import ThresholdChoice, choose_threshold
from agents.classical.field_tokens import read_text
from agents.classical.text_models import EnsembleClassifier, tfidf_features
from agents.errors import DataError, ModelNotTrained
from agents.jsonl import read_jsonl
from agents.models.records import TrainingData, VersionRecord, figures_from
from agents.models.versions import VersionStore, file_digest
from agents.route import Router
from agents.settings import DEFAULT_MEMBERS, Settings
from agents.similar import TicketMemory
from agents.types import Ticket
from kb.loader import KnowledgeBase
from retrieval.embedders import Embedder

FORMAT = "triage-models.v3"  # v2: the field models share one TF-IDF featuriser; v3: N-member ensembles
FIELDS = ("category", "priority", "team")
NEIGHBOURS = 5
log = logging.getLogger(__name__)


@dataclass
class TriageModels:
    """Everything the classical path learned: per-field models and thresholds, and the ticket memory."""

    fields: dict[str, EnsembleClassifier]
    thresholds: dict[str, ThresholdChoice]
    memory: TicketMemory
    embedder_name: str
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def intake_fields(self) -> list[str]:
        """The intake-form values the field models were trained to read (none for models saved before them)."""
        return list(self.info.get("intake_fields", []))

    def texts(self, tickets: Sequence[Ticket]) -> list[str]:
        """What the field models read of each ticket: its text, plus one token per intake field they were trained
        with and the ticket carries."""
        names = self.intake_fields
        return [read_text(t.title, t.body, t.intake, names) for t in tickets]

    def attach(self, embedder: Embedder) -> TriageModels:
        """Give the field models their embedder; `load_models` has checked it is the one they were trained with."""
        for model in self.fields.values():
            model.attach(embedder)
        return self


def row_text(row: dict[str, Any], intake_fields: Sequence[str] = ()) -> str:
    """A training row's text as the field models read it (TriageModels.texts does the same for a ticket)."""
    return read_text(row.get("title"), row.get("body"), row.get("intake") or {}, intake_fields)


def check_intake(rows: list[dict[str, Any]], intake_fields: Sequence[str]) -> None:
    """Each named intake field must be carried by some row, in an `intake` object of strings."""
    for i, row in enumerate(rows):
        intake = row.get("intake", {})
        if not isinstance(intake, dict) or not all(isinstance(v, str) for v in intake.values()):
            raise DataError("tickets", f"row {i} (id {row.get('id')}): intake must be an object of strings")
    for name in intake_fields:
        if not any(str((r.get("intake") or {}).get(name) or "").strip() for r in rows):
            raise DataError(
                "tickets",
                f"no training ticket carries the intake field {name!r} (TRIAGE_INTAKE_FIELDS): give rows an intake "
                f'object such as {{"intake": {{"{name}": "incident"}}}}',
            )


def _team_threshold(
    rows: list[dict[str, Any]],
    texts: list[str],
    vectors: np.ndarray,
    model: EnsembleClassifier,
    memory: TicketMemory,
    router: Router,
    target: float,
) -> ThresholdChoice:
    """Choose the routing threshold on held-out scores: out-of-fold model, neighbours excluding the ticket."""
    correct, confidence, chosen = [], [], []
    for i, held_out in zip(model.oof_rows_, model.oof_proba_, strict=True):
        row = rows[i]
        proba = dict(zip(model.classes_, held_out, strict=True))
        neighbours = memory.search(vectors[i], NEIGHBOURS, exclude_id=row["id"])
        decision, _ = router.decide(texts[i], proba, neighbours)
        confidence.append(decision.confidence)
        correct.append(decision.label == row["team"])
        chosen.append(decision.label)
    return choose_threshold(np.array(confidence), np.array(correct), target, predicted=np.array(chosen))


def train_models(
    rows: list[dict[str, Any]],
    embedder: Embedder,
    kb: KnowledgeBase,
    *,
    target: float = 0.9,
    folds: int = 5,
    seed: int = 42,
    members: str = DEFAULT_MEMBERS,
    intake_fields: Sequence[str] = (),
    progress: bool = False,
) -> TriageModels:
    """Fit category, priority and team ensembles on labelled tickets (dicts with title, body and labels).
    A field whose rows all carry one label (an export without priorities) gets a constant model: that label at
    confidence 1.0, its threshold 1.0 (precision and coverage 1.0 on its own rows), named in info["single_label"].
    Each of `intake_fields` a row carries in its `intake` object enters its text as one token (field_tokens.py).
    With `progress`, a bar on stderr shows each step and the time left, estimated from the steps done."""
    from tqdm import tqdm

    from agents.classical.constant import ConstantClassifier

    if len(rows) < 10:
        raise DataError("tickets", f"need at least 10 labelled tickets to train, got {len(rows)}")
    for i, row in enumerate(rows):
        missing = [f for f in FIELDS if not row.get(f)]
        if missing:
            raise DataError("tickets", f"row {i} (id {row.get('id')}) has no {', '.join(missing)}")
    check_intake(rows, intake_fields)
    started = time.perf_counter()
    bar = tqdm(total=2 + len(FIELDS), desc=f"training on {len(rows)} tickets", unit="step", disable=not progress)
    bar.set_postfix_str("embedding")
    texts = [row_text(r, intake_fields) for r in rows]
    vectors = embedder.embed(texts)
    bar.update()
    memory = TicketMemory(embedder.dim)
    memory.add(vectors, [{k: r.get(k) for k in ("id", "team", "category", "resolution")} for r in rows])
    models: dict[str, EnsembleClassifier] = {}
    thresholds: dict[str, ThresholdChoice] = {}
    single_label: dict[str, str] = {}
    features = tfidf_features().fit(texts)  # one vocabulary for all fields: the service transforms a ticket once
    for name in FIELDS:
        bar.set_postfix_str(name)
        labels = [str(r[name]) for r in rows]
        kind = EnsembleClassifier
        if len(set(labels)) == 1:
            kind, single_label[name] = ConstantClassifier, labels[0]
        model = kind(embedder, folds=folds, seed=seed, features=features, members=members)
        model.fit(texts, labels, vectors)
        models[name] = model
        thresholds[name] = model.oof_threshold(labels, target)
        bar.update()
    bar.set_postfix_str("routing threshold")
    thresholds["team"] = _team_threshold(rows, texts, vectors, models["team"], memory, Router(kb), target)
    bar.update()
    bar.close()
    info = {
        "n_train": len(rows),
        "seconds": round(time.perf_counter() - started, 2),
        "target_precision": target,
        "members": members,
        "intake_fields": list(intake_fields),
        "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "single_label": single_label,  # field -> its one label: a constant model, not a learnt one
    }
    return TriageModels(models, thresholds, memory, embedder.name, info)


def save_models(models: TriageModels, out: Path) -> None:
    """Write the models folder atomically: a failed save keeps the old models."""

    def write(tmp: Path) -> None:
        vectors = models.memory.index.reconstruct_n(0, len(models.memory)) if len(models.memory) else None
        joblib.dump(
            {"fields": models.fields, "memory_vectors": vectors, "memory_records": models.memory.records},
            tmp / "models.joblib",
        )
        manifest = {
            "format": FORMAT,
            "embedder": models.embedder_name,
            "info": models.info,
            "thresholds": {k: v.model_dump() for k, v in models.thresholds.items()},
            "classes": {k: [str(c) for c in m.classes_] for k, m in models.fields.items()},
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")

    write_folder(out, write)


def load_models(path: Path, embedder: Embedder) -> TriageModels:
    path = Path(path)
    manifest = read_manifest(path, FORMAT)
    if manifest["embedder"] != embedder.name:  # TRIAGE_EMBEDDER changed: the saved vectors mean nothing now
        raise ModelNotTrained(str(path), f"trained with embedder {manifest['embedder']!r}, not {embedder.name!r}")
    blob = joblib.load(path / "models.joblib")
    memory = TicketMemory(embedder.dim)
    if blob["memory_vectors"] is not None:
        memory.add(blob["memory_vectors"], blob["memory_records"])
    thresholds = {k: ThresholdChoice(**v) for k, v in manifest["thresholds"].items()}
    models = TriageModels(blob["fields"], thresholds, memory, manifest["embedder"], manifest["info"])
    return models.attach(embedder)


def load_or_train(settings: Settings, embedder: Embedder, kb: KnowledgeBase, *, progress: bool = False) -> TriageModels:
    """The current model version (models/current.json; a folder saved before versions is adopted as one); on first
    start, or when it is unusable, models trained on `settings.training_data` and saved as a new current version."""
    versions = VersionStore(settings.model_dir)
    try:
        models = load_models(versions.current_model_dir(), embedder)
        if models.intake_fields != settings.intake_fields:  # the models read what they were trained with
            log.warning(
                "the current models read intake fields %s, TRIAGE_INTAKE_FIELDS names %s: `triage train` applies it",
                models.intake_fields,
                settings.intake_fields,
            )
        return models
    except ModelNotTrained as exc:
        if exc.reason:  # an older format or another embedder: retrain rather than refuse to start
            log.warning(
                "%s; retraining on %s (add --with-feedback to `triage train` to keep reviews)",
                exc,
                settings.training_data,
            )
        else:
            log.info("no saved models: training on %s", settings.training_data)
    rows = read_jsonl(settings.training_data)
    models = train_models(
        rows,
        embedder,
        kb,
        target=settings.precision_target,
        folds=settings.train_folds,
        members=settings.members,
        intake_fields=settings.intake_fields,
        progress=progress,
    )
    record = VersionRecord(
        source="first-start",
        embedder=models.embedder_name,
        members=settings.members,
        data=TrainingData(
            source_file=str(settings.training_data),
            source_rows=len(rows),
            source_sha256=file_digest(settings.training_data),
        ),
        figures=figures_from(models.thresholds),
    )
    versions.create(lambda out: save_models(models, out), record, make_current=True)
    return models
