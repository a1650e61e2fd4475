"""The LLM evidence at start: read `llm_evidence.json`, and per field whether the LLM may classify it, and why."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agents.classify import Classification, Classifier, TicketContext
from agents.errors import TriageError
from agents.settings import Settings
from agents.types import Ticket

log = logging.getLogger(__name__)
EVIDENCE_FORMAT: Literal["llm_evidence.v1"] = "llm_evidence.v1"
EVIDENCE_FILE = "llm_evidence.json"  # in the data folder, unless TRIAGE_LLM_EVIDENCE names another file
ALPHA = 0.05  # "helps" needs a McNemar p-value under this, and the policy more accurate than classical
FIELDS = ("category", "priority")  # what the LLM policies may classify (teams are routed from the catalogue)
Verdict = Literal["helps", "no evidence", "hurts"]
EvidencePolicy = Literal["llm_first", "cascade"]
HOW_TO = (
    "run `triage eval llm --out DIR` against this LLM, then copy DIR/evidence.json to {path} "
    "(or point TRIAGE_LLM_EVIDENCE at it)"
)


class EvidenceInvalid(TriageError):
    """An evidence file that exists but cannot be used: what is wrong with it, and where."""

    def __init__(self, path: Path, problem: str, remedy: str = "triage eval llm --out DIR") -> None:
        self.path, self.problem = path, problem
        super().__init__(f"the LLM evidence {path} {problem}: write it again with `{remedy}`")


class EvidenceModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


EvidenceT = TypeVar("EvidenceT", bound=EvidenceModel)


class EvidenceData(EvidenceModel):
    """The labelled rows the evidence was measured on."""

    path: str
    sha256: str
    rows: int = Field(ge=0)
    fields: list[str]


class EvidenceSplit(EvidenceModel):
    """The held-out split: the classical model was fitted on the training part only."""

    test_size: float = Field(gt=0.0, lt=1.0)
    seed: int
    stratify: str
    n_train: int = Field(ge=0)
    n_test: int = Field(ge=0)


class FieldEvidence(EvidenceModel):
    """One field under one policy, on the same held-out rows as the classical model alone."""

    field: str
    policy: EvidencePolicy
    n: int = Field(ge=0)
    classical_accuracy: float = Field(ge=0.0, le=1.0)
    policy_accuracy: float = Field(ge=0.0, le=1.0)
    fixed: int = Field(ge=0)  # c: classical wrong, the policy right
    broken: int = Field(ge=0)  # b: classical right, the policy wrong
    p_value: float = Field(ge=0.0, le=1.0)  # exact McNemar on fixed and broken
    llm_share: float = Field(ge=0.0, le=1.0)  # of the rows, those whose field was sent to the LLM
    llm_failures: int = Field(default=0, ge=0)  # of those, rows the LLM failed on (the classical label stayed)
    llm_latency_ms_p50: float | None = None  # per ticket sent to the LLM (a re-ask included)
    verdict: Verdict

    @property
    def points(self) -> float:
        return round(100 * (self.policy_accuracy - self.classical_accuracy), 1)

    def describe(self) -> str:
        """One line for the start log and the report, e.g. `llm helps, +2.7 points, p=0.01`."""
        if self.verdict == "helps":
            return f"llm helps, {self.points:+.1f} points, p={self.p_value:.2g}"
        return f"{self.verdict} ({self.points:+.1f} points, p={self.p_value:.2g})"


class MeasuredWith(EvidenceModel):
    """How an evidence file was measured: the model (the service trusts it for that model only), its endpoint, the
    embedder of the classical side and the significance level of the verdicts."""

    model: str  # TRIAGE_LLM_MODEL as measured
    base_url: str | None = None
    embedder: str
    alpha: float = Field(default=ALPHA, gt=0.0, lt=1.0)


class LlmEvidence(MeasuredWith):
    """What `triage eval llm` measured: per field and policy, whether the LLM beats the classical model."""

    format: Literal["llm_evidence.v1"] = EVIDENCE_FORMAT
    created_at: datetime
    data: EvidenceData
    split: EvidenceSplit
    cascade_top_k: int = Field(ge=0)
    cascade_max_share: float = Field(ge=0.0, le=1.0)
    results: list[FieldEvidence]

    def find(self, policy: str, field_name: str) -> FieldEvidence | None:
        return next((r for r in self.results if r.policy == policy and r.field == field_name), None)


def verdict(classical_accuracy: float, policy_accuracy: float, p_value: float, alpha: float = ALPHA) -> Verdict:
    """The verdict on one field: `helps` only when the policy is more accurate and the difference is significant,
    `hurts` when it is less accurate and significant, else `no evidence` (a difference this small could be chance)."""
    if p_value < alpha and policy_accuracy != classical_accuracy:
        return "helps" if policy_accuracy > classical_accuracy else "hurts"
    return "no evidence"


def evidence_path(settings: Settings) -> Path:
    return settings.llm_evidence or settings.data_dir / EVIDENCE_FILE


def read_evidence(path: Path) -> LlmEvidence | None:
    """The evidence in `path`, None when there is no such file; EvidenceInvalid when it is there but unusable."""
    return load_evidence(path, LlmEvidence, EVIDENCE_FORMAT)


def load_evidence(
    path: Path, model: type[EvidenceT], expected_format: str, remedy: str = "triage eval llm --out DIR"
) -> EvidenceT | None:
    """An evidence file of one format read into its model: None when there is no such file, EvidenceInvalid (with
    what is wrong) when it is there but unusable."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EvidenceInvalid(path, f"cannot be read as JSON ({type(exc).__name__}: {exc})", remedy) from None
    if isinstance(raw, dict) and raw.get("format") != expected_format:
        raise EvidenceInvalid(path, f"has format {raw.get('format')!r}, expected {expected_format!r}", remedy)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "evidence"
        raise EvidenceInvalid(path, f"is not valid ({where}: {first['msg']})", remedy) from None


@dataclass
class FieldChoice:
    """The fields the LLM may classify under this policy, and one line per field saying why (for the start log)."""

    llm_fields: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)


def choose_fields(
    evidence: LlmEvidence | None, policy: str, model: str | None, candidates: list[str], path: Path
) -> FieldChoice:
    """The candidate fields the evidence says the LLM helps with (same model, same policy); the others classical."""
    choice = FieldChoice()
    if evidence is None:
        choice.lines.append(f"no LLM evidence at {path}: classification stays classical; {HOW_TO.format(path=path)}")
        return choice
    if evidence.model != model:
        choice.lines.append(
            f"the LLM evidence {path} was measured with model {evidence.model!r}, not {model!r}: classification "
            f"stays classical; {HOW_TO.format(path=path)}"
        )
        return choice
    for name in FIELDS:
        found = evidence.find(policy, name)
        if name not in candidates:
            choice.lines.append(f"{name}: not in TRIAGE_CASCADE_FIELDS: classical")
        elif found is None:
            choice.lines.append(f"{name}: no evidence for policy {policy} in {path}: classical")
        elif found.verdict != "helps":
            choice.lines.append(f"{name}: {found.describe()}: classical")
        else:
            choice.llm_fields.append(name)
            choice.lines.append(f"{name}: {found.describe()}")
    return choice


def fields_from_evidence(settings: Settings, candidates: list[str]) -> list[str]:
    """The fields the LLM may classify for this service (read, decided and logged at start)."""
    path = evidence_path(settings)
    evidence = read_evidence(path)
    choice = choose_fields(evidence, settings.policy, settings.llm_model, candidates, path)
    usable = evidence is not None and evidence.model == settings.llm_model
    for line in choice.lines:
        log.log(logging.INFO if usable else logging.WARNING, "%s", line)
    if evidence is not None and settings.policy == "cascade" and choice.llm_fields:
        measured = (evidence.cascade_top_k, evidence.cascade_max_share)
        if measured != (settings.cascade_top_k, settings.cascade_max_share):
            log.warning(
                "the cascade was measured with top_k %s and max_share %s, it runs with %s and %s: measure it again",
                *measured,
                settings.cascade_top_k,
                settings.cascade_max_share,
            )
    return choice.llm_fields


class FieldGateClassifier:
    """The policy's decision for the fields the evidence lets the LLM decide, the classical decision for the rest."""

    def __init__(self, policy: Classifier, classical: Classifier, llm_fields: list[str]) -> None:
        self.policy = policy
        self.classical = classical
        self.llm_fields = list(llm_fields)
        self.name = f"{policy.name} for {', '.join(llm_fields)}; {classical.name} for the rest"

    def classify(self, ticket: Ticket, context: TicketContext) -> Classification:
        decided = self.policy.classify(ticket, context)
        base = self.classical.classify(ticket, context)  # cheap: the batch computed its probabilities
        picked = {f: getattr(decided if f in self.llm_fields else base, f) for f in FIELDS}
        return Classification(**picked, llm_calls=decided.llm_calls)
