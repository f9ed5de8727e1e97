"""A minimal loopback SMTP server that advertises PIPELINING and CHUNKING, for counting flights.

smtp-sink cannot advertise CHUNKING (DESIGN.md), so the PIPELINING + CHUNKING round-trip count
runs against this instead: ``python bench/_chunking_server.py`` prints its port and serves until
stdin closes. It accepts every sender and recipient, takes DATA and BDAT bodies, and keeps
nothing. It is a counterpart for counting, not a server to time anything against.
"""

from __future__ import annotations

import asyncio
import sys

HOST = "127.0.0.1"
EHLO_REPLY = (
    b"250-bench.example.test\r\n250-PIPELINING\r\n250-CHUNKING\r\n250-8BITMIME\r\n"
    b"250 ENHANCEDSTATUSCODES\r\n"
)
REPLIES = {
    b"MAIL": b"250 2.1.0 Ok\r\n",
    b"RCPT": b"250 2.1.5 Ok\r\n",
    b"RSET": b"250 2.0.0 Ok\r\n",
    b"NOOP": b"250 2.0.0 Ok\r\n",
}
MAX_LINE = 4096


async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """One client: replies in command order, so pipelined groups get their replies in order."""
    writer.write(b"220 bench.example.test ESMTP\r\n")
    try:
        while line := await reader.readuntil(b"\n"):
            if len(line) > MAX_LINE:
                break
            verb, _, rest = line.strip().partition(b" ")
            verb = verb.upper()
            if verb in (b"EHLO", b"LHLO"):
                writer.write(EHLO_REPLY)
            elif verb == b"QUIT":
                writer.write(b"221 2.0.0 Bye\r\n")
                await writer.drain()
                break
            elif verb == b"DATA":
                writer.write(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                await writer.drain()
                await reader.readuntil(b"\r\n.\r\n")
                writer.write(b"250 2.0.0 Ok: queued\r\n")
            elif verb == b"BDAT":
                size = int(rest.split()[0])
                await reader.readexactly(size)
                writer.write(b"250 2.0.0 Ok: %d octets\r\n" % size)
            else:
                writer.write(REPLIES.get(verb, b"502 5.5.2 Error: command not recognized\r\n"))
            await writer.drain()
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
        pass
    finally:
        writer.transport.abort()


async def main() -> None:
    """Serve on a free loopback port until stdin reaches end of file."""
    server = await asyncio.start_server(session, HOST, 0, limit=2**24)
    print(server.sockets[0].getsockname()[1], flush=True)
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    await stdin.read()
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
