"""smtp(8) parameters against servers we did not write: Postfix smtpd (and Postfix 3.7's own
smtp(8) with the same settings, the oracle), aiosmtpd, and dnsmasq for the DNS ones.

smtp_reply_filter, smtp_delivery_status_filter and smtp_bind_address_enforce are compared with
the oracle delivering to the same Postfix smtpd; smtp_send_dummy_mail_auth and smtputf8_enable
are read off what aiosmtpd received; smtp_dns_reply_filter, smtp_host_lookup and
smtp_cname_overrides_servername go through the adapters' resolvers to dnsmasq; the plaintext
retry, held sessions and IDNA compatibility run against Postfix smtpd.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from . import servers
from .exim import EXIM_LOGIN, EximServer
from .postfix_client import PostfixOracle
from .servers import (
    DOMAIN,
    SENDER,
    ZONE,
    AiosmtpdFactory,
    Client,
    DnsServer,
    PostfixServer,
    Transaction,
)

pytestmark = pytest.mark.interop

RECIPIENT = f"carol@{DOMAIN}"


def _token(what: str) -> str:
    return f"{what}-{uuid.uuid4().hex}"


_config = servers.postconf_config


def _table(directory: Path, rules: str) -> str:
    path = directory / f"table-{uuid.uuid4().hex[:8]}"
    path.write_text(rules.lstrip(), encoding="utf-8")
    path.chmod(0o644)
    return f"regexp:{path}"


def _outcomes(report: Any) -> dict[str, tuple[str, str, str]]:
    return {r.address: (r.status, r.dsn, r.diagnostic) for r in report.recipients}


def _postfix_outcomes(results: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
    return {address: (r.status, r.dsn, r.text) for address, r in results.items()}


# -- filters, differential with Postfix's smtp(8) -------------------------------------------------


def _both(
    oracle: PostfixOracle,
    postfix: PostfixServer,
    recipients: list[str],
    parameters: dict[str, str],
) -> tuple[Any, dict[str, Any]]:
    """The same message sent to Postfix smtpd by smtpproto and by Postfix's smtp(8), both
    with `parameters`: our report and the oracle's results."""
    destination = f"[{postfix.host}]:{postfix.port}"
    ours = Client("blocking").deliver(
        destination,
        recipients=recipients,
        message=servers.make_message(_token("ours")),
        config=_config(**parameters),
    )
    theirs = oracle.deliver(
        destination, SENDER, recipients, servers.make_message(_token("theirs")), params=parameters
    )
    return ours, theirs


@pytest.mark.parameter("smtp_reply_filter")
def test_reply_filter_turns_a_rejection_into_a_deferral_as_postfix_does(
    postfix_oracle: PostfixOracle, postfix_server: PostfixServer
) -> None:
    # Postfix smtpd rejects this recipient with 550 5.7.1; the filter makes that 450 4.7.1.
    rules = "/^550 5\\.7\\.1 (.*)$/ 450 4.7.1 $1\n"
    parameters = {"smtp_reply_filter": _table(postfix_oracle.base / "etc", rules)}
    recipients = [postfix_server.rejected_recipient, RECIPIENT]
    ours, theirs = _both(postfix_oracle, postfix_server, recipients, parameters)
    expected = _postfix_outcomes(theirs)
    got = _outcomes(ours)
    assert got[postfix_server.rejected_recipient] == expected[postfix_server.rejected_recipient]
    assert got[postfix_server.rejected_recipient][:2] == ("deferred", "4.7.1")
    assert got[RECIPIENT][:2] == expected[RECIPIENT][:2] == ("sent", "2.0.0")
    assert any(line.startswith('replacing server reply "550 5.7.1') for line in ours.transcript)


@pytest.mark.parameter("smtp_delivery_status_filter")
def test_delivery_status_filter_rewrites_outcomes_as_postfix_does(
    postfix_oracle: PostfixOracle, postfix_server: PostfixServer
) -> None:
    rules = (
        "/^5\\.7\\.1 (.*)$/ 4.7.1 held back: $1\n"
        "/^4\\.7\\.1 .*deferred by interop policy.*$/ 5.7.9 given up\n"
        "/^2\\.0\\.0 250 2\\.0\\.0 Ok: queued as .*$/ 2.0.0 accepted by the interop Postfix\n"
    )
    parameters = {"smtp_delivery_status_filter": _table(postfix_oracle.base / "etc", rules)}
    recipients = [postfix_server.rejected_recipient, postfix_server.deferred_recipient, RECIPIENT]
    ours, theirs = _both(postfix_oracle, postfix_server, recipients, parameters)
    assert _outcomes(ours) == _postfix_outcomes(theirs)
    assert [r.status for r in ours.recipients] == ["deferred", "bounced", "sent"]
    assert ours.recipients[2].diagnostic == "accepted by the interop Postfix"


@pytest.mark.parameter("smtp_bind_address_enforce", "smtp_bind_address")
@pytest.mark.parametrize(("enforce", "status"), [("yes", "deferred"), ("no", "sent")])
def test_a_source_address_that_cannot_be_bound_as_postfix_handles_it(
    client: Client,
    postfix_oracle: PostfixOracle,
    postfix_server: PostfixServer,
    enforce: str,
    status: str,
) -> None:
    # 192.0.2.1 (TEST-NET-1) is no address of this host: bind() fails.
    parameters = {"smtp_bind_address": "192.0.2.1", "smtp_bind_address_enforce": enforce}
    destination = f"[{postfix_server.host}]:{postfix_server.port}"
    token = _token(f"bind-{enforce}")
    ours = client.deliver(
        destination,
        recipients=[RECIPIENT],
        message=servers.make_message(token),
        config=_config(**parameters),
    )
    theirs = postfix_oracle.deliver(
        destination, SENDER, [RECIPIENT], servers.make_message(_token("bind")), params=parameters
    )
    (result,) = ours.recipients
    assert (result.status, result.dsn) == (theirs[RECIPIENT].status, theirs[RECIPIENT].dsn)
    assert result.status == status
    if status == "deferred":
        assert result.dsn == "4.4.0"
        assert result.diagnostic == theirs[RECIPIENT].text == "server configuration error"
    else:
        postfix_server.wait_for_delivery(RECIPIENT, contains=token.encode())
    assert any(line.startswith("Warning: bind 192.0.2.1: ") for line in ours.transcript)


# -- MAIL FROM parameters, as aiosmtpd receives them -------------------------------------------


@pytest.mark.parameter("smtp_send_dummy_mail_auth")
@pytest.mark.parametrize(("dummy", "logged"), [("yes", True), ("no", False)])
def test_exim_sees_auth_empty_after_the_login(
    client: Client, exim_server: EximServer, dummy: str, logged: bool
) -> None:
    # Exim ignores AUTH=<> (its spec, 33.2), but its MAIL ACL logs the command as it came.
    user, password = EXIM_LOGIN
    since = exim_server.log_offset()
    config = _config(
        smtp_sasl_auth_enable="yes",
        smtp_sasl_security_options="noanonymous",
        smtp_sasl_password_maps=f"inline:{{ {exim_server.destination}={user}:{password} }}",
        smtp_send_dummy_mail_auth=dummy,
    )
    report = client.deliver(
        exim_server.destination,
        recipients=[RECIPIENT],
        message=servers.make_message(_token("dummy-auth")),
        config=config,
    )
    assert [r.status for r in report.recipients] == ["sent"], report.transcript
    assert any(line.startswith("In: 235") for line in report.transcript)
    deadline = time.monotonic() + 10
    while f"A=plain:{user}" not in exim_server.log_text(since) and time.monotonic() < deadline:
        time.sleep(0.05)
    log = exim_server.log_text(since)
    assert f"A=plain:{user}" in log
    (command,) = [line for line in log.splitlines() if "command: MAIL FROM:" in line]
    assert command.endswith(" AUTH=<>") == logged


@pytest.mark.parameter("smtputf8_enable")
@pytest.mark.parametrize("enable", ["yes", "no"])
def test_aiosmtpd_sees_smtputf8_only_when_enabled(
    client: Client, aiosmtpd_server: AiosmtpdFactory, enable: str
) -> None:
    server = aiosmtpd_server()
    recipient = f"josé@{DOMAIN}"
    report = client.deliver(
        f"[{server.host}]:{server.port}",
        recipients=[recipient],
        message=servers.make_message(_token("utf8")),
        config=_config(smtputf8_enable=enable),
    )
    (result,) = report.recipients
    if enable == "yes":
        assert result.status == "sent", result.diagnostic
        (received,) = server.messages
        assert "SMTPUTF8" in received.mail_options
        assert received.rcpt_tos == (recipient,)
    else:
        assert (result.status, result.dsn) == ("bounced", "5.6.7")
        assert server.messages == []


# -- DNS: dnsmasq through the adapters' resolvers ------------------------------------------------


@pytest.mark.parameter("smtp_dns_reply_filter")
def test_dns_reply_filter_drops_the_dead_exchange_before_it_is_looked_up(
    client: Client, dns_server: DnsServer, postfix_server: PostfixServer
) -> None:
    # deadfirst's best MX points at an address nothing listens on; the filter drops it.
    since = dns_server.log.stat().st_size
    zone = ZONE.replace(".", "\\.")
    rule = f"deadfirst\\.{zone}\\. [0-9]+ IN MX 10 dead\\."
    config = servers.client_config(dns_reply_filter=f"regexp:{{ {{/^{rule}/ IGNORE}} }}")
    token = _token("dns-filter")
    report = client.using_dns(dns_server).deliver(
        f"deadfirst.{ZONE}:{postfix_server.port}",
        recipients=[RECIPIENT],
        message=servers.make_message(token),
        config=config,
    )
    (result,) = report.recipients
    assert result.status == "sent", result.diagnostic
    assert result.relay == f"live.{ZONE}[127.0.0.1]:{postfix_server.port}"
    assert f"ignoring DNS RR: deadfirst.{ZONE}. 300 IN MX 10 dead.{ZONE}." in report.transcript
    queries = dns_server.log.read_text(encoding="utf-8", errors="replace")[since:]
    assert f"query[A] live.{ZONE}" in queries and f"dead.{ZONE}" not in queries.replace(
        f"deadfirst.{ZONE}", ""
    )
    postfix_server.wait_for_delivery(RECIPIENT, contains=token.encode())


@pytest.mark.parameter("smtp_dns_reply_filter")
def test_a_dns_reply_filter_that_drops_every_mx_defers(
    client: Client, dns_server: DnsServer, postfix_server: PostfixServer
) -> None:
    config = servers.client_config(dns_reply_filter="regexp:{ {/ IN MX / IGNORE} }")
    report = client.using_dns(dns_server).deliver(
        f"mx.{ZONE}:{postfix_server.port}",
        recipients=[RECIPIENT],
        message=servers.make_message(_token("dns-filter-all")),
        config=config,
    )
    (result,) = report.recipients
    assert (result.status, result.dsn) == ("deferred", "4.7.0")
    assert "DNS reply filter drops all results" in result.diagnostic


@pytest.mark.parameter("smtp_cname_overrides_servername")
@pytest.mark.parametrize(("override", "name"), [("yes", "live"), ("no", "alias")])
def test_cname_overrides_servername_with_dnsmasqs_cname(
    client: Client,
    dns_server: DnsServer,
    postfix_server: PostfixServer,
    override: str,
    name: str,
) -> None:
    config = _config(smtp_cname_overrides_servername=override, inet_protocols="ipv4")
    report = client.using_dns(dns_server).deliver(
        f"cname.{ZONE}:{postfix_server.port}",
        recipients=[RECIPIENT],
        message=servers.make_message(_token("cname")),
        config=config,
    )
    (result,) = report.recipients
    assert result.status == "sent", result.diagnostic
    assert result.relay == f"{name}.{ZONE}[127.0.0.1]:{postfix_server.port}"


@pytest.mark.parameter("smtp_host_lookup")
@pytest.mark.parametrize(("lookup", "status"), [("dns", "bounced"), ("dns, native", "sent")])
def test_host_lookup_native_finds_what_the_dns_does_not(
    client: Client,
    dns_server: DnsServer,
    postfix_server: PostfixServer,
    lookup: str,
    status: str,
) -> None:
    # localhost is in /etc/hosts; dnsmasq answers NXDOMAIN for it (data/dnsmasq.conf).
    since = dns_server.log.stat().st_size
    config = _config(smtp_host_lookup=lookup, inet_protocols="ipv4")
    report = client.using_dns(dns_server).deliver(
        f"[localhost]:{postfix_server.port}",
        recipients=[RECIPIENT],
        message=servers.make_message(_token("host-lookup")),
        config=config,
    )
    (result,) = report.recipients
    assert result.status == status, result.diagnostic
    queries = dns_server.log.read_text(encoding="utf-8", errors="replace")[since:]
    assert "query[A] localhost" in queries  # the DNS was asked first either way


# -- behaviours against Postfix smtpd --------------------------------------------------------------


@pytest.mark.parameter("minimal_backoff_time")
@pytest.mark.parametrize(("queued", "status"), [(3600.0, "sent"), (10.0, "deferred")])
def test_may_falls_back_to_plaintext_for_mail_queued_long_enough(
    client: Client, postfix_server: PostfixServer, queued: float, status: str
) -> None:
    # Excluding every cipher makes this client's handshake fail after Postfix's 220 to
    # STARTTLS; only a message queued past minimal_backoff_time is then sent in plaintext.
    since = postfix_server.log_offset()
    config = _config(
        smtp_tls_security_level="may",
        smtp_tls_exclude_ciphers="ALL",
        minimal_backoff_time="300s",
    )
    token = _token("plaintext-retry")
    report = client.deliver(
        f"[{postfix_server.host}]:{postfix_server.port}",
        recipients=[RECIPIENT],
        message=servers.make_message(token),
        config=config,
        arrival=time.time() - queued,
    )
    (result,) = report.recipients
    assert result.status == status, result.diagnostic
    if status == "sent":
        (stored,) = postfix_server.wait_for_delivery(RECIPIENT, contains=token.encode())
        assert b"(using TLS" not in stored
        sessions = postfix_server.wait_for_sessions(since, count=2)
        # the handshake failed, then a session without STARTTLS brought the mail
        assert sorted(str(s.counts.get("starttls")) for s in sessions) == ["0/1", "None"]
        assert [s.counts.get("starttls") for s in sessions if "mail" in s.counts] == [None]
    else:
        assert result.dsn == "4.7.5"


@pytest.mark.parameter("smtp_connection_reuse_count_limit")
def test_a_held_session_reconnects_after_the_reuse_count_limit(
    client: Client, postfix_server: PostfixServer
) -> None:
    since = postfix_server.log_offset()
    tokens = [_token("held-limit") for _ in range(3)]
    reports = client.session(
        f"[{postfix_server.host}]:{postfix_server.port}",
        [Transaction((RECIPIENT,), servers.make_message(t)) for t in tokens],
        config=_config(smtp_connection_reuse_count_limit="1"),
    )
    assert [r.recipients[0].status for r in reports] == ["sent"] * 3
    sessions = postfix_server.wait_for_sessions(since, count=2)
    assert sorted(s.counts.get("mail", "") for s in sessions) == ["1", "2"]


@pytest.mark.parameter("smtp_sender_dependent_authentication")
def test_a_held_session_logs_in_per_sender_with_dovecot(
    client: Client, postfix_server: PostfixServer
) -> None:
    if not postfix_server.sasl:
        servers.unavailable("Postfix runs without Dovecot SASL: apt-get install dovecot-core")
    (user, password), *_ = postfix_server.sasl_users.items()
    other = f"other@{DOMAIN}"
    config = _config(
        smtp_tls_security_level="encrypt",
        smtp_tls_CAfile=str(postfix_server.tls.ca_pem),
        smtp_sasl_auth_enable="yes",
        smtp_sasl_tls_security_options="noanonymous",
        smtp_sender_dependent_authentication="yes",
        smtp_sasl_password_maps=f"inline:{{ {SENDER}={user}:{password}, {other}={user}:wrong }}",
    )
    since = postfix_server.log_offset()
    reports = client.session(
        f"[{postfix_server.host}]:{postfix_server.port}",
        [
            Transaction((RECIPIENT,), servers.make_message(_token("sender-auth")), SENDER),
            Transaction((RECIPIENT,), servers.make_message(_token("sender-auth")), other),
        ],
        config=config,
    )
    # The first sender's login works; the second sender's credentials need a new connection,
    # where Dovecot refuses them: deferred (smtp_sasl_auth_soft_bounce).
    assert [(r.recipients[0].status, r.recipients[0].dsn) for r in reports] == [
        ("sent", "2.0.0"),
        ("deferred", "4.7.8"),
    ]
    sessions = postfix_server.wait_for_sessions(since, count=2)
    assert sorted(s.counts.get("auth", "") for s in sessions) == ["0/1", "1"]


@pytest.mark.parameter("enable_idna2003_compatibility")
@pytest.mark.parametrize(("compatible", "host"), [("yes", "strasse"), ("no", "xn--strae-oqa")])
def test_idna2003_compatibility_decides_which_name_is_looked_up(
    client: Client, dns_server: DnsServer, compatible: str, host: str
) -> None:
    since = dns_server.log.stat().st_size
    config = _config(enable_idna2003_compatibility=compatible)
    report = client.using_dns(dns_server).deliver(
        f"[straße.{ZONE}]", recipients=[RECIPIENT], message=b"\r\nx\r\n", config=config
    )
    assert report.recipients[0].status in ("bounced", "deferred")  # no such host in the zone
    queries = dns_server.log.read_text(encoding="utf-8", errors="replace")[since:]
    assert f"query[A] {host}.{ZONE}" in queries
