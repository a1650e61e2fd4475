"""Redact personal data and secrets into placeholders before text leaves for an LLM, and restore them after."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

LLM_TEXT_CHARS = 1500  # the most of one ticket's text that is sent to an LLM
PLACEHOLDER = re.compile(r"\[(EMAIL|PHONE|IP|CARD|SECRET)_(\d+)\]")


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def _card(value: str) -> bool:
    digits = re.sub(r"\D", "", value)
    return 13 <= len(digits) <= 19 and luhn_ok(digits)


def _phone(value: str) -> bool:
    digits = re.sub(r"\D", "", value)
    if not 8 <= len(digits) <= 15:
        return False
    return not re.fullmatch(r"(19|20)\d\d[-/.](0?[1-9]|1[0-2])[-/.]\d{1,2}", value.strip())  # a date, not a phone


def _secret_value(value: str) -> bool:
    """A value after 'password:' that looks like one: 4+ characters with a digit, a symbol or mixed case."""
    return len(value) >= 4 and (
        any(c.isdigit() for c in value)
        or any(not c.isalnum() for c in value)
        or (any(c.isupper() for c in value) and any(c.islower() for c in value))
    )


def _token(value: str) -> bool:
    return any(c.isdigit() for c in value) and any(c.isalpha() for c in value)


@dataclass(frozen=True)
class Rule:
    kind: str
    pattern: re.Pattern[str]
    check: Callable[[str], bool] = lambda value: True
    group: int = 0  # the regex group that is redacted (0: the whole match)


OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
RULES: tuple[Rule, ...] = (
    Rule(
        "SECRET",
        re.compile(
            r"(?i)\b(?:password|passwd|pwd|passcode|pin|token|api[ _-]?key|secret|client[ _-]?secret)"
            r"(?:\s+is|\s*[:=])\s*[\"']?([^\s\"',;]*[^\s\"',;.)])"
        ),
        _secret_value,
        group=1,
    ),
    Rule(
        "SECRET",
        re.compile(
            r"\b(?:sk-[A-Za-z0-9_-]{16,}|gh[pousr]_[A-Za-z0-9]{20,}|AKIA[0-9A-Z]{16}|xox[abprs]-[A-Za-z0-9-]{10,}"
            r"|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,})"
        ),
    ),
    Rule("SECRET", re.compile(r"(?<![\w-])[A-Za-z0-9_+/=-]{32,}(?![\w-])"), _token),
    Rule("EMAIL", re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")),
    Rule("CARD", re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])"), _card),
    Rule("IP", re.compile(rf"(?<![\d.]){OCTET}(?:\.{OCTET}){{3}}(?![\d.])")),
    Rule("IP", re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}(?![\w:])")),
    Rule(
        "PHONE",
        re.compile(r"(?<![\w.+/-])(?:\+|00)?\d[\d ()./-]{6,18}\d(?![\w/-])"),
        _phone,
    ),
)


class Redactor:
    """Replaces e-mails, phones, IPs, card numbers and secrets with [KIND_n]; the same value keeps its placeholder.

    `mapping` (placeholder -> original) is filled in place, so several texts of one ticket share numbering.
    """

    def __init__(self, rules: tuple[Rule, ...] = RULES) -> None:
        self.rules = rules

    def redact(self, text: str, mapping: dict[str, str] | None = None) -> tuple[str, dict[str, str]]:
        mapping = {} if mapping is None else mapping
        for rule in self.rules:
            text = rule.pattern.sub(partial(self._replace, rule=rule, mapping=mapping, text=text), text)
        return text, mapping

    def _replace(self, match: re.Match[str], rule: Rule, mapping: dict[str, str], text: str) -> str:
        value = match.group(rule.group)
        if PLACEHOLDER.fullmatch(value) or not rule.check(value):
            return match.group(0)
        placeholder = next((p for p, v in mapping.items() if v == value and p.startswith(f"[{rule.kind}_")), None)
        if placeholder is None:
            n = sum(p.startswith(f"[{rule.kind}_") for p in mapping) + 1
            while f"[{rule.kind}_{n}]" in text or f"[{rule.kind}_{n}]" in mapping:
                n += 1  # a ticket that already contains "[EMAIL_1]" keeps it; ours takes the next number
            placeholder = f"[{rule.kind}_{n}]"
            mapping[placeholder] = value
        whole = match.group(0)
        start, end = match.span(rule.group)
        offset = match.start(0)
        return whole[: start - offset] + placeholder + whole[end - offset :]

    @staticmethod
    def restore(text: str, mapping: dict[str, str]) -> str:
        """Put the originals back; placeholders the model invented stay as they are."""
        return PLACEHOLDER.sub(lambda m: mapping.get(m.group(0), m.group(0)), text)


@dataclass(frozen=True)
class Redacted:
    """A text as it may leave for an LLM: whitespace collapsed, cut to LLM_TEXT_CHARS, personal data and secrets
    replaced by placeholders; `mapping` (placeholder -> original) puts them back in the answer."""

    text: str
    mapping: dict[str, str] = field(default_factory=dict)

    def restore(self, text: str) -> str:
        return Redactor.restore(text, self.mapping)


def prepare(text: str, redactor: Redactor | None = None) -> Redacted:
    """The one way a ticket's (or question's) text is cut and redacted before any LLM call."""
    cut = " ".join(text.split())[:LLM_TEXT_CHARS]
    redacted, mapping = (redactor or Redactor()).redact(cut)
    return Redacted(redacted, mapping)
