"""Modes per field and value, outcomes from agents' final values, and the shadow report, on real models and SQLite."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from agents.classical.calibration import ThresholdChoice, ValuePrecision
from agents.cli.main import main
from agents.modes import ModeInvalid, ModeRefused, ModeTable
from agents.shadow.agreement import build_report, wilson_lower
from agents.store.outcomes import read_outcomes
from agents.store.records import FeedbackIn, TicketPatch
from agents.store.review import Review
from agents.store.tables import Base
from agents.store.tickets import Store
from agents.types import Ticket

LABELS = {"category": ["network", "hardware"], "priority": ["P2", "P3"], "team": ["netops", "workplace"]}


def choice(precision: float, threshold: float = 0.5, **per_value: tuple[int, float]) -> ThresholdChoice:
    return ThresholdChoice(
        threshold=threshold,
        target_precision=0.9,
        precision=precision,
        coverage=0.6,
        support=100,
        per_value={v: ValuePrecision(predicted=n, covered=n, precision=p) for v, (n, p) in per_value.items()},
    )


GOOD = {"category": choice(0.93, network=(40, 0.95), hardware=(4, 1.0)), "priority": choice(0.7), "team": choice(0.92)}


def test_auto_by_name_is_refused_with_the_figure_when_held_out_precision_is_below_target() -> None:
    with pytest.raises(ModeRefused, match=r"priority: held-out precision 0\.700 is below the target 0\.90") as err:
        ModeTable.build("shadow", {"priority": "auto"}, GOOD, LABELS)
    assert err.value.precision == 0.7 and err.value.target == 0.9
    with pytest.raises(ModeRefused, match="4 held-out row"):  # too few rows to trust a value's own figure
        ModeTable.build("shadow", {"category:hardware": "auto"}, GOOD, LABELS)
    never = {**GOOD, "team": choice(0.6, threshold=1.01)}
    with pytest.raises(ModeRefused, match="no threshold reaches"):
        ModeTable.build("shadow", {"team": "auto"}, never, LABELS)
    table = ModeTable.build("shadow", {"category:network": "auto", "team": "auto"}, GOOD, LABELS)
    assert table.mode_of("category", "network")[0] == "auto" and table.mode_of("category", "hardware")[0] == "shadow"


def test_a_default_auto_the_figures_do_not_support_becomes_suggest_and_says_why() -> None:
    table = ModeTable.build("auto", {}, GOOD, LABELS)
    assert table.demoted.keys() == {"priority"}
    action = table.act("priority", "P2", 0.99, GOOD["priority"], None)
    assert action.action == "suggested" and "0.700" in action.reason
    assert table.act("team", "netops", 0.8, GOOD["team"], None).action == "applied"
    under = table.act("team", "netops", 0.3, GOOD["team"], None)
    assert under.action == "suggested" and "0.30 is under 0.50" in under.reason
    held = table.act("team", "netops", 0.99, GOOD["team"], "the text tries to instruct the model")
    assert held.action == "suggested" and "instruct" in held.reason


def test_a_field_with_one_label_in_training_is_never_auto() -> None:
    always = {**GOOD, "priority": choice(1.0, threshold=1.0)}  # a constant model measures as always right
    table = ModeTable.build("auto", {}, always, LABELS, single_label={"priority": "P3"})
    action = table.act("priority", "P3", 1.0, always["priority"], None)
    assert action.action == "suggested" and "every training row had priority P3" in action.reason
    with pytest.raises(ModeRefused, match="a constant, not a learnt decision"):
        ModeTable.build("auto", {"priority": "auto"}, always, LABELS, single_label={"priority": "P3"})


def test_off_shadow_and_the_global_off_switch() -> None:
    table = ModeTable.build("auto", {"team": "off", "category": "suggest"}, GOOD, LABELS, writes_enabled=False)
    assert table.act("team", "netops", 0.99, GOOD["team"], None).action == "none"
    switched = table.act("category", "network", 0.99, GOOD["category"], None)
    assert switched.action == "shadow" and "switched off" in switched.reason


@pytest.mark.parametrize(
    ("configured", "message"),
    [
        ({"owner": "auto"}, "'owner' is not a field"),
        ({"team": "sometimes"}, "'sometimes' is not a mode"),
        ({"team:astronauts": "suggest"}, "'astronauts' is not a team"),
    ],
)
def test_mode_settings_that_name_nothing_are_refused(configured: dict, message: str) -> None:
    with pytest.raises(ModeInvalid, match=message):
        ModeTable.build("auto", configured, GOOD, LABELS)


def test_wilson_lower_bound() -> None:
    assert wilson_lower(0, 0) is None
    assert wilson_lower(30, 30) == pytest.approx(0.8865, abs=1e-3)  # 30 of 30 is not yet proof of 0.9
    assert wilson_lower(290, 300) == pytest.approx(0.940, abs=2e-3)


@pytest.fixture
def shadow_team(trained_service):
    """The session's real service, with team in shadow and every other field on the default (auto)."""
    service = copy.copy(trained_service)
    models = trained_service.models
    labels = {k: [str(c) for c in m.classes_] for k, m in models.fields.items()}
    service.modes = ModeTable.build("auto", {"team": "shadow"}, models.thresholds, labels)
    return service


def test_results_say_per_field_what_was_done_and_the_store_applies_only_that(tmp_path: Path, shadow_team) -> None:
    store = Store.open(tmp_path)
    records, _ = store.create([Ticket(title="VPN keeps dropping", body="GlobalConnect disconnects every 10 minutes")])
    result = shadow_team.triage(Ticket(id=records[0].id, title=records[0].title, body=records[0].body))
    assert set(result.actions) == {"category", "priority", "team"}
    assert result.actions["team"].action == "shadow" and result.actions["team"].threshold is not None
    store.save_results({records[0].id: result})
    saved = store.get(records[0].id)
    assert saved.team is None  # shadow: recorded in the result, not applied to the ticket
    assert saved.result is not None and saved.result.team == result.team
    for name in ("category", "priority"):
        expected = getattr(result, name) if result.actions[name].action == "applied" else None
        assert getattr(saved, name) == expected, result.actions[name]


def test_outcomes_from_patch_feedback_and_resolution_feed_the_shadow_report(
    tmp_path: Path, shadow_team, kb_dir
) -> None:
    from kb.loader import load_kb

    store = Store.open(tmp_path)
    texts = [("Printer on floor 2 jams", "paper jam every morning"), ("VPN drops", "GlobalConnect disconnects")] * 3
    records, _ = store.create([Ticket(title=t, body=b) for t, b in texts])
    results = shadow_team.triage_batch([Ticket(id=r.id, title=r.title, body=r.body) for r in records])
    store.save_results({r.id: res for r, res in zip(records, results, strict=True)})
    review = Review(store, load_kb(kb_dir))
    other_team = next(t for t in sorted(review.labels["team"]) if t != results[0].team)
    review.update(records[0].id, TicketPatch(team=other_team), "agent")  # disagrees
    review.update(records[1].id, TicketPatch(team=results[1].team), "agent")  # agrees
    review.feedback(FeedbackIn(ticket_id=records[2].id, action="accept", field="category"), "agent")
    review.update(records[3].id, TicketPatch(team=results[3].team, status="resolved"), "agent")
    failed, _ = store.create([Ticket(title="never triaged")])
    store.mark_failed([failed[0].id], "boom")
    review.update(failed[0].id, TicketPatch(team=other_team), "agent")  # never triaged: no agreement to count

    outcomes = read_outcomes(store)
    by_key = {(o.ticket_id, o.field): o for o in outcomes}
    assert failed[0].id not in {o.ticket_id for o in outcomes}
    assert not by_key[(records[0].id, "team")].agreed and by_key[(records[0].id, "team")].action == "shadow"
    assert by_key[(records[1].id, "team")].agreed and by_key[(records[1].id, "team")].source == "patch"
    assert by_key[(records[2].id, "category")].source == "feedback"
    resolved = {f for (t, f) in by_key if t == records[3].id}
    assert "team" in resolved and by_key[(records[3].id, "team")].source == "patch"  # the first record stands
    report = build_report(outcomes, target=0.9, until=outcomes[-1].updated_at, min_support=2)
    team = next(f for f in report.fields if f.field == "team")
    assert team.seen == 3 and team.agreement == pytest.approx(2 / 3)
    for point in team.sweep:
        assert point.correct + point.wrong + point.no_prediction == pytest.approx(1.0, abs=1e-3)
    assert sum(v.seen for v in team.values) == team.seen

    from datetime import UTC, datetime

    from agents.digest.builder import DigestBuilder
    from agents.digest.render import health_lines
    from agents.digest.store import load_digest_input

    now = datetime.now(UTC)
    digest = DigestBuilder(load_kb(kb_dir)).build(load_digest_input(store, now), now=now)
    assert "Agreement with agents' final values: " in "\n".join(health_lines(digest))
    assert digest.ai_health.final_values["team"] == 3 and digest.ai_health.final_agreement["team"] == pytest.approx(
        2 / 3
    )

    code = main(["shadow", "report", "--data-dir", str(tmp_path), "--since", "7d", "--out", str(tmp_path / "r")])
    assert code == 0
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["outcomes"] == len(outcomes)
    written = (tmp_path / "r" / "report.md").read_text()
    assert "| threshold | correct | wrong | no prediction |" in written
    assert "## Possible new categories" not in written  # no saved models here: nothing to look for them with


def test_patch_rejects_labels_outside_the_taxonomy(tmp_path: Path, trained_service, kb_dir) -> None:
    from agents.store.tickets import InvalidChange
    from kb.loader import load_kb

    store = Store.open(tmp_path)
    records, _ = store.create([Ticket(title="monitor flickers")])
    result = trained_service.triage(Ticket(id=records[0].id, title="monitor flickers"))
    store.save_results({records[0].id: result})
    review = Review(store, load_kb(kb_dir))
    with pytest.raises(InvalidChange, match="'P0' is not one of"):
        review.update(records[0].id, TicketPatch(priority="P0"), "agent")
    assert read_outcomes(store) == []


def test_the_migrations_create_exactly_the_tables_the_code_declares(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_the_api_reports_actions_takes_final_values_and_shows_agreement(
    shadow_team, served_answerer, tmp_path: Path
) -> None:
    from tests.test_server_api import make_api

    for api in make_api(shadow_team, served_answerer, tmp_path):
        record = api.post_ticket("VPN will not connect", "GlobalConnect says the gateway is unreachable from home")
        assert record["result"]["actions"]["team"]["action"] == "shadow" and record["team"] is None
        patched = api.client.patch(
            f"/v1/tickets/{record['id']}", json={"team": "network", "category": "network"}, headers=api.triage
        )
        assert patched.status_code == 200, patched.text
        bad = api.client.patch(f"/v1/tickets/{record['id']}", json={"category": "astrology"}, headers=api.triage)
        assert bad.status_code in (400, 422) and "astrology" in bad.text
        metrics = api.client.get("/metrics", headers=api.read).text
        assert 'triage_shadow_outcomes{field="team"} 1.0' in metrics
        assert 'triage_field_actions_total{action="shadow",field="team"} 1.0' in metrics
        page = api.client.get("/console/shadow", headers=api.read)
        assert page.status_code == 200 and 'data-field="team"' in page.text
        queue = api.client.get("/console/queue", headers=api.read).text
        assert "network" in queue


@pytest.mark.slow
def test_a_replayed_history_measures_agreement_without_touching_the_data_folder(tmp_path: Path, demo_rows) -> None:
    from agents.settings import Settings
    from agents.shadow.replay import replay_history

    settings = Settings(data_dir=tmp_path / "untouched", embedder="hashing", train_folds=3)
    report, facts = replay_history(settings, demo_rows[:200], replay=0.25, seed=3, min_support=5)
    assert facts["trained_on"] == 150 and facts["replayed"] == 50
    assert {f.field for f in report.fields} == {"category", "priority", "team"}
    for field in report.fields:
        assert field.seen == 50 and set(field.by_action) == {"shadow"}  # every field replayed in shadow
        assert 0.0 < field.agreement <= 1.0
    assert not (tmp_path / "untouched").exists()


def test_the_report_names_possible_new_categories_only_when_they_were_looked_for() -> None:
    from datetime import UTC, datetime

    from agents.novelty.models import Example, NewCategory
    from agents.shadow.render import render_markdown

    now = datetime.now(UTC)
    found = NewCategory(
        size=12,
        recent=9,
        previous=3,
        growing=True,
        words=["pigeons", "warehouse"],
        examples=[Example(id="tkt_1", title="Pigeons in the warehouse again")],
        ticket_ids=["tkt_1"],
    )
    report = build_report([], target=0.9, until=now)
    assert "Possible new categories" not in render_markdown(report)  # None: not looked for (a replay, no models)
    text = render_markdown(report.model_copy(update={"new_categories": [found]}))
    assert "- 12 tickets about pigeons / warehouse (9 in the last 7 days, 3 the 7 before: growing)" in text
    assert "No outcomes yet" in text
