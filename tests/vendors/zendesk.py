"""A loopback Zendesk Support: API-token auth, ticket update, comment listing and the cursor-based ticket export."""

from __future__ import annotations

import base64
import html
import re
import threading
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from tests.vendors.kit import Recorded, Reply, VendorServer

PRIORITIES = ("urgent", "high", "normal", "low")
TICKET_PATH = re.compile(r"^/api/v2/tickets/(\d+)\.json$")
COMMENTS_PATH = re.compile(r"^/api/v2/tickets/(\d+)/comments\.json$")
EXPORT_PATH = "/api/v2/incremental/tickets/cursor.json"

# Zendesk's own error bodies (API reference: "Errors"): 401 and 404 as documented, the others in the same shape.
UNAUTHORIZED = {"error": "Couldn't authenticate you"}
NOT_FOUND = {"error": "RecordNotFound", "description": "Not found"}
NO_ENDPOINT = {"error": "InvalidEndpoint", "description": "Not found"}


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def record_invalid(field: str, problem: str) -> Reply:
    """A 422 RecordInvalid, as Zendesk answers a ticket update with a field it cannot take."""
    details = {field: [{"description": problem, "error": "InvalidValue"}]}
    return 422, {"error": "RecordInvalid", "description": "Record validation errors", "details": details}, {}


def bad_request(description: str) -> Reply:
    return 400, {"error": "InvalidValue", "description": description}, {}


def number(query: dict[str, str], name: str, default: int) -> int:
    value = query.get(name, "")
    return int(value) if value.isdigit() else default


class ZendeskServer(VendorServer):
    """Tickets in memory; `seed` adds one, `ticket` and `comments` read back what the connector wrote."""

    AGENT_ID = 900000000001  # the API user's id: the author of the comments the connector adds

    def __init__(
        self,
        email: str = "triage@acme.example",
        token: str = "zd-api-token",
        page_size: int = 1000,
        comments_page_size: int = 100,
    ) -> None:
        super().__init__()
        self.email, self.token = email, token
        self.page_size, self.comments_page_size = page_size, comments_page_size
        self._tickets: dict[int, dict[str, Any]] = {}
        self._comments: dict[int, list[dict[str, Any]]] = {}
        self._ids = {"ticket": 35000, "comment": 7000000, "audit": 8000000}
        self._store = threading.Lock()

    # --- for tests ----------------------------------------------------------------------------------------------

    def seed(
        self,
        subject: str,
        description: str = "",
        *,
        created_at: datetime,
        updated_at: datetime | None = None,
        priority: str | None = None,
        group_id: int | None = None,
        tags: tuple[str, ...] = (),
        status: str = "new",
        requester_id: int = 20978392,
        ticket_id: int | None = None,
        comments: tuple[str, ...] = (),
    ) -> int:
        """A ticket as the requester opened it: the description is its first (public) comment."""
        with self._store:
            ticket_id = ticket_id or self._next("ticket")
            self._tickets[ticket_id] = {
                "id": ticket_id,
                "subject": subject,
                "raw_subject": subject,
                "description": description,
                "priority": priority,
                "status": status,
                "type": None,
                "group_id": group_id,
                "requester_id": requester_id,
                "submitter_id": requester_id,
                "assignee_id": None,
                "tags": list(tags),
                "created_at": created_at,
                "updated_at": updated_at or created_at,
            }
            self._comments[ticket_id] = []
            for text in (description, *comments) if description else comments:
                self._add_comment(ticket_id, text, public=True, author_id=requester_id, at=created_at)
            return ticket_id

    def ticket(self, ticket_id: int) -> dict[str, Any]:
        """The stored ticket fields, as the REST API shows them."""
        with self._store:
            return self._ticket_json(self._tickets[ticket_id])

    def comments(self, ticket_id: int) -> list[dict[str, Any]]:
        with self._store:
            return [dict(comment) for comment in self._comments[ticket_id]]

    # --- the API ------------------------------------------------------------------------------------------------

    def route(self, request: Recorded) -> Reply:
        if request.headers.get("authorization") != self._expected_auth():
            return 401, UNAUTHORIZED, {"WWW-Authenticate": 'Basic realm="Web Password"'}
        ticket_match = TICKET_PATH.match(request.path)
        comments_match = COMMENTS_PATH.match(request.path)
        with self._store:
            if ticket_match and request.method == "PUT":
                return self._update(int(ticket_match.group(1)), request)
            if comments_match and request.method == "GET":
                return self._list_comments(int(comments_match.group(1)), request)
            if request.path == EXPORT_PATH and request.method == "GET":
                return self._export(request)
        return 404, NO_ENDPOINT, {}

    def _expected_auth(self) -> str:
        return "Basic " + base64.b64encode(f"{self.email}/token:{self.token}".encode()).decode()

    def _update(self, ticket_id: int, request: Recorded) -> Reply:
        """PUT /api/v2/tickets/{id}.json: comment (public unless `public: false`), group, priority, tags."""
        ticket = self._tickets.get(ticket_id)
        if ticket is None:
            return 404, NOT_FOUND, {}
        try:
            change = (request.json or {}).get("ticket")
        except ValueError:
            change = None
        if not isinstance(change, dict):
            return bad_request('the body must be {"ticket": {...}}')
        if "priority" in change and change["priority"] not in (*PRIORITIES, None):
            return record_invalid("priority", f"Priority: {change['priority']!r} is not valid")
        if "group_id" in change and not isinstance(change["group_id"], int | None):
            return record_invalid("group_id", "Group: must be a number")
        comment = change.get("comment")
        if comment is not None and not (isinstance(comment, dict) and str(comment.get("body") or "").strip()):
            return record_invalid("comment", "Comment: body cannot be blank")
        now = datetime.now(UTC)
        for field in ("priority", "group_id", "status", "subject"):
            if field in change:
                ticket[field] = change[field]
        if isinstance(change.get("tags"), list):
            ticket["tags"] = [str(tag) for tag in change["tags"]]
        for tag in change.get("additional_tags") or []:
            if str(tag) not in ticket["tags"]:
                ticket["tags"].append(str(tag))
        events = []
        if comment is not None:
            public = comment.get("public", True) is not False  # Zendesk's default: a public reply
            stored = self._add_comment(ticket_id, str(comment["body"]), public=public, author_id=self.AGENT_ID, at=now)
            events.append({"id": stored["id"], "type": "Comment", "public": public, "body": stored["body"]})
        ticket["updated_at"] = max(now, ticket["updated_at"])
        audit = {
            "id": self._next("audit"),
            "ticket_id": ticket_id,
            "author_id": self.AGENT_ID,
            "created_at": iso(now),
            "events": events,
        }
        return 200, {"ticket": self._ticket_json(ticket), "audit": audit}, {}

    def _list_comments(self, ticket_id: int, request: Recorded) -> Reply:
        """GET /api/v2/tickets/{id}/comments.json: offset pages with `next_page` as a full URL."""
        if ticket_id not in self._tickets:
            return 404, NOT_FOUND, {}
        comments = list(self._comments[ticket_id])
        if request.query.get("sort_order") == "desc":
            comments.reverse()
        page = max(1, number(request.query, "page", 1))
        per_page = max(1, min(self.comments_page_size, number(request.query, "per_page", self.comments_page_size)))
        chunk = comments[(page - 1) * per_page : page * per_page]
        base = f"{self.url}{request.path}?sort_order={request.query.get('sort_order', 'asc')}&per_page={per_page}"
        body = {
            "comments": [dict(comment) for comment in chunk],
            "next_page": f"{base}&page={page + 1}" if page * per_page < len(comments) else None,
            "previous_page": f"{base}&page={page - 1}" if page > 1 else None,
            "count": len(comments),
        }
        return 200, body, {}

    def _export(self, request: Recorded) -> Reply:
        """GET /api/v2/incremental/tickets/cursor.json: tickets by (updated_at, id) from `start_time` (Unix
        seconds) or after `cursor`, `per_page` at most (and at most the server's page size)."""
        if "cursor" in request.query:
            position = self._decode_cursor(request.query["cursor"])
            if position is None:
                return bad_request("cursor is invalid")
        elif (request.query.get("start_time") or "").isdigit():
            position = (float(request.query["start_time"]), -1)  # from start_time on, inclusive
        else:
            return bad_request("start_time or cursor is required")
        size = max(1, min(self.page_size, number(request.query, "per_page", 1000)))
        ordered = sorted(self._tickets.values(), key=lambda t: (t["updated_at"].timestamp(), t["id"]))
        after = [t for t in ordered if (t["updated_at"].timestamp(), t["id"]) > position]
        page = after[:size]
        last = (page[-1]["updated_at"].timestamp(), page[-1]["id"]) if page else position
        cursor = self._encode_cursor(last)
        body = {
            "tickets": [self._ticket_json(ticket) for ticket in page],
            "after_url": f"{self.url}{EXPORT_PATH}?cursor={quote(cursor)}",
            "after_cursor": cursor,
            "before_url": None,
            "before_cursor": None,
            "end_of_stream": len(after) <= size,
        }
        return 200, body, {}

    # --- plumbing -----------------------------------------------------------------------------------------------

    def _next(self, kind: str) -> int:
        self._ids[kind] += 1
        return self._ids[kind]

    def _add_comment(self, ticket_id: int, body: str, *, public: bool, author_id: int, at: datetime) -> dict[str, Any]:
        comment = {
            "id": self._next("comment"),
            "type": "Comment",
            "author_id": author_id,
            "body": body,
            "html_body": f'<div class="zd-comment" dir="auto"><p>{html.escape(body)}</p></div>',
            "plain_body": body,
            "public": public,
            "attachments": [],
            "created_at": iso(at),
        }
        self._comments[ticket_id].append(comment)
        return comment

    def _ticket_json(self, ticket: dict[str, Any]) -> dict[str, Any]:
        shown = {key: value for key, value in ticket.items() if key not in ("created_at", "updated_at")}
        shown["tags"] = list(ticket["tags"])
        return {
            "url": f"{self.url}/api/v2/tickets/{ticket['id']}.json",
            **shown,
            "created_at": iso(ticket["created_at"]),
            "updated_at": iso(ticket["updated_at"]),
        }

    @staticmethod
    def _encode_cursor(position: tuple[float, int]) -> str:
        """Opaque to clients; Zendesk's cursors decode to "<unix time>||<ticket id>|" and so do these."""
        return base64.urlsafe_b64encode(f"{position[0]!r}||{position[1]}|".encode()).decode()

    @staticmethod
    def _decode_cursor(cursor: str) -> tuple[float, int] | None:
        try:
            moment, _, rest = base64.urlsafe_b64decode(cursor.encode()).decode().partition("||")
            return float(moment), int(rest.rstrip("|"))
        except ValueError:
            return None
