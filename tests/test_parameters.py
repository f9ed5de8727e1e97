"""The smtp(8) parameters as a feature contract, and the behaviour of each one.

The contract: every name of the Postfix 3.7 smtp(8) manual is declared exactly once
(`smtpproto.config.declarations()`), every supported parameter has a test carrying its
``@pytest.mark.parameter(...)`` marker that sets it and shows its effect, every marker names a
real parameter, nothing declared "not yet in effect" is read by the core or claimed by a
test, and ``docs/parameters.md`` and the defaults table of ``docs/security.md`` are what
``docs/gen_parameters.py`` renders. Then behaviour tests, one or more per parameter, against
scripted servers (the engine's requests are the evidence).
"""

from __future__ import annotations

import ast
import base64
import importlib.util
import re
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from support.world import (
    ADDR,
    EHLO_PLAIN,
    Clock,
    Rng,
    Script,
    Session,
    go,
    run,
    smtp,
    statuses,
)

from smtpproto.config import LEGACY, ClientConfig, declaration, declarations
from smtpproto.engine import deliver
from smtpproto.envelope import Envelope, Recipient
from smtpproto.report import DeliveryReport
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


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_parameters", DOCS / "gen_parameters.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GEN = _generator()
MANUAL: list[str] = GEN.manual()
SUPPORTED = [d for d in declarations() if d.status == "supported"]
DECLARED_ONLY = [d for d in declarations() if d.status == "declared"]


def _words(nodes: list[ast.AST]) -> set[str]:
    words: set[str] = set()
    for inner in (n for node in nodes for n in ast.walk(node)):
        if isinstance(inner, ast.keyword) and inner.arg:
            words.add(inner.arg)
        elif isinstance(inner, ast.Attribute):
            words.add(inner.attr)
        elif isinstance(inner, ast.Constant) and isinstance(inner.value, str):
            words.add(inner.value)
            words.update(re.findall(r"[a-z0-9_]+(?==)", inner.value))  # "-o name=value"
        elif isinstance(inner, ast.Name):
            words.add(inner.id)
    return words


@cache
def _mentions() -> dict[str, frozenset[str]]:
    """``file.py::test_name`` -> the names and strings its body, its other decorators, and
    the module-level helpers and constants it uses mention (not its parameter marker)."""
    found: dict[str, frozenset[str]] = {}
    for path in sorted(TESTS.rglob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        helpers: dict[str, set[str]] = {}
        for top in tree.body:
            if isinstance(top, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                helpers[top.name] = _words([top])
            elif isinstance(top, ast.Assign | ast.AnnAssign):
                targets = top.targets if isinstance(top, ast.Assign) else [top.target]
                for target in targets:
                    if isinstance(target, ast.Name):
                        helpers[target.id] = _words([top])
        for node in GEN._functions(tree.body):
            decorators = [
                d
                for d in node.decorator_list
                if not (isinstance(d, ast.Call) and ast.unparse(d.func) == "pytest.mark.parameter")
            ]
            words = _words([*node.body, *decorators])
            for name in list(words):
                words |= helpers.get(name, set())
            found[f"{path.relative_to(TESTS).as_posix()}::{node.name}"] = frozenset(words)
    return found


# -- the contract -------------------------------------------------------------------------


def test_the_manual_list_is_postfix_37s_166_names() -> None:
    assert len(MANUAL) == len(set(MANUAL)) == 166


def test_every_name_of_the_manual_is_declared_once() -> None:
    owners: dict[str, list[str]] = {}
    for d in declarations():
        for name in d.names():
            owners.setdefault(name, []).append(d.name)
    assert [n for n in MANUAL if n not in owners] == []
    assert {n: o for n, o in owners.items() if len(o) > 1} == {}


def test_supported_and_declared_parameters_are_fields_and_the_others_are_not() -> None:
    fields = set(ClientConfig.__dataclass_fields__)
    for d in declarations():
        if d.status == "not applicable":
            assert d.field is None and d.why, d.name
        else:
            assert d.field in fields and d.effect, d.name
            assert (ROOT / "smtpproto" / d.effect).is_file(), (d.name, d.effect)


def test_every_marker_names_a_declared_parameter() -> None:
    unknown = sorted(name for name in GEN.markers() if declaration(name) is None)
    assert unknown == [], f"markers that name no parameter: {unknown}"


def test_every_supported_parameter_has_a_marked_test() -> None:
    untested = sorted(d.name for d in SUPPORTED if not GEN.tests_of(d))
    assert untested == [], f"supported but no @pytest.mark.parameter test: {untested}"


def test_no_marked_test_claims_a_parameter_that_is_not_supported() -> None:
    # A parameter a test shows in effect is supported: change its status in config.py.
    claimed = sorted(
        (d.name, t) for d in declarations() if d.status != "supported" for t in GEN.tests_of(d)
    )
    assert claimed == []


def test_every_marked_test_mentions_its_parameter() -> None:
    mentions = _mentions()
    unrelated = []
    for d in SUPPORTED:
        words = {*d.names(), d.field or ""}
        for test in GEN.tests_of(d):
            if not words & mentions[test]:
                unrelated.append((d.name, test))
    assert unrelated == [], f"marked tests that never set or read their parameter: {unrelated}"


def test_the_core_reads_no_parameter_declared_not_yet_in_effect() -> None:
    # "Not yet in effect" is a claim about the code: no attribute of that name is read
    # anywhere in smtpproto/ but where the configuration itself is declared.
    read: dict[str, set[str]] = {}
    for path in sorted((ROOT / "smtpproto").rglob("*.py")):
        if path.name in ("config.py", "_parameters.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute):
                read.setdefault(node.attr, set()).add(path.relative_to(ROOT).as_posix())
    wired = sorted((d.name, sorted(read[d.field])) for d in DECLARED_ONLY if d.field in read)
    assert wired == [], f"read by the core: test them, mark them supported: {wired}"


def test_docs_are_generated_and_current() -> None:
    assert (DOCS / "parameters.md").read_text(encoding="utf-8") == GEN.render()
    security = (DOCS / "security.md").read_text(encoding="utf-8")
    assert security == GEN.security_page(security), "run: .venv/bin/python docs/gen_parameters.py"


def test_rendered_table_has_one_row_per_manual_name_with_its_status() -> None:
    rows = [line for line in GEN.render().splitlines() if line.startswith("| `")]
    for name in MANUAL:
        (row,) = [r for r in rows if r.startswith(f"| `{name}` ")]
        d = declaration(name)
        assert d is not None
        assert {"supported": "supported", "declared": "not yet in effect"}.get(
            d.status, "not applicable"
        ) in row
        for test in GEN.tests_of(d) if d.status == "supported" else ():
            assert test.rpartition("::")[2] in row


def test_generator_check_mode_reports_drift(tmp_path: Path) -> None:
    stale, security = tmp_path / "parameters.md", tmp_path / "security.md"
    stale.write_text("stale\n", encoding="utf-8")
    security.write_text(f"intro\n{GEN.BEGIN}old\n{GEN.END}outro\n", encoding="utf-8")
    args = ["--output", str(stale), "--security", str(security)]
    assert GEN.main(["--check", *args]) == 1
    assert GEN.main(args) == 0
    assert GEN.main(["--check", *args]) == 0
    assert stale.read_text(encoding="utf-8") == GEN.render()
    text = security.read_text(encoding="utf-8")
    assert text.startswith("intro\n") and text.endswith("outro\n") and "old" not in text


def test_the_marker_scan_finds_markers_and_refuses_computed_names() -> None:
    assert (
        "test_parameters.py::test_helo_name_is_the_ehlo_argument" in GEN.markers()["smtp_helo_name"]
    )
    tree = ast.parse("@pytest.mark.parameter(NAME)\ndef test_x(): pass\n")
    node = tree.body[0]
    assert isinstance(node, ast.FunctionDef)
    with pytest.raises(ValueError, match="string literals"):
        list(GEN._marked(node))


def test_the_defaults_table_lists_every_deliberate_difference() -> None:
    table = GEN.render_defaults()
    legacy = {d.name for d in LEGACY}
    for d in declarations():
        if d.differs and d.name not in legacy and d.field is not None:
            assert f"| `{d.name}` |" in table


# -- helpers for the behaviour tests ---------------------------------------------------------

OK = (b"250 ok\r\n250 ok\r\n354 go\r\n", b"250 2.0.0 ok\r\n")
MX_SELF = {
    ("example.com", "MX"): (MXRecord(10, "mx.example.com"),),
    ("mx.example.com", "A"): ("192.0.2.53",),
}


def _run(
    config: ClientConfig,
    *sessions: Session,
    destination: str = f"[{ADDR}]",
    dns: dict[tuple[str, str], Any] | None = None,
    servers: dict[str, list[Any]] | None = None,
    recipients: tuple[str, ...] = ("b@example.com",),
    message: bytes = b"Subject: t\r\n\r\nhello\r\n",
) -> tuple[DeliveryReport, Any]:
    """`deliver` with `config` as built (from_postconf) against scripted servers."""
    env = Envelope("a@example.org", tuple(Recipient(r) for r in recipients))
    script = Script(dns=dns or {}, servers=servers or {ADDR: list(sessions)})
    engine = deliver(destination, env, message, config=config, clock=Clock(), rng=Rng())
    return run(engine, script)


def _postconf(reader: Any = None, **parameters: Any) -> ClientConfig:
    """from_postconf with the client's name set, as every scripted test expects it."""
    return ClientConfig.from_postconf(
        {"smtp_helo_name": "client.example", **parameters}, reader=reader
    )


# -- behaviour -----------------------------------------------------------------------------


def _deliver(
    *sessions: Session, destination: str = "[192.0.2.1]", **config: Any
) -> tuple[Any, Any]:
    """`deliver` against scripted servers at 192.0.2.1, with `config` as given (no defaults)."""
    env = Envelope("a@example.org", (Recipient("b@example.com"),))
    script = Script(servers={"192.0.2.1": list(sessions)})
    engine = deliver(
        destination,
        env,
        b"Subject: t\r\n\r\nhello\r\n",
        config=ClientConfig(**config),
        clock=Clock(),
        rng=Rng(),
    )
    return run(engine, script)


@pytest.mark.parameter("myhostname", "inet_interfaces", "proxy_interfaces")
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


@pytest.mark.parameter("smtp_helo_name")
def test_helo_name_is_the_ehlo_argument() -> None:
    _, record = go(smtp(*OK), config=ClientConfig(helo_name="client.test"))
    assert record.flights()[0] == b"EHLO client.test\r\n"


@pytest.mark.parameter("lmtp_lhlo_name")
def test_lhlo_name_is_the_lhlo_argument() -> None:
    config = ClientConfig.from_postconf({"lmtp_lhlo_name": "lmtp.client.test"}, lmtp=True)
    lmtp = Session([b"220 lmtp\r\n", b"250 lmtp\r\n", b"250 ok\r\n", b"250 ok\r\n"])
    env = Envelope("a@example.org", (Recipient("b@example.com"),))
    engine = deliver(
        "inet:[192.0.2.1]:24", env, b"\r\nx\r\n", config=config, clock=Clock(), rng=Rng()
    )
    _, record = run(engine, Script(servers={"192.0.2.1": [lmtp]}))
    assert record.flights()[0] == b"LHLO lmtp.client.test\r\n"


@pytest.mark.parameter(
    "smtp_discard_ehlo_keyword_address_maps",
    "lmtp_discard_lhlo_keyword_address_maps",
)
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
    assert config.discard_ehlo_keyword_address_maps.get("192.0.2.1") == frozenset({"PIPELINING"})


@pytest.mark.parameter("smtp_discard_ehlo_keyword_address_maps")
def test_discard_ehlo_keyword_address_maps_leaves_other_addresses_alone() -> None:
    _, record = go(
        smtp(*OK), discard_ehlo_keyword_address_maps={"192.0.2.99": frozenset({"PIPELINING"})}
    )
    assert record.flights()[1].startswith(b"MAIL FROM:<a@example.org>\r\nRCPT TO:")


@pytest.mark.parameter("smtp_connect_timeout")
def test_connect_timeout_is_the_connect_request_timeout() -> None:
    _, record = go(smtp(*OK), connect_timeout=7)
    assert [c.timeout for c in record.of_type(Connect)] == [7]
    _, unlimited = go(smtp(*OK), connect_timeout=0)
    assert [c.timeout for c in unlimited.of_type(Connect)] == [None]


@pytest.mark.parameter("smtp_data_xfer_timeout")
def test_data_xfer_timeout_bounds_each_body_write() -> None:
    # Rule 7.3: the last write, which ends with the end of data, is bounded by data_done as in
    # smtp_proto.c; every content write before it by data_xfer.
    message = b"Subject: t\r\n\r\n" + b"hello world\r\n" * 20_000
    _, record = go(
        smtp(*OK), message=message, data_xfer_timeout=17, data_done_timeout=19,
        per_request_deadline=False,
    )  # fmt: skip
    body = [s for s in record.of_type(Send) if b"hello" in s.data]
    assert len(body) > 1 and all(s.timeout == 17 for s in body[:-1])
    assert body[-1].data.endswith(b"\r\n.\r\nQUIT\r\n") and body[-1].timeout == 19


@pytest.mark.parameter("smtp_quit_timeout", "smtp_skip_quit_response")
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


@pytest.mark.parameter("smtp_rset_timeout")
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


@pytest.mark.parameter("smtp_connection_reuse_count_limit")
def test_connection_reuse_count_limit_closes_after_that_many_transactions() -> None:
    # Postfix counts reuses (smtp.h THIS_SESSION_IS_EXPIRED): a limit of 1 is one reuse, so
    # two transactions on the first connection and the third on a new one (rule 9.1).
    report, record = go(
        smtp(*OK, b"250 ok\r\n", *OK),
        smtp(*OK),
        recipients=("a@x", "b@x", "c@x"),
        destination_recipient_limit=1,
        connection_reuse_count_limit=1,
    )
    assert statuses(report) == [("sent", "2.0.0")] * 3
    first, second = record.channels
    assert record.sent(first).count(b"MAIL FROM") == 2
    assert record.sent(second).count(b"MAIL FROM") == 1


@pytest.mark.parameter("smtp_xforward_timeout", "smtp_send_xforward_command")
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
        ("Subject:", [("Send", 16), ("Receive", 16)]),
        ("QUIT", [("Send", 17)]),
    ]


@pytest.mark.parameter("smtp_starttls_timeout")
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


@pytest.mark.parameter("smtp_pix_workarounds")
def test_empty_pix_workarounds_keeps_esmtp_for_a_pix_banner() -> None:
    # rule 3.3: the workarounds are what pix_workarounds lists; none -> plain EHLO, no delay
    banner = b"220 ********************\r\n"
    _, record = go(smtp(*OK, greeting=banner), pix_workarounds=frozenset())
    assert record.flights()[0] == b"EHLO client.example\r\n"
    assert not record.of_type(Sleep)


@pytest.mark.parameter("smtp_balance_inet_protocols", "smtp_address_preference")
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


@pytest.mark.parameter(
    "smtp_tls_mandatory_protocols",
    "smtp_tls_mandatory_ciphers",
    "tls_high_cipherlist",
    "smtp_tls_exclude_ciphers",
    "smtp_tls_mandatory_exclude_ciphers",
    "smtp_tls_cert_file",
    "smtp_tls_key_file",
)
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


@pytest.mark.parameter(
    "tls_medium_cipherlist",
    "tls_low_cipherlist",
    "tls_null_cipherlist",
    "smtp_tls_mandatory_ciphers",
)
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


@pytest.mark.parameter("smtp_tls_CAfile", "smtp_tls_CApath")
def test_verify_level_passes_the_trust_anchors_to_the_handshake() -> None:
    request = _handshake(
        tls_security_level="verify", tls_CAfile="/etc/ca.pem", tls_CApath="/etc/ssl/certs"
    )
    parameters = request.parameters
    assert parameters.verify
    assert (parameters.ca_file, parameters.ca_path) == ("/etc/ca.pem", "/etc/ssl/certs")


@pytest.mark.parameter("smtp_tls_verify_cert_match", "smtp_tls_secure_cert_match")
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


@pytest.mark.parameter("smtp_sasl_tls_verified_security_options", "smtp_sasl_tls_security_options")
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


@pytest.mark.parameter("smtp_bind_address", "smtp_bind_address6")
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


# -- the per-command timeouts -----------------------------------------------------------------


@pytest.mark.parameter(
    "smtp_helo_timeout",
    "smtp_mail_timeout",
    "smtp_rcpt_timeout",
    "smtp_data_init_timeout",
    "smtp_data_done_timeout",
)
def test_each_reply_is_read_within_the_timeout_of_its_command() -> None:
    # smtp(8): the greeting and EHLO replies within helo_timeout, then one per command;
    # without deadlines each read gets the whole limit (Postfix's default)
    _, record = go(
        smtp(b"250 ok\r\n", b"250 ok\r\n", b"354 go\r\n", b"250 2.0.0 ok\r\n"),
        per_request_deadline=False,
        helo_timeout=11,
        mail_timeout=12,
        rcpt_timeout=13,
        data_init_timeout=14,
        data_done_timeout=15,
    )
    assert [r.timeout for r in record.of_type(Receive)] == [11, 11, 12, 13, 14, 15]


@pytest.mark.parameter("lmtp_lhlo_timeout")
def test_lhlo_timeout_bounds_the_greeting_and_the_lhlo_reply() -> None:
    config = ClientConfig.from_postconf({"lmtp_lhlo_timeout": "7s"}, lmtp=True)
    assert config.helo_timeout == 7
    lmtp = Session([b"220 lmtp\r\n", b"250 lmtp\r\n", b"250 ok\r\n", b"250 ok\r\n"])
    env = Envelope("a@example.org", (Recipient("b@example.com"),))
    engine = deliver(
        "inet:[192.0.2.1]:24", env, b"\r\nx\r\n", config=config, clock=Clock(), rng=Rng()
    )
    _, record = run(engine, Script(servers={ADDR: [lmtp]}))
    assert [r.timeout for r in record.of_type(Receive)][:2] == [7, 7]


# -- the greeting and the hello ---------------------------------------------------------------

NO_ESMTP = b"220 mx.example\r\n"
ONE_BY_ONE = (b"250 ok\r\n", b"250 ok\r\n", b"354 go\r\n", b"250 2.0.0 ok\r\n")


@pytest.mark.parameter("smtp_always_send_ehlo")
def test_without_always_send_ehlo_a_banner_without_esmtp_gets_helo() -> None:
    _, helo = go(smtp(*ONE_BY_ONE, greeting=NO_ESMTP, ehlo=b"250 mx\r\n"), always_send_ehlo=False)
    assert helo.flights()[0] == b"HELO client.example\r\n"
    _, ehlo = go(smtp(*OK, greeting=NO_ESMTP), always_send_ehlo=True)
    assert ehlo.flights()[0] == b"EHLO client.example\r\n"


@pytest.mark.parameter("smtp_never_send_ehlo")
def test_never_send_ehlo_sends_helo_to_an_esmtp_banner() -> None:
    report, record = go(smtp(*ONE_BY_ONE, ehlo=b"250 mx\r\n"), never_send_ehlo=True)
    assert record.flights()[0] == b"HELO client.example\r\n"
    assert statuses(report) == [("sent", "2.0.0")]


@pytest.mark.parameter("smtp_skip_5xx_greeting")
@pytest.mark.parametrize(
    ("skip", "status"), [(True, ("deferred", "4.7.1")), (False, ("bounced", "5.7.1"))]
)
def test_skip_5xx_greeting_turns_a_5xx_greeting_into_a_deferral(
    skip: bool, status: tuple[str, str]
) -> None:
    # rule 3.1: with the default a 5xx greeting is treated as 4xx (next MX, or defer)
    report, _ = go(Session([b"554 5.7.1 go away\r\n"]), skip_5xx_greeting=skip)
    assert statuses(report) == [status]


@pytest.mark.parameter("smtp_pix_workaround_delay_time")
def test_pix_workaround_delay_time_is_the_wait_before_the_final_dot() -> None:
    banner = b"220 ********************\r\n"
    steps = [banner, b"250 hi\r\n", b"250 ok\r\n", b"250 ok\r\n", b"354 go\r\n", b"250 ok\r\n"]
    queued_long_ago = Envelope("a@example.org", (Recipient("b@example.com"),), arrival=0.0)
    _, record = go(Session(steps), pix_workaround_delay_time=7, envelope=queued_long_ago)
    assert [s.seconds for s in record.of_type(Sleep)] == [7]


# -- message content ------------------------------------------------------------------------


@pytest.mark.parameter("smtp_line_length_limit")
def test_line_length_limit_folds_long_lines_on_the_wire() -> None:
    message = b"Subject: t\r\n\r\n" + b"x" * 120 + b"\r\n"
    _, folded = go(smtp(*OK), message=message, line_length_limit=50)
    body = folded.sent().split(b"DATA\r\n", 1)[1]
    assert max(len(line) for line in body.split(b"\r\n")) == 50
    assert body.count(b"x") == 120
    _, unlimited = go(smtp(*OK), message=message, line_length_limit=0)
    assert b"x" * 120 + b"\r\n" in unlimited.sent()


@pytest.mark.parameter("smtp_quote_rfc821_envelope")
def test_quote_rfc821_envelope_decides_how_an_odd_local_part_goes_out() -> None:
    # rule 6.5: quoting applies to the address as given; off, it goes out verbatim
    _, quoted = go(smtp(*OK), recipients=("a b@example.com",))
    assert b'RCPT TO:<"a b"@example.com>\r\n' in quoted.sent()
    _, requoted = go(smtp(*OK), recipients=('"a b"@example.com',))
    assert b'RCPT TO:<"\\"a b\\""@example.com>\r\n' in requoted.sent()
    _, verbatim = go(smtp(*OK), recipients=('"a b"@example.com',), quote_rfc821_envelope=False)
    assert b'RCPT TO:<"a b"@example.com>\r\n' in verbatim.sent()


@pytest.mark.parameter("smtp_discard_ehlo_keywords", "lmtp_discard_lhlo_keywords")
@pytest.mark.parametrize("lmtp", [False, True], ids=["smtp", "lmtp"])
def test_discard_ehlo_keywords_hides_pipelining(lmtp: bool) -> None:
    name = "lmtp_discard_lhlo_keywords" if lmtp else "smtp_discard_ehlo_keywords"
    config = ClientConfig.from_postconf({name: "pipelining"}, lmtp=lmtp)
    destination = "inet:[192.0.2.1]:24" if lmtp else f"[{ADDR}]"
    _, record = _run(config, smtp(*ONE_BY_ONE), destination=destination)
    assert record.flights()[1] == b"MAIL FROM:<a@example.org>\r\n"  # alone: no pipelining
    assert config.discard_ehlo_keywords == frozenset({"PIPELINING"})


# -- TLS ---------------------------------------------------------------------------------------

STARTTLS_OFFER = b"250-mx.example.com\r\n250-PIPELINING\r\n250 STARTTLS\r\n"
UNVERIFIED = TLSInfo(version="TLSv1.3", cipher="TLS_AES_128_GCM_SHA256", chain_verified=False)


@pytest.mark.parameter("smtp_tls_security_level")
@pytest.mark.parametrize(
    ("level", "starttls", "status"),
    [
        ("none", False, ("sent", "2.0.0")),
        ("may", True, ("sent", "2.0.0")),
        ("encrypt", True, ("sent", "2.0.0")),
    ],
)
def test_tls_security_level_decides_whether_starttls_is_used(
    level: str, starttls: bool, status: tuple[str, str]
) -> None:
    # OK's replies come in one flight: the EHLO after TLS offers PIPELINING, as before it.
    session = Session(
        [b"220 mx\r\n", STARTTLS_OFFER, b"220 go\r\n", UNVERIFIED, EHLO_PIPELINING, *OK]
    )
    plain = smtp(*OK, ehlo=STARTTLS_OFFER)
    report, record = go(session if starttls else plain, tls_security_level=level)
    assert statuses(report) == [status]
    assert bool(record.of_type(StartTLS)) == starttls
    assert (b"STARTTLS\r\n" in record.sent()) == starttls


@pytest.mark.parameter("smtp_tls_security_level")
def test_tls_security_level_encrypt_defers_a_server_without_starttls() -> None:
    report, record = go(smtp(*OK), tls_security_level="encrypt")
    assert statuses(report) == [("deferred", "4.7.4")]
    assert b"MAIL FROM" not in record.sent()


@pytest.mark.parameter("smtp_tls_note_starttls_offer")
def test_tls_note_starttls_offer_logs_an_offer_at_level_none() -> None:
    report, _ = go(smtp(*OK, ehlo=STARTTLS_OFFER), tls_security_level="none")
    assert not any("offered STARTTLS" in line for line in report.transcript)
    noted, _ = go(
        smtp(*OK, ehlo=STARTTLS_OFFER), tls_security_level="none", tls_note_starttls_offer=True
    )
    assert f"Host offered STARTTLS: [{ADDR}]" in noted.transcript


@pytest.mark.parameter("smtp_tls_policy_maps")
@pytest.mark.parametrize(
    "table",
    [
        {f"[{ADDR}]": "encrypt"},
        "texthash:/etc/postfix/tls_policy",
        "regexp:{ {/^\\[192\\.0\\.2\\.1\\]$$/ encrypt} }",
        "pcre:/etc/postfix/tls_policy.pcre",
    ],
    ids=["mapping", "texthash", "regexp-inline", "pcre-file"],
)
def test_tls_policy_maps_raise_the_level_for_one_next_hop(table: Any) -> None:
    files = {
        "/etc/postfix/tls_policy": f"# next hop   policy\n[{ADDR}]   encrypt\n",
        "/etc/postfix/tls_policy.pcre": "if /^\\[192\\.0\\.2\\.1\\]/\n/\\]$/ encrypt\nendif\n",
    }
    config = _postconf(reader=files.__getitem__, smtp_tls_policy_maps=table)
    report, _ = _run(config, smtp(*OK))
    assert statuses(report) == [("deferred", "4.7.4")]  # encrypt, and no STARTTLS offered
    other, _ = _run(
        config, smtp(*OK), destination="[192.0.2.99]", servers={"192.0.2.99": [smtp(*OK)]}
    )
    assert statuses(other) == [("sent", "2.0.0")]


def _handshake(**config: Any) -> StartTLS:
    _, record = go(_tls_session(UNVERIFIED, *OK), **config)
    (request,) = record.of_type(StartTLS)
    return request


@pytest.mark.parameter("smtp_tls_protocols", "smtp_tls_ciphers")
def test_tls_protocols_and_ciphers_shape_the_handshake_at_may() -> None:
    default = _handshake(tls_security_level="may").parameters
    assert (default.min_version, default.ciphers) == ("TLSv1", None)
    shaped = _handshake(
        tls_security_level="may",
        tls_protocols=(">=TLSv1.2",),
        tls_ciphers="high",
        tls_high_cipherlist="HIGH:!aNULL",
    ).parameters
    assert (shaped.min_version, shaped.ciphers) == ("TLSv1.2", "HIGH:!aNULL")
    # Mandatory levels keep their own settings.
    mandatory = _handshake(tls_security_level="encrypt", tls_protocols=(">=TLSv1.3",))
    assert mandatory.parameters.min_version == "TLSv1.2"


@pytest.mark.parameter("smtp_tls_chain_files", "smtp_tls_eccert_file", "smtp_tls_eckey_file")
def test_client_certificate_comes_from_chain_files_then_cert_then_eccert() -> None:
    chain = _handshake(tls_chain_files=("/etc/postfix/chain.pem",)).parameters
    assert (chain.cert_file, chain.key_file) == ("/etc/postfix/chain.pem", None)
    ec = _handshake(tls_eccert_file="/etc/ec.pem", tls_eckey_file="/etc/ec.key").parameters
    assert (ec.cert_file, ec.key_file) == ("/etc/ec.pem", "/etc/ec.key")
    none = _handshake().parameters
    assert (none.cert_file, none.key_file) == (None, None)
    with pytest.raises(ValueError, match="tls_eccert_file"):
        ClientConfig(tls_cert_file="/etc/rsa.pem", tls_eccert_file="/etc/ec.pem")
    with pytest.raises(ValueError, match="tls_chain_files"):
        ClientConfig(tls_chain_files=("/a.pem", "/b.pem"))


MX_NAMES = {
    ("example.com", "MX"): (MXRecord(10, "mx.example.com"),),
    ("mx.example.com", "A"): (ADDR,),
    ("mx.example.com", "AAAA"): (),
}


@pytest.mark.parameter("smtp_tls_servername")
@pytest.mark.parametrize(
    ("servername", "sni"),
    [
        ("hostname", "mx.example.com"),
        ("", None),
        ("nexthop", "example.com"),
        ("relay.example.net", "relay.example.net"),
    ],
)
def test_tls_servername_is_the_sni_name(servername: str, sni: str | None) -> None:
    _, record = go(
        _tls_session(UNVERIFIED, *OK),
        destination="example.com",
        dns=MX_NAMES,
        tls_servername=servername,
    )
    (request,) = record.of_type(StartTLS)
    assert request.server_hostname == sni


# -- implicit TLS (smtp_tls_wrappermode) ------------------------------------------------------

GREETING_465 = b"220 mx.example.com ESMTP\r\n"
EHLO_465 = b"250-mx.example.com\r\n250-PIPELINING\r\n250 AUTH PLAIN\r\n"


@pytest.mark.parameter("smtp_tls_wrappermode")
def test_wrappermode_does_tls_before_the_greeting_and_never_starttls() -> None:
    session = Session([UNVERIFIED, GREETING_465, EHLO_465, *OK])
    report, record = go(
        session, destination=f"[{ADDR}]:465", tls_wrappermode=True, tls_security_level="encrypt"
    )
    assert statuses(report) == [("sent", "2.0.0")]
    first_io = next(r for r in record.requests if isinstance(r, StartTLS | Receive | Send))
    assert isinstance(first_io, StartTLS) and first_io.timeout == 300
    assert b"STARTTLS" not in record.sent()
    assert record.sent().startswith(b"EHLO client.example\r\n")
    assert report.recipients[0].tls is not None
    assert report.recipients[0].tls.version == "TLSv1.3"


@pytest.mark.parameter("smtp_tls_wrappermode")
@pytest.mark.parametrize("level", ["none", "may"])
def test_wrappermode_below_encrypt_never_connects(level: str) -> None:
    # Postfix smtp_connect.c: wrappermode requires smtp_tls_security_level = encrypt or up
    report, record = go(tls_wrappermode=True, tls_security_level=level)
    assert statuses(report) == [("deferred", "4.7.0")]
    assert "requires smtp_tls_security_level" in report.recipients[0].diagnostic
    assert not record.of_type(Connect)


@pytest.mark.parameter("smtp_tls_wrappermode")
def test_wrappermode_handshake_failure_closes_without_a_byte() -> None:
    from smtpproto.requests import TLSFailed

    report, record = go(
        Session([TLSFailed("bad record mac")]), tls_wrappermode=True, tls_security_level="encrypt"
    )
    assert statuses(report) == [("deferred", "4.7.5")]
    assert record.sent() == b"" and record.channels[0].closed


@pytest.mark.parameter("smtp_tls_wrappermode")
def test_wrappermode_with_a_certificate_that_does_not_verify_sends_nothing() -> None:
    report, record = go(
        Session([UNVERIFIED, GREETING_465, EHLO_465, *OK]),
        tls_wrappermode=True,
        tls_security_level="verify",
    )
    assert statuses(report) == [("deferred", "4.7.5")]
    assert record.sent() == b"" and record.channels[0].closed


@pytest.mark.parameter("smtp_tls_wrappermode", "smtp_sasl_auth_enable")
def test_wrappermode_counts_as_tls_for_sasl() -> None:
    # PLAIN allowed under TLS only (sasl_tls_security_options, opted in: the peer does not
    # verify, AU-20): it goes out, so the session is TLS.
    report, record = go(
        Session([UNVERIFIED, GREETING_465, EHLO_465, b"235 2.7.0 ok\r\n", *OK]),
        tls_wrappermode=True,
        tls_security_level="encrypt",
        sasl_auth_enable=True,
        sasl_tls_security_options=frozenset({"noanonymous"}),
        sasl_password_maps={f"[{ADDR}]": "user:secret"},
    )
    assert statuses(report) == [("sent", "2.0.0")]
    assert b"AUTH PLAIN " in record.sent()


# -- certificate names -----------------------------------------------------------------------


@pytest.mark.parameter("smtp_tls_verify_cert_match", "smtp_tls_secure_cert_match")
@pytest.mark.parametrize(
    ("level", "match", "status"),
    [
        ("verify", {"smtp_tls_verify_cert_match": "mx.example.com"}, "sent"),
        ("verify", {"smtp_tls_verify_cert_match": ".example.com"}, "sent"),
        ("verify", {"smtp_tls_verify_cert_match": "example.com"}, "deferred"),
        ("secure", {"smtp_tls_secure_cert_match": "example.net, .example.com"}, "sent"),
        ("secure", {"smtp_tls_secure_cert_match": ".example.net"}, "deferred"),
    ],
)
def test_cert_match_accepts_literal_names_and_dot_suffixes(
    level: str, match: dict[str, str], status: str
) -> None:
    # Postfix: beside hostname/nexthop/dot-nexthop, a name, or ".domain" for its sub-domains
    config = _postconf(smtp_tls_security_level=level, **match)
    report, _ = _run(config, _tls_session(_verified(), *OK), destination="example.com", dns=MX_HOST)
    assert report.recipients[0].status == status


@pytest.mark.parameter("smtp_tls_policy_maps")
@pytest.mark.parametrize(
    ("match", "status"),
    [
        ("match=.example.com", "sent"),
        ("match=example.com:mx.example.com", "sent"),
        ("match=example.net", "deferred"),
    ],
)
def test_policy_table_match_accepts_literal_names(match: str, status: str) -> None:
    report, _ = go(
        _tls_session(_verified(), *OK),
        destination="example.com",
        dns=MX_HOST,
        tls_policy_maps={"example.com": f"verify {match}"},
    )
    assert report.recipients[0].status == status


# -- SASL ----------------------------------------------------------------------------------------

EHLO_AUTH = b"250-mx.example\r\n250-PIPELINING\r\n250 AUTH GSSAPI LOGIN PLAIN CRAM-MD5\r\n"
SASL = {"sasl_auth_enable": True, "sasl_password_maps": {f"[{ADDR}]": "user:secret"}}
CLEARTEXT_OK = frozenset({"noanonymous"})


AUTH_STEPS = {
    b"CRAM-MD5": (b"334 " + base64.b64encode(b"<1.2@mx>") + b"\r\n", b"235 2.7.0 ok\r\n"),
    b"PLAIN": (b"235 2.7.0 ok\r\n",),
    b"LOGIN": (b"334 VXNlcm5hbWU6\r\n", b"334 UGFzc3dvcmQ6\r\n", b"235 2.7.0 ok\r\n"),
}


def _auth_line(record: Any) -> bytes:
    (line,) = [w for w in record.sent().split(b"\r\n") if w.startswith(b"AUTH ")]
    return line


@pytest.mark.parameter("smtp_sasl_auth_enable", "smtp_sasl_password_maps")
def test_sasl_auth_enable_with_a_password_map_entry_authenticates() -> None:
    report, record = go(
        smtp(b"235 2.7.0 ok\r\n", *OK, ehlo=EHLO_AUTH),
        sasl_security_options=CLEARTEXT_OK,
        sasl_mechanism_filter=("plain",),
        **SASL,
    )
    assert statuses(report) == [("sent", "2.0.0")]
    assert _auth_line(record) == b"AUTH PLAIN " + base64.b64encode(b"\0user\0secret")
    _, off = go(smtp(*OK, ehlo=EHLO_AUTH), sasl_password_maps=SASL["sasl_password_maps"])
    assert b"AUTH" not in off.sent()


@pytest.mark.parameter("smtp_sasl_password_maps")
def test_sasl_password_maps_read_postfix_tables() -> None:
    files = {"/etc/postfix/sasl_passwd": f"[{ADDR}]   user:secret\n"}
    config = _postconf(
        reader=files.__getitem__,
        smtp_sasl_auth_enable="yes",
        smtp_sasl_security_options="noanonymous",
        smtp_sasl_mechanism_filter="plain",
        smtp_sasl_password_maps="inline:{ other=x:y }, texthash:/etc/postfix/sasl_passwd",
    )
    _, record = _run(config, smtp(b"235 2.7.0 ok\r\n", *OK, ehlo=EHLO_AUTH))
    assert _auth_line(record) == b"AUTH PLAIN " + base64.b64encode(b"\0user\0secret")
    assert "secret" not in repr(config)


@pytest.mark.parameter("smtp_sasl_security_options")
def test_sasl_security_options_keep_plaintext_passwords_off_a_cleartext_session() -> None:
    ehlo = b"250-mx\r\n250-PIPELINING\r\n250 AUTH PLAIN LOGIN\r\n"
    report, record = go(smtp(*OK, ehlo=ehlo), **SASL)  # noplaintext, noanonymous
    assert statuses(report) == [("deferred", "4.7.0")]
    assert b"AUTH" not in record.sent()
    allowed, record = go(
        smtp(b"235 2.7.0 ok\r\n", *OK, ehlo=ehlo), sasl_security_options=frozenset(), **SASL
    )
    assert statuses(allowed) == [("sent", "2.0.0")]
    assert b"AUTH PLAIN " in record.sent()


@pytest.mark.parameter("smtp_sasl_mechanism_filter")
@pytest.mark.parametrize(
    ("value", "chosen"),
    [
        ("", b"CRAM-MD5"),
        ("plain, login", b"PLAIN"),
        ("!gssapi, !login, !cram-md5, static:rest", b"PLAIN"),
        ("/etc/postfix/smtp_mechs", b"LOGIN"),
    ],
)
def test_sasl_mechanism_filter_takes_postfix_list_syntax(value: str, chosen: bytes) -> None:
    # postconf(5)'s own example "!gssapi, !login, static:rest" must work, not defer 4.3.0
    files = {"/etc/postfix/smtp_mechs": "# one per line\nlogin\n"}
    config = _postconf(
        reader=files.__getitem__,
        smtp_sasl_auth_enable="yes",
        smtp_sasl_security_options="noanonymous",
        smtp_sasl_password_maps={f"[{ADDR}]": "user:secret"},
        smtp_sasl_mechanism_filter=value,
    )
    report, record = _run(config, smtp(*AUTH_STEPS[chosen], *OK, ehlo=EHLO_AUTH))
    assert _auth_line(record).split()[1] == chosen
    assert statuses(report) == [("sent", "2.0.0")]


@pytest.mark.parameter("smtp_sender_dependent_authentication")
@pytest.mark.parametrize(("dependent", "user"), [(True, b"alice"), (False, b"relay")])
def test_sender_dependent_authentication_looks_up_the_sender_first(
    dependent: bool, user: bytes
) -> None:
    _, record = go(
        smtp(b"235 2.7.0 ok\r\n", *OK, ehlo=EHLO_AUTH),
        sasl_auth_enable=True,
        sasl_security_options=CLEARTEXT_OK,
        sasl_mechanism_filter=("plain",),
        sasl_password_maps={"a@example.org": "alice:pw1", f"[{ADDR}]": "relay:pw2"},
        sender_dependent_authentication=dependent,
    )
    assert base64.b64decode(_auth_line(record).split()[2]).split(b"\0")[1] == user


@pytest.mark.parameter("smtp_sasl_auth_soft_bounce")
@pytest.mark.parametrize(
    ("soft", "status"), [(True, ("deferred", "4.7.8")), (False, ("bounced", "5.7.8"))]
)
def test_sasl_auth_soft_bounce_decides_what_a_5xx_auth_reply_means(
    soft: bool, status: tuple[str, str]
) -> None:
    report, record = go(
        smtp(b"535 5.7.8 bad credentials\r\n", ehlo=EHLO_AUTH),
        sasl_security_options=CLEARTEXT_OK,
        sasl_mechanism_filter=("plain",),
        sasl_auth_soft_bounce=soft,
        **SASL,
    )
    assert statuses(report) == [status]
    assert b"MAIL FROM" not in record.sent()


@pytest.mark.parameter("send_cyrus_sasl_authzid")
@pytest.mark.parametrize(
    ("send", "message"), [(False, b"\0user\0secret"), (True, b"user\0user\0secret")]
)
def test_send_cyrus_sasl_authzid_names_the_user_as_the_authorization_id(
    send: bool, message: bytes
) -> None:
    _, record = go(
        smtp(b"235 2.7.0 ok\r\n", *OK, ehlo=EHLO_AUTH),
        sasl_security_options=CLEARTEXT_OK,
        sasl_mechanism_filter=("plain",),
        send_cyrus_sasl_authzid=send,
        **SASL,
    )
    assert base64.b64decode(_auth_line(record).split()[2]) == message


# -- the obsolete TLS switches ----------------------------------------------------------------


@pytest.mark.parameter("smtp_use_tls", "smtp_enforce_tls", "smtp_tls_enforce_peername")
@pytest.mark.parametrize(
    ("settings", "level"),
    [
        ({}, "may"),
        ({"smtp_tls_security_level": ""}, "none"),
        ({"smtp_use_tls": "yes"}, "may"),
        ({"smtp_use_tls": "no"}, "none"),
        ({"smtp_enforce_tls": "yes"}, "verify"),
        ({"smtp_enforce_tls": "yes", "smtp_tls_enforce_peername": "no"}, "encrypt"),
        ({"smtp_enforce_tls": "yes", "smtp_tls_security_level": "may"}, "may"),
    ],
)
def test_obsolete_tls_switches_apply_when_the_level_is_empty(
    settings: dict[str, str], level: str
) -> None:
    # Postfix smtp_tls_policy.c global_tls_level()
    config = ClientConfig.from_postconf(settings)
    assert config.tls_security_level == level
    report, _ = _run(config, smtp(*OK))
    required = level in ("encrypt", "verify")
    assert statuses(report) == [("deferred", "4.7.4") if required else ("sent", "2.0.0")]


# -- the command's -o ----------------------------------------------------------------------


def _command(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "smtpproto", *args],
        input="Subject: -o test\r\n\r\nHello.\r\n",
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def demo_smtp() -> Iterator[Any]:
    from smtpproto.adapters.demo import DemoHandler, SMTPServer

    with SMTPServer(DemoHandler(), auth_require_tls=False) as server:
        yield server


def _deliver_args(server: Any, *options: str) -> list[str]:
    args = ["deliver", "--from", "a@client.demo", "--to", "b@demo.example"]
    args += ["--dest", server.destination, "--tls", "none"]
    for option in options:
        args += ["-o", option]
    return args


def test_o_refuses_a_bad_value_naming_the_parameter(demo_smtp: Any) -> None:
    done = _command(*_deliver_args(demo_smtp, "smtp_helo_timeout=200d"))
    assert done.returncode == 78, done.stderr
    assert "smtp_helo_timeout: malformed value '200d'" in done.stderr
    assert "Traceback" not in done.stderr


def test_o_names_what_it_accepts_without_effect_and_delivers(demo_smtp: Any) -> None:
    # A parameter still "declared, not yet in effect" (one whose default is a valid value),
    # while there are any.
    declared = [d for d in DECLARED_ONLY if d.kind.label == "yes/no"][:1]
    options = [f"{d.name}={d.postfix_default}" for d in declared]
    done = _command(*_deliver_args(demo_smtp, "daemon_timeout=1h", *options))
    assert done.returncode == 0, done.stderr
    assert "warning: daemon_timeout: not applicable: a Postfix daemon's" in done.stderr
    for d in declared:
        assert f"warning: {d.name}: not yet in effect: {d.why}" in done.stderr
    assert "status=sent" in done.stdout


def test_o_takes_every_name_of_the_manual(demo_smtp: Any) -> None:
    # One run with all 166 names: each at a value Postfix accepts for it (its own default
    # where that is a literal), the other client's names ignored with a warning.
    samples = {"time": "10s", "number": "5", "yes/no": "no"}
    chosen = {
        "smtp_tls_security_level": "none",
        "smtp_tls_wrappermode": "no",
        "inet_interfaces": "127.0.0.2",
        "best_mx_transport": "",
        "smtp_bind_address": "",
        "smtp_bind_address6": "",
        "smtp_tls_servername": "hostname",
        "smtp_dns_support_level": "enabled",
        "smtp_sasl_tls_verified_security_options": "noanonymous",
        "smtp_helo_name": "client.demo",
        "lmtp_lhlo_name": "client.demo",
        "myhostname": "client.demo",
        "smtp_tls_dane_insecure_mx_policy": "may",
        "smtp_tls_fingerprint_digest": "sha256",
    }
    options = []
    for name in MANUAL:
        d = declaration(name)
        assert d is not None
        literal = None if d.postfix_default.startswith(("$", "(")) else d.postfix_default
        value = chosen.get(name, literal if literal is not None else samples.get(d.kind.label, ""))
        options.append(f"{name}={value}")
    done = _command(*_deliver_args(demo_smtp, *options))
    assert done.returncode == 0, done.stderr
    assert "status=sent" in done.stdout
    assert "warning: lmtp_lhlo_name: ignored: only lmtp(8) (--lmtp) reads it" in done.stderr
    assert "malformed" not in done.stderr and "unknown parameter" not in done.stderr


@pytest.mark.parameter("smtp_tls_policy_maps")
def test_o_opens_table_files_through_the_commands_reader(demo_smtp: Any, tmp_path: Path) -> None:
    # --tls none, but the table asks "verify" for this next hop: no CA knows the demo's
    # certificate, so the mail is deferred rather than sent.
    policy = tmp_path / "tls_policy"
    policy.write_text(f"{demo_smtp.destination}  verify\n", encoding="utf-8")
    done = _command(*_deliver_args(demo_smtp, f"smtp_tls_policy_maps=texthash:{policy}"))
    assert done.returncode == 75, done.stdout + done.stderr
    assert "dsn=4.7.5" in done.stdout
    missing = _command(*_deliver_args(demo_smtp, "smtp_tls_policy_maps=texthash:/nonexistent"))
    assert missing.returncode == 78 and "cannot read /nonexistent" in missing.stderr
