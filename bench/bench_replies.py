"""Reply-parsing throughput: smtpproto's reply parsers against smtplib and aiosmtplib.

Not a test: run ``python bench/bench_replies.py [count] [--chunk OCTETS] [--repeat N]``. Each
input is read by four readers, without a network, best of ``--repeat`` runs (CPU time):

- stdlib ``smtplib.SMTP.getreply()`` reading an ``io.BytesIO`` set as the unconnected client's
  ``file`` (the buffered reader it normally gets from ``socket.makefile``);
- aiosmtplib's ``SMTPProtocol._read_response_from_buffer()``, the parser behind
  ``read_response()``, with ``--chunk`` octets (64 KiB) appended to its buffer at a time as
  ``data_received`` does;
- ``smtpproto._replyfast.FastReplyParser``, the parser `ClientConnection` uses, fed the same
  chunks and drained after each;
- ``smtpproto.replies.ReplyParser``, the reference parser it must agree with, the same way.

All four must find the same reply codes; the table gives seconds and how many times faster
FastReplyParser is than each other reader. It does more per reply than smtplib and aiosmtplib
(byte-wise code checks, limits, code consistency, UTF-8 decoding into a frozen `Reply`). The
last two inputs take the paths Postfix 3.7 compatibility added (rules 1.1 and 1.2): a run of
CRs before every LF, which the fast path strips, and over-long lines cut to 2048 octets, which
it leaves to the reference code, line by line: what a server that always sends them costs.
"""

from __future__ import annotations

import asyncio
import io
import smtplib
import sys
import time
from collections.abc import Callable

from aiosmtplib.protocol import SMTPProtocol

from smtpproto._replyfast import FastReplyParser
from smtpproto.replies import ReplyParser

CHUNK = 65536
REPEAT = 3

EHLO = (
    b"250-mx.example.com Hello client.example [192.0.2.1]\r\n250-PIPELINING\r\n"
    b"250-SIZE 10240000\r\n250-VRFY\r\n250-ETRN\r\n250-STARTTLS\r\n250-ENHANCEDSTATUSCODES\r\n"
    b"250-8BITMIME\r\n250-DSN\r\n250 SMTPUTF8\r\n"
)
SINGLE = b"250 2.1.5 Ok\r\n"
SESSION = (
    b"220 mx.example.com ESMTP Postfix\r\n" + EHLO + b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
    b"250 2.1.5 Ok\r\n550 5.1.1 <nobody@example.com>: Recipient address rejected\r\n"
    b"354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 Ok: queued as 4ABCD1234\r\n"
    b"221 2.0.0 Bye\r\n"
)
# Over-long: 3000 octets, cut to their first 2048 (rule 1.2). Ten times fewer of them.
LONG = b"250 2.0.0 " + b"x" * 2988 + b"\r\n"


def read_smtplib(data: bytes, count: int, chunk: int) -> list[int]:
    client = smtplib.SMTP()
    client.file = io.BytesIO(data)
    return [client.getreply()[0] for _ in range(count)]


def read_aiosmtplib(data: bytes, count: int, chunk: int) -> list[int]:
    loop = asyncio.new_event_loop()
    try:
        protocol = SMTPProtocol(loop=loop)
        codes = []
        for start in range(0, len(data), chunk):
            protocol._buffer.extend(data[start : start + chunk])
            while (response := protocol._read_response_from_buffer()) is not None:
                codes.append(response.code)
        return codes
    finally:
        loop.close()


def reader(parser: type[ReplyParser]) -> Callable[[bytes, int, int], list[int]]:
    """A reader for one of smtpproto's parsers."""

    def read(data: bytes, count: int, chunk: int) -> list[int]:
        instance = parser()
        codes = []
        for start in range(0, len(data), chunk):
            instance.feed(data[start : start + chunk])
            while (reply := instance.next_reply()) is not None:
                codes.append(reply.code)
        return codes

    return read


def timed(
    read: Callable[[bytes, int, int], list[int]], data: bytes, count: int, chunk: int, repeat: int
) -> tuple[float, list[int]]:
    best = float("inf")
    codes: list[int] = []
    for _ in range(repeat):
        start = time.process_time()
        codes = read(data, count, chunk)
        best = min(best, time.process_time() - start)
    return best, codes


def _option(argv: list[str], name: str, default: int) -> int:
    if name not in argv:
        return default
    at = argv.index(name)
    value = int(argv[at + 1])
    del argv[at : at + 2]
    return value


def main() -> None:
    argv = sys.argv[1:]
    chunk = _option(argv, "--chunk", CHUNK)
    repeat = _option(argv, "--repeat", REPEAT)
    count = int(argv[0]) if argv else 100_000
    inputs = [
        ("multi-line EHLO (10 lines)", EHLO, 1),
        ("single-line 250", SINGLE, 1),
        ("session mix (9 replies)", SESSION, 9),
        ("session mix, CR CR LF", SESSION.replace(b"\r\n", b"\r\r\n"), 9),
        ("3000-octet line, cut", LONG, 1),
    ]
    readers = (read_smtplib, read_aiosmtplib, reader(FastReplyParser), reader(ReplyParser))
    version = sys.version.split()[0]
    print(
        f"{count} replies per input, {chunk}-octet chunks, best of {repeat} (CPU s), "
        f"{sys.implementation.name} {version}"
    )
    header = f"{'input':<28}{'smtplib':>9}{'aiosmtplib':>11}{'fast':>8}{'reference':>10}"
    print(header + f"{'x smtplib':>11}{'x aiosmtplib':>14}{'x reference':>13}")
    for name, unit, per_unit in inputs:
        units = count // per_unit if unit is not LONG else count // 10
        data = unit * units
        replies = units * per_unit
        results = [timed(read, data, replies, chunk, repeat) for read in readers]
        (t_std, c_std), (t_aio, c_aio), (t_fast, c_fast), (t_ref, c_ref) = results
        if not c_std == c_aio == c_fast == c_ref or len(c_fast) != replies:
            raise SystemExit(f"{name}: the readers disagree on the reply codes")
        print(
            f"{name:<28}{t_std:>9.3f}{t_aio:>11.3f}{t_fast:>8.3f}{t_ref:>10.3f}"
            f"{t_std / t_fast:>10.2f}x{t_aio / t_fast:>13.2f}x{t_ref / t_fast:>12.2f}x"
        )


if __name__ == "__main__":
    main()
