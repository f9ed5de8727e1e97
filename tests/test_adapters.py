"""The three adapters: request-level interpretation, then the same delivery behaviour suite.

Request-level tests drive each adapter's interpreter with small hand-written engines (plain
generators yielding `smtpproto.requests`) against real loopback sockets and trustme
certificates; the behaviour suite runs the real engine against aiosmtpd and the scripted
LMTP server of `smtpproto.adapters.demo`.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import gc
import socket
import ssl
import threading
import time
import warnings
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trustme
from smtpproto.adapters import _dns, _driver
from smtpproto.adapters import asyncio as aio_adapter
from smtpproto.adapters import blocking as blocking_adapter
from smtpproto.adapters import trio as trio_adapter
from smtpproto.adapters.demo import DEMO_PASSWORD, DEMO_USER, DemoHandler, LMTPServer, SMTPServer

from smtpproto.requests import (
    Close,
    Connect,
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


class Peer:
    """A one-connection line server in a thread: greets, echoes "250 <line>", answers
    nothing to a line starting with `stall_on` and closes on one starting with `hangup_on`."""

    def __init__(
        self,
        family: str,
        tmp_path: Path,
        tls: ssl.SSLContext | None = None,
        *,
        stall_on: bytes = b"STALL",
        hangup_on: bytes = b"HANGUP",
    ) -> None:
        self.tls = tls
        self.stall_on = stall_on
        self.hangup_on = hangup_on
        self.saw_eof = threading.Event()
        if family == "unix":
            self.listener = socket.socket(socket.AF_UNIX)
            path = str(tmp_path / "peer.sock")
            self.listener.bind(path)
            self.connect = Connect("peer", path, None, 5, family="unix")
        else:
            af, host = (
                (socket.AF_INET6, "::1") if family == "ipv6" else (socket.AF_INET, "127.0.0.1")
            )
            self.listener = socket.socket(af)
            self.listener.bind((host, 0))
            self.connect = Connect("peer", host, self.listener.getsockname()[1], 5)
        self.listener.listen(1)
        self.listener.settimeout(10)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        conn.settimeout(10)
        try:
            conn.sendall(b"220 peer\r\n")
            buffer = b""
            while True:
                while b"\n" not in buffer:
                    data = conn.recv(4096)
                    if not data:
                        self.saw_eof.set()
                        return
                    buffer += data
                line, buffer = buffer.split(b"\n", 1)
                if line.upper().startswith(self.hangup_on):
                    return
                if line.upper().startswith(self.stall_on):
                    continue
                conn.sendall(b"250 " + line.strip() + b"\r\n")
                if line.strip() == b"STARTTLS" and self.tls is not None:
                    conn = self.tls.wrap_socket(conn, server_side=True)
        except OSError:
            self.saw_eof.set()
        finally:
            conn.close()

    def close(self) -> None:
        self.thread.join(10)
        self.listener.close()


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
def make_peer(tmp_path: Path) -> Iterator[Callable[..., Peer]]:
    peers: list[Peer] = []

    def make(family: str = "ipv4", tls: ssl.SSLContext | None = None, **script: bytes) -> Peer:
        peers.append(Peer(family, tmp_path, tls, **script))
        return peers[-1]

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


def chat(peer: Peer, *lines: bytes) -> Engine:
    channel = yield peer.connect
    replies = [(yield from read_line(channel))]
    for line in lines:
        yield Send(channel, line + b"\r\n", 5)
        replies.append((yield from read_line(channel)))
    yield Close(channel)
    return replies


@pytest.mark.parametrize("family", ["ipv4", "ipv6", "unix"])
def test_exchanges_bytes_over_ipv4_ipv6_and_unix_sockets(
    adapter: str, family: str, make_peer: Callable[..., Peer]
) -> None:
    peer = make_peer(family)
    assert run_engine(adapter, chat(peer, b"EHLO x", b"NOOP")) == [
        b"220 peer\r\n",
        b"250 EHLO x\r\n",
        b"250 NOOP\r\n",
    ]
    assert peer.saw_eof.wait(5)


def test_close_request_closes_the_socket_so_the_peer_sees_eof(
    adapter: str, make_peer: Callable[..., Peer]
) -> None:
    peer = make_peer()
    run_engine(adapter, chat(peer))
    assert peer.saw_eof.wait(5)


def test_a_channel_left_open_by_the_engine_is_closed_on_return(
    adapter: str, make_peer: Callable[..., Peer]
) -> None:
    peer = make_peer()

    def forgetful() -> Engine:
        channel = yield peer.connect
        return (yield from read_line(channel))

    assert run_engine(adapter, forgetful()) == b"220 peer\r\n"
    assert peer.saw_eof.wait(5)


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
    # The reason is the OS's; the engine adds "connect to host[address]:port" itself.
    reason = failure.reason.lower()
    assert "refused" in reason or f"errno {errno.ECONNREFUSED}" in reason


def test_receive_past_its_timeout_is_io_timeout(
    adapter: str, make_peer: Callable[..., Peer]
) -> None:
    peer = make_peer()

    def engine() -> Engine:
        channel = yield peer.connect
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


def test_peer_hangup_reads_as_end_of_stream(adapter: str, make_peer: Callable[..., Peer]) -> None:
    peer = make_peer()

    def engine() -> Engine:
        channel = yield peer.connect
        yield from read_line(channel)
        yield Send(channel, b"HANGUP\r\n", 5)
        return (yield Receive(channel, 5))

    assert run_engine(adapter, engine()) == b""


def starttls(peer: Peer, parameters: TLSParameters) -> Engine:
    channel = yield peer.connect
    yield from read_line(channel)
    yield Send(channel, b"STARTTLS\r\n", 5)
    yield from read_line(channel)
    info = yield StartTLS(channel, "localhost", parameters, 5)
    yield Send(channel, b"EHLO again\r\n", 5)
    return info, (yield from read_line(channel))


def test_starttls_with_a_trusted_chain_reports_the_peer_certificate(
    adapter: str,
    make_peer: Callable[..., Peer],
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
    adapter: str, make_peer: Callable[..., Peer], server_tls: ssl.SSLContext
) -> None:
    peer = make_peer(tls=server_tls)
    info, reply = run_engine(adapter, starttls(peer, TLSParameters(False)))
    assert not info.chain_verified
    assert info.peer_certificate is None
    assert reply == b"250 EHLO again\r\n"


def test_starttls_with_an_untrusted_chain_is_tls_failed(
    adapter: str, make_peer: Callable[..., Peer], server_tls: ssl.SSLContext, tmp_path: Path
) -> None:
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    peer = make_peer(tls=server_tls)
    failure = run_engine(adapter, catching(starttls(peer, TLSParameters(True, ca_file=str(other)))))
    assert type(failure).__name__ == "TLSFailed"
    assert peer.saw_eof.wait(5)


def test_sleep_waits(adapter: str) -> None:
    def engine() -> Engine:
        started = time.monotonic()
        yield Sleep(0.1)
        return time.monotonic() - started

    assert run_engine(adapter, engine()) >= 0.09


def resolve(request: Resolve) -> Engine:
    return (yield request)


def test_address_lookup_without_a_nameserver_uses_the_system_resolver(adapter: str) -> None:
    answer = run_engine(adapter, resolve(Resolve("localhost", "A", 5)))
    assert "127.0.0.1" in answer


class FakeNameserver:
    """A UDP name server on loopback answering from a table, for dnspython."""

    ZONE = {
        ("mx.test.", "MX"): "10 mail.mx.test.",
        ("nullmx.test.", "MX"): "0 .",
        ("mail.mx.test.", "A"): "192.0.2.25",
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
    assert run_engine(adapter, resolve(request_), resolver) == answer


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
    assert "smtpproto[dns]" in failure.reason
    answer = run_engine(adapter, resolve(Resolve("localhost", "A", 5)), resolver)
    assert "127.0.0.1" in answer


def stalled(peer: Peer, reached: Callable[[], None]) -> Engine:
    channel = yield peer.connect
    yield from read_line(channel)
    yield Send(channel, b"STALL\r\n", 5)
    reached()
    yield Receive(channel, 30)
    return None


def test_cancelled_asyncio_task_closes_the_connection(make_peer: Callable[..., Peer]) -> None:
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
    assert peer.saw_eof.wait(5)
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]


def test_cancelled_trio_scope_closes_the_connection(make_peer: Callable[..., Peer]) -> None:
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
    assert peer.saw_eof.wait(5)
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


def test_starttls_and_auth(adapter: str) -> None:
    with SMTPServer() as server:  # AUTH offered only after STARTTLS, as Postfix smtpd does
        cfg = config(
            tls_security_level="encrypt",
            sasl_auth_enable="yes",
            sasl_password_maps={server.destination: f"{DEMO_USER}:{DEMO_PASSWORD}"},
        )
        report = deliver(adapter, server.destination, recipients=["alice@demo.test"], config=cfg)
    assert statuses(report) == {"alice@demo.test": "sent"}
    assert any("AUTH" in line for line in report.transcript)
    assert not any(DEMO_PASSWORD in line for line in report.transcript)


def test_lmtp_per_recipient_replies(adapter: str, tmp_path: Path) -> None:
    rejected = {"nobody@lmtp.test": "550 5.1.1 <nobody@lmtp.test>: mailbox unavailable"}
    with LMTPServer(rejected=rejected, unix_path=str(tmp_path / "lmtp")) as server:
        report = deliver(
            adapter,
            server.destination,
            recipients=["alice@lmtp.test", "nobody@lmtp.test"],
            config=config(lmtp=True),
        )
    assert statuses(report) == {"alice@lmtp.test": "sent", "nobody@lmtp.test": "bounced"}
    assert server.received[0].recipients == ["alice@lmtp.test", "nobody@lmtp.test"]


def test_server_closing_mid_transaction_defers(
    adapter: str, make_peer: Callable[..., Peer]
) -> None:
    peer = make_peer(hangup_on=b"DATA")
    destination = f"[127.0.0.1]:{peer.connect.port}"
    report = deliver(adapter, destination, recipients=["a@peer.test"], config=config())
    assert statuses(report) == {"a@peer.test": "deferred"}
    assert report.recipients[0].dsn.startswith("4.")


def test_server_that_stops_answering_times_out_and_defers(
    adapter: str, make_peer: Callable[..., Peer]
) -> None:
    peer = make_peer(stall_on=b"MAIL")
    destination = f"[127.0.0.1]:{peer.connect.port}"
    started = time.monotonic()
    report = deliver(
        adapter, destination, recipients=["a@peer.test"], config=config(mail_timeout="1s")
    )
    assert statuses(report) == {"a@peer.test": "deferred"}
    assert time.monotonic() - started < 5
    assert peer.saw_eof.wait(5)


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


def test_cancelled_asyncio_delivery_closes_the_connection(make_peer: Callable[..., Peer]) -> None:
    peer = make_peer(stall_on=b"MAIL")
    destination = f"[127.0.0.1]:{peer.connect.port}"

    async def main() -> None:
        task = asyncio.create_task(
            aio_adapter.deliver(
                destination,
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
    assert peer.saw_eof.wait(5)
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]


def test_cancelled_trio_delivery_closes_the_connection(make_peer: Callable[..., Peer]) -> None:
    peer = make_peer(stall_on=b"MAIL")
    destination = f"[127.0.0.1]:{peer.connect.port}"

    async def main() -> None:
        with trio.move_on_after(0.5) as scope:
            await trio_adapter.deliver(
                destination,
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
    assert peer.saw_eof.wait(5)
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]
