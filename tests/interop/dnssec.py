"""A real DNSSEC lab on loopback: signed zones in NSD, validated by Unbound.

DANE (RFC 7672) trusts the AD bit of a local validating resolver, so its tests need one that
really validates: NSD serves zones signed here with ldns-signzone, and Unbound, holding the
trust anchor of the lab's private root ``test.``, validates every answer. Three delegated
children of ``test.`` cover the three outcomes a DANE client must tell apart (RFC 4035 4.3):

- ``secure.test``: signed, with its DS in ``test.``: answers carry the AD bit;
- ``insecure.test``: unsigned, its delegation provably without DS: answers without AD;
- ``bogus.test``: signed with signatures that expired long ago: SERVFAIL.

Keys and signatures are made fresh at every start (ECDSA P-256 keys take milliseconds), so
the caller can put any records in any zone, TLSA records of a certificate made by the same
test included. Every query, Unbound's own included, stays on 127.0.0.1: the private root is
a stub zone pointing at NSD, so no name ever leads off the machine.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .servers import (
    HOST,
    START_TIMES,
    free_port,
    launch,
    make_base,
    require_binary,
    running,
)

ANCHOR = "test"
SECURE = "secure.test"
INSECURE = "insecure.test"
BOGUS = "bogus.test"
CHILDREN = (SECURE, INSECURE, BOGUS)
# ldns-signzone dates: YYYYMMDDhhmmss; a bogus zone is signed for a window in the past.
_DAY = 86400
_BOGUS_WINDOW = (20000101000000, 20000201000000)


def loopback_address(port: int, *, attempts: int = 50) -> str:
    """A random address of 127.0.0.0/8 on which `port` is free for TCP and UDP right now.

    A client that cannot be told a port (the system resolver wants 53, an ``https`` URL
    443) gets a server on an address of its own, which no other test or service uses.
    """
    import random
    import socket

    for _ in range(attempts):
        host = f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
        try:
            for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                with socket.socket(socket.AF_INET, kind) as probe:
                    probe.bind((host, port))
        except OSError:
            continue
        return host
    raise RuntimeError(f"no loopback address with port {port} free in {attempts} tries")


@dataclass(frozen=True)
class DnssecLab:
    """A running lab: Unbound (the validating resolver) and NSD (the signed zones)."""

    host: str
    port: int
    auth_port: int
    base: Path
    anchor_ds: str
    log: Path

    def query(self, name: str, rdtype: str, *, tcp: bool = False) -> Any:
        """Ask Unbound for `name`/`rdtype` with the DO bit set; return the whole response."""
        import dns.flags
        import dns.message
        import dns.query

        request = dns.message.make_query(name, rdtype, want_dnssec=True)
        request.flags |= dns.flags.RD
        send = dns.query.tcp if tcp else dns.query.udp
        return send(request, self.host, port=self.port, timeout=5.0)

    def resolver(self) -> Any:
        """A dnspython resolver that asks only this lab's Unbound, with the DO bit set."""
        import dns.flags
        import dns.resolver

        res = dns.resolver.Resolver(configure=False)
        res.nameservers = [self.host]
        res.port = self.port
        res.timeout = res.lifetime = 5.0
        res.use_edns(0, dns.flags.DO, 1232)
        return res


def _zone_text(zone: str, delegations: Sequence[str], records: Sequence[str]) -> str:
    # Every name server of the lab is NSD on 127.0.0.1; glue keeps the zones self-contained.
    lines = [
        f"$ORIGIN {zone}.",
        "$TTL 300",
        f"@ SOA ns.{zone}. hostmaster.{zone}. 1 3600 600 86400 300",
        f"@ NS ns.{zone}.",
        "ns A 127.0.0.1",
    ]
    for child in delegations:
        label = child.removesuffix("." + zone)
        lines += [f"{label} NS ns.{child}.", f"ns.{label} A 127.0.0.1"]
    lines += records
    return "\n".join(lines) + "\n"


def _run(argv: Sequence[str], cwd: Path) -> str:
    import subprocess

    done = subprocess.run(
        list(argv), cwd=cwd, capture_output=True, text=True, timeout=30, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def _keygen(zone: str, base: Path) -> str:
    binary = require_binary("ldns-keygen", "ldnsutils")
    # One combined signing key per zone (flags 257): the lab needs no key rollover.
    name = _run([binary, "-a", "ECDSAP256SHA256", "-k", "-r", "/dev/urandom", zone], base)
    return name.strip()


def _sign(zone: str, key: str, base: Path, window: tuple[int, int] | None = None) -> Path:
    binary = require_binary("ldns-signzone", "ldnsutils")
    source = base / f"{zone}.zone"
    signed = base / f"{zone}.zone.signed"
    if window is None:
        now = int(time.time())
        # An hour of inception slack and a month of validity: the lab never outlives either.
        window = (now - 3600, now + 30 * _DAY)
    inception, expiration = window
    _run(
        [binary, "-i", str(inception), "-e", str(expiration), "-f", str(signed), str(source), key],
        base,
    )
    return signed


def _nsd_conf(base: Path, port: int, zonefiles: Mapping[str, Path]) -> str:
    zones = "".join(f"zone:\n  name: {z}\n  zonefile: {f}\n" for z, f in zonefiles.items())
    return (
        "server:\n"
        f"  ip-address: {HOST}@{port}\n"
        "  do-ip6: no\n"
        '  username: ""\n'
        '  chroot: ""\n'
        f'  zonesdir: "{base}"\n'
        '  database: ""\n'
        f'  zonelistfile: "{base}/zone.list"\n'
        f'  xfrdfile: "{base}/xfrd.state"\n'
        f'  xfrdir: "{base}"\n'
        f'  pidfile: "{base}/nsd.pid"\n'
        f'  logfile: "{base}/nsd.log"\n'
        "  server-count: 1\n"
        "  verbosity: 1\n"
        "remote-control:\n"
        "  control-enable: no\n" + zones
    )


def _unbound_conf(base: Path, host: str, port: int, auth_port: int) -> str:
    # A stub for "." as well as for each lab zone: whatever is asked, Unbound asks NSD on
    # loopback (which refuses names it does not serve), never a real root server.
    stubs = "".join(
        f'stub-zone:\n  name: "{zone}."\n  stub-addr: {HOST}@{auth_port}\n'
        for zone in ("", ANCHOR, *CHILDREN)
    )
    return (
        "server:\n"
        f"  interface: {host}@{port}\n"
        f"  port: {port}\n"
        "  do-ip6: no\n"
        f"  outgoing-interface: {HOST}\n"
        '  username: ""\n'
        '  chroot: ""\n'
        f'  directory: "{base}"\n'
        f'  pidfile: "{base}/unbound.pid"\n'
        "  use-syslog: no\n"
        '  logfile: ""\n'
        "  verbosity: 1\n"
        "  val-log-level: 2\n"
        "  num-threads: 1\n"
        "  access-control: 127.0.0.0/8 allow\n"
        "  do-not-query-localhost: no\n"
        "  qname-minimisation: no\n"
        "  trust-anchor-signaling: no\n"
        "  root-key-sentinel: no\n"
        '  module-config: "validator iterator"\n'
        f'  trust-anchor-file: "{base}/anchor.ds"\n'
        # RFC 6761 6.2: Unbound answers "test." itself unless told not to.
        '  local-zone: "test." nodefault\n'
        "remote-control:\n"
        "  control-enable: no\n" + stubs
    )


def _answers(host: str, port: int, name: str) -> Callable[[], bool]:
    def probe() -> bool:
        import dns.exception
        import dns.message
        import dns.query
        import dns.rcode

        request = dns.message.make_query(name, "SOA")
        try:
            response = dns.query.udp(request, host, port=port, timeout=0.1)
        except dns.exception.DNSException:
            return False
        return bool(response.rcode() == dns.rcode.NOERROR and response.answer)

    return probe


@contextlib.contextmanager
def run_dnssec_lab(
    records: Mapping[str, Sequence[str]] | None = None,
    *,
    resolver_host: str = HOST,
    resolver_port: int | None = None,
) -> Iterator[DnssecLab]:
    """Sign the lab's zones and run NSD and Unbound while the context lasts.

    `records` adds zone-file lines (relative names allowed) to any of ``test``,
    ``secure.test``, ``insecure.test`` and ``bogus.test``; each child zone already holds
    ``@ MX 10 mx`` and ``mx A 127.0.0.1``. Unbound listens on `resolver_host`:`resolver_port`
    (a free port by default; port 53 on a private loopback address serves a client that
    cannot be told another port, such as Postfix's own resolver).
    """
    nsd = require_binary("nsd", "nsd")
    unbound = require_binary("unbound", "unbound")
    extra = dict(records or {})
    unknown = set(extra) - {ANCHOR, *CHILDREN}
    if unknown:
        raise ValueError(f"records: no such lab zone {sorted(unknown)}")
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        base = make_base("dnssec")
        stack.callback(shutil.rmtree, base, ignore_errors=True)
        lab = _prepare(base, extra, resolver_host, resolver_port)
        nsd_process = launch("nsd", [nsd, "-d", "-c", str(base / "nsd.conf")], base / "nsd.out")
        nsd_process.logs.append(base / "nsd.log")
        stack.enter_context(running(nsd_process, _answers(HOST, lab.auth_port, ANCHOR), None))
        unbound_argv = [unbound, "-d", "-c", str(base / "unbound.conf")]
        unbound_process = launch("unbound", unbound_argv, lab.log)
        stack.enter_context(running(unbound_process, _answers(lab.host, lab.port, SECURE), None))
        START_TIMES["dnssec lab (total)"] = time.monotonic() - started
        yield lab


def _prepare(
    base: Path, extra: Mapping[str, Sequence[str]], resolver_host: str, resolver_port: int | None
) -> DnssecLab:
    keys = {zone: _keygen(zone, base) for zone in (ANCHOR, SECURE, BOGUS)}
    ds = {zone: (base / f"{keys[zone]}.ds").read_text().strip() for zone in keys}
    (base / "anchor.ds").write_text(ds[ANCHOR] + "\n")
    default = ["@ MX 10 mx", "mx A 127.0.0.1"]
    texts = {zone: _zone_text(zone, (), [*default, *extra.get(zone, ())]) for zone in CHILDREN}
    # The parent holds the DS of the two signed children; insecure.test has none, and the
    # signed parent's NSEC records prove it (RFC 4035 5.2): that makes it insecure, not bogus.
    texts[ANCHOR] = _zone_text(ANCHOR, CHILDREN, [ds[SECURE], ds[BOGUS], *extra.get(ANCHOR, ())])
    for zone, text in texts.items():
        (base / f"{zone}.zone").write_text(text)
    zonefiles = {
        ANCHOR: _sign(ANCHOR, keys[ANCHOR], base),
        SECURE: _sign(SECURE, keys[SECURE], base),
        INSECURE: base / f"{INSECURE}.zone",
        BOGUS: _sign(BOGUS, keys[BOGUS], base, _BOGUS_WINDOW),
    }
    auth_port = free_port()
    port = resolver_port if resolver_port is not None else free_port(resolver_host)
    (base / "nsd.conf").write_text(_nsd_conf(base, auth_port, zonefiles))
    (base / "unbound.conf").write_text(_unbound_conf(base, resolver_host, port, auth_port))
    return DnssecLab(resolver_host, port, auth_port, base, ds[ANCHOR], base / "unbound.log")
