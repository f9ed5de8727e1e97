"""CPU for one transaction with many recipients, half of them rejected: the cost must be linear.

Not a test: run ``python bench/bench_recipients.py [max]`` (default 16000). One ``deliver`` of
one message to N recipients in a single transaction (``destination_recipient_limit`` = N), with
PIPELINING, against the reactive server model of ``tests/support/hostile.py``, which refuses every
other RCPT with 550. For N = 1000, 2000, ... up to `max` it prints the CPU seconds (best of
three) and the CPU per recipient; a linear engine keeps the last column flat, where a
quadratic one doubles it at each step (an earlier version took 12 s for 16,000).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support.hostile import Behaviour, Server, drive

from smtpproto.config import ClientConfig
from smtpproto.engine import deliver
from smtpproto.envelope import Envelope, Recipient

RUNS = 3


def once(count: int) -> tuple[float, int]:
    """CPU seconds for one delivery to `count` recipients; and how many were sent."""
    refusals = [Behaviour("code", 550, target="RCPT", nth=n) for n in range(1, count, 2)]
    config = ClientConfig(helo_name="client.example", destination_recipient_limit=count)
    envelope = Envelope(
        "a@example.org", tuple(Recipient(f"r{n}@example.com") for n in range(count))
    )
    ticks = iter(range(10**9))
    engine = deliver(
        "[192.0.2.1]",
        envelope,
        b"Subject: many\r\n\r\nhello\r\n",
        config=config,
        clock=lambda: 1000.0 + next(ticks) * 1e-6,
        rng=_Rng(),
    )
    start = time.process_time()
    report = drive(engine, lambda: Server(list(refusals)), max_steps=10**7)
    elapsed = time.process_time() - start
    return elapsed, sum(r.status == "sent" for r in report.recipients)


class _Rng:
    def random(self) -> float:
        return 0.0


def main() -> None:
    """Print the table for 1000, 2000, ... recipients up to the argument (default 16000)."""
    top = int(sys.argv[1]) if len(sys.argv) > 1 else 16_000
    print(f"{'recipients':>10} {'CPU s':>8} {'us/recipient':>13} {'sent':>6}")
    count = 1000
    while count <= top:
        best, sent = min(once(count) for _ in range(RUNS))
        print(f"{count:>10} {best:>8.3f} {best / count * 1e6:>13.1f} {sent:>6}")
        count *= 2


if __name__ == "__main__":
    main()
