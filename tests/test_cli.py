"""`smtpproto` as a black box: `.venv/bin/python -m smtpproto ...` in a subprocess.

Every documented exit status (`EXIT_STATUSES`, DESIGN.md "Command line") and every kind of bad
input, which must give one line on stderr and never a traceback; and the command as an admin
uses it beside swaks: a live transcript, --timeout, Ctrl-C, grouping by domain, a progress line
on a terminal, a reader that goes away.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import pty
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from smtpproto.adapters.cli import EXIT_STATUSES, main
from smtpproto.adapters.demo import DEMO_PASSWORD, DEMO_USER, DemoHandler, LMTPServer, SMTPServer

ROOT = Path(__file__).resolve().parent.parent
MESSAGE = b"Subject: cli test\r\n\r\nHello.\r\n"
COMMAND = [sys.executable, "-m", "smtpproto"]


def smtpproto(*args: str | bytes, stdin: bytes = MESSAGE) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *args],
        input=stdin.decode(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def without(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The command in a Python where `module` cannot be imported (an extra not installed)."""
    code = (
        f"import sys; sys.modules[{module!r}] = None; "
        "from smtpproto.adapters.cli import main; sys.exit(main())"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        input=MESSAGE.decode(),
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


def test_main_in_process_puts_the_logging_configuration_back(
    smtp: SMTPServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # main() turns the smtpproto logger's propagation off to own what is shown; a program
    # (or a test run) that calls it must find its logging as it was, or its own handlers and
    # pytest's capture attach to a logger that no longer propagates.
    logger = logging.getLogger("smtpproto")
    before = (logger.level, logger.propagate, list(logger.handlers))
    message = tmp_path / "message.eml"
    message.write_bytes(MESSAGE)
    status = main([*deliver_args(smtp, "alice@demo.example"), str(message)])
    assert status == 0, capsys.readouterr().err
    assert "status=sent" in capsys.readouterr().out
    assert (logger.level, logger.propagate, list(logger.handlers)) == before


def test_a_bounced_recipient_exits_69_and_json_names_it(smtp: SMTPServer) -> None:
    done = smtpproto(*deliver_args(smtp, "alice@demo.example", "nobody@demo.example"), "--json")
    assert done.returncode == 69, done.stderr
    recipients = json.loads(done.stdout)["recipients"]
    assert [(r["address"], r["status"], r["code"]) for r in recipients] == [
        ("alice@demo.example", "sent", 250),
        ("nobody@demo.example", "bounced", 550),
    ]
    assert set(recipients[1]) == {
        "address",
        "status",
        "dsn",
        "code",
        "text",
        "relay",
        "diagnostic",
        "delay",
    }
    assert recipients[1]["dsn"] == "5.1.1"
    assert recipients[1]["diagnostic"].endswith("(in reply to RCPT TO command)")
    assert recipients[1]["delay"] >= 0


def test_a_deferred_recipient_and_none_bounced_exits_75(lmtp: LMTPServer) -> None:
    args = ["deliver", "--lmtp", "--from", "a@client.demo", "--dest", lmtp.destination]
    done = smtpproto(*args, "--to", "ok@lmtp.demo", "--to", "later@lmtp.demo")
    assert done.returncode == 75, done.stderr
    assert "status=deferred" in done.stdout.splitlines()[1]


def test_message_from_standard_input_is_sent_whole(smtp: SMTPServer) -> None:
    message = b"Subject: from a pipe\r\n\r\n" + b"line\r\n" * 50_000
    done = smtpproto(*deliver_args(smtp, "alice@demo.example"), stdin=message)
    assert done.returncode == 0, done.stderr
    assert smtp.handler.received[-1].data == message


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
    # AU-20: the password goes only to a verified peer: the CA file, and the name it certifies.
    args[args.index("--dest") + 1] = smtp.named_destination
    args[args.index("--tls") + 1] = "verify"
    args += [
        "--tls-ca-file",
        smtp.ca_file,
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


def test_demo_runs_every_adapter_and_exits_0_without_a_warning() -> None:
    done = smtpproto("demo")
    assert done.returncode == 0, done.stdout + done.stderr
    for adapter in ("blocking", "asyncio", "trio"):
        assert f"SMTP through the {adapter} adapter" in done.stdout
        assert f"LMTP through the {adapter} adapter" in done.stdout
    # A short tour: what it starts, then what each step shows; nothing from a dependency.
    assert done.stdout.startswith("smtpproto demo: real deliveries to two servers")
    assert done.stdout.rstrip().endswith("docs/guide.md for the library.")
    assert done.stderr == ""


@pytest.mark.parametrize("module", ["trio", "trustme", "aiosmtpd"])
def test_demo_without_its_extra_names_it_in_one_line(module: str) -> None:
    # The demo imported trio only at its trio step: a missing trio was a traceback (exit 70)
    # after the blocking and asyncio steps had run.
    done = without(module, "demo")
    assert done.returncode == 78
    line = one_clean_line(done.stderr)
    assert line == f"smtpproto: demo: {module} is missing: pip install 'smtpproto-client[demo]'"
    assert done.stdout == ""


# -- the command as an admin expects it ------------------------------------------------------


def test_version_names_the_distribution() -> None:
    for args in (["--version"], ["deliver", "--version"]):
        done = smtpproto(*args)
        assert done.returncode == 0
        assert re.fullmatch(r"smtpproto \S+ \(distribution smtpproto-client\)\n", done.stdout)


def test_help_and_the_guide_show_every_exit_status() -> None:
    done = smtpproto("deliver", "--help")
    assert done.returncode == 0
    help_rows = re.findall(r"^ +(\d+)  (.+)$", done.stdout.partition("exit status:")[2], re.M)
    assert help_rows == [(str(status), meaning) for status, meaning in EXIT_STATUSES]
    guide = (ROOT / "docs" / "guide.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| (\d+) \| (.+) \|$", guide, re.M)
    assert [(int(status), meaning) for status, meaning in rows] == list(EXIT_STATUSES)


def test_comma_and_space_separated_recipients_make_one_transaction(smtp: SMTPServer) -> None:
    args = [*deliver_args(smtp), "--to", "alice@demo.example, bob@demo.example carol@demo.example"]
    done = smtpproto(*args)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 3
    assert smtp.handler.received[-1].recipients == [
        "alice@demo.example",
        "bob@demo.example",
        "carol@demo.example",
    ]


def _port_free_on(*hosts: str) -> int:
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind((hosts[0], 0))
            port = int(probe.getsockname()[1])
        try:
            for host in hosts[1:]:
                with socket.socket() as other:
                    other.bind((host, port))
        except OSError:
            continue
        return port
    raise RuntimeError(f"no port free on all of {hosts}")


def test_without_dest_each_domain_gets_one_delivery_and_one_report() -> None:
    # Domain literals stand for two domains (127.0.0.2 is loopback too); smtp_tcp_port is
    # the port an MX would have had.
    port = _port_free_on("127.0.0.1", "127.0.0.2")
    with (
        SMTPServer(host="127.0.0.1", port=port) as one,
        SMTPServer(host="127.0.0.2", port=port) as two,
    ):
        done = smtpproto(
            "deliver",
            "--from",
            "a@client.demo",
            "--to",
            "a@[127.0.0.1], b@[127.0.0.2], c@[127.0.0.1]",
            "--tls",
            "none",
            "-o",
            f"smtp_tcp_port={port}",
        )
        assert done.returncode == 0, done.stderr
        assert [m.recipients for m in one.handler.received] == [["a@[127.0.0.1]", "c@[127.0.0.1]"]]
        assert [m.recipients for m in two.handler.received] == [["b@[127.0.0.2]"]]
    lines = done.stdout.splitlines()
    assert [line.split(",")[0] for line in lines] == [
        "to=<a@[127.0.0.1]>",
        "to=<b@[127.0.0.2]>",
        "to=<c@[127.0.0.1]>",
    ]
    assert f"relay=127.0.0.2[127.0.0.2]:{port}" in lines[1]


def test_without_dest_a_recipient_without_domain_exits_64() -> None:
    done = smtpproto("deliver", "--from", "a@x.example", "--to", "postmaster")
    assert done.returncode == 64
    assert "give --dest" in one_clean_line(done.stderr)


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A listening socket nobody answers on: connections wait in its backlog."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        sock.setblocking(False)
        yield sock


def nobody_connected(sock: socket.socket) -> bool:
    try:
        sock.accept()[0].close()
    except BlockingIOError:
        return True
    return False


def test_non_utf8_address_exits_64_before_anything_is_sent(listener: socket.socket) -> None:
    destination = f"[127.0.0.1]:{listener.getsockname()[1]}"
    done = smtpproto(
        "deliver", "--from", "a@x.example", "--to", b"b\xff@y.example", "--dest", destination
    )
    assert done.returncode == 64
    assert "not valid UTF-8" in one_clean_line(done.stderr)
    assert nobody_connected(listener)


def test_latin1_password_file_exits_78_naming_the_file(tmp_path: Path) -> None:
    password = tmp_path / "password"
    password.write_bytes("s\xe9same\n".encode("latin-1"))
    args = ["deliver", "--from", "a@x", "--to", "b@y", "--dest", "[127.0.0.1]:9"]
    done = smtpproto(*args, "--sasl-user", "u", "--sasl-password-file", str(password))
    assert done.returncode == 78
    assert "not valid UTF-8" in one_clean_line(done.stderr)


def test_unreadable_ca_file_exits_78_with_the_cause(tmp_path: Path) -> None:
    missing = tmp_path / "ca.pem"
    args = ["deliver", "--from", "a@x", "--to", "b@y", "--dest", "[127.0.0.1]:9", "--tls", "verify"]
    done = smtpproto(*args, "--tls-ca-file", str(missing))
    assert done.returncode == 78
    assert one_clean_line(done.stderr) == (
        f"smtpproto: --tls-ca-file {missing}: No such file or directory"
    )
    missing.write_text("not a certificate\n")
    done = smtpproto(*args, "--tls-ca-file", str(missing))
    assert done.returncode == 78
    assert "TLS configuration" in one_clean_line(done.stderr)


def test_ns14_certificate_name_mismatch_names_expected_and_presented(smtp: SMTPServer) -> None:
    # The demo certificate is for localhost; [127.0.0.1] is verified against "127.0.0.1".
    args = deliver_args(smtp, "alice@demo.example")
    args[args.index("--tls") + 1] = "verify"
    done = smtpproto(*args, "--tls-ca-file", smtp.ca_file)
    assert done.returncode == 75, done.stderr
    assert "Server certificate not verified (expected 127.0.0.1; presented localhost)" in (
        done.stdout
    )


def test_mx_lookup_without_the_dns_extra_exits_78_naming_it() -> None:
    done = without("dns", "deliver", "--from", "a@x.example", "--to", "b@example.com")
    assert done.returncode == 78
    assert "smtpproto-client[dns]" in one_clean_line(done.stderr)


def test_non_ascii_domain_without_the_idna_extra_exits_78_naming_it() -> None:
    for extra in ([], ["--dest", "[faß.de]:25"]):
        done = without("idna", "deliver", "--from", "a@x.example", "--to", "b@faß.de", *extra)
        assert done.returncode == 78
        assert "smtpproto-client[idna]" in one_clean_line(done.stderr)


def test_a_reader_that_goes_away_is_no_error(smtp: SMTPServer) -> None:
    # `smtpproto deliver ... | true`: the mail was delivered; the status says so, quietly.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [*COMMAND, *deliver_args(smtp, "alice@demo.example")],
            input=MESSAGE,
            stdout=write_end,
            stderr=subprocess.PIPE,
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (0, b"")
    assert smtp.handler.received[-1].recipients == ["alice@demo.example"]


def test_timeout_sets_every_phase_and_an_o_for_one_phase_wins(listener: socket.socket) -> None:
    destination = f"[127.0.0.1]:{listener.getsockname()[1]}"
    args = ["deliver", "--from", "a@x.example", "--to", "b@y.example", "--dest", destination]
    done = smtpproto(*args, "--timeout", "1", "-v")
    assert done.returncode == 75
    assert "timed out while receiving the initial server greeting" in done.stdout
    assert "timed out after 1.0s" in done.stderr
    done = smtpproto(*args, "--timeout", "1", "-o", "smtp_helo_timeout=2s", "-v")
    assert "timed out after 2.0s" in done.stderr


class HoldingHandler(DemoHandler):
    """Holds its reply to the end of data until `release` is set (30 s at most)."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived = threading.Event()
        self.release = threading.Event()
        self.replied = threading.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """Wait for `release`, then keep the message."""
        self.arrived.set()
        await asyncio.get_running_loop().run_in_executor(None, self.release.wait, 30)
        self.replied.set()
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def holding() -> Iterator[SMTPServer]:
    handler = HoldingHandler()
    with SMTPServer(handler) as server:
        try:
            yield server
        finally:
            handler.release.set()


def start(args: Sequence[str], **kwargs: Any) -> subprocess.Popen[str]:
    """The command in the background, the message on standard input (a spooled pipe)."""
    read_end, write_end = os.pipe()
    os.write(write_end, MESSAGE)
    os.close(write_end)
    try:
        return subprocess.Popen([*COMMAND, *args], stdin=read_end, text=True, **kwargs)
    finally:
        os.close(read_end)


def test_transcript_streams_live_on_stderr(holding: SMTPServer) -> None:
    handler: HoldingHandler = holding.handler  # type: ignore[assignment]
    args = [*deliver_args(holding, "alice@demo.example"), "-v"]
    process = start(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stderr is not None
    seen = []
    for line in process.stderr:
        seen.append(line.rstrip("\n"))
        if seen[-1] == "Out: .":
            break
    # The dot is on stderr while the server still holds its reply: nothing waited for the end.
    dot_before_reply = seen[-1:] == ["Out: ."] and not handler.replied.is_set()
    handler.release.set()
    out, err = process.communicate(timeout=60)
    assert dot_before_reply, seen
    assert process.returncode == 0, err
    assert "In: 250 2.0.0 Ok: queued" in err and "status=sent" in out
    assert "* connected to 127.0.0.1[127.0.0.1]:" in "\n".join(seen)
    assert "status=sent" not in err  # results go to stdout only


def test_ctrl_c_prints_the_dialogue_so_far_and_exits_130(holding: SMTPServer) -> None:
    handler: HoldingHandler = holding.handler  # type: ignore[assignment]
    process = start(
        deliver_args(holding, "alice@demo.example"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert handler.arrived.wait(30), "the message never reached the server"
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
        handler.release.set()
    assert process.returncode == 130
    assert "Traceback" not in err
    lines = err.splitlines()
    assert lines[:2] == ["smtpproto: interrupted", "smtpproto: the dialogue so far:"]
    assert any(line.startswith("Out: MAIL FROM:<a@client.demo>") for line in lines)
    assert "Out: ." in lines and not any(line.startswith("In: 250 2.0.0") for line in lines)
    assert out == ""


def screen(raw: bytes) -> list[str]:
    """The lines a terminal shows for `raw`: CR returns, ESC[K clears to the end of line."""
    lines: list[str] = []
    line: list[str] = []
    column = 0
    text = raw.decode("utf-8", "replace")
    i = 0
    while i < len(text):
        if text.startswith("\x1b[K", i):
            del line[column:]
            i += 3
            continue
        char = text[i]
        i += 1
        if char == "\r":
            column = 0
        elif char == "\n":
            lines.append("".join(line))
            line, column = [], 0
        else:
            line[column : column + 1] = [char]
            column += 1
    return [*lines, "".join(line)] if line else lines


def test_screen_emulation() -> None:
    assert screen(b"abc\r\x1b[Kxy\r\nz") == ["xy", "z"]
    assert screen(b"progress 50%\rIn: 250\r\n") == ["In: 250s 50%"]


def test_progress_line_never_shares_a_line_with_other_output(holding: SMTPServer) -> None:
    handler: HoldingHandler = holding.handler  # type: ignore[assignment]
    primary, secondary = pty.openpty()
    process = start(
        [*deliver_args(holding, "alice@demo.example"), "-v"], stdout=secondary, stderr=secondary
    )
    os.close(secondary)
    raw = bytearray()
    progress = threading.Event()

    def read() -> None:
        while True:
            try:
                data = os.read(primary, 4096)
            except OSError:  # EIO: the command closed the terminal
                return
            if not data:
                return
            raw.extend(data)
            if b"smtpproto: sending the message" in raw:
                progress.set()

    reader = threading.Thread(target=read)
    reader.start()
    try:
        # The server answers the dot only once the progress line is on the terminal, so the
        # reply's transcript line and the result line both arrive while it is shown.
        shown = progress.wait(30)
        handler.release.set()
        process.wait(60)
    finally:
        process.kill()
        reader.join(30)
        os.close(primary)
    assert shown, bytes(raw)
    assert process.returncode == 0
    lines = screen(bytes(raw))
    assert not [line for line in lines if "smtpproto: " in line], lines
    assert "In: 250 2.0.0 Ok: queued" in lines
    assert lines[-1].startswith("to=<alice@demo.example>, relay=")
