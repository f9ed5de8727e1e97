"""Fixtures that start real servers on loopback for the interop tests.

Session-scoped where start-up is costly (Postfix, Dovecot, dnsmasq); factories where each test
wants its own options (smtp-sink fault injection, aiosmtpd with or without STARTTLS/AUTH).
Outside CI a missing server skips with the apt package to install; in CI it fails.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from . import dnssec, exim, postfix_client, servers
from .dnssec import DnssecLab
from .exim import EximServer
from .postfix_client import PostfixDeliver, PostfixOracle
from .servers import (
    AiosmtpdFactory,
    AiosmtpdServer,
    Client,
    DnsServer,
    DovecotServer,
    PostfixServer,
    SinkFactory,
    SinkServer,
    TLSMaterial,
)


@pytest.fixture(params=servers.ADAPTERS)
def client(request: pytest.FixtureRequest) -> Client:
    """The smtpproto adapter under test: a test using it runs once per adapter."""
    return Client(request.param)


@pytest.fixture(scope="session")
def tls_material(tmp_path_factory: pytest.TempPathFactory) -> TLSMaterial:
    """The test CA and a server certificate for localhost/127.0.0.1/::1 and the test names."""
    return servers.make_tls(Path(tmp_path_factory.mktemp("interop-tls")))


@pytest.fixture(scope="session")
def dovecot_server() -> Iterator[DovecotServer]:
    """A private Dovecot: LMTP on a loopback port, SASL auth socket for Postfix."""
    with servers.run_dovecot() as server:
        yield server


@pytest.fixture(scope="session")
def postfix_server(
    request: pytest.FixtureRequest, tls_material: TLSMaterial
) -> Iterator[PostfixServer]:
    """A private Postfix smtpd with STARTTLS, and SASL AUTH via Dovecot where it can run."""
    # Without Dovecot (outside CI only) Postfix still runs, just without AUTH: most interop
    # tests need no AUTH, and CI installs both, where a missing Dovecot fails the suite.
    dovecot = (
        request.getfixturevalue("dovecot_server")
        if servers.dovecot_available() or servers.in_ci()
        else None
    )
    with servers.run_postfix(tls_material, dovecot) as server:
        yield server


@pytest.fixture(scope="session")
def dns_server() -> Iterator[DnsServer]:
    """dnsmasq serving the test zone (servers.ZONE_MX, servers.ZONE_HOSTS) on loopback."""
    with servers.run_dnsmasq() as server:
        yield server


@pytest.fixture(scope="session")
def dnssec_lab() -> Iterator[DnssecLab]:
    """NSD serving the signed lab zones and Unbound validating them (tests/interop/dnssec.py)."""
    with dnssec.run_dnssec_lab() as lab:
        yield lab


@pytest.fixture
def make_dnssec_lab() -> Iterator[Callable[..., DnssecLab]]:
    """Factory: make_dnssec_lab({"secure.test": ["_25._tcp.mx TLSA 3 1 1 ..."]}) for this test."""
    with contextlib.ExitStack() as stack:

        def start(records: Mapping[str, Sequence[str]] | None = None, **options: Any) -> DnssecLab:
            return stack.enter_context(dnssec.run_dnssec_lab(records, **options))

        yield start


@pytest.fixture
def smtp_sink() -> Iterator[SinkFactory]:
    """Factory: smtp_sink(*options, lmtp=False) starts a Postfix smtp-sink for this test."""
    with contextlib.ExitStack() as stack:

        def start(*options: str, lmtp: bool = False) -> SinkServer:
            return stack.enter_context(servers.run_smtp_sink(options, lmtp=lmtp))

        yield start


@pytest.fixture
def aiosmtpd_server(tls_material: TLSMaterial) -> Iterator[AiosmtpdFactory]:
    """Factory: aiosmtpd_server(starttls=..., require_starttls=..., auth=..., host=...)."""
    with contextlib.ExitStack() as stack:

        def start(
            *,
            starttls: bool = False,
            require_starttls: bool = False,
            auth: bool = False,
            auth_require_tls: bool = True,
            host: str = servers.HOST,
        ) -> AiosmtpdServer:
            return stack.enter_context(
                servers.run_aiosmtpd(
                    tls_material if starttls else None,
                    host=host,
                    require_starttls=require_starttls,
                    auth=auth,
                    auth_require_tls=auth_require_tls,
                )
            )

        yield start


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the logs of the servers a failed test used to its report."""
    report = yield
    if report.failed:
        funcargs = getattr(item, "funcargs", {})
        logs = [
            value.log
            for value in funcargs.values()
            if isinstance(getattr(value, "log", None), Path)
        ]
        if logs:
            report.sections.append(("interop server logs", servers.log_tail(logs)))
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Report how long each interop server took to start, so that slow fixtures show."""
    if not servers.START_TIMES:
        return
    terminalreporter.section("interop server start-up times")
    for name, seconds in sorted(servers.START_TIMES.items()):
        terminalreporter.write_line(f"{name:<20} {seconds:6.2f} s")


# --- Exim 4 (tests/interop/exim.py) ---------------------------------------------------------


@pytest.fixture(scope="session")
def exim_server() -> Iterator[EximServer]:
    """A private Exim 4 daemon: PIPELINING, CHUNKING, DSN; maildir delivery; refusals."""
    with exim.run_exim() as server:
        yield server


# --- the Postfix client oracle (tests/interop/postfix_client.py) ----------------------------


@pytest.fixture(scope="session")
def postfix_oracle() -> Iterator[PostfixOracle]:
    """A private Postfix whose own smtp(8)/lmtp(8) delivers messages for differential tests."""
    with postfix_client.run_postfix_oracle() as oracle:
        yield oracle


@pytest.fixture
def postfix_deliver(postfix_oracle: PostfixOracle) -> PostfixDeliver:
    """postfix_deliver(dest, sender, recipients, message, *, lmtp=False, params=None) -> results.

    Results map each recipient to Postfix's (status, dsn, text, relay); see postfix_client.py.
    """
    return postfix_oracle.deliver
