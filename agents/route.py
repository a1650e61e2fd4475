"""Routing: combine the team model, services named in the text, and a vote of similar past tickets."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from agents.mentions import SUBJECT_WEIGHT, Mention, PhraseIndex
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
    """Finds catalogue services named in text by name or alias: whole words after light stemming ("printers" meets
    "printer", "sprinter" does not), longest match first; a mention the text says works is marked denied."""

    def __init__(self, services: dict[str, Service]) -> None:
        self.index = PhraseIndex(
            (phrase, svc.id) for svc in services.values() for phrase in [svc.name, *svc.every_alias]
        )

    def mentions(self, text: str) -> list[Mention]:
        """Every mention in text order, denied ones included (see `Mention.denied`)."""
        return self.index.mentions(text)

    def find(self, text: str) -> dict[str, str]:
        """service id -> the phrase that named it, in text order; services the text only says work are left out."""
        found: dict[str, str] = {}
        for m in self.mentions(text):
            if not m.denied:
                found.setdefault(m.id, m.phrase)
        return found


def combine_team_scores(
    model: dict[str, float],
    mentioned_teams: list[str],
    neighbours: list[SimilarTicket],
    weights: RouteWeights,
    mention_weights: list[float] | None = None,
) -> dict[str, float]:
    """Weighted sum of the three signals; each signal is a distribution over teams (or absent). A mentioned team's
    share of the mention signal follows its mention's weight (`mention_weights`, one per team; equal without)."""
    parts: list[tuple[float, dict[str, float]]] = [(weights.model, model)]
    if mentioned_teams:
        each = mention_weights or [1.0] * len(mentioned_teams)
        total = sum(each)
        mention: dict[str, float] = {}
        for team, weight in zip(mentioned_teams, each, strict=True):
            mention[team] = mention.get(team, 0.0) + weight / total
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
        mentioned: dict[str, Mention] = {}  # service -> its strongest mention (the subject's, else the first)
        denied: dict[str, Mention] = {}
        for m in self.matcher.mentions(text):
            if m.denied:
                denied.setdefault(m.id, m)
            elif m.id not in mentioned or m.weight > mentioned[m.id].weight:
                mentioned[m.id] = m
        teams = [self.kb.services[sid].owner_team for sid in mentioned]
        scores = combine_team_scores(
            team_proba, teams, neighbours, self.weights, [m.weight for m in mentioned.values()]
        )
        team = max(scores, key=lambda t: scores[t])
        reasons = [
            f"text names service {sid} ('{m.phrase}'{'' if m.weight == SUBJECT_WEIGHT else ', in passing'})"
            for sid, m in mentioned.items()
        ]
        reasons += [
            f"ignored: text says {sid} works ('{m.denied}')" for sid, m in denied.items() if sid not in mentioned
        ]
        in_team = [m for m in mentioned.values() if self.kb.services[m.id].owner_team == team]
        service = max(in_team, key=lambda m: (m.weight, -m.start)).id if in_team else None
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
