"""The evidence that lets the LLM write: read and update `llm_writers_evidence.json`; per writer, may the LLM write?"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

from agents.llm.evidence import EvidenceData, FieldEvidence, MeasuredWith, load_evidence
from agents.settings import Settings

log = logging.getLogger(__name__)
WRITERS_FORMAT: Literal["llm_writers_evidence.v2"] = "llm_writers_evidence.v2"
WRITERS_FILE = "llm_writers_evidence.json"  # in the data folder, unless TRIAGE_LLM_WRITERS_EVIDENCE names another file
# what the LLM may write under llm_first, and the command that holds its texts against the extractive ones
SUMMARIES_EVAL = "python -m evals.summaries_eval --llm --rows holdout --out DIR --evidence FILE"
WRITERS = {
    "summary": SUMMARIES_EVAL,
    "reply": SUMMARIES_EVAL,
    "answer": "triage eval answers --data evals/data/questions.v1.jsonl --out DIR --llm-evidence FILE",
}
REMEDY = SUMMARIES_EVAL  # what to run when the file cannot be used: it writes the file anew
HOW_TO = "measure it with the LLM ({commands}), FILE being {path} (or the file TRIAGE_LLM_WRITERS_EVIDENCE names)"


class WriterEvidence(FieldEvidence):
    """One writer (`field`: summary, reply or answer) under llm_first: on reference rows, the share the extractive
    writer and the LLM each got right, the rows each one fixed or broke, and the data it was measured on."""

    data: EvidenceData


class WritersEvidence(MeasuredWith):
    """What the writer evals measured for one model; each eval replaces the results of the writers it measured."""

    format: Literal["llm_writers_evidence.v2"] = WRITERS_FORMAT
    updated_at: datetime
    results: list[WriterEvidence]

    def find(self, writer: str) -> WriterEvidence | None:
        return next((r for r in self.results if r.field == writer), None)


def writers_evidence_path(settings: Settings) -> Path:
    return settings.llm_writers_evidence or settings.data_dir / WRITERS_FILE


def read_writers_evidence(path: Path) -> WritersEvidence | None:
    """The evidence in `path`, None when there is no such file; EvidenceInvalid when it is there but unusable."""
    return load_evidence(path, WritersEvidence, WRITERS_FORMAT, REMEDY)


def save_writers_evidence(path: Path, measured: WritersEvidence) -> WritersEvidence:
    """Write `measured` to `path`, keeping the other writers' results already there for the same model (a file for
    another model is replaced whole); returns what was written."""
    before = read_writers_evidence(path)
    if before is not None and before.model == measured.model:
        names = {r.field for r in measured.results}
        kept = [r for r in before.results if r.field not in names]
        measured = measured.model_copy(update={"results": [*kept, *measured.results]})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(measured.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return measured


@dataclass
class WriterChoice:
    """The writers the LLM may take over, and one line per writer saying why (for the start log)."""

    llm_writers: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)


def choose_writers(evidence: WritersEvidence | None, model: str | None, path: Path) -> WriterChoice:
    """The writers the evidence says the LLM helps with (same model); the others stay extractive."""
    choice = WriterChoice()
    how_to = HOW_TO.format(commands="; ".join(sorted(set(WRITERS.values()))), path=path)
    if evidence is None:
        choice.lines.append(
            f"no LLM writers evidence at {path}: summaries, replies and answers stay extractive; {how_to}"
        )
        return choice
    if evidence.model != model:
        choice.lines.append(
            f"the LLM writers evidence {path} was measured with model {evidence.model!r}, not {model!r}: summaries, "
            f"replies and answers stay extractive; {how_to}"
        )
        return choice
    for name, command in WRITERS.items():
        found = evidence.find(name)
        if found is None:
            choice.lines.append(f"{name}: no evidence in {path}: extractive; measure it with `{command}`")
        elif found.verdict != "helps":
            choice.lines.append(f"{name}: {found.describe()}: extractive")
        else:
            choice.llm_writers.append(name)
            choice.lines.append(f"{name}: {found.describe()}")
    return choice


def writers_from_evidence(settings: Settings) -> list[str]:
    """The writers the LLM may take over for this service (read, decided and logged once, at start)."""
    path = writers_evidence_path(settings)
    evidence = read_writers_evidence(path)
    choice = choose_writers(evidence, settings.llm_model, path)
    usable = evidence is not None and evidence.model == settings.llm_model
    for line in choice.lines:
        log.log(logging.INFO if usable else logging.WARNING, "%s", line)
    return choice.llm_writers
