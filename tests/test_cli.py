"""`smtpproto` as a black box: `.venv/bin/python -m smtpproto ...` in a subprocess.

Every documented exit status (DESIGN.md "Command line": 0, 75, 69, 64, 66, 78) and every kind
of bad input, which must give one line on stderr and never a traceback.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from smtpproto.adapters.demo import DEMO_PASSWORD, DEMO_USER, DemoHandler, LMTPServer, SMTPServer

MESSAGE = b"Subject: cli test\r\n\r\nHello.\r\n"


def smtpproto(*args: str, stdin: bytes = MESSAGE) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "smtpproto", *args],
        input=stdin.decode(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def one_clean_line(stderr: str) -> str:
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("smtpproto: ")
    return lines[0]


@pytest.fixture(scope="module")
def smtp() -> Iterator[SMTPServer]:
    server = SMTPServer(DemoHandler(rejected={"nobody@demo.example"}), auth_require_tls=False)
    with server:
        yield server


@pytest.fixture
def lmtp() -> Iterator[LMTPServer]:
    rejected = {"later@lmtp.demo": "452 4.2.2 <later@lmtp.demo>: mailbox full"}
    with LMTPServer(rejected=rejected) as server:
        yield server


def deliver_args(smtp: SMTPServer, *recipients: str) -> list[str]:
    args = ["deliver", "--from", "a@client.demo", "--dest", smtp.destination, "--tls", "none"]
    for recipient in recipients:
        args += ["--to", recipient]
    return args


def test_all_sent_exits_0_with_one_postfix_style_line_per_recipient(smtp: SMTPServer) -> None:
    done = smtpproto(*deliver_args(smtp, "alice@demo.example", "bob@demo.example"))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split(",")[0] for line in lines] == [
        "to=<alice@demo.example>",
        "to=<bob@demo.example>",
    ]
    assert all("status=sent" in line and "dsn=2." in line for line in lines)


def test_a_bounced_recipient_exits_69_and_json_names_it(smtp: SMTPServer) -> None:
    done = smtpproto(*deliver_args(smtp, "alice@demo.example", "nobody@demo.example"), "--json")
    assert done.returncode == 69, done.stderr
    recipients = json.loads(done.stdout)["recipients"]
    assert [(r["address"], r["status"], r["code"]) for r in recipients] == [
        ("alice@demo.example", "sent", 250),
        ("nobody@demo.example", "bounced", 550),
    ]
    assert set(recipients[1]) == {"address", "status", "dsn", "code", "text", "relay"}
    assert recipients[1]["dsn"] == "5.1.1"


def test_a_deferred_recipient_and_none_bounced_exits_75(lmtp: LMTPServer) -> None:
    args = ["deliver", "--lmtp", "--from", "a@client.demo", "--dest", lmtp.destination]
    done = smtpproto(*args, "--to", "ok@lmtp.demo", "--to", "later@lmtp.demo")
    assert done.returncode == 75, done.stderr
    assert "status=deferred" in done.stdout.splitlines()[1]


def test_message_file_argument_is_read(smtp: SMTPServer, tmp_path: Path) -> None:
    message = tmp_path / "message.eml"
    message.write_bytes(b"Subject: from a file\r\n\r\nbody\r\n")
    done = smtpproto(*deliver_args(smtp, "alice@demo.example"), str(message), stdin=b"")
    assert done.returncode == 0, done.stderr
    assert b"Subject: from a file" in smtp.handler.received[-1].data


def test_transcript_on_stderr_redacts_the_auth_secret(smtp: SMTPServer, tmp_path: Path) -> None:
    password_file = tmp_path / "password"
    password_file.write_text(DEMO_PASSWORD + "\n")
    args = deliver_args(smtp, "alice@demo.example")
    args += [
        "--tls",
        "encrypt",
        "--sasl-user",
        DEMO_USER,
        "--sasl-password-file",
        str(password_file),
    ]
    args += ["--transcript"]
    done = smtpproto(*args)
    assert done.returncode == 0, done.stderr
    assert "Out: AUTH PLAIN" in done.stderr and "In: 235" in done.stderr
    secret = base64.b64encode(f"\0{DEMO_USER}\0{DEMO_PASSWORD}".encode()).decode()
    assert secret not in done.stderr
    assert DEMO_PASSWORD not in done.stderr
    assert base64.b64encode(DEMO_PASSWORD.encode()).decode() not in done.stderr


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["deliver", "--to", "b@example.com"], id="missing --from"),
        pytest.param(["deliver", "--from", "a@x.example"], id="missing --to"),
        pytest.param(["deliver", "--from", "a@x", "--to", "b@y", "--tls", "maybe"], id="bad --tls"),
        pytest.param(["deliver", "--from", "a@x", "--to", "b@y", "--ret", "all"], id="bad --ret"),
        pytest.param(
            ["deliver", "--from", "a@x", "--to", "b@y", "--notify", "NEVER,DELAY"],
            id="bad --notify",
        ),
        pytest.param(
            ["deliver", "--from", "a@x", "--to", "b@y", "--sasl-user", "u"],
            id="user without password file",
        ),
        pytest.param(["frobnicate"], id="unknown command"),
        pytest.param([], id="no command"),
        pytest.param(["deliver", "--from", "a@x", "--to", "b@y", "-o", "no-equals"], id="-o x"),
    ],
)
def test_usage_errors_exit_64_with_one_line(args: list[str]) -> None:
    done = smtpproto(*args)
    assert done.returncode == 64
    one_clean_line(done.stderr)


@pytest.mark.parametrize(
    ("option", "address"),
    [("--from", "a@x.example\r\nRCPT TO:<evil@x>"), ("--to", "b@y.example\nDATA")],
)
def test_sm_address_with_cr_or_lf_exits_64_before_connecting(option: str, address: str) -> None:
    args = {"--from": "a@x.example", "--to": "b@y.example"}
    args[option] = address
    done = smtpproto(
        "deliver", "--from", args["--from"], "--to", args["--to"], "--dest", "[127.0.0.1]:9"
    )
    assert done.returncode == 64
    assert "CR" in one_clean_line(done.stderr)


@pytest.mark.parametrize("destination", ["[127.0.0.1", "[127.0.0.1]:notaport", "host:99999"])
def test_malformed_destination_exits_64(destination: str) -> None:
    done = smtpproto(
        "deliver", "--from", "a@x.example", "--to", "b@y.example", "--dest", destination
    )
    assert done.returncode == 64
    one_clean_line(done.stderr)


def test_unreadable_message_file_exits_66(tmp_path: Path) -> None:
    done = smtpproto("deliver", "--from", "a@x", "--to", "b@y", str(tmp_path / "missing.eml"))
    assert done.returncode == 66
    assert "missing.eml" in one_clean_line(done.stderr)


def test_unreadable_password_file_exits_66(tmp_path: Path) -> None:
    done = smtpproto(
        "deliver",
        "--from",
        "a@x",
        "--to",
        "b@y",
        "--sasl-user",
        "u",
        "--sasl-password-file",
        str(tmp_path / "nope"),
    )
    assert done.returncode == 66
    one_clean_line(done.stderr)


@pytest.mark.parametrize(
    "parameter", ["smtp_no_such_parameter=1", "smtp_helo_timeout=soon", "lmtp_tcp_port=0"]
)
def test_bad_o_parameter_exits_78(parameter: str) -> None:
    done = smtpproto(
        "deliver",
        "--from",
        "a@x.example",
        "--to",
        "b@y.example",
        "--dest",
        "[127.0.0.1]:9",
        "-o",
        parameter,
    )
    assert done.returncode == 78
    one_clean_line(done.stderr)


def test_demo_runs_every_adapter_and_exits_0() -> None:
    done = smtpproto("demo")
    assert done.returncode == 0, done.stdout + done.stderr
    for adapter in ("blocking", "asyncio", "trio"):
        assert f"SMTP through the {adapter} adapter" in done.stdout
        assert f"LMTP through the {adapter} adapter" in done.stdout
    assert "Traceback" not in done.stderr
