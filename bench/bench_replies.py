"""Reply-parsing throughput: smtpproto's ReplyParser against smtplib and aiosmtplib.

Not a test: run ``python bench/bench_replies.py [count]``. Each input is read once (one run)
by three readers, without a network:

- stdlib ``smtplib.SMTP.getreply()`` reading an ``io.BytesIO`` set as the unconnected client's
  ``file`` (the buffered reader it normally gets from ``socket.makefile``);
- aiosmtplib's ``SMTPProtocol._read_response_from_buffer()``, the parser behind
  ``read_response()``, with 64 KiB appended to its buffer at a time as ``data_received`` does;
- ``smtpproto.replies.ReplyParser``, fed the same 64 KiB chunks and drained after each.

All three must find the same reply codes; the table gives seconds and how many times faster
ReplyParser is. ReplyParser does more per reply than the others (byte-wise code checks, limits,
code consistency, UTF-8 decoding into a frozen `Reply`). For one-line replies that object is
the floor: creating 100k `Reply` objects and draining them through ``next_reply()``, with no
parsing at all, takes about as long as smtplib's whole ``getreply()`` loop.
"""

from __future__ import annotations

import asyncio
import io
import smtplib
import sys
import time
from collections.abc import Callable

from aiosmtplib.protocol import SMTPProtocol

from smtpproto.replies import ReplyParser

CHUNK = 65536

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


def read_smtplib(data: bytes, count: int) -> list[int]:
    client = smtplib.SMTP()
    client.file = io.BytesIO(data)
    return [client.getreply()[0] for _ in range(count)]


def read_aiosmtplib(data: bytes, count: int) -> list[int]:
    loop = asyncio.new_event_loop()
    try:
        protocol = SMTPProtocol(loop=loop)
        codes = []
        for start in range(0, len(data), CHUNK):
            protocol._buffer.extend(data[start : start + CHUNK])
            while (response := protocol._read_response_from_buffer()) is not None:
                codes.append(response.code)
        return codes
    finally:
        loop.close()


def read_smtpproto(data: bytes, count: int) -> list[int]:
    parser = ReplyParser()
    codes = []
    for start in range(0, len(data), CHUNK):
        parser.feed(data[start : start + CHUNK])
        while (reply := parser.next_reply()) is not None:
            codes.append(reply.code)
    return codes


def timed(
    reader: Callable[[bytes, int], list[int]], data: bytes, count: int
) -> tuple[float, list[int]]:
    start = time.perf_counter()
    codes = reader(data, count)
    return time.perf_counter() - start, codes


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    inputs = [
        ("multi-line EHLO (10 lines)", EHLO, 1),
        ("single-line 250", SINGLE, 1),
        ("session mix (9 replies)", SESSION, 9),
    ]
    version = sys.version.split()[0]
    print(f"{count} replies per input, one run each, {sys.implementation.name} {version}")
    header = f"{'input':<28}{'smtplib s':>11}{'aiosmtplib s':>14}{'smtpproto s':>13}"
    print(header + f"{'x smtplib':>11}{'x aiosmtplib':>14}")
    for name, unit, per_unit in inputs:
        data = unit * (count // per_unit)
        replies = count // per_unit * per_unit
        results = [
            timed(reader, data, replies)
            for reader in (read_smtplib, read_aiosmtplib, read_smtpproto)
        ]
        (t_std, c_std), (t_aio, c_aio), (t_ours, c_ours) = results
        if not c_std == c_aio == c_ours or len(c_ours) != replies:
            raise SystemExit(f"{name}: the readers disagree on the reply codes")
        print(
            f"{name:<28}{t_std:>11.3f}{t_aio:>14.3f}{t_ours:>13.3f}"
            f"{t_std / t_ours:>10.2f}x{t_aio / t_ours:>13.2f}x"
        )


if __name__ == "__main__":
    main()
