"""Routing over real DNS: each adapter's resolver asks the test zone's dnsmasq.

The zone (servers.ZONE_MX, servers.ZONE_HOSTS) points its live exchanges at 127.0.0.1, where
the private Postfix listens; the destination carries Postfix's port (``domain:port`` still
looks up MX records). Other loopback addresses (127.0.0.2, 127.0.0.3, DEAD_ADDRESS) have
nothing listening unless a test puts a listener there.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from .servers import (
    DEAD_ADDRESS,
    DOMAIN,
    ZONE,
    Client,
    DnsServer,
    PostfixServer,
    make_message,
    run_hangup_listener,
    split_message,
)

pytestmark = pytest.mark.interop

RECIPIENT = f"alice@{DOMAIN}"


def new_token(what: str) -> str:
    """A unique Subject, to find this test's copy among the session's deliveries."""
    return f"{what}-{uuid.uuid4().hex}"


def deliver_via(
    client: Client, dns: DnsServer, postfix: PostfixServer, domain: str, token: str
) -> Any:
    """Deliver to RECIPIENT through `domain`'s mail exchangers on Postfix's port."""
    return client.using_dns(dns).deliver(
        f"{domain}:{postfix.port}", recipients=[RECIPIENT], message=make_message(token)
    )


def assert_delivered(postfix: PostfixServer, token: str) -> None:
    """Postfix stored exactly one copy of the message with this token."""
    [stored] = postfix.wait_for_delivery(RECIPIENT, contains=token.encode())
    assert split_message(stored)[0]["Subject"] == token


def test_dead_first_mx_falls_back_to_the_live_second(
    client: Client, dns_server: DnsServer, postfix_server: PostfixServer
) -> None:
    token = new_token("mx-fallback")
    report = deliver_via(client, dns_server, postfix_server, f"deadfirst.{ZONE}", token)

    [result] = report.recipients
    assert (result.status, result.dsn) == ("sent", "2.0.0"), result
    assert result.relay == f"live.{ZONE}[127.0.0.1]:{postfix_server.port}"
    assert_delivered(postfix_server, token)


def test_first_mx_that_hangs_up_is_tried_once_then_the_second(
    client: Client, dns_server: DnsServer, postfix_server: PostfixServer
) -> None:
    token = new_token("mx-hangup")
    with run_hangup_listener(DEAD_ADDRESS, postfix_server.port) as dead:
        report = deliver_via(client, dns_server, postfix_server, f"deadfirst.{ZONE}", token)

    # Preference 10 first: the dead exchange was really tried, and only once.
    assert len(dead.connections) == 1
    [result] = report.recipients
    assert (result.status, result.dsn) == ("sent", "2.0.0"), result
    assert result.relay == f"live.{ZONE}[127.0.0.1]:{postfix_server.port}"
    assert_delivered(postfix_server, token)


def test_lowest_preference_mx_is_used_first(
    client: Client, dns_server: DnsServer, postfix_server: PostfixServer
) -> None:
    token = new_token("mx-order")
    # mx2 and mx3 answer too, so choosing them first would show.
    with (
        run_hangup_listener("127.0.0.2", postfix_server.port) as mx2,
        run_hangup_listener("127.0.0.3", postfix_server.port) as mx3,
    ):
        report = deliver_via(client, dns_server, postfix_server, f"mx.{ZONE}", token)

    [result] = report.recipients
    assert (result.status, result.dsn) == ("sent", "2.0.0"), result
    # mx1 has 127.0.0.1 and ::1; Postfix listens on IPv4 only, so ::1 may be refused first.
    assert result.relay == f"mx1.{ZONE}[127.0.0.1]:{postfix_server.port}"
    assert (len(mx2.connections), len(mx3.connections)) == (0, 0)
    assert_delivered(postfix_server, token)


def test_domain_without_mx_is_its_own_exchange(
    client: Client, dns_server: DnsServer, postfix_server: PostfixServer
) -> None:
    token = new_token("implicit-mx")
    report = deliver_via(client, dns_server, postfix_server, f"nomx.{ZONE}", token)

    [result] = report.recipients
    assert (result.status, result.dsn) == ("sent", "2.0.0"), result
    assert result.relay == f"nomx.{ZONE}[127.0.0.1]:{postfix_server.port}"
    assert_delivered(postfix_server, token)


def test_null_mx_bounces_without_connecting(client: Client, dns_server: DnsServer) -> None:
    report = client.using_dns(dns_server).deliver(
        f"nullmx.{ZONE}", recipients=[RECIPIENT, f"bob@{DOMAIN}"], message=make_message("nullmx")
    )

    for result in report.recipients:
        assert (result.status, result.dsn) == ("bounced", "5.1.10"), result
        assert (result.reply, result.relay) == (None, None)
        assert result.diagnostic == f"Domain nullmx.{ZONE} does not accept mail (nullMX)"
    assert not [line for line in report.transcript if line.startswith(("In: ", "Out: "))]


def test_nonexistent_domain_bounces(client: Client, dns_server: DnsServer) -> None:
    report = client.using_dns(dns_server).deliver(
        f"nothere.{ZONE}", recipients=[RECIPIENT], message=make_message("nxdomain")
    )

    [result] = report.recipients
    assert (result.status, result.dsn, result.relay) == ("bounced", "5.4.4", None), result
    assert result.diagnostic.startswith("Host or domain name not found."), result.diagnostic
    assert f"name=nothere.{ZONE} type=MX" in result.diagnostic
