"""The Zammad connector: signed trigger webhooks in, one ticket update with an internal note out, search backfill.

Field mapping: `team` is the ticket's group, `priority` its priority and `category` one of its tags. The mapping values
are the names Zammad shows (and its API accepts by name): a group name ("2nd Level"), a priority name ("3 high",
"2 normal", "1 low") and a tag ("network"). Inbound, the category is the one tag of the ticket that a category maps
to (none or several such tags: no category). A ticket is resolved when its state is "closed" or its state name
contains "closed" or "resolved" (custom states such as "resolved - confirmed").
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from agents.connectors.base import (
    BackfillPage,
    Connector,
    ConnectorError,
    InboundEvent,
    PayloadInvalid,
    SignatureInvalid,
    VendorCall,
    WriteBack,
    header,
    need,
)
from agents.connectors.signatures import check_hub_signature
from agents.connectors.text import iso_time, plain_text

CREATED_WITHIN = 2.0  # seconds between created_at and updated_at that still count as the creation (no trigger name)
RELATIONS = {"group": "Group", "priority": "TicketPriority", "state": "TicketState", "customer": "User"}  # -> assets


class BackfillCursorInvalid(ConnectorError):
    """A backfill cursor this connector did not write (Zammad cursors are search page numbers)."""

    code = "cursor_invalid"

    def __init__(self, system: str, cursor: str) -> None:
        self.cursor = cursor
        super().__init__(system, f"the backfill cursor {cursor[:40]!r} is not a page number")


def name_of(value: Any) -> str | None:
    """A relation as its name: the default webhook payload nests objects ({"name": ...}), expand=true gives names."""
    if isinstance(value, dict):
        value = value.get("name") or value.get("email") or value.get("login")
    return str(value) if isinstance(value, str | int) and str(value) else None


def tags_of(ticket: Mapping[str, Any]) -> list[str] | None:
    """The ticket's tags when the payload carries them (a list, or a comma-separated string); None when absent."""
    tags = ticket.get("tags")
    if isinstance(tags, str):
        return [t.strip() for t in tags.split(",") if t.strip()]
    return [str(t) for t in tags] if isinstance(tags, list) else None


def is_resolved(state: str | None) -> bool:
    lowered = (state or "").lower()
    return "closed" in lowered or "resolved" in lowered


class ZammadConnector(Connector):
    """Zammad: X-Hub-Signature (HMAC-SHA1) webhooks from triggers, REST API with `Token token=` auth."""

    system = "zammad"
    page_size: int = 100  # tickets per search page (Zammad caps search pages at a few hundred)

    # --- inbound ------------------------------------------------------------------------------------------------

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> None:
        secret = self.config.webhook_secret
        if not secret:
            raise SignatureInvalid(self.system, "TRIAGE_ZAMMAD_WEBHOOK_SECRET is not set: unsigned events are refused")
        check_hub_signature(self.system, headers, body, secret, "sha1")  # Zammad signs no timestamp: no window

    def parse(self, payload: Any, headers: Mapping[str, str]) -> InboundEvent:
        ticket_id = need(payload, "ticket.id", self.system)
        need(payload, "ticket.number", self.system)
        updated_at = need(payload, "ticket.updated_at", self.system)
        ticket: dict[str, Any] = payload["ticket"]
        article = payload.get("article") if isinstance(payload.get("article"), dict) else None
        delivery = header(headers, "X-Zammad-Delivery")  # the job id: the same on Zammad's retries of a delivery
        event_id = delivery.strip()[:200] if delivery and delivery.strip() else f"{ticket_id}:{updated_at}"
        return self._event(ticket, article, self._kind(ticket, headers), event_id)

    def _kind(self, ticket: Mapping[str, Any], headers: Mapping[str, str]) -> str:
        """Zammad does not say create or update: the trigger's name does (docs/connectors/zammad.md names one
        trigger per case); without a telling name, a ticket whose updated_at is its created_at was just created."""
        trigger = (header(headers, "X-Zammad-Trigger") or "").lower()
        if "create" in trigger and "update" not in trigger:
            return "created"
        if "update" in trigger and "create" not in trigger:
            return "updated"
        created, updated = iso_time(ticket.get("created_at")), iso_time(ticket.get("updated_at"))
        if created and updated and abs((updated - created).total_seconds()) <= CREATED_WITHIN:
            return "created"
        return "updated"

    def _event(
        self, ticket: Mapping[str, Any], article: Mapping[str, Any] | None, kind: str, event_id: str
    ) -> InboundEvent:
        values = {"team": name_of(ticket.get("group")), "priority": name_of(ticket.get("priority"))}
        values["category"] = self._category(tags_of(ticket))
        body = ""
        if article and isinstance(article.get("body"), str):
            body = plain_text(article["body"], article.get("content_type"))
        return InboundEvent(
            system=self.system,
            event_id=event_id,
            kind="created" if kind == "created" else "updated",
            external_id=str(ticket["id"]),
            title=str(ticket.get("title") or "").strip(),
            body=body,
            requester=name_of(ticket.get("customer")),
            created_at=iso_time(ticket.get("created_at")),
            values={field: value for field, value in values.items() if value},
            resolved=is_resolved(name_of(ticket.get("state"))),
            author=name_of(ticket.get("updated_by")),
        )

    def _category(self, tags: list[str] | None) -> str | None:
        mapped = set(self.mapping.category.values())
        found = list(dict.fromkeys(tag for tag in tags or [] if tag in mapped))
        return found[0] if len(found) == 1 else None

    # --- outbound -----------------------------------------------------------------------------------------------

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Token token={self.config.token}"}

    def calls(self, write: WriteBack) -> list[VendorCall]:
        """One PUT sets group and priority and adds the internal note together (all or nothing); the category, a
        tag, needs its own POST /api/v1/tags/add, which is repeatable: a tag already there is not added twice."""
        ticket: dict[str, Any] = {
            "article": {"body": write.note, "type": "note", "internal": True, "content_type": "text/plain"}
        }
        for field, attribute in (("team", "group"), ("priority", "priority")):
            if write.set_fields.get(field):
                ticket[attribute] = write.set_fields[field]
        calls = [VendorCall(method="PUT", path=f"/api/v1/tickets/{write.external_id}", json_body=ticket)]
        if write.set_fields.get("category"):
            o_id: int | str = int(write.external_id) if write.external_id.isdigit() else write.external_id
            tag = {"object": "Ticket", "o_id": o_id, "item": write.set_fields["category"]}
            calls.append(VendorCall(method="POST", path="/api/v1/tags/add", json_body=tag, repeatable=True))
        return calls

    def note_exists(self, client: httpx.Client, write: WriteBack) -> bool:
        response = client.get(f"/api/v1/ticket_articles/by_ticket/{write.external_id}")
        response.raise_for_status()
        bodies = [str(a.get("body") or "") for a in response.json() if isinstance(a, dict)]
        return any(write.marker in body or write.marker in html.unescape(body) for body in bodies)

    def backfill_page(self, client: httpx.Client, since: datetime, cursor: str | None) -> BackfillPage:
        """Page N of `created_at:>=<since day>` sorted by created_at ascending; the cursor is the next page number
        (valid for the same `since`). Zammad gives no total, so a short page is the last one."""
        if cursor is not None and not cursor.isdigit():
            raise BackfillCursorInvalid(self.system, cursor)
        page = int(cursor) if cursor else 1
        start = since if since.tzinfo else since.replace(tzinfo=UTC)
        query = f"created_at:>={start.astimezone(UTC).date().isoformat()}"  # Elasticsearch syntax, UTC days
        params = {"query": query, "sort_by": "created_at", "order_by": "asc", "expand": "true"}
        params.update(page=str(page), per_page=str(self.page_size))
        response = client.get("/api/v1/tickets/search", params=params)
        response.raise_for_status()
        tickets = search_tickets(response.json())
        events = []
        for ticket in tickets:
            created = iso_time(ticket.get("created_at"))
            if created is None or created < start:  # the query is by day: drop the earlier hours of `since`'s day
                continue
            if tags_of(ticket) is None and self.mapping.category:
                ticket = {**ticket, "tags": self._tags(client, ticket["id"])}
            first = self._first_article(client, ticket["id"])
            events.append(self._event(ticket, first, "created", f"backfill:{ticket['id']}"))
        return BackfillPage(events=events, cursor=str(page + 1) if len(tickets) >= self.page_size else None)

    def _first_article(self, client: httpx.Client, ticket_id: Any) -> dict[str, Any] | None:
        """The ticket's first article (the request itself): search results carry article ids, not bodies."""
        response = client.get(f"/api/v1/ticket_articles/by_ticket/{ticket_id}")
        response.raise_for_status()
        articles = [a for a in response.json() if isinstance(a, dict)]
        return min(articles, key=lambda a: int(a.get("id") or 0), default=None)

    def _tags(self, client: httpx.Client, ticket_id: Any) -> list[str]:
        response = client.get("/api/v1/tags", params={"object": "Ticket", "o_id": str(ticket_id)})
        response.raise_for_status()
        return [str(tag) for tag in response.json().get("tags") or []]


def search_tickets(answer: Any) -> list[dict[str, Any]]:
    """Tickets of a search answer: a list with expand=true, else {"tickets": [ids], "assets": {"Ticket": {id: ...},
    "Group": ..., "User": ...}} whose relation ids are resolved here from the assets that hold them."""
    if isinstance(answer, list):
        return [t for t in answer if isinstance(t, dict) and "id" in t]
    if not isinstance(answer, dict) or not isinstance(answer.get("tickets"), list):
        raise PayloadInvalid("zammad", "the ticket search answer is neither a list nor {tickets, assets}")
    assets = answer.get("assets") or {}
    tickets = []
    for ticket_id in answer["tickets"]:
        ticket = dict((assets.get("Ticket") or {}).get(str(ticket_id)) or {})
        if not ticket:
            continue
        for relation, kind in RELATIONS.items():
            related = (assets.get(kind) or {}).get(str(ticket.get(f"{relation}_id")))
            if relation not in ticket and related:
                ticket[relation] = related  # an object: name_of() reads its name or email
        tickets.append(ticket)
    return tickets
