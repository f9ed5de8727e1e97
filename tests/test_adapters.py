"""The three adapters: request-level interpretation, then the same delivery behaviour suite.

Request-level tests drive each adapter's interpreter with small hand-written engines (plain
generators yielding `smtpproto.requests`) against real loopback sockets and trustme
certificates; the behaviour suite runs the real engine against aiosmtpd (the demo's SMTP
server) and the reactive servers of ``tests/support`` on loopback sockets.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import functools
import gc
import os
import socket
import ssl
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest
import trio
import trustme
from smtpproto.adapters import _dns, _driver
from smtpproto.adapters import asyncio as aio_adapter
from smtpproto.adapters import blocking as blocking_adapter
from smtpproto.adapters import trio as trio_adapter
from smtpproto.adapters.demo import DEMO_PASSWORD, DEMO_USER, DemoHandler, SMTPServer
from support.model import Behaviour, Canonical, Expect, ServerModel, ehlo_reply
from support.sockets import LoopbackServer

from smtpproto import LocalProtocolError
from smtpproto.requests import (
    Close,
    Connect,
    DNSAnswer,
    DNSError,
    IOFailure,
    IORequest,
    MXRecord,
    Receive,
    Resolve,
    Send,
    Sleep,
    StartTLS,
    TLSInfo,
    TLSParameters,
)

ADAPTERS = ["blocking", "asyncio", "trio"]
Engine = Generator[IORequest, Any, Any]


def run_engine(adapter: str, engine: Engine, resolver: Any = None) -> Any:
    """Drive a hand-written engine with `adapter`'s interpreter, as deliver() does."""
    if adapter == "blocking":
        io = blocking_adapter._IO(resolver)
        try:
            return _driver.drive(engine, io.perform)
        finally:
            io.close_all()
    if adapter == "asyncio":

        async def main_asyncio() -> Any:
            io = aio_adapter._IO(resolver)
            try:
                return await _driver.drive_async(engine, io.perform)
            finally:
                await io.close_all()

        return asyncio.run(main_asyncio())

    async def main_trio() -> Any:
        io = trio_adapter._IO(resolver)
        try:
            return await _driver.drive_async(engine, io.perform)
        finally:
            await io.close_all()

    return trio.run(main_trio)


class Echo(Behaviour):
    """A line peer for the request-level tests: greets ``220 peer``, answers ``250 <line>``
    to every line, nothing to a line whose first word is in `stall`, and hangs up on one in
    `hangup`; a ``250 STARTTLS`` is followed by the handshake when the server has TLS."""

    def __init__(self, stall: str = "STALL", hangup: str = "HANGUP") -> None:
        self.stall = stall
        self.hangup = hangup

    def greeting(self, server: ServerModel) -> bytes:
        """``220 peer``."""
        return b"220 peer\r\n"

    def reply(self, server: ServerModel, verb: str, line: bytes) -> bytes:
        """The line back after ``250``, or silence, or a hang-up."""
        if verb == self.hangup:
            server.hang_up()
            return b""
        if verb == self.stall:
            return b""
        return b"250 " + line.strip() + b"\r\n"

    def end_of_data(self, server: ServerModel) -> list[tuple[bytes, list[str]]]:
        """Never reached: ``250 DATA`` opens no message content."""
        return []


MakePeer = Callable[..., LoopbackServer]
"""The `make_peer` fixture: family, server TLS context, then the `Echo` keywords."""


def connect_to(peer: LoopbackServer) -> Connect:
    """The engine's request to open a connection to `peer`."""
    if peer.path is not None:
        return Connect("peer", peer.path, None, 5, family="unix")
    return Connect("peer", peer.host, peer.port, 5)


def saw_eof(peer: LoopbackServer) -> bool:
    """The client closed `peer`'s first connection (or broke it) within 5 s."""
    deadline = time.monotonic() + 5
    while not peer.connections and time.monotonic() < deadline:
        time.sleep(0.01)
    return bool(peer.connections) and peer.connections[0].saw_eof.wait(5)


@pytest.fixture(params=ADAPTERS)
def adapter(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    return context


@pytest.fixture
def make_peer(tmp_path: Path) -> Iterator[Callable[..., LoopbackServer]]:
    peers: list[LoopbackServer] = []

    def make(
        family: Literal["ipv4", "ipv6", "unix"] = "ipv4",
        tls: ssl.SSLContext | None = None,
        **script: str,
    ) -> LoopbackServer:
        peer = LoopbackServer(
            Echo(**script),
            expect=Expect(commands_only=False),
            tls=tls,
            family=family,
            path=tmp_path / "peer.sock" if family == "unix" else None,
        )
        peers.append(peer)
        return peer

    yield make
    for peer in peers:
        peer.close()


def read_line(channel: object, timeout: float = 5) -> Generator[IORequest, Any, bytes]:
    data = b""
    while not data.endswith(b"\n"):
        chunk = yield Receive(channel, timeout)
        if not chunk:
            return data
        data += chunk
    return data


def chat(peer: LoopbackServer, *lines: bytes) -> Engine:
    channel = yield connect_to(peer)
    replies = [(yield from read_line(channel))]
    for line in lines:
        yield Send(channel, line + b"\r\n", 5)
        replies.append((yield from read_line(channel)))
    yield Close(channel)
    return replies


@pytest.mark.parametrize("family", ["ipv4", "ipv6", "unix"])
def test_exchanges_bytes_over_ipv4_ipv6_and_unix_sockets(
    adapter: str, family: str, make_peer: MakePeer
) -> None:
    peer = make_peer(family)
    assert run_engine(adapter, chat(peer, b"EHLO x", b"NOOP")) == [
        b"220 peer\r\n",
        b"250 EHLO x\r\n",
        b"250 NOOP\r\n",
    ]
    assert saw_eof(peer)


def test_close_request_closes_the_socket_so_the_peer_sees_eof(
    adapter: str, make_peer: MakePeer
) -> None:
    peer = make_peer()
    run_engine(adapter, chat(peer))
    assert saw_eof(peer)


def test_a_channel_left_open_by_the_engine_is_closed_on_return(
    adapter: str, make_peer: MakePeer
) -> None:
    peer = make_peer()

    def forgetful() -> Engine:
        channel = yield connect_to(peer)
        return (yield from read_line(channel))

    assert run_engine(adapter, forgetful()) == b"220 peer\r\n"
    assert saw_eof(peer)


def catching(engine: Engine) -> Engine:
    """Return the IOFailure thrown into `engine` instead of its result."""
    try:
        return (yield from engine)
    except IOFailure as failure:
        return failure


def test_refused_connection_is_connect_failed(adapter: str) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]

    def engine() -> Engine:
        return (yield Connect("nobody", "127.0.0.1", port, 5))

    failure = run_engine(adapter, catching(engine()))
    assert type(failure).__name__ == "ConnectFailed"
    # The reason is the OS's text alone, as Postfix's "%m" (no "[Errno 111]"); the engine adds
    # "connect to host[address]:port" itself.
    assert failure.reason == os.strerror(errno.ECONNREFUSED)


def test_receive_past_its_timeout_is_io_timeout(adapter: str, make_peer: MakePeer) -> None:
    peer = make_peer()

    def engine() -> Engine:
        channel = yield connect_to(peer)
        yield from read_line(channel)
        yield Send(channel, b"STALL\r\n", 5)
        started = time.monotonic()
        try:
            yield Receive(channel, 0.2)
        except IOFailure as failure:
            return type(failure).__name__, time.monotonic() - started
        return None

    name, elapsed = run_engine(adapter, engine())
    assert name == "IOTimeout"
    assert 0.15 < elapsed < 2


def test_send_to_a_peer_that_stops_reading_is_io_timeout(adapter: str) -> None:
    # A listener that never accepts: the kernel takes the connection and some data, then the
    # windows fill and every later write waits; the Send must end with IOTimeout.
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def engine() -> Engine:
            channel = yield Connect("peer", "127.0.0.1", port, 5)
            block = b"x" * (1 << 20)
            for sent in range(256):
                try:
                    yield Send(channel, block, 0.3)
                except IOFailure as failure:
                    return type(failure).__name__, sent
            return None

        outcome = run_engine(adapter, engine())
    assert outcome is not None and outcome[0] == "IOTimeout"


def test_asyncio_holds_at_most_a_bounded_amount_the_engine_has_not_read() -> None:
    # Nothing the peer sends makes memory grow without bound: past READ_LIMIT unread octets
    # the transport stops reading until a Receive takes some.
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        flood = b"250-flood\r\n" * (1 << 20)

        def serve() -> None:
            peer, _ = listener.accept()
            with peer, contextlib.suppress(OSError):
                peer.settimeout(5)
                peer.sendall(flood)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()

        def engine() -> Engine:
            channel = yield Connect("peer", "127.0.0.1", port, 5)
            yield Sleep(0.5)
            held = channel.size  # type: ignore[attr-defined]
            total = 0
            while total < len(flood):
                data = yield Receive(channel, 5)
                if not data:
                    break
                total += len(data)
            return held, total

        held, total = run_engine("asyncio", engine())
        thread.join(5)
    assert held <= aio_adapter.READ_LIMIT + (1 << 18)
    assert total == len(flood)


def test_peer_hangup_reads_as_end_of_stream(adapter: str, make_peer: MakePeer) -> None:
    peer = make_peer()

    def engine() -> Engine:
        channel = yield connect_to(peer)
        yield from read_line(channel)
        yield Send(channel, b"HANGUP\r\n", 5)
        return (yield Receive(channel, 5))

    assert run_engine(adapter, engine()) == b""


def starttls(peer: LoopbackServer, parameters: TLSParameters) -> Engine:
    channel = yield connect_to(peer)
    yield from read_line(channel)
    yield Send(channel, b"STARTTLS\r\n", 5)
    yield from read_line(channel)
    info = yield StartTLS(channel, "localhost", parameters, 5)
    yield Send(channel, b"EHLO again\r\n", 5)
    return info, (yield from read_line(channel))


def test_starttls_with_a_trusted_chain_reports_the_peer_certificate(
    adapter: str,
    make_peer: MakePeer,
    server_tls: ssl.SSLContext,
    ca: trustme.CA,
    tmp_path: Path,
) -> None:
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    peer = make_peer(tls=server_tls)
    info, reply = run_engine(adapter, starttls(peer, TLSParameters(True, ca_file=str(ca_file))))
    assert isinstance(info, TLSInfo)
    assert info.chain_verified
    assert info.version.startswith("TLS")
    assert ("DNS", "localhost") in info.peer_certificate["subjectAltName"]  # type: ignore[index]
    assert reply == b"250 EHLO again\r\n"


def test_starttls_without_verification_accepts_an_unknown_issuer(
    adapter: str, make_peer: MakePeer, server_tls: ssl.SSLContext
) -> None:
    peer = make_peer(tls=server_tls)
    info, reply = run_engine(adapter, starttls(peer, TLSParameters(False)))
    assert not info.chain_verified
    assert info.peer_certificate is None
    assert reply == b"250 EHLO again\r\n"


def test_starttls_with_an_untrusted_chain_is_tls_failed(
    adapter: str, make_peer: MakePeer, server_tls: ssl.SSLContext, tmp_path: Path
) -> None:
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    peer = make_peer(tls=server_tls)
    failure = run_engine(adapter, catching(starttls(peer, TLSParameters(True, ca_file=str(other)))))
    assert type(failure).__name__ == "TLSFailed"
    assert saw_eof(peer)


def test_sleep_waits(adapter: str) -> None:
    def engine() -> Engine:
        started = time.monotonic()
        yield Sleep(0.1)
        return time.monotonic() - started

    assert run_engine(adapter, engine()) >= 0.09


def resolve(request: Resolve) -> Engine:
    return (yield request)


def test_native_address_lookups_use_the_system_resolver(adapter: str) -> None:
    # Resolve.lookup "native" (smtp_host_lookup): getaddrinfo, so /etc/hosts has localhost.
    answer = run_engine(adapter, resolve(Resolve("localhost", "A", 5, lookup="native")))
    assert "127.0.0.1" in answer


class FakeNameserver:
    """A UDP name server on loopback answering from a table, for dnspython."""

    ZONE = {
        ("mx.test.", "MX"): "10 mail.mx.test.",
        ("nullmx.test.", "MX"): "0 .",
        ("mail.mx.test.", "A"): "192.0.2.25",
        ("alias.mx.test.", "CNAME"): "mail.mx.test.",
    }

    def __init__(self) -> None:
        import dns.message
        import dns.rcode
        import dns.rrset

        self.dns = dns
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        dns = self.dns
        while not self.stop.is_set():
            try:
                wire, client = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            query = dns.message.from_wire(wire)
            question = query.question[0]
            name, rrtype = question.name.to_text(), dns.rdatatype.to_text(question.rdtype)
            response = dns.message.make_response(query)
            if name.startswith("servfail."):
                response.set_rcode(dns.rcode.SERVFAIL)
            elif (name, rrtype) in self.ZONE:
                response.answer.append(
                    dns.rrset.from_text(name, 300, "IN", rrtype, self.ZONE[(name, rrtype)])
                )
            elif (name, "CNAME") in self.ZONE:
                target = self.ZONE[(name, "CNAME")]
                response.answer.append(dns.rrset.from_text(name, 300, "IN", "CNAME", target))
                response.answer.append(
                    dns.rrset.from_text(target, 300, "IN", rrtype, self.ZONE[(target, rrtype)])
                )
            elif not any(n == name for n, _ in self.ZONE):
                response.set_rcode(dns.rcode.NXDOMAIN)
            self.sock.sendto(response.to_wire(), client)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


@pytest.fixture
def nameserver() -> Iterator[FakeNameserver]:
    server = FakeNameserver()
    yield server
    server.close()


def resolver_for(adapter: str, nameserver: FakeNameserver) -> Any:
    kind = {
        "blocking": _dns.DefaultResolver,
        "asyncio": _dns.DefaultAsyncResolver,
        "trio": _dns.TrioResolver,
    }[adapter]
    return kind(nameservers=["127.0.0.1"], port=nameserver.port)


@pytest.mark.parametrize(
    ("request_", "answer"),
    [
        (Resolve("mx.test", "MX", 5), (MXRecord(10, "mail.mx.test"),)),
        (Resolve("nullmx.test", "MX", 5), (MXRecord(0, ""),)),
        (Resolve("mail.mx.test", "A", 5), ("192.0.2.25",)),
        (Resolve("mail.mx.test", "AAAA", 5), ()),
    ],
)
def test_dn_lookups_through_a_configured_nameserver(
    adapter: str, nameserver: FakeNameserver, request_: Resolve, answer: tuple[Any, ...]
) -> None:
    resolver = resolver_for(adapter, nameserver)
    result = run_engine(adapter, resolve(request_), resolver)
    if answer:
        assert result == DNSAnswer(answer, ttl=300)
    else:
        assert result == ()


def test_a_dns_answer_after_a_cname_names_where_it_led(
    adapter: str, nameserver: FakeNameserver
) -> None:
    resolver = resolver_for(adapter, nameserver)
    result = run_engine(adapter, resolve(Resolve("alias.mx.test", "A", 5)), resolver)
    assert result == DNSAnswer(("192.0.2.25",), canonical_name="mail.mx.test", ttl=300)


@pytest.mark.parametrize(
    ("name", "kind"), [("missing.test", "nxdomain"), ("servfail.test", "temporary")]
)
def test_dn_lookup_failures_map_to_dns_error_kinds(
    adapter: str, nameserver: FakeNameserver, name: str, kind: str
) -> None:
    resolver = resolver_for(adapter, nameserver)
    failure = run_engine(adapter, catching(resolve(Resolve(name, "MX", 2))), resolver)
    assert isinstance(failure, DNSError)
    assert failure.kind == kind


def test_mx_lookup_without_dnspython_names_the_extra(adapter: str) -> None:
    kind = {
        "blocking": _dns.DefaultResolver,
        "asyncio": _dns.DefaultAsyncResolver,
        "trio": _dns.TrioResolver,
    }[adapter]
    resolver = kind()
    resolver._have_dnspython = False
    failure = run_engine(adapter, catching(resolve(Resolve("example.com", "MX", 2))), resolver)
    assert isinstance(failure, DNSError)
    assert failure.kind == "unavailable"
    assert "smtpproto-client[dns]" in failure.reason
    dns_lookup = run_engine(adapter, catching(resolve(Resolve("localhost", "A", 5))), resolver)
    assert isinstance(dns_lookup, DNSError) and dns_lookup.kind == "unavailable"
    answer = run_engine(adapter, resolve(Resolve("localhost", "A", 5, lookup="native")), resolver)
    assert "127.0.0.1" in answer


def stalled(peer: LoopbackServer, reached: Callable[[], None]) -> Engine:
    channel = yield connect_to(peer)
    yield from read_line(channel)
    yield Send(channel, b"STALL\r\n", 5)
    reached()
    yield Receive(channel, 30)
    return None


def test_cancelled_asyncio_task_closes_the_connection(make_peer: MakePeer) -> None:
    peer = make_peer()

    async def main() -> None:
        reached = asyncio.Event()

        async def run() -> None:
            io = aio_adapter._IO(None)
            try:
                await _driver.drive_async(stalled(peer, reached.set), io.perform)
            finally:
                await io.close_all()

        task = asyncio.create_task(run())
        await reached.wait()
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        asyncio.run(main())
        gc.collect()
    assert saw_eof(peer)
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]


def test_cancelled_trio_scope_closes_the_connection(make_peer: MakePeer) -> None:
    peer = make_peer()

    async def main() -> None:
        with trio.move_on_after(5) as scope:
            async with trio.open_nursery() as nursery:
                reached = trio.Event()

                async def run() -> None:
                    io = trio_adapter._IO(None)
                    try:
                        await _driver.drive_async(stalled(peer, reached.set), io.perform)
                    finally:
                        await io.close_all()

                nursery.start_soon(run)
                await reached.wait()
                await trio.sleep(0.05)
                nursery.cancel_scope.cancel()
        assert not scope.cancelled_caught

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trio.run(main)
        gc.collect()
    assert saw_eof(peer)
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]


# The behaviour suite: the real engine through each adapter, against loopback servers.

MESSAGE = b"From: a@client.test\r\nSubject: adapter test\r\n\r\nHello.\r\n.dot line\r\n"


def config(lmtp: bool = False, **parameters: Any) -> Any:
    from smtpproto.config import ClientConfig

    prefix = "lmtp_" if lmtp else "smtp_"
    names = {"helo_name": "client.test", "tls_security_level": "none", **parameters}
    if lmtp:
        names.pop("helo_name")
        names["lhlo_name"] = "client.test"
    return ClientConfig.from_postconf({prefix + k: v for k, v in names.items()}, lmtp=lmtp)


def deliver(adapter: str, destination: str, **arguments: Any) -> Any:
    """The adapter's deliver(), run to completion from synchronous test code."""
    arguments.setdefault("sender", "a@client.test")
    arguments.setdefault("message", MESSAGE)
    if adapter == "blocking":
        return blocking_adapter.deliver(destination, **arguments)
    if adapter == "asyncio":
        return asyncio.run(aio_adapter.deliver(destination, **arguments))
    return trio.run(functools.partial(trio_adapter.deliver, destination, **arguments))


def statuses(report: Any) -> dict[str, str]:
    return {r.address: r.status for r in report.recipients}


@pytest.fixture
def smtp() -> Iterator[SMTPServer]:
    with SMTPServer(DemoHandler(rejected={"nobody@demo.test"}), auth_require_tls=False) as server:
        yield server


def test_plain_delivery(adapter: str, smtp: SMTPServer) -> None:
    report = deliver(adapter, smtp.destination, recipients=["alice@demo.test"], config=config())
    assert statuses(report) == {"alice@demo.test": "sent"}
    (received,) = smtp.handler.received
    assert received.recipients == ["alice@demo.test"]
    assert received.data.endswith(b"Hello.\r\n.dot line\r\n")


def test_plain_delivery_over_ipv6(adapter: str) -> None:
    with SMTPServer(host="::1") as server:
        report = deliver(adapter, server.destination, recipients=["b@demo.test"], config=config())
    assert statuses(report) == {"b@demo.test": "sent"}
    assert report.recipients[0].relay is not None and "::1" in report.recipients[0].relay


def test_several_recipients_one_rejected(adapter: str, smtp: SMTPServer) -> None:
    recipients = ["alice@demo.test", "nobody@demo.test", "bob@demo.test"]
    report = deliver(adapter, smtp.destination, recipients=recipients, config=config())
    assert statuses(report) == {
        "alice@demo.test": "sent",
        "nobody@demo.test": "bounced",
        "bob@demo.test": "sent",
    }
    assert report.recipients[1].dsn == "5.1.1"
    assert smtp.handler.received[0].recipients == ["alice@demo.test", "bob@demo.test"]


def test_starttls(adapter: str, smtp: SMTPServer) -> None:
    cfg = config(tls_security_level="encrypt")
    report = deliver(adapter, smtp.destination, recipients=["alice@demo.test"], config=cfg)
    assert statuses(report) == {"alice@demo.test": "sent"}
    assert report.tls is not None and report.tls.version.startswith("TLS")
    (result,) = report.recipients
    assert result.tls is not None and result.tls.trust == "Untrusted"
    assert result.tls.version == report.tls.version


def test_starttls_verify_with_the_demo_ca_reports_verified(adapter: str, smtp: SMTPServer) -> None:
    cfg = config(
        tls_security_level="may",
        tls_CAfile=smtp.ca_file,
        tls_policy_maps={smtp.destination: "verify match=localhost"},
    )
    report = deliver(adapter, smtp.destination, recipients=["alice@demo.test"], config=cfg)
    assert statuses(report) == {"alice@demo.test": "sent"}
    (result,) = report.recipients
    assert result.tls is not None and result.tls.trust == "Verified"
    assert any(line.startswith("Verified TLS connection established") for line in report.transcript)


class _AuthRecorder(DemoHandler):
    """The demo handler, also recording whether each message came over an authenticated session
    (the demo authenticator accepts only DEMO_USER with DEMO_PASSWORD)."""

    def __init__(self) -> None:
        super().__init__()
        self.logins: list[bool] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """Record whether the session authenticated, then keep the message."""
        self.logins.append(bool(session.authenticated))
        return await super().handle_DATA(server, session, envelope)


def auth_config(server: SMTPServer, **extra: Any) -> Any:
    return config(
        tls_security_level="encrypt",
        sasl_auth_enable="yes",
        sasl_password_maps={server.destination: f"{DEMO_USER}:{DEMO_PASSWORD}"},
        **extra,
    )


def test_starttls_and_auth(adapter: str) -> None:
    handler = _AuthRecorder()
    # AUTH offered only after STARTTLS, as Postfix smtpd does. PLAIN/LOGIN under TLS need the
    # library's TLS default (from_postconf keeps Postfix's, which refuses them: next test).
    with SMTPServer(handler) as server:
        cfg = auth_config(server, sasl_tls_security_options="noanonymous")
        report = deliver(adapter, server.destination, recipients=["alice@demo.test"], config=cfg)
    assert statuses(report) == {"alice@demo.test": "sent"}
    assert handler.logins == [True]
    out = [line for line in report.transcript if line.startswith("Out: AUTH")]
    assert out == ["Out: AUTH PLAIN [redacted]"]
    assert "In: 235 2.7.0 Authentication successful" in report.transcript
    text = "\n".join(report.transcript)
    assert DEMO_PASSWORD not in text
    assert base64.b64encode(f"\0{DEMO_USER}\0{DEMO_PASSWORD}".encode()).decode() not in text


def test_auth_with_postfix_tls_options_refuses_plain_and_defers(adapter: str) -> None:
    handler = _AuthRecorder()
    with SMTPServer(handler) as server:
        report = deliver(
            adapter, server.destination, recipients=["a@demo.test"], config=auth_config(server)
        )
    (result,) = report.recipients
    assert (result.status, result.dsn) == ("deferred", "4.7.0")
    assert "offered no compatible authentication mechanisms" in result.diagnostic
    assert not any(line.startswith("Out: AUTH") for line in report.transcript)
    assert handler.received == []


def test_auth_is_never_offered_a_password_in_cleartext(adapter: str, smtp: SMTPServer) -> None:
    # AU-01/AU-05 on real sockets: the server offers AUTH PLAIN LOGIN without TLS.
    handler = smtp.handler
    cfg = config(
        tls_security_level="none",
        sasl_auth_enable="yes",
        sasl_password_maps={smtp.destination: f"{DEMO_USER}:{DEMO_PASSWORD}"},
    )
    report = deliver(adapter, smtp.destination, recipients=["a@demo.test"], config=cfg)
    assert statuses(report) == {"a@demo.test": "deferred"}
    assert not any(line.startswith("Out: AUTH") for line in report.transcript)
    assert handler.received == []


def test_lmtp_per_recipient_replies(adapter: str, tmp_path: Path) -> None:
    rejected = {"nobody@lmtp.test": b"550 5.1.1 <nobody@lmtp.test>: mailbox unavailable\r\n"}
    behaviour = Canonical(delivery=rejected)
    with LoopbackServer(behaviour, lmtp=True, family="unix", path=tmp_path / "lmtp") as server:
        report = deliver(
            adapter,
            server.destination,
            recipients=["alice@lmtp.test", "nobody@lmtp.test"],
            config=config(lmtp=True),
        )
        (served,) = server.wait_done(1)
    assert statuses(report) == {"alice@lmtp.test": "sent", "nobody@lmtp.test": "bounced"}
    assert list(served.model.messages[0].recipients) == ["alice@lmtp.test", "nobody@lmtp.test"]


def test_server_closing_mid_transaction_defers(adapter: str, make_peer: MakePeer) -> None:
    peer = make_peer(hangup="DATA")
    report = deliver(adapter, peer.destination, recipients=["a@peer.test"], config=config())
    assert statuses(report) == {"a@peer.test": "deferred"}
    assert report.recipients[0].dsn.startswith("4.")


def test_server_that_stops_answering_times_out_and_defers(
    adapter: str, make_peer: MakePeer
) -> None:
    peer = make_peer(stall="MAIL")
    started = time.monotonic()
    report = deliver(
        adapter, peer.destination, recipients=["a@peer.test"], config=config(mail_timeout="1s")
    )
    assert statuses(report) == {"a@peer.test": "deferred"}
    assert time.monotonic() - started < 5
    assert saw_eof(peer)


def test_session_runs_several_transactions_on_one_connection(
    adapter: str, smtp: SMTPServer
) -> None:
    def send_twice() -> list[Any]:
        kwargs = {"sender": "a@client.test", "message": MESSAGE}
        with blocking_adapter.connect(smtp.destination, config=config()) as session:
            return [session.send(recipients=[r], **kwargs) for r in ("x@d.test", "y@d.test")]

    async def send_twice_async(module: Any) -> list[Any]:
        kwargs = {"sender": "a@client.test", "message": MESSAGE}
        async with module.connect(smtp.destination, config=config()) as session:
            return [await session.send(recipients=[r], **kwargs) for r in ("x@d.test", "y@d.test")]

    if adapter == "blocking":
        reports = send_twice()
    elif adapter == "asyncio":
        reports = asyncio.run(send_twice_async(aio_adapter))
    else:
        reports = trio.run(send_twice_async, trio_adapter)
    assert [statuses(r) for r in reports] == [{"x@d.test": "sent"}, {"y@d.test": "sent"}]
    assert [m.recipients for m in smtp.handler.received] == [["x@d.test"], ["y@d.test"]]


def test_cancelled_asyncio_delivery_closes_the_connection(
    make_peer: MakePeer,
) -> None:
    peer = make_peer(stall="MAIL")

    async def main() -> None:
        task = asyncio.create_task(
            aio_adapter.deliver(
                peer.destination,
                sender="a@c.test",
                recipients=["b@d.test"],
                message=MESSAGE,
                config=config(),
            )
        )
        await asyncio.sleep(0.5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert asyncio.all_tasks() == {asyncio.current_task()}

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        asyncio.run(main())
        gc.collect()
    assert saw_eof(peer)
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]


def test_cancelled_trio_delivery_closes_the_connection(
    make_peer: MakePeer,
) -> None:
    peer = make_peer(stall="MAIL")

    async def main() -> None:
        with trio.move_on_after(0.5) as scope:
            await trio_adapter.deliver(
                peer.destination,
                sender="a@c.test",
                recipients=["b@d.test"],
                message=MESSAGE,
                config=config(),
            )
        assert scope.cancelled_caught

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trio.run(main)
        gc.collect()
    assert saw_eof(peer)
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]


# TLS level x server behaviour, on every adapter (NS-03, NS-05, NS-13, NS-14): a small
# threaded SMTP server that can omit STARTTLS, refuse it, break the handshake, or present
# a good or bad certificate.

BEHAVIOURS = ["no-starttls", "454", "handshake-failure", "untrusted", "wrong-name", "good"]
LEVELS = ["none", "may", "encrypt", "verify", "secure"]


@dataclass
class TLSBehaviour(Canonical):
    """A correct server but for STARTTLS, as `name` says: not offered (``no-starttls``),
    refused (``454``), a failed handshake (``handshake-failure``), or a handshake with the
    certificate of that name; ``auth-535`` offers AUTH over TLS and refuses every login."""

    name: str = "good"

    def correct(self, server: ServerModel, verb: str, line: bytes) -> bytes:
        """EHLO, AUTH and STARTTLS as `name` says; the rest as `Canonical` answers."""
        if verb == "EHLO":
            if server.tls and self.name == "auth-535":
                return ehlo_reply("AUTH PLAIN LOGIN", domain="behaviour.test")
            offer = not server.tls and self.name != "no-starttls"
            return ehlo_reply("STARTTLS" if offer else "8BITMIME", domain="behaviour.test")
        if verb == "AUTH":
            return b"535 5.7.8 Error: authentication failed\r\n"
        if verb == "STARTTLS" and self.name == "454":
            return b"454 4.7.0 TLS not available\r\n"
        return super().correct(server, verb, line)

    def handshake(self, server: ServerModel) -> bool:
        """Fails for ``handshake-failure`` only."""
        return self.name != "handshake-failure"


def behaviour_server(behaviour: str, contexts: dict[str, ssl.SSLContext]) -> LoopbackServer:
    """A loopback server acting out `behaviour` with the certificate it names."""
    return LoopbackServer(
        TLSBehaviour(banner=b"220 behaviour.test ESMTP\r\n", name=behaviour),
        tls=contexts.get(behaviour, contexts["good"]),
    )


def mail_commands(server: LoopbackServer) -> int:
    """MAIL commands the server read, over every connection."""
    return sum(served.model.verbs.count("MAIL") for served in server.connections)


def after_tls(server: LoopbackServer) -> list[bytes]:
    """The verbs the server read over TLS, over every connection."""
    return [v.encode() for served in server.connections for v in served.model.verbs_after_tls]


@pytest.fixture(scope="module")
def behaviour_tls(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[str, dict[str, ssl.SSLContext]]:
    ca, stranger = trustme.CA(), trustme.CA()
    contexts: dict[str, ssl.SSLContext] = {}
    for name, issuer, names in [
        ("good", ca, ("localhost", "127.0.0.1")),
        ("wrong-name", ca, ("wrong.example",)),
        ("untrusted", stranger, ("localhost", "127.0.0.1")),
    ]:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        issuer.issue_cert(*names).configure_cert(context)
        contexts[name] = context
    ca_file = tmp_path_factory.mktemp("behaviour") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return str(ca_file), contexts


def expected_outcome(level: str, behaviour: str) -> tuple[str, str | None, str | None]:
    """(status, dsn prefix, trust word) that Postfix's rules give for this pair."""
    if level == "none":
        return "sent", "2.", None
    if behaviour in ("no-starttls", "454"):
        if level == "may":
            return "sent", "2.", None
        return "deferred", "4.7.4" if behaviour == "no-starttls" else "4.7.0", None
    if behaviour == "handshake-failure":
        return "deferred", "4.", None
    if level in ("may", "encrypt"):
        return "sent", "2.", "Untrusted"
    if behaviour == "good":
        return "sent", "2.", "Verified"
    return "deferred", "4.7.5", None


@pytest.mark.parametrize("behaviour", BEHAVIOURS)
@pytest.mark.parametrize("level", LEVELS)
def test_tls_level_by_server_behaviour(
    adapter: str,
    level: str,
    behaviour: str,
    behaviour_tls: tuple[str, dict[str, ssl.SSLContext]],
) -> None:
    ca_file, contexts = behaviour_tls
    server = behaviour_server(behaviour, contexts)
    try:
        policy = (
            {server.destination: f"{level} match=localhost"}
            if level in ("verify", "secure")
            else {}
        )
        cfg = config(
            tls_security_level="may" if policy else level,
            tls_policy_maps=policy,
            tls_CAfile=ca_file,
            starttls_timeout="5s",
            helo_timeout="5s",
        )
        report = deliver(adapter, server.destination, recipients=["a@b.test"], config=cfg)
    finally:
        server.close()
    status, dsn, trust = expected_outcome(level, behaviour)
    (result,) = report.recipients
    assert result.status == status, result.diagnostic
    assert dsn is not None and result.dsn.startswith(dsn), result.diagnostic
    if status == "sent":
        assert mail_commands(server) == 1
        assert (result.tls.trust if result.tls else None) == trust
    else:
        # Fail closed: no MAIL in any form, and over TLS nothing but QUIT.
        assert mail_commands(server) == 0
        assert after_tls(server) in ([], [b"QUIT"])
    if level in ("verify", "secure") and behaviour == "wrong-name":
        assert after_tls(server) == [b"QUIT"]  # rule 5.6: the session works, QUIT goes over it
        assert "Server certificate not verified" in result.diagnostic


def test_tls_contexts_verify_only_at_verify_and_secure() -> None:
    # CV-06/NS-14: no code path builds a non-verifying context for verify/secure; names are
    # matched by the engine (tlspolicy.check_peer), so the library's hostname check stays off.
    from smtpproto.adapters._tls import client_context

    from smtpproto.engine.tlspolicy import TLSPolicy, tls_parameters

    for level in ("verify", "secure"):
        parameters = tls_parameters(TLSPolicy(level, match=("localhost",)))
        context = client_context(parameters)
        assert context.verify_mode is ssl.CERT_REQUIRED
        assert context.minimum_version is ssl.TLSVersion.TLSv1_2
    for level in ("may", "encrypt"):
        context = client_context(tls_parameters(TLSPolicy(level)))
        assert context.verify_mode is ssl.CERT_NONE
    assert client_context(tls_parameters(TLSPolicy("may"))).minimum_version is ssl.TLSVersion.TLSv1


def test_ns01_injected_reply_after_220_on_real_sockets(adapter: str) -> None:
    # A server whose STARTTLS answer carries a fake EHLO reply in the same write.
    behaviour = Canonical(
        ("STARTTLS",),
        banner=b"220 x ESMTP\r\n",
        domain="x",
        replies={"STARTTLS": b"220 go\r\n250-evil\r\n250 AUTH PLAIN\r\n"},
    )
    with LoopbackServer(behaviour) as server:
        cfg = config(tls_security_level="encrypt", helo_timeout="5s")
        report = deliver(adapter, server.destination, recipients=["a@b.test"], config=cfg)
        (served,) = server.wait_done(1)
    (result,) = report.recipients
    assert result.status == "deferred"
    assert served.model.lines == [b"EHLO client.test", b"STARTTLS"]  # nothing after the 220
    assert not served.violations


def test_auth_wrong_password_defers_and_never_bounces(
    adapter: str, behaviour_tls: tuple[str, dict[str, ssl.SSLContext]]
) -> None:
    # AU-10 on real sockets: 535 is a soft site failure (smtp_sasl_auth_soft_bounce), never a
    # bounce, nothing of the transaction follows, and the password stays out of the report.
    _, contexts = behaviour_tls
    server = behaviour_server("auth-535", contexts)
    try:
        cfg = config(
            tls_security_level="encrypt",
            sasl_auth_enable="yes",
            sasl_tls_security_options="noanonymous",
            sasl_password_maps={server.destination: "someone:wrong-S3cr3t"},
            helo_timeout="5s",
        )
        report = deliver(adapter, server.destination, recipients=["a@b.test"], config=cfg)
    finally:
        server.close()
    (result,) = report.recipients
    assert (result.status, result.dsn) == ("deferred", "4.7.8")
    assert result.diagnostic.startswith("SASL authentication failed; server 127.0.0.1[127.0.0.1]")
    assert after_tls(server) == [b"EHLO", b"AUTH", b"QUIT"]
    assert mail_commands(server) == 0
    secret = base64.b64encode(b"\0someone\0wrong-S3cr3t").decode()
    text = "\n".join(report.transcript) + result.diagnostic
    assert "wrong-S3cr3t" not in text and secret not in text


def test_asyncio_refuses_starttls_when_plaintext_is_buffered_past_the_220(
    server_tls: ssl.SSLContext,
) -> None:
    # NS-01 in the asyncio adapter: plaintext the StreamReader already holds when STARTTLS
    # starts (it came in the same read as the 220, past the engine's Receive size) would be
    # read back after the handshake as if TLS had carried it. The STARTTLS reply fills one
    # Receive exactly; the injection follows in the same write. The server runs in the
    # client's event loop and a UNIX-domain socket has no receive window, so all of it is
    # queued before the client reads: the 220 is read alone and the injection stays buffered.
    size = Receive(None, None).max_bytes
    line = b"220-" + b"x" * (size // 40 - 6) + b"\r\n"
    reply = line * 39 + b"220 " + b"x" * (size - 39 * len(line) - 6) + b"\r\n"
    assert len(reply) == size
    injected = b"250-evil\r\n250 AUTH PLAIN\r\n"
    behaviour = Canonical(("STARTTLS",), replies={"STARTTLS": reply + injected})
    models: list[ServerModel] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        model = ServerModel(behaviour, lmtp=True)
        models.append(model)
        model.start()
        try:
            while not model.finished:
                writer.write(model.take())  # one write: one send on the socket
                await writer.drain()
                if model.tls_pending:
                    await writer.start_tls(server_tls)
                    model.tls_started()
                    continue
                data = await reader.read(65536)
                if not data:
                    return
                model.receive(data)
            writer.write(model.take())
            await writer.drain()
        except OSError:
            pass  # the client gave up on the handshake
        finally:
            writer.transport.abort()
            served.set()

    async def main(path: str) -> Any:
        async with await asyncio.start_unix_server(serve, path):
            report = await aio_adapter.deliver(
                f"unix:{path}",
                sender="a@client.test",
                recipients=["b@lmtp.test"],
                message=MESSAGE,
                config=config(lmtp=True, tls_security_level="encrypt", **short),
            )
            async with asyncio.timeout(5):
                await served.wait()
            return report

    served = asyncio.Event()
    stages = ("lhlo", "starttls", "mail", "rcpt", "data_init", "data_xfer", "data_done", "quit")
    short = {f"{stage}_timeout": "2s" for stage in stages}
    # A short path: the engine takes a UNIX socket path for the TLS server name (SNI).
    with tempfile.TemporaryDirectory(prefix="ns01") as directory:
        report = asyncio.run(main(directory + "/s"))
    (result,) = report.recipients
    assert (result.status, result.dsn) == ("deferred", "4.7.5"), result.diagnostic
    assert any(line.endswith("(response injection)") for line in report.transcript)
    (model,) = models
    assert model.verbs == ["LHLO", "STARTTLS"] and not model.tls  # no handshake, nothing after


def test_make_envelope_shares_one_checked_envelope_for_the_same_arguments() -> None:
    # Bulk senders repeat envelopes; an Envelope is immutable, so the adapters reuse it. An
    # arrival time makes a new one, and a bad argument is still refused every time.
    first = _driver.make_envelope("a@example.org", ["b@example.com"])
    assert _driver.make_envelope("a@example.org", ("b@example.com",)) is first
    assert _driver.make_envelope("a@example.org", ["c@example.com"]) is not first
    assert _driver.make_envelope("a@example.org", ["b@example.com"], arrival=1.0) is not first
    for _ in range(2):
        with pytest.raises(LocalProtocolError):
            _driver.make_envelope("a@example.org", ["b\r\n@example.com"])
