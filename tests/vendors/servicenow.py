"""A loopback ServiceNow instance: the Table API subset the connector uses (incident, sys_journal_field), in memory."""

from __future__ import annotations

import base64
import json
import re
import threading
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from tests.vendors.kit import Recorded, Reply, VendorServer

TABLE = "/api/now/table/"
REFERENCES = {"assignment_group": "sys_user_group", "caller_id": "sys_user", "assigned_to": "sys_user"}
COLUMNS = frozenset(
    {"number", "short_description", "description", "category", "subcategory", "urgency", "impact", "priority"}
    | {"state", "assignment_group", "assigned_to", "caller_id", "close_code", "close_notes"}
)
JOURNALS = ("work_notes", "comments")  # journal fields: written on the record, stored in sys_journal_field
TERM = re.compile(r"(?P<field>\w+?)(?P<op>>=|<=|!=|LIKE|STARTSWITH|=|>|<)(?P<value>.*)", re.DOTALL)
NOT_AUTHENTICATED = {
    "error": {"message": "User Not Authenticated", "detail": "Required to provide Auth information"},
    "status": "failure",
}
NO_RECORD = {
    "error": {"message": "No Record found", "detail": "Record doesn't exist or ACL restricts the record retrieval"},
    "status": "failure",
}


def failure(message: str, detail: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "detail": detail}, "status": "failure"}


def now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")


def encoded_query(query: str) -> tuple[list[tuple[str, str, str]], list[tuple[str, bool]]]:
    """An encoded query's conditions (field, operator, value) and its ORDERBY[DESC] fields; ^^ is a literal caret."""
    conditions, order = [], []
    terms = re.split(r"(?<!\^)\^(?!\^)", query) if query else []
    for raw in terms:
        term = raw.replace("^^", "^")
        if term.startswith("ORDERBYDESC"):
            order.append((term.removeprefix("ORDERBYDESC"), True))
        elif term.startswith("ORDERBY"):
            order.append((term.removeprefix("ORDERBY"), False))
        elif match := TERM.fullmatch(term):
            conditions.append((match["field"], match["op"], match["value"]))
        else:
            raise ValueError(term)
    return conditions, order


def matches(row: dict[str, str], conditions: list[tuple[str, str, str]]) -> bool:
    tests = {
        "=": lambda have, want: have == want,
        "!=": lambda have, want: have != want,
        ">=": lambda have, want: have >= want,  # date-times are "YYYY-MM-DD HH:MM:SS": text order is time order
        "<=": lambda have, want: have <= want,
        ">": lambda have, want: have > want,
        "<": lambda have, want: have < want,
        "LIKE": lambda have, want: want.lower() in have.lower(),
        "STARTSWITH": lambda have, want: have.lower().startswith(want.lower()),
    }
    return all(tests[op](row.get(field, ""), value) for field, op, value in conditions)


class ServiceNowServer(VendorServer):
    """Basic auth for one API user; `seed` incidents, then read them back with `incident` and `journal`.

    `link_header=False` answers list pages without the Link header, as a proxy that strips it would."""

    def __init__(self, user: str = "triage.api", password: str = "s3cret-pass", *, link_header: bool = True) -> None:
        super().__init__()
        self.user, self.password, self.link_header = user, password, link_header
        self.incidents: dict[str, dict[str, str]] = {}
        self.journal_rows: list[dict[str, str]] = []
        self.data_lock = threading.Lock()

    # --- for tests ----------------------------------------------------------------------------------------------

    def seed(self, short_description: str = "Printer on floor 3 is offline", **fields: str) -> str:
        """Store one incident (defaults fill the rest; `sys_created_on` in the Table API format) and give its sys_id."""
        with self.data_lock:
            sys_id = fields.pop("sys_id", None) or uuid.uuid4().hex
            created = fields.pop("sys_created_on", None) or now_text()
            record = {
                "sys_id": sys_id,
                "number": f"INC{10001 + len(self.incidents):07d}",
                "short_description": short_description,
                "description": "",
                "category": "inquiry",
                "urgency": "3",
                "impact": "3",
                "state": "1",
                "assignment_group": "",
                "caller_id": uuid.uuid4().hex,
                "sys_created_on": created,
                "sys_updated_on": created,
                "sys_updated_by": "abel.tuter",
                "sys_mod_count": "0",
            }
            record.update({key: str(value) for key, value in fields.items()})
            self.incidents[sys_id] = record
            return sys_id

    def incident(self, sys_id: str) -> dict[str, str]:
        with self.data_lock:
            return dict(self.incidents[sys_id])

    def journal(self, sys_id: str, element: str = "work_notes") -> list[str]:
        """The texts of one journal field of one incident, oldest first (`comments` are the public ones)."""
        with self.data_lock:
            return [
                row["value"] for row in self.journal_rows if (row["element_id"], row["element"]) == (sys_id, element)
            ]

    # --- the API ------------------------------------------------------------------------------------------------

    def route(self, request: Recorded) -> Reply:
        if request.headers.get("authorization") != self.basic():
            return 401, NOT_AUTHENTICATED, {"WWW-Authenticate": 'BASIC realm="Service-now"'}
        if not request.path.startswith(TABLE):
            return 400, failure("Requested URI does not represent any resource", request.path), {}
        table, _, sys_id = request.path.removeprefix(TABLE).partition("/")
        if table not in ("incident", "sys_journal_field"):
            return 400, failure(f"Invalid table {table}"), {}
        try:
            if request.method == "GET" and not sys_id:
                return self.list_rows(table, request)
            if table == "incident" and request.method == "GET":
                return self.get_incident(sys_id, request)
            if table == "incident" and request.method in ("PATCH", "PUT"):
                return self.update_incident(sys_id, request)
        except ValueError as problem:
            return 400, failure("Invalid request", str(problem)), {}
        return 405, failure("Method not Supported", f"{request.method} {request.path}"), {}

    def basic(self) -> str:
        return "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()

    def view(self, record: dict[str, str], query: dict[str, str]) -> dict[str, Any]:
        """A row as the Table API shows it: only `sysparm_fields` when given, references with or without links."""
        wanted = [name for name in query.get("sysparm_fields", "").split(",") if name] or list(record)
        links = query.get("sysparm_exclude_reference_link", "false") != "true"
        shown: dict[str, Any] = {}
        for name in wanted:
            value: Any = record.get(name, "")
            if links and name in REFERENCES and value:
                value = {"link": f"{self.url}{TABLE}{REFERENCES[name]}/{value}", "value": value}
            shown[name] = value
        return shown

    def list_rows(self, table: str, request: Recorded) -> Reply:
        conditions, order = encoded_query(request.query.get("sysparm_query", ""))
        limit = int(request.query.get("sysparm_limit", "10000"))
        offset = int(request.query.get("sysparm_offset", "0"))
        with self.data_lock:
            source = self.incidents.values() if table == "incident" else self.journal_rows
            rows = [dict(row) for row in source if matches(row, conditions)]
        for field, descending in reversed(order):
            rows.sort(key=lambda row: row.get(field, ""), reverse=descending)
        page = [self.view(row, request.query) for row in rows[offset : offset + limit]]
        headers = {"X-Total-Count": str(len(rows))}
        if self.link_header:
            headers["Link"] = self.links(request, offset, limit, len(rows))
        return 200, {"result": page}, headers

    def links(self, request: Recorded, offset: int, limit: int, total: int) -> str:
        """first, prev, next and last as the real Link header gives them (next only while rows remain)."""

        def at(start: int) -> str:
            return f"{self.url}{request.path}?{urlencode({**request.query, 'sysparm_offset': str(start)})}"

        parts = [f'<{at(0)}>;rel="first"']
        if offset > 0:
            parts.append(f'<{at(max(offset - limit, 0))}>;rel="prev"')
        if offset + limit < total:
            parts.append(f'<{at(offset + limit)}>;rel="next"')
        parts.append(f'<{at(max((total - 1) // limit * limit, 0))}>;rel="last"')
        return ",".join(parts)

    def get_incident(self, sys_id: str, request: Recorded) -> Reply:
        with self.data_lock:
            record = self.incidents.get(sys_id)
        return (200, {"result": self.view(record, request.query)}, {}) if record else (404, NO_RECORD, {})

    def update_incident(self, sys_id: str, request: Recorded) -> Reply:
        try:
            changes = json.loads(request.body or b"{}")
        except json.JSONDecodeError as problem:
            return 400, failure("Exception while reading request", str(problem)), {}
        if not isinstance(changes, dict):
            return 400, failure("Exception while reading request", "the body is not a JSON object"), {}
        with self.data_lock:
            record = self.incidents.get(sys_id)
            if record is None:
                return 404, NO_RECORD, {}
            stamp = now_text()
            for name, value in changes.items():
                if name in JOURNALS and str(value).strip():
                    self.journal_rows.append(
                        {"sys_id": uuid.uuid4().hex, "name": "incident", "element_id": sys_id, "element": name}
                        | {"value": str(value), "sys_created_on": stamp, "sys_created_by": self.user}
                    )
                elif name in COLUMNS:  # the Table API ignores names that are not columns
                    record[name] = str(value)
            record.update(
                sys_updated_on=stamp, sys_updated_by=self.user, sys_mod_count=str(int(record["sys_mod_count"]) + 1)
            )
            shown = self.view(record | {"work_notes": "", "comments": ""}, request.query)
        return 200, {"result": shown}, {}
