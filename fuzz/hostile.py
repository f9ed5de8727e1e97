"""Fuzz target ``hostile``: the engine against the hostile server that knows the truth.

The server model of tests/support/hostile.py (the reply-accounting model: answers early, twice,
never, with the wrong code, stops reading, closes at any octet, and records which recipients
it truly accepted) drives one ``deliver`` per input, SMTP or LMTP, DATA or BDAT, with or
without PIPELINING, recipient batches, replies cut at random points. The checks are those of
tests/test_engine_hostile_model.py: one outcome per recipient in envelope order; ``sent``
only for a recipient the server truly accepted, unless no client can tell: an extra reply
reached the client only after it wrote its next command (`Server.in_flight`), or the
recipient's place in the reply stream holds a success the server wrote for another command
(`Server.shifted`); no line the server had to read as a command although it was none; all
sent against a server that behaved.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator
from typing import Any

from hypothesis import strategies as st
from support.hostile import BEHAVIOURS, Server, drive

from smtpproto.config import ClientConfig
from smtpproto.engine import deliver
from smtpproto.envelope import Envelope, Recipient
from smtpproto.report import DeliveryReport

from ._harness import Target, main

_MESSAGES = st.sampled_from(
    [
        b"Subject: t\r\n\r\nhello\r\n",
        b"Subject: dots\r\n\r\n.\r\n..\r\nend",
        b"Subject: big\r\n\r\n" + b"x" * 70_000 + b"\r\n",
        b"",
    ]
)
_CASE = st.fixed_dictionaries(
    {
        "lmtp": st.booleans(),
        "pipelining": st.booleans(),
        "chunking": st.booleans(),
        "size": st.integers(1, 4),
        "limit": st.sampled_from((1, 2, 50)),
        "message": _MESSAGES,
        "scripts": st.lists(st.lists(BEHAVIOURS, max_size=3), min_size=1, max_size=3),
        "chunks": st.lists(st.sampled_from((1, 3, 7, 64, 65536)), min_size=1, max_size=8),
        # chunking_one_flight_limit: never, the default, always (BDAT with MAIL and RCPT).
        "one_flight": st.sampled_from((0, 65536, 1 << 20)),
    }
)


class _Rng:
    def random(self) -> float:
        return 0.0


def _clock() -> Any:
    ticks = itertools.count()
    return lambda: 1000.0 + next(ticks) * 0.001


def run(case: dict[str, Any]) -> tuple[DeliveryReport, list[Any]]:
    """One delivery of `case` (a value of the target's strategy) against hostile servers:
    the report and every server the engine connected to."""
    servers: list[Any] = []
    scripts: Iterator[list[Any]] = iter(case["scripts"])
    sizes = itertools.cycle(case["chunks"])

    def connect() -> Any:
        server = Server(
            list(next(scripts, [])),
            lmtp=case["lmtp"],
            pipelining=case["pipelining"],
            chunking=case["chunking"],
        )
        servers.append(server)
        return server

    envelope = Envelope(
        "a@example.org", tuple(Recipient(f"r{i}@example.com") for i in range(case["size"]))
    )
    config = ClientConfig(
        helo_name="client.example",
        lmtp=case["lmtp"],
        chunking=case["chunking"],
        destination_recipient_limit=case["limit"],
        chunking_one_flight_limit=case.get("one_flight", 65536),
    )
    engine = deliver(
        "[192.0.2.1]", envelope, case["message"], config=config, clock=_clock(), rng=_Rng()
    )
    return drive(engine, connect, chunk=lambda: next(sizes)), servers


def check(case: dict[str, Any]) -> None:
    """One delivery against hostile servers; the truth checked (module docstring)."""
    report, servers = run(case)
    wanted = [f"r{i}@example.com" for i in range(case["size"])]
    assert [r.address for r in report.recipients] == wanted
    truth = set().union(*(s.accepted for s in servers))
    undetectable = any(s.in_flight for s in servers)
    shifted = set().union(*(s.shifted for s in servers))
    for result in report.recipients:
        assert result.status in ("sent", "deferred", "bounced"), result
        assert "internal error" not in result.diagnostic, result  # a bug the guard hid
        if result.status == "sent" and not undetectable and result.address not in shifted:
            assert result.address in truth, (result, [bytes(s.out) for s in servers])
    for server in servers:
        assert not server.garbage, server.garbage
    if servers and not any(s.hostile or s.refused for s in servers):
        assert all(r.status == "sent" for r in report.recipients), report


TARGET = Target(
    "hostile",
    "deliver() against the reply-accounting hostile server model that knows the truth",
    strategy=_CASE,
    check=check,
)

if __name__ == "__main__":
    sys.exit(main({TARGET.name: TARGET}, only=TARGET.name))
