"""Redaction of what the first rules missed: passwords without a colon, short ones after pw:/pwd=, IBANs (mod 97), and
the password words of German, Spanish, French, Portuguese and Dutch; ordinary words and invalid IBANs stay."""

from __future__ import annotations

import pytest

from agents.redact import Redactor, iban_ok, prepare


@pytest.fixture
def redactor() -> Redactor:
    return Redactor()


@pytest.mark.parametrize(
    ("text", "kind", "secret"),
    [
        ("password hunter2 for the vpn", "SECRET", "hunter2"),
        ("my Password Tr0ub4dor&3 expired", "SECRET", "Tr0ub4dor&3"),
        ("pw: x", "SECRET", "x"),
        ("pwd=x", "SECRET", "x"),
        ("PW: summer", "SECRET", "summer"),
        ("my password was Summer2024 until today", "SECRET", "Summer2024"),
        # German, Spanish, French, Portuguese, Dutch
        ("Mein Passwort: Sommer2024!", "SECRET", "Sommer2024!"),
        ("das Kennwort lautet Geheim99", "SECRET", "Geheim99"),
        ("Kennwort hallo123 geht nicht", "SECRET", "hallo123"),
        ("mi contraseña es Hola1234", "SECRET", "Hola1234"),
        ("Contraseña: gato", "SECRET", "gato"),
        ("la clave es Perro2024", "SECRET", "Perro2024"),
        ("mon mot de passe est Soleil!23", "SECRET", "Soleil!23"),
        ("mot de passe : chat", "SECRET", "chat"),
        ("mdp: Bonjour2024", "SECRET", "Bonjour2024"),
        ("a minha senha é Abc12345", "SECRET", "Abc12345"),
        ("senha: gato", "SECRET", "gato"),
        ("palavra-passe: Lisboa2024", "SECRET", "Lisboa2024"),
        ("mijn wachtwoord is Zomer2024", "SECRET", "Zomer2024"),
        ("wachtwoord: fiets", "SECRET", "fiets"),
        # IBANs, grouped or not
        ("refund to DE89 3704 0044 0532 0130 00 please", "IBAN", "DE89 3704 0044 0532 0130 00"),
        ("IBAN GB82WEST12345698765432.", "IBAN", "GB82WEST12345698765432"),
        ("my account FR14 2004 1010 0505 0001 3M02 606 at the bank", "IBAN", "FR14 2004 1010 0505 0001 3M02 606"),
        ("NL91ABNA0417164300 for expenses", "IBAN", "NL91ABNA0417164300"),
        ("BE68 5390 0754 7034 TEST account", "IBAN", "BE68 5390 0754 7034"),  # the next word is not taken
    ],
)
def test_each_is_replaced_and_restored(redactor: Redactor, text: str, kind: str, secret: str) -> None:
    redacted, mapping = redactor.redact(text)
    assert mapping == {f"[{kind}_1]": secret}
    assert secret not in redacted and f"[{kind}_1]" in redacted
    assert redactor.restore(redacted, mapping) == text


@pytest.mark.parametrize(
    "text",
    [
        "password reset please, the password is wrong.",
        "Password Reset request for the new laptop",
        "password expired yesterday, please help with the password change",
        "Passwort vergessen, Kennwort zurücksetzen",
        "olvidé mi contraseña, la clave secreta no funciona",
        "mot de passe oublié, mdp perdu",
        "esqueci a senha, palavra-passe bloqueada",
        "wachtwoord vergeten",
        "IBAN DE89 3704 0044 0532 0130 01 is wrong",  # one digit off: fails mod 97
        "GB82WEST12345698765433 is not valid",  # one digit off
        "order XY12ABCD1234EFGH5678IJ and AB12CDEF34567890",  # letter-digit strings of no IBAN country
        "ticket INC0012345, KB5034441 and DE1234 on rack B2",
    ],
)
def test_ordinary_text_and_invalid_ibans_are_left_alone(redactor: Redactor, text: str) -> None:
    redacted, mapping = redactor.redact(text)
    assert mapping == {} and redacted == text


def test_iban_check() -> None:
    assert iban_ok("DE89370400440532013000") and iban_ok("de89 3704 0044 0532 0130 00")
    assert not iban_ok("DE89370400440532013001")  # mod 97
    assert not iban_ok("DE8937040044053201300")  # Germany's IBANs have 22 characters
    assert not iban_ok("ZZ89370400440532013000")  # no such country


def test_a_mixed_ticket_in_another_language_round_trips() -> None:
    text = "Hallo, mein Passwort: Sommer2024! und IBAN DE89 3704 0044 0532 0130 00, Mail anna@kestrel.example"
    ticket = prepare(text)
    for value in ("Sommer2024!", "DE89 3704 0044 0532 0130 00", "anna@kestrel.example"):
        assert value not in ticket.text
    assert "[SECRET_1]" in ticket.text and "[IBAN_1]" in ticket.text and "[EMAIL_1]" in ticket.text
    assert ticket.restore(ticket.text) == text
