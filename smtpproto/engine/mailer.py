"""A Mailer's plan: recipients grouped by next hop, every input checked before the first
byte, and one report made of the deliveries' reports (Postfix's trivial-rewrite and queue
manager, for one message).

The adapters' ``Mailer`` runs `plan`, then one ``deliver`` per `Group` against the shared
`ConnectionCache` of `new_cache` (concurrently when `Plan.concurrent`), then `merge`. A
Mailer's own background work is `smtpproto.engine.tend_cache` and, at the end,
`smtpproto.engine.close_cache`.
"""

from __future__ import annotations

import email.message
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, replace

from .._errors import LocalProtocolError
from ..body import MessageSource, scan
from ..config import ClientConfig
from ..destinations import IDNAEncoder, normalize_domain, parse_destinations
from ..envelope import Envelope
from ..report import DeliveryReport, RecipientResult
from .cache import ConnectionCache, Limits
from .session import Session
from .transaction import EnvelopeCommands

__all__ = ["Group", "Plan", "merge", "new_cache", "next_hop", "plan"]


@dataclass(frozen=True)
class Group:
    """The recipients that go to one next hop: their indices in the whole envelope and the
    envelope of this delivery (the same sender and parameters, these recipients only)."""

    destination: str
    indices: tuple[int, ...]
    envelope: Envelope


@dataclass(frozen=True)
class Plan:
    """One message's deliveries: a `Group` per next hop, in order of first appearance.

    `concurrent` says the deliveries may read the message at the same time: bytes or an
    ``email.message.Message``; a file is read by one delivery after the other, since each
    reads it from the same position and puts it back there.
    """

    envelope: Envelope
    groups: tuple[Group, ...]
    concurrent: bool


def next_hop(address: str, *, idna: IDNAEncoder | None = None) -> str:
    """The next hop of a recipient: its domain in A-labels, lower case, or its address
    literal as a destination (``[192.0.2.1]``, ``[ipv6:2001:db8::1]``)."""
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        raise LocalProtocolError(f"{address!r} has no domain to route by; pass destination=")
    if not (domain.startswith("[") and domain.endswith("]")):
        return normalize_domain(domain, idna)
    literal = domain[1:-1]
    tag, colon, rest = literal.partition(":")
    try:
        # RFC 5321 4.1.3: an IPv4 literal, or IPv6 with its tag; no other tag is routable.
        if colon and tag.lower() == "ipv6":
            return f"[ipv6:{ipaddress.IPv6Address(rest).compressed}]"
        return f"[{ipaddress.IPv4Address(literal)}]"
    except ValueError:
        raise LocalProtocolError(f"{address!r}: not a routable address literal") from None


def plan(
    envelope: Envelope,
    message: MessageSource,
    *,
    config: ClientConfig,
    destination: str | None = None,
    idna: IDNAEncoder | None = None,
) -> Plan:
    """Group `envelope`'s recipients by next hop (or all to `destination`), after checking
    every address, parameter and next hop: nothing raises once the first delivery began."""
    if not isinstance(envelope, Envelope):
        raise LocalProtocolError(f"envelope: expected Envelope, got {type(envelope).__name__}")
    EnvelopeCommands.build(envelope, scan(message), config)
    if destination is None and config.lmtp:
        raise LocalProtocolError("destination: LMTP has no next hop by domain; name the server")
    hops: dict[str, list[int]] = {}
    for n, recipient in enumerate(envelope.recipients):
        if destination is not None:
            hop = destination
        else:
            try:
                hop = next_hop(recipient.address, idna=idna)
            except LocalProtocolError as error:
                raise LocalProtocolError(f"recipients[{n}]: {error}") from None
        hops.setdefault(hop, []).append(n)
    for hop in hops:
        parse_destinations(hop, lmtp=config.lmtp, config=config, idna=idna)
    groups = tuple(
        Group(
            hop,
            tuple(indices),
            replace(envelope, recipients=tuple(envelope.recipients[i] for i in indices)),
        )
        for hop, indices in hops.items()
    )
    concurrent = isinstance(message, bytes | bytearray | memoryview | email.message.Message)
    return Plan(envelope, groups, concurrent)


def merge(plan: Plan, reports: Sequence[DeliveryReport]) -> DeliveryReport:
    """One report for the whole envelope: each recipient's result in envelope order, the
    first TLS seen, ``destination_down`` when any next hop was down, every transcript and
    every TLS attempt (TLS-RPT counts each next hop's)."""
    if len(reports) != len(plan.groups):
        raise LocalProtocolError(f"reports: expected {len(plan.groups)}, got {len(reports)}")
    results: dict[int, RecipientResult] = {}
    for group, report in zip(plan.groups, reports, strict=True):
        if len(report.recipients) != len(group.indices):
            raise LocalProtocolError(f"reports: {group.destination} has the wrong recipients")
        results.update(zip(group.indices, report.recipients, strict=True))
    return DeliveryReport(
        recipients=tuple(results[i] for i in range(len(plan.envelope.recipients))),
        tls=next((r.tls for r in reports if r.tls is not None), None),
        destination_down=any(r.destination_down for r in reports),
        transcript=tuple(line for r in reports for line in r.transcript),
        tls_attempts=tuple(attempt for r in reports for attempt in r.tls_attempts),
    )


def new_cache(config: ClientConfig) -> ConnectionCache[Session]:
    """The connection cache a Mailer shares between its deliveries, with `config`'s limits."""
    return ConnectionCache(Limits.of(config, shared=True))
