"""A loopback Jira Service Management Cloud: basic auth, issue edit, JSM comments and enhanced JQL search paging."""

from __future__ import annotations

import base64
import copy
import hmac
import re
import secrets
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from tests.vendors.kit import Recorded, Reply, VendorServer

PRIORITIES = {"1": "Highest", "2": "High", "3": "Medium", "4": "Low", "5": "Lowest"}
ISSUE_PATH = re.compile(r"^/rest/api/3/issue/([^/]+)$")
COMMENT_PATH = re.compile(r"^/rest/servicedeskapi/request/([^/]+)/comment$")
# the one JQL shape the connector sends; the date is read as UTC (an API user whose profile zone is UTC)
JQL = re.compile(r'^created\s*>=\s*"(\d{4}-\d{2}-\d{2} \d{2}:\d{2})"\s+ORDER BY created ASC$', re.IGNORECASE)
NOT_AUTHENTICATED = {"errorMessages": ["You are not authenticated. Authentication required to perform this operation."]}
NO_ISSUE = {"errorMessages": ["Issue does not exist or you do not have permission to see it."], "errors": {}}
NO_REQUEST = {  # the JSM API (/rest/servicedeskapi) answers with its own error shape
    "errorMessage": "The request could not be found. It may not exist or you may not have permission to view it.",
    "i18nErrorMessage": {"i18nKey": "sd.request.error.not.found", "parameters": []},
}


def jira_time(when: datetime) -> str:
    """How Jira writes a time in issue fields: 2026-12-05T10:00:00.000+0000."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def bad_request(message: str, errors: dict[str, str] | None = None) -> Reply:
    return 400, {"errorMessages": [message] if message else [], "errors": errors or {}}, {}


class JiraServer(VendorServer):
    """Issues by key, each with its JSM comments; search pages are handed out as opaque nextPageTokens."""

    def __init__(self, email: str = "triage@acme.example", api_token: str = "jira-token") -> None:
        super().__init__()
        self.email, self.api_token = email, api_token
        self.issues: dict[str, dict[str, Any]] = {}
        self.comments: dict[str, list[dict[str, Any]]] = {}
        self.page_tokens: dict[str, tuple[str, int]] = {}  # token -> (jql, offset of the page it opens)
        self._next_id = 10000

    # --- for tests ----------------------------------------------------------------------------------------------

    def seed(
        self,
        key: str,
        summary: str,
        created: datetime,
        *,
        description: Any = None,
        priority: str = "3",
        labels: tuple[str, ...] = (),
        components: tuple[str, ...] = (),
        done: bool = False,
    ) -> dict[str, Any]:
        """Add an issue as Jira would hold it (description: a string or an ADF document)."""
        status = {"name": "Resolved", "statusCategory": {"key": "done", "name": "Done"}}
        if not done:
            status = {"name": "Waiting for support", "statusCategory": {"key": "new", "name": "To Do"}}
        fields = {
            "summary": summary,
            "description": description,
            "priority": {"id": priority, "name": PRIORITIES[priority]},
            "labels": list(labels),
            "components": [{"id": str(20000 + i), "name": name} for i, name in enumerate(components)],
            "status": status,
            "created": jira_time(created),
            "reporter": {"accountId": "5b10ac8d82e05b22cc7d4ef5", "displayName": "Ana Lopez"},
        }
        return self.seed_issue({"key": key, "fields": fields})

    def seed_issue(self, issue: dict[str, Any]) -> dict[str, Any]:
        """Add an issue given in the API's own shape (e.g. from a search page fixture)."""
        with self.state.lock:
            self._next_id += 1
            stored = {"id": str(issue.get("id") or self._next_id), **copy.deepcopy(issue)}
            stored["self"] = f"{self.url}/rest/api/3/issue/{stored['id']}"
            self.issues[stored["key"]] = stored
            self.comments.setdefault(stored["key"], [])
            return copy.deepcopy(stored)

    def fields_of(self, key: str) -> dict[str, Any]:
        with self.state.lock:
            return copy.deepcopy(self.issues[key]["fields"])

    def comments_of(self, key: str) -> list[dict[str, Any]]:
        with self.state.lock:
            return copy.deepcopy(self.comments[key])

    # --- the API ------------------------------------------------------------------------------------------------

    def route(self, request: Recorded) -> Reply:
        if not self._authenticated(request):
            return 401, NOT_AUTHENTICATED, {"WWW-Authenticate": 'Basic realm="protected-area"'}
        if match := ISSUE_PATH.match(request.path):
            if request.method == "PUT":
                return self._edit_issue(unquote(match[1]), request.json or {})
        elif match := COMMENT_PATH.match(request.path):
            key = unquote(match[1])
            if key not in self.issues:
                return 404, NO_REQUEST, {}
            if request.method == "POST":
                return self._add_comment(key, request.json or {})
            if request.method == "GET":
                return self._list_comments(key, request.query)
        elif request.path == "/rest/api/3/search/jql" and request.method == "POST":
            return self._search(request.json or {})
        return 404, {"errorMessages": [f"null for uri: {self.url}{request.path}"]}, {}

    def _authenticated(self, request: Recorded) -> bool:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        expected = base64.b64encode(f"{self.email}:{self.api_token}".encode()).decode()
        return scheme.lower() == "basic" and hmac.compare_digest(given.strip().encode(), expected.encode())

    def _edit_issue(self, key: str, body: dict[str, Any]) -> Reply:
        with self.state.lock:
            issue = self.issues.get(key)
            if issue is None:
                return 404, NO_ISSUE, {}
            fields, update = body.get("fields") or {}, body.get("update") or {}
            unknown = sorted((set(fields) | set(update)) - {"priority", "components", "labels"})
            if unknown:  # Jira names each field it cannot set on the edit screen
                return bad_request("", {name: f"Field '{name}' cannot be set." for name in unknown})
            if "priority" in fields:
                priority_id = str((fields["priority"] or {}).get("id"))
                if priority_id not in PRIORITIES:
                    return bad_request("", {"priority": f"Priority with id '{priority_id}' does not exist"})
                issue["fields"]["priority"] = {"id": priority_id, "name": PRIORITIES[priority_id]}
            if "components" in fields:
                names = [str(c.get("name")) for c in fields["components"]]
                issue["fields"]["components"] = [{"id": str(20000 + i), "name": n} for i, n in enumerate(names)]
            labels: list[str] = issue["fields"].setdefault("labels", [])
            for operation in update.get("labels", []):
                if "add" in operation and operation["add"] not in labels:
                    labels.append(operation["add"])
                if "remove" in operation and operation["remove"] in labels:
                    labels.remove(operation["remove"])
        return 204, None, {}

    def _add_comment(self, key: str, body: dict[str, Any]) -> Reply:
        if not isinstance(body.get("body"), str) or not body["body"].strip():
            return 400, {"errorMessage": "Comment body is required.", "i18nErrorMessage": None}, {}
        with self.state.lock:
            self._next_id += 1
            now = datetime.now(UTC)
            comment = {
                "id": str(self._next_id),
                "body": body["body"],
                "public": bool(body.get("public", True)),
                "author": {"emailAddress": self.email, "displayName": "Kestrel triage"},
                "created": {"iso8601": now.strftime("%Y-%m-%dT%H:%M:%S%z"), "epochMillis": int(now.timestamp() * 1000)},
                "_links": {"self": f"{self.url}/rest/servicedeskapi/request/{key}/comment/{self._next_id}"},
            }
            self.comments[key].append(comment)
            return 201, copy.deepcopy(comment), {}

    def _list_comments(self, key: str, query: dict[str, str]) -> Reply:
        want_public, want_internal = query.get("public", "true") != "false", query.get("internal", "true") != "false"
        start, limit = int(query.get("start", "0")), min(int(query.get("limit", "50")), 100)
        with self.state.lock:
            shown = [c for c in self.comments[key] if (want_public if c["public"] else want_internal)]
            values = copy.deepcopy(shown[start : start + limit])
        last = start + limit >= len(shown)
        return 200, {"size": len(values), "start": start, "limit": limit, "isLastPage": last, "values": values}, {}

    def _search(self, body: dict[str, Any]) -> Reply:
        jql = str(body.get("jql") or "").strip()
        match = JQL.match(jql)
        if not match:
            return bad_request(f"Error in the JQL Query: this server understands only {JQL.pattern!r}.")
        limit = max(1, min(int(body.get("maxResults") or 50), 100))
        offset = 0
        if body.get("nextPageToken") is not None:
            opened = self.page_tokens.get(str(body["nextPageToken"]))
            if opened is None or opened[0] != jql:
                return bad_request("The provided next page token is invalid or expired.")
            offset = opened[1]
        since = datetime.strptime(match[1], "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
        with self.state.lock:
            found = [i for i in self.issues.values() if datetime.fromisoformat(i["fields"]["created"]) >= since]
            found.sort(key=lambda i: (datetime.fromisoformat(i["fields"]["created"]), int(i["id"])))
            wanted = body.get("fields") or []  # the enhanced search returns only ids unless fields are named
            issues = [self._shown(i, wanted) for i in found[offset : offset + limit]]
            answer: dict[str, Any] = {"issues": issues, "isLast": offset + limit >= len(found)}
            if not answer["isLast"]:  # Jira leaves the key out on the last page
                token = secrets.token_urlsafe(24)
                self.page_tokens[token] = (jql, offset + limit)
                answer["nextPageToken"] = token
        return 200, answer, {}

    @staticmethod
    def _shown(issue: dict[str, Any], wanted: list[str]) -> dict[str, Any]:
        every = "*all" in wanted or "*navigable" in wanted
        fields = {name: value for name, value in issue["fields"].items() if every or name in wanted}
        shown = {"expand": "", "id": issue["id"], "self": issue["self"], "key": issue["key"], "fields": fields}
        return copy.deepcopy(shown)
