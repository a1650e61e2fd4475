"""From the export's labels to a knowledge base (taxonomy, teams, empty catalogue) and the training tickets."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from agents.errors import DataError
from agents.onboard.export import Export, OnboardSpec
from agents.onboard.labels import PRIORITY_IDS, FieldLabels, count_labels, priority_labels, team_per_category
from kb.models import Catalogue, Category, Member, Priority, Taxonomy, Team, Teams

FIELDS = ("category", "priority", "team")
DEFAULT_PRIORITY = "P3"
# placeholder SLA targets (minutes to respond, to resolve) until the helpdesk edits kb/taxonomy.yaml
SLA = {"P1": (15, 240), "P2": (60, 480), "P3": (240, 1440), "P4": (480, 4320)}
PLAIN_NAMES = {"P1": "Critical", "P2": "High", "P3": "Medium", "P4": "Low"}


@dataclass
class Derived:
    """The configuration the export implies, the tickets to train on, and what was kept out and why."""

    labels: dict[str, FieldLabels]
    ids: list[dict[str, str | None]]  # per export record: field -> its id, None when not usable for that field
    taxonomy: Taxonomy
    teams: Teams
    catalogue: Catalogue
    tickets: list[dict[str, Any]]  # records usable for every field, in the JSONL shape the service trains on
    kept_out: dict[str, int] = field(default_factory=dict)  # "field: reason" -> rows (a row may have two reasons)
    warnings: list[str] = field(default_factory=list)


def _field_labels(export: Export, spec: OnboardSpec) -> tuple[dict[str, FieldLabels], list[str]]:
    warnings: list[str] = []
    found: dict[str, FieldLabels] = {}
    for name, column in spec.fields.items():
        values = [r.labels[name] for r in export.records]
        found[name] = count_labels(name, column, values, spec.min_label_rows)
    if "team" not in found:
        found["team"] = team_per_category(found["category"])
    if "priority" in found:
        found["priority"], warning = priority_labels(found["priority"], spec.priority_order)
        if warning:
            warnings.append(warning)
    least = {"category": 2, "team": 1, "priority": 1}
    for name, labels in found.items():
        option = f"--field {name}={labels.column or spec.fields['category']}"
        if not labels.rows:
            raise DataError(option, f"the column is empty in every row ({labels.empty_rows} rows with text)")
        if len(labels.learnable) < least[name]:
            biggest = max(labels.rows.values(), default=0)
            raise DataError(
                option,
                f"{len(labels.learnable)} label(s) have at least {spec.min_label_rows} rows (--min-label-rows), "
                f"{least[name]} needed to learn {name}; {len(labels.rows)} labels, the most frequent on "
                f"{biggest} row(s)",
            )
        dominant = labels.dominant()
        if dominant and not labels.derived_from:
            warnings.append(
                f"{name}: one label, {dominant[0]!r}, is on {dominant[1]:.1%} of the labelled rows; a model that "
                "always says it would be right as often, so read the per-value figures, not the accuracy"
            )
    return found, warnings


def _record_ids(labels: dict[str, FieldLabels], raw: dict[str, str | None]) -> dict[str, str | None]:
    ids: dict[str, str | None] = {}
    for name in FIELDS:
        found = labels.get(name)
        value = raw.get(found.derived_from or name) if found is not None else None
        if name == "priority" and "priority" not in raw:
            ids[name] = DEFAULT_PRIORITY
        elif found is None or not value or value in found.rare:
            ids[name] = None
        else:
            ids[name] = found.ids[value]
    return ids


def _taxonomy(labels: dict[str, FieldLabels], ids: list[dict[str, str | None]], export: Export) -> Taxonomy:
    """Categories with their default team: the most frequent team of the category's rows (rare labels included),
    else the most frequent team; priorities P1..P4 named after the export's labels; no rules."""
    team, category = labels["team"], labels["category"]
    by_category: dict[str, Counter[str]] = {}
    for record in export.records:
        cat, tm = record.labels.get("category"), record.labels.get(team.derived_from or "team")
        if cat and tm:
            by_category.setdefault(category.ids[cat], Counter())[team.ids[tm]] += 1
    catch_all = next(iter(team.ids.values()))  # the most frequent team
    categories = []
    for label, cid in category.ids.items():
        counts = by_category.get(cid)
        default_team = counts.most_common(1)[0][0] if counts else catch_all
        categories.append(Category(id=cid, name=label, default_team=default_team))
    priority = labels.get("priority")
    by_id = {pid: label for label, pid in priority.ids.items()} if priority else {}
    priorities = []
    for pid in PRIORITY_IDS:
        if priority is None:
            name, description = PLAIN_NAMES[pid], "the export has no priority: every ticket is P3 until people set one"
        elif pid in by_id:
            name, description = by_id[pid], f"export {priority.column} = {by_id[pid]}"
        else:
            name, description = f"{PLAIN_NAMES[pid]} (no export label)", ""
        respond, resolve = SLA[pid]
        fields = {"id": pid, "name": name, "description": description}
        priorities.append(
            Priority.model_validate({**fields, "response_minutes": respond, "resolution_minutes": resolve})
        )
    used = Counter(i["priority"] for i in ids if i["priority"])
    default = used.most_common(1)[0][0] if used else DEFAULT_PRIORITY
    return Taxonomy.model_validate(
        {
            "version": "taxonomy.onboarded.v1",
            "categories": categories,
            "priorities": priorities,
            "default_priority": default,
        }
    )


def _teams(labels: FieldLabels, category: FieldLabels) -> Teams:
    names = {cid: label for label, cid in category.ids.items()}
    teams = []
    for label, tid in labels.ids.items():  # most frequent first: the first team is the catch-all for `ask`
        name = f"{names.get(tid, label)} team" if labels.derived_from else label
        queue = Member(handle=f"{tid}-queue", name=f"{name} queue", role="queue")
        teams.append(Team(id=tid, name=name, channel=f"#{tid}", members=[queue]))
    return Teams(version="teams.onboarded.v1", teams=teams)


def derive(export: Export, spec: OnboardSpec) -> Derived:
    """Labels, ids per record, the KB and the training tickets; raises DataError when a field cannot be learnt."""
    labels, warnings = _field_labels(export, spec)
    ids = [_record_ids(labels, r.labels) for r in export.records]
    tickets: list[dict[str, Any]] = []
    kept_out: Counter[str] = Counter()
    for record, record_ids in zip(export.records, ids, strict=True):
        missing = [name for name in FIELDS if record_ids[name] is None]
        if not missing:
            tickets.append(record.training_row(record_ids))
            continue
        for name in missing:
            if labels[name].derived_from:  # the reason is its source field's, counted there
                continue
            kept_out[f"{name}: {'empty' if not record.labels.get(name) else 'rare label'}"] += 1
    if len(tickets) < 10:
        raise DataError(
            str(spec.data), f"only {len(tickets)} rows have a usable label in every field; at least 10 are needed"
        )
    return Derived(
        labels=labels,
        ids=ids,
        taxonomy=_taxonomy(labels, ids, export),
        teams=_teams(labels["team"], labels["category"]),
        catalogue=Catalogue(version="catalogue.onboarded.v1", services=[]),
        tickets=tickets,
        kept_out=dict(kept_out),
        warnings=warnings,
    )
