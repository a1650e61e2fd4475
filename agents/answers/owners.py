"""Ownership: find the service a question is about and answer its team, people, on-call and channel, with evidence."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from agents.language import Detection, detect_language
from agents.mentions import Mention, PhraseIndex, Token, denial, fold, tokens
from agents.types import Owner
from kb.loader import KnowledgeBase
from kb.models import Service
from retrieval.embedders import Embedder

__all__ = ["AliasIndex", "OwnerAnswer", "OwnerResolver", "ServiceMatch", "TicketRef"]

HANDLING = re.compile(r"\b(handling|working on|dealing with|looking (at|into)|assigned|fixing|on it)\b", re.I)
CLOSED = {"closed", "resolved", "done", "cancelled", "canceled", "rejected"}
FUZZY_CUTOFF = 0.85
FUZZY_MIN_CHARS = 5
Via = Literal["name", "alias", "fuzzy"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServiceMatch(_Model):
    """One way the question pointed at a service: the phrase, how it matched, how strongly (0-1)."""

    service: str
    phrase: str
    via: Via
    score: float


class TicketRef(_Model):
    id: str
    status: str
    assignee: str | None = None
    team: str | None = None
    title: str = ""


class OwnerAnswer(_Model):
    """The resolved owner (None when nothing matched), the other candidates and how sure we are: the mean of the
    winning team's best SOP similarity and best catalogue-entry similarity (the SOP's alone without a catalogue)."""

    owner: Owner | None = None
    alternatives: list[Owner] = []
    ambiguous: bool = False
    matches: list[ServiceMatch] = []
    mentioned: list[str] = []  # services named in the question, in order
    confidence: float = 0.0
    handling: list[TicketRef] = []
    note: str = ""


def _field(record: Any, name: str) -> Any:
    return record.get(name) if isinstance(record, dict) else getattr(record, name, None)


class AliasIndex(PhraseIndex):
    """Service names, ids and aliases as stemmed word sequences; one sequence may name several services (ambiguous)."""

    def __init__(self, services: dict[str, Service]) -> None:
        super().__init__(
            (phrase, svc.id)
            for svc in services.values()
            for phrase in [svc.name, svc.id.replace("-", " "), *svc.every_alias]
        )
        self.names = {self.key(s.name) for s in services.values()}
        self.fuzzy_keys = [k for k in self.phrases if len(" ".join(k)) >= FUZZY_MIN_CHARS]

    def fuzzy(self, toks: Sequence[Token]) -> list[tuple[tuple[str, ...], int, str, float]]:
        """Word windows within FUZZY_CUTOFF (difflib ratio) of a phrase: typos like "outlok" or "warehose", with the
        first letter right ("sprinter" is another word, not a typo of "printer"); (phrase key, first token, window,
        ratio)."""
        keys = [t.key for t in toks]
        best: dict[tuple[str, ...], tuple[int, str, float]] = {}
        matcher = difflib.SequenceMatcher(autojunk=False)
        for key in self.fuzzy_keys:
            target = " ".join(key)
            matcher.set_seq2(target)
            for i in range(len(keys) - len(key) + 1):
                window = " ".join(keys[i : i + len(key)])
                if window == target or window[0] != target[0] or abs(len(window) - len(target)) > 0.2 * len(target):
                    continue
                matcher.set_seq1(window)
                if matcher.real_quick_ratio() < FUZZY_CUTOFF or matcher.quick_ratio() < FUZZY_CUTOFF:
                    continue
                ratio = matcher.ratio()
                if ratio >= FUZZY_CUTOFF and ratio > best.get(key, (0, "", 0.0))[2]:
                    best[key] = (i, window, ratio)
        return [(key, i, window, ratio) for key, (i, window, ratio) in best.items()]


class OwnerResolver:
    """Catalogue ownership. A team's score is its best retrieved SOP's similarity plus its best catalogue entry's
    similarity (name, aliases, description) to the question; names and aliases found in the question (exactly or
    within a typo) are evidence, the earliest first, and reveal ambiguous aliases; a service the question says works
    ("Wi-Fi on phones works fine") is ruled out. On-call comes from the rotation at `clock()`."""

    def __init__(
        self,
        kb: KnowledgeBase,
        embedder: Embedder | None = None,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        catalogue_path: str = "kb/catalogue.yaml",
    ) -> None:
        self.kb = kb
        self.embedder = embedder
        self.clock = clock
        self.catalogue_path = catalogue_path
        self.aliases = AliasIndex(kb.services)
        self.service_ids = list(kb.services)
        # the embedder reads English: the entry's English aliases only
        texts = [f"{s.name}. {', '.join(s.aliases)}. {s.description}" for s in kb.services.values()]
        self.service_vectors = embedder.embed(texts) if embedder is not None and texts else None

    # ---- which service ----------------------------------------------------------------------------

    def match(self, text: str) -> list[ServiceMatch]:
        """Services named in the text by name or alias, earliest first; fuzzy (typo) matches only when nothing
        matched exactly. A mention the text says works ("Wi-Fi on phones works fine") is left out."""
        return self.mentions(text)[0]

    def mentions(self, text: str, lang: str | None = None) -> tuple[list[ServiceMatch], list[Mention]]:
        """The matches (earliest first) and the denied mentions: services the text says work or are not the problem.
        `lang`: the text's language (detected when None); see PhraseIndex.mentions."""
        kept: list[tuple[int, ServiceMatch]] = []
        denied: list[Mention] = []
        for m in self.aliases.mentions(text, lang):
            if m.denied:
                denied.append(m)
                continue
            via: Via = "name" if self.aliases.key(m.phrase) in self.aliases.names else "alias"
            kept.append((m.start, ServiceMatch(service=m.id, phrase=m.phrase, via=via, score=1.0)))
        if not kept:
            folded = fold(text)
            toks = tokens(folded)
            blocked = {i for i, t in enumerate(toks) if any(d.start <= t.start < d.end for d in denied)}
            for key, i, window, ratio in self.aliases.fuzzy(toks):
                span = range(i, i + len(key))
                start, end = toks[i].start, toks[span[-1]].end
                if blocked.intersection(span):
                    continue
                cue = denial(folded, start, end)
                for sid in self.aliases.phrases[key]:
                    if cue:
                        denied.append(Mention(sid, window, start, end, cue))
                    else:
                        kept.append(
                            (start, ServiceMatch(service=sid, phrase=window, via="fuzzy", score=round(ratio, 4)))
                        )
        kept.sort(key=lambda pair: (pair[0], -pair[1].score))
        return [m for _, m in kept], denied

    def similarities(self, question: str, vector: np.ndarray | None = None) -> dict[str, float]:
        """Cosine of the question to every catalogue entry (empty without an embedder)."""
        if self.service_vectors is None or self.embedder is None:
            return {}
        qvec = vector if vector is not None else self.embedder.embed([question or " "])[0]
        return {sid: float(v) for sid, v in zip(self.service_ids, self.service_vectors @ qvec, strict=True)}

    def resolve(
        self,
        question: str,
        *,
        vector: np.ndarray | None = None,
        sop_scores: dict[str, float] | None = None,
        by_rank: bool = False,
        tickets: Iterable[Any] | None = None,
    ) -> OwnerAnswer:
        """The owning service. `sop_scores` maps a service id to its best retrieved SOP's similarity, in the order
        the SOPs ranked (best first). Within the winning team the service with the best score wins, or with
        `by_rank` (how-to questions: the best SOP matters most) the service of the team's first-ranked SOP."""
        if not self.kb.services:  # the SOPs alone speak
            best_sop = max((sop_scores or {}).values(), default=0.0)
            note = "the service catalogue is empty, so no owner can be named"
            return OwnerAnswer(confidence=round(max(0.0, min(1.0, best_sop)), 4), note=note)
        language = detect_language(question)
        matches, denied = self.mentions(question, language.lang)
        mentioned = list(dict.fromkeys(m.service for m in matches))  # earliest first
        if language.foreign and not mentioned:
            return self._unknown(language, matches)
        ignored = {m.id: m.denied for m in denied if m.id not in mentioned}  # the question says these work
        sims = {sid: v for sid, v in self.similarities(question, vector).items() if sid not in ignored}
        sops = {sid: v for sid, v in (sop_scores or {}).items() if sid in self.kb.services and sid not in ignored}
        team_sop: dict[str, float] = {}
        team_sim: dict[str, float] = {}
        for sid, svc in self.kb.services.items():
            team_sop[svc.owner_team] = max(team_sop.get(svc.owner_team, 0.0), sops.get(sid, 0.0))
            team_sim[svc.owner_team] = max(team_sim.get(svc.owner_team, 0.0), sims.get(sid, 0.0))
        team_score = {t: team_sop[t] + team_sim[t] for t in team_sop}
        service_score = {sid: sops.get(sid, 0.0) + sims.get(sid, 0.0) for sid in self.kb.services}
        order = {sid: len(mentioned) - rank for rank, sid in enumerate(mentioned)}  # earlier: higher
        named_teams: dict[str, int] = {}
        for sid in mentioned:
            named_teams.setdefault(self.kb.services[sid].owner_team, order[sid])
        if language.foreign:  # the embedder and the SOPs are English: the names decide, the earliest first
            best_team = max(named_teams, key=lambda t: (named_teams[t], team_score[t]))
        else:  # names break ties, the earliest name first
            best_team = max(team_score, key=lambda t: (team_score[t], named_teams.get(t, 0)))
        in_team = [sid for sid, svc in self.kb.services.items() if svc.owner_team == best_team]
        ranked = [sid for sid in sops if sid in in_team] if by_rank and not language.foreign else []
        if ranked:
            best = ranked[0]
        elif language.foreign:
            best = max(in_team, key=lambda sid: (order.get(sid, 0), service_score[sid]))
        else:
            best = max(in_team, key=lambda sid: (service_score[sid], order.get(sid, 0)))
        clash = self._clash(matches)
        others = [sid for sid in (clash or []) if sid != best]
        note = ""
        if clash:
            named = " and ".join(
                f"{self.kb.services[s].name} ({self.kb.teams[self.kb.services[s].owner_team].name})" for s in clash
            )
            note = f"'{next(m.phrase for m in matches if m.service == clash[0])}' is ambiguous: it names {named}"
        note = "; ".join(
            [*([note] if note else []), *(f"ignored: question says {s} works ('{c}')" for s, c in ignored.items())]
        )
        evidence = {sid: self._signals(sid, matches, sops, sims) for sid in [best, *others]}
        handling = (
            self.handling(tickets, [best, *mentioned]) if tickets is not None and HANDLING.search(question) else []
        )
        return OwnerAnswer(
            owner=self.owner_of(best, evidence[best]),
            alternatives=[self.owner_of(sid, evidence[sid]) for sid in others],
            ambiguous=bool(clash),
            matches=matches,
            mentioned=mentioned,
            confidence=round(max(0.0, min(1.0, team_score[best_team] / 2)), 4),
            handling=handling,
            note=note,
        )

    @staticmethod
    def _unknown(language: Detection, matches: Sequence[ServiceMatch]) -> OwnerAnswer:
        """No owner for a question in another language that names no catalogue service: the embedder and the SOPs
        are English, so a guess from them would be noise. The note says which language was detected."""
        note = f"detected {language.name}; no owner found: the question names no service of the catalogue"
        return OwnerAnswer(matches=list(matches), note=note)

    @staticmethod
    def _clash(matches: Sequence[ServiceMatch]) -> list[str] | None:
        """The services behind the first phrase that names more than one service."""
        by_phrase: dict[str, list[str]] = {}
        for m in matches:
            by_phrase.setdefault(m.phrase, []).append(m.service)
        return next((sids for sids in by_phrase.values() if len(set(sids)) > 1), None)

    @staticmethod
    def _signals(
        sid: str, matches: Sequence[ServiceMatch], sops: dict[str, float], sims: dict[str, float]
    ) -> list[str]:
        lines = [
            f"question names '{m.phrase}' ({m.via}, {m.score:.2f}) -> service {sid}"
            for m in matches
            if m.service == sid
        ]
        if sid in sops:
            lines.append(f"best retrieved SOP of service {sid}: similarity {sops[sid]:.2f}")
        if sid in sims:
            lines.append(f"catalogue entry of service {sid}: similarity {sims[sid]:.2f}")
        return lines

    # ---- who -------------------------------------------------------------------------------------

    def owner_of(self, service_id: str, signals: Sequence[str] = ()) -> Owner:
        """Team, owners, on-call now, escalation and channel of one catalogue service, with the evidence chain."""
        svc = self.kb.services[service_id]
        team = self.kb.teams[svc.owner_team]
        now = self.clock()
        rota = svc.oncall
        evidence = [
            *signals,
            f"{self.catalogue_path}: service {svc.id} ({svc.name}): owner_team {svc.owner_team}, "
            f"owners {', '.join(svc.owners)}, escalation {svc.escalation}, channel {svc.channel}",
            f"{self.catalogue_path}: service {svc.id} oncall: rotation {', '.join(rota.rotation)}, "
            f"{rota.shift_hours} h shifts from {rota.handover.isoformat()} -> {rota.on_duty(now)} "
            f"at {now.isoformat(timespec='minutes')}",
            f"kb/teams.yaml: team {team.id} ({team.name})",
        ]
        return Owner(
            team=team.id,
            team_name=team.name,
            service=svc.id,
            people=list(svc.owners),
            on_call=rota.on_duty(now),
            escalation=svc.escalation,
            channel=svc.channel,
            evidence=evidence,
        )

    def fallback_owner(self) -> Owner | None:
        """Who to ask when nothing matched: the default team of the taxonomy's catch-all category."""
        cats = self.kb.taxonomy.categories
        team_id = next((c.default_team for c in cats if c.id == "other"), None) or next(iter(self.kb.teams), None)
        if team_id is None or team_id not in self.kb.teams:
            return None
        team = self.kb.teams[team_id]
        lead = next((m.handle for m in team.members if m.role == "lead"), team.members[0].handle)
        return Owner(
            team=team.id,
            team_name=team.name,
            people=[lead],
            escalation=lead,
            channel=team.channel,
            evidence=[f"kb/taxonomy.yaml: catch-all category default_team {team.id}; kb/teams.yaml: lead {lead}"],
        )

    def handling(self, tickets: Iterable[Any], service_ids: Sequence[str]) -> list[TicketRef]:
        """Open tickets about these services (named in the title, or assigned to the owning team)."""
        wanted = set(service_ids)
        teams = {self.kb.services[sid].owner_team for sid in service_ids}
        named, team_only = [], []
        for record in tickets:
            status = str(_field(record, "status") or "open").lower()
            if status in CLOSED:
                continue
            title = str(_field(record, "title") or "")
            ref = TicketRef(
                id=str(_field(record, "id")),
                status=status,
                assignee=_field(record, "assignee"),
                team=_field(record, "team"),
                title=title[:200],
            )
            mentioned = {m.service for m in self.match(title)} if title else set()
            if mentioned & wanted:
                named.append(ref)
            elif ref.team in teams and not mentioned:
                team_only.append(ref)
        return named or team_only
