"""Scripted dialogues for the delivery request: MX walk, limits, fallback, reuse (rules 9, 14)."""

from __future__ import annotations

from support.world import Session, go, smtp, statuses

from smtpproto.requests import Connect, ConnectFailed, DNSError, MXRecord, Resolve

OK_TRANSACTION = (b"250 ok\r\n250 ok\r\n354 go\r\n", b"250 2.0.0 ok\r\n")
MX2 = {
    ("example.com", "MX"): (MXRecord(10, "mx1.example.com"), MXRecord(20, "mx2.example.com")),
    ("mx1.example.com", "A"): ("192.0.2.1",),
    ("mx2.example.com", "A"): ("192.0.2.2",),
}


def connects(record: object) -> list[str]:
    return [c.address for c in record.of_type(Connect)]  # type: ignore[attr-defined]


def test_mx_hosts_are_tried_in_preference_order_and_soft_failure_moves_on() -> None:
    # rules 14.2, 14.7: 4xx greeting at mx1 is KEEP, mx2 delivers
    report, record = go(
        destination="example.com",
        dns=MX2,
        servers={"192.0.2.1": [Session([b"421 busy\r\n"])], "192.0.2.2": [smtp(*OK_TRANSACTION)]},
    )
    assert connects(record) == ["192.0.2.1", "192.0.2.2"]
    assert statuses(report) == [("sent", "2.0.0")]
    assert report.recipients[0].relay == "mx2.example.com[192.0.2.2]:25"


def test_hard_rcpt_failure_bounces_at_once_even_with_mx_left() -> None:
    # rule 2.2
    report, record = go(
        destination="example.com",
        dns=MX2,
        servers={"192.0.2.1": [smtp(b"250 ok\r\n550 5.1.1 unknown\r\n554 no\r\n")]},
    )
    assert statuses(report) == [("bounced", "5.1.1")]
    assert connects(record) == ["192.0.2.1"]


def test_last_error_decides_at_end_of_list() -> None:
    # rule 14.8 test: primary 451 on RCPT, backup refuses the connection -> 4.4.1 deferred
    report, _ = go(
        destination="example.com",
        dns=MX2,
        servers={"192.0.2.1": [smtp(b"250 ok\r\n451 4.3.0 later\r\n554 no\r\n")]},
    )
    (r,) = report.recipients
    assert (r.status, r.dsn) == ("deferred", "4.4.1")
    assert r.diagnostic == "connect to mx2.example.com[192.0.2.2]:25: Connection refused"
    # Postfix smtp_bulk_fail: no session, so "relay=none" (not the server it failed to reach).
    assert r.relay is None


def test_no_mx_falls_back_to_the_domain_address() -> None:
    # rule 14.2: NODATA -> implicit MX
    report, record = go(
        destination="example.com",
        dns={("example.com", "MX"): (), ("example.com", "A"): ("192.0.2.9",)},
        servers={"192.0.2.9": [smtp(*OK_TRANSACTION)]},
    )
    assert connects(record) == ["192.0.2.9"]
    assert statuses(report) == [("sent", "2.0.0")]


def test_null_mx_bounces_without_connecting() -> None:
    # RFC 7505, rule 14.2
    report, record = go(destination="example.com", dns={("example.com", "MX"): (MXRecord(0, ""),)})
    assert statuses(report) == [("bounced", "5.1.10")]
    assert connects(record) == []


def test_temporary_mx_lookup_failure_defers_4_4_3() -> None:
    # rule 14.2
    report, record = go(
        destination="example.com",
        dns={("example.com", "MX"): DNSError("temporary", "SERVFAIL")},
    )
    assert statuses(report) == [("deferred", "4.4.3")]
    assert not [r for r in record.of_type(Resolve) if r.rrtype == "A"]


def test_ignore_mx_lookup_error_uses_the_domain_address() -> None:
    # rule 14.2
    report, _ = go(
        destination="example.com",
        dns={
            ("example.com", "MX"): DNSError("temporary", "SERVFAIL"),
            ("example.com", "A"): ("192.0.2.9",),
        },
        servers={"192.0.2.9": [smtp(*OK_TRANSACTION)]},
        ignore_mx_lookup_error=True,
    )
    assert statuses(report) == [("sent", "2.0.0")]


def test_mx_hosts_without_addresses_bounce_unless_defer_if_no_mx_address_found() -> None:
    # rule 14.4
    dns = {("example.com", "MX"): (MXRecord(10, "gone.example.com"),)}
    report, _ = go(destination="example.com", dns=dns)
    assert statuses(report)[0][0] == "bounced"
    report, _ = go(destination="example.com", dns=dns, defer_if_no_mx_address_found=True)
    assert statuses(report)[0][0] == "deferred"


def test_every_address_tried_counts_against_mx_address_limit() -> None:
    # rule 14.7: connect failures count too
    dns = {
        ("example.com", "MX"): tuple(MXRecord(i, f"mx{i}.example.com") for i in range(1, 4)),
        **{(f"mx{i}.example.com", "A"): (f"192.0.2.{i}",) for i in range(1, 4)},
    }
    report, record = go(destination="example.com", dns=dns, mx_address_limit=2)
    assert connects(record) == ["192.0.2.1", "192.0.2.2"]
    assert statuses(report) == [("deferred", "4.4.1")]


def test_mx_session_limit_counts_sessions_past_the_handshake() -> None:
    # rule 14.7
    dns = {
        ("example.com", "MX"): tuple(MXRecord(i, f"mx{i}.example.com") for i in range(1, 4)),
        **{(f"mx{i}.example.com", "A"): (f"192.0.2.{i}",) for i in range(1, 4)},
    }
    soft = smtp(b"451 4.3.0 later\r\n250 ok\r\n554 no\r\n")
    report, record = go(
        destination="example.com",
        dns=dns,
        servers={"192.0.2.1": [soft], "192.0.2.2": [soft], "192.0.2.3": [smtp(*OK_TRANSACTION)]},
        mx_session_limit=2,
    )
    assert connects(record) == ["192.0.2.1", "192.0.2.2"]
    assert statuses(report) == [("deferred", "4.3.0")]


def test_fallback_relay_is_tried_after_the_destination() -> None:
    # rule 14.10
    report, record = go(
        destination="[192.0.2.1]",
        servers={"192.0.2.1": [ConnectFailed("refused")], "192.0.2.7": [smtp(*OK_TRANSACTION)]},
        fallback_relay=("[192.0.2.7]",),
    )
    assert connects(record) == ["192.0.2.1", "192.0.2.7"]
    assert statuses(report) == [("sent", "2.0.0")]


def test_hard_error_from_fallback_relay_becomes_4_3_5() -> None:
    # rule 14.8: a hard status recorded for a fallback relay is a configuration problem
    report, _ = go(
        destination="[192.0.2.1]",
        dns={("relay.invalid", "A"): DNSError("nxdomain", "no")},
        servers={"192.0.2.1": [ConnectFailed("refused")]},
        fallback_relay=("[relay.invalid]",),
    )
    assert statuses(report) == [("deferred", "4.3.5")]


def test_domain_without_mx_or_address_bounces_5_4_4() -> None:
    # rule 14.3: NODATA for the implicit MX's address lookup
    report, record = go(
        destination="example.com",
        dns={("example.com", "MX"): (), ("example.com", "A"): (), ("example.com", "AAAA"): ()},
    )
    assert statuses(report) == [("bounced", "5.4.4")]
    assert connects(record) == []


def test_destination_recipient_limit_splits_into_transactions_on_one_connection() -> None:
    # new MAIL per batch; the session is kept between batches after an RSET probe (rule 9.4)
    report, record = go(
        smtp(
            b"250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n",
            b"250 ok\r\n",
            b"250 reset\r\n",
            b"250 ok\r\n250 ok\r\n354 go\r\n",
            b"250 ok\r\n",
        ),
        recipients=("a@x", "b@x", "c@x"),
        destination_recipient_limit=2,
    )
    assert statuses(report) == [("sent", "2.0.0")] * 3
    assert len(record.channels) == 1
    sent = record.sent()
    assert sent.count(b"MAIL FROM") == 2 and sent.count(b"RSET\r\n") == 1
    assert sent.endswith(b".\r\nQUIT\r\n")


def test_no_reuse_past_connection_reuse_time_limit() -> None:
    # rules 9.1-9.3: expired -> QUIT after the first batch, new connection for the second
    report, record = go(
        smtp(b"250 ok\r\n250 ok\r\n354 go\r\n", b"250 ok\r\n"),
        smtp(b"250 ok\r\n250 ok\r\n354 go\r\n", b"250 ok\r\n"),
        recipients=("a@x", "b@x"),
        destination_recipient_limit=1,
        connection_reuse_time_limit=0.001,
    )
    assert statuses(report) == [("sent", "2.0.0")] * 2
    assert len(record.channels) == 2


def test_failed_rset_probe_drops_the_cached_connection() -> None:
    # rule 9.4
    report, record = go(
        smtp(b"250 ok\r\n250 ok\r\n354 go\r\n", b"250 ok\r\n", b"421 gone\r\n"),
        smtp(b"250 ok\r\n250 ok\r\n354 go\r\n", b"250 ok\r\n"),
        recipients=("a@x", "b@x"),
        destination_recipient_limit=1,
    )
    assert statuses(report) == [("sent", "2.0.0")] * 2
    assert len(record.channels) == 2


def test_a_config_that_is_not_a_clientconfig_is_refused_before_any_request() -> None:
    # The engine names the mistake itself, so every driver (the adapters, an embedder's own)
    # gets the same LocalProtocolError instead of an AttributeError from inside.
    import random

    import pytest

    from smtpproto import LocalProtocolError
    from smtpproto.engine import deliver, open_session
    from smtpproto.envelope import Envelope, Recipient

    envelope = Envelope("a@example.org", (Recipient("b@example.com"),))
    runs = [
        deliver("[192.0.2.1]", envelope, b"\r\n", config={}, clock=float, rng=random.Random(0)),  # type: ignore[arg-type]
        open_session("[192.0.2.1]", config={}, clock=float, rng=random.Random(0)),  # type: ignore[arg-type]
    ]
    for run in runs:
        with pytest.raises(LocalProtocolError, match=r"^config: expected a ClientConfig"):
            next(run)
