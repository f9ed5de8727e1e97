"""A loopback TCP relay that counts client flights and can add a fixed one-way delay.

Run by the benchmarks as a separate process (its CPU time never counts against a client):
``python bench/_proxy.py TARGET_PORT DELAY_SECONDS [HOSTS]``. It listens on 127.0.0.1, or on
each loopback address of the comma-separated HOSTS at one port (a server per destination, as
far as a client can tell), and prints that port; then it answers lines on stdin: ``reset``
zeroes the counters, ``stats`` prints them as one JSON line; end of stdin stops it.

A *flight* is a burst of client bytes after the server last spoke (or at the start): the number
of times the client sent something after waiting for the server, i.e. its round trips. A client
that pipelines MAIL, RCPT and DATA writes them in one burst; a lock-step client makes one flight
per command. Each direction's bytes are held ``DELAY_SECONDS`` before being passed on, in order,
which stands in for ``tc netem delay`` (RTT = 2 x delay) where the kernel lacks sch_netem.
"""

from __future__ import annotations

import asyncio
import collections
import json
import sys
from dataclasses import asdict, dataclass, field

HOST = "127.0.0.1"
READ_SIZE = 65536
QUIET_POLLS = 500  # x 10 ms


@dataclass
class Counters:
    """What the relay saw since the last reset."""

    connections: int = 0
    client_flights: int = 0
    client_bytes: int = 0
    server_bytes: int = 0
    active: int = 0
    by_host: dict[str, dict[str, int]] = field(default_factory=dict)
    """Listening address -> its connections, how many are open, and the most open at once."""

    def opened(self, host: str) -> None:
        """A client connected to `host`."""
        self.connections += 1
        self.active += 1
        mine = self.by_host.setdefault(host, {"connections": 0, "active": 0, "most_active": 0})
        mine["connections"] += 1
        mine["active"] += 1
        mine["most_active"] = max(mine["most_active"], mine["active"])

    def closed(self, host: str) -> None:
        """A connection to `host` ended."""
        self.active -= 1
        self.by_host[host]["active"] -= 1


class Relay:
    """One accepted connection and its upstream, with a last-speaker flag for flights."""

    def __init__(self, counters: Counters, delay: float) -> None:
        self.counters = counters
        self.delay = delay
        self.client_spoke_last = False

    async def pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, from_client: bool
    ) -> None:
        loop = asyncio.get_running_loop()
        queue: collections.deque[tuple[float, bytes]] = collections.deque()
        ready = asyncio.Event()

        async def deliver() -> None:
            # One writer per direction keeps the bytes in order whatever the timer resolution.
            while True:
                await ready.wait()
                while queue:
                    due, data = queue.popleft()
                    wait = due - loop.time()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    if not data:
                        if writer.can_write_eof():
                            writer.write_eof()
                        return
                    writer.write(data)
                    await writer.drain()
                ready.clear()

        sender = asyncio.create_task(deliver())
        try:
            while True:
                data = await reader.read(READ_SIZE)
                if from_client and data:
                    if not self.client_spoke_last:
                        self.counters.client_flights += 1
                    self.client_spoke_last = True
                    self.counters.client_bytes += len(data)
                elif data:
                    self.client_spoke_last = False
                    self.counters.server_bytes += len(data)
                queue.append((loop.time() + self.delay, data))
                ready.set()
                if not data:
                    break
            await sender
        except (ConnectionError, OSError):
            sender.cancel()
            writer.transport.abort()


async def serve(target_port: int, delay: float, hosts: list[str]) -> None:
    counters = Counters()

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host = writer.get_extra_info("sockname")[0]
        counters.opened(host)
        try:
            up_reader, up_writer = await asyncio.open_connection(HOST, target_port)
        except OSError:
            writer.transport.abort()
            counters.closed(host)
            return
        relay = Relay(counters, delay)
        await asyncio.gather(
            relay.pump(reader, up_writer, True),
            relay.pump(up_reader, writer, False),
            return_exceptions=True,
        )
        writer.transport.abort()
        up_writer.transport.abort()
        counters.closed(host)

    async def quiet() -> None:
        # A client may close right after its last write (QUIT without waiting for the reply):
        # wait, bounded, until every relay has passed on its last bytes before reading counters.
        for _ in range(QUIET_POLLS):
            if not counters.active:
                return
            await asyncio.sleep(0.01)

    server = await asyncio.start_server(accept, hosts[0], 0, backlog=512)
    port = server.sockets[0].getsockname()[1]
    servers = [server]
    for host in hosts[1:]:
        servers.append(await asyncio.start_server(accept, host, port, backlog=512))
    print(port, flush=True)
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    while line := await stdin.readline():
        command = line.decode().strip()
        await quiet()
        if command == "reset":
            counters.connections = counters.client_flights = 0
            counters.client_bytes = counters.server_bytes = 0
            counters.by_host = {
                h: {"connections": 0, "active": c["active"], "most_active": c["active"]}
                for h, c in counters.by_host.items()
            }
            print("ok", flush=True)
        elif command == "stats":
            print(json.dumps(asdict(counters)), flush=True)
    for one in servers:
        one.close()


if __name__ == "__main__":
    listen = sys.argv[3].split(",") if len(sys.argv) > 3 else [HOST]
    asyncio.run(serve(int(sys.argv[1]), float(sys.argv[2]), listen))
