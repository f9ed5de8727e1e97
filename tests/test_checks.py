"""header_checks(5) in the client (smtp_*_checks) and smtp_generic_maps, while the message streams.

Unit tests of `smtpproto.engine.checks` and `smtpproto.engine.generic` beside hypothesis
properties (the output never depends on how the input was cut; rules that never match change
nothing but line ends), then deliveries against scripted servers, where the client's octets
are the evidence. The real Postfix smtpd and Postfix's own smtp(8) with the same tables are in
tests/interop/test_checks_interop.py.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.world import ADDR, DEST, Clock, Rng, Script, go, run, smtp, statuses

from smtpproto import LocalProtocolError, MessageRefused
from smtpproto.body import iter_wire
from smtpproto.config import ClientConfig
from smtpproto.engine import close_session, open_session, transact
from smtpproto.engine.checks import HEADER_SIZE_LIMIT, RECORD_LIMIT, Checks, inspect
from smtpproto.engine.generic import GenericMaps
from smtpproto.envelope import Envelope, Recipient
from smtpproto.report import DeliveryReport
from smtpproto.requests import Connect, IORequest

OK = (b"250 ok\r\n250 ok\r\n354 go\r\n", b"250 2.0.0 ok\r\n")


def _checks(**parameters: Any) -> Checks:
    config = ClientConfig.from_postconf({"myhostname": "mx.local.test", **parameters})
    checks = Checks.from_config(config)
    assert checks is not None
    return checks


def _run(message: bytes, checks: Checks, *, cuts: tuple[int, ...] = ()) -> tuple[bytes, list[str]]:
    log: list[str] = []
    pieces, start = [], 0
    for cut in (*cuts, len(message)):
        pieces.append(message[start:cut])
        start = cut
    return b"".join(inspect(pieces, checks, note=log.append)), log


def _content(record: Any) -> bytes:
    """The message content the client wrote after DATA's 354, without the final dot."""
    sent = record.sent()
    start = sent.index(b"DATA\r\n") + len(b"DATA\r\n")
    return sent[start : sent.index(b"\r\n.\r\n", start) + 2]


MULTIPART = (
    b"From: a@example.org\r\n"
    b"Subject: report\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="BB"\r\n'
    b"\r\n"
    b"preamble\r\n"
    b"--BB\r\n"
    b"Content-Type: text/plain\r\n"
    b"X-Part: one\r\n"
    b"\r\n"
    b"body line\r\n"
    b"--BB\r\n"
    b"Content-Type: message/rfc822\r\n"
    b"\r\n"
    b"Subject: inner\r\n"
    b"Content-Type: text/plain\r\n"
    b"\r\n"
    b"inner body\r\n"
    b"--BB--\r\n"
    b"epilogue\r\n"
)


# -- which table a line meets ---------------------------------------------------------------


@pytest.mark.parameter(
    "smtp_header_checks", "smtp_mime_header_checks", "smtp_nested_header_checks", "smtp_body_checks"
)
def test_each_line_meets_the_table_of_its_class() -> None:
    # Postfix mime_state.c classes: primary, MIME (any Content-* and every part header),
    # nested (an attached message's own header), and body for the rest.
    warn_all = "pcre:{ {/^(.+)$$/ WARN seen} }"
    for parameter, seen in [
        ("smtp_header_checks", ["From: a@example.org", "Subject: report"]),
        (
            "smtp_mime_header_checks",
            [
                "MIME-Version: 1.0",
                'Content-Type: multipart/mixed; boundary="BB"',
                "Content-Type: text/plain",
                "X-Part: one",
                "Content-Type: message/rfc822",
                "Content-Type: text/plain",
            ],
        ),
        ("smtp_nested_header_checks", ["Subject: inner"]),
        (
            "smtp_body_checks",
            ["preamble", "--BB", "body line", "--BB", "inner body", "--BB--", "epilogue"],
        ),
    ]:
        out, log = _run(MULTIPART, _checks(**{parameter: warn_all}))
        where = "body" if parameter == "smtp_body_checks" else "header"
        assert log == [f"warning: {where} {line}: seen" for line in seen], parameter
        assert out == MULTIPART


@pytest.mark.parameter("smtp_header_checks")
def test_a_folded_header_is_matched_whole_with_its_lines_joined_by_newline() -> None:
    message = b"Subject: one\r\n\ttwo secret\r\n\r\nbody\r\n"
    out, _ = _run(message, _checks(smtp_header_checks="regexp:{ {/^Subject:.*secret/ IGNORE} }"))
    assert out == b"\r\nbody\r\n"
    anchored = _checks(smtp_header_checks="pcre:{ {/^Subject: one\\n\\ttwo/ REPLACE Subject: x} }")
    assert _run(message, anchored)[0] == b"Subject: x\r\n\r\nbody\r\n"


# -- the actions ----------------------------------------------------------------------------

MESSAGE = b"From: a@example.org\r\nSubject: hello\r\nX-Tag: 1\r\n\r\nline one\r\nline two\r\n"


@pytest.mark.parameter("smtp_header_checks", "smtp_body_checks")
@pytest.mark.parametrize(
    ("parameter", "rule", "expected", "log"),
    [
        (
            "smtp_header_checks",
            "/^Subject:/ REPLACE Subject: [checked]",
            b"From: a@example.org\r\nSubject: [checked]\r\nX-Tag: 1\r\n"
            b"\r\nline one\r\nline two\r\n",
            ["replace: header Subject: hello: Subject: [checked]"],
        ),
        (
            "smtp_header_checks",
            "/^Subject: (.*)/ PREPEND X-Old-Subject: $1",
            b"From: a@example.org\r\nX-Old-Subject: hello\r\nSubject: hello\r\nX-Tag: 1\r\n"
            b"\r\nline one\r\nline two\r\n",
            ["prepend: header Subject: hello: X-Old-Subject: hello"],
        ),
        (
            "smtp_header_checks",
            "/^X-Tag:/ IGNORE",
            b"From: a@example.org\r\nSubject: hello\r\n\r\nline one\r\nline two\r\n",
            [],
        ),
        (
            "smtp_header_checks",
            "/^X-Tag:/ STRIP internal tag",
            b"From: a@example.org\r\nSubject: hello\r\n\r\nline one\r\nline two\r\n",
            ["strip: header X-Tag: 1: internal tag"],
        ),
        ("smtp_header_checks", "/^X-Tag:/ INFO tagged", MESSAGE, ["info: header X-Tag: 1: tagged"]),
        ("smtp_header_checks", "/^X-Tag:/ DUNNO", MESSAGE, []),
        ("smtp_header_checks", "/^X-Tag:/ OK", MESSAGE, []),
        (
            "smtp_body_checks",
            "/^line one$/ REPLACE line 1",
            b"From: a@example.org\r\nSubject: hello\r\nX-Tag: 1\r\n\r\nline 1\r\nline two\r\n",
            ["replace: body line one: line 1"],
        ),
        (
            "smtp_body_checks",
            "/^line two$/ PREPEND line 1.5",
            b"From: a@example.org\r\nSubject: hello\r\nX-Tag: 1\r\n\r\nline one\r\nline 1.5\r\n"
            b"line two\r\n",
            ["prepend: body line two: line 1.5"],
        ),
        (
            "smtp_body_checks",
            "/^line one$/ IGNORE",
            b"From: a@example.org\r\nSubject: hello\r\nX-Tag: 1\r\n\r\nline two\r\n",
            [],
        ),
    ],
)
def test_actions_rewrite_the_stream_as_postfix_does(
    parameter: str, rule: str, expected: bytes, log: list[str]
) -> None:
    rule = rule.replace("$", "$$")  # from_postconf expands $name, as main.cf does
    out, notes = _run(MESSAGE, _checks(**{parameter: f"regexp:{{ {{{rule}}} }}"}))
    assert out == expected
    assert notes == log


@pytest.mark.parameter("smtp_header_checks")
@pytest.mark.parametrize(
    ("rule", "dsn", "text"),
    [
        ("REJECT", "5.7.1", "smtp_header_checks: message content rejected"),
        ("REJECT no tags here", "5.7.1", "smtp_header_checks: no tags here"),
        ("REJECT 5.7.9 no tags", "5.7.9", "smtp_header_checks: no tags"),
        ("REJECT 4.7.0 later", "4.7.0", "smtp_header_checks: later"),
        ("REJECT 2.0.0 odd", "4.0.0", "smtp_header_checks: odd"),
        ("DISCARD", "5.7.1", "smtp_header_checks: message content discarded"),
    ],
)
def test_reject_and_discard_refuse_the_message(rule: str, dsn: str, text: str) -> None:
    checks = _checks(smtp_header_checks=f"regexp:{{ {{/^X-Tag:/ {rule}}} }}")
    with pytest.raises(MessageRefused) as refused:
        _run(MESSAGE, checks)
    assert (refused.value.refusal.dsn, refused.value.refusal.text) == (dsn, text)


@pytest.mark.parametrize(
    ("parameter", "value", "complaint"),
    [
        ("smtp_header_checks", "static:{BCC x@example.com}", "BCC works on Postfix's queue"),
        ("smtp_body_checks", "static:{FILTER smtp:[127.0.0.1]}", "FILTER works on"),
        ("smtp_header_checks", "static:HOLD", "HOLD works on"),
        ("smtp_header_checks", "static:REDIRECT", "REDIRECT works on"),
        ("smtp_header_checks", "static:PASS", "PASS works on"),
        ("smtp_body_checks", "static:FROB", "unknown action 'FROB'"),
        ("smtp_header_checks", "static:REPLACE", "REPLACE without text"),
        ("smtp_header_checks", "static:{REPLACE no colon}", "not 'name: value'"),
        ("smtp_mime_header_checks", "static:{PREPEND nope}", "not 'name: value'"),
    ],
)
def test_actions_a_client_cannot_carry_out_are_refused_with_the_configuration(
    parameter: str, value: str, complaint: str
) -> None:
    with pytest.raises(LocalProtocolError, match=f"{parameter}: .*{complaint}"):
        ClientConfig.from_postconf({parameter: value})


def test_body_replace_text_need_not_be_a_header() -> None:
    config = ClientConfig.from_postconf({"smtp_body_checks": "static:{REPLACE no colon}"})
    assert config.body_checks.get("x") is not None


def test_an_action_known_only_for_one_line_that_is_invalid_is_a_warning() -> None:
    # A "$n" result exists only for a key: Postfix warns and sends the line unchanged.
    checks = _checks(smtp_header_checks="regexp:{ {/^X-Tag: (.*)/ $$1} }")
    out, log = _run(MESSAGE, checks)
    assert out == MESSAGE
    assert log == ["warning: smtp_header_checks: unknown action '1'"]


def test_empty_lines_never_match() -> None:
    # header_checks(5) BUGS: "Empty lines never match".
    out, log = _run(b"\r\n\r\nx\r\n", _checks(smtp_body_checks="static:{WARN any}"))
    assert out == b"\r\n\r\nx\r\n"
    assert log == ["warning: body x: any"]


def test_long_body_lines_are_checked_in_records_of_postfixs_line_length_limit() -> None:
    line = b"a" * RECORD_LIMIT + b"b" * 10
    checks = _checks(smtp_body_checks="regexp:{ {/^b+$$/ REPLACE B} }")
    out, log = _run(b"\r\n" + line + b"\r\n", checks, cuts=(5, 100, 3000))
    assert out == b"\r\n" + b"a" * RECORD_LIMIT + b"B\r\n"
    assert log == ["replace: body bbbbbbbbbb: B"]


def test_a_header_longer_than_the_limit_is_decided_on_its_start_and_streamed() -> None:
    huge = b"X-Huge: " + b"h" * (HEADER_SIZE_LIMIT + 5000)
    message = b"Subject: s\r\n" + huge + b"\r\n\tmore\r\n\r\nbody\r\n"
    kept, _ = _run(message, _checks(smtp_header_checks="regexp:{ {/^X-Other:/ IGNORE} }"))
    assert kept == message
    dropped, _ = _run(message, _checks(smtp_header_checks="regexp:{ {/^X-Huge:/ IGNORE} }"))
    assert dropped == b"Subject: s\r\n\r\nbody\r\n"
    replace = "pcre:{ {/^X-Huge:/ REPLACE X-Huge: cut} }"
    replaced, _ = _run(message, _checks(smtp_header_checks=replace))
    assert replaced == b"Subject: s\r\nX-Huge: cut\r\n\r\nbody\r\n"


def test_only_header_checks_leave_the_rest_of_the_message_untouched() -> None:
    # Nothing after the top-level header can be checked: the rest goes out as it came.
    message = b"Subject: s\r\n\r\nbare\rcr\nlf\r\n"
    checks = _checks(smtp_header_checks="regexp:{ {/^X-None:/ IGNORE} }")
    assert _run(message, checks, cuts=(14,))[0] == message


@pytest.mark.parameter("smtp_nested_header_checks", "mime_nesting_limit")
def test_nesting_beyond_mime_nesting_limit_is_body() -> None:
    message = (
        b"Content-Type: message/rfc822\r\n\r\n"
        b"X-A: 1\r\nContent-Type: message/rfc822\r\n\r\n"
        b"X-B: 2\r\n\r\nz\r\n"
    )
    rule = "static:{WARN nested}"
    _, deep = _run(message, _checks(smtp_nested_header_checks=rule, mime_nesting_limit="2"))
    assert deep == ["warning: header X-A: 1: nested", "warning: header X-B: 2: nested"]
    _, shallow = _run(message, _checks(smtp_nested_header_checks=rule, mime_nesting_limit="1"))
    assert shallow == ["warning: header X-A: 1: nested"]  # the second message is body


# -- properties ----------------------------------------------------------------------------

_lines = st.lists(
    st.sampled_from(
        [
            b"Subject: x",
            b"\tfolded",
            b"Content-Type: multipart/mixed; boundary=q",
            b"Content-Type: message/rfc822",
            b"--q",
            b"--q--",
            b"",
            b"body \xc3\xa9",
            b"X-Tag: 1",
            b"." * 3,
        ]
    ),
    max_size=25,
)
_ends = st.sampled_from([b"\r\n", b"\n", b"\r"])


@st.composite
def _messages(draw: st.DrawFn) -> bytes:
    return b"".join(line + draw(_ends) for line in draw(_lines))


CHECKS_EVERYWHERE = {
    "smtp_header_checks": "regexp:{ {/^X-Tag:/ REPLACE X-Tag: 2}, {/x$$/ PREPEND X-Seen: yes} }",
    "smtp_mime_header_checks": "regexp:{ {/^Content-Type: message/ WARN nested} }",
    "smtp_nested_header_checks": "regexp:{ {/^Subject:/ IGNORE} }",
    "smtp_body_checks": "regexp:{ {/^body/ REPLACE BODY}, {/^--q--$$/ STRIP} }",
}


@settings(max_examples=200, deadline=None)
@given(_messages(), st.lists(st.integers(min_value=0, max_value=400), max_size=6))
def test_output_never_depends_on_how_the_input_was_cut(message: bytes, cuts: list[int]) -> None:
    checks = _checks(**CHECKS_EVERYWHERE)
    whole, log = _run(message, checks)
    assert _run(message, checks, cuts=tuple(sorted(c % (len(message) + 1) for c in cuts))) == (
        whole,
        log,
    )


@settings(max_examples=200, deadline=None)
@given(_messages())
def test_rules_that_never_match_change_nothing_on_the_wire(message: bytes) -> None:
    none = "regexp:{ {/^never-matches-anything$$/ IGNORE} }"
    checks = _checks(
        smtp_header_checks=none,
        smtp_mime_header_checks=none,
        smtp_nested_header_checks=none,
        smtp_body_checks=none,
    )
    out, log = _run(message, checks)
    assert log == []
    assert b"".join(iter_wire(out)) == b"".join(iter_wire(message))


# -- deliveries ------------------------------------------------------------------------------


def _config(**parameters: str) -> ClientConfig:
    return ClientConfig.from_postconf(
        {"smtp_helo_name": "client.example", "smtp_tls_security_level": "none", **parameters}
    )


@pytest.mark.parameter("smtp_header_checks")
def test_header_checks_rewrite_what_the_server_receives() -> None:
    config = _config(
        smtp_header_checks="regexp:{ {/^Subject:/ REPLACE Subject: [checked]}, {/^X-Tag:/ IGNORE} }"
    )
    report, record = go(smtp(*OK), config=config, message=MESSAGE)
    assert statuses(report) == [("sent", "2.0.0")]
    assert _content(record) == (
        b"From: a@example.org\r\nSubject: [checked]\r\n\r\nline one\r\nline two\r\n"
    )
    # SIZE is the size of what is sent, measured before MAIL through the same checks.
    sized = smtp(*OK, ehlo=b"250-mx\r\n250-PIPELINING\r\n250 SIZE 1000\r\n")
    _, record = go(sized, config=config, message=MESSAGE)
    assert b"MAIL FROM:<a@example.org> SIZE=63\r\n" in record.sent()


@pytest.mark.parameter("smtp_body_checks")
def test_a_reject_found_before_mail_means_no_connection_at_all() -> None:
    config = _config(smtp_body_checks="regexp:{ {/^line two$$/ REJECT 5.7.1 no second lines} }")
    report, record = go(smtp(*OK), config=config, message=MESSAGE)
    assert statuses(report) == [("bounced", "5.7.1")]
    assert report.recipients[0].diagnostic == "smtp_body_checks: no second lines"
    assert record.of_type(Connect) == []
    assert report.transcript == ("reject: body line two: no second lines",)


@pytest.mark.parameter("smtp_header_checks")
def test_a_4xx_reject_defers() -> None:
    config = _config(smtp_header_checks="regexp:{ {/^X-Tag:/ REJECT 4.7.0 try later} }")
    report, _ = go(smtp(*OK), config=config, message=MESSAGE)
    assert statuses(report) == [("deferred", "4.7.0")]


@pytest.mark.parameter("smtp_header_checks")
def test_a_held_session_refuses_before_mail_and_stays_usable() -> None:
    config = _config(smtp_header_checks="regexp:{ {/^X-Tag:/ DISCARD} }")
    envelope = Envelope("a@example.org", (Recipient("b@example.com"),))

    def client() -> Generator[IORequest, Any, list[DeliveryReport]]:
        session = yield from open_session(DEST, config=config, clock=Clock(), rng=Rng())
        reports = [
            (yield from transact(session, envelope, MESSAGE)),
            (yield from transact(session, envelope, b"Subject: fine\r\n\r\nok\r\n")),
        ]
        yield from close_session(session)
        return reports

    reports, record = run(client(), Script(servers={ADDR: [smtp(*OK)]}))
    assert [statuses(r) for r in reports] == [[("bounced", "5.7.1")], [("sent", "2.0.0")]]
    assert record.sent().count(b"MAIL FROM") == 1


class _ChangingTable:
    """A callable table that rejects only from its second lookup of a line on: the send pass
    sees what the scan before MAIL did not."""

    def __init__(self) -> None:
        self.seen = 0

    def __call__(self, key: str) -> str | None:
        if key != "line two":
            return None
        self.seen += 1
        return "REJECT changed its mind" if self.seen > 1 else None


@pytest.mark.parameter("smtp_body_checks")
def test_a_reject_found_while_streaming_never_ends_the_data() -> None:
    # Rule 8.5: the connection closes without "." so the server delivers no partial message.
    config = _config(smtp_body_checks=_ChangingTable())  # type: ignore[arg-type]
    bulk = b"filler line\r\n" * 20000  # more than one flight of content goes out first
    message = MESSAGE.replace(b"line two", bulk + b"line two")
    report, record = go(smtp(*OK), config=config, message=message)
    assert statuses(report) == [("bounced", "5.7.1")]
    assert report.recipients[0].diagnostic == "smtp_body_checks: changed its mind"
    sent = record.sent()
    assert b"line one\r\nfiller line\r\n" in sent
    assert not sent.endswith(b".\r\n") and b"\r\n.\r\n" not in sent and b"QUIT" not in sent
    assert record.channels[0].closed


# -- smtp_generic_maps -------------------------------------------------------------------------

GENERIC = (
    "inline:{ alice@local.test=alice@example.com, bob=robert@example.net, "
    "@old.test=@new.test, carol@x.test=@y.test, dave@local.test=dave }"
)


@pytest.mark.parametrize(
    ("address", "rewritten"),
    [
        ("alice@local.test", "alice@example.com"),  # user@domain first
        ("bob@mx.local.test", "robert@example.net"),  # user: $myhostname is local
        ("bob@localhost", "robert@example.net"),
        ("bob@localhost.local.test", "robert@example.net"),  # localhost.$mydomain
        ("bob@elsewhere.test", "bob@elsewhere.test"),  # user only for local domains
        ("anyone@old.test", "anyone@new.test"),  # @domain, the user kept
        ("carol@x.test", "carol@y.test"),  # a @domain result keeps the user
        ("dave@local.test", "dave@mx.local.test"),  # no @: @$myorigin ($myhostname)
        ("", ""),  # the null sender is never rewritten
    ],
)
def test_generic_maps_search_order(address: str, rewritten: str) -> None:
    maps = GenericMaps.from_config(
        ClientConfig.from_postconf({"smtp_generic_maps": GENERIC, "myhostname": "mx.local.test"})
    )
    assert maps is not None
    assert maps.rewrite(address) == rewritten


def test_generic_maps_pattern_tables_see_the_whole_address_only() -> None:
    config = ClientConfig.from_postconf(
        {
            "smtp_generic_maps": "regexp:{ {/^bob$$/ nope@x.test}, "
            "{/^(.*)@old\\.test$$/ $${1}@new.test} }"
        }
    )
    maps = GenericMaps.from_config(config.with_hostname("mx.local.test"))
    assert maps is not None
    assert maps.rewrite("bob@mx.local.test") == "bob@mx.local.test"
    assert maps.rewrite("Ann@old.test") == "Ann@new.test"


@pytest.mark.parametrize(
    ("header", "rewritten"),
    [
        ("From: Alice <alice@local.test>", "From: Alice <alice@example.com>"),
        (
            "To: anyone@old.test (comment), other@z.test",
            "To: anyone@new.test (comment), other@z.test",
        ),
        ('Cc: "Old, Team": a@old.test, b@old.test;', 'Cc: "Old, Team": a@new.test, b@new.test;'),
        ("Reply-To: <@relay.test:bob@localhost>", "Reply-To: <@relay.test:robert@example.net>"),
        ('Sender: "x y"@old.test', 'Sender: "x y"@new.test'),
        ("Subject: alice@local.test", None),  # not an address header
        ("To: Someone Else", None),
    ],
)
def test_generic_maps_rewrite_header_addresses_in_place(header: str, rewritten: str | None) -> None:
    maps = GenericMaps.from_config(
        ClientConfig.from_postconf({"smtp_generic_maps": GENERIC, "myhostname": "mx.local.test"})
    )
    assert maps is not None
    name, _, value = header.partition(":")
    new = maps.rewrite_header(name, value)
    assert (None if new is None else f"{name}:{new}") == rewritten


@pytest.mark.parameter("smtp_generic_maps")
def test_generic_maps_rewrite_the_envelope_and_the_top_level_header() -> None:
    config = _config(smtp_generic_maps=GENERIC, myhostname="mx.local.test")
    message = (
        b"From: Alice <alice@local.test>\r\nTo: anyone@old.test\r\n"
        b"Content-Type: message/rfc822\r\n\r\nFrom: alice@local.test\r\n\r\nnested\r\n"
    )
    envelope = Envelope("alice@local.test", (Recipient("anyone@old.test"),))
    report, record = go(smtp(*OK), config=config, message=message, envelope=envelope)
    assert statuses(report) == [("sent", "2.0.0")]
    assert report.recipients[0].address == "anyone@old.test"  # the report keeps the caller's
    sent = record.sent()
    assert b"MAIL FROM:<alice@example.com>\r\nRCPT TO:<anyone@new.test>\r\n" in sent
    assert _content(record) == (
        b"From: Alice <alice@example.com>\r\nTo: anyone@new.test\r\n"
        b"Content-Type: message/rfc822\r\n\r\nFrom: alice@local.test\r\n\r\nnested\r\n"
    )


def test_a_generic_result_that_is_no_address_is_refused_before_anything_is_sent() -> None:
    config = _config(smtp_generic_maps="inline:{ a@example.org=@ }")
    with pytest.raises(LocalProtocolError, match="smtp_generic_maps"):
        go(smtp(*OK), config=config)
