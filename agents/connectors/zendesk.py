"""Zendesk: check a signed webhook, read its ticket event, write one internal note, page the incremental export.

Field mapping for Zendesk: `team` is a Zendesk group, its vendor value the group id as a decimal string
("360001234567"); `priority` is the ticket priority, one of "urgent", "high", "normal", "low"; `category` is a
ticket tag ("network"). Inbound, the category value is the first ticket tag that some category label maps to; outbound,
the category tag is added to the ticket's tags (its other tags stay). Two inbound shapes are read: Zendesk's own
ticket events (`zen:event-type:ticket.*`, the ticket under `detail`) and the JSON body of a trigger webhook written
from the template in docs/connectors/zendesk.md (`{"trigger": ..., "ticket": {...}}`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import httpx

from agents.connectors.base import (
    FIELDS,
    BackfillPage,
    Connector,
    ConnectorConfig,
    ConnectorError,
    FieldMapping,
    InboundEvent,
    MappingValueInvalid,
    PayloadInvalid,
    SignatureInvalid,
    VendorCall,
    WriteBack,
    basic_credentials,
    need,
)
from agents.connectors.signatures import check_zendesk_signature
from agents.connectors.text import intake_of, iso_time

Kind = Literal["created", "updated"]
TICKET_EVENT_PREFIX = "zen:event-type:ticket."
TICKET_CREATED_EVENT = "zen:event-type:ticket.created"
TRIGGER_KINDS = ("created", "updated")
PRIORITIES = ("urgent", "high", "normal", "low")
RESOLVED_STATUSES = frozenset({"solved", "closed"})
EXPORT_PATH = "/api/v2/incremental/tickets/cursor.json"
VALUE_FORMATS = {"team": "a group id (digits)", "priority": "urgent, high, normal or low", "category": "one tag"}
MAX_COMMENT_PAGES = 100  # a ticket holds at most 5000 comments, 100 a page: more pages means a looping next_page


def digits(text: str) -> bool:
    return text.isascii() and text.isdigit()  # str.isdigit alone takes "²", which int() refuses


def valid_value(field: str, value: str) -> bool:
    if field == "team":
        return digits(value)
    if field == "priority":
        return value in PRIORITIES
    return bool(value) and not any(char.isspace() for char in value)  # a space would make two tags


class ZendeskConnector(Connector):
    """Zendesk Support: HMAC-signed webhooks, one `PUT /api/v2/tickets/{id}.json` per write, cursor export."""

    system = "zendesk"

    def __init__(self, config: ConnectorConfig, mapping: FieldMapping) -> None:
        super().__init__(config, mapping)
        for field, expected in VALUE_FORMATS.items():
            for label, value in dict(getattr(mapping, field)).items():
                if not valid_value(field, value):
                    raise MappingValueInvalid(self.system, field, label, value, expected)

    # --- inbound ------------------------------------------------------------------------------------------------

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> None:
        if not self.config.webhook_secret:
            raise SignatureInvalid(self.system, "no webhook secret is set (TRIAGE_ZENDESK_WEBHOOK_SECRET)")
        check_zendesk_signature(headers, body, self.config.webhook_secret, now, self.config.replay_window)

    def parse(self, payload: Any, headers: Mapping[str, str]) -> InboundEvent:
        if not isinstance(payload, dict):
            raise PayloadInvalid(self.system, f"the body is a JSON {type(payload).__name__}, not an object")
        if "type" in payload or "detail" in payload:
            return self._ticket_event(payload)
        if "trigger" in payload or "ticket" in payload:
            return self._trigger_body(payload)
        raise PayloadInvalid(
            self.system,
            "the payload has no `type` and `detail` (a Zendesk ticket event) nor `trigger` and `ticket` "
            "(the trigger body template): is this a zendesk ticket event?",
        )

    def _ticket_event(self, payload: dict[str, Any]) -> InboundEvent:
        """An event-subscribed webhook: `id` is the event id, the same on every retry of the delivery."""
        event_type = str(need(payload, "type", self.system))
        if not event_type.startswith(TICKET_EVENT_PREFIX):
            raise PayloadInvalid(self.system, f"`type` is {event_type[:80]!r}, not a zen:event-type:ticket.* event")
        event_id = str(need(payload, "id", self.system))
        ticket = need(payload, "detail", self.system)
        self._ticket_id(need(payload, "detail.id", self.system), "detail.id")
        kind: Kind = "created" if event_type == TICKET_CREATED_EVENT else "updated"
        return self._event(ticket, event_id=event_id, kind=kind, author=_text(ticket.get("actor_id")) or None)

    def _trigger_body(self, payload: dict[str, Any]) -> InboundEvent:
        """A trigger webhook with our body template: no stable event id, so ticket id + updated_at is the key."""
        trigger = str(need(payload, "trigger", self.system))
        if trigger not in TRIGGER_KINDS:
            raise PayloadInvalid(self.system, f"`trigger` is {trigger[:40]!r}, not one of {', '.join(TRIGGER_KINDS)}")
        ticket = need(payload, "ticket", self.system)
        ticket_id = self._ticket_id(need(payload, "ticket.id", self.system), "ticket.id")
        updated_at = _text(need(payload, "ticket.updated_at", self.system))
        author = _text(payload.get("actor")) or None
        kind: Kind = "created" if trigger == "created" else "updated"
        return self._event(ticket, event_id=f"{ticket_id}:{updated_at}", kind=kind, author=author)

    def _event(self, ticket: dict[str, Any], *, event_id: str, kind: Kind, author: str | None) -> InboundEvent:
        """The InboundEvent of one ticket object: event `detail`, our trigger template, or an export row."""
        status = _text(ticket.get("status")).lower()
        requester = _text(ticket.get("requester")) or _text(ticket.get("requester_id"))
        return InboundEvent(
            system=self.system,
            event_id=event_id,
            kind=kind,
            external_id=self._ticket_id(ticket.get("id"), "ticket id"),
            title=_text(ticket.get("subject")),
            body=_text(ticket.get("description")),
            requester=requester or None,
            created_at=iso_time(ticket.get("created_at")),
            values=self._values(ticket),
            intake=intake_of(ticket_type=_text(ticket.get("type"))),  # problem, incident, question or task
            resolved=status in RESOLVED_STATUSES,
            author=author,
        )

    def _values(self, ticket: dict[str, Any]) -> dict[str, str]:
        """The ticket's current group id, priority and category tag, each left out when the ticket has none."""
        values: dict[str, str] = {}
        group = _text(ticket.get("group_id"))
        if digits(group) and int(group) > 0:
            values["team"] = str(int(group))
        # Event payloads spell priority and status in capitals in some of Zendesk's samples ("OPEN", "Open"),
        # the placeholders render display names ("High"), the REST API lower case: compare lower case.
        priority = _text(ticket.get("priority")).lower()
        if priority in PRIORITIES:
            values["priority"] = priority
        category_tags = set(self.mapping.category.values())
        category = next((tag for tag in _tags(ticket.get("tags")) if tag in category_tags), None)
        if category is not None:
            values["category"] = category
        return values

    def _ticket_id(self, value: Any, where: str) -> str:
        text = _text(value)
        if not digits(text):
            raise PayloadInvalid(self.system, f"`{where}` is {text[:40]!r}, not a Zendesk ticket number")
        return text

    # --- outbound -----------------------------------------------------------------------------------------------

    def auth_headers(self) -> dict[str, str]:
        """API token auth: Basic base64("{email}/token:{api_token}")."""
        if not self.config.user:
            raise ConnectorError(self.system, "no API user e-mail is set (TRIAGE_ZENDESK_EMAIL)")
        credentials = basic_credentials(f"{self.config.user}/token", self.config.token)
        return {"Authorization": f"Basic {credentials}"}

    def calls(self, write: WriteBack) -> list[VendorCall]:
        """One ticket update carrying the private comment and the fields: a retry cannot apply half of it."""
        ticket: dict[str, Any] = {"comment": {"body": write.note, "public": False}}
        for field, value in write.set_fields.items():
            if field in VALUE_FORMATS and not valid_value(field, value):
                raise ConnectorError(self.system, f"{field} value {value!r} is not {VALUE_FORMATS[field]}")
            if field == "team":
                ticket["group_id"] = int(value)
            elif field == "priority":
                ticket["priority"] = value
            elif field == "category":
                ticket["additional_tags"] = [value]  # adds the tag, keeps the ticket's other tags
            else:
                raise ConnectorError(self.system, f"cannot set {field!r}: the fields are {', '.join(FIELDS)}")
        path = f"/api/v2/tickets/{quote(write.external_id, safe='')}.json"
        return [VendorCall(method="PUT", path=path, json_body={"ticket": ticket})]

    def note_exists(self, client: httpx.Client, write: WriteBack) -> bool:
        """Walk the ticket's comments (newest first, following `next_page`) for one that holds the marker."""
        url: str | None = f"/api/v2/tickets/{quote(write.external_id, safe='')}/comments.json?sort_order=desc"
        for _ in range(MAX_COMMENT_PAGES):
            if url is None:
                return False
            response = client.get(url)
            response.raise_for_status()
            data = response.json()
            for comment in data.get("comments") or []:
                if any(write.marker in _text(comment.get(key)) for key in ("body", "plain_body")):
                    return True
            url = _relative(data.get("next_page"))
        return False

    def backfill_page(self, client: httpx.Client, since: datetime, cursor: str | None) -> BackfillPage:
        """One page of the cursor-based incremental ticket export. The export walks tickets by update time, so a
        ticket created before `since` and updated after it shows up: it is dropped here, as are deleted tickets."""
        since = since if since.tzinfo else since.replace(tzinfo=UTC)
        params = {"start_time": str(int(since.timestamp()))} if cursor is None else {"cursor": cursor}
        response = client.get(EXPORT_PATH, params=params)
        response.raise_for_status()
        data = response.json()
        events = []
        for ticket in data.get("tickets") or []:
            created = iso_time(ticket.get("created_at"))
            if created is None or created < since or _text(ticket.get("status")).lower() == "deleted":
                continue
            ticket_id = self._ticket_id(ticket.get("id"), "tickets[].id")
            events.append(self._event(ticket, event_id=f"backfill:{ticket_id}", kind="created", author=None))
        after = _text(data.get("after_cursor"))
        return BackfillPage(events=events, cursor=None if data.get("end_of_stream") or not after else after)


def _text(value: Any) -> str:
    """A JSON scalar as stripped text ("" for null); ids arrive as numbers (REST) or strings (events)."""
    if value is None or isinstance(value, (dict, list)):
        return ""
    return str(value).strip()


def _tags(value: Any) -> list[str]:
    """Tags as a JSON list (events, REST) or the space-separated text of the {{ticket.tags}} placeholder."""
    if isinstance(value, list):
        return [_text(tag) for tag in value if _text(tag)]
    return _text(value).split()


def _relative(next_page: Any) -> str | None:
    """`next_page` is an absolute URL on the account's host: keep its path and query, so the request goes to the
    configured base URL with our credentials and never to a host named in a response."""
    text = _text(next_page)
    if not text:
        return None
    parts = urlsplit(text)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path
