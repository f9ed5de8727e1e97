"""Model-based property test of the delivery engine against random servers (rules 0, 2, 14.7).

Random DNS with several MX hosts, random reply codes at every step, connection loss or
timeout at any I/O request: every recipient ends with exactly one status, ``sent`` only after
a positive reply to the end of data, the engine always terminates, and no more connections
are opened than the limits allow.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from support.world import Clock, FailSend, Rng, Script, Session, Step, run

from smtpproto.config import ClientConfig
from smtpproto.engine import deliver
from smtpproto.envelope import Envelope, Recipient
from smtpproto.requests import Connect, ConnectFailed, ConnectionLost, IOTimeout, MXRecord

CODES = (220, 221, 250, 251, 354, 334, 421, 450, 451, 452, 500, 503, 550, 552, 554, 555)

step: st.SearchStrategy[Step] = st.one_of(
    st.sampled_from(CODES).map(lambda c: b"%d 0 x\r\n" % c),
    st.sampled_from(CODES).map(lambda c: b"%d-a\r\n%d b\r\n" % (c, c)),
    st.just(b"250-mx\r\n250 PIPELINING\r\n"),
    st.just(b"250-mx\r\n250-PIPELINING\r\n250 DSN\r\n"),
    st.just(b"250-mx\r\n250-PIPELINING\r\n250 CHUNKING\r\n"),
    st.just(b"250-mx\r\n250 CHUNKING\r\n"),
    st.just(ConnectionLost("reset")),
    st.just(IOTimeout("slow")),
    st.just(FailSend(ConnectionLost("broken pipe"))),
    st.just(b""),
)

session: st.SearchStrategy[Session | ConnectFailed] = st.one_of(
    st.just(ConnectFailed("refused")),
    st.lists(step, max_size=12).map(lambda steps: Session([b"220 mx ESMTP\r\n", *steps])),
    st.lists(step, max_size=12).map(Session),
)


@settings(max_examples=200, deadline=None)
@given(
    hosts=st.integers(1, 4),
    sessions=st.lists(st.lists(session, min_size=1, max_size=3), min_size=4, max_size=4),
    recipients=st.integers(1, 4),
    address_limit=st.integers(0, 4),
    session_limit=st.integers(0, 3),
    recipient_limit=st.integers(1, 3),
    chunking=st.booleans(),
)
def test_every_recipient_gets_exactly_one_status(
    hosts: int,
    sessions: list[list[Session | ConnectFailed]],
    recipients: int,
    address_limit: int,
    session_limit: int,
    recipient_limit: int,
    chunking: bool,
) -> None:
    dns: dict[tuple[str, str], object] = {
        ("example.com", "MX"): tuple(MXRecord(i, f"mx{i}.example.com") for i in range(hosts)),
    }
    servers = {}
    for i in range(hosts):
        dns[(f"mx{i}.example.com", "A")] = (f"192.0.2.{i}",)
        servers[f"192.0.2.{i}"] = sessions[i]
    config = ClientConfig(
        helo_name="client.example",
        mx_address_limit=address_limit,
        mx_session_limit=session_limit,
        destination_recipient_limit=recipient_limit,
        chunking=chunking,
    )
    envelope = Envelope("a@x", tuple(Recipient(f"r{i}@example.com") for i in range(recipients)))
    report, record = run(
        deliver("example.com", envelope, b"hi\r\n", config=config, clock=Clock(), rng=Rng()),
        Script(dns=dns, servers=servers),  # type: ignore[arg-type]
        max_steps=2000,
    )
    assert [r.address for r in report.recipients] == [r.address for r in envelope.recipients]
    for r in report.recipients:
        assert r.status in ("sent", "deferred", "bounced")
        if r.status == "sent":
            assert r.reply is not None and r.reply.is_positive
            # the end of data (".", or BDAT LAST) went out before this recipient was delivered
            sent = b"".join(record.sent(c) for c in record.channels)
            assert b"\r\n.\r\n" in sent or sent.startswith(b".\r\n") or b" LAST\r\n" in sent
    batches = -(-recipients // recipient_limit)
    per_batch = hosts if address_limit == 0 else min(hosts, address_limit)
    assert len(record.of_type(Connect)) <= batches * per_batch
    assert all(c.closed for c in record.channels)
