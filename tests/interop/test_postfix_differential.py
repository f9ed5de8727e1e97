"""Randomized differential test: smtpproto and Postfix's own client on the same random server.

hypothesis draws a scripted server (`Scenario`): a greeting, a subset of EHLO keywords (or an
EHLO refusal, then HELO's reply), one reply for MAIL, each recipient's RCPT reply, DATA's
reply, the end-of-data reply (under LMTP one per accepted recipient), RSET's and QUIT's,
multi-line or not, with or without enhanced status codes (valid or not), possibly a hang-up,
a reply cut short or a stall at one step, and writes dripped a few octets at a time; the
message is 7-bit or has an 8-bit body, and SIZE may sit just around its size. Postfix 3.7's
smtp(8)/lmtp(8) (`PostfixOracle`) and one smtpproto adapter (rotated by the draw) deliver
the same message through it; each recipient's (status, dsn) must be the same.

The drawn codes include two documented differences (`DELIBERATE`): a 221 after the end of
data (docs/security.md, "Defaults that differ from Postfix") and a 250 to DATA (quirk Q2 in
docs/reference/client-rules.md). Each allows exactly one per-recipient difference, Postfix's
outcome against smtpproto's documented one, and only in a scenario that has its reply; every
other difference fails with a one-line repro (`Scenario.describe`).

The number of examples is 30 (derandomized) unless ``SMTPPROTO_DIFF_EXAMPLES`` asks for
more; a long run then draws fresh examples each time.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.model import Faults, Scripted, ServerModel
from support.sockets import LoopbackServer

from .postfix_client import PostfixOracle
from .servers import ADAPTERS, CLIENT_TIMEOUTS, DOMAIN, SENDER, Client, client_config, make_message

pytestmark = pytest.mark.interop

MESSAGE = make_message("differential", "A line.\r\n.A line with a leading dot.\r\n")
EIGHTBIT_MESSAGE = make_message(
    "differential", "Gr\u00fc\u00dfe.\r\n.A line with a leading dot.\r\n"
)
RECIPIENTS = tuple(f"rcpt{n}@{DOMAIN}" for n in range(5))

EXAMPLES = int(os.environ.get("SMTPPROTO_DIFF_EXAMPLES", "30"))
# Every stage timeout of both clients (servers.CLIENT_TIMEOUTS's names): a server that
# stalls costs this long, and a healthy exchange on loopback takes milliseconds.
STAGE_TIMEOUT = "3s"
# Seconds for Postfix's whole delivery: a few stage timeouts at most.
ORACLE_TIMEOUT = 30.0


def stage_timeouts(lmtp: bool) -> dict[str, str]:
    """The Postfix parameters that set every stage timeout to `STAGE_TIMEOUT`."""
    prefix = "lmtp" if lmtp else "smtp"
    hello = {"helo_timeout": "lhlo_timeout"} if lmtp else {}
    return {f"{prefix}_{hello.get(name, name)}": STAGE_TIMEOUT for name in CLIENT_TIMEOUTS}


# --- the scripted server ----------------------------------------------------------------------


@dataclass(frozen=True)
class Hangup:
    """The server closes the connection at one step.

    `step` is ``GREETING``, a verb (``EHLO``, ``LHLO``, ``MAIL``, ``RCPT``, ``DATA``,
    ``RSET``, ``QUIT``) or ``.`` (the end of data). For a verb, `nth` is its occurrence
    (1-based); `how` is ``silent`` (no reply), ``after`` (the reply, then the close),
    ``partial`` (the first half of the reply's octets) or ``stall`` (no reply, and the server
    keeps the connection open reading nothing more: the client's timeout ends it). For ``.``,
    `nth` replies go out whole first (SMTP: 0 or 1; LMTP: up to one per accepted recipient),
    then with ``partial`` half of the next one.
    """

    step: str
    nth: int = 1
    how: str = "silent"

    def cut(self, server: ServerModel, reply: bytes) -> bytes:
        """What goes out of `reply` before the close, and the close."""
        if self.how == "stall":
            server.reading = False
            return b""
        server.hang_up()
        if self.how == "after":
            return reply
        if self.how == "partial":
            return reply[: max(len(reply) // 2, 1)]
        return b""


@dataclass
class Fuzzed(Scripted):
    """`Scripted` with a `Hangup`, counted per connection so that both clients meet it."""

    hangup_at: Hangup | None = None

    def greeting(self, server: ServerModel) -> bytes:
        """The banner, unless the server hangs up before, during or right after it."""
        h = self.hangup_at
        if h is not None and h.step == "GREETING":
            return h.cut(server, self.banner)
        return _closing(server, self.banner)

    def reply(self, server: ServerModel, verb: str, line: bytes) -> bytes:
        """The scripted reply; at the hang-up step, what `Hangup.cut` lets out."""
        reply = super().reply(server, verb, line)
        h = self.hangup_at
        if h is not None and h.step == verb and server.verbs.count(verb) == h.nth:
            return h.cut(server, reply)
        return _closing(server, reply)

    def end_of_data(self, server: ServerModel) -> list[tuple[bytes, list[str]]]:
        """The scripted replies, up to a 421; at a ``.`` hang-up, the first `nth` (and part
        of the next with ``partial``), then a close."""
        replies = super().end_of_data(server)
        h = self.hangup_at
        if h is not None and h.step == ".":
            rest = replies[h.nth :]
            replies = replies[: h.nth]
            cut = h.cut(server, rest[0][0] if rest else b"")
            if cut:
                replies.append((cut, []))
        for n, (reply, _) in enumerate(replies):
            if reply[:3] == b"421":
                _closing(server, reply)
                return replies[: n + 1]
        return replies


def _closing(server: ServerModel, reply: bytes) -> bytes:
    """`reply`; a 421 also closes the connection, the server reading and saying nothing more.

    RFC 5321 3.8 and 4.2.2: 421 is "closing transmission channel". `ServerModel` only closes
    once it has answered what it already read, so a pipelined batch would get replies after
    the 421, which no real server sends (and which the two clients read differently).
    """
    if reply[:3] == b"421":
        server.hang_up()
    return reply


@dataclass(frozen=True)
class Scenario:
    """One drawn server, the recipients sent through it, and the adapter on our side."""

    lmtp: bool
    adapter: str
    recipients: tuple[str, ...]
    greeting: str
    keywords: tuple[str, ...]
    mail: str
    rcpt: tuple[str, ...]
    """RCPT reply per recipient, in order."""
    data: str
    dot: tuple[str, ...]
    """SMTP: one end-of-data reply; LMTP: one per recipient (used for the accepted ones)."""
    hello: str | None = None
    """A refusal of EHLO/LHLO; None: the keywords."""
    helo: str = "250 scripted.example.test"
    """HELO's reply (after a refused EHLO)."""
    rset: str = "250 2.0.0 Ok"
    """RSET's reply."""
    quit: str = "221 2.0.0 Bye"
    """QUIT's reply."""
    eightbit: bool = False
    """The message body has 8-bit octets (declared BODY=8BITMIME to both clients)."""
    drip: int | None = None
    """The server writes at most this many octets at a time."""
    hangup: Hangup | None = None

    @property
    def message(self) -> bytes:
        """The message both clients send."""
        return EIGHTBIT_MESSAGE if self.eightbit else MESSAGE

    def behaviour(self) -> Fuzzed:
        """The server, as `support.model.Scripted` tables."""

        def wire(text: str) -> bytes:
            return text.encode() + b"\r\n"

        return Fuzzed(
            banner=wire(self.greeting),
            domain="scripted.example.test",
            keywords=self.keywords,
            replies={
                "MAIL": wire(self.mail),
                "DATA": wire(self.data),
                "QUIT": wire(self.quit),
                "HELO": wire(self.helo),
                "RSET": wire(self.rset),
                **(
                    {}
                    if self.hello is None
                    else {"LHLO" if self.lmtp else "EHLO": wire(self.hello)}
                ),
            },
            rcpt={a: wire(r) for a, r in zip(self.recipients, self.rcpt, strict=True)},
            queued=wire(self.dot[0]),
            delivery=(
                {a: wire(r) for a, r in zip(self.recipients, self.dot, strict=True)}
                if self.lmtp
                else {}
            ),
            hangup_at=self.hangup,
        )

    def describe(self) -> str:
        """A one-line repro."""
        return repr(self)


# --- drawing scenarios ------------------------------------------------------------------------

# Subject.detail of an enhanced status code: common ones, then edges of RFC 3463's syntax
# (up to three digits each, leading zeros) and beyond it (four digits, an empty part).
DETAILS = (
    *("0.0", "1.1", "1.5", "2.2", "3.0", "3.4", "5.0", "7.1"),
    *("1.10", "7.999", "999.999", "01.1", "1.01", "1.1000", "1000.1", "1.", "1"),
)


@st.composite
def replies(draw: st.DrawFn, codes: tuple[int, ...], trouble: int = 100) -> str:
    """One reply: 1 to 3 lines, each with or without an enhanced status code (its class
    matching the code's first digit, or not), text or none. Its code is the usual one,
    ``codes[0]``, except in `trouble` percent of the draws, where any of `codes` is."""
    usual = draw(st.integers(0, 99)) >= trouble
    code = codes[0] if usual else draw(st.sampled_from(codes))
    lines = draw(st.integers(1, 3))
    klass = str(code)[0]
    enhanced = draw(st.sampled_from(("same", "none", "other")))
    texts = []
    for n in range(lines):
        status = ""
        if enhanced == "same":
            status = f"{klass}.{draw(st.sampled_from(DETAILS))}"
        elif enhanced == "other":
            status = f"{draw(st.sampled_from([k for k in '245' if k != klass]))}.1.1"
        text = draw(st.sampled_from(("", "Ok", "text here", f"line {n}")))
        body = " ".join(part for part in (status, text) if part)
        separator = "-" if n < lines - 1 else " "
        texts.append(f"{code}{separator}{body}".rstrip(" ") if body else f"{code}{separator}")
    # A final line of a bare code is "550", never "550 ".
    texts[-1] = texts[-1].rstrip(" ")
    return "\r\n".join(texts)


# Each step's codes, the usual one first.
GREETING = (220, 421, 554)
MAIL = (250, 421, 451, 452, 550, 552, 553, 555)
RCPT = (250, 251, 421, 450, 451, 452, 550, 551, 552, 553, 554)
HELLO = (421, 500, 502, 550, 554)
HELO = (250, 421, 451, 501, 550, 554)
RSET = (250, 421, 500)
# 250 to DATA and 221 after the dot are documented differences (`DELIBERATE`).
DATA = (354, 421, 451, 554, 250)
DOT = (250, 421, 451, 452, 552, 554, 550, 221)
QUIT = (221, 250, 421, 500)
# Percent of replies that are drawn from all of a step's codes: a server mostly healthy, or
# mostly not (hypothesis shrinks towards the first).
TROUBLE = (5, 15, 40, 100)
KEYWORDS = ("PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "DSN", "CHUNKING")


def sizes(message: bytes) -> tuple[str, ...]:
    """SIZE keywords: none given, 0 (no limit, RFC 1870 4), far above and far below the
    message, and around its size counted with CRLF and with LF line ends."""
    crlf = len(message)
    lf = crlf - message.count(b"\r\n")
    near = sorted({n for size in (crlf, lf) for n in (size - 1, size, size + 1)})
    return ("SIZE", "SIZE 0", "SIZE 1000000", "SIZE 10", *(f"SIZE {n}" for n in near))


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    """A random scripted server and the recipients to send through it."""
    lmtp = draw(st.booleans())
    eightbit = draw(st.integers(0, 3)) == 0
    count = draw(st.integers(1, 5))
    recipients = RECIPIENTS[:count]
    # EHLO keywords are case-insensitive (RFC 5321 2.4).
    keywords = tuple(draw(st.sampled_from((k, k.lower()))) for k in KEYWORDS if draw(st.booleans()))
    message = EIGHTBIT_MESSAGE if eightbit else MESSAGE
    size = draw(st.one_of(st.none(), st.none(), st.sampled_from(sizes(message))))
    if size is not None:
        keywords += (size,)
    trouble = draw(st.sampled_from(TROUBLE))
    greeting = draw(replies(GREETING, trouble))
    hello = draw(st.one_of(*[st.none()] * 5, replies(HELLO)))
    mail = draw(replies(MAIL, trouble))
    rcpt = tuple(draw(replies(RCPT, trouble)) for _ in recipients)
    data = draw(replies(DATA, trouble))
    dot = tuple(draw(replies(DOT, trouble)) for _ in (recipients if lmtp else recipients[:1]))
    quit_ = draw(replies(QUIT, trouble))
    helo = draw(replies(HELO, trouble))
    rset = draw(replies(RSET, trouble))
    how = st.sampled_from(("silent", "after", "partial", "stall"))
    verbs = ("GREETING", "LHLO" if lmtp else "EHLO", "MAIL", "DATA", "RSET", "QUIT")
    hangup = draw(
        st.one_of(
            *[st.none()] * 4,
            st.builds(Hangup, st.sampled_from(verbs), st.just(1), how),
            st.builds(Hangup, st.just("RCPT"), st.integers(1, count), how),
            st.builds(
                Hangup,
                st.just("."),
                st.integers(0, count if lmtp else 1),
                st.sampled_from(("silent", "partial", "stall")),
            ),
        )
    )
    drip = draw(st.sampled_from((None, None, None, 1, 3, 7)))
    adapter = draw(st.sampled_from(ADAPTERS))
    return Scenario(
        lmtp,
        adapter,
        recipients,
        greeting,
        keywords,
        mail,
        rcpt,
        data,
        dot,
        hello,
        helo,
        rset,
        quit_,
        eightbit,
        drip,
        hangup,
    )


# --- the deliberate differences ---------------------------------------------------------------

Outcome = tuple[str, str]
Outcomes = dict[str, Outcome]


def _code(reply: str) -> str:
    return reply[:3]


@dataclass(frozen=True)
class Deliberate:
    """A documented difference: the recipients it may concern in a scenario, and the one
    per-recipient difference it allows (Postfix's outcome, smtpproto's)."""

    where: str
    """The document and row that name it."""
    concerns: Callable[[Scenario], frozenset[str]]
    postfix: Callable[[Outcome], bool]
    ours: Outcome


def _accepted(scenario: Scenario) -> list[str]:
    """The recipients the server accepts at RCPT."""
    return [a for a, r in zip(scenario.recipients, scenario.rcpt, strict=True) if r[:1] == "2"]


def _after_dot_221(scenario: Scenario) -> frozenset[str]:
    """The recipients still waiting for their end-of-data reply when a 221 comes: SMTP,
    every accepted one; LMTP, the accepted ones from the first whose own reply is 221 on."""
    accepted = _accepted(scenario)
    if not scenario.lmtp:
        return frozenset(accepted if _code(scenario.dot[0]) == "221" else ())
    dots = dict(zip(scenario.recipients, scenario.dot, strict=True))
    first = next((n for n, a in enumerate(accepted) if _code(dots[a]) == "221"), len(accepted))
    return frozenset(accepted[first:])


DELIBERATE: dict[str, Deliberate] = {
    # Postfix takes any 2xx after the dot as success (and under LMTP reads on, each later
    # recipient getting its own reply); smtpproto takes only 250: the 221 is out of step,
    # the session ends, and every recipient still waiting for its reply is deferred
    # (docs/security.md, "Reply accounting").
    "dot-221": Deliberate(
        "docs/security.md, Defaults that differ from Postfix: 221 after the end of data",
        _after_dot_221,
        lambda outcome: True,
        ("deferred", "4.5.0"),
    ),
    # Quirk Q2: a 250 to DATA answers another command; Postfix bounces 5.5.0.
    "data-250": Deliberate(
        "docs/reference/client-rules.md, quirk Q2 (rule 2.5)",
        lambda s: frozenset(_accepted(s) if _code(s.data) == "250" else ()),
        lambda outcome: outcome == ("bounced", "5.5.0"),
        ("deferred", "4.5.0"),
    ),
}


def unexplained(scenario: Scenario, ours: Outcomes, postfix: Outcomes) -> dict[str, str]:
    """Each recipient whose outcomes differ and no documented difference explains."""
    return {
        address: f"smtpproto {ours[address]}, Postfix {postfix[address]}"
        for address in ours
        if ours[address] != postfix[address]
        and not any(
            address in case.concerns(scenario)
            and case.postfix(postfix[address])
            and ours[address] == case.ours
            for case in DELIBERATE.values()
        )
    }


# --- running both -----------------------------------------------------------------------------


@dataclass
class Run:
    """Both clients' outcomes on one scenario, and what the server saw."""

    ours: Outcomes
    postfix: Outcomes
    verbs: list[list[str]] = field(default_factory=list)


def run_both(oracle: PostfixOracle, scenario: Scenario) -> Run:
    """Deliver through the scenario's server with Postfix, then with smtpproto."""
    recipients = list(scenario.recipients)
    faults = Faults(drip=scenario.drip)
    with LoopbackServer(scenario.behaviour(), lmtp=scenario.lmtp, faults=faults) as server:
        theirs = oracle.deliver(
            server.destination,
            SENDER,
            recipients,
            scenario.message,
            lmtp=scenario.lmtp,
            params=stage_timeouts(scenario.lmtp),
            timeout=ORACLE_TIMEOUT,
        )
        report = Client(scenario.adapter).deliver(
            server.destination,
            recipients=recipients,
            message=scenario.message,
            config=client_config(
                lmtp=scenario.lmtp, **dict.fromkeys(CLIENT_TIMEOUTS, STAGE_TIMEOUT)
            ),
        )
    assert not server.violations, (scenario.describe(), server.violations)
    assert [r.address for r in report.recipients] == recipients
    assert theirs.keys() == set(recipients)
    return Run(
        ours={r.address: (r.status, r.dsn) for r in report.recipients},
        postfix={a: (theirs[a].status, theirs[a].dsn) for a in recipients},
        verbs=[served.model.verbs for served in server.connections],
    )


def check(oracle: PostfixOracle, scenario: Scenario) -> None:
    """The same outcomes, or exactly the documented differences (`DELIBERATE`)."""
    run = run_both(oracle, scenario)
    differences = unexplained(scenario, run.ours, run.postfix)
    assert not differences, (
        f"{differences} on {scenario.describe()} (server saw {run.verbs}; all: smtpproto "
        f"{run.ours}, Postfix {run.postfix})"
    )


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize="SMTPPROTO_DIFF_EXAMPLES" not in os.environ,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(scenario=scenarios())
def test_random_servers_give_the_same_outcomes_as_postfix(
    postfix_oracle: PostfixOracle, scenario: Scenario
) -> None:
    check(postfix_oracle, scenario)
