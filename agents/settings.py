"""Every setting, read in one place (TRIAGE_* environment variables or a .env file); cheap to import."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from agents.types import INTAKE_NAME, Mode
from kb import KB_DIR
from retrieval.factory import EmbedderKind

PROJECT_DIR = KB_DIR.parent
DEMO_TICKETS = PROJECT_DIR / "evals" / "data" / "demo_tickets.v1.jsonl"
DEFAULT_MEMBERS = "svm,lr"  # the classical ensemble (classical/members.py parses it)
Policy = Literal["classical_only", "llm_first", "cascade"]


class Settings(BaseSettings):
    """Every setting, from TRIAGE_* environment variables or a .env file."""

    model_config = SettingsConfigDict(env_prefix="TRIAGE_", env_file=".env", extra="ignore")

    data_dir: Path = Path("data")
    kb_dir: Path = KB_DIR
    training_data: Path = DEMO_TICKETS
    # a helpdesk written by `triage onboard --out DIR`: kb_dir, training_data and data_dir then default to DIR/kb,
    # DIR/tickets.jsonl and DIR/data (each one set explicitly still wins)
    config_dir: Path | None = None
    # retrieval/factory.py; minilm-int8: 1.4-1.9x the HTTP requests of minilm-onnx (torch's vectors) at
    # the same accuracy on the public sets and the answers set (evals/reports/embedding_runtimes.md)
    embedder: EmbedderKind = "minilm-int8"
    embed_precision: Literal["auto", "float32", "bfloat16"] = "auto"  # auto: bfloat16 on CPUs with native BF16
    approximate_index: bool = False
    precision_target: float = Field(default=0.9, gt=0.0, le=1.0)
    train_folds: int = Field(default=5, ge=2)  # cross-validation folds for calibration and thresholds
    # the classical ensemble (classical/members.py): svm, svmt (svm + a title block), lr, knnK (K neighbours), ftE
    # (fine-tune E epochs)
    members: str = DEFAULT_MEMBERS
    # intake-form values (a ticket's `intake`, e.g. ticket_type) the classical models train on and read,
    # comma-separated; a change takes effect at the next training (evals/reports/members.md measures ticket_type)
    intake_fields: Annotated[list[str], NoDecode] = []
    database_url: str | None = None
    stale_after_days: int = Field(default=365, gt=0)
    answer_threshold: float = Field(default=0.293, ge=0.0, le=1.0)  # `ask` abstains below; see evals/reports/answers.md
    # when a template reply quotes an SOP (agents/answers/relevance.py, evals/reports/summaries.md): aligned reads each
    # sentence of the ticket against each line of the SOP (fewer wrong guides, more right ones; +5.5 ms of CPU per
    # ticket on one thread), dense only the top hit's similarity to the whole ticket
    reply_relevance: Literal["aligned", "dense"] = "aligned"
    slack_signing_secret: str | None = None  # when set, Slack slash commands must carry a valid v0 signature
    policy: Policy = "cascade"
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
    # what `triage eval llm` measured (agents/llm/evidence.py): the LLM classifies a field only where this file says
    # it helps for the policy and the model; None: <data_dir>/llm_evidence.json when it exists, else classical
    llm_evidence: Path | None = None
    # what `python -m evals.summaries_eval --llm` measured (agents/llm/writer_evidence.py): under llm_first the LLM
    # writes summaries or replies only where this file says it helps; None: <data_dir>/llm_writers_evidence.json
    llm_writers_evidence: Path | None = None
    breaker_failures: int = Field(default=3, gt=0)
    breaker_cooldown: float = Field(default=60.0, gt=0)
    # what triage may do with each decision on the ticket of record (agents/modes.py): off, shadow, suggest, auto.
    # auto applies a decision at or above its field's threshold and suggests the rest; a default auto the held-out
    # figures do not support becomes suggest (and says so); an auto set by name for them is refused at start
    default_mode: Mode = "auto"
    field_modes: dict[str, Mode] = {}  # {"team": "shadow", "category:purchase": "suggest"}: per field, or field:value
    writes_enabled: bool = True  # the off switch: False records every decision in shadow and applies nothing
    # the HTTP service (server.py)
    auth_dev_mode: bool = False  # no API keys at all: only for a laptop, and logged loudly
    rate_limit_per_second: float = Field(default=50.0, gt=0)  # per API key, token bucket
    rate_limit_burst: int = Field(default=100, gt=0)
    # several `triage serve` replicas: with a Redis URL (e.g. redis://127.0.0.1:6379/0) the rate limits are counted
    # across replicas (agents/web/limits.py); None: per process. Redis down: requests get 503 with Retry-After
    redis_url: str | None = Field(default=None, repr=False)
    redis_namespace: str = Field(default="triage", min_length=1)  # prefix of every Redis key (tests isolate by it)
    # queued triage (agents/workers/, `triage worker`): with a broker URL (redis://... or amqp://...) intake commits
    # the ticket as received and enqueues it for a Celery worker; None: triaged in the API process, as before
    broker_url: str | None = Field(default=None, repr=False)
    worker_concurrency: int = Field(default=1, ge=1)  # processes per `triage worker` (1: no fork, the solo pool)
    worker_max_retries: int = Field(default=5, ge=0)  # then the ticket is `dead` with its last error
    worker_retry_backoff: float = Field(default=2.0, gt=0)  # seconds before the first retry, doubled each time
    worker_retry_backoff_max: float = Field(default=300.0, gt=0)
    # Redis redelivers a task whose worker died once it is unacknowledged this long (no effect on RabbitMQ,
    # which redelivers when the connection drops); a ticket claimed by a worker is its own for claim_lease seconds
    worker_visibility_timeout: float = Field(default=3600.0, gt=0)
    worker_claim_lease: float = Field(default=300.0, gt=0)
    # helpdesk connectors (agents/connectors/): a system is on when its URL and credentials are set, off otherwise
    # (and says so at start); the mapping file turns our labels into each vendor's ids (kb_dir/connectors.json
    # when None), checked against the taxonomy at start
    zendesk_url: str | None = None
    zendesk_email: str | None = None
    zendesk_api_token: str | None = Field(default=None, repr=False)
    zendesk_webhook_secret: str | None = Field(default=None, repr=False)
    jira_url: str | None = None
    jira_email: str | None = None
    jira_api_token: str | None = Field(default=None, repr=False)
    jira_webhook_secret: str | None = Field(default=None, repr=False)
    servicenow_url: str | None = None
    servicenow_user: str | None = None
    servicenow_password: str | None = Field(default=None, repr=False)
    servicenow_inbound_token: str | None = Field(default=None, repr=False)  # the secret ServiceNow's calls carry
    servicenow_inbound_user: str | None = None  # set: inbound calls use basic auth (user + inbound token)
    zammad_url: str | None = None
    zammad_token: str | None = Field(default=None, repr=False)
    zammad_webhook_secret: str | None = Field(default=None, repr=False)
    connector_mapping: Path | None = None
    connector_replay_window: float = Field(default=300.0, gt=0)  # seconds a signed webhook timestamp stays valid
    connector_max_body_bytes: int = Field(default=1_000_000, gt=0)
    connector_timeout: float = Field(default=10.0, gt=0)  # per vendor request
    # the outbox (agents/connectors/outbox.py): every write-back is committed first, then delivered with retries
    outbox_in_process: bool = True  # False: only `triage connectors deliver` processes deliver (e.g. one per site)
    outbox_max_attempts: int = Field(default=8, ge=1)  # then `dead`, with the vendor's last answer, replayable
    outbox_backoff: float = Field(default=2.0, gt=0)  # seconds before the first retry, doubled each time, jittered
    outbox_backoff_max: float = Field(default=600.0, gt=0)
    outbox_concurrency: int = Field(default=4, ge=1)  # deliveries in flight per process
    # in-process triage: every sweep_interval seconds a server triages tickets left `received` for sweep_after
    # seconds (a replica killed mid-request leaves them; without a sweep only a retry or a restart would finish them)
    sweep_interval: float = Field(default=60.0, gt=0)
    sweep_after: float = Field(default=300.0, ge=0)
    # every replica and worker looks at models/current.json this often and swaps in a promoted (or rolled-back)
    # version, loaded in the background (agents/models/live.py); 0: only a restart loads another version
    models_poll: float = Field(default=5.0, ge=0)
    # the ticket memory (similar tickets, team votes, duplicates): the version's training tickets plus the stored
    # tickets, read from the database at start and then every memory_poll seconds (agents/models/stored_memory.py);
    # 0: the version's tickets only. The newest memory_max_stored stored tickets are kept per process
    memory_poll: float = Field(default=5.0, ge=0)
    memory_max_stored: int = Field(default=100_000, ge=1)
    max_request_bytes: int = Field(default=4_000_000, gt=0)
    max_batch: int = Field(default=1000, gt=0)
    torch_threads: int = Field(default=1, ge=1)  # MiniLM (torch or onnxruntime) in a server or worker process
    # the daily digest (agents/digest/, `triage digest`, `triage scheduler`)
    digest_time: str = Field(default="08:30", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")  # HH:MM in digest_timezone
    digest_timezone: str = "UTC"  # an IANA name, e.g. Europe/London
    digest_weekdays_only: bool = True
    digest_team_schedules: dict[str, str] = {}  # per-team override: {"network": "07:30 America/Chicago"}
    digest_webhook_url: str | None = None  # Slack-compatible incoming webhook; None: write to disk only
    digest_breach_margin: float = Field(default=0.2, ge=0.0, lt=1.0)  # "about to breach": last 20% of an SLA target

    @field_validator("intake_fields", mode="before")
    @classmethod
    def _intake_names(cls, value: object) -> list[str]:
        """A comma-separated string (the environment) or a list; each a name an intake form may send."""
        if value is None or value == "":
            return []
        names = value.split(",") if isinstance(value, str) else value if isinstance(value, list | tuple) else [value]
        kept = [n.strip() for n in names if isinstance(n, str)]
        bad = [n for n in names if not isinstance(n, str)] + [n for n in kept if not re.fullmatch(INTAKE_NAME, n)]
        if bad:
            raise ValueError(f"intake field names {bad} must be lower-case words joined by _ (e.g. ticket_type)")
        return list(dict.fromkeys(kept))

    @field_validator("config_dir")
    @classmethod
    def _onboarded(cls, value: Path | None) -> Path | None:
        if value is not None and not (value / "kb").is_dir():
            raise ValueError("expected a folder written by `triage onboard --out DIR` (it holds kb/ and tickets.jsonl)")
        return value

    @model_validator(mode="after")
    def _config_dir_paths(self) -> Settings:
        """The one place where config_dir sets what it implies (what is not set explicitly): the paths, and the
        intake fields its helpdesk.json names."""
        if self.config_dir is not None:
            given = set(self.model_fields_set)
            for name, part in (("kb_dir", "kb"), ("training_data", "tickets.jsonl"), ("data_dir", "data")):
                if name not in given:
                    setattr(self, name, self.config_dir / part)
            helpdesk = self.config_dir / "helpdesk.json"
            if "intake_fields" not in given and helpdesk.is_file():
                implied = json.loads(helpdesk.read_text(encoding="utf-8")).get("settings", {}).get("intake_fields")
                self.intake_fields = self._intake_names(implied)
        return self

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "index"

    @property
    def model_dir(self) -> Path:
        return self.data_dir / "models"
