"""Driving the adapters' Mailers from synchronous code: many sends through one Mailer, and a
static DNS zone for its next hops (tests, interop tests and the benchmark share them).

`send_all` runs the sends at once (threads for the blocking adapter, tasks for asyncio and
trio) or one after the other, through one ``Mailer`` of the adapter named, within a deadline.
`zone` gives that adapter a resolver for domains whose one MX host is at a given address.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import trio

from smtpproto.requests import DNSError, MXRecord, Resolve

__all__ = ["ADAPTERS", "AsyncZone", "BlockingZone", "Zone", "mailer_class", "send_all", "zone"]

ADAPTERS = ("blocking", "asyncio", "trio")
"""The adapters that have a Mailer, by the names the tests use."""


def mailer_class(adapter: str) -> Any:
    """The ``Mailer`` class of `adapter`."""
    if adapter == "blocking":
        from smtpproto.adapters import blocking

        return blocking.Mailer
    if adapter == "asyncio":
        from smtpproto.adapters import asyncio as asyncio_adapter

        return asyncio_adapter.Mailer
    from smtpproto.adapters import trio as trio_adapter

    return trio_adapter.Mailer


def send_all(
    adapter: str,
    config: Any,
    sends: Sequence[Mapping[str, Any]],
    *,
    resolver: Any = None,
    at_once: bool = True,
    threads: int = 8,
    deadline: float = 60.0,
    inside: Callable[[], None] | None = None,
) -> list[Any]:
    """Each of `sends` (keyword arguments of ``Mailer.send``) through one Mailer: at once
    (`threads` threads for the blocking adapter, a task each otherwise) or one after the
    other. `inside` runs, in a thread, after the sends and before the Mailer closes. The
    reports in order; the whole run fails after `deadline` seconds (a hang, not a pace)."""
    cls = mailer_class(adapter)
    if adapter == "blocking":
        with (
            cls(config, resolver=resolver) as mailer,
            ThreadPoolExecutor(threads if at_once else 1) as pool,
        ):
            reports = [
                job.result(deadline) for job in [pool.submit(mailer.send, **s) for s in sends]
            ]
            if inside is not None:
                inside()
            return reports

    async def run() -> list[Any]:
        reports: dict[int, Any] = {}
        async with cls(config, resolver=resolver) as mailer:

            async def one(n: int) -> None:
                reports[n] = await mailer.send(**sends[n])

            if not at_once:
                for n in range(len(sends)):
                    await one(n)
            elif adapter == "asyncio":
                async with asyncio.TaskGroup() as group:
                    for n in range(len(sends)):
                        group.create_task(one(n))
            else:
                async with trio.open_nursery() as nursery:
                    for n in range(len(sends)):
                        nursery.start_soon(one, n)
            if inside is not None:
                if adapter == "asyncio":
                    await asyncio.to_thread(inside)
                else:
                    await trio.to_thread.run_sync(inside)
        return [reports[n] for n in range(len(sends))]

    if adapter == "asyncio":

        async def bounded() -> list[Any]:
            async with asyncio.timeout(deadline):
                return await run()

        return asyncio.run(bounded())

    async def bounded_trio() -> list[Any]:
        with trio.fail_after(deadline):
            return await run()

    return trio.run(bounded_trio)


class Zone:
    """DNS where each domain has one MX host, ``mx.<domain>``, at the address given."""

    def __init__(self, domains: Mapping[str, str]) -> None:
        self.domains = dict(domains)

    def answer(self, request: Resolve) -> tuple[Any, ...]:
        """MX, A and AAAA answers of the zone; NXDOMAIN for any other name."""
        for domain, address in self.domains.items():
            if (request.name, request.rrtype) == (domain, "MX"):
                return (MXRecord(10, f"mx.{domain}"),)
            if request.name == f"mx.{domain}":
                family = "AAAA" if ":" in address else "A"
                return (address,) if request.rrtype == family else ()
        raise DNSError("nxdomain", f"{request.name}: no such domain")


class BlockingZone(Zone):
    """`Zone` as the blocking adapter's resolver."""

    def resolve(self, request: Resolve) -> tuple[Any, ...]:
        """`Zone.answer`."""
        return self.answer(request)


class AsyncZone(Zone):
    """`Zone` as the asyncio and trio adapters' resolver."""

    async def resolve(self, request: Resolve) -> tuple[Any, ...]:
        """`Zone.answer`."""
        return self.answer(request)


def zone(adapter: str, domains: Mapping[str, str]) -> Zone:
    """A resolver for `adapter` answering for `domains` (domain -> its MX host's address)."""
    return BlockingZone(domains) if adapter == "blocking" else AsyncZone(domains)
