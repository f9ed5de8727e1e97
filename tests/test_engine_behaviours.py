"""Behaviours of the issue's fidelity list: the plaintext retry at ``may`` (rule 5.5), reuse
limits and sender-dependent logins on held sessions (rules 9.1, 11.8), the source address
that cannot be bound (smtp_bind_address_enforce) and IDNA 2003 compatibility.

Scripted servers; the requests the engine makes are the evidence. Postfix smtpd's view is in
tests/interop/test_params2_interop.py.
"""

from __future__ import annotations

import base64
from collections.abc import Generator
from typing import Any

import pytest
from smtpproto.adapters._driver import idna_encoder
from support.world import (
    ADDR,
    DEST,
    Clock,
    Record,
    Rng,
    Script,
    Session,
    World,
    drive,
    go,
    run,
    smtp,
    statuses,
)

from smtpproto.config import ClientConfig
from smtpproto.destinations import parse_destinations
from smtpproto.engine import close_session, deliver, open_session, transact
from smtpproto.envelope import Envelope, Recipient
from smtpproto.report import DeliveryReport
from smtpproto.requests import (
    BindFailed,
    Connect,
    IORequest,
    Resolve,
    StartTLS,
    TLSFailed,
)

OK = (b"250 ok\r\n250 ok\r\n354 go\r\n", b"250 2.0.0 ok\r\n")
STARTTLS = b"250-mx.example\r\n250-PIPELINING\r\n250 STARTTLS\r\n"
NOW = 1000.0  # support.world.Clock starts here


def _config(**parameters: Any) -> ClientConfig:
    return ClientConfig.from_postconf(
        {"smtp_helo_name": "client.example", "smtp_tls_security_level": "may", **parameters}
    )


def _envelope(arrival: float | None = None, sender: str = "a@example.org") -> Envelope:
    return Envelope(sender, (Recipient("b@example.com"),), arrival=arrival)


# -- the plaintext retry after a failed handshake (rule 5.5) -----------------------------------

BROKEN_TLS = Session([b"220 mx ESMTP\r\n", STARTTLS, b"220 go\r\n", TLSFailed("handshake")])
PLAIN = smtp(*OK, ehlo=STARTTLS)


@pytest.mark.parameter("minimal_backoff_time")
@pytest.mark.parametrize(
    ("arrival", "backoff", "retried"),
    [
        (NOW - 400, "300s", True),  # queued longer than minimal_backoff_time
        (NOW - 100, "300s", False),  # younger
        (NOW - 100, "60s", True),
        (None, "1s", False),  # unknown arrival: just queued, as for the PIX threshold
    ],
)
def test_may_retries_in_plaintext_only_for_mail_queued_long_enough(
    arrival: float | None, backoff: str, retried: bool
) -> None:
    report, record = go(
        BROKEN_TLS,
        PLAIN,
        config=_config(minimal_backoff_time=backoff),
        envelope=_envelope(arrival),
    )
    connects = [c.address for c in record.of_type(Connect)]
    if retried:
        assert statuses(report) == [("sent", "2.0.0")]
        assert connects == [ADDR, ADDR]  # the same address, again
        second = record.channels[1]
        assert b"STARTTLS" not in record.sent(second)
        assert f"Warning: retrying {ADDR}[{ADDR}] without TLS" in report.transcript
    else:
        assert statuses(report) == [("deferred", "4.7.5")]
        assert connects == [ADDR]


@pytest.mark.parameter("minimal_backoff_time")
@pytest.mark.parametrize("level", ["encrypt", "verify"])
def test_no_plaintext_retry_where_tls_is_required(level: str) -> None:
    report, record = go(
        BROKEN_TLS,
        PLAIN,
        config=_config(smtp_tls_security_level=level, minimal_backoff_time="1s"),
        envelope=_envelope(0.0),
    )
    assert statuses(report) == [("deferred", "4.7.5")]
    assert len(record.of_type(Connect)) == 1


@pytest.mark.parameter("minimal_backoff_time", "smtp_sasl_password_maps")
def test_sasl_credentials_forbid_the_plaintext_retry() -> None:
    # Rule 11.9: a server that offers AUTH only under TLS would say "relay access denied".
    config = _config(
        minimal_backoff_time="1s",
        smtp_sasl_auth_enable="yes",
        smtp_sasl_password_maps={f"[{ADDR}]": "user:pw"},
    )
    report, record = go(BROKEN_TLS, PLAIN, config=config, envelope=_envelope(0.0))
    assert statuses(report) == [("deferred", "4.7.5")]
    assert len(record.of_type(Connect)) == 1


def test_the_plaintext_retry_counts_against_no_limit() -> None:
    # mx_address_limit = 1: the retry is the same address, not a second one.
    config = _config(minimal_backoff_time="1s", smtp_mx_address_limit="1")
    report, record = go(BROKEN_TLS, PLAIN, config=config, envelope=_envelope(0.0))
    assert statuses(report) == [("sent", "2.0.0")]
    assert [type(r).__name__ for r in record.requests].count("StartTLS") == 1
    assert len(record.of_type(StartTLS)) == 1


# -- reuse limits on held sessions (rule 9.1) -------------------------------------------------


def _held(
    config: ClientConfig, envelopes: list[Envelope], clock: Clock | None = None
) -> Generator[IORequest, Any, list[DeliveryReport]]:
    session = yield from open_session(DEST, config=config, clock=clock or Clock(), rng=Rng())
    reports = []
    for envelope in envelopes:
        reports.append((yield from transact(session, envelope, b"Subject: t\r\n\r\nhi\r\n")))
    yield from close_session(session)
    return reports


@pytest.mark.parameter("smtp_connection_reuse_count_limit")
def test_a_held_session_opens_a_new_connection_after_the_reuse_count_limit() -> None:
    # N reuses, N + 1 transactions per connection; the caller's session object goes on.
    config = _config(smtp_connection_reuse_count_limit="1", smtp_tls_security_level="none")
    script = Script(servers={ADDR: [smtp(*OK, *OK), smtp(*OK)]})
    reports, record = run(_held(config, [_envelope()] * 3), script)
    assert [statuses(r) for r in reports] == [[("sent", "2.0.0")]] * 3
    first, second = record.channels
    assert record.sent(first).count(b"MAIL FROM") == 2
    assert record.sent(second).count(b"MAIL FROM") == 1
    assert first.closed and record.sent(first).endswith(b"QUIT\r\n")


class _Jumping(Clock):
    """A clock that jumps `by` seconds each time `jump` is called."""

    def jump(self, by: float) -> None:
        self.now += by


@pytest.mark.parameter("smtp_connection_reuse_time_limit")
def test_a_held_session_past_the_reuse_time_limit_is_replaced() -> None:
    config = _config(smtp_connection_reuse_time_limit="60s", smtp_tls_security_level="none")
    clock = _Jumping()

    def client() -> Generator[IORequest, Any, list[DeliveryReport]]:
        session = yield from open_session(DEST, config=config, clock=clock, rng=Rng())
        reports = [(yield from transact(session, _envelope(), b"\r\nfirst\r\n"))]
        clock.jump(120)  # idle past the limit, counted from the connection's start
        reports.append((yield from transact(session, _envelope(), b"\r\nsecond\r\n")))
        yield from close_session(session)
        return reports

    reports, record = run(client(), Script(servers={ADDR: [smtp(*OK), smtp(*OK)]}))
    assert [statuses(r) for r in reports] == [[("sent", "2.0.0")]] * 2
    assert len(record.channels) == 2
    assert b"second" in record.sent(record.channels[1])


# -- sender-dependent logins on held sessions (rule 11.8) -------------------------------------

AUTH_EHLO = b"250-mx.example\r\n250-PIPELINING\r\n250 AUTH PLAIN\r\n"
PASSWORDS = {
    "alice@example.org": "alice:pw1",
    "bob@example.org": "bob:pw2",
    f"[{ADDR}]": "relay:pw",
}


def _logins(record: Record) -> list[bytes]:
    lines = [w for w in record.sent().split(b"\r\n") if w.startswith(b"AUTH PLAIN ")]
    return [base64.b64decode(line.split()[2]).split(b"\0")[1] for line in lines]


def _sender_config(dependent: str) -> ClientConfig:
    return _config(
        smtp_tls_security_level="none",
        smtp_sasl_auth_enable="yes",
        smtp_sasl_security_options="noanonymous",
        smtp_sasl_password_maps=PASSWORDS,
        smtp_sender_dependent_authentication=dependent,
    )


@pytest.mark.parameter("smtp_sender_dependent_authentication")
def test_a_held_session_logs_in_for_its_first_sender_and_reconnects_for_another() -> None:
    senders = ["alice@example.org", "alice@example.org", "bob@example.org"]
    authed = (b"235 2.7.0 ok\r\n", *OK)
    script = Script(
        servers={ADDR: [smtp(*authed, *OK, ehlo=AUTH_EHLO), smtp(*authed, ehlo=AUTH_EHLO)]}
    )
    reports, record = run(
        _held(_sender_config("yes"), [_envelope(sender=s) for s in senders]), script
    )
    assert [statuses(r) for r in reports] == [[("sent", "2.0.0")]] * 3
    assert _logins(record) == [b"alice", b"bob"]  # one login per connection, per sender
    shown = "\n".join(line for report in reports for line in report.transcript)
    assert "pw1" not in shown and "pw2" not in shown  # AU-18, for a login made late too
    first, second = record.channels
    assert record.sent(first).count(b"MAIL FROM:<alice@example.org>") == 2
    assert b"MAIL FROM:<bob@example.org>" in record.sent(second)


@pytest.mark.parameter("smtp_sender_dependent_authentication")
def test_senders_with_the_same_credentials_share_the_held_session() -> None:
    # carol and dave have no entry of their own: both use the next hop's login.
    script = Script(servers={ADDR: [smtp(b"235 2.7.0 ok\r\n", *OK, *OK, ehlo=AUTH_EHLO)]})
    envelopes = [_envelope(sender="carol@example.org"), _envelope(sender="dave@example.org")]
    reports, record = run(_held(_sender_config("yes"), envelopes), script)
    assert [statuses(r) for r in reports] == [[("sent", "2.0.0")]] * 2
    assert _logins(record) == [b"relay"]
    assert len(record.channels) == 1


@pytest.mark.parameter("smtp_sender_dependent_authentication")
def test_without_sender_dependent_logins_a_held_session_logs_in_at_once() -> None:
    script = Script(servers={ADDR: [smtp(b"235 2.7.0 ok\r\n", *OK, ehlo=AUTH_EHLO)]})
    reports, record = run(
        _held(_sender_config("no"), [_envelope(sender="alice@example.org")]), script
    )
    assert statuses(reports[0]) == [("sent", "2.0.0")]
    assert _logins(record) == [b"relay"]
    assert record.flights()[1].startswith(b"AUTH PLAIN")  # right after EHLO, before MAIL


@pytest.mark.parameter("smtp_sender_dependent_authentication")
def test_a_failed_deferred_login_defers_that_transaction_only() -> None:
    # alice's login fails; bob's transaction gets a new connection and its own login.
    script = Script(
        servers={
            ADDR: [
                smtp(b"535 5.7.8 bad\r\n", ehlo=AUTH_EHLO),
                smtp(b"235 2.7.0 ok\r\n", *OK, ehlo=AUTH_EHLO),
            ]
        }
    )
    senders = ["alice@example.org", "bob@example.org"]
    reports, record = run(
        _held(_sender_config("yes"), [_envelope(sender=s) for s in senders]), script
    )
    assert [statuses(r) for r in reports] == [[("deferred", "4.7.8")], [("sent", "2.0.0")]]
    assert _logins(record) == [b"alice", b"bob"]
    assert b"MAIL FROM" not in record.sent(record.channels[0])


# -- smtp_bind_address_enforce -----------------------------------------------------------------


def _bind_world(config: ClientConfig) -> tuple[DeliveryReport, Record]:
    world = World(dns={}, servers={ADDR: [smtp(*OK)]})

    def answer(index: int, request: IORequest) -> Any:
        if isinstance(request, Connect) and request.bind_address is not None:
            raise BindFailed(f"bind {request.bind_address}: Cannot assign requested address")
        return world.answer(index, request)

    engine = deliver(DEST, _envelope(), b"\r\nx\r\n", config=config, clock=Clock(), rng=Rng())
    return drive(engine, answer, world.record), world.record


@pytest.mark.parameter("smtp_bind_address_enforce", "smtp_bind_address")
@pytest.mark.parametrize(
    ("enforce", "outcome"), [("yes", ("deferred", "4.4.0")), ("no", ("sent", "2.0.0"))]
)
def test_bind_address_enforce_defers_or_goes_on_from_another_address(
    enforce: str, outcome: tuple[str, str]
) -> None:
    config = _config(
        smtp_bind_address="192.0.2.99",
        smtp_bind_address_enforce=enforce,
        smtp_tls_security_level="none",
    )
    report, record = _bind_world(config)
    assert statuses(report) == [outcome]
    assert "Warning: bind 192.0.2.99: Cannot assign requested address" in report.transcript
    binds = [c.bind_address for c in record.of_type(Connect)]
    assert binds == (["192.0.2.99"] if enforce == "yes" else ["192.0.2.99", None])
    if enforce == "yes":
        assert report.recipients[0].diagnostic == "server configuration error"


def test_bind_address_enforce_defaults() -> None:
    # The library defers by default; a Postfix configuration keeps Postfix's "no".
    assert ClientConfig().bind_address_enforce
    assert not ClientConfig.from_postconf({}).bind_address_enforce


# -- enable_idna2003_compatibility ---------------------------------------------------------------


@pytest.mark.parameter("enable_idna2003_compatibility")
@pytest.mark.parametrize(
    ("compatible", "name"),
    [("no", "xn--strae-oqa.example"), ("yes", "strasse.example")],
)
def test_idna2003_compatibility_maps_the_deviation_characters(compatible: str, name: str) -> None:
    # UTS #46 transitional processing: ß is "ss" (IDNA 2003), non-transitional keeps it.
    idna = idna_encoder()  # the idna package is in the test extra
    assert idna is not None
    config = _config(enable_idna2003_compatibility=compatible, smtp_tls_security_level="none")
    (destination,) = parse_destinations("straße.example", config=config, idna=idna)
    assert destination.host == name
    engine = deliver(
        "straße.example", _envelope(), b"\r\nx\r\n", config=config, clock=Clock(), rng=Rng(),
        idna=idna,
    )  # fmt: skip
    _, record = run(engine, Script())
    assert record.of_type(Resolve)[0].name == name
