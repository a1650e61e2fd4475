"""Recurring themes: cluster ticket embeddings (agglomerative, cosine) and name each cluster by its top terms."""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections import Counter
from pathlib import Path
from typing import Protocol

import numpy as np
from sklearn.cluster import AgglomerativeClustering
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, TfidfVectorizer

from agents.digest.models import NO_TEAM, DigestTicket, Theme
from agents.errors import InvalidModelOutput, TriageError
from retrieval.embedders import Embedder

log = logging.getLogger(__name__)
MAX_NAME_CHARS = 80
TOKEN = r"(?u)\b[^\W\d_][^\W\d_]+\b"  # words of two letters or more, no numbers


class ServiceFinder(Protocol):
    """Catalogue services named in a text (agents.route.ServiceMatcher): service id -> the phrase that named it."""

    def find(self, text: str) -> dict[str, str]: ...


class ThemeNamer(Protocol):
    """Names a cluster from a few of its tickets; `terms` is the top-terms name to improve on."""

    name: str

    def name_theme(self, texts: list[str], terms: list[str]) -> str: ...


def clip(text: str, limit: int) -> str:
    """One line of at most `limit` characters, cut between words."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit + 1].rsplit(" ", 1)[0][:limit]


def top_terms(
    tfidf: np.ndarray, present: np.ndarray, vocabulary: np.ndarray, k: int, background: np.ndarray | None = None
) -> list[str]:
    """Terms that are both heavy and shared in the cluster: mean TF-IDF x share of its tickets with the term.
    With `background` (per term, the share of the other tickets that have it) the share counts only as far as it
    exceeds the background's: words everyone uses drop out, the cluster's own words stay.
    A word already inside a chosen phrase is not repeated."""
    share = present.mean(axis=0)
    score = tfidf.mean(axis=0) * (share if background is None else share - background)
    chosen: list[str] = []
    for index in np.argsort(-score, kind="stable"):
        if score[index] <= 0 or len(chosen) == k:
            break
        term = str(vocabulary[index])
        words = set(term.split())
        if any(words <= set(c.split()) or set(c.split()) <= words for c in chosen):
            continue
        chosen.append(term)
    return chosen


class VectorCache:
    """Ticket-text vectors kept between digests (per-team digests after the all-teams one, the next day's
    re-run, the console): a dict in memory, optionally an .npz file, keyed by embedder and text hash."""

    def __init__(self, path: Path | None = None, max_entries: int = 50_000) -> None:
        self.path = path
        self.max_entries = max_entries
        self.vectors: dict[str, np.ndarray] = {}
        if path is not None and path.is_file():
            try:
                with np.load(path) as data:
                    self.vectors = {key: data[key] for key in data.files}
            except (OSError, ValueError) as exc:  # a damaged cache is rebuilt, never fatal
                log.warning("ignoring the vector cache %s: %s", path, exc)

    @staticmethod
    def key(embedder: str, text: str) -> str:
        return hashlib.blake2b(f"{embedder}\0{text}".encode(), digest_size=16).hexdigest()

    def get(self, embedder: str, texts: list[str]) -> dict[str, np.ndarray]:
        keys = {t: self.key(embedder, t) for t in texts}
        return {t: self.vectors[k] for t, k in keys.items() if k in self.vectors}

    def put(self, embedder: str, fresh: dict[str, np.ndarray]) -> None:
        self.vectors.update({self.key(embedder, t): v for t, v in fresh.items()})
        if len(self.vectors) > self.max_entries:  # dicts keep insertion order: drop the oldest
            for key in list(self.vectors)[: len(self.vectors) - self.max_entries]:
                del self.vectors[key]

    def save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.stem}.tmp.npz")
        np.savez(tmp, **self.vectors)  # type: ignore[arg-type]
        os.replace(tmp, self.path)


def embed_once(embedder: Embedder, texts: list[str], cache: VectorCache | None = None) -> np.ndarray:
    """One vector per text; each distinct text is embedded once (and not at all when the cache has it)."""
    unique = list(dict.fromkeys(texts))
    known = cache.get(embedder.name, unique) if cache is not None else {}
    missing = [t for t in unique if t not in known]
    if missing:
        fresh = dict(zip(missing, embedder.embed(missing), strict=True))
        known.update(fresh)
        if cache is not None:
            cache.put(embedder.name, fresh)
    return np.stack([known[t] for t in texts])


class ThemeFinder:
    """Clusters the texts of a window's tickets; clusters of at least `min_size` tickets are themes."""

    def __init__(
        self,
        embedder: Embedder,
        *,
        distance: float = 0.4,  # cosine distance for MiniLM; hashed n-grams need about 0.55
        min_size: int = 3,
        max_themes: int = 5,
        terms: int = 3,
        max_tickets: int = 3000,
        max_chars: int = 160,
        namer: ThemeNamer | None = None,
        cache: VectorCache | None = None,
    ) -> None:
        self.embedder = embedder
        self.max_chars = max_chars
        self.cache = cache
        self.distance = distance
        self.min_size = min_size
        self.max_themes = max_themes
        self.terms = terms
        self.max_tickets = max_tickets
        self.namer = namer

    def vectors(self, texts: list[str]) -> np.ndarray:
        """Each distinct text is embedded once (and not at all when the cache has it)."""
        return embed_once(self.embedder, texts, self.cache)

    def labels(self, vectors: np.ndarray) -> np.ndarray:
        if len(vectors) < 2:
            return np.zeros(len(vectors), dtype=int)
        model = AgglomerativeClustering(
            n_clusters=None, distance_threshold=self.distance, metric="cosine", linkage="average"
        )
        return model.fit_predict(vectors)

    def find(
        self, tickets: list[DigestTicket], services: ServiceFinder | None = None, names: dict[str, str] | None = None
    ) -> list[Theme]:
        """Themes, biggest first; with `services` (and `names`: service id -> catalogue name) a theme whose tickets
        mostly name one service is called by that service and a symptom phrase, else by its top terms."""
        tickets = [t for t in tickets if t.text][: self.max_tickets]
        if len(tickets) < self.min_size:
            return []
        texts = [clip(t.text, self.max_chars) for t in tickets]
        labels = self.labels(self.vectors(texts))
        big = [(label, n) for label, n in Counter(labels.tolist()).most_common() if n >= self.min_size]
        if not big:
            return []
        vectorizer = TfidfVectorizer(stop_words="english", ngram_range=(1, 2), token_pattern=TOKEN, sublinear_tf=True)
        try:
            tfidf = vectorizer.fit_transform(texts)
        except ValueError:  # nothing but stop words
            return []
        vocabulary = vectorizer.get_feature_names_out()
        themes = []
        for label, size in big[: self.max_themes]:
            rows = np.flatnonzero(labels == label)
            block = tfidf[rows].toarray()
            terms = top_terms(block, block > 0, vocabulary, self.terms)
            members = [tickets[i] for i in rows]
            service = self._service([tickets[i].text for i in rows], services, names or {})
            symptom = ""
            if service is not None:
                symptom = _symptom([texts[i] for i in rows], terms, service[1])
            name, named_by = self._name([texts[i] for i in rows], terms, service[0] if service else None, symptom)
            themes.append(
                Theme(
                    name=name,
                    terms=terms,
                    size=size,
                    teams=dict(Counter(t.team or NO_TEAM for t in members).most_common()),
                    ticket_ids=sorted(t.id for t in members)[:5],
                    named_by=named_by,
                )
            )
        return themes

    def _service(
        self, texts: list[str], services: ServiceFinder | None, names: dict[str, str]
    ) -> tuple[str, set[str]] | None:
        """The catalogue service at least half of the theme's tickets name, with the words that named it."""
        if services is None:
            return None
        named: Counter[str] = Counter()
        words: dict[str, set[str]] = {}
        for text in texts:
            for sid, phrase in services.find(text).items():
                named[sid] += 1
                words.setdefault(sid, set()).update(phrase.lower().split())
        if not named:
            return None
        sid, n = named.most_common(1)[0]
        if n * 2 < len(texts):
            return None
        name = names.get(sid, sid)
        return name, words[sid] | set(name.lower().split())

    def _name(
        self, texts: list[str], terms: list[str], service: str | None = None, symptom: str = ""
    ) -> tuple[str, str]:
        fallback = " / ".join(terms) or "(no common words)"
        named_by = "terms"
        if service is not None:
            fallback, named_by = (f"{service}: {symptom}" if symptom else service), "catalogue"
        if self.namer is None:
            return fallback, named_by
        try:
            name = " ".join(self.namer.name_theme(texts[:8], terms).split())
            if not name or len(name) > MAX_NAME_CHARS or not re.search(r"\w", name):
                raise InvalidModelOutput(f"a theme name needs 1 to {MAX_NAME_CHARS} characters", raw=name)
            return name, self.namer.name
        except TriageError as exc:
            log.warning("theme namer %s failed (%s); using the top terms", self.namer.name, exc)
            return fallback, named_by


def _symptom(texts: list[str], terms: list[str], service_words: set[str]) -> str:
    """What the theme's tickets say besides the service's name: the two adjacent words (neither a stop word) that
    most of them use ("server unreachable", at least half), else its top terms without the service's words."""

    def usable(word: str) -> bool:
        return word not in ENGLISH_STOP_WORDS and word not in service_words

    pairs: Counter[str] = Counter()
    for text in texts:
        words = re.findall(TOKEN, text.lower())
        pairs.update({f"{a} {b}" for a, b in zip(words, words[1:], strict=False) if usable(a) and usable(b)})
    if pairs:
        phrase, n = pairs.most_common(1)[0]
        if n * 2 >= len(texts):
            return phrase
    return " / ".join(t for t in terms if not set(t.split()) & service_words)
