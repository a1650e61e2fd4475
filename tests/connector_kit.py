"""Per vendor, what the connector flow tests need: its loopback server, settings, mapping, and signed payloads."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from agents.connectors.signatures import hmac_hex, zendesk_signature
from tests.vendors.kit import VendorServer

SECRET = "webhook-secret-for-tests"
TEAMS = (
    "apps",
    "collab",
    "identity",
    "infra",
    "network",
    "people-ops",
    "procurement",
    "security",
    "service-desk",
    "workplace",
)  # the demo helpdesk's labels: `auto` needs a vendor value for each
CATEGORIES = ("access", "network", "email", "hardware", "software", "storage", "security", "hr", "purchase", "other")


def now_stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class VendorKit:
    """One vendor as the flow tests drive it; the payload builders give the vendor's documented shapes."""

    system: str
    server: VendorServer
    settings: dict[str, Any]
    mapping: dict[str, dict[str, str]]  # our label -> vendor value, per field
    seed: Callable[[str, str], str]  # (title, body) -> the vendor's ticket id
    created: Callable[[str, str, str], dict[str, Any]]  # (id, title, body) -> a created event
    updated: Callable[[str, dict[str, str], bool, int], dict[str, Any]]  # (id, vendor values, resolved, version)
    sign: Callable[[bytes], dict[str, str]]
    notes: Callable[[str], list[str]]  # the internal notes on a vendor ticket
    fields: Callable[[str], dict[str, Any]]  # the vendor ticket's current fields, as the vendor keeps them
    write_paths: tuple[str, ...] = ()  # path prefixes of the write-back requests
    signs_body: bool = True  # ServiceNow sends a token, not a signature of the body
    missing_id: str = "999999"  # a ticket id the vendor does not have
    extra: dict[str, Any] = field(default_factory=dict)

    def signed(self, payload: Any) -> tuple[bytes, dict[str, str]]:
        body = json.dumps(payload).encode()
        return body, {"Content-Type": "application/json", **self.sign(body)}

    def writes(self) -> list[Any]:
        """The write-back requests the vendor received (a search by POST is not one)."""
        return [
            r
            for r in self.server.received()
            if r.method in ("POST", "PUT", "PATCH") and r.path.startswith(self.write_paths)
        ]


def servicenow_kit() -> VendorKit:
    from tests.vendors.servicenow import ServiceNowServer

    server = ServiceNowServer()
    groups = {team: hashlib.md5(team.encode()).hexdigest() for team in TEAMS}  # sys_ids: 32 hex characters

    def created(sys_id: str, title: str, body: str) -> dict[str, Any]:
        return {
            "event": "created",
            "sys_id": sys_id,
            "number": "INC0010042",
            "short_description": title,
            "description": body,
            "category": "inquiry",
            "urgency": "3",
            "impact": "3",
            "assignment_group": "",
            "state": "1",
            "caller_id": "c" * 32,
            "sys_created_on": "2026-12-05 08:00:00",
            "sys_updated_on": "2026-12-05 08:00:00",
            "sys_updated_by": "fred.luddy",
            "sys_mod_count": "0",
        }

    def updated(sys_id: str, values: dict[str, str], resolved: bool, version: int) -> dict[str, Any]:
        event = created(sys_id, "", "") | {"event": "updated", "sys_mod_count": str(version), "sys_updated_by": "beth"}
        if "team" in values:
            event["assignment_group"] = values["team"]
        if "category" in values:
            event["category"] = values["category"]
        if "priority" in values:
            event["urgency"], event["impact"] = values["priority"].split("/")
        event["state"] = "6" if resolved else "2"
        return event

    return VendorKit(
        system="servicenow",
        server=server,
        settings={
            "servicenow_url": server.url,
            "servicenow_user": server.user,
            "servicenow_password": server.password,
            "servicenow_inbound_token": SECRET,
        },
        mapping={
            "team": groups,
            "priority": {"P1": "1/1", "P2": "1/2", "P3": "2/2", "P4": "3/3"},
            "category": {c: c for c in CATEGORIES},
        },
        seed=lambda title, body: server.seed(title, description=body),
        created=created,
        updated=updated,
        sign=lambda body: {"Authorization": f"Bearer {SECRET}"},
        notes=lambda sys_id: server.journal(sys_id),
        fields=lambda sys_id: server.incident(sys_id),
        write_paths=("/api/now/table/incident/",),
        signs_body=False,
        missing_id="f" * 32,
        extra={
            "team_of": lambda sys_id: server.incident(sys_id)["assignment_group"],
            "intake": {},  # an incident record has no form type
        },
    )


def zendesk_kit() -> VendorKit:
    from tests.vendors.zendesk import ZendeskServer

    server = ZendeskServer()
    groups = {team: str(360001000000 + i) for i, team in enumerate(TEAMS)}

    def ticket(ticket_id: str, title: str, body: str, version: int) -> dict[str, Any]:
        return {
            "id": ticket_id,
            "subject": title,
            "description": body,
            "priority": "NORMAL",
            "status": "NEW",
            "group_id": None,
            "tags": [],
            "requester_id": "20978392",
            "actor_id": "20978392",
            "type": "INCIDENT",
            "created_at": "2026-12-05T08:00:00Z",
            "updated_at": f"2026-12-05T08:{version:02d}:00Z",
        }

    def created(ticket_id: str, title: str, body: str) -> dict[str, Any]:
        return {
            "type": "zen:event-type:ticket.created",
            "id": f"evt-{ticket_id}-0",
            "account_id": 22129848,
            "subject": f"zen:ticket:{ticket_id}",
            "time": "2026-12-05T08:00:00Z",
            "detail": ticket(ticket_id, title, body, 0),
            "event": {},
        }

    def updated(ticket_id: str, values: dict[str, str], resolved: bool, version: int) -> dict[str, Any]:
        detail = ticket(ticket_id, "", "", version) | {"status": "SOLVED" if resolved else "OPEN", "actor_id": "381776"}
        if "team" in values:
            detail["group_id"] = values["team"]
        if "priority" in values:
            detail["priority"] = values["priority"].upper()
        if "category" in values:
            detail["tags"] = [values["category"]]
        return {
            "type": "zen:event-type:ticket.group_assignment_changed",
            "id": f"evt-{ticket_id}-{version}",
            "account_id": 22129848,
            "subject": f"zen:ticket:{ticket_id}",
            "time": detail["updated_at"],
            "detail": detail,
            "event": {},
        }

    def sign(body: bytes) -> dict[str, str]:
        stamp = now_stamp()
        return {
            "X-Zendesk-Webhook-Signature": zendesk_signature(SECRET, stamp, body),
            "X-Zendesk-Webhook-Signature-Timestamp": stamp,
        }

    return VendorKit(
        system="zendesk",
        server=server,
        settings={
            "zendesk_url": server.url,
            "zendesk_email": server.email,
            "zendesk_api_token": server.token,
            "zendesk_webhook_secret": SECRET,
        },
        mapping={
            "team": groups,
            "priority": {"P1": "urgent", "P2": "high", "P3": "normal", "P4": "low"},
            "category": {c: f"cat_{c}" for c in CATEGORIES},
        },
        seed=lambda title, body: str(server.seed(title, body, created_at=NOW)),
        created=created,
        updated=updated,
        sign=sign,
        notes=lambda ticket_id: [c["body"] for c in server.comments(int(ticket_id)) if not c["public"]],
        fields=lambda ticket_id: server.ticket(int(ticket_id)),
        write_paths=("/api/v2/tickets/",),
        extra={
            "team_of": lambda ticket_id: str(server.ticket(int(ticket_id))["group_id"]),
            "intake": {"ticket_type": "INCIDENT"},
        },
    )


def jira_kit() -> VendorKit:
    import itertools

    from tests.vendors.jira import JiraServer

    server = JiraServer()
    numbers = itertools.count(1)

    def issue(key: str, title: str, body: str, values: dict[str, str], done: bool) -> dict[str, Any]:
        category = "indeterminate" if not done else "done"
        fields: dict[str, Any] = {
            "summary": title,
            "description": body,
            "created": "2026-12-05T08:00:00.000+0000",
            "priority": {"id": values.get("priority", "3"), "name": "Medium"},
            "labels": [values["category"]] if "category" in values else [],
            "components": [{"id": "10020", "name": values["team"]}] if "team" in values else [],
            "status": {"name": "Done" if done else "In progress", "statusCategory": {"key": category}},
            "reporter": {"accountId": "5b10ac8d82e05b22cc7d4ef5", "displayName": "Ana Lopez"},
            "issuetype": {"id": "10004", "name": "Incident"},
        }
        return {"id": str(10000 + int(key.split("-")[1])), "key": key, "fields": fields}

    def seed(title: str, body: str) -> str:
        key = f"HELP-{next(numbers)}"
        server.seed(key, title, NOW, description=body)
        return key

    def created(key: str, title: str, body: str) -> dict[str, Any]:
        return {
            "timestamp": 1796465400456,
            "webhookEvent": "jira:issue_created",
            "issue": issue(key, title, body, {}, False),
        }

    def updated(key: str, values: dict[str, str], resolved: bool, version: int) -> dict[str, Any]:
        return {
            "timestamp": 1796465400456 + version,
            "webhookEvent": "jira:issue_updated",
            "user": {"accountId": "712020:3c1b", "displayName": "Tom Bright"},
            "issue": issue(key, "", "", values, resolved),
            "changelog": {"id": str(10400 + version), "items": []},
        }

    return VendorKit(
        system="jira",
        server=server,
        settings={
            "jira_url": server.url,
            "jira_email": server.email,
            "jira_api_token": server.api_token,
            "jira_webhook_secret": SECRET,
        },
        mapping={
            "team": {t: f"Team {t}" for t in TEAMS},
            "priority": {"P1": "1", "P2": "2", "P3": "3", "P4": "4"},
            "category": {c: f"cat-{c}" for c in CATEGORIES},
        },
        seed=seed,
        created=created,
        updated=updated,
        sign=lambda body: {"X-Hub-Signature": "sha256=" + hmac_hex(SECRET, body, "sha256")},
        notes=lambda key: [c["body"] for c in server.comments_of(key) if not c.get("public", True)],
        fields=lambda key: server.fields_of(key),
        write_paths=("/rest/api/3/issue/", "/rest/servicedeskapi/request/"),
        missing_id="HELP-999",
        extra={
            "team_of": lambda key: next((c["name"] for c in server.fields_of(key)["components"]), None),
            "intake": {"ticket_type": "Incident"},
        },
    )


def zammad_kit() -> VendorKit:
    from tests.vendors.zammad import ZammadServer

    server = ZammadServer()
    groups = {team: "Users" for team in TEAMS} | {"network": "Network", "workplace": "2nd Level"}

    def ticket(ticket_id: str, title: str, values: dict[str, str], state: str, version: int) -> dict[str, Any]:
        return {
            "id": int(ticket_id),
            "number": str(31000 + int(ticket_id)),
            "title": title,
            "group": {"id": 1, "name": values.get("team", "Users")},
            "priority": {"id": 2, "name": values.get("priority", "2 normal")},
            "state": state,
            "customer": {"email": "emily@example.com"},
            "created_at": "2026-12-05T08:00:00.000Z",
            "updated_at": f"2026-12-05T08:{version:02d}:00.000Z",
        }

    def created(ticket_id: str, title: str, body: str) -> dict[str, Any]:
        article = {"body": body, "content_type": "text/plain", "internal": False, "type": "email"}
        return {"ticket": ticket(ticket_id, title, {}, "new", 0), "article": article}

    def updated(ticket_id: str, values: dict[str, str], resolved: bool, version: int) -> dict[str, Any]:
        return {"ticket": ticket(ticket_id, "", values, "closed" if resolved else "open", version), "article": {}}

    return VendorKit(
        system="zammad",
        server=server,
        settings={"zammad_url": server.url, "zammad_token": server.token, "zammad_webhook_secret": SECRET},
        mapping={
            "team": groups,
            "priority": {"P1": "3 high", "P2": "3 high", "P3": "2 normal", "P4": "1 low"},
            "category": {c: f"cat-{c}" for c in CATEGORIES},
        },
        seed=lambda title, body: str(server.seed(title, body, created_at="2026-12-05T08:00:00.000Z")),
        created=created,
        updated=updated,
        sign=lambda body: {"X-Hub-Signature": "sha1=" + hmac_hex(SECRET, body, "sha1")},
        notes=lambda ticket_id: [n["body"] for n in server.notes(int(ticket_id)) if n.get("internal")],
        fields=lambda ticket_id: server.ticket(int(ticket_id)),
        write_paths=("/api/v1/tickets/", "/api/v1/tags/"),
        extra={
            "team_of": lambda ticket_id: server.ticket(int(ticket_id))["group"],
            "intake": {},  # no type field is read from Zammad
        },
    )


KITS: dict[str, Callable[[], VendorKit]] = {
    "jira": jira_kit,
    "servicenow": servicenow_kit,
    "zammad": zammad_kit,
    "zendesk": zendesk_kit,
}
NOW = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)
