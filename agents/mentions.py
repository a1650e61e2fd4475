"""Mentions of catalogue services in text of any language: stemmed whole-word phrases, denials, subject position."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

from agents.language import detect_language, loose_key

WORD = re.compile(r"\w+")  # "invoice_4471" is one word (a file name), not "invoice"
VOWEL = re.compile(r"[aeiouy]")
SIBILANT_ES = re.compile(r"(?:s|x|z|ch|sh)es$")
KEEP_S = ("ss", "us", "is")
SUBJECT_WEIGHT, PASSING_WEIGHT = 1.0, 0.5
# between two words of one phrase: spaces, hyphens, a colon ("s: drive"); never a sentence or list break
PHRASE_GAP = re.compile(r"[\s\-:/'’]*")
SENTENCE_END = re.compile(r"[.!?;]+(?=\s|$)|\n")
GREETING = re.compile(
    r"\s*(?:(?:hi|hello|hey|hiya|dear|morning|good (?:morning|afternoon|evening)|greetings"
    r"|hallo|moin|servus|guten (?:morgen|tag|abend)|liebe[rs]?|sehr geehrte[rn]?"  # German
    r"|hola|buen[oa]s(?: días| tardes| noches)?|estimad[oa]s?"  # Spanish
    r"|bonjour|bonsoir|salut|cher|chère|madame|monsieur"  # French
    r"|olá|ola|oi|bom dia|boa (?:tarde|noite)|car[oa]s?|prezad[oa]s?"  # Portuguese
    r"|goedemorgen|goedemiddag|goedenavond|beste|geachte)\b[^.!?\n,]{0,20})?[,!.]?\s*",  # Dutch
)

# "<service> [on phones | for me | itself | and <other>] works fine / is fine / seems unaffected"
_FILLER = (
    r"(?:\s*(?:\band\b|&|/)\s*(?:the\s+|my\s+|our\s+)?[\w'-]+(?:\s+[\w'-]+)?){0,2}"  # "outlook and huddle ..."
    r"(?:\s+(?:on|for|at|in|from|with|over|via|through)(?:\s+[\w'-]+){1,3}?)?"  # "on phones", "for me"
    r"(?:\s+(?:itself|themselves|too|also|still|all|both|though|here|now|today))*"
)
_WORKS = (
    r"\s+(?:works?|working)\s+(?:fine|ok|okay|normally|perfectly|as\s+(?:expected|normal|usual))\b(?!-)"
    r"|(?:\s+(?:is|are|seems?|looks?)|['’]s)\s+(?:still\s+|all\s+)?"
    r"(?:fine|ok|okay|unaffected|not\s+affected|working(?!\s+(?:on|intermittently|only|sometimes|partially|again))"
    r"(?:\s+(?:fine|ok|okay|normally|perfectly))?+"
    r"|up(?!\s+(?:to\b|and\s+down))|not\s+the\s+(?:problem|issue|cause))\b(?!-)"
)
# "works fine until ...", "is ok for a few minutes then drops": working for a while is not working
_FOR_A_WHILE = (
    r"(?!\s+(?:until|till|then|but\s+then|at\s+first|for\s+(?:a|an|the\s+first|\d+)\b|sometimes|intermittently))"
)
AFTER_WORKS = re.compile(rf"{_FILLER}(?:{_WORKS}){_FOR_A_WHILE}")
BEFORE_DENIED = re.compile(
    r"(?:\bno\s+(?:problems?|issues?)\s+with|\bnothing\s+wrong\s+with)\s+(?:the\s+|my\s+|our\s+)?$"
)
BEFORE_NOT_A = re.compile(r"\bnot\s+(?:a|an|the)\s+$")
AFTER_PROBLEM = re.compile(r"\s+(?:problem|issue|fault)s?\b")
BEFORE_EXCEPT = re.compile(r"\bexcept(?:\s+for)?\s+(?:the\s+|my\s+|our\s+)?$")
# "everything works except Outlook" names the broken one: "except" denies only after a clause that is not "works"
SAYS_WORKING = re.compile(r"(?<!not )(?<!n't )(?<!no longer )\b(?:works?|working|fine|ok|okay|normal(?:ly)?)\b")


class Token(NamedTuple):
    key: str  # the stem without a final "e": "shared", "share" and "sharing" meet at "shar"
    start: int
    end: int


@dataclass(frozen=True)
class Mention:
    """One phrase in the (case-folded) text that names `id`; `denied` is the cue when the text says it works."""

    id: str
    phrase: str
    start: int
    end: int
    denied: str = ""
    weight: float = SUBJECT_WEIGHT


def fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def _undouble(stem: str) -> str:
    return stem[:-1] if len(stem) > 3 and stem[-1] == stem[-2] and stem[-1] not in "aeioulsz" else stem


def stem(word: str) -> str:
    """A light English stemmer on a case-folded word: -ies, -es, -s, then -ing, -ed; words of 3 letters stay."""
    if len(word) <= 3:
        return word
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif SIBILANT_ES.search(word):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(KEEP_S):
        word = word[:-1]
    for suffix in ("ing", "ed"):
        base = word[: -len(suffix)]
        if word.endswith(suffix) and len(base) >= 3 and VOWEL.search(base) and not word.endswith("eed"):
            return _undouble(base)
    return word


def words(text: str) -> list[str]:
    """Case-folded, stemmed word tokens, so "Printers" meets the alias "printer"."""
    return [stem(w) for w in WORD.findall(fold(text))]


@lru_cache(maxsize=65536)
def _key(word: str) -> str:
    s = stem(word)
    return s[:-1] if len(s) > 3 and s.endswith("e") else s


COMPOUND_LANGS = ("de", "nl")  # languages that write compounds as one word: "Diensthandy" is a "Handy"
COMPOUND_HEAD, COMPOUND_PREFIX = 5, 3  # letters of the alias at the end of the compound, and before it


def tokens(folded: str, loose: bool = False) -> list[Token]:
    """Word tokens of already folded text with their character spans; `loose`: keys for another language."""
    keyer = loose_key if loose else _key
    return [Token(keyer(m.group()), m.start(), m.end()) for m in WORD.finditer(folded)]


def _first_sentence(folded: str, pos: int) -> int:
    """The end of the first sentence from `pos` on that is not a greeting ("Hi,") or blank."""
    while True:
        boundary = SENTENCE_END.search(folded, pos)
        end = boundary.end() if boundary else len(folded)
        if not GREETING.fullmatch(folded[pos:end]) or end >= len(folded):
            return end
        pos = end


def subject_end(folded: str) -> int:
    """Where the subject ends: the first line (a ticket's title) and the first sentence after it; in one line of
    text, its first sentence. Greetings ("Hi,") are skipped, they are not the subject."""
    line_end = folded.find("\n")
    if line_end < 0 or GREETING.fullmatch(folded[: line_end + 1]):
        return _first_sentence(folded, 0)
    return _first_sentence(folded, line_end + 1)


def denial(folded: str, start: int, end: int) -> str:
    """The words around the mention [start, end) that say the service works or is not the problem, else ""."""
    bounds = list(SENTENCE_END.finditer(folded))
    clause_start = max((m.end() for m in bounds if m.end() <= start), default=0)
    clause_end = min((m.start() for m in bounds if m.start() >= end), default=len(folded))
    before, after = folded[clause_start:start], folded[end:clause_end]
    found = AFTER_WORKS.match(after)
    if found:
        return (folded[start:end] + found.group()).strip()
    found = BEFORE_DENIED.search(before)
    if found:
        return (found.group() + folded[start:end]).strip()
    found = BEFORE_NOT_A.search(before)
    problem = AFTER_PROBLEM.match(after)
    if found and problem:
        return (found.group() + folded[start:end] + problem.group()).strip()
    found = BEFORE_EXCEPT.search(before)
    if found and not SAYS_WORKING.search(before[: found.start()]):
        return (found.group() + folded[start:end]).strip()
    return ""


Key = tuple[str, ...]
Span = tuple[Key, int, int]


class PhraseTable(NamedTuple):
    """Phrases keyed one way (English stems, or loose keys for other languages): ids, display label, by first word."""

    phrases: dict[Key, list[str]]
    label: dict[Key, str]
    by_first: dict[str, list[Key]]

    @classmethod
    def build(cls, named: Iterable[tuple[str, str]], loose: bool) -> PhraseTable:
        phrases: dict[Key, list[str]] = {}
        label: dict[Key, str] = {}
        for phrase, ident in named:
            key = tuple(t.key for t in tokens(fold(phrase), loose))
            if key and ident not in phrases.setdefault(key, []):
                phrases[key].append(ident)
                label.setdefault(key, " ".join(phrase.lower().split()))
        by_first: dict[str, list[Key]] = {}
        for key in sorted(phrases, key=len, reverse=True):
            by_first.setdefault(key[0], []).append(key)
        return cls(phrases, label, by_first)


class PhraseIndex:
    """Phrases (names, aliases) as stemmed word sequences, each naming one or more ids; found as whole words,
    longest first, never overlapping. Text detected as another language is matched on loose keys (no accents, no
    inflection ending), and German or Dutch compounds on their last part ("Diensthandy" names "Handy")."""

    def __init__(self, named: Iterable[tuple[str, str]]) -> None:
        pairs = list(named)
        every = PhraseTable.build(pairs, loose=False)  # English or unsure text: stems of every language's words
        self.phrases, self.label, self.by_first = every.phrases, every.label, every.by_first
        self.loose = PhraseTable.build(pairs, loose=True)  # another language: loose keys
        self.heads = sorted((k for k in self.loose.phrases if len(k) == 1 and len(k[0]) >= COMPOUND_HEAD), key=len)

    @staticmethod
    def key(phrase: str) -> Key:
        return tuple(t.key for t in tokens(fold(phrase)))

    def spans(
        self, folded: str, toks: Sequence[Token], table: PhraseTable | None = None, compounds: bool = False
    ) -> list[Span]:
        """(phrase key, first token, end token) in text order; a phrase inside a longer match does not count.
        With `compounds`, a word that ends in a one-word phrase (after COMPOUND_PREFIX letters) names it too."""
        by_first = table.by_first if table is not None else self.by_first
        candidates = []
        for i, tok in enumerate(toks):
            for key in by_first.get(tok.key, []):
                j = i + len(key)
                if j <= len(toks) and all(toks[i + n].key == k for n, k in enumerate(key)):
                    gaps = (folded[toks[n].end : toks[n + 1].start] for n in range(i, j - 1))
                    if all(PHRASE_GAP.fullmatch(g) for g in gaps):
                        candidates.append((key, i, j))
            if compounds and tok.key not in by_first:
                head = next((h for h in reversed(self.heads) if self._compound(tok.key, h[0])), None)
                if head is not None:
                    candidates.append((head, i, i + 1))
        taken = [False] * len(toks)
        found = []
        for key, i, j in sorted(candidates, key=lambda c: -len(c[0])):
            if not any(taken[i:j]):
                taken[i:j] = [True] * (j - i)
                found.append((key, i, j))
        return sorted(found, key=lambda c: c[1])

    @staticmethod
    def _compound(word: str, head: str) -> bool:
        return word.endswith(head) and len(word) - len(head) >= COMPOUND_PREFIX

    def mentions(self, text: str, lang: str | None = None) -> list[Mention]:
        """Every id named in the text, in text order, with its denial cue and its weight by position. `lang` is the
        text's language (detected when None); in a language other than English the loose keys match."""
        folded = fold(text)
        lang = detect_language(text).lang if lang is None else lang
        foreign = lang not in ("", "en")
        toks = tokens(folded, loose=foreign)
        table = self.loose if foreign else None
        subject = subject_end(folded)
        out: list[Mention] = []
        for key, i, j in self.spans(folded, toks, table, compounds=lang in COMPOUND_LANGS):
            start, end = toks[i].start, toks[j - 1].end
            cue = denial(folded, start, end)
            weight = SUBJECT_WEIGHT if start < subject else PASSING_WEIGHT
            label, ids = (table.label[key], table.phrases[key]) if table else (self.label[key], self.phrases[key])
            out.extend(Mention(ident, label, start, end, cue, weight) for ident in ids)
        return out
