"""Extractive summaries: the ticket's most central sentences, at most 25 words, never empty."""

from __future__ import annotations

import math
import re
from collections import Counter

import numpy as np

MAX_WORDS = 25
SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
WORD = re.compile(r"(?u)\b\w\w+\b")
NOISE = re.compile(
    r"^(hi|hello|hey|dear|hola|bonjour|hallo|ciao|thanks|thank you|regards|best|cheers|kind regards|sent from)\b"
    r"|^-{3,}|^(from|sent|to|subject|cc):",
    re.IGNORECASE,
)


def sentences(text: str) -> list[str]:
    parts = [" ".join(p.split()) for p in SENTENCE.split(text or "")]
    return [p for p in parts if len(p.split()) >= 2 and not NOISE.match(p)]


def centrality(candidates: list[str], whole: str) -> np.ndarray:
    """TF-IDF cosine of each sentence to the whole text (idf over these few documents, as sklearn's defaults).

    Plain Python: fitting a vectoriser per ticket cost more than the rest of the summary.
    """
    bags = [Counter(WORD.findall(doc.lower())) for doc in [*candidates, whole]]
    df = Counter(word for bag in bags for word in bag)
    idf = {word: math.log((1 + len(bags)) / (1 + n)) + 1 for word, n in df.items()}
    weights = [{w: c * idf[w] for w, c in bag.items()} for bag in bags]
    norms = [math.sqrt(sum(v * v for v in w.values())) or 1.0 for w in weights]
    target, target_norm = weights[-1], norms[-1]
    rows = zip(weights[:-1], norms[:-1], strict=True)
    return np.array([sum(v * target.get(w, 0.0) for w, v in row.items()) / (n * target_norm) for row, n in rows])


def _clip(words: list[str], limit: int) -> str:
    return " ".join(words[:limit]) + ("..." if len(words) > limit else "")


class ExtractiveSummariser:
    """Ranks sentences by TF-IDF cosine to the whole ticket and keeps the best in original order."""

    name = "classical:extractive"

    def __init__(self, max_words: int = MAX_WORDS) -> None:
        self.max_words = max_words

    def summarise(self, title: str, body: str) -> str:
        candidates = sentences(body)
        if not candidates:
            fallback = " ".join(f"{title} {body}".split())
            return _clip(fallback.split(), self.max_words) if fallback else "(empty ticket)"
        order = np.argsort(-centrality(candidates, f"{title} {body}"), kind="stable")
        chosen: list[int] = []
        used = 0
        for i in order:
            n = len(candidates[i].split())
            if used + n <= self.max_words:
                chosen.append(int(i))
                used += n
        if not chosen:
            return _clip(candidates[int(order[0])].split(), self.max_words)
        summary = " ".join(candidates[i] for i in sorted(chosen))
        if (
            title
            and len(summary.split()) + len(title.split()) <= self.max_words
            and title.lower() not in summary.lower()
        ):
            summary = f"{title}: {summary}"
        return summary
