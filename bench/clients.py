"""One benchmark cell: one client, one scenario, in a fresh interpreter; prints one JSON line.

``bench/run.py`` starts this once per cell so that every client begins with the same empty
process (no warm caches or garbage from the previous client) and a hung run can be killed.
Usable by hand too::

    python bench/clients.py send CLIENT PORT --size 1024 --rcpts 1 --mode reused --seconds 1
    python bench/clients.py memory CLIENT PORT FILE
    python bench/clients.py idle 1000

CLIENT is one of ``CLIENTS``. ``send`` runs until `--seconds` have passed or `--max` messages
were sent, whichever comes first, and reports messages, wall seconds and this process's CPU
seconds (the server and ``smtp-source`` run in other processes and are not counted, except
``smtp-source``'s own CPU, taken from its rusage). Every message must be accepted for every
recipient, or the cell fails: a benchmark of failing deliveries measures nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import smtplib
import socket
import subprocess
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# Imported before any timer starts: import time is not per-message cost.
import adapter_floor
import aiosmtplib
import floor
import trio
from smtpproto.adapters import asyncio as smtpproto_asyncio
from smtpproto.adapters import blocking
from smtpproto.adapters import trio as smtpproto_trio

from smtpproto import ClientConfig
from smtpproto.commands import Ehlo
from smtpproto.connection import ClientConnection

HOST = "127.0.0.1"
SENDER = "sender@example.test"
HELO = "client.example"
CLIENTS = (
    "smtpproto-blocking",
    "smtpproto-asyncio",
    "smtpproto-trio",
    "smtplib",
    "aiosmtplib",
    "smtp-source",
    "floor-asyncio",
    "floor-smtpproto-asyncio",
    "floor-smtpproto-trio",
)
ASYNC_CLIENTS = frozenset(
    {
        "smtpproto-asyncio",
        "smtpproto-trio",
        "aiosmtplib",
        "floor-asyncio",
        "floor-smtpproto-asyncio",
        "floor-smtpproto-trio",
    }
)
SBIN_PATH = os.pathsep.join(("/usr/sbin", "/sbin", "/usr/bin", "/usr/lib/postfix/sbin"))
SOCKET_TIMEOUT = 30.0
# smtp-source is timed over a fixed count: calibrated with this many, then scaled to --seconds.
SOURCE_PROBE = 50
SOURCE_MAX = 200_000


@dataclass(frozen=True)
class Scenario:
    """What one ``send`` cell delivers and how."""

    port: int
    size: int
    rcpts: int
    mode: str  # "fresh": one connection per message; "reused": one connection per worker
    concurrency: int
    seconds: float
    max_messages: int
    lmtp: bool
    chunking: bool = False  # ClientConfig(chunking=True): BDAT where the server offers it

    @property
    def recipients(self) -> list[str]:
        """The envelope recipients: rcpt0..rcptN-1 in the test domain."""
        return [f"rcpt{n}@example.test" for n in range(self.rcpts)]


@dataclass
class Outcome:
    """A ``send`` cell's result."""

    messages: int
    wall: float
    cpu: float


def message(size: int) -> bytes:
    """A plain-text message of exactly `size` octets (at least its header), CRLF lines."""
    head = (
        f"From: <{SENDER}>\r\nTo: <rcpt0@example.test>\r\nSubject: benchmark\r\n"
        "Date: Wed, 25 Nov 2026 09:00:00 +0000\r\nMessage-ID: <bench@client.example>\r\n\r\n"
    ).encode()
    line = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tem\r\n"
    body = line * ((max(size - len(head), 0)) // len(line) + 1)
    data = (head + body)[: max(size, len(head))]
    if not data.endswith(b"\r\n"):
        data = data[:-2] + b"\r\n"
        if data.endswith(b"\r\r\n"):
            # The cut fell just after a CR: a stray CR would send clients that normalize line
            # ends down their slow path and make the comparison unfair to them.
            data = data[:-3] + b"x\r\n"
    return data


def _config(s: Scenario) -> ClientConfig:
    # Plaintext like the peers: Postfix smtpd (the PIPE+CHUNK flights) offers STARTTLS, and a
    # handshake's own round trips are not the transaction's.
    return ClientConfig(helo_name=HELO, lmtp=s.lmtp, chunking=s.chunking, tls_security_level="none")


def _check_report(report: Any) -> None:
    bad = [r for r in report.recipients if r.status != "sent"]
    if bad:
        raise SystemExit(f"delivery failed: {bad[0].diagnostic}")


# -- blocking clients -------------------------------------------------------------------------


@contextlib.contextmanager
def _in_step() -> Iterator[None]:
    """smtplib.LMTP reads one reply after DATA; the others answer the commands that follow."""
    try:
        yield
    except smtplib.SMTPResponseException as error:
        raise SystemExit(f"out of step: {error.smtp_code} reply to the wrong command") from None


def _blocking_sender(name: str, s: Scenario) -> tuple[Callable[[], None], Callable[[], None]]:
    """(send one message, finish) for a blocking client in `s.mode`."""
    data = message(s.size)
    recipients = s.recipients
    if name == "smtpproto-blocking":
        config = _config(s)
        destination = f"inet:{HOST}:{s.port}" if s.lmtp else f"[{HOST}]:{s.port}"
        if s.mode == "fresh":

            def fresh() -> None:
                _check_report(
                    blocking.deliver(
                        destination,
                        sender=SENDER,
                        recipients=recipients,
                        message=data,
                        config=config,
                    )
                )

            return fresh, lambda: None
        manager = blocking.connect(destination, config=config)
        session = manager.__enter__()

        def reused() -> None:
            _check_report(session.send(sender=SENDER, recipients=recipients, message=data))

        return reused, lambda: manager.__exit__(None, None, None)

    factory = smtplib.LMTP if s.lmtp else smtplib.SMTP

    def connect() -> smtplib.SMTP:
        client = factory(HOST, s.port, local_hostname=HELO, timeout=SOCKET_TIMEOUT)
        client.ehlo_or_helo_if_needed()
        return client

    def send(client: smtplib.SMTP) -> None:
        with _in_step():
            refused = client.sendmail(SENDER, recipients, data)
        if refused:
            raise SystemExit(f"delivery failed: {refused}")

    if s.mode == "fresh":

        def fresh_smtplib() -> None:
            with _in_step(), connect() as client:
                send(client)

        return fresh_smtplib, lambda: None
    client = connect()

    def finish() -> None:
        client.quit()

    return lambda: send(client), finish


def run_blocking(name: str, s: Scenario) -> Outcome:
    """Time a blocking client (smtpproto's adapter or smtplib) on one connection."""
    if s.concurrency != 1:
        raise SystemExit(f"{name}: blocking clients run one connection")
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    send, finish = _blocking_sender(name, s)
    deadline = start_wall + s.seconds
    count = 0
    # At least one message, however short the budget: a cell without one measures nothing.
    while count < s.max_messages and (count == 0 or time.perf_counter() < deadline):
        send()
        count += 1
    finish()
    return Outcome(count, time.perf_counter() - start_wall, time.process_time() - start_cpu)


# -- async clients ----------------------------------------------------------------------------


async def _async_worker(name: str, s: Scenario, budget: list[int], deadline: float) -> None:
    """Deliver until the shared `budget` is spent or `deadline` passes (wall clock)."""
    data = message(s.size)
    recipients = s.recipients

    def more() -> bool:
        started = budget[0] < s.max_messages
        if budget[0] <= 0 or (started and time.perf_counter() >= deadline):
            return False
        budget[0] -= 1
        return True

    if name == "aiosmtplib":

        def client() -> Any:
            return aiosmtplib.SMTP(
                hostname=HOST,
                port=s.port,
                local_hostname=HELO,
                timeout=SOCKET_TIMEOUT,
                start_tls=False,
            )

        async def one(smtp: Any) -> None:
            errors, _ = await smtp.sendmail(SENDER, recipients, data)
            if errors:
                raise SystemExit(f"delivery failed: {errors}")

        if s.mode == "fresh":
            while more():
                smtp = client()
                await smtp.connect()
                await one(smtp)
                await smtp.quit()
            return
        smtp = client()
        await smtp.connect()
        while more():
            await one(smtp)
        await smtp.quit()
        return

    if name in ("floor-smtpproto-asyncio", "floor-smtpproto-trio"):
        engine = adapter_floor.session(
            HOST, s.port, HELO, SENDER, recipients, data, more, s.mode == "fresh"
        )
        await adapter_floor.run(engine, trio=name == "floor-smtpproto-trio")
        return
    if name == "floor-asyncio":
        envelope, content = floor.flights(SENDER, recipients, data)
        if s.mode == "fresh":
            while more():
                bare = await floor.open_floor(HOST, s.port, HELO)
                await floor.send(bare, envelope, content, len(recipients))
                await floor.close(bare)
            return
        bare = await floor.open_floor(HOST, s.port, HELO)
        while more():
            await floor.send(bare, envelope, content, len(recipients))
        await floor.close(bare)
        return

    adapter: Any = smtpproto_asyncio if name == "smtpproto-asyncio" else smtpproto_trio
    config = _config(s)
    destination = f"inet:{HOST}:{s.port}" if s.lmtp else f"[{HOST}]:{s.port}"
    if s.mode == "fresh":
        while more():
            _check_report(
                await adapter.deliver(
                    destination, sender=SENDER, recipients=recipients, message=data, config=config
                )
            )
        return
    async with adapter.connect(destination, config=config) as session:
        while more():
            _check_report(await session.send(sender=SENDER, recipients=recipients, message=data))


def run_async(name: str, s: Scenario) -> Outcome:
    """Time an async client with `s.concurrency` workers sharing one message budget."""
    budget = [s.max_messages]

    async def main(gather: Callable[..., Awaitable[Any]]) -> None:
        deadline = time.perf_counter() + s.seconds
        await gather(*(_async_worker(name, s, budget, deadline) for _ in range(s.concurrency)))

    start_wall, start_cpu = time.perf_counter(), time.process_time()
    if name in ("smtpproto-trio", "floor-smtpproto-trio"):

        async def trio_gather(*workers: Awaitable[None]) -> None:
            async def wait(worker: Awaitable[None]) -> None:
                await worker

            async with trio.open_nursery() as nursery:
                for worker in workers:
                    nursery.start_soon(wait, worker)

        trio.run(main, trio_gather)
    else:

        async def asyncio_gather(*workers: Awaitable[None]) -> None:
            await asyncio.gather(*workers)

        asyncio.run(main(asyncio_gather))
    messages = s.max_messages - budget[0]
    return Outcome(messages, time.perf_counter() - start_wall, time.process_time() - start_cpu)


# -- Postfix smtp-source ----------------------------------------------------------------------


def _source_once(s: Scenario, count: int) -> Outcome:
    binary = shutil.which("smtp-source", path=SBIN_PATH)
    if binary is None:
        raise SystemExit("smtp-source not found: apt-get install postfix")
    # -l is the payload after smtp-source's own header lines (From, To, Date, Message-Id).
    payload = max(s.size - 160, 0)
    argv = [binary, "-m", str(count), "-r", str(s.rcpts), "-l", str(payload)]
    argv += ["-s", str(s.concurrency), "-M", HELO, "-f", SENDER, "-t", "rcpt@example.test"]
    if s.mode == "reused":
        argv.append("-d")
    if s.lmtp:
        argv.append("-L")
    argv.append(f"{HOST}:{s.port}")
    start = time.perf_counter()
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    # Bounded: ten times the budget and at least 30 s, then the child is killed.
    limit = start + max(30.0, 10 * s.seconds)
    while True:
        # wait4, not Popen.wait: its rusage is smtp-source's CPU time alone.
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            break
        if time.perf_counter() > limit:
            process.kill()
            process.wait()
            raise SystemExit("smtp-source did not finish in time")
        time.sleep(0.001)
    wall = time.perf_counter() - start
    if process.returncode != 0:
        raise SystemExit(f"smtp-source failed with status {process.returncode}")
    return Outcome(count, wall, usage.ru_utime + usage.ru_stime)


def run_source(s: Scenario) -> Outcome:
    """Time smtp-source: a probe run, then one scaled to last about `s.seconds`."""
    probe = min(SOURCE_PROBE, s.max_messages)
    first = _source_once(s, probe)
    if first.wall >= s.seconds / 2 or probe >= s.max_messages:
        return first
    target = int(probe * s.seconds / max(first.wall, 1e-3))
    return _source_once(s, max(probe, min(target, s.max_messages, SOURCE_MAX)))


def send(name: str, s: Scenario, *, warm_up: bool = True) -> Outcome:
    """Run one ``send`` cell in this process, after one untimed delivery to warm it up.

    The warm-up takes one-time costs (lazy imports, compiled patterns, first-use caches) out
    of the figures, which would otherwise weigh on a slow client's few messages far more than
    on a fast client's thousands.
    """
    if name == "smtp-source":
        return run_source(s)
    if warm_up and s.max_messages > 0:
        single = Scenario(s.port, s.size, s.rcpts, "fresh", 1, s.seconds, 1, s.lmtp, s.chunking)
        send(name, single, warm_up=False)
    if name in ASYNC_CLIENTS:
        return run_async(name, s)
    return run_blocking(name, s)


# -- memory ------------------------------------------------------------------------------------


def _hwm_kib() -> int:
    # VmHWM: this process's peak resident set so far (Linux).
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))


def memory(name: str, port: int, path: Path) -> dict[str, Any]:
    """Deliver the file at `path` once; peak RSS growth over the idle, imported client."""
    s = Scenario(port, 0, 1, "fresh", 1, 0.0, 1, False)
    if name == "smtpproto-blocking":
        config = ClientConfig(helo_name=HELO)
        before = _hwm_kib()
        with path.open("rb") as source:
            _check_report(
                blocking.deliver(
                    f"[{HOST}]:{port}",
                    sender=SENDER,
                    recipients=s.recipients,
                    message=source,
                    config=config,
                )
            )
    elif name == "smtplib":
        before = _hwm_kib()
        # smtplib takes the message as one str or bytes: the whole file is read first.
        with smtplib.SMTP(HOST, port, local_hostname=HELO, timeout=SOCKET_TIMEOUT) as client:
            refused = client.sendmail(SENDER, s.recipients, path.read_bytes())
        if refused:
            raise SystemExit(f"delivery failed: {refused}")
    elif name == "aiosmtplib":
        before = _hwm_kib()

        async def go() -> None:
            errors, _ = await aiosmtplib.send(
                path.read_bytes(),
                sender=SENDER,
                recipients=s.recipients,
                hostname=HOST,
                port=port,
                local_hostname=HELO,
                start_tls=False,
                timeout=SOCKET_TIMEOUT,
            )
            if errors:
                raise SystemExit(f"delivery failed: {errors}")

        asyncio.run(go())
    else:
        raise SystemExit(f"memory: no such client {name}")
    after = _hwm_kib()
    return {"size": path.stat().st_size, "rss_growth": (after - before) * 1024, "hwm": after * 1024}


def idle(count: int) -> dict[str, Any]:
    """Bytes per idle client object (tracemalloc), ours after greeting and EHLO."""
    ehlo_reply = (
        b"220 sink.example.test ESMTP\r\n250-sink.example.test\r\n250-PIPELINING\r\n"
        b"250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250-DSN\r\n250 \r\n"
    )

    def ready() -> ClientConnection:
        connection = ClientConnection()
        connection.receive_data(ehlo_reply[:29])
        connection.next_event()
        connection.send(Ehlo(HELO))
        connection.receive_data(ehlo_reply[29:])
        connection.next_event()
        return connection

    factories: dict[str, Callable[[], object]] = {
        "ClientConnection()": ClientConnection,
        "ClientConnection after EHLO": ready,
        "smtplib.SMTP() unconnected": smtplib.SMTP,
        "aiosmtplib.SMTP() unconnected": aiosmtplib.SMTP,
    }
    result = {}
    for label, factory in factories.items():
        factory()  # first use: module-level caches are not per-object cost
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        objects = [factory() for _ in range(count)]
        used = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.stop()
        del objects
        result[label] = used / count
    return {"count": count, "bytes_per_object": result}


def _patch_nodelay() -> None:
    """Make socket.create_connection set TCP_NODELAY, as the asyncio and trio adapters do.

    Not part of any figure in run.py's table: it shows what the blocking adapter would gain
    from the fix proposed in bench/README.md, without touching the adapter.
    """
    create = socket.create_connection

    def create_nodelay(*args: Any, **kwargs: Any) -> socket.socket:
        sock = create(*args, **kwargs)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    socket.create_connection = create_nodelay


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    p_send = sub.add_parser("send")
    p_send.add_argument("client", choices=CLIENTS)
    p_send.add_argument("port", type=int)
    p_send.add_argument("--size", type=int, default=1024)
    p_send.add_argument("--rcpts", type=int, default=1)
    p_send.add_argument("--mode", choices=("fresh", "reused"), default="reused")
    p_send.add_argument("--concurrency", type=int, default=1)
    p_send.add_argument("--seconds", type=float, default=1.0)
    p_send.add_argument("--max", type=int, default=1_000_000)
    p_send.add_argument("--lmtp", action="store_true")
    p_send.add_argument("--chunking", action="store_true", help="smtpproto: BDAT if offered")
    p_send.add_argument(
        "--tcp-nodelay",
        action="store_true",
        help="diagnosis only: set TCP_NODELAY on blocking sockets (the proposed adapter fix)",
    )
    p_mem = sub.add_parser("memory")
    p_mem.add_argument("client", choices=("smtpproto-blocking", "smtplib", "aiosmtplib"))
    p_mem.add_argument("port", type=int)
    p_mem.add_argument("file", type=Path)
    p_idle = sub.add_parser("idle")
    p_idle.add_argument("count", type=int)
    args = parser.parse_args()
    out: dict[str, Any]
    if args.what == "send":
        if args.tcp_nodelay:
            _patch_nodelay()
        scenario = Scenario(
            args.port,
            args.size,
            args.rcpts,
            args.mode,
            args.concurrency,
            args.seconds,
            args.max,
            args.lmtp,
            args.chunking,
        )
        out = asdict(send(args.client, scenario))
    elif args.what == "memory":
        out = memory(args.client, args.port, args.file)
    else:
        out = idle(args.count)
    out["maxrss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps(out))


if __name__ == "__main__":
    main()
