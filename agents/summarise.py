"""Extractive summaries that keep the facts: what is broken, for whom, since when and how many, in 200 characters."""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

MAX_CHARS = 200
ELLIPSIS = "…"
MIN_LEAD_CHARS = 60  # a long title is clipped to no less than this to make room for the impact and the start
MIN_SENTENCE_CHARS = 40  # nor a kept sentence other than the impact one
SENTENCE = re.compile(r"(?<=[.!?])\s+")
WORD = re.compile(r"(?u)\b\w\w+\b")
GREETING = re.compile(
    r"^(hi|hello|hey|dear|morning|good morning|afternoon|hola|buenos d[ií]as|bonjour|hallo|ciao|hoi)\b"
    r"(\s+[^\s,.!?]+){0,3}\s*[,.!]+\s*",
    re.IGNORECASE,
)
SIGN_OFF = re.compile(  # a sign-off and at most three more words (a name), not a question
    r"^(?!.*\?)(thanks|thank you|many thanks|cheers|regards|kind regards|best regards|best wishes|best|br|merci|gracias"
    r"|(un )?saludos?|atentamente|danke|(viele |liebe )?gr(ü|u)(ß|ss)e?|mit freundlichen gr(ü|u)(ß|ss)en|groeten"
    r"|cordialement|bien à vous|mvg)\b[\s,.!]*(\S+\s*){0,3}$",
    re.IGNORECASE,
)
NOISE = re.compile(
    r"^(sent from|disclaimer|please consider the environment|this (e-?mail|message) is confidential)"
    r"|^-{3,}|^_{3,}|^(from|sent|to|subject|cc|date|von|an|betreff|de|objet|para|asunto)\s*:",
    re.IGNORECASE,
)
IMPACT_STRONG = re.compile(
    r"\b\d[\d,.]*\+?\s+(?:\w+\s+){0,2}?(people|persons?|users|staff|colleagues|employees|pickers|drivers|agents"
    r"|managers|members|desks|pcs|laptops|machines|devices|scanners|trucks|vehicles|lorries|sites|depots|stores"
    r"|branches|warehouses|customers|orders|teams|shifts|of us|of them|personas|mitarbeiter|personnes)\b"
    r"|\b(every(one|body)|all of (us|them)|all (staff|users|drivers|pickers|the (drivers|pickers|users|staff))"
    r"|whole|entire|nobody|no one|company-wide|site-wide|todos|todo el|alle|tous|toute|iedereen|hele)\b"
    r"|(?<!n't )(?<!not )(?<!isnt )\baffect\w*",
    re.IGNORECASE,
)
IMPACT_WEAK = re.compile(
    r"\b(queu\w*|standstill|can'?t work|cannot work|unable to work|falling behind|deadline|phones are ringing"
    r"|parado|esperando|stillstand|bloqu\w+)\b"
    r"|\b(drivers|pickers|users|staff|customers|everyone|we|they|the team)\s+(can'?t|cannot|cant|are unable)\b",
    re.IGNORECASE,
)
START = re.compile(
    r"\b(since|started|starting|began|from\s+\S+(\s+\S+)?\s+on(wards)?|after\s+(the|i|we|my|a|an|last|lunch))\b"
    r"|\b(monday|tuesday|wednesday|thursday|friday|saturday|sunday)s?\b"
    r"|\b(this|last|yesterday)\s+(morning|afternoon|evening|night|week|weekend|month)\b"
    r"|\b(yesterday|today|tonight|overnight|ago|lunch(time)?)\b"
    r"|\b\d{1,2}[:h]\d{2}\b|\b\d{1,2}\s?(am|pm)\b"
    r"|\bfor\s+(the\s+(last|past)\s+)?(\d+|a|an|one|two|three|few|several)\s+(mins?|minutes|hours?|hrs|days?|weeks?)\b"
    r"|\b(desde|seit|depuis|sinds|ayer|gestern|hier|gisteren|heute|hoy|vandaag|ce matin|vanochtend)\b",
    re.IGNORECASE,
)
SYMPTOM = re.compile(
    r"\b(can'?t|cannot|couldn'?t|won'?t|wont|isn'?t|isnt|aren'?t|arent|doesn'?t|doesnt|don'?t|dont|not|no longer"
    r"|never|fail\w*|error\w*|crash\w*|down|broken|stuck|slow|crawl\w*|freez\w*|blank|empty|missing|wrong|denied"
    r"|locked|expired|invalid|incorrect|offline|disconnect\w*|time[sd]? out|dead|flat|upside down|no puedo|kein\w*)\b"
    r"|[\"'“‘«][^\"'”’»]{3,80}[\"'”’»]",
    re.IGNORECASE,
)
CODE = re.compile(r"\b0x[0-9A-Fa-f]{4,}\b|\b[A-Z]{2,}[-_][A-Z0-9-]*\d\b")
FILLER = re.compile(
    r"^(sorry|apologies|not sure|i wasn'?t sure|i'?m not sure|just (a|wanted)|hope|can (you|someone|anyone) help"
    r"|could you help|any help|¿?me pod[eé]is ayudar|thanks|thank you)\b",
    re.IGNORECASE,
)
LIST_MARKER = re.compile(r"^(\d+[.)]|[-*•])\s+")
CLAUSE = re.compile(r"(?<=[,;:])\s+|\s+[-–—]\s+|\s+(?=(?:but|and then|so|because|which|although)\b)")


def _title_case_line(line: str) -> bool:
    """A signature line: a few capitalised words, no digits, no sentence end (a name, a job title, a team)."""
    words = re.findall(r"[^\W\d_][\w'.-]*", line)
    return (
        0 < len(words) <= 6
        and not re.search(r"\d|[.!?:]$", line)
        and all(w[0].isupper() or w.lower() in ("of", "and", "for", "the", "de", "du", "van", "al", "y") for w in words)
    )


def sentences(text: str) -> list[str]:
    """The body's sentences without greetings, quoted mail headers, sign-offs and the signature below them."""
    out: list[str] = []
    for raw in (text or "").splitlines():
        line = LIST_MARKER.sub("", " ".join(raw.split()))
        if SIGN_OFF.match(line) and out:
            break  # everything below a sign-off is the signature
        if not line or NOISE.match(line) or (out and _title_case_line(line)):
            continue
        for part in SENTENCE.split(line):
            part = GREETING.sub("", part).strip()
            if len(part.split()) >= 2 and not SIGN_OFF.match(part) and not NOISE.match(part):
                out.append(part)
    return out


def centrality(candidates: list[str], whole: str) -> list[float]:
    """TF-IDF cosine of each sentence to the whole text (idf over these few documents, as sklearn's defaults)."""
    bags = [Counter(WORD.findall(doc.lower())) for doc in [*candidates, whole]]
    df = Counter(word for bag in bags for word in bag)
    idf = {word: math.log((1 + len(bags)) / (1 + n)) + 1 for word, n in df.items()}
    weights = [{w: c * idf[w] for w, c in bag.items()} for bag in bags]
    norms = [math.sqrt(sum(v * v for v in w.values())) or 1.0 for w in weights]
    target, target_norm = weights[-1], norms[-1]
    rows = zip(weights[:-1], norms[:-1], strict=True)
    return [sum(v * target.get(w, 0.0) for w, v in row.items()) / (n * target_norm) for row, n in rows]


def clip_words(text: str, limit: int) -> str:
    """At most `limit` characters, cut between words with an ellipsis (a single word longer than that is cut)."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - len(ELLIPSIS) + 1]
    space = cut.rfind(" ")
    kept = cut[:space] if space > 0 else cut[:-1]
    return kept.rstrip(" ,;:-–—") + ELLIPSIS


@dataclass
class _Sentence:
    text: str
    position: int
    score: float
    impact: int  # 2 a number of people or "the whole ...", 1 a consequence such as queues, 0 none
    start: bool
    symptom: bool

    def cues(self, clause: str) -> bool:
        """Whether a clause of this sentence carries one of the facts the sentence was kept for."""
        has_impact = bool(IMPACT_STRONG.search(clause) or IMPACT_WEAK.search(clause))
        return (self.impact > 0 and has_impact) or (self.start and bool(START.search(clause)))


def _ended(text: str) -> str:
    return text if re.search(r"[.!?:;…]$", text) else f"{text}."


class ExtractiveSummariser:
    """Keeps the title, the sentence stating the impact, the one stating the start, then the most central and
    symptom-bearing sentences, in the ticket's order; compresses to `max_chars` without cutting a word."""

    name = "classical:extractive"

    def __init__(self, max_chars: int = MAX_CHARS) -> None:
        self.max_chars = max_chars

    def summarise(self, title: str, body: str) -> str:
        title = " ".join((title or "").split())
        found = sentences(body)
        if not found:
            fallback = " ".join(f"{title} {body or ''}".split())
            return clip_words(fallback, self.max_chars) if fallback else "(empty ticket)"
        central = centrality(found, f"{title} {body}")
        items = []
        for i, text in enumerate(found):
            impact = 2 if IMPACT_STRONG.search(text) else int(bool(IMPACT_WEAK.search(text)))
            start, symptom = bool(START.search(text)), bool(SYMPTOM.search(text) or CODE.search(text))
            score = central[i] + 0.25 * symptom + 0.1 * impact + 0.15 * start - 0.3 * bool(FILLER.match(text))
            items.append(_Sentence(text, i, score, impact, start, symptom))
        lead = title if title and title.lower() not in " ".join(found).lower() else ""
        must = self._must(items, has_lead=bool(lead))
        others = sorted((s for s in items if s not in must), key=lambda s: -s.score)
        parts = {s.position: s.text for s in must}
        for s in others:  # more sentences while they fit (never an apology or a plea for help)
            if not FILLER.match(s.text) and len(self._join(lead, {**parts, s.position: s.text})) <= self.max_chars:
                parts[s.position] = s.text
        return self._fit(lead, parts, must)

    def _must(self, items: list[_Sentence], *, has_lead: bool) -> list[_Sentence]:
        """The sentences never dropped: the strongest impact, the first start, and without a title the best one."""
        must: list[_Sentence] = []
        impact = max(items, key=lambda s: (s.impact, s.score))
        if impact.impact:
            must.append(impact)
        start = next((s for s in items if s.start), None)
        if start is not None and start not in must:
            must.append(start)
        best = max(items, key=lambda s: s.score)
        if (not has_lead or not must) and best not in must:
            must.insert(0, best)
        return must

    def _join(self, lead: str, parts: dict[int, str]) -> str:
        body = " ".join(_ended(parts[i]) for i in sorted(parts))
        if not lead:
            return body
        return f"{lead} {body}" if re.search(r"[.!?:]$", lead) else f"{lead}: {body}"

    def _fit(self, lead: str, parts: dict[int, str], must: list[_Sentence]) -> str:
        """Compress to the limit, the impact last: kept sentences to the clauses that carry their facts, the title
        dropped when the sentences say it or else clipped, the other sentences clipped, and only then the rest."""

        def over() -> int:
            return len(self._join(lead, parts)) - self.max_chars

        for s in sorted(must, key=lambda s: -len(s.text)):
            if over() <= 0:
                break
            clauses = [c.strip() for c in CLAUSE.split(s.text) if c and c.strip()]
            kept = [c for i, c in enumerate(clauses) if s.cues(c) or (i == 0 and s.symptom)]
            if kept and len(kept) < len(clauses):
                parts[s.position] = ", ".join(c.rstrip(",;:") for c in kept)
        if over() > 0 and lead:
            said = {w.lower() for w in WORD.findall(" ".join(parts.values()))}
            title_words = {w.lower() for w in WORD.findall(lead)}
            if len(title_words & said) >= 0.6 * len(title_words):
                lead = ""
            else:
                lead = clip_words(lead, max(MIN_LEAD_CHARS, len(lead) - over()))
        impact = next((s.position for s in must if s.impact), None)
        for pos in sorted((p for p in parts if p != impact), key=lambda p: -len(parts[p])):
            if over() <= 0:
                break
            parts[pos] = clip_words(parts[pos], max(MIN_SENTENCE_CHARS, len(parts[pos]) - over()))
        return clip_words(self._join(lead, parts), self.max_chars) or "(empty ticket)"
