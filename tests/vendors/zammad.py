"""A loopback Zammad: token auth, ticket update with article, articles by ticket, tags, paged ticket search."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime
from typing import Any

from tests.vendors.kit import Recorded, Reply, VendorServer

GROUPS = {1: "Users", 2: "2nd Level", 3: "Service Desk", 4: "Network"}
PRIORITIES = {1: "1 low", 2: "2 normal", 3: "3 high"}
STATES = {1: "new", 2: "open", 3: "pending reminder", 4: "closed", 5: "merged"}
TICKET = re.compile(r"^/api/v1/tickets/(\d+)$")
ARTICLES = re.compile(r"^/api/v1/ticket_articles/by_ticket/(\d+)$")
SINCE = re.compile(r"created_at:>=(\d{4}-\d{2}-\d{2})")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _id_of(table: dict[int, str], name: str) -> int | None:
    return next((key for key, value in table.items() if value == name), None)


class ZammadServer(VendorServer):
    """Keeps tickets, their articles and tags in memory; `expand=False` makes ticket search answer with the
    {"tickets": [ids], "assets": {...}} shape even when asked for expand=true."""

    def __init__(self, token: str = "zammad-test-token", expand: bool = True) -> None:
        super().__init__()
        self.token, self.expand = token, expand
        self.tickets: dict[int, dict[str, Any]] = {}
        self.articles: dict[int, list[dict[str, Any]]] = {}
        self.tags: dict[int, list[str]] = {}
        self.users: dict[int, str] = {1: "triage@acme.example"}  # id -> email; 1 is the API token's user
        self._ids = {"ticket": 100, "article": 1000}
        self._lock = threading.Lock()

    # --- for tests ----------------------------------------------------------------------------------------------

    def seed(
        self,
        title: str,
        body: str = "",
        group: str = "Users",
        priority: str = "2 normal",
        state: str = "new",
        created_at: str | None = None,
        tags: list[str] | None = None,
        customer: str = "emily@example.com",
        content_type: str = "text/html",
    ) -> int:
        """A ticket with its first (customer) article; returns the ticket id."""
        with self._lock:
            self._ids["ticket"] += 1
            ticket_id, at = self._ids["ticket"], created_at or _now()
            self.tickets[ticket_id] = {
                "id": ticket_id,
                "number": str(31000 + ticket_id),
                "title": title,
                "group_id": _id_of(GROUPS, group),
                "priority_id": _id_of(PRIORITIES, priority),
                "state_id": _id_of(STATES, state),
                "customer_id": self._user(customer),
                "created_at": at,
                "updated_at": at,
                "updated_by_id": self._user(customer),
            }
            self.articles[ticket_id] = []
            self.tags[ticket_id] = list(tags or [])
            self._add_article(ticket_id, {"body": body, "type": "email", "internal": False}, content_type, at)
            return ticket_id

    def ticket(self, ticket_id: int) -> dict[str, Any]:
        """The stored ticket with its relations by name (group, priority, state) and its tags."""
        with self._lock:
            return {**self._expanded(ticket_id), "tags": list(self.tags[ticket_id])}

    def notes(self, ticket_id: int) -> list[dict[str, Any]]:
        """The articles added after the first one (notes and replies), oldest first."""
        with self._lock:
            return [dict(a) for a in self.articles[ticket_id][1:]]

    # --- the API ------------------------------------------------------------------------------------------------

    def route(self, request: Recorded) -> Reply:
        given = request.headers.get("authorization", "")
        if not given:
            return 401, {"error": "authentication failed"}, {}
        if given != f"Token token={self.token}":
            return 401, {"error": "Invalid token!"}, {}
        with self._lock:
            return self._route(request)

    def _route(self, request: Recorded) -> Reply:
        method, path = request.method, request.path
        if method == "GET" and path == "/api/v1/tickets/search":
            return self._search(request.query)
        if method == "POST" and path == "/api/v1/tags/add":
            return self._tag(request.json or {})
        if method == "GET" and path == "/api/v1/tags":
            found = self._find(request.query.get("o_id", ""))
            return (200, {"tags": list(self.tags[found])}, {}) if found else self._missing(request.query.get("o_id"))
        if match := ARTICLES.match(path):
            found = self._find(match[1])
            if method == "GET":
                return (200, [dict(a) for a in self.articles[found]], {}) if found else self._missing(match[1])
        if match := TICKET.match(path):
            found = self._find(match[1])
            if not found:
                return self._missing(match[1])
            if method == "GET":
                return 200, self._expanded(found), {}
            if method == "PUT":
                return self._update(found, request.json or {})
        return 404, {"error": f"No route matches [{method}] {path}"}, {}

    def _search(self, query: dict[str, str]) -> Reply:
        since = SINCE.search(query.get("query", ""))
        rows = [t for t in self.tickets.values() if not since or t["created_at"][:10] >= since[1]]
        rows.sort(key=lambda t: (t["created_at"], t["id"]), reverse=query.get("order_by") == "desc")
        page, per_page = int(query.get("page", "1")), min(int(query.get("per_page", "50")), 200)
        rows = rows[(page - 1) * per_page : page * per_page]
        if self.expand and query.get("expand") == "true":
            return 200, [self._expanded(t["id"]) for t in rows], {}
        assets = {
            "Ticket": {str(t["id"]): self._plain(t["id"]) for t in rows},
            "Group": {str(k): {"id": k, "name": v} for k, v in GROUPS.items()},
            "TicketPriority": {str(k): {"id": k, "name": v} for k, v in PRIORITIES.items()},
            "TicketState": {str(k): {"id": k, "name": v} for k, v in STATES.items()},
            "User": {str(k): {"id": k, "login": v, "email": v} for k, v in self.users.items()},
        }
        return 200, {"tickets": [t["id"] for t in rows], "tickets_count": len(rows), "assets": assets}, {}

    def _update(self, ticket_id: int, body: dict[str, Any]) -> Reply:
        ticket = self.tickets[ticket_id]
        changes: dict[str, int] = {}
        for attribute, table in (("group", GROUPS), ("priority", PRIORITIES), ("state", STATES)):
            if attribute in body:
                found = _id_of(table, str(body[attribute]))
                if found is None:
                    return 422, {"error": f"No lookup value found for '{attribute}': {body[attribute]!r}"}, {}
                changes[f"{attribute}_id"] = found
        ticket.update(changes, updated_at=_now(), updated_by_id=1)
        if "title" in body:
            ticket["title"] = str(body["title"])
        if isinstance(body.get("article"), dict):
            article = body["article"]
            self._add_article(ticket_id, article, str(article.get("content_type") or "text/html"), ticket["updated_at"])
        return 200, self._plain(ticket_id), {}

    def _tag(self, body: dict[str, Any]) -> Reply:
        found = self._find(str(body.get("o_id", "")))
        if body.get("object") != "Ticket" or not found or not body.get("item"):
            return (422, {"error": "Need object, o_id and item"}, {}) if found else self._missing(body.get("o_id"))
        if body["item"] not in self.tags[found]:
            self.tags[found].append(str(body["item"]))
        return 201, True, {}

    # --- plumbing -----------------------------------------------------------------------------------------------

    def _add_article(self, ticket_id: int, article: dict[str, Any], content_type: str, at: str) -> None:
        self._ids["article"] += 1
        stored = {
            "id": self._ids["article"],
            "ticket_id": ticket_id,
            "type": article.get("type", "note"),
            "internal": bool(article.get("internal", False)),  # Zammad's default: a public article
            "content_type": content_type,
            "body": str(article.get("body", "")),
            "subject": article.get("subject"),
            "created_at": at,
            "updated_at": at,
        }
        self.articles[ticket_id].append(stored)

    def _user(self, email: str) -> int:
        found = next((key for key, value in self.users.items() if value == email), None)
        if found is None:
            found = max(self.users) + 1
            self.users[found] = email
        return found

    def _find(self, ticket_id: str) -> int | None:
        return int(ticket_id) if ticket_id.isdigit() and int(ticket_id) in self.tickets else None

    def _missing(self, ticket_id: Any) -> Reply:
        return 404, {"error": f"Couldn't find Ticket with 'id'={ticket_id}"}, {}

    def _plain(self, ticket_id: int) -> dict[str, Any]:
        """The ticket as Zammad answers without expand: relation ids only."""
        return {**self.tickets[ticket_id], "article_ids": [a["id"] for a in self.articles[ticket_id]]}

    def _expanded(self, ticket_id: int) -> dict[str, Any]:
        """The ticket as with expand=true: relation ids plus their names."""
        ticket = self.tickets[ticket_id]
        return {
            **self._plain(ticket_id),
            "group": GROUPS.get(ticket["group_id"]),
            "priority": PRIORITIES.get(ticket["priority_id"]),
            "state": STATES.get(ticket["state_id"]),
            "customer": self.users[ticket["customer_id"]],
            "updated_by": self.users[ticket["updated_by_id"]],
            "article_count": len(self.articles[ticket_id]),
        }
