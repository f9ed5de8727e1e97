"""CPU per message of the sans-I/O engine, driven by the scripted peer of the tests.

Not a test: run ``python bench/bench_engine.py [messages] [--size OCTETS] [--profile]``.
One held session (`open_session`, then `transact` per message, then `close_session`) against
``tests/support/world.py``: a PIPELINING server whose replies are canned, so no socket, no event
loop and no server CPU is counted; only the engine, `ClientConnection`, the reply parser, the
body encoder, and the scripted driver's own small share. By default the message is the tiny
1-recipient one of ``tests/test_engine_pinned.py``; ``--size`` makes it that many octets of
CRLF text lines, like ``bench/clients.py``'s (1024 and 102400 are the issue's sizes).
``--fresh`` runs ``deliver`` per message instead, each on a new scripted connection (greeting,
EHLO, transaction, QUIT): the engine's share of a fresh delivery. Prints CPU microseconds per
message (`time.process_time`), best of three runs; ``--profile`` prints the top of a cProfile
run instead.
"""

from __future__ import annotations

import cProfile
import pstats
import sys
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support.world import ADDR, DEST, Clock, Rng, Script, run, smtp

from smtpproto.config import ClientConfig
from smtpproto.engine import close_session, deliver, open_session, transact
from smtpproto.envelope import Envelope, Recipient
from smtpproto.report import DeliveryReport
from smtpproto.requests import IORequest

# The scripted clock advances 10 ms per reading, so the default 300 s reuse time limit
# (rule 9.1) would end the held session after about 2,500 messages.
CONFIG = ClientConfig(helo_name="client.example", connection_reuse_time_limit=1e7)
ENVELOPE = Envelope("a@example.org", (Recipient("b@example.com"),))
# The replies to MAIL, RCPT and DATA in one read, then the end-of-data reply.
TRANSACTION = (b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go\r\n", b"250 2.0.0 Ok: queued\r\n")
RUNS = 3


def text(size: int) -> bytes:
    """A plain-text message of about `size` octets (at least its header), CRLF lines only."""
    head = b"From: <a@example.org>\r\nTo: <b@example.com>\r\nSubject: benchmark\r\n\r\n"
    line = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tem\r\n"
    data = head + line * (max(size - len(head), 0) // len(line) + 1)
    # Cut, then end with one CRLF and no bare CR (bench/clients.py's message() can leave one).
    return data[: max(size, len(head)) - 2].rstrip(b"\r") + b"\r\n"


def batch(count: int, size: int | None) -> Generator[IORequest, Any, list[DeliveryReport]]:
    """One session delivering `count` messages of one recipient each."""
    session = yield from open_session(DEST, config=CONFIG, clock=Clock(), rng=Rng())
    reports = []
    fixed = None if size is None else text(size)
    for n in range(count):
        message = b"Subject: %d\r\n\r\nhello\r\n" % n if fixed is None else fixed
        reports.append((yield from transact(session, ENVELOPE, message)))
    yield from close_session(session)
    return reports


def fresh(count: int, size: int | None) -> Generator[IORequest, Any, list[DeliveryReport]]:
    """`count` deliveries of one recipient each, each on a new connection."""
    reports = []
    fixed = None if size is None else text(size)
    clock, rng = Clock(), Rng()
    for n in range(count):
        message = b"Subject: %d\r\n\r\nhello\r\n" % n if fixed is None else fixed
        report = yield from deliver(DEST, ENVELOPE, message, config=CONFIG, clock=clock, rng=rng)
        reports.append(report)
    return reports


def once(count: int, size: int | None = None, new: bool = False) -> float:
    """CPU seconds for `count` messages (one session, or `new` ones); every one must be sent."""
    if new:
        script = Script(servers={ADDR: [smtp(*TRANSACTION) for _ in range(count)]})
        engine = fresh(count, size)
    else:
        script = Script(servers={ADDR: [smtp(*TRANSACTION * count)]})
        engine = batch(count, size)
    start = time.process_time()
    reports, _ = run(engine, script, max_steps=20 * count + 100)
    elapsed = time.process_time() - start
    sent = sum(1 for r in reports for o in r.recipients if o.status == "sent")
    if sent != count:
        raise SystemExit(f"only {sent} of {count} messages were sent")
    return elapsed


def main() -> None:
    argv = sys.argv[1:]
    size = None
    if "--size" in argv:
        at = argv.index("--size")
        size = int(argv[at + 1])
        del argv[at : at + 2]
    args = [a for a in argv if not a.startswith("--")]
    new = "--fresh" in argv
    count = int(args[0]) if args else 5000
    once(min(count, 200), size, new)  # warm-up: imports, caches
    if "--profile" in argv:
        profiler = cProfile.Profile()
        profiler.runcall(once, count, size, new)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
        return
    best = min(once(count, size, new) for _ in range(RUNS))
    version = sys.version.split()[0]
    what = "tiny" if size is None else f"{size}-octet"
    how = "a fresh delivery each" if new else "held session"
    print(
        f"{count} {what} messages, 1 recipient, {how}, best of {RUNS}, "
        f"{sys.implementation.name} {version}: {best / count * 1e6:.1f} us CPU per message"
    )


if __name__ == "__main__":
    main()
