"""Taxonomy priority rules (outage, many users, production down, security): they can only raise a priority."""

from __future__ import annotations

import re

from agents.types import FieldDecision
from kb.models import Taxonomy


class PriorityRules:
    """Applies the taxonomy's rules after any backend; the rule that fired is named in the reasons."""

    def __init__(self, taxonomy: Taxonomy) -> None:
        self.order = taxonomy.priority_ids  # most urgent first: P1, P2, ...
        self.rules = [(rule, re.compile(rule.pattern, re.IGNORECASE)) for rule in taxonomy.rules]

    def apply(self, text: str, decision: FieldDecision) -> FieldDecision:
        fired = []
        for rule, pattern in self.rules:
            match = pattern.search(text)
            if match:
                fired.append((rule, match.group(0)))
        if not fired:
            return decision
        strictest = min(fired, key=lambda rf: self.order.index(rf[0].min_priority))[0].min_priority
        if self.order.index(decision.label) <= self.order.index(strictest):
            reasons = [
                f"rule {r.id} matched '{m}' (at least {r.min_priority}); already {decision.label}" for r, m in fired
            ]
            return decision.model_copy(update={"reasons": [*decision.reasons, *reasons]})
        allowed = self.order[: self.order.index(strictest) + 1]
        mass = {p: decision.alternatives.get(p, 0.0) for p in allowed}
        label = max(mass, key=lambda p: mass[p]) if sum(mass.values()) > 0 else strictest
        reasons = [
            f"priority raised from {decision.label} to {label} by rule {r.id} (matched '{m}')"
            for r, m in fired
            if r.min_priority == strictest
        ]
        return FieldDecision(
            label=label,
            confidence=decision.confidence,
            backend=f"{decision.backend}+rules",
            alternatives=decision.alternatives,
            reasons=[*decision.reasons, *reasons],
        )
