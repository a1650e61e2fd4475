"""Redaction before text leaves for an LLM: each kind found, originals restored exactly, ordinary text left alone."""

from __future__ import annotations

import pytest

from agents.redact import Redactor, luhn_ok


@pytest.fixture
def redactor() -> Redactor:
    return Redactor()


@pytest.mark.parametrize(
    ("text", "kind", "secret"),
    [
        ("mail me at jane.doe+it@kestrel.example please", "EMAIL", "jane.doe+it@kestrel.example"),
        ("call +44 7700 900123 after 3", "PHONE", "+44 7700 900123"),
        ("my mobile is 07700 900 456", "PHONE", "07700 900 456"),
        ("VPN from 10.20.30.40 fails", "IP", "10.20.30.40"),
        ("link-local fe80:0:0:0:0:0:0:1 only", "IP", "fe80:0:0:0:0:0:0:1"),
        ("card 4111 1111 1111 1111 was charged", "CARD", "4111 1111 1111 1111"),
        ("my password is Summer2024! since monday", "SECRET", "Summer2024!"),
        ("pwd=hunter2 for the share", "SECRET", "hunter2"),
        ("API key: sk-abcdefghijklmnopqrstuvwx", "SECRET", "sk-abcdefghijklmnopqrstuvwx"),
        ("token ghp_abcdefghijklmnopqrstuvwxyz0123 leaked", "SECRET", "ghp_abcdefghijklmnopqrstuvwxyz0123"),
        ("bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N", "SECRET", "eyJhbGciOiJIUzI1NiJ9"),
    ],
)
def test_each_kind_is_replaced_and_restored(redactor: Redactor, text: str, kind: str, secret: str) -> None:
    redacted, mapping = redactor.redact(text)
    assert secret not in redacted
    assert f"[{kind}_1]" in redacted
    assert redactor.restore(redacted, mapping) == text


@pytest.mark.parametrize(
    "text",
    [
        "password reset please, the password is wrong.",
        "On 2026-01-05 at 09:00 the printer on floor 2 jammed",
        "error 0x80070005 in ticket INC0012345 and KB5034441",
        "card number 4111 1111 1111 1112 fails Luhn",  # not a card: left alone (and too long for a phone)
        "Outlook 365 version 16.0 build 2308",
    ],
)
def test_ordinary_text_is_left_alone(redactor: Redactor, text: str) -> None:
    redacted, mapping = redactor.redact(text)
    assert mapping == {} and redacted == text


def test_the_same_value_keeps_its_placeholder_across_texts(redactor: Redactor) -> None:
    mapping: dict[str, str] = {}
    first, _ = redactor.redact("from bob@x.io to amy@x.io", mapping)
    second, _ = redactor.redact("again bob@x.io", mapping)
    assert first == "from [EMAIL_1] to [EMAIL_2]" and second == "again [EMAIL_1]"


def test_a_ticket_that_already_contains_a_placeholder_still_round_trips(redactor: Redactor) -> None:
    text = "the template says [EMAIL_1] but mine is sam@kestrel.example"
    redacted, mapping = redactor.redact(text)
    assert "[EMAIL_2]" in redacted and "[EMAIL_1]" in redacted
    assert redactor.restore(redacted, mapping) == text


def test_restore_keeps_placeholders_the_model_invented(redactor: Redactor) -> None:
    _, mapping = redactor.redact("write to sam@kestrel.example")
    assert redactor.restore("reply to [EMAIL_1] and [EMAIL_7]", mapping) == "reply to sam@kestrel.example and [EMAIL_7]"


def test_a_mixed_ticket_round_trips(redactor: Redactor) -> None:
    text = (
        "Hi, I'm jane@kestrel.example (07700 900123). From 192.168.1.20 the portal rejects my password: "
        "Tr0ub4dor&3. Paid with 5555 5555 5555 4444. Thanks"
    )
    redacted, mapping = redactor.redact(text)
    for value in ("jane@kestrel.example", "07700 900123", "192.168.1.20", "Tr0ub4dor&3", "5555 5555 5555 4444"):
        assert value not in redacted
    assert len(mapping) == 5
    assert redactor.restore(redacted, mapping) == text


def test_luhn() -> None:
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
