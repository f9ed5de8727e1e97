"""The smtp(8) parameter table as a feature contract (docs/parameters.md).

Two halves. The contract checks: every parameter of the smtp(8) manual is in
``smtpproto/_parameters.py`` exactly once, every supported one is a `ClientConfig` field and
names the tests that exercise it, every named test exists and touches the parameter, and
``docs/parameters.md`` is what ``docs/gen_parameters.py`` renders. Then behaviour tests for the
parameters no other test file exercised through `ClientConfig`.
"""

from __future__ import annotations

import ast
import importlib.util
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from support.world import EHLO_PLAIN, Clock, Rng, Script, Session, go, run, smtp, statuses

from smtpproto._parameters import EXTRA_PARAMETERS, NOT_YET_IN_EFFECT, PARAMETERS, Parameter
from smtpproto.config import ClientConfig
from smtpproto.engine import deliver
from smtpproto.envelope import Envelope, Recipient
from smtpproto.requests import (
    Connect,
    ConnectFailed,
    MXRecord,
    Receive,
    Send,
    Sleep,
    StartTLS,
    TLSInfo,
)

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
DOCS = ROOT / "docs"
SUPPORTED = [p for p in PARAMETERS + EXTRA_PARAMETERS if p.status == "supported"]


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_parameters", DOCS / "gen_parameters.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class _Touches:
    """What a test function mentions: keyword and attribute names, and string constants."""

    names: frozenset[str]
    strings: frozenset[str]

    def touches(self, parameter: Parameter) -> bool:
        """Whether the test sets or reads `parameter`: by field (a keyword, an attribute or a
        string key of keyword arguments) or by Postfix name."""
        field = parameter.field
        return field in self.names or field in self.strings or parameter.name in self.strings


@cache
def _test_functions() -> dict[str, _Touches]:
    """``file.py::test_name`` -> what it touches, for every test function under tests/."""
    found: dict[str, _Touches] = {}
    for path in sorted(TESTS.rglob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            if not node.name.startswith("test"):
                continue
            names: set[str] = set()
            strings: set[str] = set()
            for inner in ast.walk(node):
                if isinstance(inner, ast.keyword) and inner.arg:
                    names.add(inner.arg)
                elif isinstance(inner, ast.Attribute):
                    names.add(inner.attr)
                elif isinstance(inner, ast.Constant) and isinstance(inner.value, str):
                    strings.add(inner.value)
            key = f"{path.relative_to(TESTS).as_posix()}::{node.name}"
            found[key] = _Touches(frozenset(names), frozenset(strings))
    return found


# -- the contract -------------------------------------------------------------------------


def test_every_smtp8_parameter_is_in_the_table_exactly_once() -> None:
    listed = (DOCS / "smtp8-parameters.txt").read_text(encoding="utf-8").split()
    names = [p.name for p in PARAMETERS]
    assert len(listed) == len(set(listed)) == 113
    assert sorted(names) == sorted(listed)
    assert not {p.name for p in EXTRA_PARAMETERS} & set(listed)


def test_every_supported_parameter_is_a_client_config_field() -> None:
    fields = set(ClientConfig.__dataclass_fields__)
    missing = [(p.name, p.field) for p in SUPPORTED if p.field not in fields]
    assert not missing


def test_every_not_applicable_parameter_says_why_and_names_no_test() -> None:
    for p in PARAMETERS:
        if p.status == "not applicable":
            assert p.why and p.field is None and not p.tests, p.name


def test_every_named_test_exists() -> None:
    known = _test_functions()
    unknown = [(p.name, t) for p in SUPPORTED for t in p.tests if t not in known]
    assert not unknown, f"tests named in smtpproto/_parameters.py that do not exist: {unknown}"


def test_every_named_test_touches_its_parameter() -> None:
    known = _test_functions()
    unrelated = [
        (p.name, t) for p in SUPPORTED for t in p.tests if t in known and not known[t].touches(p)
    ]
    assert not unrelated, f"tests that never set or read their parameter: {unrelated}"


def test_supported_parameters_without_a_test_are_exactly_the_declared_gaps() -> None:
    untested = {p.name for p in SUPPORTED if not p.tests}
    assert untested == NOT_YET_IN_EFFECT
    assert all(not p.tests for p in SUPPORTED if p.name in NOT_YET_IN_EFFECT)


def test_no_test_exercises_a_declared_gap_without_the_table_knowing() -> None:
    # A gap that gained a test has been implemented: name the test, take it off the gap list.
    known = _test_functions()
    gaps = [p for p in SUPPORTED if p.name in NOT_YET_IN_EFFECT]
    exercised = sorted(
        (p.name, t)
        for p in gaps
        for t, touched in known.items()
        if not t.startswith(("test_config.py", "test_parameters.py")) and touched.touches(p)
    )
    assert not exercised, f"name these tests in smtpproto/_parameters.py: {exercised}"


def test_the_core_reads_no_parameter_declared_not_yet_in_effect() -> None:
    # "Not yet in effect" is a claim about the code: no attribute of that name is read
    # anywhere in smtpproto/ but where the configuration itself is defined.
    read: dict[str, set[str]] = {}
    for path in sorted((ROOT / "smtpproto").rglob("*.py")):
        if path.name in ("config.py", "_parameters.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute):
                read.setdefault(node.attr, set()).add(path.relative_to(ROOT).as_posix())
    wired = sorted(
        (p.name, sorted(read[p.field]))
        for p in SUPPORTED
        if p.name in NOT_YET_IN_EFFECT and p.field in read
    )
    assert not wired, f"now read by the core: name their tests, take them off the list: {wired}"


def test_docs_parameters_md_is_generated_and_current() -> None:
    rendered = _generator().render()
    current = (DOCS / "parameters.md").read_text(encoding="utf-8")
    assert current == rendered, "run: .venv/bin/python docs/gen_parameters.py"


def test_rendered_table_has_one_row_per_parameter_and_the_gaps_flagged() -> None:
    rendered = _generator().render()
    rows = [line for line in rendered.splitlines() if line.startswith("| `")]
    assert len(rows) == len(PARAMETERS) + len(EXTRA_PARAMETERS)
    for p in PARAMETERS + EXTRA_PARAMETERS:
        (row,) = [r for r in rows if r.startswith(f"| `{p.name}` ")]
        if p.name in NOT_YET_IN_EFFECT:
            assert "not yet in effect" in row
        for test in p.tests:
            assert test.rpartition("::")[2] in row


def test_generator_check_mode_reports_drift(tmp_path: Path) -> None:
    generator = _generator()
    stale = tmp_path / "parameters.md"
    stale.write_text("stale\n", encoding="utf-8")
    assert generator.main(["--check", "--output", str(stale)]) == 1
    assert generator.main(["--output", str(stale)]) == 0
    assert generator.main(["--check", "--output", str(stale)]) == 0
    assert stale.read_text(encoding="utf-8") == generator.render()


# -- behaviour of parameters no other test exercised through ClientConfig ------------------

OK = (b"250 ok\r\n250 ok\r\n354 go\r\n", b"250 2.0.0 ok\r\n")
MX_SELF = {
    ("example.com", "MX"): (MXRecord(10, "mx.example.com"),),
    ("mx.example.com", "A"): ("192.0.2.53",),
}


@pytest.mark.parametrize(
    "config",
    [
        {"myhostname": "mx.example.com"},
        {"inet_interfaces": ("192.0.2.53",)},
        {"proxy_interfaces": ("192.0.2.53",)},
    ],
    ids=["myhostname", "inet_interfaces", "proxy_interfaces"],
)
def test_mail_that_loops_back_to_myself_bounces_5_4_6(config: dict[str, Any]) -> None:
    # rule 14.6: the best MX is this host, by name (myhostname) or by address (interfaces)
    report, record = go(destination="example.com", dns=MX_SELF, **config)
    assert statuses(report) == [("bounced", "5.4.6")]
    assert "loops back to myself" in report.recipients[0].diagnostic
    assert not record.of_type(Connect)


def test_without_own_names_or_addresses_the_same_mx_is_tried() -> None:
    _, record = go(destination="example.com", dns=MX_SELF)
    assert [c.address for c in record.of_type(Connect)] == ["192.0.2.53"]


def test_helo_name_is_the_ehlo_argument() -> None:
    _, record = go(smtp(*OK), config=ClientConfig(helo_name="client.test"))
    assert record.flights()[0] == b"EHLO client.test\r\n"


def test_lhlo_name_is_the_lhlo_argument() -> None:
    config = ClientConfig.from_postconf({"lmtp_lhlo_name": "lmtp.client.test"}, lmtp=True)
    lmtp = Session([b"220 lmtp\r\n", b"250 lmtp\r\n", b"250 ok\r\n", b"250 ok\r\n"])
    env = Envelope("a@example.org", (Recipient("b@example.com"),))
    engine = deliver(
        "inet:[192.0.2.1]:24", env, b"\r\nx\r\n", config=config, clock=Clock(), rng=Rng()
    )
    _, record = run(engine, Script(servers={"192.0.2.1": [lmtp]}))
    assert record.flights()[0] == b"LHLO lmtp.client.test\r\n"


@pytest.mark.parametrize("lmtp", [False, True], ids=["smtp", "lmtp"])
def test_discard_ehlo_keyword_address_maps_applies_to_that_address_only(lmtp: bool) -> None:
    # rule 4.5: PIPELINING discarded for 192.0.2.1 -> MAIL goes out alone
    prefix = "lmtp_discard_lhlo" if lmtp else "smtp_discard_ehlo"
    config = ClientConfig.from_postconf(
        {f"{prefix}_keyword_address_maps": {"192.0.2.1": "pipelining"}}, lmtp=lmtp
    )
    hello = b"LHLO" if lmtp else b"EHLO"
    greeting = smtp(b"250 ok\r\n", b"250 ok\r\n", b"354 go\r\n", b"250 2.0.0 ok\r\n")
    env = Envelope("a@example.org", (Recipient("b@example.com"),))
    destination = "inet:[192.0.2.1]:24" if lmtp else "[192.0.2.1]"
    engine = deliver(destination, env, b"\r\nx\r\n", config=config, clock=Clock(), rng=Rng())
    _, record = run(engine, Script(servers={"192.0.2.1": [greeting]}))
    assert record.flights()[0].startswith(hello)
    assert record.flights()[1] == b"MAIL FROM:<a@example.org>\r\n"
    assert config.discard_ehlo_keyword_address_maps["192.0.2.1"] == frozenset({"PIPELINING"})


def test_discard_ehlo_keyword_address_maps_leaves_other_addresses_alone() -> None:
    _, record = go(
        smtp(*OK), discard_ehlo_keyword_address_maps={"192.0.2.99": frozenset({"PIPELINING"})}
    )
    assert record.flights()[1].startswith(b"MAIL FROM:<a@example.org>\r\nRCPT TO:")


def test_connect_timeout_is_the_connect_request_timeout() -> None:
    _, record = go(smtp(*OK), connect_timeout=7)
    assert [c.timeout for c in record.of_type(Connect)] == [7]
    _, unlimited = go(smtp(*OK), connect_timeout=0)
    assert [c.timeout for c in unlimited.of_type(Connect)] == [None]


def test_data_xfer_timeout_bounds_each_body_write() -> None:
    _, record = go(smtp(*OK), data_xfer_timeout=17, per_request_deadline=False)
    body = [s for s in record.of_type(Send) if b"hello" in s.data]
    assert body and all(s.timeout == 17 for s in body)


def test_quit_timeout_bounds_the_quit_exchange() -> None:
    _, record = go(
        smtp(*OK, b"221 bye\r\n"),
        skip_quit_response=False,
        quit_timeout=9,
        per_request_deadline=False,
    )
    # QUIT rides with the end of data (its write is bounded by data_done_timeout); the reply
    # to it is read within quit_timeout.
    assert record.of_type(Receive)[-1].timeout == 9
    assert record.sent().endswith(b".\r\nQUIT\r\n")


def test_rset_timeout_bounds_the_probe_before_reuse() -> None:
    # rule 9.4: the second batch reuses the connection after an RSET probe
    report, record = go(
        smtp(*OK, b"250 ok\r\n", *OK),
        recipients=("a@x", "b@x"),
        destination_recipient_limit=1,
        rset_timeout=5,
        per_request_deadline=False,
    )
    assert statuses(report) == [("sent", "2.0.0")] * 2
    rset = next(
        i for i, r in enumerate(record.requests) if isinstance(r, Send) and r.data == b"RSET\r\n"
    )
    after = [r for r in record.requests[rset:] if isinstance(r, Receive)]
    assert after[0].timeout == 5


def test_connection_reuse_count_limit_closes_after_that_many_transactions() -> None:
    # rule 9.1: one transaction per connection, then a new one for the next batch
    report, record = go(
        smtp(*OK),
        smtp(*OK),
        recipients=("a@x", "b@x"),
        destination_recipient_limit=1,
        connection_reuse_count_limit=1,
    )
    assert statuses(report) == [("sent", "2.0.0")] * 2
    assert len(record.channels) == 2


def test_xforward_timeout_bounds_the_xforward_reply() -> None:
    env = Envelope("a@x", (Recipient("b@y"),), xforward=(("ADDR", "198.51.100.7"),))
    replies = (b"250 ok\r\n", b"250 ok\r\n", b"250 ok\r\n", b"354 go\r\n", b"250 ok\r\n")
    _, record = go(
        smtp(*replies, ehlo=b"250-mx\r\n250 XFORWARD ADDR\r\n"),
        envelope=env,
        send_xforward_command=True,
        xforward_timeout=21,
        mail_timeout=12,
        rcpt_timeout=13,
        data_init_timeout=14,
        data_xfer_timeout=15,
        data_done_timeout=16,
        quit_timeout=17,
        per_request_deadline=False,
    )
    assert b"XFORWARD ADDR=198.51.100.7\r\n" in record.sent()
    # The XFORWARD exchange, and it alone, is bounded by xforward_timeout (rule 10.1).
    assert [(verb, waits) for verb, waits in record.timeouts() if verb != "EHLO"] == [
        ("XFORWARD", [("Send", 21), ("Receive", 21)]),
        ("MAIL", [("Send", 12), ("Receive", 12)]),
        ("RCPT", [("Send", 13), ("Receive", 13)]),
        ("DATA", [("Send", 14), ("Receive", 14)]),
        ("Subject:", [("Send", 15), ("Send", 16), ("Receive", 16)]),
        ("QUIT", [("Send", 17)]),
    ]


def test_starttls_timeout_bounds_the_command_and_the_handshake() -> None:
    tls = TLSInfo(version="TLSv1.3", cipher="TLS_AES_128_GCM_SHA256", chain_verified=False)
    ehlo = b"250-mx\r\n250 STARTTLS\r\n"
    _, record = go(
        Session([b"220 mx\r\n", ehlo, b"220 go\r\n", tls, EHLO_PLAIN, *OK]),
        tls_security_level="may",
        starttls_timeout=33,
        helo_timeout=11,
        per_request_deadline=False,
    )
    (handshake,) = record.of_type(StartTLS)
    assert handshake.timeout == 33
    # STARTTLS, its reply and the handshake are bounded by starttls_timeout, and nothing
    # else is (rule 10.1): the EHLO before and after TLS keep helo_timeout.
    assert record.timeouts()[:3] == [
        ("EHLO", [("Send", 11), ("Receive", 11)]),
        ("STARTTLS", [("Send", 33), ("Receive", 33), ("StartTLS", 33)]),
        ("EHLO", [("Send", 11), ("Receive", 11)]),
    ]


def test_empty_pix_workarounds_keeps_esmtp_for_a_pix_banner() -> None:
    # rule 3.3: the workarounds are what pix_workarounds lists; none -> plain EHLO, no delay
    banner = b"220 ********************\r\n"
    _, record = go(smtp(*OK, greeting=banner), pix_workarounds=frozenset())
    assert record.flights()[0] == b"EHLO client.example\r\n"
    assert not record.of_type(Sleep)


def test_balance_inet_protocols_keeps_both_families_within_the_address_limit() -> None:
    dns = {
        ("mx.example", "MX"): (MXRecord(10, "h.example"),),
        ("h.example", "A"): ("192.0.2.1", "192.0.2.2", "192.0.2.3"),
        ("h.example", "AAAA"): ("2001:db8::1", "2001:db8::2", "2001:db8::3"),
    }
    families = {}
    for balance in (True, False):
        _, record = go(
            destination="mx.example",
            dns=dns,
            mx_address_limit=2,
            address_preference="ipv4",
            randomize_addresses=False,
            balance_inet_protocols=balance,
        )
        families[balance] = [":" in c.address for c in record.of_type(Connect)]
    assert families[True] == [False, True]
    assert families[False] == [False, False]


def test_the_collector_finds_tests_and_what_they_touch() -> None:
    found = _test_functions()
    mine = found["test_parameters.py::test_connect_timeout_is_the_connect_request_timeout"]
    assert mine.touches(PARAMETERS[[p.name for p in PARAMETERS].index("smtp_connect_timeout")])
    assert not mine.touches(PARAMETERS[[p.name for p in PARAMETERS].index("smtp_rset_timeout")])


# -- TLS and SASL parameters, at the level of the requests the engine makes ------------------

STARTTLS_EHLO = b"250-mx.example.com\r\n250-PIPELINING\r\n250 STARTTLS\r\n"
MX_HOST = {
    ("example.com", "MX"): (MXRecord(10, "mx.example.com"),),
    ("mx.example.com", "A"): ("192.0.2.1",),
    ("mx.example.com", "AAAA"): (),
}


def _verified(name: str = "mx.example.com") -> TLSInfo:
    return TLSInfo(
        version="TLSv1.3",
        cipher="TLS_AES_128_GCM_SHA256",
        chain_verified=True,
        peer_certificate={
            "subject": ((("commonName", name),),),
            "subjectAltName": (("DNS", name),),
        },
    )


# OK is one pipelined flight of MAIL, RCPT and DATA replies: the server must offer PIPELINING.
EHLO_PIPELINING = b"250-mx.example\r\n250 PIPELINING\r\n"


def _tls_session(info: TLSInfo, *after: bytes, ehlo: bytes = EHLO_PIPELINING) -> Session:
    return Session(
        [b"220 mx.example.com ESMTP\r\n", STARTTLS_EHLO, b"220 go\r\n", info, ehlo, *after]
    )


def _handshake(**config: Any) -> StartTLS:
    unverified = TLSInfo(version="TLSv1.3", cipher="TLS_AES_128_GCM_SHA256", chain_verified=False)
    _, record = go(_tls_session(unverified, *OK), **config)
    (request,) = record.of_type(StartTLS)
    return request


def test_mandatory_tls_settings_shape_the_handshake_above_may() -> None:
    request = _handshake(
        tls_security_level="encrypt",
        tls_mandatory_protocols=(">=TLSv1.3",),
        tls_mandatory_ciphers="high",
        tls_high_cipherlist="HIGH:!aNULL",
        tls_exclude_ciphers=("RC4",),
        tls_mandatory_exclude_ciphers=("3DES",),
        tls_cert_file="/etc/client.pem",
        tls_key_file="/etc/client.key",
    )
    parameters = request.parameters
    assert (parameters.verify, parameters.min_version) == (False, "TLSv1.3")
    assert parameters.ciphers == "HIGH:!aNULL:!RC4:!3DES"
    assert (parameters.cert_file, parameters.key_file) == ("/etc/client.pem", "/etc/client.key")


@pytest.mark.parametrize(
    ("grade", "override"),
    [
        ("medium", {"tls_medium_cipherlist": "HIGH:MEDIUM:!aNULL"}),
        ("low", {"tls_low_cipherlist": "HIGH:MEDIUM:LOW:!aNULL"}),
        ("null", {"tls_null_cipherlist": "eNULL:!aNULL:!MD5"}),
    ],
)
def test_each_cipher_grade_uses_its_configured_cipherlist(
    grade: str, override: dict[str, str]
) -> None:
    request = _handshake(tls_security_level="encrypt", tls_mandatory_ciphers=grade, **override)
    assert request.parameters.ciphers == next(iter(override.values()))


def test_verify_level_passes_the_trust_anchors_to_the_handshake() -> None:
    request = _handshake(
        tls_security_level="verify", tls_CAfile="/etc/ca.pem", tls_CApath="/etc/ssl/certs"
    )
    parameters = request.parameters
    assert parameters.verify
    assert (parameters.ca_file, parameters.ca_path) == ("/etc/ca.pem", "/etc/ssl/certs")


@pytest.mark.parametrize(
    ("level", "match", "status"),
    [
        ("verify", {}, ("sent", "2.0.0")),  # hostname: the MX name is in the certificate
        ("verify", {"tls_verify_cert_match": ("nexthop",)}, ("deferred", "4.7.5")),
        ("secure", {}, ("sent", "2.0.0")),  # dot-nexthop: mx.example.com under example.com
        ("secure", {"tls_secure_cert_match": ("nexthop",)}, ("deferred", "4.7.5")),
    ],
)
def test_cert_match_parameters_decide_which_names_verify(
    level: str, match: dict[str, Any], status: tuple[str, str]
) -> None:
    report, record = go(
        _tls_session(_verified(), *OK),
        destination="example.com",
        dns=MX_HOST,
        tls_security_level=level,
        **match,
    )
    assert statuses(report) == [status]
    assert (b"MAIL FROM" in record.sent()) == (status[0] == "sent")


@pytest.mark.parametrize("verified_options", [None, frozenset({"noanonymous"})])
def test_sasl_tls_verified_security_options_apply_only_on_a_verified_session(
    verified_options: frozenset[str] | None,
) -> None:
    # Under TLS PLAIN is refused (noplaintext); on a verified session the verified options
    # decide, and they allow it.
    auth_ehlo = b"250-mx.example.com\r\n250-PIPELINING\r\n250 AUTH PLAIN\r\n"
    session = _tls_session(_verified(), b"235 2.7.0 ok\r\n", *OK, ehlo=auth_ehlo)
    report, record = go(
        session,
        destination="[mx.example.com]",
        dns=MX_HOST,
        tls_security_level="verify",
        sasl_auth_enable=True,
        sasl_password_maps={"[mx.example.com]": "user:secret"},
        sasl_tls_security_options=frozenset({"noplaintext"}),
        sasl_tls_verified_security_options=verified_options,
    )
    authenticated = b"AUTH PLAIN " in record.sent()
    assert authenticated == (verified_options is not None)
    if authenticated:
        assert statuses(report) == [("sent", "2.0.0")]


def test_bind_address_is_the_source_of_ipv4_connections() -> None:
    # smtp(8) smtp_bind_address / smtp_bind_address6: chosen by the server address's family
    dns = {
        ("example.com", "MX"): (MXRecord(10, "mx.example.com"),),
        ("mx.example.com", "A"): ("192.0.2.1",),
        ("mx.example.com", "AAAA"): ("2001:db8::1",),
    }
    _, record = go(
        destination="example.com",
        dns=dns,
        servers={"2001:db8::1": [ConnectFailed("refused")], "192.0.2.1": [smtp(*OK)]},
        bind_address="192.0.2.99",
        bind_address6="2001:db8::99",
    )
    binds = {c.address: c.bind_address for c in record.of_type(Connect)}
    assert binds == {"192.0.2.1": "192.0.2.99", "2001:db8::1": "2001:db8::99"}
    _, unbound = go(smtp(*OK))
    assert [c.bind_address for c in unbound.of_type(Connect)] == [None]
