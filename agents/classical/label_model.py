"""One classifier for any labelled data set: train, save, load, and predict with abstention."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from pydantic import BaseModel, ConfigDict

from agents.classical.artifacts import check_embedder, read_manifest, write_folder
from agents.classical.calibration import ThresholdChoice
from agents.classical.text_models import EnsembleClassifier
from agents.errors import DataError
from agents.settings import DEFAULT_MEMBERS
from retrieval.embedders import Embedder

FORMAT = "label-model.v1"


class LabelPrediction(BaseModel):
    """One text's label, its calibrated confidence, and whether it falls under the abstention threshold."""

    model_config = ConfigDict(extra="forbid")

    label: str
    confidence: float
    needs_human: bool
    alternatives: dict[str, float]


@dataclass
class LabelModel:
    """A fitted ensemble with the threshold chosen on its held-out rows and what it was trained on."""

    model: EnsembleClassifier
    threshold: ThresholdChoice
    embedder_name: str
    info: dict[str, Any] = field(default_factory=dict)

    def predict(self, texts: list[str], top: int = 3) -> list[LabelPrediction]:
        proba = self.model.predict_proba(texts)  # the ensemble embeds an empty text as " "
        out = []
        for row in proba:
            order = np.argsort(-row, kind="stable")
            confidence = float(row[order[0]])
            out.append(
                LabelPrediction(
                    label=str(self.model.classes_[order[0]]),
                    confidence=round(confidence, 4),
                    needs_human=confidence < self.threshold.threshold,
                    alternatives={str(self.model.classes_[i]): round(float(row[i]), 4) for i in order[:top]},
                )
            )
        return out


def train_label_model(
    texts: list[str],
    labels: list[str],
    embedder: Embedder,
    *,
    members: str = DEFAULT_MEMBERS,
    folds: int = 5,
    target: float = 0.9,
    source: str = "",
) -> LabelModel:
    """Fit the ensemble on every row; the abstention threshold comes from its held-out rows."""
    if len(texts) != len(labels):
        raise DataError(source or "data", f"{len(texts)} texts but {len(labels)} labels")
    started = time.perf_counter()
    vectors = embedder.embed([t or " " for t in texts])
    model = EnsembleClassifier(embedder, folds=folds, members=members).fit(texts, labels, vectors)
    info = {
        "source": source,
        "n_train": len(texts),
        "members": [m.name for m in model.members_],
        "scales": [round(s, 4) for s in model.scales_],
        "seconds": round(time.perf_counter() - started, 1),
        "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    return LabelModel(model, model.oof_threshold(labels, target), embedder.name, info)


def save_label_model(label_model: LabelModel, out: Path) -> Path:
    def write(tmp: Path) -> None:
        joblib.dump(label_model.model, tmp / "model.joblib")
        manifest = {
            "format": FORMAT,
            "embedder": label_model.embedder_name,
            "classes": [str(c) for c in label_model.model.classes_],
            "threshold": label_model.threshold.model_dump(),
            "info": label_model.info,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")

    return write_folder(out, write)


def load_label_model(path: Path, embedder: Embedder) -> LabelModel:
    path = Path(path)
    manifest = read_manifest(path, FORMAT)
    check_embedder(str(path), str(manifest.get("embedder")), embedder.name)
    model: EnsembleClassifier = joblib.load(path / "model.joblib")
    threshold = ThresholdChoice(**manifest["threshold"])
    return LabelModel(model.attach(embedder), threshold, manifest["embedder"], manifest.get("info", {}))
