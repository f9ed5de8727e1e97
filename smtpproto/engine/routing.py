"""Server selection as pure functions (Postfix smtp_addr.c/smtp_connect.c, rule 14): MX
ordering with an injected RNG, null MX, record caps, loop detection, address-family balance,
attempt limits, fallback relays, and the DSN status of each lookup failure."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Literal, TypeVar

from .._errors import LocalProtocolError
from ..config import ClientConfig
from ..destinations import Destination, IDNAEncoder, parse_destinations, valid_hostname
from ..requests import MXRecord, Random

__all__ = [
    "MAX_MX_RECORDS",
    "Attempts",
    "DNSFailure",
    "Hop",
    "ImplicitMX",
    "MXSelection",
    "RouteStatus",
    "SelfCheck",
    "Target",
    "address_lookup_status",
    "address_rrtypes",
    "balance_families",
    "destination_is_final",
    "host_loops",
    "is_final_server",
    "keep_soft",
    "loop_detection_applies",
    "mx_lookup_failure",
    "no_mx_address_status",
    "order_addresses",
    "plan_hops",
    "select_mx",
    "shuffle",
    "truncate_self",
]

# DN-14: Postfix 3.9 caps DNS results at 100 records.
MAX_MX_RECORDS = 100

T = TypeVar("T")


@dataclass(frozen=True)
class RouteStatus:
    """A routing failure: DSN status and Postfix's diagnostic text."""

    dsn: str
    text: str

    def __post_init__(self) -> None:
        if self.dsn[:2] not in ("4.", "5."):
            raise LocalProtocolError(f"dsn: expected 4.x.x or 5.x.x, got {self.dsn!r}")

    @property
    def soft(self) -> bool:
        """Status class 4: defer, or try the next server (rule 0)."""
        return self.dsn.startswith("4")

    def softened(self) -> RouteStatus:
        """The same status as a deferral (5.x.y -> 4.x.y), e.g. rule 14.4."""
        return replace(self, dsn="4" + self.dsn[1:])


@dataclass(frozen=True)
class ImplicitMX:
    """No MX records: deliver to `domain`'s own addresses as preference 0 (RFC 5321 5.1)."""

    domain: str


@dataclass(frozen=True)
class MXSelection:
    """The outcome of :func:`select_mx`: exchanges in the order to try, warnings to log, or a
    status that ends the destination (null MX, nothing usable)."""

    records: tuple[MXRecord, ...]
    warnings: tuple[str, ...] = ()
    status: RouteStatus | None = None


@dataclass(frozen=True)
class Target:
    """One address to connect to: the host it was found for, its MX preference."""

    host: str
    address: str
    preference: int = 0
    secure: bool = False
    """The address lookup was DNSSEC-validated (``smtp_dns_support_level = dnssec``)."""
    canonical: str | None = None
    """Where CNAMEs led the address lookup of `host`, when elsewhere (RFC 7672 2.2.2)."""

    def __post_init__(self) -> None:
        try:
            ipaddress.ip_address(self.address)
        except ValueError:
            raise LocalProtocolError(f"address: not an IP address: {self.address!r}") from None

    @property
    def family(self) -> Literal["ipv4", "ipv6"]:
        """``ipv4`` or ``ipv6``."""
        return "ipv6" if ":" in self.address else "ipv4"


def shuffle(items: Sequence[T], rng: Random) -> list[T]:
    """A Fisher-Yates shuffle of `items` driven by ``rng.random()`` (the core draws nothing)."""
    result = list(items)
    for i in range(len(result) - 1, 0, -1):
        j = min(int(rng.random() * (i + 1)), i)
        result[i], result[j] = result[j], result[i]
    return result


def _is_null(record: MXRecord) -> bool:
    return record.exchange in ("", ".")


def _is_numeric(name: str) -> bool:
    try:
        ipaddress.ip_address(name.rstrip("."))
    except ValueError:
        return False
    return True


def select_mx(
    records: Sequence[MXRecord],
    domain: str,
    *,
    rng: Random,
    randomize: bool = True,
    limit: int = MAX_MX_RECORDS,
) -> MXSelection:
    """Order `domain`'s MX records for delivery (rules 14.2, 14.5; DN-02, 06, 07, 09, 14).

    Equal preferences come out in `rng` order when `randomize`; at most `limit` records are
    kept, the best ones.
    """
    warnings: list[str] = []
    if len(records) == 1 and _is_null(records[0]):
        # RFC 7505 3: a lone "0 ." means the domain accepts no mail; no implicit MX (DN-06).
        return MXSelection(
            (), (), RouteStatus("5.1.10", f"Domain {domain} does not accept mail (nullMX)")
        )
    usable: list[MXRecord] = []
    for record in records:
        if _is_null(record):
            # DN-07: a null MX among real ones is a misconfiguration; use the real ones.
            warnings.append(f"{domain}: null MX record mixed with other MX records; ignored")
        elif _is_numeric(record.exchange):
            # DN-09, RFC 5321 5.1: an MX target is a name, never an address literal.
            warnings.append(f"{domain}: numeric MX target {record.exchange!r} skipped")
        elif not valid_hostname(record.exchange):
            # DN-18, Postfix dns_lookup.c valid_rr_name(): never looked up, connected to or
            # matched against a certificate. The name is cut as Postfix cuts it (%.100s).
            warnings.append(
                f"malformed domain name in resource data of MX record for {domain}: "
                f"{record.exchange[:100]}"
            )
        else:
            usable.append(MXRecord(record.preference, record.exchange.rstrip(".").lower()))
    if not usable:
        status = RouteStatus("5.4.4", f"no MX host for {domain} has a valid host name")
        return MXSelection((), tuple(warnings), status)
    if randomize:
        # Rule 14.5: shuffle everything, then a stable sort, so equal preferences stay random.
        usable = shuffle(usable, rng)
    ordered = sorted(usable, key=lambda r: r.preference)
    if len(ordered) > limit:
        # DN-14: keep the best `limit`; the sort above is O(n log n) on an already-bounded
        # DNS answer, the truncation linear.
        warnings.append(f"{domain}: {len(ordered)} MX records, using the best {limit}")
        ordered = ordered[:limit]
    return MXSelection(tuple(ordered), tuple(warnings))


def address_rrtypes(config: ClientConfig) -> tuple[Literal["A", "AAAA"], ...]:
    """The address record types to query, preferred family first (rules 14.3, 14.5)."""
    types: list[Literal["A", "AAAA"]] = []
    if "ipv4" in config.inet_protocols:
        types.append("A")
    if "ipv6" in config.inet_protocols:
        types.append("AAAA")
    if config.address_preference == "ipv6":
        types.reverse()
    return tuple(types)


def order_addresses(
    targets: Iterable[Target], *, config: ClientConfig, rng: Random
) -> tuple[Target, ...]:
    """Shuffle, sort by preference (then family per ``address_preference``), balance the
    families and cap at ``mx_address_limit`` (rules 14.5, 14.7)."""
    items = [t for t in targets if t.family in config.inet_protocols]
    if config.randomize_addresses:
        items = shuffle(items, rng)
    preferred = config.address_preference
    if preferred == "any":
        items.sort(key=lambda t: t.preference)
    else:
        items.sort(key=lambda t: (t.preference, t.family != preferred))
    limit = config.mx_address_limit
    if config.balance_inet_protocols:
        items = list(balance_families(items, limit))
    if limit:
        items = items[:limit]
    return tuple(items)


def balance_families(targets: Sequence[Target], limit: int) -> tuple[Target, ...]:
    """Postfix's smtp_balance_inet_protocols (rule 14.5): with both families present and more
    than `limit` addresses, keep a fair share of each, in the original order."""
    v6 = [t for t in targets if t.family == "ipv6"]
    v4 = [t for t in targets if t.family == "ipv4"]
    if not limit or not v6 or not v4 or len(targets) <= limit:
        return tuple(targets)
    if 2 * len(v6) <= limit:
        keep6, keep4 = len(v6), limit - len(v6)
    elif 2 * len(v4) <= limit:
        keep4, keep6 = len(v4), limit - len(v4)
    else:
        half, extra = divmod(limit, 2)
        first_is_v6 = targets[0].family == "ipv6"
        keep6 = half + (extra if first_is_v6 else 0)
        keep4 = half + (0 if first_is_v6 else extra)
    chosen = {id(t) for t in v6[:keep6]} | {id(t) for t in v4[:keep4]}
    return tuple(t for t in targets if id(t) in chosen)


@dataclass(frozen=True)
class SelfCheck:
    """Loop detection outcome: the targets left, whether we are an MX ("I am MX": no fallback
    relays), and the status when nothing is left (rule 14.6)."""

    targets: tuple[Target, ...]
    i_am_mx: bool = False
    status: RouteStatus | None = None


def _own(config: ClientConfig) -> tuple[frozenset[str], frozenset[str]]:
    # Asked for every delivery on port 25: remembered with the configuration.
    return config._derived(("own",), lambda: _own_names_and_addresses(config))


def _own_names_and_addresses(config: ClientConfig) -> tuple[frozenset[str], frozenset[str]]:
    addresses = frozenset(
        str(ipaddress.ip_address(a)) for a in config.inet_interfaces + config.proxy_interfaces
    )
    names = frozenset({config.myhostname.lower().rstrip("."), config.helo_name.lower().rstrip(".")})
    return names, addresses


def loop_detection_applies(destination: Destination, config: ClientConfig) -> bool:
    """Loop detection runs for SMTP on port 25 only: not for content filters or LMTP (14.6)."""
    return not config.lmtp and destination.kind != "unix" and destination.port == 25


def truncate_self(
    targets: Sequence[Target],
    domain: str,
    *,
    config: ClientConfig,
    better_unresolved: bool = False,
) -> SelfCheck:
    """Drop the preference level of our own first entry and everything worse (DN-12).

    `better_unresolved` says better MX hosts existed but had no address: then an empty result
    is ``4.4.4`` rather than ``5.4.6`` (rule 14.6).
    """
    names, addresses = _own(config)
    # The best preference at which we appear, whatever order `targets` is in.
    cut = min(
        (t.preference for t in targets if t.address in addresses or t.host in names), default=None
    )
    if cut is None:
        return SelfCheck(tuple(targets))
    left = tuple(t for t in targets if t.preference < cut)
    if left:
        return SelfCheck(left, i_am_mx=True)
    if better_unresolved:
        status = RouteStatus("4.4.4", f"unable to find primary relay for {domain}")
    else:
        status = RouteStatus("5.4.6", f"mail for {domain} loops back to myself")
    return SelfCheck((), i_am_mx=True, status=status)


def host_loops(targets: Iterable[Target], host: str, *, config: ClientConfig) -> RouteStatus | None:
    """For ``[host]`` destinations: any local address loops (rule 14.6)."""
    _, addresses = _own(config)
    if any(t.address in addresses for t in targets):
        return RouteStatus("5.4.6", f"mail for {host} loops back to myself")
    return None


DNSFailure = Literal[
    "nxdomain", "nodata", "temporary", "permanent", "unavailable", "policy", "filter"
]
"""How a lookup failed: `DNSError.kind`, NODATA, or ``smtp_dns_reply_filter``'s: ``policy``
(every record dropped, Postfix's DNS_POLICY), ``filter`` (a result that is no action)."""


def mx_lookup_failure(
    kind: DNSFailure, domain: str, *, config: ClientConfig
) -> ImplicitMX | RouteStatus:
    """What an MX lookup failure means (rule 14.2; DN-03, 04, 05)."""
    if kind == "nodata":
        return ImplicitMX(domain)
    if kind == "nxdomain":
        # DN-04: a name that does not exist has no addresses either; skip the A query.
        return RouteStatus(
            "5.4.4",
            f"Host or domain name not found. Name service error for name={domain} type=MX: "
            "Host not found",
        )
    if config.ignore_mx_lookup_error and kind != "policy":
        return ImplicitMX(domain)
    return _LOOKUP_FAILURES[kind](domain, "MX")


_LOOKUP_FAILURES = {
    "temporary": lambda name, t: RouteStatus(
        "4.4.3",
        f"Host or domain name not found. Name service error for name={name} type={t}: "
        "Host not found, try again",
    ),
    "permanent": lambda name, t: RouteStatus(
        "5.4.3", f"Name service error for name={name} type={t}: non-recoverable error"
    ),
    "unavailable": lambda name, t: RouteStatus(
        "4.4.3", f"Name service error for name={name} type={t}: no resolver available"
    ),
    # Postfix dns_lookup.c: the smtp_dns_reply_filter outcomes.
    "policy": lambda name, t: RouteStatus(
        "4.7.0", f"Error looking up name={name} type={t}: DNS reply filter drops all results"
    ),
    "filter": lambda name, t: RouteStatus(
        "4.4.3", f"Error looking up name={name} type={t}: Invalid DNS reply filter syntax"
    ),
}


def address_lookup_status(
    kind: DNSFailure, host: str, rrtype: str, *, soft_seen: bool = False
) -> RouteStatus:
    """The status of a failed host address lookup (rule 14.3): NXDOMAIN/NODATA is ``5.4.4``,
    ``4.4.4`` when a soft error was already recorded."""
    if kind in ("nxdomain", "nodata"):
        dsn = "4.4.4" if soft_seen else "5.4.4"
        return RouteStatus(
            dsn,
            f"Host or domain name not found. Name service error for name={host} "
            f"type={rrtype}: Host not found",
        )
    return _LOOKUP_FAILURES[kind](host, rrtype)


def keep_soft(previous: RouteStatus | None, new: RouteStatus) -> RouteStatus:
    """A soft status is never overwritten by a later hard one (rule 14.3)."""
    if previous is not None and previous.soft and not new.soft:
        return previous
    return new


def no_mx_address_status(
    domain: str, last: RouteStatus | None, *, config: ClientConfig
) -> RouteStatus:
    """MX hosts exist but none has an address (rule 14.4, DN-08): the last lookup status,
    softened when ``defer_if_no_mx_address_found``."""
    status = last or RouteStatus("5.4.4", f"no MX host for {domain} has a valid address record")
    if config.defer_if_no_mx_address_found and not status.soft:
        return status.softened()
    return status


@dataclass(frozen=True)
class Hop:
    """One entry of the combined next-hop list; `fallback` marks a fallback relay (14.10)."""

    destination: Destination
    fallback: bool = False


def plan_hops(
    destinations: Sequence[Destination], *, config: ClientConfig, idna: IDNAEncoder | None = None
) -> tuple[Hop, ...]:
    """The next-hop list with ``fallback_relay`` appended (rules 14.1, 14.10); a UNIX-domain
    destination gets no fallback relays (rule 12.2). `idna` encodes non-ASCII relay names."""
    hops = tuple(Hop(d) for d in destinations)
    if not config.fallback_relay or any(d.kind == "unix" for d in destinations):
        return hops
    relays = parse_destinations(
        " ".join(config.fallback_relay), lmtp=config.lmtp, config=config, idna=idna
    )
    return hops + tuple(Hop(d, fallback=True) for d in relays)


def destination_is_final(
    index: int, hops: Sequence[Hop], *, i_am_mx: bool = False, looped: bool = False
) -> bool:
    """Whether ``hops[index]`` is the last destination to try (rule 14.7): the last entry, or
    "I am MX", or a loop was found (no fallback then, rule 14.10), or a UNIX socket (12.2)."""
    if i_am_mx or looped or hops[index].destination.kind == "unix":
        return True
    return index == len(hops) - 1


def is_final_server(destination_final: bool, attempts: Attempts, *, addresses_left: int) -> bool:
    """Postfix's FINAL_SERVER flag (rule 14.7): only there do soft errors become ``deferred``.

    `attempts` are the counts before the current address is counted; `addresses_left` is how
    many addresses follow it in this destination's list.
    """
    if not destination_final:
        return False
    return addresses_left == 0 or not attempts.after_address().may_try


@dataclass(frozen=True)
class Attempts:
    """Per-destination counts against ``mx_address_limit``/``mx_session_limit`` (0 = none).

    Every address tried counts, even a failed connect; only sessions past the handshake count
    as sessions (rule 14.7; DN-13).
    """

    address_limit: int
    session_limit: int
    addresses: int = 0
    sessions: int = 0

    def __post_init__(self) -> None:
        for name in ("address_limit", "session_limit", "addresses", "sessions"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise LocalProtocolError(f"{name}: expected an int >= 0, got {value!r}")

    @classmethod
    def for_config(cls, config: ClientConfig) -> Attempts:
        """Fresh counts with `config`'s limits."""
        return cls(config.mx_address_limit, config.mx_session_limit)

    @property
    def may_try(self) -> bool:
        """Whether another address may be tried."""
        if self.address_limit and self.addresses >= self.address_limit:
            return False
        return not (self.session_limit and self.sessions >= self.session_limit)

    def after_address(self) -> Attempts:
        """The counts after one more address was tried."""
        return replace(self, addresses=self.addresses + 1)

    def after_session(self) -> Attempts:
        """The counts after one more session got past the handshake."""
        return replace(self, sessions=self.sessions + 1)
