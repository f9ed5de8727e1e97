"""A private Exim 4 on loopback: the second real MTA of the interop tests.

Debian's exim4 packages conflict with postfix, which the other interop tests need, so CI does
not install Exim: ``.ci/get-exim`` unpacks the daemon's .deb into ``.ci/cache/exim4`` (git
ignores it) and this module runs that binary with a private configuration
(``data/exim.conf``): its own spool, logs and maildirs in a temporary directory, a free
loopback port, PIPELINING, CHUNKING, 8BITMIME, SIZE and DSN offered to every client.
``SMTPPROTO_EXIM`` names another binary (a system Exim on a machine without Postfix).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .servers import (
    DATA_DIR,
    DELIVERY_TIMEOUT,
    DOMAIN,
    HOST,
    SBIN_PATH,
    fail_with_logs,
    free_port,
    launch,
    mailbox_dir,
    maildir_messages,
    make_base,
    require_root,
    running,
    smtp_ready,
    unavailable,
)

REPO = Path(__file__).resolve().parents[2]
# Where .ci/get-exim unpacks exim4-daemon-light.
EXIM_CACHE = REPO / ".ci" / "cache" / "exim4"
# Debian's binary is built for this user and looks it up before reading any configuration.
EXIM_USER = "Debian-exim"

EXIM_MAILBOXES: tuple[str, ...] = ("alice", "bob", "carol", "dave", "erin", "sender", "postmaster")
# Fixed answers of data/exim.conf's RCPT ACL; any other non-mailbox in example.test gets
# Exim's own "550 Unrouteable address" from verify = recipient.
EXIM_UNKNOWN_RCPT = f"nosuchuser@{DOMAIN}"
EXIM_REJECTED_RCPT = f"rejected@{DOMAIN}"
EXIM_DEFERRED_RCPT = f"tempfail@{DOMAIN}"
# The one login data/exim.conf's PLAIN authenticator accepts (user, password).
EXIM_LOGIN = ("interop", "interop-secret")
# A message with this header is refused after its content (the DATA ACL): 550 5.7.0.
EXIM_REJECT_HEADER = "X-Exim-Reject"

# The Exim message id in the reply to the end of data: "250 OK id=1xYdZF-0005Lp-1l".
EXIM_ID = re.compile(r"\bid=([0-9A-Za-z]+-[0-9A-Za-z]+-[0-9A-Za-z]+)")


def exim_binary() -> str:
    """The Exim binary to run, or skip/fail saying how to get one."""
    named = os.environ.get("SMTPPROTO_EXIM")
    if named:
        if not os.access(named, os.X_OK):
            unavailable(f"SMTPPROTO_EXIM={named} is not an executable")
        return named
    cached = EXIM_CACHE / "usr" / "sbin" / "exim4"
    if os.access(cached, os.X_OK):
        return str(cached)
    found = shutil.which("exim4", path=SBIN_PATH) or shutil.which("exim", path=SBIN_PATH)
    if found is None:
        unavailable(
            "Exim 4 not found: run .ci/get-exim as root (it unpacks exim4-daemon-light into "
            f"{EXIM_CACHE}; the package itself conflicts with postfix)"
        )
    return found


@dataclass(frozen=True)
class EximServer:
    """A private Exim daemon: SMTP on a loopback port, appendfile delivery into maildirs."""

    host: str
    port: int
    base: Path
    # Exim's main log (log_file_path); the daemon's stderr goes to exim.out beside it.
    log: Path
    mailboxes: tuple[str, ...]

    @property
    def destination(self) -> str:
        """The listener as a next hop without DNS."""
        return f"[{self.host}]:{self.port}"

    def messages(self, address: str) -> list[bytes]:
        """Every message stored for address so far, oldest first."""
        return maildir_messages(mailbox_dir(self.base / "mail", address))

    def log_text(self, since: int = 0) -> str:
        """The main log from byte offset `since` (a log_offset()) on."""
        with self.log.open("rb") as log:
            log.seek(since)
            return log.read().decode("utf-8", "replace")

    def log_offset(self) -> int:
        """The current end of the main log: a test reads only what it caused after it."""
        return self.log.stat().st_size

    def wait_completed(self, exim_id: str, *, timeout: float = DELIVERY_TIMEOUT) -> list[str]:
        """Wait until Exim logged `exim_id` Completed; return that message's log lines.

        Exim delivers in a process it forks after the end-of-data reply, so a test must wait
        for this before it counts what landed in the maildirs.
        """
        deadline = time.monotonic() + timeout
        while True:
            lines = [line for line in self.log_text().splitlines() if f" {exim_id} " in line]
            if any(line.endswith(f" {exim_id} Completed") for line in lines):
                return lines
            if time.monotonic() >= deadline:
                fail_with_logs(f"Exim did not complete {exim_id} in {timeout:.0f} s", [self.log])
            time.sleep(0.02)


def exim_id(diagnostic: str) -> str:
    """The Exim message id in an end-of-data reply text."""
    match = EXIM_ID.search(diagnostic)
    if match is None:
        raise AssertionError(f"no Exim message id in {diagnostic!r}")
    return match.group(1)


def exim_config(binary: str, base: Path, port: int) -> str:
    """data/exim.conf with the instance's macros in front."""
    macros = (
        f"EXIM_PATH = {binary}\n"
        f"BASE = {base}\n"
        f"PORT = {port}\n"
        f"MAILBOXES = {' : '.join(EXIM_MAILBOXES)}\n"
    )
    return macros + (DATA_DIR / "exim.conf").read_text()


@contextlib.contextmanager
def run_exim() -> Iterator[EximServer]:
    """Run a private Exim daemon (foreground, no queue runner) while the context lasts."""
    binary = exim_binary()
    # As root Exim binds, then receives and delivers as EXIM_USER (deliver_drop_privilege).
    require_root("exim")
    try:
        user = pwd.getpwnam(EXIM_USER)
    except KeyError:
        unavailable(f"user {EXIM_USER} missing: run .ci/get-exim as root (it creates it)")
    base = make_base("exim")
    for sub in ("spool", "log", "mail"):
        (base / sub).mkdir()
        os.chown(base / sub, user.pw_uid, user.pw_gid)
    port = free_port()
    conf = base / "exim.conf"
    conf.write_text(exim_config(binary, base, port))
    log = base / "log" / "mainlog"
    # -bdf: the daemon stays in the foreground, in the session launch() gives it, so stopping
    # the session's process group also ends the delivery processes it forked.
    process = launch("exim", [binary, "-C", str(conf), "-bdf"], base / "exim.out")
    process.logs.append(log)
    server = EximServer(HOST, port, base, log, EXIM_MAILBOXES)
    with running(process, smtp_ready(HOST, port), base):
        yield server
