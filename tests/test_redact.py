"""Transcript and log redaction of AUTH secrets (AU-15)."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpproto import LocalProtocolError
from smtpproto.engine.redact import (
    REDACTED,
    Secrets,
    password_map_secrets,
    redact_client_line,
    redact_text,
)
from smtpproto.sasl import Login, Plain, SaslCredentials, XOAuth2, encode_response
from smtpproto.tables import Lookup

PASSWORD = "S3cr3t-π"
TOKEN = "ya29.TOKEN"
CREDENTIALS = SaslCredentials("user@example.com", PASSWORD, token=TOKEN)
SECRETS = Secrets.from_credentials(CREDENTIALS)


def b64(text: str | bytes) -> str:
    data = text.encode() if isinstance(text, str) else text
    return base64.b64encode(data).decode()


FORBIDDEN = [
    PASSWORD,
    b64(PASSWORD),
    b64(f"\0user@example.com\0{PASSWORD}"),
    b64("user@example.com"),
    TOKEN,
    b64(f"user=user@example.com\x01auth=Bearer {TOKEN}\x01\x01"),
]


def assert_clean(text: str) -> None:
    for secret in FORBIDDEN:
        assert secret not in text
        assert secret.rstrip("=") not in text


def test_au15_auth_line_keeps_verb_and_mechanism() -> None:
    plain = Plain(CREDENTIALS).initial_response()
    assert plain is not None
    line = b"AUTH PLAIN " + encode_response(plain).encode() + b"\r\n"
    assert redact_client_line(line) == f"AUTH PLAIN {REDACTED}"
    assert redact_client_line(b"AUTH LOGIN\r\n") == "AUTH LOGIN"
    assert redact_client_line(b"AUTH EXTERNAL =\r\n") == f"AUTH EXTERNAL {REDACTED}"
    assert redact_client_line(b"MAIL FROM:<a@example.com>\r\n") == "MAIL FROM:<a@example.com>"


def test_au15_every_334_answer_is_redacted() -> None:
    login = Login(CREDENTIALS)
    for prompt in (b"Username:", b"Password:"):
        line = encode_response(login.respond(prompt)).encode() + b"\r\n"
        assert redact_client_line(line, auth_exchange=True) == REDACTED
    assert redact_client_line(b"*\r\n", auth_exchange=True) == "*"
    assert redact_client_line(b"\r\n", auth_exchange=True) == ""


def test_au15_server_echoes_are_scrubbed() -> None:
    blob = b64(f"\0user@example.com\0{PASSWORD}")
    xoauth = XOAuth2(CREDENTIALS).initial_response()
    assert xoauth is not None
    replies = [
        f"501 5.5.2 cannot decode {blob[:6]}…",
        f"501 5.5.2 cannot decode {blob}",
        f"535 5.7.8 bad password {PASSWORD} for user@example.com",
        f"535 5.7.8 token {TOKEN} expired",
        f"500 5.5.1 unrecognized: {b64(xoauth)}",
        f"500 5.5.1 unrecognized: {b64(xoauth).rstrip('=')[:40]}",
        f"501 login {b64('user@example.com')} {b64(PASSWORD)}",
        # The password inside some other blob, at each byte alignment.
        *(f"554 {b64(b'x' * n + PASSWORD.encode() + b'tail')} rejected" for n in range(3)),
    ]
    for reply in replies:
        redacted = redact_text(reply, SECRETS)
        assert_clean(redacted)
        assert REDACTED in redacted
        assert redacted.split()[0] == reply.split()[0]


def test_redaction_keeps_innocent_text() -> None:
    text = "250-mx.example.com Hello user@example.com [192.0.2.1]\n250 AUTH PLAIN LOGIN"
    assert redact_text(text, SECRETS) == text
    assert redact_text("", SECRETS) == ""


def test_redact_text_accepts_plain_strings() -> None:
    assert redact_text("x hunter2 y " + b64("hunter2"), ["hunter2"]) == f"x {REDACTED} y {REDACTED}"
    with pytest.raises(LocalProtocolError):
        redact_text("text", "hunter2")


def test_overlapping_secrets_give_one_marker() -> None:
    assert redact_text("aaS3cr3t-πbb", ["S3cr3t-π", "cr3t-πb"]) == f"aa{REDACTED}b"


def test_secrets_repr_hides_them() -> None:
    assert PASSWORD not in repr(SECRETS)
    assert TOKEN not in repr(SECRETS)
    with pytest.raises(LocalProtocolError):
        Secrets(hidden=["list"])  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(
    password=st.text(min_size=6, max_size=30).filter(lambda s: "\0" not in s),
    prefix=st.binary(max_size=5),
    suffix=st.binary(max_size=5),
)
def test_password_never_survives_in_base64_anywhere(
    password: str, prefix: bytes, suffix: bytes
) -> None:
    secrets = Secrets.from_credentials(SaslCredentials("someone", password))
    text = f"535 {b64(prefix + password.encode() + suffix)} and {password}"
    redacted = redact_text(text, secrets)
    assert password not in redacted
    assert b64(password).rstrip("=") not in redacted


def test_au15_a_live_log_hides_the_passwords_a_lookup_table_knows_in_advance() -> None:
    # A Postfix table (inline:, static:, texthash:, plain patterns) lists its values up front,
    # so a log written during the dialogue can hide them all before any entry is chosen.
    maps: Lookup[str] = Lookup.of(
        f"inline:{{ [mx.example]=a:{PASSWORD} }}, regexp:{{ {{/^b/ b:second-pw}} }}"
    )
    secrets = password_map_secrets(maps)
    text = redact_text(f"535 {PASSWORD} second-pw {b64(PASSWORD)}", secrets)
    assert PASSWORD not in text and "second-pw" not in text and b64(PASSWORD) not in text
    # A callable's values exist only once a key is looked up: nothing to hide in advance.
    assert password_map_secrets(Lookup.of(lambda key: f"c:{PASSWORD}")) == Secrets((), ())
    plain = {"[mx.example]": f"a:{PASSWORD}"}
    assert password_map_secrets(plain) == password_map_secrets(Lookup.of(plain))
