"""Which connectors are on: each system's settings gathered into a ConnectorConfig, and its connector built."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from agents.connectors.base import SYSTEMS, Connector, ConnectorConfig, FieldMapping
from agents.connectors.mapping import load_mappings
from agents.errors import TriageError
from agents.modes import ModeTable
from agents.settings import Settings

log = logging.getLogger(__name__)

# per system: (config field, setting name) for the settings a connector needs, then the optional ones
REQUIRED: dict[str, list[tuple[str, str]]] = {
    "zendesk": [
        ("url", "zendesk_url"),
        ("user", "zendesk_email"),
        ("token", "zendesk_api_token"),
        ("webhook_secret", "zendesk_webhook_secret"),
    ],
    "jira": [
        ("url", "jira_url"),
        ("user", "jira_email"),
        ("token", "jira_api_token"),
        ("webhook_secret", "jira_webhook_secret"),
    ],
    "servicenow": [
        ("url", "servicenow_url"),
        ("user", "servicenow_user"),
        ("token", "servicenow_password"),
        ("webhook_secret", "servicenow_inbound_token"),
    ],
    "zammad": [("url", "zammad_url"), ("token", "zammad_token"), ("webhook_secret", "zammad_webhook_secret")],
}
OPTIONAL: dict[str, list[tuple[str, str]]] = {"servicenow": [("webhook_user", "servicenow_inbound_user")]}


class ConnectorSettingsIncomplete(TriageError):
    """Some of a system's settings are set and others are missing: a half-configured connector refuses to start."""

    def __init__(self, system: str, missing: list[str]) -> None:
        self.system, self.missing = system, missing
        names = ", ".join(f"TRIAGE_{name.upper()}" for name in missing)
        super().__init__(f"connector {system} is half configured: set {names} too (or unset its other settings)")


@dataclass
class Connectors:
    """The connectors that are on, by system, and a line per system that is off saying why."""

    on: dict[str, Connector] = field(default_factory=dict)
    off: dict[str, str] = field(default_factory=dict)

    def get(self, system: str) -> Connector | None:
        return self.on.get(system)


def connector_config(settings: Settings, system: str) -> ConnectorConfig | None:
    """The system's config, None when none of its settings is set; ConnectorSettingsIncomplete when some are."""
    values = {key: getattr(settings, name) for key, name in REQUIRED[system]}
    missing = [name for key, name in REQUIRED[system] if not values[key]]
    if len(missing) == len(values):
        return None
    if missing:
        raise ConnectorSettingsIncomplete(system, missing)
    values.update({key: getattr(settings, name) for key, name in OPTIONAL.get(system, [])})
    return ConnectorConfig(
        system=system,
        replay_window=settings.connector_replay_window,
        timeout=settings.connector_timeout,
        **values,
    )


def connector_class(system: str) -> type[Connector]:
    if system == "zendesk":
        from agents.connectors.zendesk import ZendeskConnector

        return ZendeskConnector
    if system == "jira":
        from agents.connectors.jira import JiraConnector

        return JiraConnector
    if system == "servicenow":
        from agents.connectors.servicenow import ServiceNowConnector

        return ServiceNowConnector
    from agents.connectors.zammad import ZammadConnector

    return ZammadConnector


def build_connectors(settings: Settings, labels: dict[str, list[str]], modes: ModeTable) -> Connectors:
    """Every system's connector from the settings, its mapping checked; logs one line per system that is off."""
    configs = {system: connector_config(settings, system) for system in SYSTEMS}
    enabled = [system for system, config in configs.items() if config is not None]
    path = settings.connector_mapping or settings.kb_dir / "connectors.json"
    mappings: dict[str, FieldMapping] = load_mappings(path, enabled, labels, modes) if enabled else {}
    out = Connectors()
    for system, config in configs.items():
        if config is None:
            names = ", ".join(f"TRIAGE_{name.upper()}" for _, name in REQUIRED[system])
            out.off[system] = f"off: set {names} to turn it on"
            continue
        out.on[system] = connector_class(system)(config, mappings[system])
        log.info("connector %s: on (%s)", system, config.url)
    for system, why in out.off.items():
        log.info("connector %s: %s", system, why)
    return out
