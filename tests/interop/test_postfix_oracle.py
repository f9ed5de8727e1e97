"""The Postfix client oracle, and smtpproto measured against it.

postfix_client.py makes Postfix 3.7's own smtp(8)/lmtp(8) deliver a message and reads each
recipient's status and DSN from its log. These tests show the oracle works (it delivers, it
reports refusals, its extra parameters take effect) and then give the same server to the
oracle and to ``smtpproto deliver`` on every adapter, asserting the same per-recipient status
and DSN code: against smtp-sink with each of its fault options, small scripted dialogues (a
real socket server answering from a fixed script, defined below), Exim, Postfix smtpd and
Dovecot LMTP.

A difference smtpproto should not have is marked as a strict xfail until it is fixed (the fix
turns it into a failure until the marker goes). ``DELIBERATE`` cases are differences the
project chose, each named by its case id in docs/reference/security-cases.md; the test
asserts smtpproto's side and that Postfix still differs.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import pytest

from smtpproto.envelope import Recipient

from .exim import EXIM_DEFERRED_RCPT, EXIM_REJECTED_RCPT, EXIM_UNKNOWN_RCPT, EximServer
from .postfix_client import PostfixOracle
from .servers import (
    DOMAIN,
    HOST,
    SENDER,
    STOP_TIMEOUT,
    Client,
    DovecotServer,
    PostfixServer,
    SinkFactory,
    client_config,
    make_message,
)

pytestmark = pytest.mark.interop

ALICE, BOB, CAROL, DAVE = (f"{name}@{DOMAIN}" for name in ("alice", "bob", "carol", "dave"))
# Bounds the scripted server's reads: a client that stops talking ends the session.
SCRIPT_IO_TIMEOUT = 10.0


# --- a scripted SMTP/LMTP server --------------------------------------------------------------


@dataclass(frozen=True)
class Script:
    """What a scripted server answers. A reply may hold several lines joined by CRLF."""

    greeting: str = "220 scripted.example.test ESMTP"
    keywords: tuple[str, ...] = ("PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES")
    mail: str = "250 2.1.0 Ok"
    # Recipient address -> its RCPT reply; any other recipient gets rcpt_default.
    rcpt: Mapping[str, str] = field(default_factory=dict)
    rcpt_default: str = "250 2.1.5 Ok"
    data: str = "354 End data with <CR><LF>.<CR><LF>"
    dot: str = "250 2.0.0 Ok: queued as SCRIPTED"
    # LMTP: accepted recipient -> its own reply after the dot; any other gets `dot`.
    lmtp_dot: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Session:
    """What one client connection sent: its command lines and the message contents."""

    commands: list[str] = field(default_factory=list)
    contents: list[bytes] = field(default_factory=list)


class ScriptedServer:
    """A loopback SMTP (or LMTP) server that answers every connection from one Script."""

    def __init__(self, script: Script, *, lmtp: bool = False) -> None:
        self.script = script
        self.lmtp = lmtp
        self.sessions: list[Session] = []
        self._listener = socket.create_server((HOST, 0))
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def destination(self) -> str:
        """The next hop, in the syntax both Postfix and smtpproto take."""
        return f"inet:{HOST}:{self.port}" if self.lmtp else f"[{HOST}]:{self.port}"

    def serve(self) -> None:
        """Accept connections until stopped, each served in its own thread."""
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            session = Session()
            self.sessions.append(session)
            thread = threading.Thread(target=self._converse, args=(conn, session), daemon=True)
            self._threads.append(thread)
            thread.start()

    def stop(self) -> None:
        """Stop accepting, and wait (bounded) for the conversations to end."""
        self._stop.set()
        self._listener.close()
        for thread in self._threads:
            thread.join(STOP_TIMEOUT)

    def _converse(self, conn: socket.socket, session: Session) -> None:
        with conn:
            conn.settimeout(SCRIPT_IO_TIMEOUT)
            # One write per reply: without this, Nagle holds each reply to pipelined commands
            # until the client's delayed ACK (40 ms a round).
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            buffer = bytearray()
            with contextlib.suppress(OSError):
                self._dialogue(conn, session, buffer)

    def _dialogue(self, conn: socket.socket, session: Session, buffer: bytearray) -> None:
        script = self.script

        def reply(text: str) -> None:
            conn.sendall(text.encode() + b"\r\n")

        def read_until(marker: bytes) -> bytes | None:
            while marker not in buffer:
                chunk = conn.recv(65536)
                if not chunk:
                    return None
                buffer.extend(chunk)
            end = buffer.index(marker) + len(marker)
            data = bytes(buffer[:end])
            del buffer[:end]
            return data

        reply(script.greeting)
        accepted: list[str] = []
        while (line := read_until(b"\r\n")) is not None:
            command = line[:-2].decode("utf-8", "replace")
            session.commands.append(command)
            verb = command.split(" ", 1)[0].upper()
            if verb in ("EHLO", "LHLO"):
                lines = ["scripted.example.test", *script.keywords]
                reply(
                    "\r\n".join(
                        f"250{'-' if n < len(lines) - 1 else ' '}{text}"
                        for n, text in enumerate(lines)
                    )
                )
            elif verb == "HELO":
                reply("250 scripted.example.test")
            elif verb == "MAIL":
                accepted = []
                reply(script.mail)
            elif verb == "RCPT":
                address = command.partition("<")[2].partition(">")[0]
                answer = script.rcpt.get(address, script.rcpt_default)
                if answer.startswith("2"):
                    accepted.append(address)
                reply(answer)
            elif verb == "DATA":
                reply(script.data)
                if not script.data.startswith("3"):
                    continue
                # Line by line up to the lone "." (which is all a client sends when every RCPT
                # failed but DATA got 354).
                content = b""
                while (data_line := read_until(b"\r\n")) is not None:
                    content += data_line
                    if data_line == b".\r\n":
                        break
                else:
                    return
                session.contents.append(content)
                if self.lmtp:
                    for address in accepted:
                        reply(script.lmtp_dot.get(address, script.dot))
                else:
                    reply(script.dot)
            elif verb == "RSET":
                accepted = []
                reply("250 2.0.0 Ok")
            elif verb == "NOOP":
                reply("250 2.0.0 Ok")
            elif verb == "QUIT":
                reply("221 2.0.0 Bye")
                return
            else:
                reply("502 5.5.2 Error: command not recognized")


@contextlib.contextmanager
def scripted_server(script: Script, *, lmtp: bool = False) -> Iterator[ScriptedServer]:
    """Run a ScriptedServer in a thread while the context lasts."""
    server = ScriptedServer(script, lmtp=lmtp)
    thread = threading.Thread(target=server.serve, name=f"scripted-{server.port}", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stop()
        thread.join(STOP_TIMEOUT)


# --- helpers ----------------------------------------------------------------------------------


def smtpproto_outcomes(
    client: Client, destination: str, recipients: list[str], message: bytes, *, lmtp: bool = False
) -> dict[str, tuple[str, str]]:
    """Deliver with smtpproto; each recipient's (status, dsn)."""
    report = client.deliver(
        destination, recipients=recipients, message=message, config=client_config(lmtp=lmtp)
    )
    assert [r.address for r in report.recipients] == recipients
    return {r.address: (r.status, r.dsn) for r in report.recipients}


def postfix_outcomes(
    oracle: PostfixOracle,
    destination: str,
    recipients: list[str],
    message: bytes,
    *,
    lmtp: bool = False,
) -> dict[str, tuple[str, str]]:
    """Deliver with Postfix's own client; each recipient's (status, dsn)."""
    results = oracle.deliver(destination, SENDER, recipients, message, lmtp=lmtp)
    assert results.keys() == set(recipients)
    return {address: (results[address].status, results[address].dsn) for address in recipients}


MESSAGE = make_message("oracle", "A line.\r\n.A line with a leading dot.\r\n")


# --- the oracle itself ------------------------------------------------------------------------


def test_oracle_delivers_the_message_to_smtp_sink(
    postfix_oracle: PostfixOracle, smtp_sink: SinkFactory
) -> None:
    sink = smtp_sink()
    results = postfix_oracle.deliver(f"[{sink.host}]:{sink.port}", SENDER, [ALICE, BOB], MESSAGE)

    assert {a: r[:2] for a, r in results.items()} == {
        ALICE: ("sent", "2.0.0"),
        BOB: ("sent", "2.0.0"),
    }
    assert results[ALICE].relay == f"{HOST}[{HOST}]:{sink.port}"
    [transaction] = sink.transactions()
    assert transaction.mail_args.startswith(f"<{SENDER}>")
    assert [args.split()[0] for args in transaction.rcpt_args] == [f"<{ALICE}>", f"<{BOB}>"]
    # The oracle's own submission left no trace: smtp-sink got the message as written (its dump
    # has LF line ends and no dot-stuffing).
    assert transaction.content == MESSAGE.replace(b"\r\n", b"\n")


def test_oracle_passes_dsn_parameters_on(
    postfix_oracle: PostfixOracle, smtp_sink: SinkFactory
) -> None:
    sink = smtp_sink()
    recipients = [
        Recipient(ALICE, notify=("SUCCESS", "FAILURE"), orcpt="rfc822;alice+orig@example.test"),
        Recipient(BOB, notify=("NEVER",)),
    ]
    results = postfix_oracle.deliver(
        f"[{sink.host}]:{sink.port}", SENDER, recipients, MESSAGE, ret="HDRS", envid="env 1"
    )

    assert {a: r.status for a, r in results.items()} == {ALICE: "sent", BOB: "sent"}
    [transaction] = sink.transactions()
    # rule 6.1 and 6.2 order; rule 6.3: Postfix makes up an ORCPT from the original recipient
    # when none came from upstream.
    assert transaction.mail_args.split()[1:] == ["ENVID=env+201", "RET=HDRS"]
    assert transaction.rcpt_args == (
        f"<{ALICE}> ORCPT=rfc822;alice+2Borig@example.test NOTIFY=SUCCESS,FAILURE",
        f"<{BOB}> ORCPT=rfc822;{BOB} NOTIFY=NEVER",
    )


def test_oracle_reports_each_kind_of_refusal(postfix_oracle: PostfixOracle) -> None:
    script = Script(rcpt={BOB: "550 5.1.1 <bob>: unknown", CAROL: "451 4.7.1 <carol>: later"})
    with scripted_server(script) as server:
        results = postfix_oracle.deliver(server.destination, SENDER, [ALICE, BOB, CAROL], MESSAGE)

    relay = f"{HOST}[{HOST}]:{server.port}"
    assert results == {
        ALICE: ("sent", "2.0.0", "250 2.0.0 Ok: queued as SCRIPTED", relay),
        BOB: (
            "bounced",
            "5.1.1",
            f"host {HOST}[{HOST}] said: 550 5.1.1 <bob>: unknown (in reply to RCPT TO command)",
            relay,
        ),
        CAROL: (
            "deferred",
            "4.7.1",
            f"host {HOST}[{HOST}] said: 451 4.7.1 <carol>: later (in reply to RCPT TO command)",
            relay,
        ),
    }
    # deliver() returned once the message had left the queue: one session, and no retry of the
    # deferred recipient to come.
    [session] = server.sessions
    assert [c.split()[0] for c in session.commands] == [
        "EHLO",
        "MAIL",
        "RCPT",
        "RCPT",
        "RCPT",
        "DATA",
        "QUIT",
    ]


def test_oracle_params_reach_the_delivery_agent(postfix_oracle: PostfixOracle) -> None:
    with scripted_server(Script()) as server:
        default = postfix_oracle.deliver(server.destination, SENDER, [ALICE], MESSAGE)
        tuned = postfix_oracle.deliver(
            server.destination,
            SENDER,
            [ALICE],
            MESSAGE,
            params={"smtp_helo_name": "tuned.example.test", "smtp_never_send_ehlo": "yes"},
        )
    assert default[ALICE].status == tuned[ALICE].status == "sent"
    first, second = server.sessions
    assert first.commands[0] == "EHLO client.example.test"
    assert second.commands[0] == "HELO tuned.example.test"
    assert first.contents == second.contents == [MESSAGE.replace(b"\r\n.", b"\r\n..") + b".\r\n"]


# --- smtpproto against the oracle: smtp-sink --------------------------------------------------

# smtp-sink's fault options (-f 5xx, -r 4xx, -Q 421 and hang up, -q hang up) on each command.
SINK_FAULTS = [
    pytest.param((), id="accept"),
    *(
        pytest.param((option, command), id=f"{option}{command}")
        for option in ("-f", "-r", "-Q", "-q")
        for command in ("mail", "rcpt", "data", ".")
    ),
]


@pytest.mark.parametrize("options", SINK_FAULTS)
def test_same_outcomes_as_postfix_on_smtp_sink(
    client: Client, postfix_oracle: PostfixOracle, smtp_sink: SinkFactory, options: tuple[str, ...]
) -> None:
    sink = smtp_sink(*options)
    destination = f"[{sink.host}]:{sink.port}"
    recipients = [ALICE, BOB]
    expected = postfix_outcomes(postfix_oracle, destination, recipients, MESSAGE)
    assert smtpproto_outcomes(client, destination, recipients, MESSAGE) == expected


# --- smtpproto against the oracle: scripted dialogues -----------------------------------------


@dataclass(frozen=True)
class Case:
    """One scripted dialogue and the recipients to send through it."""

    script: Script
    recipients: tuple[str, ...] = (ALICE, BOB, CAROL)
    lmtp: bool = False


NO_PIPELINING = ("8BITMIME", "ENHANCEDSTATUSCODES")
LONG_LINE = "x" * 3000
HUNDRED_AND_FIFTY = "\r\n".join(f"250-2.0.0 line {n}" for n in range(150))


CASES: dict[str, Case] = {
    "all-accepted": Case(Script()),
    "rcpt-550": Case(Script(rcpt={BOB: "550 5.1.1 <bob>: Recipient address rejected"})),
    "rcpt-451": Case(Script(rcpt={BOB: "451 4.7.1 <bob>: try again later"})),
    "rcpt-550-and-451": Case(
        Script(rcpt={ALICE: "451 4.3.0 busy", CAROL: "550 5.7.1 no relaying"})
    ),
    "rcpt-no-enhanced-code": Case(Script(rcpt={BOB: "550 no such user"})),
    "rcpt-code-only": Case(Script(rcpt={BOB: "550"})),
    "rcpt-class-mismatch": Case(Script(rcpt={BOB: "451 5.7.1 soft code, hard status"})),
    "rcpt-multiline": Case(Script(rcpt={BOB: "550-5.1.1 first line\r\n550 5.1.1 last line"})),
    "rcpt-555": Case(Script(rcpt={BOB: "555 5.5.4 unsupported parameter"})),
    "all-rcpt-refused-data-554": Case(
        Script(rcpt_default="550 5.1.1 unknown", data="554 5.5.1 Error: no valid recipients")
    ),
    # rule 7.7: DATA already pipelined and answered 354; the client sends a lone ".".
    "all-rcpt-refused-data-354": Case(Script(rcpt_default="550 5.1.1 unknown")),
    "mail-552": Case(Script(mail="552 5.3.4 Message size exceeds fixed limit")),
    "mail-451": Case(Script(mail="451 4.3.0 Temporary failure")),
    "data-554": Case(Script(data="554 5.7.1 no DATA for you")),
    "data-451": Case(Script(data="451 4.3.0 later")),
    "dot-554": Case(Script(rcpt={BOB: "550 5.1.1 unknown"}, dot="554 5.6.0 content refused")),
    "dot-452": Case(Script(dot="452 4.3.1 Insufficient system storage")),
    "dot-multiline": Case(Script(dot="250-2.0.0 queued\r\n250 2.0.0 as SCRIPTED")),
    "dot-2xx-with-5-status": Case(Script(dot="250 5.0.0 odd but accepted")),
    "dot-surplus-reply": Case(Script(dot="250 2.0.0 Ok\r\n250 2.0.0 again")),
    "greeting-421": Case(Script(greeting="421 4.3.2 Service not available")),
    "greeting-554": Case(Script(greeting="554 5.3.2 No SMTP service here")),
    "greeting-multiline": Case(Script(greeting="220-scripted.example.test\r\n220 ESMTP")),
    "no-pipelining-rcpt-550": Case(Script(keywords=NO_PIPELINING, rcpt={BOB: "550 5.1.1 unknown"})),
    "no-pipelining-rcpt-451": Case(Script(keywords=NO_PIPELINING, rcpt={BOB: "451 4.2.0 later"})),
    "lmtp-per-recipient": Case(
        Script(
            rcpt={DAVE: "550 5.1.1 unknown"},
            lmtp_dot={BOB: "552 5.2.2 Mailbox full", CAROL: "451 4.2.0 try later"},
        ),
        recipients=(ALICE, BOB, CAROL, DAVE),
        lmtp=True,
    ),
    "lmtp-all-accepted": Case(Script(), lmtp=True),
    # rule 1.2: Postfix keeps the first 2048 octets of a long line and reads on.
    "dot-long-line": Case(Script(dot=f"250 2.0.0 {LONG_LINE}")),
    # rule 1.1: CRs just before the LF are stripped.
    "dot-cr-cr-lf": Case(Script(dot="250 2.0.0 Ok\r")),
    # rule 1.7: Postfix bounds a reply by bytes and time, not by its number of lines.
    "dot-150-lines": Case(Script(dot=f"{HUNDRED_AND_FIFTY}\r\n250 2.0.0 Ok")),
    "ehlo-150-lines": Case(Script(keywords=tuple(f"X-KEYWORD-{n}" for n in range(150)))),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_same_outcomes_as_postfix_on_scripted_dialogues(
    client: Client, postfix_oracle: PostfixOracle, case: Case
) -> None:
    recipients = list(case.recipients)
    with scripted_server(case.script, lmtp=case.lmtp) as server:
        expected = postfix_outcomes(
            postfix_oracle, server.destination, recipients, MESSAGE, lmtp=case.lmtp
        )
        ours = smtpproto_outcomes(client, server.destination, recipients, MESSAGE, lmtp=case.lmtp)
    assert ours == expected
    # Each client really talked to the script, once.
    assert len(server.sessions) == 2


# Where smtpproto deliberately parts from Postfix (docs/security.md, "Deliberate differences
# from Postfix"): a reply that breaks RFC 5321's reply syntax, or that its command may not get,
# is a protocol error that defers every recipient still without a final reply, where Postfix
# guesses a meaning: it bounces 5.5.0, or credits a reply meant for another command.
DELIBERATE: dict[str, Case] = {
    # Quirk Q2 (rule 2.5): Postfix bounces bob 5.5.0 and delivers the others.
    "rcpt-354": Case(Script(rcpt={BOB: "354 go ahead"})),
    # Quirk Q2: Postfix bounces everyone 5.5.0 "in reply to MAIL FROM command".
    "mail-334": Case(Script(mail="334 VXNlcm5hbWU6")),
    # Quirk Q2: Postfix bounces everyone 5.5.0 "in reply to DATA command".
    "data-250": Case(Script(data="250 2.0.0 Ok")),
    # A surplus RCPT reply: Postfix shifts every later reply (rule 7.1: FIFO) and bounces
    # everyone 5.5.0 for what was carol's 250, taken as the DATA reply.
    "rcpt-surplus-reply": Case(Script(rcpt={ALICE: "250 2.1.5 Ok\r\n250 2.1.5 again"})),
    # Postfix takes any 2xx after the dot, 221 included: with QUIT pipelined behind the dot,
    # a server that answers only 221 has its mail counted as sent.
    "dot-221": Case(Script(dot="221 2.0.0 Bye")),
    # A 250 sent with the 354, before any content, and the real reply after the dot is 550:
    # Postfix reads the early 250 as the end-of-data reply and counts the mail as sent.
    "data-354-with-early-250": Case(
        Script(data="354 go ahead\r\n250 2.0.0 early", dot="550 5.7.1 content refused")
    ),
    # RP-09: Postfix bounces bob 5.5.0 and delivers the others.
    "RP-09-code-600": Case(Script(rcpt={BOB: "600 6.0.0 out of range"})),
    # RP-05: Postfix takes the final line's 250 (rule 1.6) and counts bob as accepted.
    "RP-05-code-changes": Case(Script(rcpt={BOB: "550-5.1.1 no such user\r\n250 2.1.5 Ok"})),
    # RP-10: a line that discards more than another 2048 octets before its LF is a lost
    # connection (rule 1.2's second bound, from Postfix releases after 3.7); Postfix 3.7
    # reads on to the LF and counts the mail as sent.
    "RP-10-second-bound": Case(Script(dot=f"250 2.0.0 {'x' * 5000}")),
}


@pytest.mark.parametrize("case", DELIBERATE.values(), ids=DELIBERATE.keys())
def test_deliberate_differences_from_postfix(
    client: Client, postfix_oracle: PostfixOracle, case: Case
) -> None:
    recipients = list(case.recipients)
    with scripted_server(case.script) as server:
        postfix = postfix_outcomes(postfix_oracle, server.destination, recipients, MESSAGE)
        ours = smtpproto_outcomes(client, server.destination, recipients, MESSAGE)
    assert {status for status, _ in ours.values()} == {"deferred"}
    assert all(dsn.startswith("4.") for _, dsn in ours.values())
    assert ours != postfix, "Postfix now agrees: drop this case from DELIBERATE"


# --- smtpproto against the oracle: real servers -----------------------------------------------


def test_same_outcomes_as_postfix_on_exim(
    client: Client, postfix_oracle: PostfixOracle, exim_server: EximServer
) -> None:
    recipients = [ALICE, EXIM_UNKNOWN_RCPT, BOB, EXIM_REJECTED_RCPT, EXIM_DEFERRED_RCPT]
    destination = exim_server.destination
    expected = postfix_outcomes(postfix_oracle, destination, recipients, MESSAGE)
    assert smtpproto_outcomes(client, destination, recipients, MESSAGE) == expected
    assert expected[ALICE] == ("sent", "2.0.0")
    assert expected[EXIM_DEFERRED_RCPT] == ("deferred", "4.3.2")


def test_same_outcomes_as_postfix_on_postfix_smtpd(
    client: Client, postfix_oracle: PostfixOracle, postfix_server: PostfixServer
) -> None:
    recipients = [
        ALICE,
        postfix_server.rejected_recipient,
        f"nosuchuser@{DOMAIN}",
        postfix_server.deferred_recipient,
        BOB,
    ]
    destination = f"[{postfix_server.host}]:{postfix_server.port}"
    expected = postfix_outcomes(postfix_oracle, destination, recipients, MESSAGE)
    assert smtpproto_outcomes(client, destination, recipients, MESSAGE) == expected
    assert {status for status, _ in expected.values()} == {"sent", "bounced", "deferred"}


@pytest.mark.parametrize("transport", ["inet", "unix"])
def test_same_outcomes_as_postfix_lmtp_on_dovecot(
    client: Client, postfix_oracle: PostfixOracle, dovecot_server: DovecotServer, transport: str
) -> None:
    recipients = [ALICE, f"nosuchuser@{DOMAIN}", dovecot_server.over_quota_user, BOB]
    destination = (
        f"inet:{dovecot_server.host}:{dovecot_server.lmtp_port}"
        if transport == "inet"
        else f"unix:{dovecot_server.lmtp_socket}"
    )
    expected = postfix_outcomes(postfix_oracle, destination, recipients, MESSAGE, lmtp=True)
    ours = smtpproto_outcomes(client, destination, recipients, MESSAGE, lmtp=True)
    assert ours == expected
    assert expected[dovecot_server.over_quota_user] == ("bounced", "5.2.2")
