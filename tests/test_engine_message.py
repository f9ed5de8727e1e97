"""Scripted dialogues for message refusals: 8-bit without 8BITMIME, SMTPUTF8, content failures.

Rules 3.10, 8.5 and quirk Q7: a message the client will not send is refused before MAIL where
that can be known, and otherwise the connection is dropped without ``.`` so that the server
discards the partial message (SM-19).
"""

from __future__ import annotations

import io

from support.world import EHLO_PLAIN, Session, go, smtp, statuses

from smtpproto.envelope import Envelope, Recipient
from smtpproto.requests import MXRecord, Send

EHLO_NO_8BIT = b"250-mx.example\r\n250 PIPELINING\r\n"
EHLO_8BIT = b"250-mx.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
MX2 = {
    ("example.com", "MX"): (MXRecord(10, "mx1.example.com"), MXRecord(20, "mx2.example.com")),
    ("mx1.example.com", "A"): ("192.0.2.1",),
    ("mx2.example.com", "A"): ("192.0.2.2",),
}
EIGHT_BIT_BODY = b"Subject: t\r\n\r\ncaf\xc3\xa9\r\n"


def test_8bit_body_to_a_7bit_server_is_converted_and_sent_without_size() -> None:
    # Rules 8.5 and 6.1 (1): converted to quoted-printable; no BODY=8BITMIME on MAIL
    report, record = go(
        smtp(b"250 ok\r\n250 ok\r\n354 go\r\n", b"250 2.0.0 ok\r\n", ehlo=EHLO_NO_8BIT),
        message=EIGHT_BIT_BODY,
    )
    assert statuses(report) == [("sent", "2.0.0")]
    sent = record.sent()
    assert b"BODY=8BITMIME" not in sent
    assert b"caf=C3=A9\r\n" in sent
    assert b"Content-Transfer-Encoding: quoted-printable\r\n" in sent
    assert sent.isascii()


def test_8bit_with_conversion_disabled_is_refused_before_mail() -> None:
    # Quirk Q7: 8-bit octets never reach a server without 8BITMIME (5.6.3); last server: bounce
    report, record = go(
        smtp(b"221 bye\r\n", ehlo=EHLO_NO_8BIT),
        message=EIGHT_BIT_BODY,
        disable_mime_output_conversion=True,
    )
    assert statuses(report) == [("bounced", "5.6.3")]
    assert b"MAIL FROM" not in record.sent()
    assert b"\xc3" not in record.sent()


def test_8bit_refusal_tries_the_next_mx_which_has_8bitmime() -> None:
    # Like 5.6.7 (rule 3.10) the refusal is SOFT_NON_FINAL: another MX may have 8BITMIME
    report, record = go(
        destination="example.com",
        dns=MX2,
        servers={
            "192.0.2.1": [smtp(b"221 bye\r\n", ehlo=EHLO_NO_8BIT)],
            "192.0.2.2": [
                smtp(b"250 ok\r\n250 ok\r\n354 go\r\n", b"250 2.0.0 ok\r\n", ehlo=EHLO_8BIT)
            ],
        },
        message=EIGHT_BIT_BODY,
        disable_mime_output_conversion=True,
    )
    assert statuses(report) == [("sent", "2.0.0")]
    assert b"MAIL FROM:<a@example.org> BODY=8BITMIME" in record.sent(record.channels[1])


def test_8bit_header_in_a_mime_part_drops_the_connection_without_the_dot() -> None:
    # Rule 8.5: hostile MIME met while converting; no partial message may be delivered
    message = (
        b"Subject: t\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\nX-Name: caf\xc3\xa9\r\n\r\nbody \xc3\xa9\r\n--b--\r\n"
    )
    report, record = go(
        smtp(b"250 ok\r\n250 ok\r\n354 go\r\n", ehlo=EHLO_NO_8BIT),
        message=message,
    )
    assert statuses(report) == [("bounced", "5.6.3")]
    after_data = record.sent().split(b"DATA\r\n", 1)[1]
    assert not after_data.endswith(b".\r\n")
    assert b"QUIT" not in after_data
    assert record.channels[0].closed


class _ChangesAfterScan(io.BytesIO):
    """A seekable file whose content is replaced once it has been read to the end."""

    def __init__(self, first: bytes, second: bytes) -> None:
        super().__init__(first)
        self._second: bytes | None = second

    def read(self, size: int | None = -1, /) -> bytes:
        data = super().read(size)
        if not data and self._second is not None:
            self.seek(0)
            self.truncate()
            self.write(self._second)
            self._second = None
        return data


def test_source_that_changes_after_the_scan_defers_and_sends_no_dot() -> None:
    # SM-19: content the encoder refuses while streaming (a NUL appeared) -> no ".", deferred
    message = _ChangesAfterScan(b"Subject: t\r\n\r\nhello\r\n", b"Subject: t\r\n\r\nhel\0lo\r\n")
    report, record = go(smtp(b"250 ok\r\n250 ok\r\n354 go\r\n"), message=message)  # type: ignore[arg-type]
    assert statuses(report) == [("deferred", "4.3.0")]
    assert "message content could not be sent" in (report.recipients[0].diagnostic or "")
    after_data = record.sent().split(b"DATA\r\n", 1)[1]
    assert b".\r\n" not in after_data
    assert record.channels[0].closed


def test_utf8_header_with_smtputf8_requested_needs_a_smtputf8_server() -> None:
    # Rule 3.10: requested, and the message has UTF-8 in a header -> 5.6.7, never MAIL
    envelope = Envelope("a@example.org", (Recipient("b@example.com"),), smtputf8=True)
    report, record = go(
        smtp(b"221 bye\r\n", ehlo=EHLO_PLAIN),
        envelope=envelope,
        message="Subject: caf\u00e9\r\n\r\nhello\r\n".encode(),
    )
    assert statuses(report) == [("bounced", "5.6.7")]
    assert b"MAIL FROM" not in record.sent()


def test_every_refusal_sends_nothing_of_the_message() -> None:
    # The refused 8-bit content never reaches the wire in any flight
    _, record = go(
        Session([b"220 mx.example ESMTP\r\n", EHLO_NO_8BIT, b"221 bye\r\n"]),
        message=EIGHT_BIT_BODY,
        disable_mime_output_conversion=True,
    )
    assert all(b"caf" not in r.data for r in record.of_type(Send))
