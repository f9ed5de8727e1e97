"""DNS for the adapters: a replaceable `Resolver` and defaults over dnspython or getaddrinfo.

MX lookups need dnspython (the ``dns`` extra). Address lookups use dnspython when a name
server is given explicitly, otherwise the system resolver (getaddrinfo), so that ``[host]``
destinations honour /etc/hosts and work without the extra.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import Any, Literal, Protocol

from smtpproto.requests import DNSError, MXRecord, Resolve

__all__ = [
    "AsyncResolver",
    "DefaultAsyncResolver",
    "DefaultResolver",
    "Resolver",
    "TrioResolver",
]

Answer = tuple[MXRecord, ...] | tuple[str, ...]
RRType = Literal["MX", "A", "AAAA"]

_MISSING = "MX lookups need dnspython: pip install 'smtpproto-client[dns]'"
_FAMILIES = {"A": socket.AF_INET, "AAAA": socket.AF_INET6}


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


def _answer(rrtype: RRType, rrset: Any) -> Answer:
    if rrtype == "MX":
        return tuple(
            MXRecord(r.preference, r.exchange.to_text(omit_final_dot=True).rstrip("."))
            for r in rrset
        )
    return tuple(r.address for r in rrset)


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

    def _configure(self, resolver: Any) -> Any:
        if self._nameservers is not None:
            resolver.nameservers = list(self._nameservers)
            resolver.port = self._port
        return resolver

    def _use_dns(self, rrtype: RRType) -> bool:
        if not self._have_dnspython:
            if rrtype == "MX" or self._nameservers is not None:
                raise DNSError("unavailable", _MISSING)
            return False
        return rrtype == "MX" or self._nameservers is not None


class DefaultResolver(_Base):
    """dnspython's `dns.resolver`, optionally pointed at `nameservers` on `port`."""

    def resolve(self, request: Resolve) -> Answer:
        """Answer `request` or raise `DNSError`."""
        if not self._use_dns(request.rrtype):
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
            resolver = self._configure(dns.resolver.Resolver(configure=self._nameservers is None))
            rrset = resolver.resolve(
                request.name, request.rrtype, lifetime=request.timeout, search=False
            )
        except dns.resolver.NoAnswer:
            return ()
        except (dns.exception.DNSException, OSError) as error:
            raise _dns_failure(error) from None
        return _answer(request.rrtype, rrset)


class DefaultAsyncResolver(_Base):
    """dnspython's `dns.asyncresolver` on asyncio."""

    # dnspython caches the first event loop library it detects; name ours explicitly.
    _backend = "asyncio"

    async def resolve(self, request: Resolve) -> Answer:
        """Answer `request` or raise `DNSError`."""
        if not self._use_dns(request.rrtype):
            return await self._getaddrinfo(request)
        import dns.asyncbackend
        import dns.asyncresolver
        import dns.exception
        import dns.resolver

        try:
            resolver = self._configure(
                dns.asyncresolver.Resolver(configure=self._nameservers is None)
            )
            rrset = await resolver.resolve(
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
        return _answer(request.rrtype, rrset)

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
