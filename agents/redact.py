"""Redact personal data and secrets into placeholders before text leaves for an LLM, and restore them after."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

LLM_TEXT_CHARS = 1500  # the most of one ticket's text that is sent to an LLM
PLACEHOLDER = re.compile(r"\[(EMAIL|PHONE|IP|CARD|IBAN|SECRET)_(\d+)\]")


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
    """A value after 'password is' that looks like one: 4+ characters with a digit, a symbol or mixed case."""
    return len(value) >= 4 and (
        any(c.isdigit() for c in value)
        or any(not c.isalnum() for c in value)
        or (any(c.isupper() for c in value) and any(c.islower() for c in value))
    )


def _bare_secret_value(value: str) -> bool:
    """A value right after 'password ' that looks like one: as above, but a capital first letter alone is a word
    ("Password Reset"), not mixed case."""
    return _secret_value(value) and (
        any(c.isdigit() or not c.isalnum() for c in value) or any(c.isupper() for c in value[1:])
    )


# IBAN length by country (the SWIFT IBAN registry); an IBAN is redacted only with its country's length and mod 97 = 1
IBAN_LENGTHS: dict[int, str] = {
    15: "NO",
    16: "BE",
    18: "DK FI FK FO GL NL SD",
    19: "MK SI",
    20: "AT BA EE KZ LT LU MN XK",
    21: "CH HR LI LV",
    22: "BG BH CR DE GB GE IE ME RS VA",
    23: "AE GI IL IQ OM SO TL",
    24: "AD CZ ES MD PK RO SA SE SK TN VG",
    25: "LY PT ST",
    26: "IS TR",
    27: "BI DJ FR GR IT MC MR SM",
    28: "AL AZ BY CY DO GT HN HU LB NI PL SV",
    29: "BR EG PS QA UA",
    30: "JO KW MU YE",
    31: "MT SC",
    32: "LC",
    33: "RU",
}


def iban_ok(value: str) -> bool:
    """ISO 13616: the country's length, and the number (first four characters moved to the end, letters as 10..35)
    is 1 modulo 97."""
    iban = re.sub(r"\s", "", value).upper()
    if not iban.isalnum() or iban[:2] not in IBAN_LENGTHS.get(len(iban), "").split():
        return False
    return int("".join(str(int(c, 36)) for c in iban[4:] + iban[:4])) % 97 == 1


def _iban_pattern() -> re.Pattern[str]:
    """Country code, check digits, then exactly the country's number of characters (single spaces allowed)."""
    by_length = "|".join(
        rf"(?:{'|'.join(codes.split())})\d\d(?:\s?[A-Za-z0-9]){{{length - 4}}}"
        for length, codes in IBAN_LENGTHS.items()
    )
    return re.compile(rf"(?i)(?<![A-Za-z0-9])(?:{by_length})(?![A-Za-z0-9])")


def _token(value: str) -> bool:
    return any(c.isdigit() for c in value) and any(c.isalpha() for c in value)


@dataclass(frozen=True)
class Rule:
    kind: str
    pattern: re.Pattern[str]
    check: Callable[[str], bool] = lambda value: True
    group: int = 0  # the regex group that is redacted (0: the whole match)


OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
# "password" in English, German, Spanish, French, Portuguese and Dutch
PASSWORD_WORDS = (
    r"password|passwd|pwd|pw|passcode|passwort|kennwort|contrase(?:ñ|n)a|clave|mot\s+de\s+passe|mdp"
    r"|senha|palavra[\s-]passe|wachtwoord"
)
SECRET_WORDS = rf"{PASSWORD_WORDS}|pin|token|api[ _-]?key|secret|client[ _-]?secret"
IS_WORDS = r"is|was|ist|lautet|es|est|é"  # "the password is ..." in the same languages
SECRET_VALUE = r"[\"']?([^\s\"',;]*[^\s\"',;.)])"
RULES: tuple[Rule, ...] = (
    # "password: x", "pwd=x", "Passwort: x": after a colon or an equals sign, any value is the secret
    Rule("SECRET", re.compile(rf"(?i)\b(?:{SECRET_WORDS})\s*[:=]\s*{SECRET_VALUE}"), group=1),
    # "the password is Summer2024!", "la contraseña es Hola123": only a value that looks like a secret
    Rule("SECRET", re.compile(rf"(?i)\b(?:{SECRET_WORDS})\s+(?:{IS_WORDS})\s+{SECRET_VALUE}"), _secret_value, group=1),
    # "password hunter2", "wachtwoord Zomer2024": only a value that looks like a secret, not "password reset"
    Rule("SECRET", re.compile(rf"(?i)\b(?:{PASSWORD_WORDS})\s+{SECRET_VALUE}"), _bare_secret_value, group=1),
    Rule(
        "SECRET",
        re.compile(
            r"\b(?:sk-[A-Za-z0-9_-]{16,}|gh[pousr]_[A-Za-z0-9]{20,}|AKIA[0-9A-Z]{16}|xox[abprs]-[A-Za-z0-9-]{10,}"
            r"|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,})"
        ),
    ),
    Rule("IBAN", _iban_pattern(), iban_ok),
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
    """Replaces e-mails, phones, IPs, card numbers, IBANs and secrets with [KIND_n]; the same value keeps its
    placeholder.

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
