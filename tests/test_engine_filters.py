"""Filters and lookups of the engine: smtp_reply_filter (rule 1.9), smtp_delivery_status_filter,
smtp_dns_reply_filter, smtp_host_lookup and smtp_cname_overrides_servername (rules 14.2, 14.3).

Scripted servers and DNS; the requests the engine makes are the evidence. Postfix's smtpd and
Postfix's own smtp(8) with the same tables are in tests/interop/test_params2_interop.py.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.world import Clock, Record, Rng, Script, Session, World, drive, go, run, smtp, statuses

from smtpproto import RemoteProtocolError
from smtpproto.commands import Ehlo, StartTLS
from smtpproto.config import ClientConfig
from smtpproto.connection import NEED_DATA, ClientConnection
from smtpproto.engine import deliver
from smtpproto.engine.trouble import filter_status
from smtpproto.envelope import Envelope, Recipient
from smtpproto.report import DeliveryReport
from smtpproto.requests import (
    Connect,
    DNSAnswer,
    DNSError,
    IORequest,
    MXRecord,
    Resolve,
    TLSInfo,
)

OK = (b"250 ok\r\n250 ok\r\n354 go\r\n", b"250 2.0.0 ok\r\n")


def _config(**parameters: Any) -> ClientConfig:
    return ClientConfig.from_postconf(
        {"smtp_helo_name": "client.example", "smtp_tls_security_level": "none", **parameters}
    )


# -- smtp_reply_filter ----------------------------------------------------------------------

REJECT_TO_DEFER = "regexp:{ {/^550 5\\.1\\.1 (.*)/ 450 4.1.1 $$1} }"


@pytest.mark.parameter("smtp_reply_filter")
def test_reply_filter_rewrites_a_reply_line_before_it_is_parsed() -> None:
    rejected = smtp(b"250 ok\r\n550 5.1.1 no such user\r\n354 go\r\n", b"250 2.0.0 ok\r\n")
    report, _ = go(rejected, config=_config(smtp_reply_filter=REJECT_TO_DEFER))
    assert statuses(report) == [("deferred", "4.1.1")]
    assert report.recipients[0].diagnostic == (
        "host 192.0.2.1[192.0.2.1] said: 450 4.1.1 no such user (in reply to RCPT TO command)"
    )
    assert 'replacing server reply "550 5.1.1 no such user" with "450 4.1.1 no such user"' in (
        report.transcript
    )
    unfiltered, _ = go(
        smtp(b"250 ok\r\n550 5.1.1 no such user\r\n354 go\r\n", b"250 2.0.0 ok\r\n"),
        config=_config(),
    )
    assert statuses(unfiltered) == [("bounced", "5.1.1")]


@pytest.mark.parameter("smtp_reply_filter")
def test_reply_filter_sees_each_line_whole_however_it_arrives() -> None:
    # A line split over reads, and each line of a multi-line reply on its own.
    ehlo = [b"250-mx.example\r\n250-PIPE", b"LINING\r\n250-X-JUNK 1\r", b"\n250 8BITMIME\r\n"]
    table = "regexp:{ {/^250-X-JUNK/ 250-X-FILTERED} }"
    session = Session([b"220 mx ESMTP\r\n", *ehlo, *OK])
    report, record = go(session, config=_config(smtp_reply_filter=table))
    assert statuses(report) == [("sent", "2.0.0")]
    assert "In: 250-X-FILTERED" in report.transcript
    assert record.flights()[1].startswith(b"MAIL FROM:<a@example.org>\r\nRCPT TO:")  # pipelined


def test_reply_filter_holding_part_of_a_line_at_starttls_is_an_injection() -> None:
    # NS-01: octets after the STARTTLS reply must never be read as TLS data, held or not.
    connection = ClientConnection(reply_filter=lambda line: None)
    connection.receive_data(b"220 hi\r\n")
    connection.next_event()
    connection.send(Ehlo("client.example"))
    connection.receive_data(b"250-mx\r\n250 STARTTLS\r\n")
    connection.next_event()
    connection.send(StartTLS())
    connection.receive_data(b"220 go\r\n250 inject")  # the filter waits for the rest
    with pytest.raises(RemoteProtocolError, match="NS-01"):
        connection.next_event()
        connection.tls_established()


_line = st.sampled_from(
    [b"220-a", b"220 b", b"220-x y", b"421 4.3.2 bye", b"250 no", b"junk", b"220 \xff", b"2"]
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(_line, min_size=1, max_size=8),
    st.lists(st.integers(min_value=1, max_value=9), max_size=20),
    st.sampled_from([b"\r\n", b"\n", b"\r\r\n"]),
    st.booleans(),
)
def test_a_filter_that_changes_nothing_changes_no_event(
    lines: list[bytes], sizes: list[int], end: bytes, eof: bool
) -> None:
    # Rule 1.9 with a table that never matches: the same greeting (or the same error) for
    # any way the octets arrive, and the filter saw each complete line once, in order.
    data = b"".join(line + end for line in lines)
    pieces, start = [], 0
    for size in sizes:
        pieces.append(data[start : start + size])
        start += size
    pieces.append(data[start:])

    def first_event(filtered: bool) -> tuple[Any, list[str]]:
        seen: list[str] = []

        def keep(line: str) -> None:
            seen.append(line)

        connection = ClientConnection(reply_filter=keep if filtered else None)  # type: ignore[arg-type]
        try:
            for piece in [*(p for p in pieces if p), *([b""] if eof else [])]:
                connection.receive_data(piece)
                event = connection.next_event()
                if event is not NEED_DATA:
                    return event, seen
        except RemoteProtocolError as error:
            return str(error), seen
        return NEED_DATA, seen

    filtered, seen = first_event(True)
    assert filtered == first_event(False)[0]
    complete = [line.decode("utf-8", "replace") for line in data.split(b"\n")[:-1]]
    assert seen == [line.rstrip("\r") for line in complete][: len(seen)]


# -- smtp_delivery_status_filter ----------------------------------------------------------------

STATUS_FILTER = {
    "5.1.1 host 192.0.2.1[192.0.2.1] said: 550 5.1.1 gone (in reply to RCPT TO command)": (
        "4.1.1 kept for later"
    ),
    "2.0.0 250 2.0.0 queued as X": "2.0.0 delivered (filtered)",
    "5.7.1 host 192.0.2.1[192.0.2.1] said: 550 5.7.1 no (in reply to RCPT TO command)": (
        "2.0.0 a failure never becomes a success"
    ),
}


@pytest.mark.parameter("smtp_delivery_status_filter")
def test_delivery_status_filter_rewrites_final_outcomes() -> None:
    rcpt = b"250 ok\r\n550 5.1.1 gone\r\n250 ok\r\n550 5.7.1 no\r\n354 go\r\n"
    report, _ = go(
        smtp(rcpt, b"250 2.0.0 queued as X\r\n"),
        config=_config(smtp_delivery_status_filter=STATUS_FILTER),
        recipients=("gone@example.com", "fine@example.com", "no@example.com"),
    )
    assert [(r.status, r.dsn, r.diagnostic) for r in report.recipients] == [
        ("deferred", "4.1.1", "kept for later"),
        ("sent", "2.0.0", "delivered (filtered)"),
        (
            "bounced",
            "5.7.1",
            "host 192.0.2.1[192.0.2.1] said: 550 5.7.1 no (in reply to RCPT TO command)",
        ),
    ]
    assert report.recipients[1].reply is not None  # the server's own reply is kept


@pytest.mark.parametrize(
    ("result", "outcome"),
    [
        ("5.1.2 other", ("bounced", "5.1.2", "other")),
        ("4.4.4", ("deferred", "4.4.4", "old text")),
        ("2.0.0 no", ("bounced", "5.1.1", "old text")),  # failure <-> success: ignored
        ("junk", ("bounced", "5.1.1", "old text")),
    ],
)
def test_filter_status_follows_postfix_dsn_filter(
    result: str, outcome: tuple[str, str, str]
) -> None:
    table: Mapping[str, str] = {"5.1.1 old text": result}
    assert filter_status(table, "bounced", "5.1.1", "old text") == outcome  # type: ignore[arg-type]


def test_a_status_filter_result_that_is_no_status_is_refused_with_the_configuration() -> None:
    with pytest.raises(ValueError, match=r"smtp_delivery_status_filter: .*X\.Y\.Z text"):
        _config(smtp_delivery_status_filter="static:{something else}")


# -- smtp_host_lookup, smtp_dns_reply_filter, smtp_cname_overrides_servername -----------------


def _deliver(
    config: ClientConfig,
    *,
    dns: Mapping[tuple[str, str], Any],
    native: Mapping[tuple[str, str], Any] | None = None,
    servers: Mapping[str, list[Any]] | None = None,
    destination: str = "example.com",
) -> tuple[DeliveryReport, Record]:
    """`deliver` with DNS answers from `dns` and native (getaddrinfo) answers from `native`."""
    world = World(dns=dns, servers=servers or {})
    native = native or {}

    def answer(index: int, request: IORequest) -> Any:
        if isinstance(request, Resolve) and request.lookup == "native":
            found = native.get((request.name, request.rrtype))
            if found is None:
                raise DNSError("nxdomain", f"{request.name}: not found natively")
            return found
        return world.answer(index, request)

    envelope = Envelope("a@example.org", (Recipient("b@example.com"),))
    engine = deliver(destination, envelope, b"\r\nx\r\n", config=config, clock=Clock(), rng=Rng())
    report: DeliveryReport = drive(engine, answer, world.record)
    return report, world.record


def _lookups(record: Record) -> list[tuple[str, str, str]]:
    return [(r.name, r.rrtype, r.lookup) for r in record.of_type(Resolve)]


MX = {("example.com", "MX"): (MXRecord(10, "mx.example.com"),)}


@pytest.mark.parameter("smtp_host_lookup")
@pytest.mark.parametrize(
    ("host_lookup", "lookups", "status"),
    [
        ("dns", [("mx.example.com", "A", "dns")], ("bounced", "5.4.4")),
        (
            "dns, native",
            [("mx.example.com", "A", "dns"), ("mx.example.com", "A", "native")],
            ("sent", "2.0.0"),
        ),
        ("native", [("mx.example.com", "A", "native")], ("sent", "2.0.0")),
    ],
)
def test_host_lookup_chooses_dns_native_or_native_for_what_dns_does_not_know(
    host_lookup: str, lookups: list[tuple[str, str, str]], status: tuple[str, str]
) -> None:
    # mx.example.com is only in /etc/hosts (native), not in the DNS
    config = _config(smtp_host_lookup=host_lookup, inet_protocols="ipv4")
    report, record = _deliver(
        config,
        dns=MX,
        native={("mx.example.com", "A"): ("192.0.2.1",)},
        servers={"192.0.2.1": [smtp(*OK)]},
    )
    assert _lookups(record) == [("example.com", "MX", "dns"), *lookups]
    assert statuses(report) == [status]


@pytest.mark.parameter("smtp_host_lookup")
def test_a_dns_failure_that_is_not_not_found_is_not_asked_natively() -> None:
    # smtp_addr.c: only DNS_NOTFOUND goes on to the native service
    config = _config(smtp_host_lookup="dns, native", inet_protocols="ipv4")
    report, record = _deliver(
        config,
        dns={**MX, ("mx.example.com", "A"): DNSError("temporary", "SERVFAIL")},
        native={("mx.example.com", "A"): ("192.0.2.1",)},
    )
    assert _lookups(record)[-1] == ("mx.example.com", "A", "dns")
    assert statuses(report) == [("deferred", "4.4.3")]


@pytest.mark.parameter("smtp_host_lookup", "smtp_dns_support_level")
def test_with_dns_disabled_host_lookup_is_native() -> None:
    config = _config(
        smtp_host_lookup="dns", smtp_dns_support_level="disabled", inet_protocols="ipv4"
    )
    _, record = _deliver(
        config,
        dns={},
        native={("mx.example.com", "A"): ("192.0.2.1",)},
        servers={"192.0.2.1": [smtp(*OK)]},
        destination="mx.example.com",
    )
    assert _lookups(record) == [("mx.example.com", "A", "native")]


TWO_MX = {
    ("example.com", "MX"): DNSAnswer(
        (MXRecord(10, "mx1.example.com"), MXRecord(20, "mx2.example.com")), ttl=3600
    ),
    ("mx1.example.com", "A"): DNSAnswer(("192.0.2.1",), ttl=300),
    ("mx2.example.com", "A"): DNSAnswer(("192.0.2.2", "192.0.2.3"), ttl=300),
}


@pytest.mark.parameter("smtp_dns_reply_filter")
def test_dns_reply_filter_ignores_records_by_their_text() -> None:
    table = (
        "regexp:{ {/^example\\.com\\. 3600 IN MX 10 mx1\\.example\\.com\\.$$/ IGNORE}, "
        "{/^mx2\\.example\\.com\\. 300 IN A 192\\.0\\.2\\.2$$/ IGNORE} }"
    )
    config = _config(smtp_dns_reply_filter=table, inet_protocols="ipv4")
    report, record = _deliver(config, dns=TWO_MX, servers={"192.0.2.3": [smtp(*OK)]})
    assert statuses(report) == [("sent", "2.0.0")]
    assert [c.address for c in record.of_type(Connect)] == ["192.0.2.3"]
    assert "ignoring DNS RR: example.com. 3600 IN MX 10 mx1.example.com." in report.transcript
    assert "ignoring DNS RR: mx2.example.com. 300 IN A 192.0.2.2" in report.transcript
    assert ("mx1.example.com", "A", "dns") not in _lookups(record)


@pytest.mark.parameter("smtp_dns_reply_filter")
@pytest.mark.parametrize(
    ("table", "text"),
    [
        ("static:IGNORE", "Error looking up name=example.com type=MX: DNS reply filter drops"),
        (
            "regexp:{ {/ A / IGNORE} }",
            "Error looking up name=mx1.example.com type=A: DNS reply filter drops",
        ),
    ],
)
def test_a_dns_reply_filter_that_drops_everything_defers_4_7_0(table: str, text: str) -> None:
    config = _config(smtp_dns_reply_filter=table, inet_protocols="ipv4", smtp_host_lookup="dns")
    dns = {**TWO_MX, ("mx2.example.com", "A"): DNSAnswer((), ttl=300)}
    report, record = _deliver(config, dns=dns)
    assert statuses(report) == [("deferred", "4.7.0")]
    assert report.recipients[0].diagnostic.startswith(text)
    assert record.of_type(Connect) == []


def test_native_answers_are_not_dns_answers_and_are_not_filtered() -> None:
    config = _config(smtp_dns_reply_filter="static:IGNORE", smtp_host_lookup="native")
    _, record = _deliver(
        config,
        dns={},
        native={("mx.example.com", "A"): ("192.0.2.1",)},
        servers={"192.0.2.1": [smtp(*OK)]},
        destination="[mx.example.com]",
    )
    assert [c.address for c in record.of_type(Connect)] == ["192.0.2.1"]


def test_dns_reply_filter_knows_only_ignore() -> None:
    with pytest.raises(
        ValueError, match=r"smtp_dns_reply_filter: .* the only DNS reply filter action"
    ):
        _config(smtp_dns_reply_filter="static:REJECT")


ALIAS = {
    ("example.com", "MX"): (MXRecord(10, "alias.example.com"),),
    ("alias.example.com", "A"): DNSAnswer(("192.0.2.1",), canonical_name="real.example.net"),
}


@pytest.mark.parameter("smtp_cname_overrides_servername")
@pytest.mark.parametrize(
    ("override", "name"), [("yes", "real.example.net"), ("no", "alias.example.com")]
)
def test_cname_overrides_servername_names_the_server_after_the_cname(
    override: str, name: str
) -> None:
    # The server name is what the log shows, what SASL passwords and TLS policies are looked
    # up by, and what the certificate must match.
    config = _config(
        smtp_cname_overrides_servername=override,
        inet_protocols="ipv4",
        smtp_sasl_auth_enable="yes",
        smtp_sasl_security_options="noanonymous",
        smtp_sasl_password_maps={"real.example.net": "real:pw", "alias.example.com": "alias:pw"},
    )
    session = smtp(b"235 2.7.0 ok\r\n", *OK, ehlo=b"250-mx\r\n250-PIPELINING\r\n250 AUTH PLAIN\r\n")
    report, record = _deliver(config, dns=ALIAS, servers={"192.0.2.1": [session]})
    (result,) = report.recipients
    assert result.relay == f"{name}[192.0.2.1]:25"
    auth = [line for line in record.sent().split(b"\r\n") if line.startswith(b"AUTH PLAIN")]
    user = base64.b64decode(auth[0].split()[2]).split(b"\0")[1]
    assert user == name.split(".")[0].encode()


@pytest.mark.parameter("smtp_cname_overrides_servername")
def test_cname_overrides_servername_decides_the_certificate_name() -> None:
    verified = TLSInfo(
        version="TLSv1.3",
        cipher="TLS_AES_128_GCM_SHA256",
        chain_verified=True,
        peer_certificate={"subjectAltName": (("DNS", "real.example.net"),)},
    )
    tls = [b"220 mx ESMTP\r\n", b"250-mx\r\n250 STARTTLS\r\n", b"220 go\r\n", verified]
    outcomes = []
    for override in ("yes", "no"):
        config = _config(
            smtp_cname_overrides_servername=override,
            smtp_tls_security_level="verify",
            inet_protocols="ipv4",
        )
        session = Session([*tls, b"250-mx\r\n250 PIPELINING\r\n", *OK])
        report, _ = _deliver(config, dns=ALIAS, servers={"192.0.2.1": [session]})
        outcomes.append(statuses(report)[0])
    assert outcomes == [("sent", "2.0.0"), ("deferred", "4.7.5")]


def test_run_and_script_still_answer_plain_tuples() -> None:
    # A resolver that returns bare tuples (an embedder's) needs no DNSAnswer.
    report, _ = run(
        deliver(
            "example.com",
            Envelope("a@example.org", (Recipient("b@example.com"),)),
            b"\r\nx\r\n",
            config=_config(inet_protocols="ipv4"),
            clock=Clock(),
            rng=Rng(),
        ),
        Script(
            dns={**MX, ("mx.example.com", "A"): ("192.0.2.1",)},
            servers={"192.0.2.1": [smtp(*OK)]},
        ),
    )
    assert statuses(report) == [("sent", "2.0.0")]
