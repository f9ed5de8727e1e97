"""Sending at volume: 1,000 messages over 10 destinations with a 20 ms round trip.

Run: ``.venv/bin/python bench/bench_mailer.py`` (about two minutes, most of it the one-at-a-time
cell; ``--sequential 200`` times that cell over its first 200 messages); ``--per-destination
2`` for a sender that keeps to two connections per destination; ``--quick`` for a
seconds-long structural run (the smoke test's); ``--json FILE`` keeps every figure.

Postfix's ``smtp-sink`` stands for every server; the delay relay ``_proxy.py`` listens on
127.0.0.1 to 127.0.0.10 at one port, each address the MX host of one domain (``d1.bench`` to
``d10.bench``, from a static resolver), and holds each direction's bytes 10 ms. The relay
counts each destination's connections and the most it had open at once. Cells, each in a
fresh interpreter (``bench_mailer.py cell ...``), one after the other:

- ``mailer-blocking``, ``mailer-asyncio``, ``mailer-trio``: one Mailer, every message sent at
  once (tasks; 100 threads for the blocking adapter), Postfix's default limits: 20
  connections per destination (``--per-destination``), 100 in use in all, connections kept
  2 s;
- ``deliver-sequential``: the blocking adapter's ``deliver()``, one message after the other;
- ``aiosmtplib-per-message``: aiosmtplib 5, a client (a connection) per message, all at once
  within the same limits (20 or ``--per-destination`` per destination, 100 in all).

Each message has one recipient; every one must be accepted, or the cell fails. Nothing here
asserts a timing: docs/performance.md holds the figures and their ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent / "tests"))

SENDER = "sender@example.test"
HELO = "client.example"
ONE_WAY_DELAY = 0.010
CELLS = (
    "mailer-blocking",
    "mailer-asyncio",
    "mailer-trio",
    "deliver-sequential",
    "aiosmtplib-per-message",
)
PER_DESTINATION = 20  # default_destination_concurrency_limit
TOTAL = 100  # default_process_limit


WARM = {"warm.bench": "127.0.0.250"}
"""The warm-up's own destination, outside the figures and the relay's counts."""


def domains(count: int) -> dict[str, str]:
    """Each destination's domain and the loopback address its MX host has."""
    return {f"d{n}.bench": f"127.0.0.{n}" for n in range(1, count + 1)}


def message(n: int, domain: str) -> bytes:
    """Message `n`: about 1 KiB of text, CRLF lines."""
    head = (
        f"From: <{SENDER}>\r\nTo: <user{n}@{domain}>\r\nSubject: volume {n}\r\n"
        f"Message-ID: <{n}@{HELO}>\r\n\r\n"
    )
    line = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tem\r\n"
    return (head + line * 12).encode()


@dataclass
class Outcome:
    """One cell's figures."""

    messages: int
    wall: float
    cpu: float
    relay: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Messages per wall-clock second."""
        return self.messages / self.wall if self.wall else 0.0


def _check(report: Any) -> None:
    bad = [r for r in report.recipients if r.status != "sent"]
    if bad:
        raise SystemExit(f"delivery failed: {bad[0].address}: {bad[0].diagnostic}")


def cell(name: str, port: int, count: int, destinations: int, per_destination: int) -> Outcome:
    """Run one cell in this process: `count` messages, round robin over the destinations, at
    most `per_destination` connections to each."""
    # Imported before the clock starts: import time is not per-message cost.
    import aiosmtplib  # noqa: F401
    from smtpproto.adapters import blocking
    from support.mailers import mailer_class, send_all, zone

    from smtpproto import ClientConfig

    for adapter in ("blocking", "asyncio", "trio"):
        mailer_class(adapter)

    hops = domains(destinations)
    names = list(hops)
    jobs = [(n, names[n % len(names)]) for n in range(count)]
    config = ClientConfig(
        helo_name=HELO,
        tls_security_level="none",
        tcp_port=port,
        destination_concurrency_limit=per_destination,
    )
    _warm_up(name, port, config)
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    if name.startswith("mailer-"):
        adapter = name.removeprefix("mailer-")
        sends = [
            {"sender": SENDER, "recipients": [f"user{n}@{d}"], "message": message(n, d)}
            for n, d in jobs
        ]
        reports = send_all(
            adapter, config, sends, resolver=zone(adapter, hops), threads=TOTAL, deadline=600
        )
        for report in reports:
            _check(report)
    elif name == "deliver-sequential":
        for n, d in jobs:
            _check(
                blocking.deliver(
                    f"[{hops[d]}]:{port}",
                    sender=SENDER,
                    recipients=[f"user{n}@{d}"],
                    message=message(n, d),
                    config=config,
                )
            )
    elif name == "aiosmtplib-per-message":
        asyncio.run(_aiosmtplib(port, jobs, hops, per_destination))
    else:
        raise SystemExit(f"no such cell: {name}")
    return Outcome(count, time.perf_counter() - start_wall, time.process_time() - start_cpu)


def _warm_up(name: str, port: int, config: Any) -> None:
    """One untimed delivery the way the cell delivers, through its own Mailer or client, to
    the warm-up destination, so that one-time costs (lazy imports, first-use caches) stay
    out of the figures."""
    first = next(iter(WARM))
    if name.startswith("mailer-"):
        from support.mailers import send_all, zone

        adapter = name.removeprefix("mailer-")
        send = {"sender": SENDER, "recipients": [f"warm@{first}"], "message": message(0, first)}
        send_all(adapter, config, [send], resolver=zone(adapter, WARM))
    elif name == "aiosmtplib-per-message":
        asyncio.run(_aiosmtplib(port, [(0, first)], WARM, 1))
    else:
        from smtpproto.adapters import blocking

        report = blocking.deliver(
            f"[{WARM[first]}]:{port}",
            sender=SENDER,
            recipients=[f"warm@{first}"],
            message=message(0, first),
            config=config,
        )
        _check(report)


async def _aiosmtplib(
    port: int, jobs: list[tuple[int, str]], hops: dict[str, str], per_destination: int
) -> None:
    import aiosmtplib

    everyone = asyncio.Semaphore(TOTAL)
    each = {d: asyncio.Semaphore(per_destination) for d in hops}

    async def one(n: int, domain: str) -> None:
        async with everyone, each[domain]:
            errors, _ = await aiosmtplib.send(
                message(n, domain),
                sender=SENDER,
                recipients=[f"user{n}@{domain}"],
                hostname=hops[domain],
                port=port,
                local_hostname=HELO,
                start_tls=False,
                timeout=60,
            )
        if errors:
            raise SystemExit(f"delivery failed: {errors}")

    async with asyncio.TaskGroup() as group:
        for n, domain in jobs:
            group.create_task(one(n, domain))


def _run_cell(
    name: str, port: int, count: int, destinations: int, per_destination: int, timeout: float
) -> Outcome:
    import subprocess

    command = [sys.executable, __file__, "cell", name, str(port), str(count), str(destinations)]
    command.append(str(per_destination))
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise SystemExit(f"{name}: exit {done.returncode}: {tail}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    return Outcome(figures["messages"], figures["wall"], figures["cpu"])


def measure(
    count: int,
    destinations: int,
    sequential: int,
    cells: tuple[str, ...],
    delay: float,
    per_destination: int = PER_DESTINATION,
) -> dict[str, Outcome]:
    """Every cell against one smtp-sink behind one delaying relay; the relay's counts too."""
    import _harness

    hosts = (*domains(destinations).values(), *WARM.values())
    results: dict[str, Outcome] = {}
    with _harness.smtp_sink() as sink, _harness.relay(sink, delay, hosts) as relay:
        for name in cells:
            relay.reset()
            n = sequential if name == "deliver-sequential" else count
            outcome = _run_cell(name, relay.port, n, destinations, per_destination, timeout=900)
            # The relay has passed on everything once its connections are gone (bounded).
            counted = {
                h: {"connections": c["connections"], "most_active": c["most_active"]}
                for h, c in sorted(relay.stats()["by_host"].items())
                if h not in WARM.values()
            }
            outcome.relay = {
                "connections": sum(c["connections"] for c in counted.values()),
                "by_host": counted,
            }
            results[name] = outcome
            print(f"  {name}: {outcome.rate:.1f} msg/s", file=sys.stderr, flush=True)
    return results


def table(results: dict[str, Outcome]) -> str:
    """The figures as a Markdown table, with the Mailers' ratios to the other two."""
    base_sequential = results.get("deliver-sequential")
    base_aio = results.get("aiosmtplib-per-message")
    lines = [
        "| cell | messages | wall s | msg/s | CPU s | connections | most per destination "
        "| x deliver() one at a time | x aiosmtplib per message |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, o in results.items():
        hosts = o.relay.get("by_host", {})
        most = max((h["most_active"] for h in hosts.values()), default=0)
        seq = f"{o.rate / base_sequential.rate:.1f}" if base_sequential else "—"
        aio = f"{o.rate / base_aio.rate:.2f}" if base_aio else "—"
        lines.append(
            f"| {name} | {o.messages} | {o.wall:.2f} | {o.rate:.1f} | {o.cpu:.2f} "
            f"| {o.relay.get('connections', 0)} | {most} | {seq} | {aio} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    sub = parser.add_subparsers(dest="what")
    one = sub.add_parser("cell", help="run one cell in this interpreter (JSON out)")
    one.add_argument("name", choices=CELLS)
    one.add_argument("port", type=int)
    one.add_argument("count", type=int)
    one.add_argument("destinations", type=int)
    one.add_argument("per_destination", type=int)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--destinations", type=int, default=10)
    parser.add_argument("--sequential", type=int, default=1000, help="messages of that cell")
    parser.add_argument(
        "--per-destination",
        type=int,
        default=PER_DESTINATION,
        help="connections to one destination at most (Mailers and aiosmtplib alike)",
    )
    parser.add_argument("--quick", action="store_true", help="20 messages, 2 destinations")
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args()
    if args.what == "cell":
        outcome = cell(args.name, args.port, args.count, args.destinations, args.per_destination)
        print(json.dumps(asdict(outcome)))
        return
    if args.quick:
        args.messages, args.destinations, args.sequential = 20, 2, 4
    results = measure(
        args.messages,
        args.destinations,
        args.sequential,
        CELLS,
        ONE_WAY_DELAY,
        args.per_destination,
    )
    print(table(results))
    if args.json is not None:
        args.json.write_text(json.dumps({k: asdict(v) for k, v in results.items()}, indent=1))


if __name__ == "__main__":
    main()
