"""What a new user meets through the three adapters, against aiosmtpd on loopback.

The HELO name Postfix would use, IDNA 2008 domains, logging on the `smtpproto` loggers, the
typed failures of ``connect()``, and ``Bcc`` kept off the wire for ``EmailMessage`` sources.
"""

from __future__ import annotations

import asyncio
import base64
import email.message
import logging
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import trio
from smtpproto.adapters import _driver
from smtpproto.adapters import asyncio as aio_adapter
from smtpproto.adapters import blocking as blocking_adapter
from smtpproto.adapters import trio as trio_adapter
from smtpproto.adapters.demo import DEMO_PASSWORD, DEMO_USER, DemoHandler, SMTPServer
from test_adapters import deliver

import smtpproto
from smtpproto.config import ClientConfig
from smtpproto.requests import DNSError, MXRecord, Resolve

ADAPTERS = ["blocking", "asyncio", "trio"]
PLAIN = ClientConfig(tls_security_level="none")


@pytest.fixture(params=ADAPTERS)
def adapter(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class RecordingHandler(DemoHandler):
    """The demo handler, remembering the EHLO argument of each session."""

    def __init__(self) -> None:
        super().__init__(rejected={"nobody@demo.test"})
        self.helo_names: list[str] = []

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        """Record `hostname`, then answer as the demo server does."""
        self.helo_names.append(hostname)
        return await super().handle_EHLO(server, session, envelope, hostname, responses)


@pytest.fixture
def smtp() -> Iterator[SMTPServer]:
    with SMTPServer(RecordingHandler(), auth_require_tls=False) as server:
        yield server


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


# -- the HELO name ---------------------------------------------------------------------------


def test_machine_hostname_is_what_postfix_takes_for_myhostname() -> None:
    # Postfix (mail_params.c): gethostname(), ".localdomain" appended when it has no dot.
    if shutil.which("postconf") is None:
        if os.environ.get("CI"):
            pytest.fail("postconf (Postfix) is not installed; .ci/run installs it")
        pytest.skip("postconf (Postfix) is not installed")
    done = subprocess.run(
        ["postconf", "-d", "-h", "myhostname"], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert _driver.machine_hostname() == done.stdout.strip()


def test_ehlo_carries_the_machine_name_when_helo_name_is_not_set(
    adapter: str, smtp: SMTPServer
) -> None:
    report = deliver(adapter, smtp.destination, recipients=["a@demo.test"], config=PLAIN)
    assert report.recipients[0].status == "sent"
    assert smtp.handler.helo_names == [_driver.machine_hostname()]  # type: ignore[attr-defined]
    assert _driver.machine_hostname() != "localhost"


def test_a_helo_name_that_is_set_wins(adapter: str, smtp: SMTPServer) -> None:
    config = ClientConfig(tls_security_level="none", helo_name="client.example")
    deliver(adapter, smtp.destination, recipients=["a@demo.test"], config=config)
    assert smtp.handler.helo_names == ["client.example"]  # type: ignore[attr-defined]


# -- IDNA 2008 -------------------------------------------------------------------------------


class Zone:
    """A resolver for every adapter: faß.de's MX is 127.0.0.1; it records the names asked."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.zone: dict[tuple[str, str], Any] = {
            ("xn--fa-hia.de", "MX"): (MXRecord(10, "mx.xn--fa-hia.de"),),
            ("mx.xn--fa-hia.de", "A"): ("127.0.0.1",),
            ("mx.xn--fa-hia.de", "AAAA"): (),
        }

    def answer(self, request: Resolve) -> Any:
        self.asked.append(request.name)
        try:
            return self.zone[(request.name, request.rrtype)]
        except KeyError:
            raise DNSError("nxdomain", f"{request.name}: not in the zone") from None


class BlockingZone(Zone):
    def resolve(self, request: Resolve) -> Any:
        return self.answer(request)


class AsyncZone(Zone):
    async def resolve(self, request: Resolve) -> Any:
        return self.answer(request)


def test_dn16_non_ascii_domain_goes_out_as_its_idna_2008_a_label(
    adapter: str, smtp: SMTPServer
) -> None:
    zone = BlockingZone() if adapter == "blocking" else AsyncZone()
    port = int(smtp.destination.rpartition(":")[2])
    config = ClientConfig(tls_security_level="none", tcp_port=port)
    report = deliver(adapter, "faß.de", recipients=["b@faß.de"], config=config, resolver=zone)
    assert report.recipients[0].status == "sent"
    assert report.recipients[0].relay == f"mx.xn--fa-hia.de[127.0.0.1]:{port}"
    # IDNA 2003 (Python's codec) would have asked for fass.de, another domain.
    assert "fass.de" not in zone.asked and zone.asked[0] == "xn--fa-hia.de"


def test_dn16_without_the_idna_extra_a_non_ascii_domain_is_refused_before_connecting(
    adapter: str, smtp: SMTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_driver, "idna_encoder", lambda: None)
    with pytest.raises(smtpproto.LocalProtocolError, match=r"smtpproto-client\[idna\]"):
        deliver(adapter, "[faß.de]", recipients=["b@faß.de"], config=PLAIN)
    assert smtp.handler.helo_names == []  # type: ignore[attr-defined]


# -- local mistakes -------------------------------------------------------------------------


def test_non_utf8_address_is_refused_before_anything_is_sent(
    adapter: str, smtp: SMTPServer
) -> None:
    # An undecodable byte from argv or a file arrives as a lone surrogate; it used to fail
    # only when RCPT was encoded, after EHLO and MAIL had gone out.
    with pytest.raises(smtpproto.LocalProtocolError, match="not valid UTF-8"):
        deliver(adapter, smtp.destination, recipients=["b\udcff@demo.test"], config=PLAIN)
    with pytest.raises(smtpproto.LocalProtocolError, match="not valid UTF-8"):
        deliver(adapter, smtp.destination, sender="a\udcff@x.test", recipients=["b@demo.test"])
    assert smtp.handler.helo_names == []  # type: ignore[attr-defined]


def test_an_unreadable_ca_file_is_named_in_the_transcript_and_the_log(
    adapter: str, smtp: SMTPServer, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    missing = tmp_path / "ca.pem"
    config = ClientConfig(tls_security_level="verify", tls_CAfile=str(missing))
    with caplog.at_level(logging.INFO, logger="smtpproto"):
        report = deliver(adapter, smtp.destination, recipients=["a@demo.test"], config=config)
    assert (report.recipients[0].status, report.recipients[0].dsn) == ("deferred", "4.7.5")
    cause = f"tls_CAfile {missing}: No such file or directory"
    assert any(cause in line for line in report.transcript)
    assert any(cause in r.getMessage() for r in caplog.records if r.levelno == logging.INFO)


def test_mx_lookup_without_dnspython_keeps_the_hint_in_the_result(adapter: str) -> None:
    from smtpproto.adapters import _dns

    resolver = _dns.DefaultResolver() if adapter == "blocking" else _dns.DefaultAsyncResolver()
    resolver._have_dnspython = False
    report = deliver(adapter, "example.com", recipients=["b@example.com"], resolver=resolver)
    (result,) = report.recipients
    assert (result.status, result.dsn) == ("deferred", "4.4.3")
    assert result.diagnostic.endswith(
        "no resolver available (MX, TLSA and TXT lookups need dnspython: "
        "pip install 'smtpproto-client[dns]')"
    )


# -- logging ---------------------------------------------------------------------------------


def test_the_library_installs_no_log_handler() -> None:
    names = ("smtpproto", "smtpproto.delivery", "smtpproto.connection", "smtpproto.transcript")
    assert [logging.getLogger(n).handlers for n in names] == [[], [], [], []]


def test_au15_logs_results_connection_and_a_live_redacted_transcript(
    adapter: str, smtp: SMTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    received_when_logged: dict[str, int] = {}

    class Spy(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            received_when_logged.setdefault(record.getMessage(), len(smtp.handler.received))

    spy = Spy()
    logging.getLogger("smtpproto").addHandler(spy)
    config = ClientConfig(
        tls_security_level="none",
        sasl_auth_enable=True,
        sasl_password_maps={smtp.destination: f"{DEMO_USER}:{DEMO_PASSWORD}"},
        sasl_security_options=frozenset({"noanonymous"}),  # PLAIN in clear, for this test
    )
    try:
        with caplog.at_level(logging.DEBUG, logger="smtpproto"):
            report = deliver(adapter, smtp.destination, recipients=["a@demo.test"], config=config)
    finally:
        logging.getLogger("smtpproto").removeHandler(spy)
    assert report.recipients[0].status == "sent"
    by_logger: dict[str, list[logging.LogRecord]] = {}
    for record in caplog.records:
        by_logger.setdefault(record.name, []).append(record)
    (result,) = by_logger["smtpproto.delivery"]
    assert result.levelno == logging.INFO
    assert result.getMessage().startswith("to=<a@demo.test>, relay=")
    assert "status=sent" in result.getMessage()
    transcript = [r.getMessage() for r in by_logger["smtpproto.transcript"]]
    assert {r.levelno for r in by_logger["smtpproto.transcript"]} == {logging.DEBUG}
    assert transcript == list(report.transcript)
    assert "Out: AUTH PLAIN [redacted]" in transcript
    plain = base64.b64encode(f"\0{DEMO_USER}\0{DEMO_PASSWORD}".encode()).decode()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert DEMO_PASSWORD not in logged and plain not in logged
    connection = [r.getMessage() for r in by_logger["smtpproto.connection"]]
    assert any(m.startswith("connected to 127.0.0.1[127.0.0.1]:") for m in connection)
    # Live: MAIL FROM was logged before the server had the message, not after the delivery.
    mail = next(line for line in transcript if line.startswith("Out: MAIL FROM:"))
    assert received_when_logged[mail] == 0
    assert received_when_logged[result.getMessage()] == 1


def test_connection_and_tls_events_are_logged_at_info(
    adapter: str, smtp: SMTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    closed = _closed_port()
    with caplog.at_level(logging.INFO, logger="smtpproto"):
        deliver(adapter, f"[127.0.0.1]:{closed}", recipients=["a@demo.test"], config=PLAIN)
        config = ClientConfig(tls_security_level="encrypt", helo_name="client.test")
        deliver(adapter, smtp.destination, recipients=["a@demo.test"], config=config)
    events = [r.getMessage() for r in caplog.records if r.name == "smtpproto.connection"]
    assert any(m.startswith(f"connect to 127.0.0.1[127.0.0.1]:{closed}: ") for m in events)
    assert any(m.startswith("TLS with 127.0.0.1[127.0.0.1]:") for m in events)
    results = [r.getMessage() for r in caplog.records if r.name == "smtpproto.delivery"]
    assert ["status=deferred" in results[0], "status=sent" in results[1]] == [True, True]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- connect() failures ----------------------------------------------------------------------


def test_connect_to_nothing_listening_raises_connection_failed_with_its_status(
    adapter: str,
) -> None:
    with pytest.raises(smtpproto.ConnectionFailed) as failure:
        open_session(adapter, f"[127.0.0.1]:{_closed_port()}", PLAIN)
    assert failure.value.dsn == "4.4.1" and not failure.value.permanent
    assert failure.value.reply is None
    assert isinstance(failure.value, smtpproto.SessionFailed)


def test_connect_with_a_wrong_password_raises_authentication_failed(
    adapter: str, smtp: SMTPServer
) -> None:
    config = ClientConfig(
        tls_security_level="verify",  # AU-20: PLAIN goes only to a verified peer
        tls_CAfile=smtp.ca_file,
        sasl_auth_enable=True,
        sasl_password_maps={smtp.named_destination: f"{DEMO_USER}:wrong"},
    )
    with pytest.raises(smtpproto.AuthenticationFailed) as failure:
        open_session(adapter, smtp.named_destination, config)
    assert failure.value.reply is not None and failure.value.reply.code == 535
    # The status deliver() would give: Postfix softens a 535 (smtp_sasl_auth_soft_bounce).
    assert (failure.value.reply.dsn, failure.value.dsn) == ("5.7.8", "4.7.8")
    assert "SASL authentication failed" in failure.value.diagnostic


def test_connect_to_a_certificate_of_another_name_raises_tls_policy_failed(
    adapter: str, smtp: SMTPServer
) -> None:
    config = ClientConfig(
        tls_CAfile=smtp.ca_file,
        tls_policy_maps={smtp.destination: "verify match=mail.example.org"},
    )
    with pytest.raises(smtpproto.TLSPolicyFailed) as failure:
        open_session(adapter, smtp.destination, config)
    assert failure.value.dsn == "4.7.5"
    # NS-14: the names say why: what was expected, what the server presented.
    assert "expected mail.example.org; presented localhost" in failure.value.diagnostic


def test_session_failures_are_exported_and_documented() -> None:
    for name in ("SessionFailed", "ConnectionFailed", "TLSPolicyFailed", "AuthenticationFailed"):
        assert name in smtpproto.__all__
        assert getattr(smtpproto, name).__doc__


# -- Bcc -------------------------------------------------------------------------------------


def test_bcc_of_an_email_message_reaches_the_envelope_but_not_the_header(
    adapter: str, smtp: SMTPServer
) -> None:
    message = email.message.EmailMessage()
    message["From"] = "a@client.test"
    message["To"] = "a@demo.test"
    message["Bcc"] = "secret@demo.test"
    message.set_content("Hello.\n")
    report = deliver(
        adapter,
        smtp.destination,
        recipients=["a@demo.test", "secret@demo.test"],
        message=message,
        config=PLAIN,
    )
    assert [r.status for r in report.recipients] == ["sent", "sent"]
    (received,) = smtp.handler.received
    assert received.recipients == ["a@demo.test", "secret@demo.test"]
    assert b"secret@demo.test" not in received.data and b"To: a@demo.test" in received.data


# -- mistakes an embedder makes first ---------------------------------------------------------


def test_a_config_that_is_not_a_clientconfig_is_named(adapter: str) -> None:
    # A dict of Postfix names is the usual slip; it used to end in an AttributeError from
    # inside the engine.
    with pytest.raises(smtpproto.LocalProtocolError, match=r"^config: expected a ClientConfig"):
        deliver(adapter, "[127.0.0.1]:1", recipients=["b@example.com"], config={"lmtp": True})


def test_the_trio_adapter_without_trio_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['trio'] = None\n"
        "try:\n"
        "    from smtpproto.adapters import trio\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout == "the trio adapter needs trio: pip install 'smtpproto-client[trio]'\n"
