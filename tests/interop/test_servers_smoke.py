"""Raw-socket smoke tests proving each interop server works before any client talks to it.

These use only the socket/ssl modules (and dnspython for DNS), so a failure here is the
server fixture's fault, never the client library's.
"""

from __future__ import annotations

import base64
import socket
import ssl
import uuid
from pathlib import Path

import pytest

from .servers import (
    DEAD_ADDRESS,
    DOMAIN,
    ZONE,
    AiosmtpdFactory,
    DnsServer,
    DovecotServer,
    PostfixServer,
    SinkFactory,
    require_binary,
)

pytestmark = pytest.mark.interop

Reply = tuple[int, list[str]]


class RawSession:
    """A line-at-a-time SMTP/LMTP conversation over a plain (then maybe TLS) socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    @classmethod
    def tcp(cls, host: str, port: int) -> RawSession:
        """Connect over TCP with a bounded timeout."""
        return cls(socket.create_connection((host, port), timeout=10.0))

    @classmethod
    def unix(cls, path: Path) -> RawSession:
        """Connect to a unix-domain socket with a bounded timeout."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(10.0)
        sock.connect(str(path))
        return cls(sock)

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()

    def read_line(self) -> bytes:
        """One CRLF-terminated line, or b'' when the server closed the connection."""
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                rest, self.buffer = self.buffer, b""
                return rest
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line

    def reply(self) -> Reply:
        """One (possibly multiline) reply: its code and the text of each line."""
        lines: list[str] = []
        while True:
            line = self.read_line().decode("utf-8", "replace")
            if not line:
                raise ConnectionError(f"connection closed after {lines!r}")
            lines.append(line[4:])
            if line[3:4] != "-":
                return int(line[:3]), lines

    def send(self, data: bytes) -> None:
        """Send raw bytes."""
        self.sock.sendall(data)

    def command(self, line: str) -> Reply:
        """Send one command line and read its reply."""
        self.send(line.encode("utf-8") + b"\r\n")
        return self.reply()

    def starttls(self, context: ssl.SSLContext, server_hostname: str) -> None:
        """Wrap the socket after a 220 reply to STARTTLS (RFC 3207 section 4)."""
        assert not self.buffer, "bytes pipelined after STARTTLS (RFC 3207 section 4)"
        self.sock = context.wrap_socket(self.sock, server_hostname=server_hostname)


def keywords(lines: list[str]) -> dict[str, str]:
    """EHLO/LHLO keywords (upper case) -> parameters, from the reply lines after the first."""
    result: dict[str, str] = {}
    for line in lines[1:]:
        keyword, _, params = line.partition(" ")
        result[keyword.upper()] = params
    return result


def marker() -> str:
    """A unique token to find this test's message among the session's deliveries."""
    return f"smoke-{uuid.uuid4().hex}"


def test_postfix_ehlo_advertises_the_extensions_the_client_needs(
    postfix_server: PostfixServer,
) -> None:
    session = RawSession.tcp(postfix_server.host, postfix_server.port)
    try:
        code, greeting = session.reply()
        assert code == 220 and "ESMTP" in greeting[0]
        code, lines = session.command("EHLO client.example.test")
        assert code == 250
        advertised = keywords(lines)
        for keyword in (
            "PIPELINING",
            "SIZE",
            "STARTTLS",
            "ENHANCEDSTATUSCODES",
            "8BITMIME",
            "DSN",
            "SMTPUTF8",
            "CHUNKING",
        ):
            assert keyword in advertised, (keyword, lines)
        assert advertised["SIZE"] == str(postfix_server.message_size_limit)
        # smtpd_tls_auth_only: no AUTH in the clear.
        assert "AUTH" not in advertised
        assert session.command("QUIT")[0] == 221
    finally:
        session.close()


def test_postfix_second_port_does_not_advertise_8bitmime(postfix_server: PostfixServer) -> None:
    session = RawSession.tcp(postfix_server.host, postfix_server.port_no8bitmime)
    try:
        assert session.reply()[0] == 220
        code, lines = session.command("EHLO client.example.test")
        assert code == 250
        advertised = keywords(lines)
        assert "8BITMIME" not in advertised
        assert {"PIPELINING", "STARTTLS", "CHUNKING"} <= advertised.keys()
    finally:
        session.close()


def test_postfix_delivers_into_maildir_and_answers_per_recipient(
    postfix_server: PostfixServer,
) -> None:
    token = marker()
    session = RawSession.tcp(postfix_server.host, postfix_server.port)
    try:
        assert session.reply()[0] == 220
        assert session.command("EHLO client.example.test")[0] == 250
        assert session.command(f"MAIL FROM:<sender@{DOMAIN}> BODY=8BITMIME")[0] == 250
        assert session.command(f"RCPT TO:<alice@{DOMAIN}>")[0] == 250
        code, lines = session.command(f"RCPT TO:<nobody@{DOMAIN}>")
        assert code == 550 and lines[0].startswith("5.1.1"), lines
        code, lines = session.command(f"RCPT TO:<{postfix_server.rejected_recipient}>")
        assert code == 550 and lines[0].startswith("5.7.1"), lines
        code, lines = session.command(f"RCPT TO:<{postfix_server.deferred_recipient}>")
        assert code == 450 and lines[0].startswith("4.7.1"), lines
        code, lines = session.command("RCPT TO:<someone@elsewhere.invalid>")
        assert code == 550, "the instance must never relay off this machine"
        assert session.command("DATA")[0] == 354
        body = f"Subject: {token}\r\n\r\ncaf\xe9 8-bit body\r\n".encode()
        session.send(body + b".\r\n")
        code, lines = session.reply()
        assert code == 250, lines
        assert session.command("QUIT")[0] == 221
    finally:
        session.close()
    delivered = postfix_server.wait_for_delivery(f"alice@{DOMAIN}", contains=token.encode())
    assert len(delivered) == 1
    assert b"Delivered-To: alice@example.test" in delivered[0]
    assert "café 8-bit body".encode() in delivered[0]


def test_postfix_accepts_bdat_chunks(postfix_server: PostfixServer) -> None:
    token = marker()
    chunk = f"Subject: {token}\r\n\r\nsent with BDAT (RFC 3030)\r\n".encode()
    session = RawSession.tcp(postfix_server.host, postfix_server.port)
    try:
        assert session.reply()[0] == 220
        assert session.command("EHLO client.example.test")[0] == 250
        assert session.command(f"MAIL FROM:<sender@{DOMAIN}>")[0] == 250
        assert session.command(f"RCPT TO:<bob@{DOMAIN}>")[0] == 250
        session.send(f"BDAT {len(chunk)} LAST\r\n".encode() + chunk)
        code, lines = session.reply()
        assert code == 250, lines
    finally:
        session.close()
    delivered = postfix_server.wait_for_delivery(f"bob@{DOMAIN}", contains=token.encode())
    assert b"sent with BDAT" in delivered[0]


def test_postfix_refuses_a_declared_size_over_its_limit(postfix_server: PostfixServer) -> None:
    session = RawSession.tcp(postfix_server.host, postfix_server.port)
    try:
        assert session.reply()[0] == 220
        assert session.command("EHLO client.example.test")[0] == 250
        too_big = postfix_server.message_size_limit + 1
        code, lines = session.command(f"MAIL FROM:<sender@{DOMAIN}> SIZE={too_big}")
        assert code == 552 and lines[0].startswith("5.3.4"), lines
    finally:
        session.close()


def test_postfix_starttls_verifies_with_the_test_ca_and_then_offers_auth(
    postfix_server: PostfixServer,
) -> None:
    session = RawSession.tcp(postfix_server.host, postfix_server.port)
    try:
        assert session.reply()[0] == 220
        assert session.command("EHLO client.example.test")[0] == 250
        assert session.command("STARTTLS")[0] == 220
        session.starttls(postfix_server.tls.client_context(), "localhost")
        assert isinstance(session.sock, ssl.SSLSocket)
        code, lines = session.command("EHLO client.example.test")
        assert code == 250
        advertised = keywords(lines)
        assert "STARTTLS" not in advertised
        if not postfix_server.sasl:
            pytest.skip("Postfix runs without Dovecot here: apt-get install dovecot-core")
        mechanisms = set(advertised["AUTH"].split())
        assert {"PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256"} <= mechanisms, mechanisms
        user, password = next(iter(postfix_server.sasl_users.items()))
        code, lines = session.command("AUTH PLAIN " + plain_token(user, "wrong"))
        assert code == 535, lines
        code, lines = session.command("AUTH PLAIN " + plain_token(user, password))
        assert code == 235 and lines[0].startswith("2.7.0"), lines
    finally:
        session.close()


def plain_token(user: str, password: str) -> str:
    """The SASL PLAIN initial response (RFC 4616) for user/password."""
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def test_dovecot_lmtp_answers_each_recipient_after_data(dovecot_server: DovecotServer) -> None:
    token = marker()
    session = RawSession.tcp(dovecot_server.host, dovecot_server.lmtp_port)
    try:
        assert session.reply()[0] == 220
        code, lines = session.command("LHLO client.example.test")
        assert code == 250
        assert {"PIPELINING", "ENHANCEDSTATUSCODES", "8BITMIME"} <= keywords(lines).keys()
        assert session.command(f"MAIL FROM:<sender@{DOMAIN}>")[0] == 250
        assert session.command(f"RCPT TO:<alice@{DOMAIN}>")[0] == 250
        assert session.command(f"RCPT TO:<{dovecot_server.over_quota_user}>")[0] == 250
        code, lines = session.command(f"RCPT TO:<nobody@{DOMAIN}>")
        assert code == 550 and lines[0].startswith("5.1.1"), lines
        assert session.command(f"RCPT TO:<bob@{DOMAIN}>")[0] == 250
        assert session.command("DATA")[0] == 354
        session.send(f"Subject: {token}\r\n\r\nLMTP body\r\n.\r\n".encode())
        # RFC 2033 section 4.2: one reply per accepted recipient, in RCPT order.
        replies = [session.reply() for _ in range(3)]
        assert [code for code, _ in replies] == [250, 552, 250], replies
        assert dovecot_server.over_quota_user in replies[1][1][0]
        assert replies[1][1][0].startswith("5.2.2")
        assert session.command("QUIT")[0] == 221
    finally:
        session.close()
    for address in (f"alice@{DOMAIN}", f"bob@{DOMAIN}"):
        delivered = dovecot_server.wait_for_delivery(address, contains=token.encode())
        assert b"LMTP body" in delivered[0]


def test_dovecot_lmtp_listens_on_its_unix_socket(dovecot_server: DovecotServer) -> None:
    session = RawSession.unix(dovecot_server.lmtp_socket)
    try:
        assert session.reply()[0] == 220
        assert session.command("LHLO client.example.test")[0] == 250
    finally:
        session.close()


def test_smtp_sink_accepts_a_message_and_dumps_it(smtp_sink: SinkFactory) -> None:
    sink = smtp_sink()
    token = marker()
    session = RawSession.tcp(sink.host, sink.port)
    try:
        assert session.reply()[0] == 220
        code, lines = session.command("EHLO client.example.test")
        assert code == 250
        assert {"PIPELINING", "8BITMIME", "DSN", "ENHANCEDSTATUSCODES"} <= keywords(lines).keys()
        assert session.command(f"MAIL FROM:<sender@{DOMAIN}>")[0] == 250
        assert session.command(f"RCPT TO:<alice@{DOMAIN}>")[0] == 250
        assert session.command("DATA")[0] == 354
        session.send(f"Subject: {token}\r\n\r\nsink\r\n.\r\n".encode())
        assert session.reply()[0] == 250
        assert session.command("QUIT")[0] == 221
    finally:
        session.close()
    assert any(token.encode() in message for message in sink.messages())


def test_smtp_sink_in_lmtp_mode_replies_per_recipient(smtp_sink: SinkFactory) -> None:
    sink = smtp_sink(lmtp=True)
    session = RawSession.tcp(sink.host, sink.port)
    try:
        assert session.reply()[0] == 220
        assert session.command("LHLO client.example.test")[0] == 250
        assert session.command(f"MAIL FROM:<sender@{DOMAIN}>")[0] == 250
        assert session.command(f"RCPT TO:<alice@{DOMAIN}>")[0] == 250
        assert session.command(f"RCPT TO:<bob@{DOMAIN}>")[0] == 250
        assert session.command("DATA")[0] == 354
        session.send(b"Subject: lmtp\r\n\r\nsink\r\n.\r\n")
        assert [session.reply()[0] for _ in range(2)] == [250, 250]
    finally:
        session.close()


def test_smtp_sink_fault_options_reject_and_disconnect(smtp_sink: SinkFactory) -> None:
    sink = smtp_sink("-r", "RCPT", "-f", "DATA", "-q", "RSET")
    session = RawSession.tcp(sink.host, sink.port)
    try:
        assert session.reply()[0] == 220
        code, lines = session.command("EHLO client.example.test")
        # -f/-r imply -p: no PIPELINING.
        assert code == 250 and "PIPELINING" not in keywords(lines)
        assert session.command(f"MAIL FROM:<sender@{DOMAIN}>")[0] == 250
        assert session.command(f"RCPT TO:<alice@{DOMAIN}>")[0] // 100 == 4
        assert session.command("DATA")[0] // 100 == 5
        session.send(b"RSET\r\n")
        assert session.read_line() == b"", "-q RSET must drop the connection without a reply"
    finally:
        session.close()


def test_smtp_sink_can_greet_with_421(smtp_sink: SinkFactory) -> None:
    sink = smtp_sink("-Q", "EHLO")
    session = RawSession.tcp(sink.host, sink.port)
    try:
        assert session.reply()[0] == 220
        assert session.command("EHLO client.example.test")[0] == 421
        assert session.read_line() == b""
    finally:
        session.close()


def test_dnsmasq_serves_the_test_zone(dns_server: DnsServer) -> None:
    import dns.resolver

    resolver = dns_server.resolver()
    mx = sorted((r.preference, r.exchange.to_text()) for r in resolver.resolve(f"mx.{ZONE}", "MX"))
    assert mx == [(10, f"mx1.{ZONE}."), (20, f"mx2.{ZONE}."), (30, f"mx3.{ZONE}.")]
    assert [r.address for r in resolver.resolve(f"mx1.{ZONE}", "A")] == ["127.0.0.1"]
    assert [r.address for r in resolver.resolve(f"mx1.{ZONE}", "AAAA")] == ["::1"]
    dead_first = sorted(
        (r.preference, r.exchange.to_text()) for r in resolver.resolve(f"deadfirst.{ZONE}", "MX")
    )
    assert dead_first == [(10, f"dead.{ZONE}."), (20, f"live.{ZONE}.")]
    assert [r.address for r in resolver.resolve(f"dead.{ZONE}", "A")] == [DEAD_ADDRESS]
    # RFC 7505: a single MX of preference 0 pointing at the root.
    null_mx = [
        (r.preference, r.exchange.to_text()) for r in resolver.resolve(f"nullmx.{ZONE}", "MX")
    ]
    assert null_mx == [(0, ".")]
    with pytest.raises(dns.resolver.NoAnswer):
        resolver.resolve(f"nomx.{ZONE}", "MX")
    with pytest.raises(dns.resolver.NXDOMAIN):
        resolver.resolve(f"nothere.{ZONE}", "A")


def test_dead_mx_address_refuses_connections(dns_server: DnsServer) -> None:
    address = dns_server.resolver().resolve(f"dead.{ZONE}", "A")[0].address
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((address, 25), timeout=5.0).close()


def test_aiosmtpd_receives_a_plain_message(aiosmtpd_server: AiosmtpdFactory) -> None:
    server = aiosmtpd_server()
    session = RawSession.tcp(server.host, server.port)
    try:
        assert session.reply()[0] == 220
        assert session.command("EHLO client.example.test")[0] == 250
        assert session.command(f"MAIL FROM:<sender@{DOMAIN}>")[0] == 250
        assert session.command(f"RCPT TO:<alice@{DOMAIN}>")[0] == 250
        assert session.command("DATA")[0] == 354
        session.send(b"Subject: aiosmtpd\r\n\r\nhello\r\n.\r\n")
        assert session.reply()[0] == 250
    finally:
        session.close()
    [message] = server.messages
    assert message.rcpt_tos == (f"alice@{DOMAIN}",)
    assert b"hello" in message.content


def test_aiosmtpd_starttls_then_auth_plain(aiosmtpd_server: AiosmtpdFactory) -> None:
    server = aiosmtpd_server(starttls=True, require_starttls=True, auth=True)
    session = RawSession.tcp(server.host, server.port)
    try:
        assert session.reply()[0] == 220
        code, lines = session.command("EHLO client.example.test")
        assert code == 250 and "STARTTLS" in keywords(lines)
        assert session.command(f"MAIL FROM:<sender@{DOMAIN}>")[0] == 530
        assert session.command("STARTTLS")[0] == 220
        assert server.tls is not None
        session.starttls(server.tls.client_context(), "localhost")
        code, lines = session.command("EHLO client.example.test")
        assert code == 250 and "PLAIN" in keywords(lines)["AUTH"].split()
        assert session.command("AUTH PLAIN " + plain_token("alice", "wrong"))[0] == 535
        assert session.command("AUTH PLAIN " + plain_token("alice", "alice-secret"))[0] == 235
        assert session.command(f"MAIL FROM:<sender@{DOMAIN}>")[0] == 250
    finally:
        session.close()


def test_missing_server_skips_outside_ci_with_the_package_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install no-such-package"):
        require_binary("no-such-mail-server", "no-such-package")


def test_missing_server_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="unavailable in CI"):
        require_binary("no-such-mail-server", "no-such-package")
