"""LLM classification: a few-shot prompt from retrieval, an answer validated against Literal labels, one re-ask."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from agents.classify import Classification, TicketContext
from agents.errors import InvalidModelOutput, UnknownLabel
from agents.llm.calls import ask, recording
from agents.llm.chat import ChatModel, ChatReply, Message
from agents.redact import Redacted, Redactor, prepare
from agents.types import Deadline, FieldDecision, LlmCall, SimilarTicket, Ticket, ticket_text
from kb.models import Taxonomy
from prompts import Prompt, data_block, load_prompt
from retrieval.hybrid import Hit


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LabelField(_Model):
    """One field to label and its allowed labels (label -> what it means, "" when nobody wrote it down)."""

    name: str
    labels: dict[str, str] = Field(min_length=2)


class Example(_Model):
    id: str
    text: str
    labels: dict[str, str]


class Labelled(_Model):
    labels: dict[str, str]
    confidence: float
    calls: list[LlmCall]
    reasked: bool = False


def taxonomy_fields(taxonomy: Taxonomy) -> list[LabelField]:
    return [
        LabelField(name="category", labels={c.id: f"{c.name}. {c.description}" for c in taxonomy.categories}),
        LabelField(name="priority", labels={p.id: f"{p.name}. {p.description}" for p in taxonomy.priorities}),
    ]


def answer_model(fields: Sequence[LabelField]) -> type[BaseModel]:
    """A pydantic model whose fields are Literal[...] of the allowed labels: anything else fails validation."""
    spec: dict[str, Any] = {f.name: (Literal[tuple(f.labels)], ...) for f in fields}  # type: ignore[valid-type]
    spec["confidence"] = (float, Field(ge=0.0, le=1.0))
    return create_model("LabelAnswer", __config__=ConfigDict(extra="forbid"), **spec)


def wire_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON schema sent to the endpoint: without titles and bounds, which some servers refuse in strict mode."""

    def clean(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: clean(v) for k, v in node.items() if k not in ("title", "minimum", "maximum", "maxLength")}
        return [clean(v) for v in node] if isinstance(node, list) else node

    return clean(model.model_json_schema())


def validation_error(exc: ValidationError, fields: Sequence[LabelField], raw: str) -> InvalidModelOutput:
    """UnknownLabel for a label outside the allowed set, InvalidModelOutput for anything else."""
    allowed = {f.name: list(f.labels) for f in fields}
    for err in exc.errors():
        loc = err.get("loc") or ()
        if err.get("type") == "literal_error" and loc and loc[0] in allowed:
            return UnknownLabel(str(loc[0]), str(err.get("input"))[:100], allowed[str(loc[0])])
    return InvalidModelOutput(brief(exc), raw=raw)


def brief(exc: ValidationError) -> str:
    parts = [f"{'.'.join(str(p) for p in e.get('loc') or ()) or 'answer'}: {e['msg']}" for e in exc.errors()[:3]]
    return "; ".join(parts)[:500]


def sop_attributes(hit: Hit, ref: str | None = None) -> dict[str, str]:
    """The attributes of an SOP's data block: its citation key (`ref`, else the hit's) and its service."""
    service = hit.meta.get("service")
    return {"id": ref or hit.ref, **({"service": str(service)} if service else {})}


class ExampleBank:
    """Labelled past tickets by id, so the neighbours found by retrieval can become few-shot examples."""

    def __init__(self, examples: Iterable[Example]) -> None:
        self.examples = {e.id: e for e in examples}

    @classmethod
    def from_rows(cls, rows: Iterable[dict[str, Any]], fields: Sequence[str] = ("category", "priority")) -> ExampleBank:
        return cls(
            Example(
                id=str(r["id"]),
                text=ticket_text(r.get("title"), r.get("body")),
                labels={f: str(r[f]) for f in fields if r.get(f)},
            )
            for r in rows
            if r.get("id")
        )

    def __len__(self) -> int:
        return len(self.examples)

    def for_neighbours(self, neighbours: Iterable[SimilarTicket], k: int) -> list[Example]:
        found = (self.examples.get(n.id) for n in neighbours)
        return [e for e in found if e is not None][:k]


class LlmLabeller:
    """Asks a chat model for one label per field; validates; re-asks once with the error; then raises. The caps (2
    examples x 160 characters, 1 SOP) fit a 1-thread local server's 20 s (evals/reports/llm/local-server.md, 6)."""

    def __init__(
        self,
        chat: ChatModel,
        fields: Sequence[LabelField],
        *,
        prompt: Prompt | None = None,
        redactor: Redactor | None = None,
        max_examples: int = 2,
        max_sops: int = 1,
        example_chars: int = 160,
        sop_chars: int = 160,
        max_tokens: int = 60,
    ) -> None:
        self.chat = chat
        self.fields = list(fields)
        self.prompt = prompt or load_prompt("classify", "v1")
        self.redactor = redactor or Redactor()
        self.max_examples = max_examples
        self.max_sops = max_sops
        self.example_chars = example_chars
        self.sop_chars = sop_chars
        self.max_tokens = max_tokens
        self.model = answer_model(self.fields)
        self.schema = wire_schema(self.model)

    def messages(self, ticket: Redacted, examples: Sequence[Example], hits: Sequence[Hit]) -> list[Message]:
        mapping = dict(ticket.mapping)  # examples and SOPs take the ticket's placeholders and the next numbers

        def clean(value: str, limit: int) -> str:
            return self.redactor.redact(" ".join(value.split())[:limit], mapping)[0]

        shots = [
            data_block(
                clean(e.text, self.example_chars) + "\n" + "\n".join(f"{f}: {e.labels[f]}" for f in self._names(e)),
                "example",
            )
            for e in examples[: self.max_examples]
        ]
        sops = [
            data_block(f"{h.title} - {h.section}: {clean(h.snippet, self.sop_chars)}", "sop", **sop_attributes(h))
            for h in hits[: self.max_sops]
        ]
        fields = "\n".join(
            f"{f.name}:\n"
            + "\n".join(f"- {label}" + (f": {about}" if about else "") for label, about in f.labels.items())
            for f in self.fields
        )
        answer = "{" + ", ".join(f'"{f.name}": "<{f.name}>"' for f in self.fields) + ', "confidence": 0.0}'
        return self.prompt.render(
            fields=fields,
            answer_format=answer,
            examples="\n".join(shots) or "(none)",
            sops="\n".join(sops) or "(none)",
            ticket=data_block(ticket.text or "(empty)", "ticket"),
        )

    def _names(self, example: Example) -> list[str]:
        return [f.name for f in self.fields if f.name in example.labels]

    def label(
        self,
        text: str | Redacted,
        examples: Sequence[Example] = (),
        hits: Sequence[Hit] = (),
        *,
        deadline: Deadline | None = None,
    ) -> Labelled:
        """Labels for a ticket's text (cut and redacted here when it comes as a plain string)."""
        ticket = text if isinstance(text, Redacted) else prepare(text, self.redactor)
        messages = self.messages(ticket, examples, hits)
        with recording() as calls:  # every call, failed ones too, for the result and the audit trail
            try:
                labels, confidence = self._ask(messages, deadline)
                return Labelled(labels=labels, confidence=confidence, calls=list(calls))
            except InvalidModelOutput as exc:
                error, raw = exc.reason, calls[-1].output or exc.raw
            messages = [
                *messages,
                {"role": "assistant", "content": raw[:1000]},
                {
                    "role": "user",
                    "content": f"That answer is invalid ({error}). Answer again with only the JSON object, "
                    "using only the allowed labels.",
                },
            ]
            labels, confidence = self._ask(messages, deadline)
            return Labelled(labels=labels, confidence=confidence, calls=list(calls), reasked=True)

    def _ask(self, messages: list[Message], deadline: Deadline | None) -> tuple[dict[str, str], float]:
        answer, _ = ask(
            self.chat,
            "classify",
            self.prompt.id,
            messages,
            self.schema,
            self._read,
            schema_name="labels",
            max_tokens=self.max_tokens,
            deadline=deadline,
        )
        return answer

    def _read(self, reply: ChatReply) -> tuple[dict[str, str], float]:
        """The labels and the confidence; UnknownLabel or InvalidModelOutput when the answer does not validate."""
        try:
            answer = self.model.model_validate(reply.parsed).model_dump()
        except ValidationError as exc:
            raise validation_error(exc, self.fields, reply.text) from None
        confidence = float(answer.pop("confidence"))
        return {k: str(v) for k, v in answer.items()}, confidence


class LlmClassifier:
    """The Classifier protocol over an LlmLabeller with the taxonomy's categories and priorities."""

    def __init__(self, chat: ChatModel, taxonomy: Taxonomy, *, examples: ExampleBank | None = None, **options: Any):
        self.name = chat.name
        self.examples = examples
        self.labeller = LlmLabeller(chat, taxonomy_fields(taxonomy), **options)

    def classify(self, ticket: Ticket, context: TicketContext) -> Classification:
        shots = self.examples.for_neighbours(context.neighbours, self.labeller.max_examples) if self.examples else []
        out = self.labeller.label(context.redacted, shots, context.kb_hits, deadline=context.deadline)
        reasons = ["the LLM answered only after one re-ask"] if out.reasked else []
        # the model's own confidence is a claim, kept for the record; the policies put a calibrated figure in its place
        reasons.append(f"the LLM said confidence {out.confidence:.2f} (its own claim, not used as the confidence)")
        decisions = {
            f: FieldDecision(label=out.labels[f], confidence=out.confidence, backend=self.name, reasons=reasons)
            for f in ("category", "priority")
        }
        return Classification(**decisions, llm_calls=out.calls)
