"""MTA-STS in the core (smtpproto.engine.mtasts): RFC 8461's examples, malformed policies
refused whole, MX patterns, the cache and refresh rules with time as an argument."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtpproto import LocalProtocolError, RemoteProtocolError
from smtpproto.engine.mtasts import (
    MAX_AGE_LIMIT,
    MAX_POLICY_SIZE,
    PolicyCache,
    STSPolicy,
    STSRecord,
    apply_policy,
    check_response,
    mx_matches,
    policy_url,
    select_record,
)

# RFC 8461 3.2's example policy, CRLF-terminated as served.
RFC_POLICY = (
    b"version: STSv1\r\n"
    b"mode: enforce\r\n"
    b"mx: mail.example.com\r\n"
    b"mx: *.example.net\r\n"
    b"mx: backupmx.example.com\r\n"
    b"max_age: 604800\r\n"
)


def test_rfc8461_txt_record_example() -> None:
    # RFC 8461 3.1: _mta-sts.example.com. IN TXT "v=STSv1; id=20160831085700Z;"
    assert STSRecord.parse("v=STSv1; id=20160831085700Z;") == STSRecord("20160831085700Z")
    assert STSRecord.parse("v=STSv1;id=abc") == STSRecord("abc")
    assert STSRecord.parse("v=STSv1; ext=1; id=abc ; id=other") == STSRecord("abc")


@pytest.mark.parametrize(
    "text",
    [
        "v=STSv1",
        "v=STSv1;",
        "v=STSv1; id=",
        "v=STSv1; id=has-dash",
        "v=STSv1; id=" + "a" * 33,
        "v=STSv1;; id=abc",
        " v=STSv1; id=abc",
        "v=STSv2; id=abc",
        "v=STSv1; ext=a;b; id=abc",
        "v=STSv1; id=abc; =x",
    ],
)
def test_malformed_txt_records_are_refused(text: str) -> None:
    with pytest.raises(RemoteProtocolError):
        STSRecord.parse(text)


def test_select_record_needs_exactly_one() -> None:
    # RFC 8461 3.1: other TXT records are ignored; zero, two or a malformed one: no policy.
    assert select_record(["v=spf1 -all", "v=STSv1; id=one"]) == STSRecord("one")
    assert select_record(["v=STSv1; id=one", "v=STSv1; id=two"]) is None
    assert select_record(["v=spf1 -all"]) is None
    assert select_record(["v=STSv1; id=bad-id"]) is None
    assert select_record([]) is None


def test_rfc8461_policy_example() -> None:
    policy = STSPolicy.parse(RFC_POLICY)
    assert policy == STSPolicy(
        "enforce", 604800, ("mail.example.com", "*.example.net", "backupmx.example.com")
    )
    assert policy.lines[0] == "version: STSv1"
    assert len(policy.lines) == 6
    assert STSPolicy.parse(RFC_POLICY.replace(b"\r\n", b"\n")) == policy


def test_policy_field_rules() -> None:
    # Unknown fields ignored; first of a repeated field wins, mx accumulates; mode none
    # needs no mx; whitespace around values is not part of them.
    text = (
        "version:STSv1\nmode: testing \nmode: enforce\nmx: a.example\n"
        "x-ext: any thing é\nmx: b.example\nmax_age:\t86400"
    )
    policy = STSPolicy.parse(text)
    assert (policy.mode, policy.max_age, policy.mx) == (
        "testing",
        86400,
        ("a.example", "b.example"),
    )
    assert STSPolicy.parse("version: STSv1\nmode: none\nmax_age: 0\n").mode == "none"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"version: STSv1\nmode: enforce\nmax_age: 1\n",  # enforce without mx
        b"version: STSv1\nmode: enforce\nmx: a.example\n",  # no max_age
        b"mode: enforce\nmx: a.example\nmax_age: 1\n",  # no version
        b"version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 1\n",
        b"version: STSv1\nmode: report\nmx: a.example\nmax_age: 1\n",
        b"version: STSv1\nmode: Enforce\nmx: a.example\nmax_age: 1\n",
        b"version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 12345678901\n",
        b"version: STSv1\nmode: enforce\nmx: a.example\nmax_age: -1\n",
        b"version: STSv1\nmode: enforce\nmx: *.*.example\nmax_age: 1\n",
        b"version: STSv1\nmode: enforce\nmx: mail.*.example\nmax_age: 1\n",
        b"version: STSv1\nmode: enforce\nmx: example\nmax_age: 1\n",
        b"version: STSv1\nmode: enforce\nmx: a.example\n\nmax_age: 1\n",  # empty line
        b"version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 1\n\n",
        b"version STSv1\nmode: enforce\nmx: a.example\nmax_age: 1\n",
        b"version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 1\nx: \x01\n",
        b"version: STSv1\nmode: enforce\nmx: \xff.example\nmax_age: 1\n",  # not UTF-8
        b"version: STSv1\nmode: enforce\nmx: b\xc3\xbccher.example\nmax_age: 1\n",  # U-label
    ],
)
def test_malformed_policies_are_refused_whole(body: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        STSPolicy.parse(body)


def test_oversized_policy_is_refused() -> None:
    body = RFC_POLICY + b"x: " + b"y" * MAX_POLICY_SIZE + b"\n"
    with pytest.raises(RemoteProtocolError, match="larger than"):
        STSPolicy.parse(body)


def test_check_response_rules_rfc8461_3_3() -> None:
    assert check_response(200, "text/plain; charset=utf-8", RFC_POLICY).mode == "enforce"
    for status, media in (
        (301, "text/plain"),
        (404, "text/plain"),
        (200, "text/html"),
        (200, None),
    ):
        with pytest.raises(RemoteProtocolError):
            check_response(status, media, RFC_POLICY)


@given(st.binary(max_size=300))
def test_arbitrary_bodies_parse_or_raise_our_error(body: bytes) -> None:
    try:
        policy = STSPolicy.parse(body)
    except RemoteProtocolError:
        return
    assert policy.mode in ("enforce", "testing", "none")


@given(
    st.lists(
        st.sampled_from(
            [
                "mx: a.example",
                "mode: testing",
                "max_age: 5",
                "x: y",
                "version: STSv1",
                "mx: *.b.example",
            ]
        ),
        max_size=8,
    )
)
def test_valid_lines_in_any_order(lines: list[str]) -> None:
    body = "\n".join(lines)
    try:
        policy = STSPolicy.parse(body)
    except RemoteProtocolError:
        assert not {"version: STSv1", "mode: testing", "max_age: 5"} <= set(lines) or not any(
            line.startswith("mx:") for line in lines
        )
        return
    assert policy.mx == tuple(line[4:] for line in lines if line.startswith("mx:"))


@pytest.mark.parametrize(
    ("pattern", "host", "expected"),
    [
        # RFC 8461 4.1: a wildcard covers exactly one label.
        ("*.example.com", "mail.example.com", True),
        ("*.example.com", "example.com", False),
        ("*.example.com", "foo.bar.example.com", False),
        ("mail.example.com", "MAIL.Example.com.", True),
        ("mail.example.com", "mail2.example.com", False),
    ],
)
def test_mx_patterns(pattern: str, host: str, expected: bool) -> None:
    assert mx_matches(pattern, host) is expected


def test_apply_policy_enforce_testing_none() -> None:
    policy = STSPolicy.parse(RFC_POLICY)
    hosts = ["mail.example.com", "evil.example.org", "mx1.example.net"]
    enforce = apply_policy(policy, hosts)
    assert enforce.hosts == ("mail.example.com", "mx1.example.net")
    assert enforce.refused == ("evil.example.org",)
    assert enforce.enforce and enforce.tls is not None
    assert (enforce.tls.level, enforce.tls.match, enforce.tls.protocols) == (
        "verify",
        ("hostname",),
        (">=TLSv1.2",),
    )
    testing = apply_policy(STSPolicy("testing", 60, policy.mx), hosts)
    assert testing.hosts == tuple(hosts) and testing.refused == ("evil.example.org",)
    assert not testing.enforce
    assert apply_policy(STSPolicy("none", 60), hosts).hosts == tuple(hosts)
    assert apply_policy(None, hosts).tls is None
    assert apply_policy(policy, ["evil.example.org"]).hosts == ()


def test_policy_url() -> None:
    assert policy_url("Example.COM.") == "https://mta-sts.example.com/.well-known/mta-sts.txt"
    assert (
        policy_url("bücher.example")
        == "https://mta-sts.xn--bcher-kva.example/.well-known/mta-sts.txt"
    )
    with pytest.raises(LocalProtocolError):
        policy_url("exa mple.com")


def test_value_type_validation() -> None:
    with pytest.raises(LocalProtocolError):
        STSPolicy("enforce", 60)
    with pytest.raises(LocalProtocolError):
        STSPolicy("sometimes", 60, ("a.example",))  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError):
        STSPolicy("enforce", -1, ("a.example",))
    with pytest.raises(LocalProtocolError):
        STSRecord("")
    assert STSPolicy("none", 10**9).lifetime == MAX_AGE_LIMIT


# --- the cache (RFC 8461 3.3, 5, 5.1) -----------------------------------------------------

POLICY = STSPolicy.parse(RFC_POLICY)
TXT_1 = ["v=STSv1; id=one"]
TXT_2 = ["v=STSv1; id=two"]
URL = "https://mta-sts.example.com/.well-known/mta-sts.txt"


def test_first_sight_fetches_then_uses_the_cache() -> None:
    cache = PolicyCache()
    first = cache.plan("example.com", TXT_1, now=1000.0)
    assert (first.url, first.id, first.policy) == (URL, "one", None)
    cache.fetched("example.com", "one", POLICY, now=1000.0)
    again = cache.plan("example.com", TXT_1, now=2000.0)
    assert (again.url, again.policy) == (None, POLICY)


def test_a_new_id_fetches_and_keeps_the_old_policy_meanwhile() -> None:
    cache = PolicyCache()
    cache.fetched("example.com", "one", POLICY, now=0.0)
    plan = cache.plan("example.com", TXT_2, now=10.0)
    assert (plan.url, plan.id, plan.policy) == (URL, "two", POLICY)
    testing = STSPolicy("testing", 100, ("mail.example.com",))
    cache.fetched("example.com", "two", testing, now=11.0)
    assert cache.plan("example.com", TXT_2, now=12.0).policy == testing


def test_policy_survives_a_vanished_txt_record_until_max_age() -> None:
    # The point of the cache: stripping the TXT record does not strip the policy.
    cache = PolicyCache()
    cache.fetched("example.com", "one", POLICY, now=0.0)
    assert cache.plan("example.com", [], now=604799.0).policy == POLICY
    assert cache.plan("example.com", None, now=604799.0).policy == POLICY
    assert cache.plan("example.com", [], now=604800.0).policy is None
    assert len(cache) == 0


def test_failed_fetch_keeps_the_old_policy_and_waits_before_retrying() -> None:
    cache = PolicyCache(retry_after=300.0)
    cache.fetched("example.com", "one", POLICY, now=0.0)
    assert cache.fetch_failed("example.com", "two", now=10.0) == POLICY
    held = cache.plan("example.com", TXT_2, now=100.0)
    assert (held.url, held.policy) == (None, POLICY)
    retry = cache.plan("example.com", TXT_2, now=310.0)
    assert retry.url == URL
    assert cache.fetch_failed("other.example", "x", now=0.0) is None


def test_daily_refresh_extends_a_policy_with_the_same_id() -> None:
    cache = PolicyCache(refresh_after=86400.0)
    cache.fetched("example.com", "one", POLICY, now=0.0)
    assert cache.plan("example.com", TXT_1, now=86399.0).url is None
    assert cache.plan("example.com", TXT_1, now=86400.0).url == URL


def test_cache_size_is_bounded() -> None:
    cache = PolicyCache(max_entries=2)
    cache.fetched("a.example", "one", STSPolicy("none", 10), now=0.0)
    cache.fetched("b.example", "one", STSPolicy("none", 1000), now=0.0)
    cache.fetched("c.example", "one", STSPolicy("none", 1000), now=0.0)
    assert len(cache) == 2
    assert cache.get("a.example", now=1.0) is None  # the one expiring soonest went
    with pytest.raises(LocalProtocolError):
        PolicyCache(max_entries=0)
