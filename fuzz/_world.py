"""The delivery requests the ``session`` and ``faults`` targets run, in the shared world.

The world itself (DNS, connections, the reactive SMTP/LMTP/BDAT server model and its
`Behaviour`) is ``tests/support``; this module adds what the two targets share: a `Setup`
(destination, envelope, message, a configuration holding a SASL secret), `run_setup` to drive
``deliver`` for one in a fresh world, and `check_report`, DESIGN.md's invariants with that
secret among the strings that must never reach a transcript.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from support.invariants import check_outcome
from support.model import Behaviour, Expect, Violation
from support.world import Clock, LcgRng, Outcome, World

from smtpproto.config import ClientConfig
from smtpproto.engine import deliver
from smtpproto.envelope import Envelope, Recipient
from smtpproto.report import DeliveryReport

MAX_REQUESTS = 3000
"""An engine that asks for more I/O than this on these small inputs is looping."""

SECRET = "SECRETPASS-7f3a"
"""The SASL password in every fuzzed configuration; it must never reach a transcript."""

_SECRET_FORMS = (
    SECRET,
    base64.b64encode(SECRET.encode()).decode(),
    base64.b64encode(f"\0user\0{SECRET}".encode()).decode(),
)


@dataclass(frozen=True)
class Setup:
    """One delivery request: destination, envelope, message, configuration."""

    destination: str
    recipients: tuple[str, ...]
    message: bytes
    config: ClientConfig
    smtputf8: bool = False

    def __repr__(self) -> str:
        """Only what differs from the defaults, so a falsifying example stays readable."""
        default = make_config(lmtp=self.config.lmtp, tls=self.config.tls_security_level)
        changed = {
            name: getattr(self.config, name)
            for name in (
                "destination_recipient_limit",
                "skip_quit_response",
                "line_length_limit",
                "mx_session_limit",
                "chunking",
            )
            if getattr(self.config, name) != getattr(default, name)
        }
        return (
            f"Setup({self.destination!r}, {self.recipients!r}, {self.message!r}, "
            f"make_config(lmtp={self.config.lmtp}, tls={self.config.tls_security_level!r}"
            + "".join(f", {k}={v!r}" for k, v in changed.items())
            + f"), smtputf8={self.smtputf8})"
        )

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        # hypothesis prints falsifying examples with IPython-style pretty printing.
        printer.text(repr(self))

    def envelope(self) -> Envelope:
        """The envelope of this request."""
        return Envelope(
            "sender@example.org",
            tuple(Recipient(r) for r in self.recipients),
            smtputf8=self.smtputf8,
        )

    def expect(self) -> Expect:
        """What the servers insist on from a client with this configuration."""
        return Expect(
            line_length_limit=self.config.line_length_limit,
            tls_required=self.config.tls_security_level == "encrypt",
        )


def make_config(*, lmtp: bool, tls: str, **options: Any) -> ClientConfig:
    """A configuration with a SASL secret in it, whatever else the case wants."""
    return ClientConfig(
        lmtp=lmtp,
        helo_name="client.example",
        tls_security_level=tls,
        sasl_auth_enable=True,
        sasl_password_maps={"[192.0.2.1]": f"user:{SECRET}", "example.com": f"user:{SECRET}"},
        **options,
    )


def run_setup(setup: Setup, behaviour: Behaviour) -> Outcome:
    """Drive ``deliver`` for `setup` in a fresh world whose every decision is `behaviour`'s."""
    world = World.reactive(behaviour, lmtp=setup.config.lmtp, expect=setup.expect())
    engine = deliver(
        setup.destination,
        setup.envelope(),
        setup.message,
        config=setup.config,
        clock=Clock(),
        rng=LcgRng(),
    )
    report = world.run(engine, max_steps=MAX_REQUESTS)
    if not isinstance(report, DeliveryReport):
        raise Violation(f"the engine returned {report!r}")
    return world.outcome(report)


def check_report(setup: Setup, outcome: Outcome, *, strict: bool) -> None:
    """DESIGN.md's invariants on one run. `strict`: the server never lied (no desync)."""
    check_outcome(outcome, setup.recipients, strict=strict, secrets=_SECRET_FORMS)
