"""The least an asyncio client written in Python can spend per message here: a yardstick.

Not a mail client: it writes bytes built once, MAIL/RCPT/DATA in one flight and the content
with its ``.`` in the next (the same two flights smtpproto sends to smtp-sink), and reads the
replies only far enough to count them and check their first digit. No parsing, no envelope
or content checks, no reply accounting, no report. ``bench/run.py`` times it beside the other
clients as ``floor-asyncio`` (its figures are never a peer in the ratios): whatever it costs
per message is what the event loop and the system calls cost, so a full client's CPU per
message can only be that plus its own work.
"""

from __future__ import annotations

import asyncio

from smtpproto.body import iter_wire


class FloorClient(asyncio.Protocol):
    """One connection: greeting, EHLO, then `send` per message, QUIT at `close`."""

    def __init__(self) -> None:
        self._buffer = b""
        self._want = 0
        self._replies: list[bytes] = []
        self._waiter: asyncio.Future[list[bytes]] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while self._want and b"\n" in self._buffer:
            line, _, self._buffer = self._buffer.partition(b"\n")
            if line[3:4] == b"-":
                continue  # a continuation line: the reply goes on
            self._replies.append(line)
            self._want -= 1
        if not self._want and self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(self._replies)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ConnectionError("the server closed the connection"))

    async def replies(self, count: int, data: bytes = b"") -> list[bytes]:
        """Write `data` (if any), then wait for `count` replies."""
        assert self.transport is not None
        self._want, self._replies = count, []
        self._waiter = asyncio.get_running_loop().create_future()
        if data:
            self.transport.write(data)
        self.data_received(b"")
        return await asyncio.wait_for(self._waiter, 30.0)


def _expect(replies: list[bytes], first_digits: bytes) -> None:
    for reply, digit in zip(replies, first_digits, strict=True):
        if reply[:1] != bytes((digit,)):
            raise SystemExit(f"floor client: unexpected reply {reply!r}")


async def open_floor(host: str, port: int, helo: str) -> FloorClient:
    """Connect, read the greeting, say EHLO."""
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(FloorClient, host, port)
    _expect(await client.replies(1), b"2")
    _expect(await client.replies(1, f"EHLO {helo}\r\n".encode()), b"2")
    return client


def flights(sender: str, recipients: list[str], message: bytes) -> tuple[bytes, bytes]:
    """The two flights of one message: envelope with DATA, then the dot-stuffed content."""
    envelope = f"MAIL FROM:<{sender}>\r\n" + "".join(f"RCPT TO:<{r}>\r\n" for r in recipients)
    # Built once per cell by the library's own encoder, so the content is byte for byte what
    # smtpproto sends (dot-stuffed, CRLF, the final dot), and its cost is no message's.
    content = b"".join(iter_wire(message))
    return (envelope + "DATA\r\n").encode(), content


async def send(client: FloorClient, envelope: bytes, content: bytes, rcpts: int) -> None:
    """One message on an open connection."""
    _expect(await client.replies(rcpts + 2, envelope), b"2" + b"2" * rcpts + b"3")
    _expect(await client.replies(1, content), b"2")


async def close(client: FloorClient) -> None:
    """QUIT and close."""
    _expect(await client.replies(1, b"QUIT\r\n"), b"2")
    assert client.transport is not None
    client.transport.close()
