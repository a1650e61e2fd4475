"""The real knowledge base loads; broken copies name the file, the field and what was expected."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from kb.loader import KbError, load_kb
from kb.models import OnCall

FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
FAST_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

# ---- the real kb/ -----------------------------------------------------------------------------


def test_real_kb_loads(kb_dir: Path) -> None:
    kb = load_kb(kb_dir)
    assert len(kb.services) == 26
    assert len(kb.sops) >= 30
    assert len(kb.teams) == 10
    assert kb.taxonomy.priority_ids == ["P1", "P2", "P3", "P4"]
    assert kb.taxonomy.default_priority in kb.taxonomy.priority_ids
    assert kb.team_of("vpn").id == "network"
    assert kb.sops["sop-vpn-connect"].service == "vpn"


def test_real_kb_cross_references_hold(kb_dir: Path) -> None:
    kb = load_kb(kb_dir)
    for sop in kb.sops.values():
        assert sop.service in kb.services, sop.id
        assert sop.owner_team in kb.teams, sop.id
    for svc in kb.services.values():
        members = kb.teams[svc.owner_team].handles
        assert set(svc.owners) <= set(members), svc.id
        assert set(svc.oncall.rotation) <= set(members), svc.id
        assert svc.escalation in members, svc.id
        assert svc.category in kb.taxonomy.category_ids, svc.id
    # the SOP files on disk are exactly the SOPs loaded
    assert len(list((kb_dir / "sops").glob("*.md"))) == len(kb.sops)


def test_missing_kb_folder(tmp_path: Path) -> None:
    with pytest.raises(KbError, match=r"\(folder\)"):
        load_kb(tmp_path / "nowhere")


# ---- broken copies ----------------------------------------------------------------------------


@pytest.fixture
def kb_copy(kb_dir: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "kb"
    shutil.copytree(kb_dir, dest, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    return dest


def test_untouched_copy_loads(kb_copy: Path) -> None:
    # so every failure below comes from its edit, not from the copy
    assert len(load_kb(kb_copy).services) == 26


def edit_yaml(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    data = yaml.load(path.read_text(encoding="utf-8"), Loader=FAST_LOADER)
    change(data)
    path.write_text(yaml.dump(data, Dumper=FAST_DUMPER, sort_keys=False), encoding="utf-8")


def edit_text(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def load_error(root: Path) -> KbError:
    with pytest.raises(KbError) as info:
        load_kb(root)
    return info.value


def assert_names(err: KbError, path: Path, field: str, expected: str) -> None:
    message = str(err)
    assert err.path == str(path)
    assert err.field == field
    assert expected in err.expected
    assert message.startswith(f"{path}: {field}: expected ")
    assert expected in message


def test_unknown_owner_team(kb_copy: Path) -> None:
    cat = kb_copy / "catalogue.yaml"
    edit_yaml(cat, lambda d: d["services"][3].update(owner_team="nope"))
    err = load_error(kb_copy)
    assert_names(err, cat, "services[3].owner_team", "a team id from teams.yaml")
    assert err.got == "nope"
    assert "got 'nope'" in str(err)


def test_owner_not_member_of_team(kb_copy: Path) -> None:
    cat = kb_copy / "catalogue.yaml"
    edit_yaml(cat, lambda d: d["services"][0].update(owners=["priya.nair", "diego.ramos"]))
    err = load_error(kb_copy)
    assert_names(err, cat, "services[0].owners", "a member of team identity")
    assert err.got == "diego.ramos"


def test_oncall_and_escalation_must_be_members(kb_copy: Path) -> None:
    cat = kb_copy / "catalogue.yaml"
    edit_yaml(cat, lambda d: d["services"][1]["oncall"]["rotation"].append("ghost.user"))
    assert_names(load_error(kb_copy), cat, "services[1].oncall.rotation", "a member of team")
    edit_yaml(cat, lambda d: d["services"][1]["oncall"]["rotation"].remove("ghost.user"))
    edit_yaml(cat, lambda d: d["services"][1].update(escalation="ghost.user"))
    assert_names(load_error(kb_copy), cat, "services[1].escalation", "a member of team identity")


def test_missing_required_field(kb_copy: Path) -> None:
    cat = kb_copy / "catalogue.yaml"
    edit_yaml(cat, lambda d: d["services"][2].pop("channel"))
    assert_names(load_error(kb_copy), cat, "services[2].channel", "field required")


def test_wrong_type_and_unknown_field(kb_copy: Path) -> None:
    cat = kb_copy / "catalogue.yaml"
    edit_yaml(cat, lambda d: d["services"][4].update(sla_tier="platinum"))
    err = load_error(kb_copy)
    assert_names(err, cat, "services[4].sla_tier", "'gold', 'silver' or 'bronze'")
    assert err.got == "platinum"
    edit_yaml(cat, lambda d: d["services"][4].update(sla_tier="gold", colour="red"))
    assert_names(load_error(kb_copy), cat, "services[4].colour", "extra inputs are not permitted")


def test_oncall_handover_needs_time_zone(kb_copy: Path) -> None:
    cat = kb_copy / "catalogue.yaml"
    edit_yaml(cat, lambda d: d["services"][0]["oncall"].update(handover="2026-01-05T08:00:00"))
    assert_names(load_error(kb_copy), cat, "services[0].oncall.handover", "time zone")


def test_duplicate_service_id(kb_copy: Path) -> None:
    cat = kb_copy / "catalogue.yaml"
    edit_yaml(cat, lambda d: d["services"][5].update(id=d["services"][0]["id"]))
    err = load_error(kb_copy)
    assert_names(err, cat, "services[5].id", "a unique service id")
    assert err.got == "identity-portal"


@pytest.mark.parametrize("name", ["teams.yaml", "taxonomy.yaml", "catalogue.yaml"])
def test_invalid_yaml(kb_copy: Path, name: str) -> None:
    path = kb_copy / name
    path.write_text("version: x\nitems: [unclosed, list\n  - and: {bad\n", encoding="utf-8")
    assert_names(load_error(kb_copy), path, "(file)", "valid YAML")


def test_yaml_that_is_not_a_mapping(kb_copy: Path) -> None:
    path = kb_copy / "teams.yaml"
    path.write_text("- just\n- a list\n", encoding="utf-8")
    assert_names(load_error(kb_copy), path, "(top level)", "valid dictionary")


@pytest.mark.parametrize("name", ["teams.yaml", "taxonomy.yaml", "catalogue.yaml"])
def test_missing_file(kb_copy: Path, name: str) -> None:
    (kb_copy / name).unlink()
    assert_names(load_error(kb_copy), kb_copy / name, "(file)", "a readable YAML file")


def test_bad_regex_in_taxonomy_rule(kb_copy: Path) -> None:
    tax = kb_copy / "taxonomy.yaml"
    edit_yaml(tax, lambda d: d["rules"][1].update(pattern=r"\b(printer|scanner\b"))
    err = load_error(kb_copy)
    assert_names(err, tax, "rules[1].pattern", "a valid regular expression")
    assert "missing )" in err.expected  # re.error's own explanation is passed on


def test_category_default_team_must_exist(kb_copy: Path) -> None:
    tax = kb_copy / "taxonomy.yaml"
    edit_yaml(tax, lambda d: d["categories"][2].update(default_team="nobody"))
    assert_names(load_error(kb_copy), tax, "categories[2].default_team", "a team id")


def test_service_category_must_exist(kb_copy: Path) -> None:
    cat = kb_copy / "catalogue.yaml"
    edit_yaml(cat, lambda d: d["services"][6].update(category="gardening"))
    assert_names(load_error(kb_copy), cat, "services[6].category", "a category id")


def test_sop_with_unknown_service(kb_copy: Path) -> None:
    sop = kb_copy / "sops" / "sop-vpn-connect.md"
    edit_text(sop, "service: vpn\n", "service: teleporter\n")
    err = load_error(kb_copy)
    assert_names(err, sop, "service", "a service id from catalogue.yaml")
    assert err.got == "teleporter"


def test_sop_with_unknown_owner_team(kb_copy: Path) -> None:
    sop = kb_copy / "sops" / "sop-vpn-connect.md"
    edit_text(sop, "owner_team: network\n", "owner_team: nobody\n")
    assert_names(load_error(kb_copy), sop, "owner_team", "a team id from teams.yaml")


def test_sop_with_unclosed_front_matter(kb_copy: Path) -> None:
    sop = kb_copy / "sops" / "sop-password-reset.md"
    text = sop.read_text(encoding="utf-8")
    head, sep, body = text.partition("\n---\n")
    assert sep, "fixture SOP has no closing front matter line"
    sop.write_text(head + "\n" + body, encoding="utf-8")
    assert_names(load_error(kb_copy), sop, "front matter", "never closed")


def test_sop_with_front_matter_that_is_not_a_mapping(kb_copy: Path) -> None:
    sop = kb_copy / "sops" / "sop-wifi-office.md"
    sop.write_text("---\n- id\n- title\n---\n# Wi-Fi\n", encoding="utf-8")
    assert_names(load_error(kb_copy), sop, "front matter", "YAML mapping")


def test_sop_without_front_matter_misses_id(kb_copy: Path) -> None:
    sop = kb_copy / "sops" / "sop-new.md"
    sop.write_text("# A new article without front matter\n", encoding="utf-8")
    assert_names(load_error(kb_copy), sop, "id", "field required")


def test_sop_with_bad_date(kb_copy: Path) -> None:
    sop = kb_copy / "sops" / "sop-vpn-connect.md"
    edit_text(sop, "last_reviewed: 2026-06-12", "last_reviewed: last spring")
    err = load_error(kb_copy)
    assert_names(err, sop, "last_reviewed", "valid date")
    assert err.got == "last spring"


def test_duplicate_sop_id(kb_copy: Path) -> None:
    sop = kb_copy / "sops" / "sop-vpn-slow.md"
    edit_text(sop, "id: sop-vpn-slow\n", "id: sop-vpn-connect\n")
    # files load in sorted order: sop-vpn-connect.md first, so sop-vpn-slow.md is the duplicate
    assert_names(load_error(kb_copy), sop, "id", "a unique SOP id")


def test_sop_that_is_not_utf8(kb_copy: Path) -> None:
    sop = kb_copy / "sops" / "sop-latin1.md"
    sop.write_bytes("---\nid: caf\xe9\n---\n".encode("latin-1"))
    assert_names(load_error(kb_copy), sop, "(file)", "UTF-8 text")


def test_duplicate_team_id(kb_copy: Path) -> None:
    teams = kb_copy / "teams.yaml"

    def duplicate(d: dict[str, Any]) -> None:
        extra = dict(d["teams"][0], name="Shadow desk")
        d["teams"].append(extra)

    edit_yaml(teams, duplicate)
    with pytest.raises(KbError, match=r"teams\[10\]\.id"):
        load_kb(kb_copy)


# ---- on-call rotation -------------------------------------------------------------------------

HANDOVER = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


@pytest.fixture
def oncall() -> OnCall:
    return OnCall(rotation=["ana", "ben", "cho"], handover=HANDOVER, shift_hours=168)


@pytest.mark.parametrize(
    ("now", "who"),
    [
        (HANDOVER, "ana"),  # at the first handover
        (HANDOVER + timedelta(days=7, minutes=-1), "ana"),  # one minute before the next
        (HANDOVER + timedelta(days=7), "ben"),  # at the next handover
        (HANDOVER + timedelta(days=14, hours=3), "cho"),
        (HANDOVER + timedelta(days=21), "ana"),  # wrapped around the rotation
        (HANDOVER + timedelta(days=7 * 3 * 10 + 8), "ben"),  # many rotations later
        (HANDOVER - timedelta(minutes=1), "cho"),  # before the first handover: previous shift
    ],
)
def test_on_duty(oncall: OnCall, now: datetime, who: str) -> None:
    assert oncall.on_duty(now) == who


def test_on_duty_compares_instants_across_time_zones(oncall: OnCall) -> None:
    berlin_winter = timezone(timedelta(hours=1))
    # 2026-01-12 09:59 at +01:00 is 08:59 UTC: one minute before ben's shift
    assert oncall.on_duty(datetime(2026, 1, 12, 9, 59, tzinfo=berlin_winter)) == "ana"
    assert oncall.on_duty(datetime(2026, 1, 12, 10, 0, tzinfo=berlin_winter)) == "ben"


def test_on_duty_walks_a_real_rotation_in_order(kb_dir: Path) -> None:
    vpn = load_kb(kb_dir).services["vpn"].oncall
    first = vpn.handover
    shift = timedelta(hours=vpn.shift_hours)
    n = len(vpn.rotation)
    assert [vpn.on_duty(first + i * shift) for i in range(n)] == vpn.rotation
    assert vpn.on_duty(first + n * shift) == vpn.rotation[0]
