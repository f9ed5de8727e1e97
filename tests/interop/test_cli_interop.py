"""The `smtpproto` command against peers we did not write: Postfix smtpd and smtp-sink.

The command runs as a subprocess, as an admin would run it beside swaks.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from . import servers
from .servers import DOMAIN, PostfixServer

pytestmark = pytest.mark.interop

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_cli_memory.py"


def test_deliver_to_postfix_with_tls_and_auth_streams_a_redacted_transcript(
    postfix_server: PostfixServer, tmp_path: Path
) -> None:
    if not postfix_server.sasl:
        servers.unavailable("Postfix runs without Dovecot SASL: apt-get install dovecot-core")
    user, password = next(iter(postfix_server.sasl_users.items()))
    (tmp_path / "password").write_text(password + "\n")
    marker = f"cli-{uuid.uuid4().hex}"
    (tmp_path / "message.eml").write_text(f"Subject: {marker}\r\n\r\nhello\r\n")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "smtpproto",
            "deliver",
            "--from",
            f"sender@{DOMAIN}",
            "--to",
            f"carol@{DOMAIN}, {postfix_server.rejected_recipient}",
            "--dest",
            f"[{postfix_server.host}]:{postfix_server.port}",
            "--tls",
            "encrypt",
            "--sasl-user",
            user,
            "--sasl-password-file",
            str(tmp_path / "password"),
            "--timeout",
            "15",
            "-v",
            str(tmp_path / "message.eml"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 69, done.stdout + done.stderr  # one bounced, one sent
    sent, bounced = done.stdout.splitlines()
    assert sent.startswith(f"to=<carol@{DOMAIN}>") and "status=sent" in sent
    assert "status=bounced" in bounced and "dsn=5.7.1" in bounced
    stderr = done.stderr.splitlines()
    assert "Out: STARTTLS" in stderr
    assert any(line.startswith("* TLS with ") for line in stderr)
    assert any(line.startswith("Out: AUTH ") and "[redacted]" in line for line in stderr)
    assert password not in done.stderr
    postfix_server.wait_for_delivery(f"carol@{DOMAIN}", contains=marker.encode())


@pytest.mark.slow
def test_a_large_message_is_streamed_not_read_whole() -> None:
    # bench/bench_cli_memory.py measures the command's peak RSS for each message size, from a
    # file and from a pipe; the whole file in memory would add 64 MiB, streaming adds chunks.
    servers.require_binary("smtp-sink", "postfix")
    done = subprocess.run(
        [sys.executable, str(BENCH), "--sizes", "1,64", "--json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert {(row["input"], row["mib"]) for row in rows} == {
        (source, mib) for source in ("file", "stdin pipe") for mib in (1, 64)
    }
    assert all(row["growth_kib"] < 16 * 1024 for row in rows), rows
