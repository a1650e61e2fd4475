"""Settings read in one place, and the composition root that builds the service from them."""

from __future__ import annotations

import json
import logging
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from kb import KB_DIR

log = logging.getLogger(__name__)
PROJECT_DIR = KB_DIR.parent
DEMO_TICKETS = PROJECT_DIR / "evals" / "data" / "demo_tickets.v1.jsonl"


class Settings(BaseSettings):
    """Every setting, from TRIAGE_* environment variables or a .env file."""

    model_config = SettingsConfigDict(env_prefix="TRIAGE_", env_file=".env", extra="ignore")

    data_dir: Path = Path("data")
    kb_dir: Path = KB_DIR
    training_data: Path = DEMO_TICKETS
    embedder: Literal["minilm", "hashing"] = "minilm"
    approximate_index: bool = False
    precision_target: float = Field(default=0.9, gt=0.0, le=1.0)
    database_url: str | None = None
    stale_after_days: int = Field(default=365, gt=0)
    policy: Literal["classical_only", "llm_first", "cascade"] = "cascade"
    llm_base_url: str | None = None
    llm_model: str | None = None
    llm_api_key: str | None = None
    llm_timeout: float = Field(default=20.0, gt=0)
    llm_max_tokens: int = Field(default=300, gt=0)
    breaker_failures: int = Field(default=3, gt=0)
    breaker_cooldown: float = Field(default=60.0, gt=0)
    # the HTTP service (server.py)
    auth_dev_mode: bool = False  # no API keys at all: only for a laptop, and logged loudly
    rate_limit_per_second: float = Field(default=50.0, gt=0)  # per API key, token bucket
    rate_limit_burst: int = Field(default=100, gt=0)
    max_request_bytes: int = Field(default=4_000_000, gt=0)
    max_batch: int = Field(default=1000, gt=0)

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "index"

    @property
    def model_dir(self) -> Path:
        return self.data_dir / "models"


@lru_cache
def get_settings() -> Settings:
    return Settings()


def read_jsonl(path: Path) -> list[dict[str, object]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def build_service(settings: Settings, *, progress: bool = False):  # type: ignore[no-untyped-def]
    """Load (or build on first start) the index and the models, and wire the service together."""
    from agents.classify import ClassicalClassifier
    from agents.errors import ModelNotTrained
    from agents.route import Router
    from agents.service import TriageService
    from agents.training import load_models, save_models, train_models
    from kb.loader import load_kb
    from retrieval.corpus import content_hash, load_chunks
    from retrieval.embedders import make_embedder
    from retrieval.errors import IndexMismatch, IndexMissing
    from retrieval.hybrid import HybridSearcher
    from retrieval.index import SopIndex

    kb = load_kb(settings.kb_dir)
    embedder = make_embedder(settings.embedder)
    sops = settings.kb_dir / "sops"
    digest = content_hash(sops)
    try:
        index = SopIndex.load(settings.index_dir, embedder, expected_hash=digest)
    except (IndexMissing, IndexMismatch) as exc:
        log.info("building the SOP index (%s)", exc)
        index = SopIndex.build(
            load_chunks(sops), embedder, content_hash=digest, source=str(sops), approximate=settings.approximate_index
        )
        index.save(settings.index_dir)
    try:
        models = load_models(settings.model_dir, embedder)
    except ModelNotTrained:
        log.info("no saved models: training on %s", settings.training_data)
        models = train_models(read_jsonl(settings.training_data), embedder, kb, target=settings.precision_target)
        save_models(models, settings.model_dir)
    classifier = ClassicalClassifier(models.fields["category"], models.fields["priority"])
    return TriageService(kb, models, embedder, classifier, Router(kb), HybridSearcher(index))
