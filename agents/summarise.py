"""Extractive summaries: the ticket's most central sentences, at most 25 words, never empty."""

from __future__ import annotations

import re

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

MAX_WORDS = 25
SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
NOISE = re.compile(
    r"^(hi|hello|hey|dear|hola|bonjour|hallo|ciao|thanks|thank you|regards|best|cheers|kind regards|sent from)\b"
    r"|^-{3,}|^(from|sent|to|subject|cc):",
    re.IGNORECASE,
)


def sentences(text: str) -> list[str]:
    parts = [" ".join(p.split()) for p in SENTENCE.split(text or "")]
    return [p for p in parts if len(p.split()) >= 2 and not NOISE.match(p)]


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
        try:
            matrix = TfidfVectorizer().fit_transform([*candidates, f"{title} {body}"])
            centrality = (matrix[:-1] @ matrix[-1].T).toarray().ravel()
        except ValueError:  # no usable words at all (emoji, symbols)
            centrality = np.zeros(len(candidates))
        order = np.argsort(-centrality, kind="stable")
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
