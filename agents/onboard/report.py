"""DIR/report.md: the commands, the data and every row's fate, warnings, what was derived, and the held-out figures."""

from __future__ import annotations

from agents.onboard.derive import FIELDS, Derived
from agents.onboard.summary import FieldSummary, OnboardSummary


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _field_table(summary: OnboardSummary) -> list[str]:
    lines = [
        "| field | labels learnt | train rows | held-out rows | accuracy | macro-F1 | TF-IDF + LR accuracy | "
        "TF-IDF + LR macro-F1 | threshold | held-out precision at it | held-out coverage at it |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, f in summary.fields.items():
        learnt = "1 (constant)" if f.single_label else str(len(f.labels) - len(f.review))
        t = f.threshold
        value = "never" if t.value > 1 else f"{t.value:.3f}"
        lines.append(
            f"| {name} | {learnt} | {f.n_train} | {f.n_test} | {_f(f.accuracy)} | {_f(f.macro_f1)} | "
            f"{_f(f.reference.accuracy)} | {_f(f.reference.macro_f1)} | {value} | {_f(t.held_out_precision)} | "
            f"{_f(t.held_out_coverage)} |"
        )
    return lines


def _sweep_table(summary: OnboardSummary) -> list[str]:
    names = list(summary.fields)
    head = "| threshold | " + " | ".join(f"{n} correct | {n} wrong | {n} no prediction" for n in names) + " |"
    lines = [head, "|---|" + "---|" * (3 * len(names))]
    for i, point in enumerate(summary.fields[names[0]].sweep):
        cells = []
        for n in names:
            p = summary.fields[n].sweep[i]
            cells.append(f"{p.correct:.3f} | {p.wrong:.3f} | {p.no_prediction:.3f}")
        lines.append(f"| {point.threshold:.2f} | " + " | ".join(cells) + " |")
    return lines


def _per_value(name: str, f: FieldSummary) -> list[str]:
    t = "never reached" if f.threshold.value > 1 else f"{f.threshold.value:.3f}"
    lines = [
        f"**{name}** (threshold {t}; target precision {f.threshold.target_precision:.2f})",
        "",
        "| value | held-out support | given at the threshold | precision at the threshold | coverage at it |",
        "|---|---|---|---|---|",
    ]
    for value, v in sorted(f.per_value.items(), key=lambda kv: -kv[1].support):
        lines.append(
            f"| {value} | {v.support} | {v.predicted_at_threshold} | {_f(v.precision_at_threshold)} | "
            f"{_f(v.coverage_at_threshold)} |"
        )
    return [*lines, ""]


def _derived(summary: OnboardSummary, derived: Derived) -> list[str]:
    tax, teams = derived.taxonomy, derived.teams.teams
    lines = [
        f"- **Categories** ({len(tax.categories)}), each with its default team (the most frequent team of its rows):",
        "",
        "| id | name in the export | rows | default team |",
        "|---|---|---|---|",
    ]
    rows = summary.fields["category"].labels
    lines += [f"| {c.id} | {c.name} | {rows.get(c.id, 0)} | {c.default_team} |" for c in tax.categories]
    team = summary.fields["team"]
    how = "one team per category (no team column was given)" if team.derived_from else f"from column {team.column!r}"
    lines += [
        "",
        f"- **Teams** ({len(teams)}), {how}. The export names no people, so each team has one member, its queue "
        f"(e.g. `{teams[0].members[0].handle}`, role `queue`): **edit `kb/teams.yaml` to add people** (a `lead` "
        "is who tickets and questions name as owner).",
    ]
    priority = summary.fields["priority"]
    if priority.column:
        mapping = ", ".join(f"{p.name} -> {p.id}" for p in tax.priorities if "(no export label)" not in p.name)
        lines.append(f"- **Priorities** from column {priority.column!r}: {mapping}; default {tax.default_priority}.")
    else:
        lines.append(
            f"- **Priorities**: the export has none, so every ticket is {tax.default_priority} and the priority "
            "model is a constant (confidence 1.0): it says nothing about urgency until people set priorities."
        )
    lines += [
        "- SLA targets per priority are placeholders (15 min / 4 h for P1 to 8 h / 3 days for P4): edit "
        "`kb/taxonomy.yaml`.",
        "- **Catalogue**: no services (`kb/catalogue.yaml`). Add services to have tickets routed also by the service "
        "they name, with owners and on-call rotations.",
    ]
    sops = summary.sops
    if sops is None:
        lines.append(
            '- **SOPs**: none given (`--sops`): `ask` answers "I don\'t know, ask ..." until `kb/sops/` has some.'
        )
    else:
        lines.append(
            f"- **SOPs**: {len(sops.imported)} imported from `{sops.folder}` into `kb/sops/` (service `general`; "
            f"owner team from their front matter, else `{teams[0].id}`), {len(sops.skipped)} skipped."
        )
        lines += [f"  - skipped `{path}`: {why}" for path, why in sops.skipped.items()]
        lines += [f"  - `{s.source}`: {'; '.join(s.notes)}" for s in sops.imported if s.notes]
    return lines


def _fates(summary: OnboardSummary) -> str:
    """Where every row went, in one sentence."""
    rows = summary.rows
    examples = f": e.g. {', '.join(rows.duplicate_examples)}" if rows.duplicate_examples else ""
    reasons = ", ".join(f"{k}: {v}" for k, v in rows.kept_out_reasons.items())
    return (
        f"- **{rows.read} rows read**: {rows.tickets} became training tickets (`tickets.jsonl`), {rows.duplicates} "
        f"repeated an id seen before (the first was kept{examples}), {rows.no_text} had no text, {rows.kept_out} "
        f"were kept out of training because a field was empty or rare{f' ({reasons})' if reasons else ''}."
    )


def render(summary: OnboardSummary, derived: Derived) -> str:
    rows, src = summary.rows, summary.source
    seconds = ", ".join(f"{k} {v:.0f} s" for k, v in summary.seconds.items())
    lines = [
        f"# Onboarding report: {src.path}",
        "",
        f"Measured {summary.created_at} on {summary.machine} (shared and noisy: times are indicative); {seconds}.",
        "",
        "## Commands",
        "",
        "```",
        *summary.commands.values(),
        "```",
        "",
        "## The data",
        "",
        f"- `{src.path}` (sha256 `{src.sha256[:16]}`), {src.encoding}; columns: {', '.join(src.columns)}.",
        _fates(summary),
    ]
    if rows.missing_ids:
        lines.append(f"- {rows.missing_ids} rows had an empty id cell and were given the id row-N (their row number).")
    if src.ragged_rows:
        lines.append(f"- {src.ragged_rows} rows had more cells than the header: the extra cells were ignored.")
    holdout, seed = float(str(summary.options["holdout"])), summary.options["seed"]
    lines += [
        f"- Held-out evaluation: {rows.evaluated} rows{' (a stratified sample, --sample)' if rows.sampled else ''}, "
        f"split {1 - holdout:.0%} / {holdout:.0%} stratified by category, seed {seed}; the models were trained on "
        "the training rows usable for every field, as the served "
        "models are on `tickets.jsonl`.",
        "",
        "## Warnings",
        "",
        *([f"- {w}" for w in summary.warnings] or ["- none"]),
        "",
        "## What was derived (`kb/`)",
        "",
        *_derived(summary, derived),
        "",
        "## For review: labels under --min-label-rows",
        "",
    ]
    review = [(n, r) for n in FIELDS for r in summary.fields[n].review if not summary.fields[n].derived_from]
    if review:
        lines += [
            "These labels are in the KB (tickets can be corrected to them) but their rows were kept out of training "
            f"(counted above; {len(review)} labels): too few to learn from. Merge them into other labels in the "
            "export, or keep them and let corrections add rows.",
            "",
            "| field | label | id | rows |",
            "|---|---|---|---|",
            *[f"| {n} | {r.label} | {r.id} | {r.rows} |" for n, r in review],
        ]
    else:
        lines.append("None: every label has enough rows.")
    lines += [
        "",
        "## Held-out results per field",
        "",
        "Accuracy and macro-F1 count every held-out ticket; the threshold is chosen on the training rows for the "
        "precision target, and a ticket under it goes to a human.",
        "",
        *_field_table(summary),
        "",
        "## Threshold sweep (held-out shares: correct, wrong, no prediction)",
        "",
        *_sweep_table(summary),
        "",
        "## Per value at the field's threshold",
        "",
        "Precision: of the held-out tickets given this value at or above the threshold, the share that were right. "
        "Coverage: of the held-out tickets whose true value it is, the share answered at or above the threshold.",
        "",
    ]
    for name in FIELDS:
        if not summary.fields[name].single_label:
            lines += _per_value(name, summary.fields[name])
    lines += ["## Plots", ""]
    lines += [f"![{p}]({p})" for p in summary.files if p.startswith("plots/")]
    lines += ["", "## Files", "", *[f"- `{p}`" for p in summary.files], ""]
    return "\n".join(lines)
