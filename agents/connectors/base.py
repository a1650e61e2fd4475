"""What every helpdesk connector is: check a webhook's caller, read its event, write back, page through history."""

from __future__ import annotations

import base64
from abc import ABC, abstractmethod
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar, Literal, get_args

import httpx
from pydantic import BaseModel, ConfigDict, Field

from agents.errors import TriageError

System = Literal["zendesk", "jira", "servicenow", "zammad"]
SYSTEMS: tuple[str, ...] = get_args(System)
FIELDS = ("category", "priority", "team")


class ConnectorError(TriageError):
    """An inbound event we refuse: `status` is the HTTP answer, `code` a stable name, `reason` for people."""

    status = 400
    code = "connector_error"

    def __init__(self, system: str, reason: str) -> None:
        self.system, self.reason = system, reason
        super().__init__(f"{system}: {reason}")


class SignatureInvalid(ConnectorError):
    """The caller is not the vendor: no signature, a wrong one, or one outside the replay window."""

    status = 401
    code = "signature_invalid"


class PayloadInvalid(ConnectorError):
    """The body is JSON but not an event of this vendor that we can use (another vendor's payload, say)."""

    status = 422
    code = "payload_invalid"


class MappingValueInvalid(TriageError):
    """A mapping value in the wrong format for its field and vendor (a group name where a group id belongs, say)."""

    def __init__(self, system: str, field: str, label: str, value: str, expected: str) -> None:
        self.system, self.field, self.label, self.value, self.expected = system, field, label, value, expected
        super().__init__(f"{system} mapping {field}.{label} = {value!r}: expected {expected}")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InboundEvent(_Model):
    """One vendor event about one ticket, in the vendor's own terms (values are vendor ids, not our labels)."""

    system: str
    event_id: str = Field(min_length=1, max_length=200)  # the vendor's event id or ticket id + version: dedupe key
    kind: Literal["created", "updated"]
    external_id: str = Field(min_length=1, max_length=128)  # the ticket's id in the vendor
    title: str = ""
    body: str = ""
    requester: str | None = None
    created_at: datetime | None = None
    values: dict[str, str] = {}  # the vendor's current value per field we predict: {"team": "3600012", ...}
    intake: dict[str, str] = {}  # what the requester chose on the vendor's form: {"ticket_type": "incident"}
    resolved: bool = False  # solved, closed or resolved in the vendor
    author: str | None = None  # who made this change in the vendor, when the payload says


class WriteBack(_Model):
    """What one triage may write to one vendor ticket, decided by the modes and already mapped to vendor values."""

    external_id: str
    set_fields: dict[str, str] = {}  # field -> vendor value: the `auto` fields that were applied
    note: str  # the internal note (never public): proposed fields, confidence, reasons, SOP links, owner
    marker: str  # a unique reference inside the note, to find it again when an answer was lost


class VendorCall(_Model):
    """One HTTP request to the vendor, relative to its base URL."""

    method: Literal["GET", "POST", "PUT", "PATCH"]
    path: str
    json_body: dict[str, Any] | None = None
    params: dict[str, str] = {}
    # safe to send again after the note is found (it sets fields or tags and posts no note): after a lost answer,
    # the outbox re-sends only these once the note is there
    repeatable: bool = False


class BackfillPage(_Model):
    """Past tickets read from the vendor's export API, and where the next page starts (None: the end)."""

    events: list[InboundEvent]
    cursor: str | None


class ConnectorConfig(_Model):
    """One system's settings (TRIAGE_<SYSTEM>_*), gathered by agents/connectors/registry.py."""

    system: str
    url: str  # the vendor's base URL, e.g. https://acme.zendesk.com
    user: str | None = None  # the API user: an email (Zendesk, Jira) or a user name (ServiceNow); Zammad: none
    token: str = Field(repr=False)  # API token, password (ServiceNow) or access token (Zammad)
    webhook_secret: str | None = Field(default=None, repr=False)  # HMAC secret; ServiceNow: the inbound bearer token
    webhook_user: str | None = None  # ServiceNow only: with a user, inbound calls use basic auth (secret: password)
    replay_window: float = 300.0  # seconds a signed timestamp stays valid (Zendesk)
    timeout: float = 10.0


class FieldMapping(_Model):
    """Our labels -> the vendor's values, per field; validated against the taxonomy at start (mapping.py)."""

    category: dict[str, str] = {}
    priority: dict[str, str] = {}
    team: dict[str, str] = {}

    def to_vendor(self, field: str, label: str) -> str | None:
        return dict(getattr(self, field)).get(label)

    def from_vendor(self, field: str, value: str) -> str | None:
        """Our label for a vendor value; None when no label maps to it, or more than one does."""
        labels = [label for label, vendor in dict(getattr(self, field)).items() if vendor == value]
        return labels[0] if len(labels) == 1 else None


class Connector(ABC):
    """One vendor: the subclass knows its webhook signature, payloads, write-back calls and export API."""

    system: ClassVar[str]

    def __init__(self, config: ConnectorConfig, mapping: FieldMapping) -> None:
        self.config, self.mapping = config, mapping

    # --- inbound ------------------------------------------------------------------------------------------------

    @abstractmethod
    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> None:
        """Raise SignatureInvalid unless the vendor signed this raw body (header names are case-insensitive)."""

    @abstractmethod
    def parse(self, payload: Any, headers: Mapping[str, str]) -> InboundEvent:
        """The event in a decoded JSON body (headers may carry a delivery id); PayloadInvalid when it is not one of
        this vendor's ticket events."""

    # --- outbound -----------------------------------------------------------------------------------------------

    @abstractmethod
    def auth_headers(self) -> dict[str, str]:
        """The headers that authenticate us to the vendor's REST API."""

    @abstractmethod
    def calls(self, write: WriteBack) -> list[VendorCall]:
        """The requests that apply `write`: the internal note (with its marker) and the `set_fields`."""

    @abstractmethod
    def note_exists(self, client: httpx.Client, write: WriteBack) -> bool:
        """After an answer was lost (timeout, dropped connection): is the note with `write.marker` already there?"""

    @abstractmethod
    def backfill_page(self, client: httpx.Client, since: datetime, cursor: str | None) -> BackfillPage:
        """One page of tickets created since `since` through the vendor's export or search API."""

    # --- shared -------------------------------------------------------------------------------------------------

    def client(self, transport: httpx.BaseTransport | None = None) -> httpx.Client:
        """An HTTP client on the vendor's base URL with our credentials (tests pass a transport)."""
        return httpx.Client(
            base_url=self.config.url.rstrip("/"),
            headers={"Accept": "application/json", **self.auth_headers()},
            timeout=self.config.timeout,
            transport=transport,
        )


def basic_credentials(user: str, secret: str) -> str:
    """The value after `Basic ` in an Authorization header: base64 of `user:secret`."""
    return base64.b64encode(f"{user}:{secret}".encode()).decode()


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header by name, whatever the case of the mapping's keys."""
    wanted = name.lower()
    return next((v for k, v in headers.items() if k.lower() == wanted), None)


def need(payload: Any, path: str, system: str) -> Any:
    """The value at a dotted path of a JSON payload; PayloadInvalid naming the path when it is missing."""
    value = payload
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value or value[part] is None:
            raise PayloadInvalid(system, f"the payload has no `{path}`: is this a {system} ticket event?")
        value = value[part]
    return value
