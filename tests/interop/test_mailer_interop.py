"""A Mailer of each adapter against the real Postfix smtpd: many messages to several domains
over shared connections, counted in Postfix's log and checked in its maildirs.

Each of the three domains has its own MX: a listener of the private Postfix at its own
loopback address, logging as its own syslog name, and refusing (anvil(8), 421) a client more
connections at once than the Mailer's per-destination limit. So the log says how many
connections each destination got, Postfix itself enforces the limit, and the maildirs say
whether every recipient got every message exactly once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import socket
import uuid
from collections import Counter
from typing import Any

import pytest
from support.mailers import zone

from .servers import (
    HOST,
    MAILER_CONNECTION_LIMIT,
    MAILER_DOMAINS,
    MAILER_MAILBOXES,
    Client,
    PostfixServer,
    Transaction,
    client_config,
    make_message,
)

pytestmark = pytest.mark.interop

QUEUED_AS = re.compile(r"queued as (\w+)")
MESSAGES = 200
PROBE = ("127.0.0.5", 0)


def queue_id(result: Any) -> str:
    match = QUEUED_AS.search(result.diagnostic)
    assert match, result
    return match.group(1)


def test_each_mx_refuses_a_connection_over_the_limit(postfix_server: PostfixServer) -> None:
    # The oracle of the next test: Postfix itself says 421 to one connection too many. From
    # a source address of its own: anvil(8) counts per client address, so these connections
    # never count against a Mailer's.
    address, _ = MAILER_DOMAINS["d2.example.test"]
    with contextlib.ExitStack() as stack:
        greetings = []
        for _ in range(MAILER_CONNECTION_LIMIT + 1):
            sock = stack.enter_context(
                socket.create_connection(
                    (address, postfix_server.port_mailer), timeout=10, source_address=PROBE
                )
            )
            greetings.append(sock.recv(512))
    assert all(g.startswith(b"220 ") for g in greetings[:-1]), greetings
    assert greetings[-1].startswith(b"421 4.7.0 "), greetings


@pytest.mark.parameter("transport_destination_concurrency_limit", "default_process_limit")
def test_two_hundred_messages_to_three_domains_stay_within_the_connection_limits(
    client: Client, postfix_server: PostfixServer
) -> None:
    run = uuid.uuid4().hex
    domains = list(MAILER_DOMAINS)
    sends: list[Transaction] = []
    for n in range(MESSAGES):
        boxes = MAILER_MAILBOXES
        recipients = [f"{boxes[n % len(boxes)]}@{domains[n % 3]}"]
        if n % 4 == 0:
            # One message in four goes to a second domain: one send, two next hops.
            recipients.append(f"{boxes[(n + 7) % len(boxes)]}@{domains[(n + 1) % 3]}")
        token = f"mailer-{run}-{n:03d}"
        sends.append(Transaction(tuple(recipients), make_message(token, To=recipients[0])))
    config = dataclasses.replace(
        client_config(
            tcp_port=str(postfix_server.port_mailer),
            destination_concurrency_limit=str(MAILER_CONNECTION_LIMIT),
            connection_cache_time_limit="60s",
        ),
        process_limit=len(domains) * MAILER_CONNECTION_LIMIT,
    )
    since = postfix_server.log_offset()

    mx_hosts = {domain: address for domain, (address, _) in MAILER_DOMAINS.items()}
    reports = client.mail(sends, config=config, resolver=zone(client.adapter, mx_hosts))

    by_domain: dict[str, set[str]] = {domain: set() for domain in domains}
    for send, report in zip(sends, reports, strict=True):
        assert [r.address for r in report.recipients] == list(send.recipients)
        for result in report.recipients:
            # A connection over the limit would have met anvil's 421 and been deferred.
            assert (result.status, result.dsn) == ("sent", "2.0.0"), result
            domain = result.address.rpartition("@")[2]
            address, _ = MAILER_DOMAINS[domain]
            assert result.relay == f"mx.{domain}[{address}]:{postfix_server.port_mailer}"
            by_domain[domain].add(queue_id(result))
    for domain, (_, syslog_name) in MAILER_DOMAINS.items():
        sessions = postfix_server.wait_for_sessions(
            since, queue_ids=by_domain[domain], syslog_name=syslog_name
        )
        # The connections stay cached for the whole run (60 s), so every one this
        # destination ever got was open at once: at most its limit.
        assert 1 <= len(sessions) <= MAILER_CONNECTION_LIMIT, sessions
        queued = [q for s in sessions for q in s.queue_ids]
        assert sorted(queued) == sorted(by_domain[domain])
        assert sum(int(s.counts["mail"]) for s in sessions) == len(by_domain[domain])
        assert all(s.counts.get("quit") == "1" for s in sessions)
    expected: Counter[str] = Counter(r for send in sends for r in send.recipients)
    for address, count in expected.items():
        stored = postfix_server.wait_for_delivery(address, count=count, contains=run.encode())
        tokens = Counter(re.findall(rf"mailer-{run}-\d{{3}}", b"\n".join(stored).decode()))
        mine = {
            f"mailer-{run}-{n:03d}" for n, send in enumerate(sends) if address in send.recipients
        }
        # Each message once in each of its recipients' maildirs (its Subject, its Message-ID).
        assert set(tokens) == mine and set(tokens.values()) == {2}, (address, tokens)


@pytest.mark.parameter("smtp_tls_connection_reuse")
@pytest.mark.parametrize("reuse", [True, False], ids=["reuse", "no-reuse"])
def test_tls_connection_reuse_carries_many_messages_over_one_tls_session(
    client: Client, postfix_server: PostfixServer, reuse: bool
) -> None:
    # rule 9.6: a TLS session is kept only with smtp_tls_connection_reuse=yes
    run = uuid.uuid4().hex
    config = client_config(
        tls_security_level="encrypt",
        tls_connection_reuse="yes" if reuse else "no",
        connection_cache_time_limit="60s",
    )
    sends = [Transaction(("alice@example.test",), make_message(f"tls-{run}-{n}")) for n in range(5)]
    since = postfix_server.log_offset()
    reports = client.mail(
        sends, config=config, destination=f"[{HOST}]:{postfix_server.port}", at_once=False
    )
    ids = set()
    for report in reports:
        (result,) = report.recipients
        assert result.status == "sent" and result.tls is not None
        ids.add(queue_id(result))
    sessions = postfix_server.wait_for_sessions(since, queue_ids=ids)
    assert len(sessions) == (1 if reuse else 5)
    assert sum(int(s.counts["starttls"]) for s in sessions) == len(sessions)
