"""The shadow report as Markdown: per field the agreement, the sweep on real outcomes and what each value supports."""

from __future__ import annotations

from agents.shadow.agreement import FieldAgreement, ShadowReport


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _field(field: FieldAgreement, lines: list[str]) -> None:
    lines += [
        f"## {field.field}",
        "",
        f"- outcomes: {field.seen}; agreement at any confidence: {_pct(field.agreement)}",
        f"- at the threshold in force: {field.covered} ({_pct(field.coverage)}), precision "
        f"{_pct(field.precision_at_threshold)} (95% lower bound {_pct(field.lower_bound)})",
        f"- recommendation: **{field.recommendation}** ({field.why})",
        "- by what the mode did: "
        + "; ".join(f"{a} {int(f['seen'])} seen, {f['agreement']:.1%} agreed" for a, f in field.by_action.items()),
        "",
        "| value | seen | agreement | at threshold | precision there | lower bound | supports |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    lines += [
        f"| {v.value} | {v.seen} | {_pct(v.agreement)} | {v.covered} | {_pct(v.precision_at_threshold)} | "
        f"{_pct(v.lower_bound)} | {v.recommendation} |"
        for v in field.values
    ]
    lines += ["", "| threshold | correct | wrong | no prediction |", "|---:|---:|---:|---:|"]
    lines += [
        f"| {p.threshold:.2f} | {_pct(p.correct)} | {_pct(p.wrong)} | {_pct(p.no_prediction)} |" for p in field.sweep
    ]
    lines.append("")


def render_markdown(report: ShadowReport) -> str:
    since = report.since.isoformat(timespec="minutes") if report.since else "the first outcome"
    lines = [
        "# Shadow report",
        "",
        f"Outcomes whose final value was set from {since} to {report.until.isoformat(timespec='minutes')}: "
        f"{report.outcomes}. Precision target {report.target_precision:.2f}; a recommendation needs at least "
        f"{report.min_support} outcomes at the threshold, and uses the 95% lower bound of the precision there.",
        "",
        "Agreement compares triage's decision with the agent's final value (a PATCH, a verdict, or the values the "
        "ticket was resolved with). Where a decision was suggested or applied the agent saw it, which can pull "
        "agreement up; `shadow` outcomes are the unbiased ones.",
        "",
    ]
    if not report.fields:
        lines += ["No outcomes yet: agreement is recorded when an agent sets a triaged ticket's final values.", ""]
    for field in report.fields:
        _field(field, lines)
    if report.new_categories is None:
        return "\n".join(lines).rstrip() + "\n"
    lines += ["## Possible new categories", ""]
    if not report.new_categories:
        lines.append("None: no group of tickets that every topic field abstained on is big enough to show.")
    for found in report.new_categories:
        trend = "growing" if found.growing else "not growing"
        examples = "; ".join(f"{e.id} {e.title}" for e in found.examples)
        lines.append(
            f"- {found.size} tickets about {found.about} ({found.recent} in the last {found.growth_days} days, "
            f"{found.previous} the {found.growth_days} before: {trend}); e.g. {examples}"
        )
    return "\n".join(lines).rstrip() + "\n"
