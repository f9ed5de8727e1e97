"""Next-hop destinations in Postfix syntax (smtp(8) "SMTP/LMTP DESTINATION SYNTAX", rules 14.1,
12.1): ``domain[:port]``, ``[host][:port]``, ``[addr][:port]``, ``[ipv6:addr][:port]``, and for
LMTP ``unix:/path`` and ``inet:`` forms. Pure parsing: no services database, no DNS."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal, Protocol

from ._errors import LocalProtocolError

__all__ = [
    "IDNA_MISSING",
    "KNOWN_PORTS",
    "Destination",
    "IDNAEncoder",
    "PortDefaults",
    "normalize_domain",
    "parse_destinations",
    "valid_hostname",
]

IDNAEncoder = Callable[[str], str]
"""Turns a domain with non-ASCII labels into its A-label (``xn--``) form, or raises
``ValueError``/``UnicodeError``. The adapters pass IDNA 2008 with UTS #46 mapping (the ``idna``
package), as Postfix 3.7 does; the core has no encoder of its own."""

IDNA_MISSING = (
    "needs an IDNA 2008 encoder: install the 'idna' extra (pip install 'smtpproto-client[idna]')"
)
"""Why a non-ASCII domain was refused without an encoder; the adapters say the same."""

# Symbolic ports without a services-database lookup (rule 14.1 known_tcp_ports).
KNOWN_PORTS: Mapping[str, int] = MappingProxyType(
    {"smtp": 25, "lmtp": 24, "smtps": 465, "submissions": 465, "submission": 587}
)


class PortDefaults(Protocol):
    """Where `parse_destinations` finds default ports; `ClientConfig` is one."""

    @property
    def tcp_port(self) -> int:
        """The SMTP port for destinations that name none."""
        ...

    @property
    def lmtp_tcp_port(self) -> int:
        """The LMTP port for destinations that name none."""
        ...

    @property
    def known_tcp_ports(self) -> Mapping[str, int]:
        """Service names a destination may use for its port (Postfix ``known_tcp_ports``)."""
        ...


Kind = Literal["mx", "host", "address", "unix"]

# Rule 14.1: a next-hop list is separated by commas and/or whitespace.
_SEPARATORS = re.compile(r"[\s,]+")
# RFC 1035 2.3.1 letters-digits-hyphen labels; Postfix's valid_hostname also lets "_" through.
_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?", re.ASCII)


@dataclass(frozen=True)
class Destination:
    """One next hop: MX lookup (``mx``), address lookup (``host``), a literal ``address``, or a
    UNIX-domain socket path (``unix``, LMTP only). `text` is the entry as given, with a
    non-ASCII domain in its A-label form, so that policy and password lookups by next hop
    see one spelling."""

    kind: Kind
    host: str
    port: int | None
    text: str

    def __post_init__(self) -> None:
        if self.kind not in ("mx", "host", "address", "unix"):
            raise LocalProtocolError(f"kind: unknown destination kind {self.kind!r}")
        if not self.host or "\0" in self.host:
            raise LocalProtocolError(f"host: empty or NUL in destination {self.text!r}")
        if self.kind == "unix":
            if self.port is not None:
                raise LocalProtocolError("port: a unix destination has no port")
        elif self.port is None or isinstance(self.port, bool) or not 1 <= self.port <= 65535:
            raise LocalProtocolError(f"port: expected 1..65535, got {self.port!r}")

    @property
    def mx_lookup(self) -> bool:
        """Whether the engine looks up MX records (only unbracketed SMTP domains)."""
        return self.kind == "mx"


def valid_hostname(name: str) -> bool:
    """Whether `name` (an A-label, final dot allowed) passes Postfix's ``valid_hostname()``.

    Labels of letters, digits, ``-`` and ``_``, 1 to 63 octets, no ``-`` at either end; at
    most 253 octets in all; not made of digits and dots only (DN-18).
    """
    if name.endswith("."):
        name = name[:-1]
    if not name or len(name) > 253 or not name.isascii():
        return False
    labels = name.split(".")
    if not all(_LABEL.fullmatch(label) for label in labels):
        return False
    return not all(label.isdigit() for label in labels)


def normalize_domain(name: str, idna: IDNAEncoder | None = None) -> str:
    """`name` as a lower-case A-label domain without the trailing dot (DN-16), or raise
    `LocalProtocolError` saying what is wrong.

    A non-ASCII name goes through `idna`; without one it is refused (`IDNA_MISSING`). Python's
    built-in ``idna`` codec is never used: it implements IDNA 2003, which maps ``faß.de`` to
    ``fass.de``, another registered domain (Postfix 3.7 uses IDNA 2008, UTS #46).
    """
    if name.endswith("."):
        name = name[:-1]
    if not name:
        raise LocalProtocolError("empty host name")
    ascii_name = name
    if not name.isascii():
        if idna is None:
            raise LocalProtocolError(f"non-ASCII domain {name!r} {IDNA_MISSING}")
        try:
            ascii_name = idna(name)
        except (UnicodeError, ValueError) as error:
            raise LocalProtocolError(f"invalid host name {name!r} ({error})") from None
        if not isinstance(ascii_name, str) or not ascii_name.isascii():
            raise LocalProtocolError(f"idna: the encoder returned {ascii_name!r} for {name!r}")
    labels = ascii_name.split(".")
    # RFC 1035 2.3.4: labels of 1..63 octets (the regex), 253 octets in all without the dot.
    if len(ascii_name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise LocalProtocolError("invalid host name")
    return ascii_name.lower()


def parse_destinations(
    text: str,
    *,
    lmtp: bool = False,
    config: PortDefaults | None = None,
    default_port: int | None = None,
    idna: IDNAEncoder | None = None,
) -> tuple[Destination, ...]:
    """Parse a next-hop list; the port defaults to `default_port`, else `config`'s
    ``tcp_port``/``lmtp_tcp_port``, else 25 (SMTP) or 24 (LMTP). A port given by name is
    looked up in `config`'s ``known_tcp_ports``, else in `KNOWN_PORTS`. Non-ASCII domains need
    `idna` (see `normalize_domain`)."""
    if not isinstance(text, str):
        raise LocalProtocolError(f"destination: expected a str, got {text!r}")
    known = KNOWN_PORTS if config is None else config.known_tcp_ports
    if default_port is None:
        if config is not None:
            default_port = config.lmtp_tcp_port if lmtp else config.tcp_port
        else:
            default_port = 24 if lmtp else 25
    entries = [entry for entry in _SEPARATORS.split(text) if entry]
    if not entries:
        raise LocalProtocolError("destination: empty")
    return tuple(
        _parse_one(entry, lmtp=lmtp, default_port=default_port, known=known, idna=idna)
        for entry in entries
    )


def _parse_one(
    entry: str,
    *,
    lmtp: bool,
    default_port: int,
    known: Mapping[str, int],
    idna: IDNAEncoder | None,
) -> Destination:
    try:
        return _parse(entry, lmtp=lmtp, default_port=default_port, known=known, idna=idna)
    except ValueError as error:
        raise LocalProtocolError(f"destination {entry!r}: {error}") from None


def _named(kind: Kind, host: str, port: int, entry: str, idna: IDNAEncoder | None) -> Destination:
    name = normalize_domain(host, idna)
    # `host` is a substring of `entry` after an ASCII prefix, so this replaces exactly it.
    text = entry if host.isascii() else entry.replace(host, name, 1)
    return Destination(kind, name, port, text)


def _parse(
    entry: str,
    *,
    lmtp: bool,
    default_port: int,
    known: Mapping[str, int],
    idna: IDNAEncoder | None,
) -> Destination:
    if any(ord(c) < 32 or c == "\x7f" for c in entry):
        raise LocalProtocolError("control characters are not allowed")
    prefix, colon, rest = entry.partition(":")
    scheme = prefix.lower() if colon else ""
    if scheme == "unix":
        if not lmtp:
            raise LocalProtocolError("unix: destinations are for LMTP only")
        if not rest:
            raise LocalProtocolError("empty socket path")
        return Destination("unix", rest, None, entry)
    if scheme == "inet":
        if not lmtp:
            raise LocalProtocolError("inet: destinations are for LMTP only")
        entry_body = rest
    else:
        entry_body = entry
    if entry_body.startswith("["):
        return _parse_bracketed(entry, entry_body, default_port, known, idna)
    host, colon, port_text = entry_body.rpartition(":")
    if not colon:
        host, port_text = entry_body, ""
    port = _port(port_text, default_port, known)
    try:
        # An address needs no lookup; brackets are the documented form, this saves a query.
        address = ipaddress.IPv4Address(host)
    except ValueError:
        # Rule 12.1: LMTP never looks up MX records.
        return _named("host" if lmtp else "mx", host, port, entry, idna)
    return Destination("address", str(address), port, entry)


def _parse_bracketed(
    entry: str, body: str, default_port: int, known: Mapping[str, int], idna: IDNAEncoder | None
) -> Destination:
    inside, bracket, after = body[1:].partition("]")
    if not bracket:
        raise LocalProtocolError('missing "]"')
    if after and not after.startswith(":"):
        # Rule 14.1: Postfix's 'garbage after "]"'.
        raise LocalProtocolError(f'garbage after "]": {after!r}')
    port = _port(after[1:], default_port, known)
    if inside[:5].lower() == "ipv6:":
        try:
            return Destination("address", str(ipaddress.IPv6Address(inside[5:])), port, entry)
        except ValueError:
            raise LocalProtocolError(f"invalid IPv6 address {inside[5:]!r}") from None
    if ":" in inside:
        raise LocalProtocolError("an IPv6 address must be written as [ipv6:address]")
    try:
        return Destination("address", str(ipaddress.IPv4Address(inside)), port, entry)
    except ValueError:
        pass
    if inside.replace(".", "").isdigit():
        raise LocalProtocolError(f"invalid IPv4 address {inside!r}")
    return _named("host", inside, port, entry, idna)


def _port(text: str, default: int, known: Mapping[str, int]) -> int:
    if not text:
        return default
    if text.isascii() and text.isdigit():
        port = int(text)
        if not 1 <= port <= 65535:
            raise LocalProtocolError(f"port {text} out of range 1..65535")
        return port
    try:
        return known[text.lower()]
    except KeyError:
        names = ", ".join(sorted(known))
        raise LocalProtocolError(f"unknown service {text!r} (known: {names})") from None
