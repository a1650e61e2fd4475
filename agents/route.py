"""Routing: combine the team model, services named in the text, and a vote of similar past tickets."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from agents.similar import team_votes
from agents.types import FieldDecision, Owner, SimilarTicket
from kb.loader import KnowledgeBase
from kb.models import Service


@dataclass(frozen=True)
class RouteWeights:
    model: float = 0.6
    mention: float = 0.2
    neighbours: float = 0.2


class ServiceMatcher:
    """Finds catalogue services named in text by name or alias (whole words, longest match first)."""

    def __init__(self, services: dict[str, Service]) -> None:
        names: list[tuple[str, str]] = []
        for svc in services.values():
            names.append((svc.name.lower(), svc.id))
            names.extend((alias.lower(), svc.id) for alias in svc.aliases)
        names.sort(key=lambda pair: -len(pair[0]))
        self._patterns = [(re.compile(rf"(?<!\w){re.escape(name)}(?!\w)"), name, sid) for name, sid in names]

    def find(self, text: str) -> dict[str, str]:
        """service id -> the phrase that named it; a phrase inside a longer match does not count."""
        lowered = text.lower()
        taken: list[tuple[int, int]] = []
        found: dict[str, str] = {}
        for pattern, name, sid in self._patterns:
            if name not in lowered:  # a plain substring test first: most names are absent, and regexes cost 20x
                continue
            for m in pattern.finditer(lowered):
                if any(s <= m.start() and m.end() <= e for s, e in taken):
                    continue
                taken.append((m.start(), m.end()))
                found.setdefault(sid, name)
        return found


def combine_team_scores(
    model: dict[str, float], mentioned_teams: list[str], neighbours: list[SimilarTicket], weights: RouteWeights
) -> dict[str, float]:
    """Weighted sum of the three signals; each signal is a distribution over teams (or absent)."""
    parts: list[tuple[float, dict[str, float]]] = [(weights.model, model)]
    if mentioned_teams:
        share = 1.0 / len(mentioned_teams)
        mention: dict[str, float] = {}
        for team in mentioned_teams:
            mention[team] = mention.get(team, 0.0) + share
        parts.append((weights.mention, mention))
    votes = team_votes(neighbours)
    if votes:
        parts.append((weights.neighbours, votes))
    total_weight = sum(w for w, _ in parts)
    scores: dict[str, float] = {}
    for weight, dist in parts:
        for team, value in dist.items():
            scores[team] = scores.get(team, 0.0) + weight * value / total_weight
    return scores


class Router:
    """Decides the team and looks up owner, on-call and channel in the catalogue."""

    backend = "classical:route"

    def __init__(self, kb: KnowledgeBase, weights: RouteWeights | None = None) -> None:
        self.kb = kb
        self.weights = weights or RouteWeights()
        self.matcher = ServiceMatcher(kb.services)

    def decide(
        self, text: str, team_proba: dict[str, float], neighbours: list[SimilarTicket]
    ) -> tuple[FieldDecision, str | None]:
        mentioned = self.matcher.find(text)
        teams = [self.kb.services[sid].owner_team for sid in mentioned]
        scores = combine_team_scores(team_proba, teams, neighbours, self.weights)
        team = max(scores, key=lambda t: scores[t])
        reasons = [f"text names service {sid} ('{phrase}')" for sid, phrase in mentioned.items()]
        service = next((sid for sid in mentioned if self.kb.services[sid].owner_team == team), None)
        top = dict(sorted(scores.items(), key=lambda kv: -kv[1])[:3])
        decision = FieldDecision(
            label=team,
            confidence=round(min(1.0, scores[team]), 4),
            backend=self.backend,
            alternatives={k: round(v, 4) for k, v in top.items()},
            reasons=reasons,
        )
        return decision, service

    def owner(self, team_id: str, service_id: str | None, now: datetime) -> Owner:
        team = self.kb.teams[team_id]
        if service_id is not None:
            svc = self.kb.services[service_id]
            return Owner(
                team=team_id,
                team_name=team.name,
                service=svc.id,
                people=list(svc.owners),
                on_call=svc.oncall.on_duty(now),
                escalation=svc.escalation,
                channel=svc.channel,
                evidence=[f"kb/catalogue.yaml: service {svc.id} (owner_team {svc.owner_team})"],
            )
        lead = next((m.handle for m in team.members if m.role == "lead"), team.members[0].handle)
        return Owner(
            team=team_id,
            team_name=team.name,
            people=[lead],
            escalation=lead,
            channel=team.channel,
            evidence=[f"kb/teams.yaml: team {team_id} (no service named; team lead)"],
        )
