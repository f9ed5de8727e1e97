"""Fuzz target ``faults``: correct dialogues with one fault injected at every point in turn.

For each scenario (SMTP or LMTP, with or without PIPELINING, TLS level none/may/encrypt, one
or two MX hosts, recipient batches, accepted/rejected/deferred recipients, 8-bit and
dot-heavy messages) a clean run is made against the correct server of ``tests/support/model.py`` and
checked against the expected statuses. Then, enumerating every case in turn:

- at every I/O request of the clean run, the failures the adapter contract allows for it
  (DNS failure, connection refused, reset, timeout, end of stream, TLS handshake failure);
- at every octet offset of what the servers sent: end of stream there, or a reset;
- at every octet offset: the same bytes split there (the report must not change).

Every run must end (bounded requests) with exactly one status per recipient, ``sent`` only
for recipients a server accepted at the end of data, every connection closed, no I/O on a
closed connection or after a failed handshake, no plaintext MAIL at level ``encrypt``, no
exception, and no SASL secret in the transcript. Cases of all scenarios are interleaved, so
any prefix of the enumeration (the smoke test's) covers every scenario.
"""

from __future__ import annotations

import functools
import itertools
import sys
from collections.abc import Iterator

from support.model import Canonical, Violation
from support.world import Outcome

from smtpproto.requests import (
    Connect,
    ConnectFailed,
    ConnectionLost,
    DNSError,
    IOFailure,
    IORequest,
    IOTimeout,
    Receive,
    Resolve,
    Send,
    StartTLS,
    TLSFailed,
)

from ._harness import Case, Target, main
from ._world import Setup, check_report, make_config, run_setup

_PLAIN = b"Subject: dots\r\n\r\nhello\r\n.\r\n..x\r\n.\r\nend without a line end"
_EIGHTBIT = (
    b"Subject: t\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n\r\ncaf\xc3\xa9\r\n"
)
_LONG = b"Subject: long\r\n\r\n" + b"x" * 1500 + b"\r\n"


def scenarios() -> list[tuple[str, Setup, Canonical]]:
    """The correct dialogues faults are injected into: (name, request, server)."""
    out: list[tuple[str, Setup, Canonical]] = []
    base = ("PIPELINING", "8BITMIME", "DSN", "SIZE 1000000")
    for lmtp, pipelining, tls in itertools.product(
        (False, True), (True, False), ("none", "may", "encrypt")
    ):
        keywords = tuple(k for k in base if pipelining or k != "PIPELINING")
        if tls != "none":
            keywords += ("STARTTLS",)
        recipients: tuple[str, ...] = ("a@example.com", "reject@example.com", "defer@example.com")
        if lmtp:
            recipients += ("ldefer@example.com",)
        name = f"{'lmtp' if lmtp else 'smtp'}-{'pipe' if pipelining else 'nopipe'}-{tls}"
        destination = "inet:[192.0.2.1]:24" if lmtp else "example.com"
        config = make_config(lmtp=lmtp, tls=tls)
        out.append((name, Setup(destination, recipients, _PLAIN, config), Canonical(keywords)))
    # Batches on a reused connection, QUIT replies read, 8-bit content with and without
    # 8BITMIME (the downgrade), and folding of a long line.
    reuse = make_config(
        lmtp=False, tls="none", destination_recipient_limit=1, skip_quit_response=False
    )
    out.append(
        (
            "smtp-batches",
            Setup(
                "[192.0.2.1]", ("a@example.com", "b@example.com", "reject@x.example"), _PLAIN, reuse
            ),
            Canonical(),
        )
    )
    for keywords, label in ((("PIPELINING", "8BITMIME"), "8bit"), (("PIPELINING",), "7bit")):
        out.append(
            (
                f"smtp-8bit-to-{label}",
                Setup(
                    "[192.0.2.1]",
                    ("a@example.com",),
                    _EIGHTBIT,
                    make_config(lmtp=False, tls="none"),
                ),
                Canonical(keywords),
            )
        )
    for lmtp in (False, True):
        for keywords in (("PIPELINING", "CHUNKING"), ("CHUNKING",)):
            recipients = ("a@example.com", "reject@example.com", "b@example.com")
            if lmtp:
                recipients += ("ldefer@example.com",)
            protocol = "lmtp" if lmtp else "smtp"
            piping = "pipe" if "PIPELINING" in keywords else "nopipe"
            out.append(
                (
                    f"{protocol}-bdat-{piping}",
                    Setup(
                        "inet:[192.0.2.1]:24" if lmtp else "[192.0.2.1]",
                        recipients,
                        _LONG,
                        make_config(lmtp=lmtp, tls="none", chunking=True),
                    ),
                    Canonical(keywords),
                )
            )
    out.append(
        (
            "smtp-long-line",
            Setup(
                "[192.0.2.1]",
                ("a@example.com", "b@example.com"),
                _LONG,
                make_config(lmtp=False, tls="may"),
            ),
            Canonical(("PIPELINING", "STARTTLS")),
        )
    )
    return out


def expected_status(address: str, lmtp: bool) -> str:
    """What a clean run gives each recipient of the scenarios."""
    if address.startswith("reject"):
        return "bounced"
    if address.startswith("defer") or (lmtp and address.startswith("ldefer")):
        return "deferred"
    return "sent"


def _failures(request: IORequest) -> list[IOFailure | bytes]:
    # What the adapter contract (smtpproto/requests.py) lets each request fail with.
    if isinstance(request, Resolve):
        return [DNSError("temporary", "SERVFAIL"), DNSError("nxdomain", "no such domain")]
    if isinstance(request, Connect):
        return [ConnectFailed("connection refused")]
    if isinstance(request, Send):
        return [ConnectionLost("broken pipe"), IOTimeout("write timed out")]
    if isinstance(request, Receive):
        return [ConnectionLost("connection reset"), IOTimeout("read timed out"), b""]
    if isinstance(request, StartTLS):
        return [TLSFailed("handshake failure")]
    return []


def _summary(outcome: Outcome) -> list[tuple[str, str, str]]:
    return [(r.status, r.dsn, str(r.reply)) for r in outcome.report.recipients]


def _scenario_cases(name: str, setup: Setup, server: Canonical) -> Iterator[Case]:
    clean: list[Outcome] = []

    def clean_run() -> None:
        outcome = run_setup(setup, Canonical(server.keywords))
        check_report(setup, outcome, strict=True)
        lmtp = setup.config.lmtp
        got = [r.status for r in outcome.report.recipients]
        want = [expected_status(a, lmtp) for a in setup.recipients]
        if got != want:
            raise Violation(f"clean run: statuses {got}, expected {want}")
        clean.append(outcome)

    yield Case(f"{name}: clean run", clean_run)
    if not clean:
        return
    base = clean[0]

    def injected(plan: Canonical, split: bool = False) -> None:
        outcome = run_setup(setup, plan)
        check_report(setup, outcome, strict=True)
        if split and _summary(outcome) != _summary(base):
            raise Violation(f"the report changed: {_summary(outcome)} != {_summary(base)}")

    for index, request in enumerate(base.requests):
        for failure in _failures(request):
            label = repr(failure) if isinstance(failure, IOFailure) else "end of stream"
            plan = Canonical(server.keywords, fault_at=(index, failure))
            yield Case(
                f"{name}: {label} at request #{index} ({type(request).__name__})",
                functools.partial(injected, plan),
            )
    for offset in range(base.server_bytes + 1):
        for kind in ("eof", "reset", "split"):
            if kind == "split" and not 0 < offset < base.server_bytes:
                continue
            plan = Canonical(server.keywords, cut_at=(offset, kind))
            yield Case(
                f"{name}: {kind} at server octet {offset}",
                functools.partial(injected, plan, split=kind == "split"),
            )


def cases() -> Iterator[Case]:
    """Every case of every scenario, interleaved round-robin."""
    streams = [_scenario_cases(*s) for s in scenarios()]
    for batch in itertools.zip_longest(*streams):
        for case in batch:
            if case is not None:
                yield case


TARGET = Target(
    "faults",
    "the engine against correct servers with a fault at every request and octet",
    cases=cases,
)

if __name__ == "__main__":
    sys.exit(main({TARGET.name: TARGET}, only=TARGET.name))
