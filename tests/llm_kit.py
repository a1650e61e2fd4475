"""Helpers shared by the LLM tests: a ticket context built from the session's trained service, a settable clock."""

from __future__ import annotations

from agents.classify import TicketContext
from agents.types import Ticket


def context_for(service, ticket: Ticket, deadline: float | None = None) -> TicketContext:  # type: ignore[no-untyped-def]
    """What the service would hand a classifier for this ticket: its vector, neighbours and SOP hits."""
    vector = service.embedder.embed([ticket.text])[0]
    return TicketContext(
        text=ticket.text,
        vector=vector,
        neighbours=service.memory.search(vector, 5),
        kb_hits=service.searcher.search(ticket.text, k=3, vector=vector),
        deadline=deadline,
    )


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now
