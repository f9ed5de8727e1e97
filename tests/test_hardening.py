"""Hostile servers and inputs, as a new user meets them (docs/security.md, "Hardening").

Each case is a named test on the engine, on every adapter it applies to (real sockets on
loopback) and on the command: secrets echoed by a server (AU-18), control characters in
reply text (RP-24), deep MIME objects (CV-11), SCRAM iteration counts (AU-19), passwords
over unverified TLS (AU-20), malformed MX names (DN-18).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import email.mime.multipart
import email.mime.text
import functools
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import trio
from hardening_server import HostileServer
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from smtpproto.adapters import asyncio as aio_adapter
from smtpproto.adapters import blocking as blocking_adapter
from smtpproto.adapters import cli
from smtpproto.adapters import trio as trio_adapter
from smtpproto.adapters.demo import DEMO_PASSWORD, DEMO_USER, DemoHandler, SMTPServer
from support.world import ADDR, DEST, Clock, Record, Rng, Script, Session, run

import smtpproto
from smtpproto.body import check_nesting
from smtpproto.config import ClientConfig
from smtpproto.engine import deliver as engine_deliver
from smtpproto.engine.redact import MIN_SLICE, Redactor, Secrets
from smtpproto.envelope import Envelope, Recipient
from smtpproto.report import DeliveryReport, format_log_line, printable
from smtpproto.requests import DeriveKey, MXRecord, Send
from smtpproto.sasl import SaslCredentials, ScramSHA256

ADAPTERS = ["blocking", "asyncio", "trio"]
MESSAGE = b"Subject: hardening\r\n\r\nHello.\r\n"
PASSWORD = "Tr0ub4dor&3-horse"
FORGED = "to=<victim@example.com>, relay=x[192.0.2.9]:25, delay=0, dsn=2.0.0, status=sent (250 ok)"
# Every way a peer's text could start a line or drive a terminal that the reply grammar lets
# through (a C0 control such as ESC makes the reply a protocol error, RP-14).
HOSTILE_TEXT = "\u2028" + FORGED + "\x7f\x85\u009b2J\u009b31m\u202e\u2029\u200b"


@pytest.fixture
def message_file(tmp_path: Any) -> str:
    path = tmp_path / "message.eml"
    path.write_bytes(MESSAGE)
    return str(path)


@pytest.fixture(params=ADAPTERS)
def adapter(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def deliver(adapter: str, destination: str, config: ClientConfig, **arguments: Any) -> Any:
    """The adapter's deliver(), run to completion from synchronous test code."""
    arguments.setdefault("sender", "a@client.test")
    arguments.setdefault("message", MESSAGE)
    arguments["config"] = config
    if adapter == "blocking":
        return blocking_adapter.deliver(destination, **arguments)
    if adapter == "asyncio":
        return asyncio.run(aio_adapter.deliver(destination, **arguments))
    return trio.run(functools.partial(trio_adapter.deliver, destination, **arguments))


def open_session(adapter: str, destination: str, config: ClientConfig) -> None:
    """Open and close a held session with the adapter's connect()."""
    if adapter == "blocking":
        with blocking_adapter.connect(destination, config=config):
            return

    async def main(module: Any) -> None:
        async with module.connect(destination, config=config):
            return

    if adapter == "asyncio":
        asyncio.run(main(aio_adapter))
    else:
        trio.run(main, trio_adapter)


def b64(data: str | bytes) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.b64encode(raw).decode()


def secret_forms(user: str, password: str) -> list[str]:
    """What must never show, by this test's own definition: the password as it is, in
    base64 and hex, and the base64 of the PLAIN blob the client sends (AU-18)."""
    blob = f"\0{user}\0{password}".encode()
    raw = password.encode()
    return [
        password,
        b64(raw).rstrip("="),
        b64(blob).rstrip("="),
        b64(blob).rstrip("=").replace("+", "-").replace("/", "_"),
        raw.hex(),
        raw.hex().upper(),
    ]


def leaks(text: str, forms: list[str]) -> list[str]:
    """Every slice of MIN_SLICE characters of a form that `text` contains."""
    return [
        form[i : i + MIN_SLICE]
        for form in forms
        for i in range(len(form) - MIN_SLICE + 1)
        if form[i : i + MIN_SLICE] in text
    ]


def produced(report: DeliveryReport) -> list[str]:
    """Every string a report gives a program or a person."""
    out = list(report.transcript)
    for result in report.recipients:
        out += [result.diagnostic, format_log_line(result), repr(result)]
        if result.reply is not None:
            out += [str(result.reply), result.reply.text]
    return out


# -- AU-18: secrets echoed by a server ---------------------------------------------------------


def _echo_slice(data: st.DataObject, forms: list[str]) -> str:
    form = data.draw(st.sampled_from(forms))
    start = data.draw(st.integers(0, max(0, len(form) - MIN_SLICE)))
    end = data.draw(st.integers(min(len(form), start + MIN_SLICE), len(form)))
    return form[start:end]


PASSWORDS = st.text(
    st.characters(blacklist_categories=("Cs", "Cc")), min_size=MIN_SLICE, max_size=24
)


def _echo_run(password: str, echo: list[str], auth_ok: bool) -> tuple[DeliveryReport, Record]:
    auth = f"235 2.7.0 ok {echo[0]}" if auth_ok else f"535 5.7.8 bad {echo[0]}"
    steps = [
        b"220 mx.example ESMTP\r\n",
        b"250-mx.example\r\n250 AUTH PLAIN\r\n",
        auth.encode() + b"\r\n",
        f"250 2.1.0 sender {echo[1]} ok\r\n".encode(),
        f"550 5.1.1 no such user {echo[2]}\r\n".encode(),
        f"250 2.1.5 {echo[3]}\r\n".encode(),
        b"354 go\r\n",
        f"250 2.0.0 queued as {echo[4]}\r\n".encode(),
    ]
    config = ClientConfig(
        helo_name="client.example",
        tls_security_level="none",
        sasl_auth_enable=True,
        sasl_password_maps={DEST: f"user:{password}"},
        sasl_security_options=frozenset({"noanonymous"}),  # PLAIN in the clear, for the test
    )
    envelope = Envelope("a@example.org", (Recipient("b@example.com"), Recipient("c@example.com")))
    engine = engine_deliver(DEST, envelope, MESSAGE, config=config, clock=Clock(), rng=Rng())
    return run(engine, Script(servers={ADDR: [Session(steps)]}))


def _everything(report: DeliveryReport, record: Record) -> list[str]:
    return produced(report) + [repr(r) for r in report.recipients + tuple(record.requests)]


# What the library writes whatever the secret (class names, templates, the envelope): a
# secret that happens to contain a slice of it is no leak, and is left out of the property.
_BASELINE = "\n".join(
    text for ok in (True, False) for text in _everything(*_echo_run("q" * 12, ["x" * 6] * 5, ok))
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(password=PASSWORDS, data=st.data())
def test_au18_echoed_slices_of_any_secret_form_reach_no_output(
    password: str, data: st.DataObject
) -> None:
    # A server that echoes random slices of the password, its hex, and the base64 of the
    # PLAIN blob in the AUTH, MAIL, RCPT and end-of-data replies: no string the engine
    # produces holds a slice of MIN_SLICE characters of any of them.
    forms = secret_forms("user", password)
    assume(not leaks(_BASELINE, forms))
    echo = [_echo_slice(data, forms) for _ in range(5)]
    report, record = _echo_run(password, echo, data.draw(st.booleans()))
    assert record.sent().count(b"AUTH PLAIN ") == 1
    for text in _everything(report, record):
        assert not leaks(text, forms), (text, leaks(text, forms))


@settings(max_examples=300, deadline=None)
@given(secret=PASSWORDS, before=st.text(max_size=20), after=st.text(max_size=20), data=st.data())
def test_au18_redactor_masks_every_slice_of_every_form(
    secret: str, before: str, after: str, data: st.DataObject
) -> None:
    redactor = Redactor()
    redactor.hide(secret)
    forms = [secret, b64(secret).rstrip("="), secret.encode().hex(), secret.encode().hex().upper()]
    text = before + _echo_slice(data, forms) + after
    shown = redactor.shown(text)
    assert shown.isprintable()
    assert not leaks(shown, [printable(f) for f in forms])


def test_au18_short_slices_and_innocent_text_stay() -> None:
    redactor = Redactor()
    redactor.learn(Secrets.from_credentials(SaslCredentials("user@example.com", PASSWORD)))
    text = "250-mx.example.com Hello user@example.com [192.0.2.1] Tr0ub ok"
    assert redactor.shown(text) == text  # 5 characters of the password are not a secret
    assert redactor.shown(f"535 {PASSWORD[:11]}") == "535 [redacted]"


def test_au18_send_repr_shows_only_the_size_and_the_verb() -> None:
    blob = b64(f"\0user\0{PASSWORD}")
    request = Send(object(), f"AUTH PLAIN {blob}\r\n".encode(), 300.0)
    assert blob not in repr(request) and "AUTH" in repr(request) and "octets" in repr(request)
    answer = Send(object(), f"{b64(PASSWORD)}\r\n".encode(), 300.0)
    assert b64(PASSWORD) not in repr(answer) and "data" in repr(answer)
    derive = DeriveKey("sha256", PASSWORD.encode(), b"salt", 10_000)
    assert PASSWORD not in repr(derive) and repr(PASSWORD.encode()) not in repr(derive)


def test_au18_scram_proof_is_a_secret_once_sent() -> None:
    mechanism = ScramSHA256(SaslCredentials("user", "pencil"), nonce="rOprNGfwEbeRWgbNEkqO")
    server_first = (
        b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    )
    mechanism.initial_response()
    mechanism.respond(server_first)
    (proof,) = mechanism.revealed()
    assert proof == b"dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="  # RFC 7677 3
    redactor = Redactor()
    redactor.hide(proof)
    assert "dHzbZa" not in redactor.shown(f"535 bad proof {proof.decode()[:10]}")


def _secret_echoing_server() -> HostileServer:
    forms = secret_forms(DEMO_USER, DEMO_PASSWORD)
    return HostileServer(
        {
            "EHLO": b"250-hostile.example\r\n250 AUTH PLAIN\r\n",
            "AUTH": f"235 2.7.0 welcome {forms[2][3:20]}\r\n".encode(),
            "MAIL": f"250 2.1.0 sender ok {DEMO_PASSWORD[:11]}\r\n".encode(),
            "RCPT": f"550 5.1.1 unknown {forms[4][2:30]} {forms[1][-9:]}\r\n".encode(),
        },
        password=DEMO_PASSWORD,
    )


def _plaintext_auth_config(server: HostileServer) -> ClientConfig:
    return ClientConfig(
        helo_name="client.test",
        tls_security_level="none",
        sasl_auth_enable=True,
        sasl_password_maps={server.destination: f"{DEMO_USER}:{DEMO_PASSWORD}"},
        sasl_security_options=frozenset({"noanonymous"}),  # PLAIN in the clear, for the test
    )


def test_au18_echoed_secrets_leak_into_no_report_or_log_record(
    adapter: str, caplog: pytest.LogCaptureFixture
) -> None:
    forms = secret_forms(DEMO_USER, DEMO_PASSWORD)
    with _secret_echoing_server() as server, caplog.at_level(logging.DEBUG, logger="smtpproto"):
        report = deliver(
            adapter, server.destination, _plaintext_auth_config(server), recipients=["b@x.test"]
        )
    assert any(line.startswith(b"AUTH PLAIN ") for line in server.lines)
    assert report.recipients[0].status == "bounced"
    records = [r.getMessage() for r in caplog.records]
    assert any("status=bounced" in text for text in records)
    for text in produced(report) + records:
        assert not leaks(text, forms), text


def test_au18_an_echo_in_the_auth_failure_is_not_in_the_exception(adapter: str) -> None:
    forms = secret_forms(DEMO_USER, DEMO_PASSWORD)
    echo = f"535 5.7.8 bad credentials {forms[2]} ({DEMO_PASSWORD})\r\n".encode()
    ehlo = b"250-hostile.example\r\n250 AUTH PLAIN\r\n"
    with (
        HostileServer({"EHLO": ehlo, "AUTH": echo}) as server,
        pytest.raises(smtpproto.AuthenticationFailed) as failure,
    ):
        open_session(adapter, server.destination, _plaintext_auth_config(server))
    exception = failure.value
    assert exception.reply is not None and exception.reply.code == 535
    texts = [str(exception), repr(exception), exception.diagnostic, str(exception.reply)]
    for text in texts:
        assert not leaks(text, forms), text
    assert "[redacted]" in exception.diagnostic


def test_au18_the_command_prints_no_echoed_secret(
    capsys: pytest.CaptureFixture[str], tmp_path: Any, message_file: str
) -> None:
    forms = secret_forms(DEMO_USER, DEMO_PASSWORD)
    password_file = tmp_path / "password"
    password_file.write_text(DEMO_PASSWORD + "\n")
    with _secret_echoing_server() as server:
        for extra in (["-v"], ["--json"]):
            status = cli.main(
                [
                    "deliver",
                    "--from",
                    "a@client.test",
                    "--to",
                    "b@x.test",
                    "--dest",
                    server.destination,
                    "--tls",
                    "none",
                    "--sasl-user",
                    DEMO_USER,
                    "--sasl-password-file",
                    str(password_file),
                    "-o",
                    "smtp_sasl_security_options=noanonymous",
                    *extra,
                    message_file,
                ]
            )
            out, err = capsys.readouterr()
            assert status == 69, err
            assert "Out: AUTH PLAIN [redacted]" in err or extra == ["--json"]
            assert not leaks(out + err, forms), out + err


# -- RP-24: reply text is data -----------------------------------------------------------------


@settings(max_examples=500, deadline=None)
@given(st.text())
def test_rp24_printable_output_is_one_printable_line_and_idempotent(text: str) -> None:
    shown = printable(text)
    assert shown.isprintable()
    assert printable(shown) == shown
    assert len(printable(text.replace("\n", " ")).splitlines()) <= 1
    if text.isprintable():
        assert shown == text


def test_rp24_each_hostile_character_is_escaped_readably() -> None:
    assert printable("a\x1b[31mb") == "a\\x1b[31mb"
    assert printable("\x7f\x85\u009b") == "\\x7f\\x85\\x9b"
    assert printable("x\u2028y\u2029z") == "x\\u2028y\\u2029z"
    assert printable("\u202egnp.exe") == "\\u202egnp.exe"
    assert printable("Grüße, 你好 \\x1b") == "Grüße, 你好 \\x1b"


def _forging_server() -> HostileServer:
    hostile = f"550 5.1.1 <b@x.test>: unknown {HOSTILE_TEXT}\r\n".encode()
    return HostileServer({"EHLO": b"250 hostile.example\r\n", "RCPT": hostile})


def _assert_clean(text: str) -> None:
    for line in text.split("\n"):
        assert line.isprintable(), repr(line)
        assert not line.startswith("to=<victim"), line


def test_rp24_control_characters_in_a_reply_reach_no_output_raw(
    adapter: str, caplog: pytest.LogCaptureFixture
) -> None:
    config = ClientConfig(helo_name="client.test", tls_security_level="none")
    with _forging_server() as server, caplog.at_level(logging.DEBUG, logger="smtpproto"):
        report = deliver(adapter, server.destination, config, recipients=["b@x.test"])
    (result,) = report.recipients
    assert result.status == "bounced"
    # The program gets the text as the server sent it; people get it escaped.
    assert result.reply is not None and HOSTILE_TEXT in result.reply.text
    assert "\\u2028to=<victim" in result.diagnostic
    for text in [*report.transcript, result.diagnostic, format_log_line(result)]:
        _assert_clean(text)
    for record in caplog.records:
        _assert_clean(record.getMessage())


def test_rp24_an_esc_sequence_is_a_protocol_error_shown_escaped(adapter: str) -> None:
    esc = b"550 5.1.1 \x1b[2J\x1b]0;owned\x07 " + FORGED.encode() + b"\r\n"
    config = ClientConfig(helo_name="client.test", tls_security_level="none")
    with HostileServer({"EHLO": b"250 hostile.example\r\n", "RCPT": esc}) as server:
        report = deliver(adapter, server.destination, config, recipients=["b@x.test"])
    (result,) = report.recipients
    assert (result.status, result.dsn) == ("deferred", "4.5.0")
    assert "\x1b" not in result.diagnostic and "control character" in result.diagnostic
    _assert_clean(format_log_line(result))


def test_rp24_the_command_cannot_be_made_to_print_a_forged_line(
    capsys: pytest.CaptureFixture[str], message_file: str
) -> None:
    with _forging_server() as server:
        for extra in ([], ["-v"], ["--json"]):
            status = cli.main(
                [
                    "deliver",
                    "--from",
                    "a@client.test",
                    "--to",
                    "b@x.test",
                    "--dest",
                    server.destination,
                    "--tls",
                    "none",
                    *extra,
                    message_file,
                ]
            )
            out, err = capsys.readouterr()
            assert status == 69, err
            _assert_clean(out)
            _assert_clean(err)
            if extra != ["--json"]:
                (line,) = out.splitlines()
                assert line.startswith("to=<b@x.test>") and "status=bounced" in line
            for raw in ("\x1b", "\x7f", "\x85", "\u2028", "\u202e"):
                assert raw not in out + err


# -- CV-11: deep MIME objects ------------------------------------------------------------------


def nested(depth: int) -> email.message.Message:
    inner: email.message.Message = email.mime.text.MIMEText("deep")
    for _ in range(depth):
        outer = email.mime.multipart.MIMEMultipart()
        outer.attach(inner)
        inner = outer
    return inner


def test_cv11_nesting_is_checked_iteratively_at_the_limit() -> None:
    check_nesting(nested(100), 100)
    with pytest.raises(smtpproto.LocalProtocolError, match="mime_nesting_limit"):
        check_nesting(nested(101), 100)
    check_nesting(b"Content-Type: multipart/mixed\r\n\r\n" * 300, 1)  # bytes are not walked


def test_cv11_a_deep_message_object_is_refused_before_any_request() -> None:
    engine = engine_deliver(
        DEST,
        Envelope("a@example.org", (Recipient("b@example.com"),)),
        nested(250),
        config=ClientConfig(helo_name="client.example"),
        clock=Clock(),
        rng=Rng(),
    )
    with pytest.raises(smtpproto.LocalProtocolError, match=r"mime_nesting_limit \(100\)"):
        run(engine, Script())


@pytest.mark.parameter("mime_nesting_limit")
def test_cv11_a_deep_message_object_raises_no_recursion_error_on_any_adapter(
    adapter: str,
) -> None:
    with HostileServer() as server:
        config = ClientConfig(helo_name="client.test", tls_security_level="none")
        with pytest.raises(smtpproto.LocalProtocolError, match="mime_nesting_limit"):
            deliver(adapter, server.destination, config, recipients=["b@x"], message=nested(250))
        assert server.connections == 0  # refused before anything was sent
        report = deliver(
            adapter, server.destination, config, recipients=["b@x.test"], message=nested(90)
        )
        assert report.recipients[0].status == "sent"
        # The bound is the parameter's: raised, a message deeper than Postfix's 100 goes out.
        raised = dataclasses.replace(config, mime_nesting_limit=200)
        report = deliver(
            adapter, server.destination, raised, recipients=["b@x.test"], message=nested(150)
        )
    assert report.recipients[0].status == "sent"


# -- AU-19: SCRAM iterations -------------------------------------------------------------------


def _scram_config(server: HostileServer, **extra: Any) -> ClientConfig:
    return ClientConfig(
        helo_name="client.test",
        tls_security_level="none",
        sasl_auth_enable=True,
        sasl_password_maps={server.destination: "user:pencil"},
        sasl_mechanism_filter=("scram-sha-256",),
        **extra,
    )


@pytest.mark.parameter("smtpproto_sasl_scram_max_iterations")
def test_au19_scram_above_the_iteration_bound_defers_on_any_adapter(adapter: str) -> None:
    with HostileServer(iterations=1_000_000) as server:
        config = _scram_config(server)
        assert config.sasl_scram_max_iterations == 100_000  # the default bound
        report = deliver(adapter, server.destination, config, recipients=["b@x.test"])
    (result,) = report.recipients
    assert (result.status, result.dsn) == ("deferred", "4.7.0")
    assert "iteration count 1000000 outside 4096..100000" in result.diagnostic
    assert b"*\r\n" in server.lines  # the exchange was cancelled (RFC 4954 4)
    assert not any(line.startswith(b"MAIL") for line in server.lines)


@pytest.mark.parameter("smtpproto_sasl_scram_max_iterations")
def test_au19_the_iteration_bound_is_configurable(adapter: str) -> None:
    with HostileServer(iterations=150_000) as server:
        config = _scram_config(server, sasl_scram_max_iterations=200_000)
        report = deliver(adapter, server.destination, config, recipients=["b@x.test"])
    assert report.recipients[0].status == "sent"
    assert "Out: AUTH SCRAM-SHA-256 [redacted]" in report.transcript


def test_au19_the_engine_asks_the_adapter_for_an_expensive_derivation() -> None:
    mechanism = ScramSHA256(SaslCredentials("user", "pencil"), nonce="abc")
    mechanism.initial_response()
    challenge = b"r=abcdef,s=c2FsdA==,i=20000"
    request = mechanism.key_derivation(challenge)
    assert request is not None and request.blocking and request.iterations == 20000
    inline = ScramSHA256(SaslCredentials("user", "pencil"), nonce="abc")
    inline.initial_response()
    mechanism.use_derived_key(request, request.derive())
    assert mechanism.respond(challenge) == inline.respond(challenge)
    cheap = ScramSHA256(SaslCredentials("user", "pencil"), nonce="abc")
    cheap.initial_response()
    derivation = cheap.key_derivation(b"r=abcdef,s=c2FsdA==,i=4096")
    assert derivation is not None and not derivation.blocking


def _loop_watch(monkeypatch: pytest.MonkeyPatch, ticked: threading.Event) -> dict[str, Any]:
    """Make DeriveKey.derive wait until another task of the event loop has run: if it runs
    on the loop's own thread, that can never happen (bounded wait, then it notes it)."""
    seen: dict[str, Any] = {"calls": 0, "blocked": False, "threads": set()}
    real = DeriveKey.derive

    def derive(self: DeriveKey) -> bytes:
        seen["calls"] += 1
        seen["threads"].add(threading.get_ident())
        if self.blocking and not ticked.wait(20):
            seen["blocked"] = True
        return real(self)

    monkeypatch.setattr(DeriveKey, "derive", derive)
    return seen


def test_au19_asyncio_derives_the_scram_key_off_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ticked = threading.Event()
    seen = _loop_watch(monkeypatch, ticked)

    async def main(server: HostileServer) -> Any:
        async def ticker() -> None:
            while True:
                await asyncio.sleep(0.01)
                if seen["calls"]:
                    ticked.set()

        task = asyncio.create_task(ticker())
        try:
            return await aio_adapter.deliver(
                server.destination,
                sender="a@client.test",
                recipients=["b@x.test"],
                message=MESSAGE,
                config=_scram_config(server),
            ), threading.get_ident()
        finally:
            task.cancel()

    with HostileServer(iterations=20_000) as server:
        report, loop_thread = asyncio.run(main(server))
    assert report.recipients[0].status == "sent"
    assert seen["calls"] == 1 and not seen["blocked"]
    assert loop_thread not in seen["threads"]


def test_au19_trio_derives_the_scram_key_off_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ticked = threading.Event()
    seen = _loop_watch(monkeypatch, ticked)

    async def main(server: HostileServer) -> Any:
        result: list[Any] = []
        async with trio.open_nursery() as nursery:

            async def ticker() -> None:
                while True:
                    await trio.sleep(0.01)
                    if seen["calls"]:
                        ticked.set()

            nursery.start_soon(ticker)
            result.append(
                await trio_adapter.deliver(
                    server.destination,
                    sender="a@client.test",
                    recipients=["b@x.test"],
                    message=MESSAGE,
                    config=_scram_config(server),
                )
            )
            nursery.cancel_scope.cancel()
        return result[0], threading.get_ident()

    with HostileServer(iterations=20_000) as server:
        report, loop_thread = trio.run(main, server)
    assert report.recipients[0].status == "sent"
    assert seen["calls"] == 1 and not seen["blocked"]
    assert loop_thread not in seen["threads"]


# -- AU-20: passwords only to a verified peer --------------------------------------------------


@pytest.fixture
def demo() -> Iterator[SMTPServer]:
    with SMTPServer(DemoHandler()) as server:
        yield server


@pytest.mark.parameter("smtp_sasl_tls_security_options")
@pytest.mark.parametrize("level", ["may", "encrypt"])
def test_au20_no_password_over_unverified_tls_by_default(
    adapter: str, demo: SMTPServer, level: str
) -> None:
    # A man in the middle terminating TLS with a certificate of its own is what this is.
    config = ClientConfig(
        helo_name="client.test",
        tls_security_level=level,
        sasl_auth_enable=True,
        sasl_password_maps={demo.destination: f"{DEMO_USER}:{DEMO_PASSWORD}"},
    )
    assert config.sasl_tls_security_options == frozenset({"noplaintext", "noanonymous"})
    report = deliver(adapter, demo.destination, config, recipients=["b@demo.test"])
    (result,) = report.recipients
    assert (result.status, result.dsn) == ("deferred", "4.7.0")
    assert result.tls is not None and result.tls.trust == "Untrusted"
    assert "PLAIN (noplaintext)" in result.diagnostic
    assert not any(line.startswith("Out: AUTH") for line in report.transcript)


@pytest.mark.parameter("smtp_sasl_tls_verified_security_options")
def test_au20_the_password_goes_to_a_verified_peer(adapter: str, demo: SMTPServer) -> None:
    config = ClientConfig(
        helo_name="client.test",
        tls_security_level="verify",
        tls_CAfile=demo.ca_file,
        sasl_auth_enable=True,
        sasl_password_maps={demo.named_destination: f"{DEMO_USER}:{DEMO_PASSWORD}"},
    )
    # The default that lets PLAIN go, and only because the peer verified.
    assert config.sasl_tls_verified_security_options == frozenset({"noanonymous"})
    report = deliver(adapter, demo.named_destination, config, recipients=["b@demo.test"])
    (result,) = report.recipients
    assert result.status == "sent"
    assert result.tls is not None and result.tls.trust == "Verified"
    assert "Out: AUTH PLAIN [redacted]" in report.transcript


@pytest.mark.parameter("smtp_sasl_tls_security_options", "smtp_sasl_tls_verified_security_options")
def test_au20_from_postconf_keeps_postfix_and_opting_in_is_by_name(
    adapter: str, demo: SMTPServer
) -> None:
    maps = {demo.destination: f"{DEMO_USER}:{DEMO_PASSWORD}"}
    base = {
        "smtp_helo_name": "client.test",
        "smtp_tls_security_level": "encrypt",
        "smtp_sasl_auth_enable": "yes",
        "smtp_sasl_password_maps": maps,
    }
    postfix = ClientConfig.from_postconf(base)
    assert postfix.sasl_tls_verified_security_options is None  # $smtp_sasl_tls_security_options
    report = deliver(adapter, demo.destination, postfix, recipients=["b@demo.test"])
    assert report.recipients[0].status == "deferred"
    opted = ClientConfig.from_postconf({**base, "smtp_sasl_tls_security_options": "noanonymous"})
    report = deliver(adapter, demo.destination, opted, recipients=["b@demo.test"])
    assert report.recipients[0].status == "sent"


def test_au20_the_command_sends_no_password_at_level_may(
    capsys: pytest.CaptureFixture[str], demo: SMTPServer, tmp_path: Any, message_file: str
) -> None:
    password_file = tmp_path / "password"
    password_file.write_text(DEMO_PASSWORD + "\n")
    args = ["deliver", "--from", "a@client.test", "--to", "b@demo.test", "-v", message_file]
    args += ["--sasl-user", DEMO_USER, "--sasl-password-file", str(password_file)]
    status = cli.main([*args, "--dest", demo.destination, "--tls", "may"])
    out, err = capsys.readouterr()
    assert status == 75, err
    assert "Out: AUTH" not in err and "dsn=4.7.0" in out
    status = cli.main(
        [*args, "--dest", demo.named_destination, "--tls", "verify", "--tls-ca-file", demo.ca_file]
    )
    out, err = capsys.readouterr()
    assert status == 0, err
    assert "Out: AUTH PLAIN [redacted]" in err


# -- DN-18: malformed MX host names ------------------------------------------------------------


BAD_NAMES = [
    "mx.exa mple.com",
    "-mx.example.com",
    "mx-.example.com",
    "mx\x1b[2J.example.com",
    "x" * 64 + ".example.com",
    "mx..example.com",
    "mx.exa\\032mple.com",
    "1234.5678",
]


def _mx_run(exchanges: list[str]) -> tuple[DeliveryReport, Record]:
    dns: dict[tuple[str, str], Any] = {
        ("example.com", "MX"): tuple(MXRecord(10 + n, name) for n, name in enumerate(exchanges)),
        ("mx.example.com", "A"): (ADDR,),
        ("mx.example.com", "AAAA"): (),
    }
    ok = Session(
        [
            b"220 mx.example ESMTP\r\n",
            b"250 mx.example\r\n",
            b"250 2.1.0 ok\r\n",
            b"250 2.1.5 ok\r\n",
            b"354 go\r\n",
            b"250 2.0.0 ok\r\n",
        ]
    )
    engine = engine_deliver(
        "example.com",
        Envelope("a@example.org", (Recipient("b@example.com"),)),
        MESSAGE,
        config=ClientConfig(helo_name="client.example", tls_security_level="none"),
        clock=Clock(),
        rng=Rng(),
    )
    return run(engine, Script(dns=dns, servers={ADDR: [ok]}))


@pytest.mark.parametrize("bad", BAD_NAMES)
def test_dn18_a_malformed_mx_name_is_skipped_like_an_unusable_mx(bad: str) -> None:
    report, record = _mx_run([bad, "mx.example.com"])
    assert report.recipients[0].status == "sent"
    looked_up = {r.name for r in record.requests if hasattr(r, "rrtype")}
    assert looked_up == {"example.com", "mx.example.com"}
    warning = next(line for line in report.transcript if "malformed domain name" in line)
    assert warning.startswith(
        "Warning: malformed domain name in resource data of MX record for example.com: "
    )
    assert warning.isprintable()


def test_dn18_only_malformed_mx_names_fail_like_no_usable_mx() -> None:
    report, record = _mx_run(BAD_NAMES[:3])
    (result,) = report.recipients
    assert (result.status, result.dsn) == ("bounced", "5.4.4")
    assert not any(type(r).__name__ == "Connect" for r in record.requests)


def test_dn18_the_length_of_the_warning_is_bounded() -> None:
    report, _ = _mx_run(["a" * 70 + "." + "b" * 300, "mx.example.com"])
    warning = next(line for line in report.transcript if "malformed domain name" in line)
    assert len(warning) < 200
