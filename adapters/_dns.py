"""DNS for the adapters: a replaceable `Resolver` and defaults over dnspython or getaddrinfo.

MX, TLSA and TXT lookups need dnspython (the ``dns`` extra). Address lookups use dnspython
when a name server is given explicitly or the engine asks for DNSSEC, otherwise the system
resolver (getaddrinfo), so that ``[host]`` destinations honour /etc/hosts and work without
the extra.

DNSSEC (``smtp_dns_support_level = dnssec``): the query carries the DO bit and the answer's
AD bit is reported as `DNSAnswer.authenticated`. Like Postfix, the library validates
nothing itself: it trusts the AD bit of the name servers it asks, which must therefore be a
validating resolver on a trusted path, in practice on the same machine (RFC 7672 2.1,
RFC 6698 4.1).
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import Any, Protocol

from smtpproto.requests import DNSAnswer, DNSError, MXRecord, Records, Resolve, RRType

__all__ = [
    "AsyncResolver",
    "DefaultAsyncResolver",
    "DefaultResolver",
    "Resolver",
    "TrioResolver",
]

Answer = Records | DNSAnswer

_MISSING = "MX, TLSA and TXT lookups need dnspython: pip install 'smtpproto-client[dns]'"
_FAMILIES = {"A": socket.AF_INET, "AAAA": socket.AF_INET6}
_ADDRESS_TYPES = frozenset({"A", "AAAA"})
# EDNS0 with the DO bit (RFC 3225), as Postfix's RES_USE_DNSSEC; 1232 octets (DNS flag day).
_EDNS_PAYLOAD = 1232


class Resolver(Protocol):
    """Blocking lookups; an embedding MTA may pass its own to the blocking adapter."""

    def resolve(self, request: Resolve) -> Answer:
        """Answer `request` or raise `DNSError`; an empty tuple means NODATA."""
        ...


class AsyncResolver(Protocol):
    """Lookups for the asyncio and trio adapters."""

    async def resolve(self, request: Resolve) -> Answer:
        """Answer `request` or raise `DNSError`; an empty tuple means NODATA."""
        ...


def _have_dnspython() -> bool:
    try:
        import dns.resolver  # noqa: F401
    except ImportError:
        return False
    return True


def _dns_failure(error: BaseException) -> DNSError:
    # Postfix dns_lookup(): NXDOMAIN is permanent for the name, SERVFAIL/timeouts are
    # retried later, anything else the server refuses is a hard error.
    import dns.exception
    import dns.resolver

    if isinstance(error, dns.resolver.NXDOMAIN):
        return DNSError("nxdomain", f"Host or domain name not found: {error}")
    if isinstance(error, dns.resolver.NoNameservers | dns.exception.Timeout | OSError):
        return DNSError("temporary", f"DNS lookup failed: {error}")
    return DNSError("permanent", f"DNS lookup failed: {error}")


def _records(rrtype: RRType, rrset: Any) -> Records:
    if rrtype == "MX":
        return tuple(
            MXRecord(r.preference, r.exchange.to_text(omit_final_dot=True).rstrip("."))
            for r in rrset
        )
    if rrtype == "TLSA":
        # RFC 6698 2.1: the RDATA as on the wire; the core parses and judges it.
        return tuple(bytes((r.usage, r.selector, r.mtype)) + bytes(r.cert) for r in rrset)
    if rrtype == "TXT":
        # RFC 8461 3.1 (as RFC 7208 3.3): a record's character-strings form one text.
        return tuple(b"".join(r.strings).decode("utf-8", "replace") for r in rrset)
    return tuple(r.address for r in rrset)


def _answer(request: Resolve, answer: Any) -> Answer:
    records = _records(request.rrtype, answer.rrset)
    if not request.dnssec:
        return records
    import dns.flags

    canonical = answer.canonical_name.to_text(omit_final_dot=True).lower()
    return DNSAnswer(
        records,
        authenticated=bool(answer.response.flags & dns.flags.AD),
        canonical_name=None if canonical == request.name.rstrip(".").lower() else canonical,
    )


def _addrinfo_answer(rrtype: RRType, infos: list[Any]) -> Answer:
    return tuple(dict.fromkeys(str(info[4][0]) for info in infos if info[0] == _FAMILIES[rrtype]))


def _addrinfo_failure(error: socket.gaierror) -> DNSError:
    if error.errno == socket.EAI_AGAIN:
        return DNSError("temporary", f"Name service error: {error.strerror}")
    if error.errno == socket.EAI_NONAME:
        return DNSError("nxdomain", f"Host or domain name not found: {error.strerror}")
    return DNSError("permanent", f"Name service error: {error.strerror}")


def _nodata(error: socket.gaierror) -> bool:
    # glibc reports "name exists, no address of this family" as EAI_NODATA (or EAI_ADDRFAMILY).
    return error.errno in {getattr(socket, n, None) for n in ("EAI_NODATA", "EAI_ADDRFAMILY")}


class _Base:
    def __init__(self, *, nameservers: Sequence[str] | None = None, port: int = 53) -> None:
        self._nameservers = None if nameservers is None else tuple(nameservers)
        self._port = port
        self._have_dnspython = _have_dnspython()

    def _configure(self, resolver: Any, request: Resolve) -> Any:
        if self._nameservers is not None:
            resolver.nameservers = list(self._nameservers)
            resolver.port = self._port
        if request.dnssec:
            import dns.flags

            resolver.use_edns(0, dns.flags.DO, _EDNS_PAYLOAD)
        return resolver

    def _use_dns(self, request: Resolve) -> bool:
        dns_only = request.rrtype not in _ADDRESS_TYPES or request.dnssec
        if not self._have_dnspython:
            if dns_only or self._nameservers is not None:
                raise DNSError("unavailable", _MISSING)
            return False
        return dns_only or self._nameservers is not None


class DefaultResolver(_Base):
    """dnspython's `dns.resolver`, optionally pointed at `nameservers` on `port`."""

    def resolve(self, request: Resolve) -> Answer:
        """Answer `request` or raise `DNSError`."""
        if not self._use_dns(request):
            try:
                infos = socket.getaddrinfo(request.name, None, _FAMILIES[request.rrtype])
            except socket.gaierror as error:
                if _nodata(error):
                    return ()
                raise _addrinfo_failure(error) from None
            return _addrinfo_answer(request.rrtype, infos)
        import dns.exception
        import dns.resolver

        try:
            resolver = self._configure(
                dns.resolver.Resolver(configure=self._nameservers is None), request
            )
            answer = resolver.resolve(
                request.name, request.rrtype, lifetime=request.timeout, search=False
            )
        except dns.resolver.NoAnswer:
            return ()
        except (dns.exception.DNSException, OSError) as error:
            raise _dns_failure(error) from None
        return _answer(request, answer)


class DefaultAsyncResolver(_Base):
    """dnspython's `dns.asyncresolver` on asyncio."""

    # dnspython caches the first event loop library it detects; name ours explicitly.
    _backend = "asyncio"

    async def resolve(self, request: Resolve) -> Answer:
        """Answer `request` or raise `DNSError`."""
        if not self._use_dns(request):
            return await self._getaddrinfo(request)
        import dns.asyncbackend
        import dns.asyncresolver
        import dns.exception
        import dns.resolver

        try:
            resolver = self._configure(
                dns.asyncresolver.Resolver(configure=self._nameservers is None), request
            )
            answer = await resolver.resolve(
                request.name,
                request.rrtype,
                lifetime=request.timeout,
                search=False,
                backend=dns.asyncbackend.get_backend(self._backend),
            )
        except dns.resolver.NoAnswer:
            return ()
        except (dns.exception.DNSException, OSError) as error:
            raise _dns_failure(error) from None
        return _answer(request, answer)

    async def _getaddrinfo(self, request: Resolve) -> Answer:
        import asyncio

        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                request.name, None, family=_FAMILIES[request.rrtype]
            )
        except socket.gaierror as error:
            if _nodata(error):
                return ()
            raise _addrinfo_failure(error) from None
        return _addrinfo_answer(request.rrtype, infos)


class TrioResolver(DefaultAsyncResolver):
    """dnspython's `dns.asyncresolver` on trio, and trio's getaddrinfo for address lookups."""

    _backend = "trio"

    async def _getaddrinfo(self, request: Resolve) -> Answer:
        import trio

        try:
            infos = await trio.socket.getaddrinfo(
                request.name, None, family=_FAMILIES[request.rrtype]
            )
        except socket.gaierror as error:
            if _nodata(error):
                return ()
            raise _addrinfo_failure(error) from None
        return _addrinfo_answer(request.rrtype, infos)
