"""smtpproto against its peers, all in one run on one server, printed as ratios.

Run: ``.venv/bin/python bench/run.py`` (about five minutes on two cores; Linux; needs
Postfix's ``smtp-sink`` and ``smtp-source``, and root for the private Postfix of the flights
section). Options: ``--seconds`` per cell (default 1), ``--json FILE`` to keep every figure,
``--quick`` for a seconds-long structural run (the smoke test's), ``--repeat N`` to run every
timed cell N times (each repetition's ratios are against the peers of the same repetition; the
table shows their median and, in brackets, their range), ``--only TEXT`` to time only the
scenarios whose section and name contain one of the comma-separated TEXTs (flights and memory
are then skipped). Nothing here asserts a timing: the targets are printed as met or missed.

Peers: stdlib ``smtplib``, ``aiosmtplib`` and Postfix's C client ``smtp-source``, against
Postfix ``smtp-sink`` on 127.0.0.1. Each cell runs in a fresh interpreter (``clients.py``),
one after the other, so no two clients ever share the machine. Sections:

- ``loopback``: messages/s and the client's CPU seconds per 1000 messages; 1 KiB and 100 KiB;
  1 and 10 recipients; one connection per message (fresh) or one for all (reused).
- ``concurrent``: 8 and 64 connections at once, for the async clients and smtp-source.
- ``lmtp``: smtp-sink -L (aiosmtplib speaks no LMTP; smtplib.LMTP reads one reply after DATA).
- ``rtt20``: through ``_proxy.py`` adding 10 ms each way (20 ms round trip), 10 recipients.
- ``flights``: client flights per transaction, counted by the relay, not timed.
- ``floor-asyncio`` rows (1 KiB, 1 recipient, and the concurrent cells): ``bench/floor.py``, a
  yardstick, not a peer: the same two flights as smtpproto with nothing checked, so its CPU
  per message is what the event loop and the system calls alone cost.
  ``floor-smtpproto-asyncio`` and ``floor-smtpproto-trio`` (``bench/adapter_floor.py``): the
  same with smtpproto's asyncio or trio adapter and driver in between, for what the adapter's
  glue (and trio's event loop) adds to it.
- ``memory``: peak RSS growth delivering a 100 MiB file; bytes per idle client object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import _harness
import clients

KIB = 1024
MIB = KIB * KIB
PEERS = ("smtplib", "aiosmtplib", "smtp-source")
OURS = ("smtpproto-blocking", "smtpproto-asyncio", "smtpproto-trio")
YARDSTICK = ("floor-asyncio", "floor-smtpproto-asyncio", "floor-smtpproto-trio")
"""Not clients: the least a Python asyncio client pays per message here (bench/floor.py), and
smtpproto's asyncio and trio adapters driving an engine that checks nothing
(bench/adapter_floor.py)."""
ASYNC = ("smtpproto-asyncio", "smtpproto-trio", "aiosmtplib", "smtp-source", *YARDSTICK)
LMTP_CLIENTS = (*OURS, "smtplib", "smtp-source")
ONE_WAY_DELAY = 0.010  # seconds each way: a 20 ms round trip
TOTAL_BUDGET = 290.0  # seconds: cells that would start later are reported as skipped


@dataclass(frozen=True)
class Cell:
    """One timed delivery run: a client and a scenario."""

    section: str
    scenario: str
    client: str
    size: int
    rcpts: int
    mode: str
    concurrency: int = 1


@dataclass
class Row:
    """A cell's figures; `error` instead when it could not run."""

    cell: Cell
    messages: int = 0
    wall: float = 0.0
    cpu: float = 0.0
    error: str | None = None
    ratios: dict[str, float] = field(default_factory=dict)
    spread: dict[str, tuple[float, float]] = field(default_factory=dict)
    """With ``--repeat``: the lowest and highest of each ratio over the repetitions."""
    runs: int = 1

    @property
    def rate(self) -> float:
        """Messages per wall-clock second."""
        return self.messages / self.wall if self.wall else 0.0

    @property
    def cpu_per_1000(self) -> float:
        """Client CPU seconds per 1000 messages (= milliseconds per message)."""
        return 1000 * self.cpu / self.messages if self.messages else 0.0


@dataclass(frozen=True)
class Settings:
    """How long and how big: the full run or the smoke test's quick one."""

    seconds: float
    max_messages: int
    memory_size: int
    idle_count: int
    flight_run: int  # messages per counted run: flights/transaction = (F(2n) - F(n)) / n
    one_way_delay: float  # seconds each way in the rtt20 section
    quick: bool
    repeat: int = 1
    only: tuple[str, ...] = ()


def size_label(size: int) -> str:
    """The size as the table shows it: 1 KiB, 100 KiB, 100 MiB."""
    return f"{size // MIB} MiB" if size >= MIB else f"{size // KIB} KiB"


def scenario_label(size: int, rcpts: int, mode: str, concurrency: int = 1) -> str:
    """The table's scenario column, e.g. "1 KiB 10 rcpt reused x8"."""
    conns = f" x{concurrency}" if concurrency > 1 else ""
    return f"{size_label(size)} {rcpts} rcpt {mode}{conns}"


def cells(quick: bool) -> Iterator[tuple[str, Cell]]:
    """(server kind, cell) in run order; server kind: "smtp", "lmtp" or "rtt20"."""
    sizes = (KIB,) if quick else (KIB, 100 * KIB)
    rcpt_counts = (1, 10)
    for size in sizes:
        for rcpts in rcpt_counts[:1] if quick else rcpt_counts:
            for mode in ("reused", "fresh"):
                label = scenario_label(size, rcpts, mode)
                yardstick = YARDSTICK if size == KIB and rcpts == 1 else ()
                for client in (*OURS, *PEERS, *yardstick):
                    yield "smtp", Cell("loopback", label, client, size, rcpts, mode)
    for concurrency in (8,) if quick else (8, 64):
        for mode in ("reused", "fresh"):
            label = scenario_label(KIB, 1, mode, concurrency)
            for client in ASYNC:
                yield "smtp", Cell("concurrent", label, client, KIB, 1, mode, concurrency)
    for rcpts in rcpt_counts:
        label = scenario_label(KIB, rcpts, "reused")
        for client in LMTP_CLIENTS:
            yield "lmtp", Cell("lmtp", label, client, KIB, rcpts, "reused")
    for mode in ("reused", "fresh"):
        label = scenario_label(KIB, 10, mode)
        for client in (*OURS, *PEERS):
            yield "rtt20", Cell("rtt20", label, client, KIB, 10, mode)


def _scenario(cell: Cell, port: int, seconds: float, settings: Settings, lmtp: bool) -> Any:
    return clients.Scenario(
        port,
        cell.size,
        cell.rcpts,
        cell.mode,
        cell.concurrency,
        seconds,
        settings.max_messages,
        lmtp,
    )


def run_cell(cell: Cell, port: int, settings: Settings, lmtp: bool) -> Row:
    """Run one cell: in a child interpreter, or in this one for the quick run."""
    # The 20 ms link makes lock-step clients slow: give them enough time for several messages.
    seconds = settings.seconds * (2 if cell.section == "rtt20" else 1)
    if settings.quick:
        try:
            outcome = clients.send(cell.client, _scenario(cell, port, seconds, settings, lmtp))
        except (SystemExit, OSError) as error:
            return Row(cell, error=str(error))
        return Row(cell, outcome.messages, outcome.wall, outcome.cpu)
    args = ["send", cell.client, str(port), "--size", str(cell.size), "--rcpts", str(cell.rcpts)]
    args += ["--mode", cell.mode, "--concurrency", str(cell.concurrency)]
    args += ["--seconds", str(seconds), "--max", str(settings.max_messages)]
    if lmtp:
        args.append("--lmtp")
    result = _harness.run_child(args, timeout=max(60.0, 20 * seconds))
    if "error" in result:
        return Row(cell, error=result["error"])
    return Row(cell, result["messages"], result["wall"], result["cpu"])


def add_ratios(rows: list[Row]) -> None:
    """Per scenario: this client's messages/s over each peer's, and CPU over aiosmtplib's."""
    groups: dict[tuple[str, str], dict[str, Row]] = {}
    for row in rows:
        groups.setdefault((row.cell.section, row.cell.scenario), {})[row.cell.client] = row
    for group in groups.values():
        for row in group.values():
            if row.error or not row.messages:
                continue
            for peer in PEERS:
                other = group.get(peer)
                if other is not None and not other.error and other.rate:
                    row.ratios[f"x {peer}"] = row.rate / other.rate
            aio = group.get("aiosmtplib")
            if aio is not None and not aio.error and aio.cpu_per_1000:
                row.ratios["cpu/aio"] = row.cpu_per_1000 / aio.cpu_per_1000


def time_cells(settings: Settings, deadline: float) -> list[Row]:
    """Every timed cell, each server started once per section; `settings.repeat` times."""
    plan = [
        (kind, cell)
        for kind, cell in cells(settings.quick)
        if not settings.only
        or any(text in f"{cell.section} {cell.scenario}" for text in settings.only)
    ]
    servers: dict[str, Callable[[], AbstractContextManager[int]]] = {
        "smtp": lambda: _harness.smtp_sink(),
        "lmtp": lambda: _harness.smtp_sink(lmtp=True),
    }
    runs: list[list[Row]] = [[] for _ in range(settings.repeat)]
    for kind in ("smtp", "lmtp", "rtt20"):
        todo = [cell for k, cell in plan if k == kind]
        if not todo:
            continue
        with servers.get(kind, servers["smtp"])() as sink_port:
            for rows in runs:
                if kind == "rtt20":
                    with _harness.relay(sink_port, settings.one_way_delay) as delayed:
                        rows += _run_all(todo, delayed.port, settings, False, deadline)
                else:
                    rows += _run_all(todo, sink_port, settings, kind == "lmtp", deadline)
    for rows in runs:
        add_ratios(rows)
    return runs[0] if len(runs) == 1 else aggregate(runs)


def aggregate(runs: list[list[Row]]) -> list[Row]:
    """One row per cell from repeated runs: the figures of the repetition with the median
    rate, each ratio's median over the repetitions and its range (`Row.spread`)."""
    out = []
    for repeated in zip(*runs, strict=True):
        good = [r for r in repeated if not r.error]
        if not good:
            out.append(repeated[0])
            continue
        middle = sorted(good, key=lambda r: r.rate)[len(good) // 2]
        row = Row(middle.cell, middle.messages, middle.wall, middle.cpu, runs=len(good))
        for key in sorted({k for r in good for k in r.ratios}):
            values = sorted(r.ratios[key] for r in good if key in r.ratios)
            row.ratios[key] = statistics.median(values)
            row.spread[key] = (values[0], values[-1])
        out.append(row)
    return out


def _run_all(
    todo: list[Cell], port: int, settings: Settings, lmtp: bool, deadline: float
) -> list[Row]:
    rows = []
    for cell in todo:
        if time.monotonic() > deadline:
            rows.append(Row(cell, error="skipped: over the run's time budget"))
            continue
        rows.append(run_cell(cell, port, settings, lmtp))
        print(".", end="", file=sys.stderr, flush=True)
    return rows


# -- flights ----------------------------------------------------------------------------------


def count_flights(relay: _harness.Relay, client: str, scenario: Any) -> int:
    """Client flights (round trips) the relay saw for one in-process run of `scenario`."""
    relay.reset()
    clients.send(client, scenario, warm_up=False)
    return relay.stats()["client_flights"]


# (label, server, clients): smtp-sink with and without PIPELINING, and Postfix smtpd, which
# offers CHUNKING (smtp-sink cannot), where smtpproto runs with ClientConfig(chunking=True).
Server = Callable[[], AbstractContextManager[int]]
FLIGHT_SERVERS: tuple[tuple[str, Server, tuple[str, ...]], ...] = (
    ("PIPELINING", lambda: _harness.smtp_sink(), (*OURS, *PEERS)),
    ("none", lambda: _harness.smtp_sink(pipelining=False), ("smtpproto-blocking", "smtplib")),
    ("PIPE+CHUNK", _harness.postfix_smtpd, (*OURS, "smtplib")),
)


def flights(settings: Settings) -> list[dict[str, Any]]:
    """Flights per transaction on a reused connection, and per fresh delivery, counted."""
    results: list[dict[str, Any]] = []
    for extensions, server, chosen in FLIGHT_SERVERS:
        chunking = extensions == "PIPE+CHUNK"
        with server() as port, _harness.relay(port) as relay:
            for client, rcpts in ((c, r) for c in chosen for r in (1, 10)):
                base = clients.Scenario(
                    relay.port, KIB, rcpts, "reused", 1, 60.0, 0, False, chunking
                )
                entry: dict[str, Any] = {"client": client, "extensions": extensions}
                entry["rcpts"] = rcpts
                # smtp-source cannot send zero messages: count n and 2n and subtract the
                # session's own flights (greeting, EHLO, QUIT) out.
                n = settings.flight_run
                try:
                    once = count_flights(relay, client, replace(base, max_messages=n))
                    twice = count_flights(relay, client, replace(base, max_messages=2 * n))
                    fresh = count_flights(
                        relay, client, replace(base, mode="fresh", max_messages=n)
                    )
                except (SystemExit, OSError) as error:
                    entry["error"] = str(error)
                else:
                    entry["per_transaction"] = (twice - once) / n
                    entry["per_fresh_delivery"] = fresh / n
                results.append(entry)
    return results


# -- memory -----------------------------------------------------------------------------------


def memory(settings: Settings) -> dict[str, Any]:
    """Peak RSS growth for one large message per client; bytes per idle client object."""
    out: dict[str, Any] = {"size": settings.memory_size, "rss_growth": {}}
    block = clients.message(MIB)
    with tempfile.NamedTemporaryFile(suffix=".eml") as f:
        remaining = settings.memory_size
        while remaining > 0:
            f.write(block[:remaining])
            remaining -= len(block)
        f.flush()
        with _harness.smtp_sink() as port:
            for client in ("smtpproto-blocking", "smtplib", "aiosmtplib"):
                result = _harness.run_child(["memory", client, str(port), f.name], timeout=120)
                out["rss_growth"][client] = result.get("rss_growth", result.get("error"))
    out["idle"] = _harness.run_child(["idle", str(settings.idle_count)], timeout=60)
    return out


# -- report -----------------------------------------------------------------------------------


def _ratio(row: Row, key: str, width: int) -> str:
    if key not in row.ratios:
        return f"{'-':>{width}}"
    if key not in row.spread:
        return f"{row.ratios[key]:>{width}.2f}"
    low, high = row.spread[key]
    return f"{f'{row.ratios[key]:.2f} {low:.2f}-{high:.2f}':>{width}}"


def print_table(rows: list[Row]) -> None:
    """The one table: each cell's figures and its ratios to the peers."""
    width = 16 if any(r.spread for r in rows) else 15
    head = f"{'section':<11}{'scenario':<24}{'client':<20}{'msg/s':>9}{'CPU s/1k':>10}"
    head += "".join(f"{'x ' + p:>{width}}" for p in PEERS) + f"{'CPU/aio':>{width}}"
    print(head)
    print("-" * len(head))
    for row in rows:
        c = row.cell
        left = f"{c.section:<11}{c.scenario:<24}{c.client:<20}"
        if row.error:
            print(f"{left}  {row.error}")
            continue
        ratios = "".join(_ratio(row, f"x {p}", width) for p in PEERS)
        cpu_ratio = _ratio(row, "cpu/aio", width)
        print(f"{left}{row.rate:>9.0f}{row.cpu_per_1000:>10.2f}{ratios}{cpu_ratio}")


def _verdict(ok: bool) -> str:
    return f"{'met' if ok else 'MISSED':<7}"


def targets(rows: list[Row]) -> list[str]:
    """The targets, each with the measured figure (the median with ``--repeat``) and whether
    it is met: under concurrency 1.5x aiosmtplib's messages per second at no more CPU per
    message; 1 recipient fresh and reused, 1.2x smtplib (blocking) and 1.5x aiosmtplib
    (asyncio); and the earlier ones: 3x both peers at 20 ms RTT, CPU per message at most
    aiosmtplib's on loopback, single connection within 3x of smtp-source."""
    lines = []
    for row in rows:
        c = row.cell
        if row.error or c.client not in OURS:
            continue
        if c.section == "concurrent" and "x aiosmtplib" in row.ratios:
            ratio = row.ratios["x aiosmtplib"]
            lines.append(
                f"{_verdict(ratio >= 1.5)}concurrent {c.scenario}: {c.client} {ratio:.2f}x "
                "aiosmtplib msg/s (target >= 1.5x)"
            )
            cpu = row.ratios["cpu/aio"]
            lines.append(
                f"{_verdict(cpu <= 1)}concurrent {c.scenario}: {c.client} CPU/msg {cpu:.2f}x "
                "aiosmtplib (target <= 1x)"
            )
        one_rcpt = c.section == "loopback" and c.size == KIB and c.rcpts == 1
        goals = {"smtpproto-blocking": ("smtplib", 1.2), "smtpproto-asyncio": ("aiosmtplib", 1.5)}
        if one_rcpt and c.client in goals and f"x {goals[c.client][0]}" in row.ratios:
            peer, goal = goals[c.client]
            ratio = row.ratios[f"x {peer}"]
            lines.append(
                f"{_verdict(ratio >= goal)}{c.scenario}: {c.client} {ratio:.2f}x {peer} msg/s "
                f"(target >= {goal}x)"
            )
        if c.section == "rtt20" and c.mode == "reused":
            for peer in ("smtplib", "aiosmtplib"):
                if f"x {peer}" in row.ratios:
                    ratio = row.ratios[f"x {peer}"]
                    verdict = "met" if ratio >= 3 else "MISSED"
                    lines.append(
                        f"{verdict:<7}20 ms RTT, 10 rcpt, reused: {c.client} {ratio:.2f}x "
                        f"{peer} (target >= 3x)"
                    )
        if c.section == "loopback" and "cpu/aio" in row.ratios:
            ratio = row.ratios["cpu/aio"]
            verdict = "met" if ratio <= 1 else "MISSED"
            lines.append(
                f"{verdict:<7}CPU/msg {c.scenario}: {c.client} {ratio:.2f}x aiosmtplib "
                f"(target <= 1x)"
            )
        if c.section == "loopback" and c.mode == "reused" and "x smtp-source" in row.ratios:
            behind = 1 / row.ratios["x smtp-source"]
            verdict = "met" if behind <= 3 else "MISSED"
            lines.append(
                f"{verdict:<7}single connection {c.scenario}: smtp-source is {behind:.2f}x "
                f"{c.client} (target <= 3x)"
            )
    return lines


def print_flights(results: list[dict[str, Any]]) -> None:
    """Counted flights per transaction and per fresh delivery."""
    print(f"\n{'client':<20}{'extensions':>11}{'rcpts':>6}{'flights/txn':>13}{'fresh':>7}")
    for r in results:
        left = f"{r['client']:<20}{r['extensions']:>11}{r['rcpts']:>6}"
        if "error" in r:
            print(f"{left}  {r['error']}")
            continue
        print(f"{left}{r['per_transaction']:>13.2f}{r['per_fresh_delivery']:>7.2f}")
    print("(flights/txn: reused connection; fresh: a whole session per message)")


def print_memory(result: dict[str, Any]) -> None:
    """Peak RSS growth per client and bytes per idle object."""
    print(f"\nPeak RSS growth delivering one {size_label(result['size'])} file:")
    for client, grew in result["rss_growth"].items():
        figure = f"{grew / MIB:8.1f} MiB" if isinstance(grew, int) else str(grew)
        print(f"  {client:<20}{figure}")
    idle = result["idle"]
    if "error" in idle:
        print(f"Idle objects: {idle['error']}")
        return
    print(f"Bytes per idle object ({idle['count']} kept, tracemalloc):")
    for label, size in idle["bytes_per_object"].items():
        print(f"  {label:<32}{size:8.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="per timed cell")
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    parser.add_argument("--quick", action="store_true", help="tiny structural run (smoke test)")
    parser.add_argument("--repeat", type=int, default=1, help="run every timed cell N times")
    parser.add_argument("--only", default="", help="time only scenarios containing these")
    args = parser.parse_args()
    only = tuple(text.strip() for text in args.only.split(",") if text.strip())
    if args.quick:
        settings = Settings(0.01, 2, MIB, 10, 1, 0.001, True, args.repeat, only)
    else:
        settings = Settings(
            args.seconds, 1_000_000, 100 * MIB, 1000, 4, ONE_WAY_DELAY, False, args.repeat, only
        )
    started = time.monotonic()
    repeated = f", {settings.repeat} runs of each cell" if settings.repeat > 1 else ""
    print(
        f"Python {sys.version.split()[0]}, server Postfix smtp-sink on 127.0.0.1, "
        f"{settings.seconds:g} s per cell (rtt20: {2 * settings.seconds:g} s){repeated}",
        flush=True,
    )
    try:
        rows = time_cells(settings, started + TOTAL_BUDGET * settings.repeat)
        counted = [] if only else flights(settings)
        mem = None if only else memory(settings)
    except _harness.Unavailable as missing:
        raise SystemExit(f"cannot run: {missing}") from None
    print(file=sys.stderr)
    print_table(rows)
    if counted:
        print_flights(counted)
    if mem is not None:
        print_memory(mem)
    print("\nTargets:")
    for line in targets(rows):
        print(f"  {line}")
    print(f"\nwhole run: {time.monotonic() - started:.0f} s")
    if args.json:
        flat = []
        for r in rows:
            figures = {k: v for k, v in asdict(r).items() if k != "cell"}
            flat.append({**asdict(r.cell), **figures, "rate": r.rate})
            flat[-1]["cpu_per_1000"] = r.cpu_per_1000
        data = {"rows": flat, "flights": counted, "memory": mem}
        args.json.write_text(json.dumps(data, indent=1))


if __name__ == "__main__":
    main()
