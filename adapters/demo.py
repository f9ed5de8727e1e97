"""`smtpproto demo`: loopback SMTP and LMTP servers, and real deliveries through each adapter.

The servers are also the test suite's peers. aiosmtpd (the ``demo`` extra) plays the SMTP
server; the LMTP server is scripted here because aiosmtpd cannot send one reply per
recipient after DATA (DESIGN.md, "Known peer limits").
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import ssl
import tempfile
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

__all__ = ["DemoHandler", "LMTPServer", "Received", "SMTPServer", "main"]

DEMO_USER = "demo"
DEMO_PASSWORD = "demo-password"
_ADDRESS = re.compile(r"<([^>]*)>")


@dataclass
class Received:
    """One message as a loopback server accepted it."""

    sender: str
    recipients: list[str]
    data: bytes


def _address(argument: str) -> str:
    match = _ADDRESS.search(argument)
    return match.group(1) if match else ""


class LMTPServer:
    """A scripted LMTP server (RFC 2033) in a background thread, with per-recipient replies.

    `rejected` maps a recipient address to the reply it gets after DATA; every other
    recipient is delivered. Listens on `unix_path` when given, else on 127.0.0.1.
    """

    def __init__(
        self, *, rejected: Mapping[str, str] | None = None, unix_path: str | None = None
    ) -> None:
        self.rejected = dict(rejected or {})
        self.unix_path = unix_path
        self.received: list[Received] = []
        self.destination = ""
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)

    def __enter__(self) -> LMTPServer:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("LMTP server did not start")
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        if self.unix_path is not None:
            server = await asyncio.start_unix_server(self._session, self.unix_path)
            self.destination = f"unix:{self.unix_path}"
        else:
            server = await asyncio.start_server(self._session, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            self.destination = f"inet:[127.0.0.1]:{port}"
        async with server:
            self._ready.set()
            await self._stop.wait()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sender, recipients = "", list[str]()
        writer.write(b"220 lmtp.demo LMTP ready\r\n")
        try:
            while line := await reader.readline():
                verb, _, argument = line.decode("utf-8", "replace").strip().partition(" ")
                verb = verb.upper()
                if verb == "LHLO":
                    reply = "250-lmtp.demo\r\n250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n"
                    reply += "250 8BITMIME"
                elif verb == "MAIL":
                    sender, recipients, reply = _address(argument), [], "250 2.1.0 Ok"
                elif verb == "RCPT":
                    recipients.append(_address(argument))
                    reply = "250 2.1.5 Ok"
                elif verb == "DATA" and not recipients:
                    reply = "503 5.5.1 Error: need RCPT command"
                elif verb == "DATA":
                    writer.write(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    data = await _read_data(reader)
                    self.received.append(Received(sender, list(recipients), data))
                    # RFC 2033 4.2: one reply per accepted recipient, in RCPT order.
                    reply = "\r\n".join(
                        self.rejected.get(r, f"250 2.0.0 <{r}> delivered") for r in recipients
                    )
                    recipients = []
                elif verb in ("RSET", "NOOP"):
                    recipients = [] if verb == "RSET" else recipients
                    reply = "250 2.0.0 Ok"
                elif verb == "QUIT":
                    writer.write(b"221 2.0.0 Bye\r\n")
                    break
                else:
                    reply = "502 5.5.2 Error: command not recognized"
                writer.write(reply.encode() + b"\r\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


async def _read_data(reader: asyncio.StreamReader) -> bytes:
    lines = []
    while (line := await reader.readline()) not in (b".\r\n", b".\n"):
        if not line:
            raise asyncio.IncompleteReadError(b"", None)
        lines.append(line[1:] if line.startswith(b".") else line)
    return b"".join(lines)


# aiosmtpd answers 555 to parameters it does not know; the demo server accepts the RFC 3461
# ones so that the client's DSN requests reach it (and records them).
_DSN_PARAMETER = re.compile(r"\s+(RET|ENVID|NOTIFY|ORCPT)=(\S*)", re.IGNORECASE)


class _DSNSMTP(SMTP):
    """aiosmtpd's SMTP with the RFC 3461 parameters taken off before it parses the rest."""

    dsn_parameters: list[str]

    def _strip_dsn(self, argument: str | None) -> str | None:
        if argument is None:
            return None
        self.dsn_parameters.extend(m.group(0).strip() for m in _DSN_PARAMETER.finditer(argument))
        return _DSN_PARAMETER.sub("", argument)

    async def smtp_MAIL(self, argument: str | None) -> None:
        """MAIL FROM, DSN parameters recorded."""
        await super().smtp_MAIL(self._strip_dsn(argument))

    async def smtp_RCPT(self, argument: str | None) -> None:
        """RCPT TO, DSN parameters recorded."""
        await super().smtp_RCPT(self._strip_dsn(argument))


class DemoHandler:
    """aiosmtpd handler: advertises PIPELINING and DSN, rejects `rejected` at RCPT."""

    def __init__(self, rejected: Iterable[str] = ()) -> None:
        self.rejected = set(rejected)
        self.received: list[Received] = []
        self.dsn_parameters: list[str] = []

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        """Add the extensions aiosmtpd implements but does not announce."""
        session.host_name = hostname
        server.dsn_parameters = self.dsn_parameters
        return [*responses[:-1], "250-PIPELINING", "250-DSN", responses[-1]]

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        """Refuse the addresses in `rejected` as an unknown user."""
        if address in self.rejected:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """Keep the message."""
        data = envelope.original_content or b""
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), data))
        return "250 2.0.0 Ok: queued"


def _authenticate(
    server: Any, session: Any, envelope: Any, mechanism: str, data: Any
) -> AuthResult:
    ok = isinstance(data, LoginPassword) and data == (DEMO_USER.encode(), DEMO_PASSWORD.encode())
    # handled=False: aiosmtpd then sends the 535 itself; True would leave the client waiting.
    return AuthResult(success=ok, handled=False)


class _Controller(Controller):
    def factory(self) -> SMTP:
        server = _DSNSMTP(self.handler, **self.SMTP_kwargs)
        server.dsn_parameters = []
        return server


class _LegacyNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Session.login_data is deprecated")


_LEGACY_NOTICE = _LegacyNotice()


def _quiet_aiosmtpd() -> None:
    # aiosmtpd 1.4 logs a warning about its own legacy attribute on every successful AUTH,
    # and with no handler configured Python prints it on stderr; nothing the user can act on.
    logging.getLogger("mail.log").addFilter(_LEGACY_NOTICE)  # a filter is added only once


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class SMTPServer:
    """aiosmtpd on loopback with STARTTLS (a throwaway trustme CA) and AUTH PLAIN/LOGIN.

    `ca_file` names the CA certificate a verifying client needs. AUTH is offered only after
    STARTTLS unless `auth_require_tls` is false.
    """

    def __init__(
        self,
        handler: DemoHandler | None = None,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        auth_require_tls: bool = True,
    ) -> None:
        self.handler = handler if handler is not None else DemoHandler()
        self._tmp = tempfile.TemporaryDirectory(prefix="smtpproto-demo-")
        ca = trustme.CA()
        certificate = ca.issue_cert("localhost", "127.0.0.1", "::1")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        certificate.configure_cert(context)
        self.ca_file = str(Path(self._tmp.name) / "ca.pem")
        ca.cert_pem.write_to_path(self.ca_file)
        port = _free_port(host) if port is None else port
        self.destination = f"[{'ipv6:' if ':' in host else ''}{host}]:{port}"
        # The certificate names localhost: this destination passes tls_security_level=verify.
        self.named_destination = f"[localhost]:{port}"
        self._controller = _Controller(
            self.handler,
            hostname=host,
            port=port,
            tls_context=context,
            authenticator=_authenticate,
            auth_require_tls=auth_require_tls,
        )

    def __enter__(self) -> SMTPServer:
        _quiet_aiosmtpd()
        self._controller.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._controller.stop()
        self._tmp.cleanup()


SAMPLE = (
    b"From: Demo Sender <sender@client.demo>\r\n"
    b"To: Alice <alice@demo.example>\r\n"
    b"Subject: smtpproto demo\r\n"
    b"\r\n"
    b"Hello from smtpproto.\r\n"
    b".A line that starts with a dot travels dot-stuffed.\r\n"
)
SMTP_EXPECTED = {
    "alice@demo.example": "sent",
    "bob@demo.example": "sent",
    "nobody@demo.example": "bounced",
}
LMTP_EXPECTED = {"alice@lmtp.demo": "sent", "nobody@lmtp.demo": "bounced"}
LMTP_REJECTED = {"nobody@lmtp.demo": "550 5.1.1 <nobody@lmtp.demo>: mailbox unavailable"}


@dataclass(frozen=True)
class _Step:
    """One delivery of the tour: through which adapter, to which server, and what it shows."""

    title: str
    adapter: str
    lmtp: bool
    dialogue: bool


_STEPS = (
    _Step(
        "SMTP through the blocking adapter: STARTTLS (level verify: the certificate chains to\n"
        "   the demo CA and names localhost), then AUTH PLAIN, MAIL/RCPT/DATA pipelined.\n"
        "   Alice and Bob are accepted; nobody is refused at RCPT.",
        "blocking",
        lmtp=False,
        dialogue=True,
    ),
    _Step(
        "LMTP through the blocking adapter: LHLO, then one reply per recipient after the\n"
        "   final dot: alice is delivered, nobody bounces on its own.",
        "blocking",
        lmtp=True,
        dialogue=True,
    ),
    _Step(
        "SMTP through the asyncio adapter: the same engine, the same dialogue.",
        "asyncio",
        lmtp=False,
        dialogue=False,
    ),
    _Step("LMTP through the asyncio adapter.", "asyncio", lmtp=True, dialogue=False),
    _Step("SMTP through the trio adapter.", "trio", lmtp=False, dialogue=False),
    _Step("LMTP through the trio adapter.", "trio", lmtp=True, dialogue=False),
)


def _show(number: int, step: _Step, report: Any, expected: Mapping[str, str]) -> bool:
    from smtpproto.report import format_log_line

    print(f"\n{number}. {step.title}")
    if step.dialogue:
        print("   The dialogue, as report.transcript keeps it (secrets redacted):")
        for line in report.transcript:
            print(f"     {line}")
        print("   One line per recipient, as Postfix logs it:")
    for result in report.recipients:
        print(f"     {format_log_line(result)}")
    got = {r.address: r.status for r in report.recipients}
    if got != expected:
        print(f"   UNEXPECTED: wanted {expected}, got {got}")
    return got == expected


def main() -> int:
    """Run the tour; 0 when every delivery ends as expected, else 1."""
    import functools

    import trio

    from smtpproto.config import ClientConfig
    from smtpproto.envelope import Recipient
    from smtpproto.tables import Lookup

    from . import asyncio as aio_adapter
    from . import blocking as blocking_adapter
    from . import trio as trio_adapter

    def run(adapter: str, destination: str, config: Any, recipients: list[Any]) -> Any:
        arguments = {
            "sender": "sender@client.demo",
            "recipients": recipients,
            "message": SAMPLE,
            "config": config,
        }
        if adapter == "blocking":
            return blocking_adapter.deliver(destination, **arguments)
        if adapter == "asyncio":
            return asyncio.run(aio_adapter.deliver(destination, **arguments))
        return trio.run(functools.partial(trio_adapter.deliver, destination, **arguments))

    ok = True
    with tempfile.TemporaryDirectory(prefix="smtpproto-demo-") as tmp:
        lmtp_server = LMTPServer(rejected=LMTP_REJECTED, unix_path=str(Path(tmp) / "lmtp"))
        smtp_server = SMTPServer(DemoHandler(rejected={"nobody@demo.example"}))
        with smtp_server as smtp, lmtp_server as lmtp:
            print("smtpproto demo: real deliveries to two servers started on this machine.")
            print(f"  SMTP  aiosmtpd at {smtp.named_destination}: STARTTLS with a throwaway CA,")
            print("        AUTH PLAIN/LOGIN after STARTTLS; refuses nobody@demo.example at RCPT.")
            print(f"  LMTP  a scripted server at {lmtp.destination}: one reply per recipient")
            print("        after the data; it refuses nobody@lmtp.demo there.")
            # The verified path (AU-20): the certificate must chain to the demo's CA and name
            # the server (localhost), and only then does the password go out, over PLAIN.
            smtp_config = ClientConfig(
                helo_name="client.demo",
                tls_security_level="verify",
                tls_CAfile=smtp.ca_file,
                sasl_auth_enable=True,
                sasl_password_maps=Lookup.of(
                    {smtp.named_destination: f"{DEMO_USER}:{DEMO_PASSWORD}"}
                ),
            )
            lmtp_config = ClientConfig.from_postconf({"lmtp_lhlo_name": "client.demo"}, lmtp=True)
            smtp_recipients = [
                Recipient("alice@demo.example", notify=("SUCCESS", "FAILURE")),
                "bob@demo.example",
                "nobody@demo.example",
            ]
            for number, step in enumerate(_STEPS, 1):
                if step.lmtp:
                    report = run(step.adapter, lmtp.destination, lmtp_config, list(LMTP_EXPECTED))
                    ok &= _show(number, step, report, LMTP_EXPECTED)
                else:
                    report = run(step.adapter, smtp.named_destination, smtp_config, smtp_recipients)
                    ok &= _show(number, step, report, SMTP_EXPECTED)
    if ok:
        print("\ndemo: every delivery ended as expected: sent where accepted, bounced where")
        print("refused. Next: smtpproto deliver --help, and docs/guide.md for the library.")
    else:
        print("\ndemo: something ended unexpectedly (see UNEXPECTED above)")
    return 0 if ok else 1
