"""Fuzz target ``session``: the whole delivery engine against hostile, grammar-aware servers.

The world of ``tests/support`` with every decision drawn by hypothesis: DNS answers (MX
lists, null MX, failures), refused connections, EHLO/LHLO capabilities (random keyword sets,
odd SIZE values, AUTH lists), replies with mutated codes and enhanced codes, continuation
lines with changing codes, raw garbage, 421 at any point, 334 challenges, bytes injected after
the STARTTLS 220, TLS handshake failures, LMTP end-of-data reply counts that do not match the
accepted recipients, silence (timeouts), resets and end of stream at any read or write, and
replies cut into random pieces. Configurations vary: SMTP/LMTP, TLS level, recipient batches,
QUIT handling, line length.

Checked: the engine terminates, raises nothing, gives every recipient exactly one status with
a DSN of the matching class, ``sent`` only with a positive reply (and, while the server told
no lies, only for recipients a server accepted at the end of data), closes every connection,
never touches a closed connection or one whose TLS handshake failed, sends no MAIL in
plaintext at level ``encrypt``, writes no bare CR or LF, and no SASL secret appears in the
transcript or the diagnostics.
"""

from __future__ import annotations

import base64
import sys
from typing import Any

from hypothesis import strategies as st
from support.model import MX_DNS, Behaviour, Canonical, ServerModel, ehlo_reply

from smtpproto.requests import (
    ConnectionLost,
    DNSError,
    IOFailure,
    IORequest,
    IOTimeout,
    MXRecord,
    Receive,
    Send,
)

from ._harness import Target, main
from ._world import Setup, check_report, make_config, run_setup

_KEYWORDS = (
    "PIPELINING",
    "8BITMIME",
    "DSN",
    "SIZE",
    "SIZE 100",
    "SIZE 0",
    "SIZE abc",
    "SIZE 99999999999",
    "STARTTLS",
    "ENHANCEDSTATUSCODES",
    "SMTPUTF8",
    "CHUNKING",
    "BINARYMIME",
    "AUTH PLAIN LOGIN",
    "AUTH=LOGIN",
    "AUTH SCRAM-SHA-256 CRAM-MD5",
    "XFORWARD NAME ADDR PROTO HELO",
    "X-EXT a=b",
    "pipelining",
    "",
    " ",
    "8BITMIME extra",
    "\xe9t\xe9",
)
_MAIN_KEYWORDS = (
    "PIPELINING", "STARTTLS", "AUTH PLAIN LOGIN", "AUTH SCRAM-SHA-256 CRAM-MD5", "CHUNKING",
    "8BITMIME", "DSN", "SIZE 100000", "SMTPUTF8",
)  # fmt: skip
_CODES = (
    200,
    211,
    220,
    221,
    235,
    250,
    251,
    252,
    334,
    354,
    421,
    432,
    450,
    451,
    452,
    454,
    500,
    501,
    502,
    503,
    504,
    530,
    534,
    535,
    550,
    551,
    552,
    553,
    554,
    555,
)
_ENHANCED = ("", "2.0.0 ", "4.7.0 ", "5.7.1 ", "2.1.5 ", "4.4.2 ", "5.5.0 ", "9.9.9 ", "2.0 ")
_MESSAGES = (
    b"Subject: t\r\n\r\nhello\r\n",
    b"Subject: dots\r\n\r\n.\r\n..\r\n.x\r\nno end",
    b"Subject: 8\r\nContent-Type: text/plain; charset=utf-8\r\n\r\ncaf\xc3\xa9\r\n",
    b"Subject: long\r\n\r\n" + b"y" * 1100 + b"\r\n",
    b"",
    b"bare\nline\rends\r\n",
)
_CHALLENGE = base64.b64encode(b"<1896.697170952@postoffice.example.net>")


# Per-mille chance of each hostile decision, by the hostility level drawn for the run: most
# runs must get deep into the dialogue (STARTTLS, AUTH, DATA, BDAT, reuse) before going wrong.
_RATES = (0, 20, 80, 300)


class Hostile(Behaviour):
    """Every decision of the world drawn from hypothesis's `data`.

    Draws are arranged so that hypothesis shrinks towards the correct server: the smaller a
    draw, the more normal the behaviour.
    """

    def __init__(self, data: Any, lmtp: bool) -> None:
        self.data = data
        self.lmtp = lmtp
        self.rate = _RATES[self._int(len(_RATES) - 1)]

    def _int(self, top: int) -> int:
        value: int = self.data.draw(st.integers(0, top))
        return value

    def _odd(self, scale: int = 1) -> bool:
        """One hostile decision, at this run's rate (divided by `scale`)."""
        return self._int(999) >= 1000 - self.rate // scale

    def dns(self, name: str, rrtype: str) -> Any:
        """The two-MX world, or now and then failures, null MX or empty answers."""
        answer = MX_DNS.get((name, rrtype))
        if self._odd():
            choice = self._int(5)
            if choice == 0:
                return DNSError("temporary", "SERVFAIL")
            if choice == 1:
                return DNSError("nxdomain", "no such domain")
            if choice == 2:
                return ()
            if choice == 3 and rrtype == "MX":
                return (MXRecord(0, ""),)
            if choice == 4 and rrtype == "MX":
                return (MXRecord(5, "mx1.example.com"), MXRecord(5, "mx1.example.com"))
            if choice == 5 and rrtype == "A":
                return ("192.0.2.1", "192.0.2.2")
        return DNSError("nxdomain", "no such domain") if answer is None else answer

    def connect(self, address: str) -> bool:
        """Accepted, but now and then refused."""
        return not self._odd()

    def greeting(self, server: ServerModel) -> bytes:
        """220; now and then a refusal, a PIX-style banner, garbage, or no ESMTP."""
        if not self._odd():
            return b"220 mx.example ESMTP\r\n"
        choice = self._int(5)
        if choice == 0:
            return b"421 4.3.2 busy\r\n"
        if choice == 1:
            return b"554 5.7.1 go away\r\n"
        if choice == 2:
            return b"220 ****************\r\n"
        if choice == 3:
            self.desync = True
            return self.data.draw(st.binary(max_size=20))  # type: ignore[no-any-return]
        if choice == 4:
            return b"220-mx.example\r\n220 ESMTP\r\n"
        return b"220 mx.example\r\n"  # no ESMTP in the banner: HELO

    def _capabilities(self) -> bytes:
        # The extensions the engine acts on, each on a coin flip, then odd ones.
        keywords = [k for k in _MAIN_KEYWORDS if self._int(1)]
        keywords += self.data.draw(st.lists(st.sampled_from(_KEYWORDS), max_size=3))
        return ehlo_reply(*keywords)

    def _mutated(self) -> bytes:
        code = self.data.draw(st.sampled_from(_CODES))
        enhanced = self.data.draw(st.sampled_from(_ENHANCED))
        lines = self._int(2)
        body = b"".join(b"%d-%s line\r\n" % (code, enhanced.encode()) for _ in range(lines))
        return body + b"%d %stext\r\n" % (code, enhanced.encode())

    def reply(self, server: ServerModel, verb: str, line: bytes) -> bytes:
        """The correct reply; now and then mutations, garbage, 421, silence."""
        if not self._odd():
            if verb in ("EHLO", "LHLO") and (verb == "LHLO") == self.lmtp:
                return self._capabilities()
            if verb == "AUTH":
                if self._int(1):
                    return b"334 " + _CHALLENGE + b"\r\n"
                return b"235 2.7.0 Authentication successful\r\n"
            if verb == "AUTH-RESPONSE":
                if self._int(3) == 0:
                    return b"334 " + _CHALLENGE + b"\r\n"
                return b"235 2.7.0 Authentication successful\r\n"
            return Canonical().reply(server, verb, line)
        choice = self._int(9)
        if choice < 3:
            return self._mutated()
        if choice == 3:
            server.closing = True
            return b"421 4.4.2 closing\r\n"
        if choice == 4:
            self.desync = True
            return self.data.draw(st.binary(max_size=30))  # type: ignore[no-any-return]
        if choice == 5:
            return b"250-first\r\n550 second\r\n"  # code changes inside a reply (RP-05)
        if choice == 6:
            self.desync = True
            return b"250 2.0.0 Ok\r\n250 2.0.0 extra\r\n"  # one reply too many
        if choice == 7:
            self.desync = True
            return b""  # silence: the client times out
        if choice == 8:
            return b"334 " + _CHALLENGE + b"\r\n"
        if verb == "STARTTLS":
            self.desync = True
            return b"220 2.0.0 go\r\n250 injected\r\n"  # NS-01: response injection
        return b"354 go ahead\r\n"

    def end_of_data(self, server: ServerModel) -> list[tuple[bytes, list[str]]]:
        """Per the protocol; now and then mutated, or LMTP reply counts off by one."""
        accepted = list(server.accepted)
        if not self.lmtp:
            if not accepted:
                return [(b"554 5.5.1 Error: no valid recipients\r\n", [])]
            reply = self._mutated() if self._odd() else b"250 2.0.0 Ok: queued\r\n"
            return [(reply, accepted)]
        count = len(accepted)
        if self._odd():
            self.desync = True
            count += self.data.draw(st.sampled_from([-1, 1]))
        out: list[tuple[bytes, list[str]]] = []
        for i in range(max(count, 0)):
            reply = self._mutated() if self._odd() else b"250 2.0.0 delivered\r\n"
            out.append((reply, [accepted[i]] if i < len(accepted) else []))
        return out

    def fault(self, index: int, request: IORequest) -> IOFailure | bytes | None:
        """Now and then the stream breaks or stalls at a read or write."""
        if not isinstance(request, (Send, Receive)) or not self._odd(scale=4):
            return None
        choice = self._int(2)
        if choice == 0:
            return ConnectionLost("connection reset")
        if choice == 1:
            return IOTimeout("timed out")
        return b"" if isinstance(request, Receive) else None

    def chunk(self, server: ServerModel, available: int, delivered: int) -> int | IOFailure | bytes:
        """All that is there, or a random part of it."""
        if available < 2 or self._int(2) == 0:
            return available
        return self._int(available - 2) + 1

    def handshake(self, server: ServerModel) -> bool:
        """A success; now and then a failure."""
        return not self._odd()


@st.composite
def _setup(draw: st.DrawFn) -> Setup:
    lmtp = draw(st.booleans())
    tls = draw(st.sampled_from(["none", "may", "encrypt"]))
    options = {
        "skip_quit_response": draw(st.booleans()),
        "destination_recipient_limit": draw(st.integers(1, 3)),
        "line_length_limit": draw(st.sampled_from([998, 0, 78])),
        "chunking": draw(st.booleans()),
    }
    if not lmtp:
        options["mx_session_limit"] = draw(st.integers(1, 3))
    count = draw(st.integers(1, 4))
    recipients = tuple(f"r{i}@example.com" for i in range(count))
    destination = (
        draw(st.sampled_from(["inet:[192.0.2.1]:24", "inet:mx1.example.com:24"]))
        if lmtp
        else draw(st.sampled_from(["example.com", "[192.0.2.1]", "[mx1.example.com]:2525"]))
    )
    message = draw(st.sampled_from(_MESSAGES))
    return Setup(destination, recipients, message, make_config(lmtp=lmtp, tls=tls, **options))


def check(value: tuple[Setup, Any]) -> None:
    """Run one hostile world; the invariants in the module docstring."""
    setup, data = value
    behaviour = Hostile(data, setup.config.lmtp)
    outcome = run_setup(setup, behaviour)
    check_report(setup, outcome, strict=True)


TARGET = Target(
    "session",
    "the delivery engine against hostile grammar-aware servers and faults",
    strategy=st.tuples(_setup(), st.data()),
    check=check,
)

if __name__ == "__main__":
    sys.exit(main({TARGET.name: TARGET}, only=TARGET.name))
