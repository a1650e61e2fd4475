"""Settings read in one place, and the composition root that builds the service from them."""

from __future__ import annotations

import json
import logging
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from agents.members import DEFAULT_MEMBERS
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
    # retrieval/embedders.py (EMBEDDERS); minilm-int8: 1.4-1.9x the HTTP requests of minilm-onnx (torch's vectors) at
    # the same accuracy on the public sets and the answers set (evals/reports/embedding_runtimes.md)
    embedder: Literal["minilm", "minilm-onnx", "minilm-int8", "minilm-static", "hashing"] = "minilm-int8"
    embed_precision: Literal["auto", "float32", "bfloat16"] = "auto"  # auto: bfloat16 on CPUs with native BF16
    approximate_index: bool = False
    precision_target: float = Field(default=0.9, gt=0.0, le=1.0)
    train_folds: int = Field(default=5, ge=2)  # cross-validation folds for calibration and thresholds
    # the classical ensemble's members (agents/members.py): svm, lr, knnK (K neighbours), ftE (fine-tune E epochs)
    members: str = DEFAULT_MEMBERS
    database_url: str | None = None
    stale_after_days: int = Field(default=365, gt=0)
    answer_threshold: float = Field(default=0.293, ge=0.0, le=1.0)  # `ask` abstains below; see evals/reports/answers.md
    slack_signing_secret: str | None = None  # when set, Slack slash commands must carry a valid v0 signature
    policy: Literal["classical_only", "llm_first", "cascade"] = "cascade"
    llm_base_url: str | None = None
    llm_model: str | None = None
    llm_api_key: str | None = Field(default=None, repr=False)
    openai_api_key: str | None = Field(default=None, validation_alias="openai_api_key", repr=False)  # if no llm_api_key
    llm_timeout: float = Field(default=20.0, gt=0)
    # the cascade asks the LLM about these fields only, and takes its label only among the classical top k (0: any);
    # measured with the local 1.5B model: category +2.7 points with top 2, priority worse at every k
    cascade_fields: list[Literal["category", "priority"]] = ["category"]
    cascade_top_k: int = Field(default=2, ge=0, le=3)
    # at most this share of tickets (estimated on held-out training rows) goes to the LLM, least confident first
    cascade_max_share: float = Field(default=0.3, ge=0.0, le=1.0)
    llm_max_tokens: int = Field(default=300, gt=0)
    breaker_failures: int = Field(default=3, gt=0)
    breaker_cooldown: float = Field(default=60.0, gt=0)
    # the HTTP service (server.py)
    auth_dev_mode: bool = False  # no API keys at all: only for a laptop, and logged loudly
    rate_limit_per_second: float = Field(default=50.0, gt=0)  # per API key, token bucket
    rate_limit_burst: int = Field(default=100, gt=0)
    max_request_bytes: int = Field(default=4_000_000, gt=0)
    max_batch: int = Field(default=1000, gt=0)
    torch_threads: int = Field(default=1, ge=1)  # MiniLM in the server: more threads spin against each other
    # the daily digest (agents/digest*.py, `triage digest`, `triage scheduler`)
    digest_time: str = Field(default="08:30", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")  # HH:MM in digest_timezone
    digest_timezone: str = "UTC"  # an IANA name, e.g. Europe/London
    digest_weekdays_only: bool = True
    digest_team_schedules: dict[str, str] = {}  # per-team override: {"network": "07:30 America/Chicago"}
    digest_webhook_url: str | None = None  # Slack-compatible incoming webhook; None: write to disk only
    digest_breach_margin: float = Field(default=0.2, ge=0.0, lt=1.0)  # "about to breach": last 20% of an SLA target

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
    from agents.llm_setup import build_llm_parts
    from agents.route import Router
    from agents.service import TriageService
    from agents.training import load_models, save_models, train_models
    from kb.loader import load_kb
    from retrieval.embedders import make_embedder
    from retrieval.hybrid import HybridSearcher

    kb = load_kb(settings.kb_dir)
    embedder = make_embedder(settings.embedder, settings.embed_precision)
    index = load_sop_index(settings, embedder)
    try:
        models = load_models(settings.model_dir, embedder)
    except ModelNotTrained as exc:
        if exc.reason:  # an older model format: retrain rather than refuse to start
            log.warning(
                "%s; retraining on %s (add --with-feedback to `triage train` to keep reviews)",
                exc,
                settings.training_data,
            )
        else:
            log.info("no saved models: training on %s", settings.training_data)
        models = train_models(
            read_jsonl(settings.training_data),
            embedder,
            kb,
            target=settings.precision_target,
            folds=settings.train_folds,
            members=settings.members,
        )
        save_models(models, settings.model_dir)
    classifier = ClassicalClassifier(models.fields["category"], models.fields["priority"])
    llm = build_llm_parts(settings, kb, models, classifier, lambda: read_jsonl(settings.training_data))
    return TriageService(
        kb,
        models,
        embedder,
        llm.classifier,
        Router(kb),
        HybridSearcher(index),
        summary_writer=llm.summary_writer,
        reply_writer=llm.reply_writer,
        llm_budget=llm.budget,
        breaker=llm.breaker,
    )


def load_sop_index(settings: Settings, embedder, *, in_memory: bool = False):  # type: ignore[no-untyped-def]
    """The saved SOP index when it matches the KB and the embedder; else built (and saved unless in_memory)."""
    from retrieval.corpus import content_hash, load_chunks
    from retrieval.errors import IndexMismatch, IndexMissing
    from retrieval.index import SopIndex

    sops = settings.kb_dir / "sops"
    digest = content_hash(sops)
    try:
        return SopIndex.load(settings.index_dir, embedder, expected_hash=digest)
    except (IndexMissing, IndexMismatch) as exc:
        log.info("building the SOP index (%s)", exc)
    index = SopIndex.build(
        load_chunks(sops), embedder, content_hash=digest, source=str(sops), approximate=settings.approximate_index
    )
    if not in_memory:
        index.save(settings.index_dir)
    return index


def build_answerer(settings: Settings, *, embedder=None, in_memory: bool = False, clock=None, chat=None):  # type: ignore[no-untyped-def]
    """The `ask` path: SOP index, ownership from the catalogue, and with policy llm_first and an LLM the LLM writer
    (the extractive answer stays the fallback). No trained models are needed."""
    from agents.answer import Answerer
    from agents.answer_llm import LlmAnswerWriter
    from agents.errors import TriageError
    from agents.llm import OpenAICompatibleChat
    from agents.llm_setup import url_problem
    from agents.owners import OwnerResolver
    from agents.policy import CircuitBreaker, LlmGuard
    from kb.loader import load_kb
    from retrieval.embedders import make_embedder
    from retrieval.hybrid import HybridSearcher

    kb = load_kb(settings.kb_dir)
    embedder = embedder or make_embedder(settings.embedder, settings.embed_precision)
    index = load_sop_index(settings, embedder, in_memory=in_memory)
    timing = {"clock": clock} if clock is not None else {}
    writer = guard = None
    if settings.policy == "llm_first" and chat is None and settings.llm_model:
        problem = url_problem(settings.llm_base_url)
        if problem:
            log.warning("%s: answers stay extractive", problem)
        else:
            key = settings.llm_api_key or getattr(settings, "openai_api_key", None)
            chat = OpenAICompatibleChat(
                settings.llm_model, base_url=settings.llm_base_url, api_key=key, timeout=settings.llm_timeout
            )
    if settings.policy == "llm_first" and chat is not None:
        writer = LlmAnswerWriter(chat, timeout=settings.llm_timeout)
        breaker = CircuitBreaker(settings.breaker_failures, settings.breaker_cooldown)
        guard = LlmGuard(chat.name, breaker, fallback_on=(TriageError,))
    return Answerer(
        HybridSearcher(index),
        OwnerResolver(kb, embedder, **timing),
        writer=writer,
        guard=guard,
        threshold=settings.answer_threshold,
        stale_after_days=settings.stale_after_days,
        **timing,
    )
