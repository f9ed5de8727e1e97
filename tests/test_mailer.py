"""The adapters' Mailer over real loopback sockets: shared between tasks (threads for the
blocking adapter), grouping by next hop, connection limits, idle expiry, back-off.

The servers are `support.sockets.LoopbackServer`s (correct Postfix-like servers); the Mailer
against the real Postfix smtpd is tests/interop/test_mailer_interop.py.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest
import trio
from smtpproto.adapters import asyncio as aio_adapter
from smtpproto.adapters import blocking
from smtpproto.adapters import trio as trio_adapter
from support.mailers import ADAPTERS, mailer_class, send_all, zone
from support.model import Canonical, Faults, ServerModel
from support.sockets import LoopbackServer, free_port

from smtpproto._errors import LocalProtocolError
from smtpproto.config import ClientConfig

MESSAGE = b"Subject: volume\r\n\r\nHello.\r\n"


def config(**options: Any) -> ClientConfig:
    return ClientConfig(helo_name="client.example", tls_security_level="none", **options)


@pytest.fixture(params=ADAPTERS)
def adapter(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer(Canonical()) as peer:
        yield peer


def received(peer: LoopbackServer) -> list[str]:
    return sorted(r for c in peer.connections for m in c.model.messages for r in m.recipients)


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.mark.parameter("transport_destination_concurrency_limit")
def test_many_concurrent_sends_share_the_destination_limit_of_connections(
    adapter: str, server: LoopbackServer
) -> None:
    sends = [
        {
            "sender": "a@example.org",
            "recipients": [f"r{n}@example.com"],
            "message": MESSAGE,
            "destination": server.destination,
        }
        for n in range(30)
    ]
    reports = send_all(adapter, config(destination_concurrency_limit=2), sends)
    assert [r.recipients[0].status for r in reports] == ["sent"] * 30
    assert received(server) == sorted(f"r{n}@example.com" for n in range(30))
    assert 1 <= len(server.connections) <= 2
    # Closing the Mailer said QUIT on each kept connection.
    assert all(c.model.verbs[-1] == "QUIT" for c in server.wait_done(len(server.connections)))
    assert not server.violations


def test_one_send_goes_to_each_next_hop_and_reports_in_envelope_order(adapter: str) -> None:
    port = free_port("127.0.0.1")
    domains = {f"d{n}.example": f"127.0.0.{n}" for n in (1, 2, 3)}
    peers = [LoopbackServer(Canonical(), host=address, port=port) for address in domains.values()]
    try:
        recipients = [f"{user}@d{n}.example" for user in ("a", "b") for n in (3, 1, 2)]
        (report,) = send_all(
            adapter,
            config(tcp_port=port),
            [{"sender": "s@example.org", "recipients": recipients, "message": MESSAGE}],
            resolver=zone(adapter, domains),
        )
        assert [r.address for r in report.recipients] == recipients
        assert [r.status for r in report.recipients] == ["sent"] * 6
        for n, peer in enumerate(peers, 1):
            assert received(peer) == [f"a@d{n}.example", f"b@d{n}.example"]
            assert len(peer.connections) == 1
            assert report.recipients[recipients.index(f"a@d{n}.example")].relay == (
                f"mx.d{n}.example[127.0.0.{n}]:{port}"
            )
    finally:
        for peer in peers:
            peer.close()


@dataclass
class Overlap(Canonical):
    """A correct server that counts the transactions in progress on all its connections,
    from MAIL to the end of data, and the most at once (for several servers, share one)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    now: int = 0
    most: int = 0

    def reply(self, server: ServerModel, verb: str, line: bytes) -> bytes:
        if verb == "MAIL":
            with self.lock:
                self.now += 1
                self.most = max(self.most, self.now)
        return super().reply(server, verb, line)

    def end_of_data(self, server: ServerModel) -> list[tuple[bytes, list[str]]]:
        with self.lock:
            self.now -= 1
        return super().end_of_data(server)


@pytest.mark.parameter("default_process_limit")
def test_the_process_limit_bounds_the_deliveries_in_progress_at_once(adapter: str) -> None:
    # Three next hops, twelve messages at once, two deliveries at a time in all. A server
    # ends a transaction before its reply goes out, so it never sees more than the client had.
    port = free_port("127.0.0.1")
    domains = {f"d{n}.example": f"127.0.0.{n}" for n in (1, 2, 3)}
    overlap = Overlap()
    peers = [LoopbackServer(overlap, host=address, port=port) for address in domains.values()]
    try:
        sends = [
            {
                "sender": "s@example.org",
                "recipients": [f"r{n}@d{n % 3 + 1}.example"],
                "message": MESSAGE,
            }
            for n in range(12)
        ]
        reports = send_all(
            adapter, config(tcp_port=port, process_limit=2), sends, resolver=zone(adapter, domains)
        )
        served = [c for p in peers for c in p.wait_done(len(p.connections))]
    finally:
        for peer in peers:
            peer.close()
    assert [r.recipients[0].status for r in reports] == ["sent"] * 12
    assert 1 <= overlap.most <= 2
    assert all(c.model.verbs[-1] == "QUIT" for c in served)


@pytest.mark.parameter("smtp_connection_cache_time_limit")
def test_an_idle_connection_gets_quit_after_the_cache_time_limit(
    adapter: str, server: LoopbackServer
) -> None:
    send = {
        "sender": "a@example.org",
        "recipients": ["r@example.com"],
        "message": MESSAGE,
        "destination": server.destination,
    }

    def closed_while_open() -> None:
        # Inside the Mailer: the background task says QUIT once the session idled 0.2 s.
        assert wait_for(lambda: bool(server.connections) and server.connections[0].done.is_set())

    send_all(adapter, config(connection_cache_time_limit=0.2), [send], inside=closed_while_open)
    (served,) = server.connections
    assert served.model.verbs == ["EHLO", "MAIL", "RCPT", "DATA", "QUIT"]


@pytest.mark.parameter("minimal_backoff_time")
def test_a_destination_that_says_421_is_backed_off_without_new_connections(adapter: str) -> None:
    with LoopbackServer(Canonical(banner=b"421 4.7.0 too busy, slow down\r\n")) as peer:
        sends = [
            {
                "sender": "a@example.org",
                "recipients": [f"r{n}@example.com"],
                "message": MESSAGE,
                "destination": peer.destination,
            }
            for n in range(3)
        ]
        reports = send_all(adapter, config(minimal_backoff_time=300), sends, at_once=False)
        assert len(peer.connections) == 1
    first, *later = [r.recipients[0] for r in reports]
    assert (first.status, first.dsn) == ("deferred", "4.7.0")
    for result in later:
        assert (result.status, result.dsn) == ("deferred", "4.7.0")
        assert result.diagnostic.startswith("delivery temporarily suspended: ")


def test_the_blocking_mailer_is_shared_by_many_threads(server: LoopbackServer) -> None:
    def work(mailer: blocking.Mailer, thread: int) -> list[str]:
        return [
            mailer.send(
                sender="a@example.org",
                recipients=[f"t{thread}m{n}@example.com"],
                message=MESSAGE,
                destination=server.destination,
            )
            .recipients[0]
            .status
            for n in range(5)
        ]

    with (
        blocking.Mailer(config(destination_concurrency_limit=3)) as mailer,
        ThreadPoolExecutor(12) as pool,
    ):
        statuses = [s for batch in pool.map(lambda t: work(mailer, t), range(12)) for s in batch]
    assert statuses == ["sent"] * 60
    assert len(received(server)) == 60 and len(server.connections) <= 3


def test_send_outside_the_context_is_refused(adapter: str) -> None:
    cls = mailer_class(adapter)
    mailer = cls(config())
    arguments = {"sender": "a@example.org", "recipients": ["b@example.com"], "message": MESSAGE}
    if adapter == "blocking":
        with pytest.raises(LocalProtocolError, match="Mailer"):
            mailer.send(**arguments)
        return

    async def outside() -> None:
        with pytest.raises(LocalProtocolError, match="Mailer"):
            await mailer.send(**arguments)

    if adapter == "asyncio":
        asyncio.run(outside())
    else:
        trio.run(outside)


def test_a_bad_recipient_is_refused_before_anything_is_sent(
    adapter: str, server: LoopbackServer
) -> None:
    sends = [
        {
            "sender": "a@example.org",
            "recipients": ["ok@example.com", "no-domain"],
            "message": MESSAGE,
        }
    ]
    with pytest.raises(LocalProtocolError, match=r"recipients\[1\]"):
        send_all(adapter, config(), sends, at_once=False)
    assert server.connections == []


@pytest.mark.parametrize("adapter", ["asyncio", "trio"])
def test_a_cancelled_send_gives_back_its_connection_and_its_place(adapter: str) -> None:
    # One connection allowed: one send holds it (the server is slow), one waits; both are
    # cancelled. The next send must get a connection, which it could not if either kept what
    # it had (engine.abandon_delivery).
    with LoopbackServer(Canonical(), faults=Faults(delay=0.05)) as peer:
        arguments = {
            "sender": "a@example.org",
            "recipients": ["r@example.com"],
            "message": MESSAGE,
            "destination": peer.destination,
        }
        cfg = config(destination_concurrency_limit=1)

        async def in_asyncio() -> str:
            async with aio_adapter.Mailer(cfg) as mailer:
                first = asyncio.create_task(mailer.send(**arguments))
                second = asyncio.create_task(mailer.send(**arguments))
                await asyncio.sleep(0.1)  # the first is talking to the server by now
                for task in (first, second):
                    task.cancel()
                await asyncio.gather(first, second, return_exceptions=True)
                async with asyncio.timeout(20):
                    report = await mailer.send(**arguments)
            return report.recipients[0].status

        async def in_trio() -> str:
            async with trio_adapter.Mailer(cfg) as mailer:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(lambda: mailer.send(**arguments))
                    nursery.start_soon(lambda: mailer.send(**arguments))
                    await trio.sleep(0.1)
                    nursery.cancel_scope.cancel()
                with trio.fail_after(20):
                    report = await mailer.send(**arguments)
            return report.recipients[0].status

        status = asyncio.run(in_asyncio()) if adapter == "asyncio" else trio.run(in_trio)
    assert status == "sent"
