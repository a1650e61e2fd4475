"""The Jira Service Management Cloud connector: signed issue webhooks in, internal comments and fields out.

Field mapping: `priority` is the issue's priority, and its vendor value is the priority id as a string ("2", see
/rest/api/3/priority); `team` is the issue's component, and its vendor value is the component name ("Network");
`category` is an issue label, and its vendor value is the label ("network-outage"). Writing a category adds its
label and removes the labels of the other mapped categories, so an issue carries one category label at a time;
writing a team replaces the issue's components with that one component.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx

from agents.connectors.base import (
    BackfillPage,
    Connector,
    ConnectorConfig,
    ConnectorError,
    FieldMapping,
    InboundEvent,
    PayloadInvalid,
    SignatureInvalid,
    VendorCall,
    WriteBack,
    basic_credentials,
    header,
    need,
)
from agents.connectors.signatures import check_hub_signature
from agents.connectors.text import intake_of, iso_time

EVENT_KINDS = {"jira:issue_created": "created", "jira:issue_updated": "updated"}
SEARCH_FIELDS = ["summary", "description", "priority", "labels", "components", "status", "created", "reporter"]
# JQL reads a date in the API user's profile time zone, which we cannot see: ask from 12 hours earlier (the most a
# zone lags UTC) and keep only issues whose own `created` (with its offset) is at or after `since`.
JQL_ZONE_MARGIN = timedelta(hours=12)
_ADF_BLOCKS = {"paragraph", "heading", "codeBlock", "rule", "taskItem", "decisionItem"}  # each ends a line
_WIKI_MACRO = re.compile(r"\{(?:code|noformat|quote|panel|color)(?::[^}]*)?\}")
_WIKI_HEADING = re.compile(r"^(?:h[1-6]|bq)\.[ \t]+", re.MULTILINE)
_WIKI_BULLET = re.compile(r"^[*#-]+[ \t]+", re.MULTILINE)


class JiraConnector(Connector):
    """Jira Service Management Cloud: X-Hub-Signature webhooks, JSM internal comments, enhanced JQL search."""

    system = "jira"

    def __init__(self, config: ConnectorConfig, mapping: FieldMapping, page_size: int = 50) -> None:
        super().__init__(config, mapping)
        self.page_size = page_size  # search/jql answers at most 100 issues per page when fields are asked for

    # --- inbound ------------------------------------------------------------------------------------------------

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> None:
        # Jira signs the raw body only: no signed timestamp, so no replay window (retries keep arriving for up to
        # half an hour); a replayed delivery carries the same X-Atlassian-Webhook-Identifier and is deduplicated.
        if not self.config.webhook_secret:
            raise SignatureInvalid(self.system, "TRIAGE_JIRA_WEBHOOK_SECRET is not set: unsigned events are refused")
        check_hub_signature(self.system, headers, body, self.config.webhook_secret, "sha256")

    def parse(self, payload: Any, headers: Mapping[str, str]) -> InboundEvent:
        event = need(payload, "webhookEvent", self.system)
        kind = EVENT_KINDS.get(str(event))
        if kind is None:
            wanted = ", ".join(EVENT_KINDS)
            raise PayloadInvalid(self.system, f"the event `{event}` is not an issue event we use ({wanted})")
        issue = need(payload, "issue", self.system)
        issue_id = str(need(payload, "issue.id", self.system))
        for path in ("issue.key", "issue.fields"):  # name the full path when one is missing
            need(payload, path, self.system)
        delivery = header(headers, "X-Atlassian-Webhook-Identifier")
        event_id = delivery.strip() if delivery and delivery.strip() else self._version_id(payload, issue_id, kind)
        user = payload.get("user")
        return self._event(issue, event_id, kind, author=_person(user))

    def _version_id(self, payload: dict[str, Any], issue_id: str, kind: str) -> str:
        """Issue id + what changed, for deliveries without an identifier header: the same for a redelivery."""
        if kind == "created":
            return f"{issue_id}:created"
        for path, tag in (("changelog", "changelog"), ("comment", "comment")):
            part = payload.get(path)
            if isinstance(part, dict) and part.get("id") is not None:
                return f"{issue_id}:{tag}:{part['id']}"
        if payload.get("timestamp") is not None:  # an update with neither (a rare event type): its time, in ms
            return f"{issue_id}:at:{payload['timestamp']}"
        raise PayloadInvalid(self.system, "the update has no `changelog.id`: is this a jira issue event?")

    def _event(self, issue: Any, event_id: str, kind: str, author: str | None = None) -> InboundEvent:
        key = need(issue, "key", self.system)
        fields = need(issue, "fields", self.system)
        if not isinstance(fields, dict):
            raise PayloadInvalid(self.system, f"the issue {key} has `fields` that are not an object")
        category = _object(_object(fields.get("status")).get("statusCategory"))
        return InboundEvent(
            system=self.system,
            event_id=event_id,
            kind="created" if kind == "created" else "updated",
            external_id=str(key),
            title=str(fields.get("summary") or "").strip(),
            body=plain_text(fields.get("description")),
            requester=_person(fields.get("reporter")),
            created_at=iso_time(fields.get("created")),
            values=self._values(fields),
            intake=intake_of(ticket_type=str(_object(fields.get("issuetype")).get("name") or "")),
            resolved=category.get("key") == "done",
            author=author,
        )

    def _values(self, fields: dict[str, Any]) -> dict[str, str]:
        values: dict[str, str] = {}
        priority = fields.get("priority")
        if isinstance(priority, dict) and priority.get("id") is not None:
            values["priority"] = str(priority["id"])
        components = [str(c["name"]) for c in fields.get("components") or [] if isinstance(c, dict) and c.get("name")]
        team = next((name for name in components if name in self.mapping.team.values()), None)
        if team or components:  # the component is the team field: an unmapped one is still its value
            values["team"] = team or components[0]
        labels = [str(label) for label in fields.get("labels") or [] if isinstance(label, str)]
        category = next((label for label in labels if label in self.mapping.category.values()), None)
        if category:  # labels are free tags: only a mapped one says the category
            values["category"] = category
        return values

    # --- outbound -----------------------------------------------------------------------------------------------

    def auth_headers(self) -> dict[str, str]:
        if not self.config.user:
            raise ConnectorError(self.system, "TRIAGE_JIRA_EMAIL is not set: Jira API tokens need the account email")
        credentials = basic_credentials(self.config.user, self.config.token)
        return {"Authorization": f"Basic {credentials}"}

    def calls(self, write: WriteBack) -> list[VendorCall]:
        # Jira has no single call for both: the field PUT goes first (repeating it is harmless), then the comment,
        # which the core checks with note_exists before posting it again.
        key = quote(write.external_id, safe="")
        calls = []
        edit = self._issue_edit(write.set_fields)
        if edit:
            # repeatable: sending the same fields again changes nothing, and it posts no note
            calls.append(VendorCall(method="PUT", path=f"/rest/api/3/issue/{key}", json_body=edit, repeatable=True))
        comment = {"body": write.note, "public": False}
        calls.append(VendorCall(method="POST", path=f"/rest/servicedeskapi/request/{key}/comment", json_body=comment))
        return calls

    def _issue_edit(self, set_fields: dict[str, str]) -> dict[str, Any]:
        """The body of PUT /rest/api/3/issue/{key} for `set_fields` ({} when there is nothing to set)."""
        fields: dict[str, Any] = {}
        update: dict[str, Any] = {}
        for field, value in set_fields.items():
            if field == "priority":
                fields["priority"] = {"id": value}
            elif field == "team":
                fields["components"] = [{"name": value}]
            elif field == "category":
                others = sorted({label for label in self.mapping.category.values() if label != value})
                update["labels"] = [{"remove": label} for label in others] + [{"add": value}]
            else:
                raise ConnectorError(self.system, f"cannot write the field {field!r} (category, priority, team)")
        return {key: part for key, part in (("fields", fields), ("update", update)) if part}

    def note_exists(self, client: httpx.Client, write: WriteBack) -> bool:
        path = f"/rest/servicedeskapi/request/{quote(write.external_id, safe='')}/comment"
        start = 0
        while True:
            params = {"public": "false", "internal": "true", "start": str(start), "limit": str(self.page_size)}
            response = client.get(path, params=params)
            response.raise_for_status()
            page = response.json()
            comments = page.get("values") or []
            if any(write.marker in str(comment.get("body") or "") for comment in comments):
                return True
            if page.get("isLastPage", True) or not comments:
                return False
            start += len(comments)

    def backfill_page(self, client: httpx.Client, since: datetime, cursor: str | None) -> BackfillPage:
        since = since if since.tzinfo else since.replace(tzinfo=UTC)
        from_time = (since - JQL_ZONE_MARGIN).astimezone(UTC).strftime("%Y-%m-%d %H:%M")
        body: dict[str, Any] = {
            "jql": f'created >= "{from_time}" ORDER BY created ASC',
            "fields": SEARCH_FIELDS,
            "maxResults": self.page_size,
        }
        if cursor:
            body["nextPageToken"] = cursor  # the same JQL as the first page: the token belongs to that query
        response = client.post("/rest/api/3/search/jql", json=body)
        response.raise_for_status()
        page = response.json()
        events = []
        for issue in page.get("issues") or []:
            event = self._event(issue, f"backfill:{need(issue, 'key', self.system)}", "created")
            if event.created_at is None or event.created_at >= since:
                events.append(event)
        token = page.get("nextPageToken")  # absent, not null, on the last page (JRACLOUD-92184)
        return BackfillPage(events=events, cursor=str(token) if token and not page.get("isLast") else None)


def plain_text(description: Any) -> str:
    """A description as plain text: Atlassian Document Format (API v3) flattened, or wiki markup (v2) unwrapped."""
    if isinstance(description, dict):
        parts: list[str] = []
        _flatten(description, parts)
        text = "".join(parts)
    elif isinstance(description, str):
        text = _WIKI_BULLET.sub("- ", _WIKI_HEADING.sub("", _WIKI_MACRO.sub("", description)))
    else:
        return ""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _flatten(node: Any, out: list[str]) -> None:
    if isinstance(node, list):
        for child in node:
            _flatten(child, out)
        return
    if not isinstance(node, dict):
        return
    kind, attrs = node.get("type"), _object(node.get("attrs"))
    if kind == "text":
        out.append(str(node.get("text") or ""))
    elif kind == "hardBreak":
        out.append("\n")
    elif kind in ("mention", "emoji", "status", "inlineCard", "blockCard"):
        out.append(str(attrs.get("text") or attrs.get("shortName") or attrs.get("url") or ""))
    elif kind in ("tableCell", "tableHeader"):
        out.append(" ")
    if kind == "listItem":
        out.append("- ")
    _flatten(node.get("content"), out)
    if kind in _ADF_BLOCKS:
        out.append("\n")


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _person(user: Any) -> str | None:
    """A Jira user as the email when the site shares it (privacy settings often hide it), else the account id."""
    if not isinstance(user, dict):
        return None
    value = user.get("emailAddress") or user.get("accountId") or user.get("displayName")
    return str(value) if value else None
