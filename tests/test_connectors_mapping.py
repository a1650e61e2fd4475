"""The connector settings and mapping file are checked at start: a half-set connector, an unknown label, or an
`auto` label with no vendor value stops the start with every reason, not a failed write at 3 a.m."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agents.connectors.mapping import MappingInvalid, load_mappings
from agents.connectors.registry import ConnectorSettingsIncomplete, build_connectors
from agents.modes import ModeTable
from agents.settings import Settings

LABELS = {"category": ["network", "hardware"], "priority": ["P1", "P2", "P3", "P4"], "team": ["network", "workplace"]}
ZENDESK = {
    "zendesk_url": "http://127.0.0.1:9",
    "zendesk_email": "triage@acme.example",
    "zendesk_api_token": "token",
    "zendesk_webhook_secret": "secret",
}


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "connectors.json"
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def test_every_problem_of_a_mapping_is_named_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {
            "zendesk": {"team": {"network": "360001", "astrology": "360002"}, "priority": {"P1": " "}},
            "freshdesk": {},
        },
    )
    with pytest.raises(MappingInvalid) as err:
        load_mappings(path, ["zendesk"], LABELS, ModeTable(default="auto"))
    text = str(err.value)
    assert "'freshdesk' is not a system" in text and "astrology, which are not teams" in text
    assert "no vendor value for P1" in text and "mode auto may set workplace" in text
    assert len(err.value.problems) == 6  # the system; team and priority twice each; category


def test_suggest_needs_no_vendor_values_and_auto_needs_them_all(tmp_path: Path) -> None:
    path = write(tmp_path, {"zendesk": {"team": {"network": "360001", "workplace": "360002"}}})
    mappings = load_mappings(path, ["zendesk"], LABELS, ModeTable(default="suggest", fields={"team": "auto"}))
    assert mappings["zendesk"].to_vendor("team", "workplace") == "360002"
    assert mappings["zendesk"].from_vendor("team", "360001") == "network"
    assert load_mappings(None, ["zendesk"], LABELS, ModeTable(default="shadow"))["zendesk"].team == {}


def test_a_file_that_is_not_json_is_refused_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(MappingInvalid, match="not valid JSON"):
        load_mappings(write(tmp_path, "{zendesk: "), ["zendesk"], LABELS, ModeTable(default="shadow"))
    with pytest.raises(MappingInvalid, match="expected a JSON object"):
        load_mappings(write(tmp_path, "[1, 2]"), ["zendesk"], LABELS, ModeTable(default="shadow"))


def test_a_connector_is_off_without_settings_and_refuses_to_start_half_set(tmp_path: Path) -> None:
    modes = ModeTable(default="shadow")
    off = build_connectors(Settings(data_dir=tmp_path), LABELS, modes)
    assert off.on == {} and "TRIAGE_ZENDESK_WEBHOOK_SECRET" in off.off["zendesk"]
    on = build_connectors(Settings(data_dir=tmp_path, **ZENDESK), LABELS, modes)
    assert list(on.on) == ["zendesk"] and set(on.off) == {"jira", "servicenow", "zammad"}
    with pytest.raises(ConnectorSettingsIncomplete, match="TRIAGE_JIRA_API_TOKEN"):
        build_connectors(Settings(data_dir=tmp_path, jira_url="http://127.0.0.1:9", jira_email="a@b"), LABELS, modes)
