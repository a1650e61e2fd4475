"""Export labels as taxonomy ids: slugs, counts, rare labels for review, one dominant label, priorities as P1..P4."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

from pydantic import BaseModel, ConfigDict

from agents.errors import DataError

PRIORITY_IDS = ("P1", "P2", "P3", "P4")
DOMINANT_SHARE = 0.95
MAX_SLUG = 60
NUMBER = re.compile(r"(\d+)")


class FieldLabels(BaseModel):
    """One field's labels as found in the export: each label's id and rows, which are too rare to learn, and the
    rows whose cell was empty."""

    model_config = ConfigDict(extra="forbid")

    name: str  # category, team or priority
    column: str | None  # the export column; None when derived (team from category) or absent (priority)
    derived_from: str | None = None
    ids: dict[str, str]  # every export label -> its id
    rows: dict[str, int]  # every export label -> rows carrying it
    rare: list[str] = []  # labels with fewer than min_label_rows rows: listed for review, kept out of training
    empty_rows: int = 0

    @property
    def learnable(self) -> list[str]:
        return [label for label in self.rows if label not in self.rare]

    def dominant(self) -> tuple[str, float] | None:
        """The label on at least 95% of the labelled rows, with its share, if there is one."""
        total = sum(self.rows.values())
        if not total:
            return None
        label, count = max(self.rows.items(), key=lambda kv: kv[1])
        return (label, count / total) if count / total >= DOMINANT_SHARE else None


def slug(text: str) -> str:
    """Lower-case ASCII words joined by hyphens ("Assignment Group / EMEA" -> "assignment-group-emea")."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:MAX_SLUG].strip("-")


def natural_key(text: str) -> list[tuple[int, int | str]]:
    """Sort key where numbers compare as numbers ("P2" < "P10", "2" < "10")."""
    return [(0, int(part)) if part.isdigit() else (1, part.lower()) for part in NUMBER.split(text) if part]


def make_ids(field: str, labels: list[str]) -> dict[str, str]:
    """A unique, readable id per label: its slug, with the field as a prefix when the slug is empty or starts with a
    digit (Endava's category "4" -> "category-4"), and -2, -3 ... when two labels slug alike."""
    ids: dict[str, str] = {}
    taken: set[str] = set()
    for label in labels:
        base = slug(label)
        if not base or base[0].isdigit():
            base = f"{field}-{base}" if base else field
        candidate, n = base, 2
        while candidate in taken:
            candidate, n = f"{base}-{n}", n + 1
        ids[label] = candidate
        taken.add(candidate)
    return ids


def count_labels(name: str, column: str | None, values: list[str | None], min_rows: int) -> FieldLabels:
    """Count one field's labels (most frequent first) and give each an id; empty cells are counted apart."""
    counts = Counter(v for v in values if v)
    ordered = sorted(counts, key=lambda label: (-counts[label], natural_key(label)))
    return FieldLabels(
        name=name,
        column=column,
        ids=make_ids(name, ordered),
        rows={label: counts[label] for label in ordered},
        rare=[label for label in ordered if counts[label] < min_rows],
        empty_rows=sum(1 for v in values if not v),
    )


def priority_labels(found: FieldLabels, order: list[str] | None) -> tuple[FieldLabels, str | None]:
    """Map at most four priority labels onto P1..P4 in `order` (most urgent first), else in natural sort order
    with a warning. More than four labels, or a label the order leaves out, is an error naming them."""
    labels = list(found.rows)
    where = f"--field priority={found.column}"
    if len(labels) > len(PRIORITY_IDS):
        raise DataError(
            where,
            f"{len(labels)} priority labels, at most 4 map onto P1..P4: {', '.join(sorted(labels, key=natural_key))}; "
            "map them to four in the export, or leave --field priority out",
        )
    warning = None
    if order:
        missing = [label for label in labels if label not in order]
        if missing:
            raise DataError("--priority-order", f"leaves out the priority label(s) {', '.join(missing)}")
        ranked = [label for label in order if label in found.rows]
    else:
        ranked = sorted(labels, key=natural_key)
        warning = (
            "priority order guessed by natural sort ("
            + ", ".join(f"{label} -> {pid}" for label, pid in zip(ranked, PRIORITY_IDS, strict=False))
            + "): pass --priority-order, most urgent first, if that is wrong"
        )
    ids = dict(zip(ranked, PRIORITY_IDS, strict=False))
    return found.model_copy(update={"ids": {label: ids[label] for label in labels}}), warning


def team_per_category(category: FieldLabels) -> FieldLabels:
    """Without a team column: one team per category, with the category's id (teams are another namespace)."""
    return FieldLabels(
        name="team",
        column=None,
        derived_from="category",
        ids=dict(category.ids),
        rows=dict(category.rows),
        rare=list(category.rare),
        empty_rows=category.empty_rows,
    )
