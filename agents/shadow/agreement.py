"""Shadow agreement: per field and per value, how often triage's decision matched the agent's final value."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from agents.novelty.models import NewCategory
from agents.store.outcomes import Outcome
from agents.types import Mode

SWEEP = tuple(round(0.05 * i, 2) for i in range(1, 20))  # 0.05, 0.10, ..., 0.95
MIN_SUPPORT = 30  # outcomes at the threshold before anything but shadow is recommended
SUGGEST_FLOOR = 0.5  # a suggestion must be right more often than not (its lower bound), or it is noise


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SweepPoint(_Model):
    """At one threshold: the share of outcomes decided and right, decided and wrong, and left to a human."""

    threshold: float
    correct: float
    wrong: float
    no_prediction: float


class Agreement(_Model):
    """Agreement figures of a group of outcomes (a field, or one predicted value of it)."""

    seen: int
    agreement: float  # share whose prediction equalled the final value, at any confidence
    covered: int  # outcomes at or above the threshold in force when they were decided
    coverage: float
    precision_at_threshold: float | None
    lower_bound: float | None  # 95% Wilson lower bound of precision_at_threshold
    recommendation: Mode
    why: str


class ValueAgreement(Agreement):
    value: str


class FieldAgreement(Agreement):
    field: str
    by_action: dict[str, dict[str, float]]  # applied / suggested / shadow: seen and agreement
    sweep: list[SweepPoint]
    values: list[ValueAgreement]


class ShadowReport(_Model):
    since: datetime | None
    until: datetime
    target_precision: float
    min_support: int
    outcomes: int
    fields: list[FieldAgreement]
    # clusters of tickets every topic field abstained on (agents/novelty/); None: not looked for (e.g. a replay)
    new_categories: list[NewCategory] | None = None


def wilson_lower(successes: int, n: int, z: float = 1.96) -> float | None:
    """The lower end of the 95% Wilson interval of a proportion (None for n = 0)."""
    if n == 0:
        return None
    p = successes / n
    centre = p + z * z / (2 * n)
    margin = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - margin) / (1 + z * z / n)


def recommend(covered: int, low: float | None, target: float, min_support: int) -> tuple[Mode, str]:
    """The most a group of outcomes supports: auto, suggest, or stay in shadow; and why, with the figures."""
    if covered < min_support or low is None:
        return "shadow", f"only {covered} outcome(s) at the threshold, {min_support} needed before deciding"
    if low >= target:
        return "auto", f"precision lower bound {low:.3f} >= target {target:.2f} on {covered} outcomes"
    if low >= SUGGEST_FLOOR:
        return "suggest", f"precision lower bound {low:.3f} is under the target {target:.2f}, above {SUGGEST_FLOOR}"
    return "shadow", f"precision lower bound {low:.3f} is under {SUGGEST_FLOOR}: suggestions would mislead"


def _at_threshold(outcome: Outcome) -> bool:
    return outcome.threshold is not None and outcome.confidence >= outcome.threshold


def agreement(outcomes: Sequence[Outcome], target: float, min_support: int) -> Agreement:
    """The figures of one group of outcomes, and the mode they support."""
    covered = [o for o in outcomes if _at_threshold(o)]
    right = sum(o.agreed for o in covered)
    low = wilson_lower(right, len(covered))
    mode, why = recommend(len(covered), low, target, min_support)
    return Agreement(
        seen=len(outcomes),
        agreement=sum(o.agreed for o in outcomes) / len(outcomes) if outcomes else 0.0,
        covered=len(covered),
        coverage=len(covered) / len(outcomes) if outcomes else 0.0,
        precision_at_threshold=right / len(covered) if covered else None,
        lower_bound=low,
        recommendation=mode,
        why=why,
    )


def sweep(outcomes: Sequence[Outcome]) -> list[SweepPoint]:
    n = len(outcomes) or 1
    points = []
    for t in SWEEP:
        decided = [o for o in outcomes if o.confidence >= t]
        right = sum(o.agreed for o in decided)
        points.append(
            SweepPoint(
                threshold=t,
                correct=round(right / n, 4),
                wrong=round((len(decided) - right) / n, 4),
                no_prediction=round((len(outcomes) - len(decided)) / n, 4) if outcomes else 0.0,
            )
        )
    return points


def build_report(
    outcomes: Sequence[Outcome],
    *,
    target: float,
    until: datetime,
    since: datetime | None = None,
    min_support: int = MIN_SUPPORT,
) -> ShadowReport:
    """Agreement per field and per predicted value, the sweep on real outcomes, and what each group supports."""
    by_field: dict[str, list[Outcome]] = defaultdict(list)
    for outcome in outcomes:
        by_field[outcome.field].append(outcome)
    fields = []
    for name in sorted(by_field):
        mine = by_field[name]
        by_value: dict[str, list[Outcome]] = defaultdict(list)
        by_action: dict[str, list[Outcome]] = defaultdict(list)
        for outcome in mine:
            by_value[outcome.predicted].append(outcome)
            by_action[outcome.action].append(outcome)
        values = [
            ValueAgreement(value=v, **agreement(group, target, min_support).model_dump())
            for v, group in sorted(by_value.items(), key=lambda kv: -len(kv[1]))
        ]
        fields.append(
            FieldAgreement(
                field=name,
                **agreement(mine, target, min_support).model_dump(),
                by_action={
                    a: {"seen": len(g), "agreement": round(sum(o.agreed for o in g) / len(g), 4)}
                    for a, g in sorted(by_action.items())
                },
                sweep=sweep(mine),
                values=values,
            )
        )
    return ShadowReport(
        since=since,
        until=until,
        target_precision=target,
        min_support=min_support,
        outcomes=len(outcomes),
        fields=fields,
    )
