"""The ServiceNow connector: incident events from an Outbound REST Message in, Table API writes and reads out.

Field mapping: `team` is the incident's `assignment_group`, `category` its `category`, `priority` its `urgency` and
`impact` together. Mapping values (our label -> vendor value) are: for `team`, the sys_id of a sys_user_group
record (32 hex characters); for `category`, the category choice value (e.g. "network", not its label); for
`priority`, "<urgency>/<impact>" with the choice values of both, e.g. "1/1" for P1 or "2/2" for P3 (ServiceNow's
priority lookup rules derive `priority` from those two). Inbound values use the same formats.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal, cast
from urllib.parse import parse_qs, urlsplit

import httpx

from agents.connectors.base import (
    BackfillPage,
    Connector,
    ConnectorConfig,
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
from agents.connectors.signatures import check_bearer_or_basic
from agents.errors import TriageError

INCIDENT_PATH = "/api/now/table/incident"
JOURNAL_PATH = "/api/now/table/sys_journal_field"
RESOLVED_STATES = frozenset({"6", "7"})  # 6 Resolved, 7 Closed (8 Canceled is not a resolution)
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"  # the Table API's internal date-time format, always UTC
RECORD_FIELDS = (
    "sys_id,number,short_description,description,category,urgency,impact,assignment_group,state,caller_id,"
    "sys_created_on,sys_updated_on,sys_updated_by,sys_mod_count"
)
VALUE_PATTERNS = {"team": re.compile(r"[0-9a-f]{32}"), "priority": re.compile(r"\d+/\d+")}
VALUE_FORMATS = {"team": "a sys_user_group sys_id (32 hex characters)", "priority": "'<urgency>/<impact>', e.g. '1/1'"}
CODE_BLOCK = re.compile(r"\[code\](.*?)\[/code\]", re.DOTALL | re.IGNORECASE)
TAG = re.compile(r"<[^>]+>")
Kind = Literal["created", "updated"]


class SettingMissing(TriageError):
    """A TRIAGE_SERVICENOW_* setting the connector needs is not set."""

    def __init__(self, setting: str, needed_for: str) -> None:
        self.setting, self.needed_for = setting, needed_for
        super().__init__(f"{setting} is not set: it is needed for {needed_for}")


class BackfillCursorInvalid(TriageError):
    """A backfill cursor that this connector did not hand out (it must be a record offset)."""

    def __init__(self, cursor: str) -> None:
        self.cursor = cursor
        super().__init__(f"servicenow backfill cursor {cursor[:40]!r} is not a record offset")


def plain_text(value: Any) -> str:
    """Incident text as plain text: `[code]` HTML blocks lose their tags, line breaks become \\n."""
    if not isinstance(value, str):
        return ""
    text = CODE_BLOCK.sub(lambda match: html.unescape(TAG.sub("", match.group(1))), value)
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()


def table_time(value: Any) -> datetime | None:
    """A Table API date-time ("2026-03-01 09:30:00", UTC) or None when absent or not a time."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return datetime.strptime(value.strip(), TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


def escape_query_value(value: str) -> str:
    # A caret separates encoded-query terms; the documented-most-likely escape for a literal one is doubling it.
    return value.replace("^", "^^")


class ServiceNowConnector(Connector):
    """Incidents in ServiceNow: bearer or basic-auth inbound calls, one Table API PATCH per write-back."""

    system: ClassVar[str] = "servicenow"

    def __init__(self, config: ConnectorConfig, mapping: FieldMapping, *, page_size: int = 100) -> None:
        super().__init__(config, mapping)
        self.page_size = page_size
        for field, pattern in VALUE_PATTERNS.items():
            for label, value in dict(getattr(mapping, field)).items():
                if not pattern.fullmatch(value):
                    raise MappingValueInvalid(self.system, field, label, value, VALUE_FORMATS[field])

    # --- inbound ------------------------------------------------------------------------------------------------

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> None:
        # The Outbound REST Message authenticates its caller only: no body signature and no timestamp to check.
        if not self.config.webhook_secret:
            raise SignatureInvalid(self.system, "TRIAGE_SERVICENOW_INBOUND_TOKEN is not set: no caller can be trusted")
        check_bearer_or_basic(self.system, headers, self.config.webhook_secret, self.config.webhook_user)

    def parse(self, payload: Any, headers: Mapping[str, str]) -> InboundEvent:
        sys_id = str(need(payload, "sys_id", self.system)).strip()
        mod_count = str(need(payload, "sys_mod_count", self.system)).strip()
        if not 0 < len(sys_id) <= 128 or not mod_count.isdigit():
            raise PayloadInvalid(self.system, "`sys_id` must be an id and `sys_mod_count` a count")
        event = payload.get("event") or ("created" if mod_count == "0" else "updated")
        if event not in ("created", "updated"):
            raise PayloadInvalid(self.system, f"`event` is {str(event)[:40]!r}, not 'created' or 'updated'")
        return self.event_from_record(payload, cast(Kind, event), f"{sys_id}:{mod_count}")

    def event_from_record(self, record: Mapping[str, Any], kind: Kind, event_id: str) -> InboundEvent:
        """One event from an incident record, webhook body and Table API row alike (same column names)."""
        return InboundEvent(
            system=self.system,
            event_id=event_id,
            kind=kind,
            external_id=str(record["sys_id"]).strip(),
            title=plain_text(record.get("short_description")),
            body=plain_text(record.get("description")),
            requester=self.text(record.get("caller_id")),
            created_at=table_time(record.get("sys_created_on")),
            values=self.values(record),
            resolved=self.text(record.get("state")) in RESOLVED_STATES,
            author=self.text(record.get("sys_updated_by")),
        )

    def values(self, record: Mapping[str, Any]) -> dict[str, str]:
        """The incident's current values for our fields, in mapping-value format; absent ones left out."""
        found = {"team": self.text(record.get("assignment_group")), "category": self.text(record.get("category"))}
        urgency, impact = self.text(record.get("urgency")), self.text(record.get("impact"))
        found["priority"] = f"{urgency}/{impact}" if urgency and impact else None
        return {field: value for field, value in found.items() if value}

    @staticmethod
    def text(value: Any) -> str | None:
        """A column's value as a string; a reference still carrying its link object gives its `value`."""
        if isinstance(value, dict):
            value = value.get("value")
        if value is None or isinstance(value, (list, dict)):
            return None
        return str(value).strip() or None

    # --- outbound -----------------------------------------------------------------------------------------------

    def auth_headers(self) -> dict[str, str]:
        if not self.config.user:
            raise SettingMissing("TRIAGE_SERVICENOW_USER", "basic authentication to the Table API")
        credentials = basic_credentials(self.config.user, self.config.token)
        return {"Authorization": f"Basic {credentials}"}

    def calls(self, write: WriteBack) -> list[VendorCall]:
        body: dict[str, Any] = {"work_notes": write.note}  # work notes are internal; `comments` would be public
        for field, value in write.set_fields.items():
            if field == "team":
                body["assignment_group"] = value
            elif field == "category":
                body["category"] = value
            elif field == "priority":
                body["urgency"], _, body["impact"] = value.partition("/")
        path = f"{INCIDENT_PATH}/{write.external_id}"
        return [
            VendorCall(method="PATCH", path=path, json_body=body, params={"sysparm_exclude_reference_link": "true"})
        ]

    def note_exists(self, client: httpx.Client, write: WriteBack) -> bool:
        query = f"element_id={write.external_id}^element=work_notes^valueLIKE{escape_query_value(write.marker)}"
        params = {"sysparm_query": query, "sysparm_fields": "sys_id", "sysparm_limit": "1"}
        response = client.get(JOURNAL_PATH, params=params)
        response.raise_for_status()
        return bool(response.json().get("result"))

    def backfill_page(self, client: httpx.Client, since: datetime, cursor: str | None) -> BackfillPage:
        offset = self.offset(cursor)
        start = (since.astimezone(UTC) if since.tzinfo else since.replace(tzinfo=UTC)).strftime(TIME_FORMAT)
        params = {
            # sys_id breaks ties between incidents created in the same second, so offsets stay stable.
            "sysparm_query": f"sys_created_on>={start}^ORDERBYsys_created_on^ORDERBYsys_id",
            "sysparm_limit": str(self.page_size),
            "sysparm_offset": str(offset),
            "sysparm_exclude_reference_link": "true",
            "sysparm_fields": RECORD_FIELDS,
        }
        response = client.get(INCIDENT_PATH, params=params)
        response.raise_for_status()
        rows = [row for row in response.json().get("result") or [] if isinstance(row, dict) and row.get("sys_id")]
        events = [self.event_from_record(row, "created", f"backfill:{row['sys_id']}") for row in rows]
        return BackfillPage(events=events, cursor=self.next_cursor(response, offset))

    def next_cursor(self, response: httpx.Response, offset: int) -> str | None:
        """Where the next page starts: the Link header's rel="next" offset when the instance sends Link (no next: the
        end), else the offset plus the page size until a short page."""
        if response.headers.get("link"):
            next_url = response.links.get("next", {}).get("url")
            if not next_url:
                return None
            return str(self.offset((parse_qs(urlsplit(next_url).query).get("sysparm_offset") or [""])[-1]))
        rows = len(response.json().get("result") or [])
        return str(offset + self.page_size) if rows >= self.page_size else None

    @staticmethod
    def offset(cursor: str | None) -> int:
        if cursor is None:
            return 0
        if not cursor.isdigit():
            raise BackfillCursorInvalid(cursor)
        return int(cursor)
