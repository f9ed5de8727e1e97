"""The invariants of DESIGN.md, checked on one reactive run of the engine (`support.world`).

Shared by the fuzz targets and the property tests: whatever the servers did, every recipient
ends with exactly one status whose DSN class matches it, ``sent`` only with a positive reply
(and, while the servers told no lies, only for a recipient a server delivered), every
connection is closed, and no secret reaches the transcript or a diagnostic.
"""

from __future__ import annotations

from collections.abc import Sequence

from .model import Violation
from .world import Outcome

__all__ = ["check_outcome"]


def check_outcome(
    outcome: Outcome,
    recipients: Sequence[str],
    *,
    strict: bool,
    secrets: Sequence[str] = (),
) -> None:
    """`Violation` unless `outcome` keeps the invariants for the envelope's `recipients`.

    `strict`: a ``sent`` recipient must have been delivered by a server, unless the servers
    desynchronised the dialogue; `secrets`: strings that must appear nowhere in the report.
    """
    report = outcome.report
    addresses = [r.address for r in report.recipients]
    if addresses != list(recipients):
        raise Violation(f"recipients {addresses} != envelope {list(recipients)}")
    for r in report.recipients:
        if r.status not in ("sent", "deferred", "bounced"):
            raise Violation(f"unknown status {r.status!r}")
        if r.dsn[:1] != {"sent": "2", "deferred": "4", "bounced": "5"}[r.status]:
            raise Violation(f"{r.address}: status {r.status} with dsn {r.dsn}")
        if "internal error" in r.diagnostic:
            # The engine's last guard (engine/delivery.py _internal_error) hid a bug.
            raise Violation(f"{r.address}: {r.diagnostic}")
        if r.status == "sent":
            if r.reply is None or not r.reply.is_positive:
                raise Violation(f"{r.address}: sent without a positive reply: {r.reply}")
            if strict and not outcome.desync and r.address not in outcome.delivered:
                raise Violation(f"{r.address}: sent, but no server accepted it at end of data")
    for channel in outcome.channels:
        if not channel.closed:
            raise Violation(f"connection #{channel.number} to {channel.address} never closed")
    texts = [*report.transcript, *(r.diagnostic for r in report.recipients)]
    for text in texts:
        for secret in secrets:
            if secret in text:
                raise Violation(f"a secret in the transcript or a diagnostic: {text!r}")
