"""Real mail and DNS servers on loopback for the interop tests.

Each server runs as a private instance in its own temporary directory: its own configuration,
state, logs and maildirs, a free loopback port, nothing read from /etc and nothing relayed off
the machine. Start-up waits are bounded and print the server's log when they fail; stopping
kills every process the server started.
"""

from __future__ import annotations

import contextlib
import email
import email.message
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import string
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from support.model import Faults
from support.sockets import LoopbackServer, free_port

DATA_DIR = Path(__file__).parent / "data"
HOST = "127.0.0.1"
# Bounded waits: a server that is not up in this time is broken, not slow.
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
DELIVERY_TIMEOUT = 15.0
LOG_TAIL_LINES = 200
# Extra binary directories: /usr/sbin is not on a non-root PATH.
SBIN_PATH = os.pathsep.join(("/usr/sbin", "/sbin", "/usr/bin", "/usr/lib/postfix/sbin"))

# Server name -> seconds from launch to accepting connections; conftest prints it at the end.
START_TIMES: dict[str, float] = {}

DOMAIN = "example.test"
# Mailboxes of the private Postfix: named users plus rcpt0..rcpt199 for the
# destination_recipient_limit tests; any other address in example.test gets 550 5.1.1.
POSTFIX_MAILBOXES: tuple[str, ...] = (
    "alice",
    "bob",
    "carol",
    "dave",
    "sender",
    "postmaster",
    *(f"rcpt{n}" for n in range(200)),
)
# The Mailer's domains: each has its own MX, a listener of the private Postfix on one port
# ($port_mailer) at its own loopback address, logging as its own syslog_name, accepting at
# most MAILER_CONNECTION_LIMIT connections at once from one client (anvil(8)).
MAILER_DOMAINS: dict[str, tuple[str, str]] = {
    f"d{n}.{DOMAIN}": (f"127.0.0.{n}", f"postfix-mx{n}") for n in (1, 2, 3)
}
MAILER_MAILBOXES: tuple[str, ...] = tuple(f"m{n}" for n in range(20))
MAILER_CONNECTION_LIMIT = 3
# Fixed answers from recipient_access (data/postfix-recipient_access).
POSTFIX_REJECTED_RCPT = f"rejected@{DOMAIN}"
POSTFIX_DEFERRED_RCPT = f"tempfail@{DOMAIN}"
POSTFIX_MESSAGE_SIZE_LIMIT = 1_000_000

# Users of the private Dovecot (data/dovecot-users): address -> password.
DOVECOT_USERS: dict[str, str] = {
    f"alice@{DOMAIN}": "alice-secret",
    f"bob@{DOMAIN}": "bob-secret",
    f"carol@{DOMAIN}": "carol-secret",
    f"full@{DOMAIN}": "full-secret",
}
# This user's quota is 1 byte: every delivery to it gets 552 5.2.2 after DATA.
DOVECOT_OVER_QUOTA_USER = f"full@{DOMAIN}"

# Users the aiosmtpd AUTH handler accepts.
AIOSMTPD_USERS: dict[str, str] = {"alice": "alice-secret"}


@dataclass(frozen=True)
class MX:
    """One MX record of the test zone."""

    domain: str
    preference: int
    exchange: str


@dataclass(frozen=True)
class Host:
    """Address records of one host name in the test zone."""

    name: str
    addresses: tuple[str, ...]


# The DNS test zone served by dnsmasq. Live exchanges resolve to 127.0.0.1/::1 where the
# servers of these fixtures listen; 127.0.0.254 is a loopback address nothing listens on.
ZONE = "interop.test"
DEAD_ADDRESS = "127.0.0.254"
ZONE_MX: tuple[MX, ...] = (
    MX(f"mx.{ZONE}", 10, f"mx1.{ZONE}"),
    MX(f"mx.{ZONE}", 20, f"mx2.{ZONE}"),
    MX(f"mx.{ZONE}", 30, f"mx3.{ZONE}"),
    MX(f"deadfirst.{ZONE}", 10, f"dead.{ZONE}"),
    MX(f"deadfirst.{ZONE}", 20, f"live.{ZONE}"),
    MX(f"equal.{ZONE}", 10, f"mx1.{ZONE}"),
    MX(f"equal.{ZONE}", 10, f"mx2.{ZONE}"),
    # RFC 7505 null MX: the domain accepts no mail.
    MX(f"nullmx.{ZONE}", 0, "."),
    # The exchange is a CNAME (ZONE_CNAMES) of live.
    MX(f"cname.{ZONE}", 10, f"alias.{ZONE}"),
)
ZONE_HOSTS: tuple[Host, ...] = (
    Host(f"mx1.{ZONE}", ("127.0.0.1", "::1")),
    Host(f"mx2.{ZONE}", ("127.0.0.2",)),
    Host(f"mx3.{ZONE}", ("127.0.0.3",)),
    Host(f"dead.{ZONE}", (DEAD_ADDRESS,)),
    Host(f"live.{ZONE}", ("127.0.0.1",)),
    # A domain without MX: RFC 5321 section 5.1 implicit MX, its own A/AAAA.
    Host(f"nomx.{ZONE}", ("127.0.0.1", "::1")),
    Host(f"v6only.{ZONE}", ("::1",)),
)
ZONE_CNAMES: dict[str, str] = {f"alias.{ZONE}": f"live.{ZONE}"}
"""CNAME records of the test zone: alias -> the name it stands for."""


def in_ci() -> bool:
    """Whether this run is CI, where a server that cannot run fails instead of skipping."""
    return bool(os.environ.get("CI"))


def unavailable(reason: str) -> NoReturn:
    """Skip (outside CI) or fail (in CI, where a missing server is a failure) because a
    server cannot run here."""
    if in_ci():
        pytest.fail(f"interop server unavailable in CI: {reason}", pytrace=False)
    pytest.skip(reason)


def require_binary(name: str, apt_package: str) -> str:
    """Return the path of a server binary, or skip/fail saying which package installs it."""
    found = shutil.which(name, path=SBIN_PATH + os.pathsep + os.environ.get("PATH", ""))
    if found is None:
        unavailable(f"{name} not found: apt-get install {apt_package}")
    return found


def require_root(what: str) -> None:
    """Skip/fail unless running as root: Postfix and Dovecot switch to their system users."""
    if os.geteuid() != 0:
        unavailable(f"{what} needs root (it switches to its own system users); run as root")


def log_tail(paths: Sequence[Path]) -> str:
    """Return the last lines of each existing log, headed by its path."""
    parts = []
    for path in paths:
        try:
            lines = path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
        except OSError as exc:
            parts.append(f"--- {path}: unreadable ({exc})")
            continue
        parts.append(f"--- {path} (last {len(lines)} lines)\n" + "\n".join(lines))
    return "\n".join(parts)


def fail_with_logs(message: str, logs: Sequence[Path]) -> NoReturn:
    """Fail the test with message and the tails of the server logs."""
    pytest.fail(f"{message}\n{log_tail(logs)}", pytrace=False)


def make_base(prefix: str) -> Path:
    """Create a temporary directory the servers' unprivileged users can traverse."""
    # pytest's tmp_path is 0700 under a 0700 parent; the postfix, dovecot and nobody users
    # must reach sockets, maps and maildirs, so use a 0755 directory directly in the tmpdir.
    base = Path(tempfile.mkdtemp(prefix=f"smtpproto-{prefix}-"))
    base.chmod(0o755)
    return base


def render(template: str, destination: Path, **values: object) -> None:
    """Fill a config template from data/ (string.Template) and write it to destination."""
    text = string.Template((DATA_DIR / template).read_text()).substitute(values)
    destination.write_text(text)


def read_greeting(host: str, port: int, timeout: float) -> bytes:
    """Connect and return the first reply line (the greeting)."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        return data


def wait_until(
    ready: Callable[[], bool],
    *,
    what: str,
    logs: Sequence[Path],
    timeout: float = START_TIMEOUT,
    alive: Callable[[], bool] = lambda: True,
) -> None:
    """Poll ready() until it is true; fail with the logs on timeout or if the server died."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError):
            if ready():
                return
        if not alive():
            fail_with_logs(f"{what}: the server process exited during start-up", logs)
        if time.monotonic() >= deadline:
            fail_with_logs(f"{what}: not ready within {timeout:.0f} s", logs)
        time.sleep(0.05)


def smtp_ready(host: str, port: int) -> Callable[[], bool]:
    """Return a probe that is true once host:port greets with a 220 reply."""
    return lambda: read_greeting(host, port, 2.0).startswith(b"220")


def tcp_ready(host: str, port: int) -> Callable[[], bool]:
    """Return a probe that is true once host:port accepts a TCP connection."""

    def probe() -> bool:
        with socket.create_connection((host, port), timeout=2.0):
            return True

    return probe


def pid_alive(pid: int) -> bool:
    """Whether a process with this id still exists (and is not a zombie of ours)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        status = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return status != "Z"
    return True


def wait_pid_gone(pid: int, timeout: float) -> bool:
    """Wait up to timeout for pid to exit; return whether it did."""
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


@dataclass
class Process:
    """A server process launched in its own session, with its log files."""

    name: str
    popen: subprocess.Popen[bytes]
    logs: list[Path]
    stop_command: list[str] | None = None
    # Pids the server forked into sessions of their own (Postfix's master calls setsid()).
    extra_pid_files: list[Path] = field(default_factory=list)

    def alive(self) -> bool:
        """Whether the launched process is still running (an exited one is left unreaped)."""
        return not self.wait_exited_unreaped(0.0)

    def stop(self) -> None:
        """Stop the server and every process it started, bounded in time."""
        extra = [pid for pid in map(read_pid, self.extra_pid_files) if pid is not None]
        if self.stop_command is not None and self.alive():
            with contextlib.suppress(subprocess.TimeoutExpired, OSError):
                subprocess.run(
                    self.stop_command,
                    timeout=STOP_TIMEOUT,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    check=False,
                )
        elif self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
        exited = self.wait_exited_unreaped(STOP_TIMEOUT)
        # Until the leader is reaped its pid (our process group id) cannot be reused, so this
        # reaches only processes of our own group: the leader if it hung, and any children
        # that outlived it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        if not exited:
            self.wait_exited_unreaped(STOP_TIMEOUT)
        self.popen.wait(STOP_TIMEOUT)
        for pid in extra:
            if not wait_pid_gone(pid, STOP_TIMEOUT):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                wait_pid_gone(pid, STOP_TIMEOUT)

    def wait_exited_unreaped(self, timeout: float) -> bool:
        """Wait up to timeout for the leader to exit, leaving it a zombie; return whether it did."""
        # WNOWAIT: the zombie keeps our process group id from being reused until stop() reaps.
        deadline = time.monotonic() + timeout
        while True:
            try:
                if os.waitid(os.P_PID, self.popen.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT):
                    return True
            except ChildProcessError:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)


def read_pid(path: Path) -> int | None:
    """Return the pid in a pid file, or None when there is none."""
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def launch(name: str, argv: Sequence[str], log: Path, **kwargs: Any) -> Process:
    """Start argv in a new session with stdout and stderr going to log."""
    with log.open("ab") as out:
        popen = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Process(name, popen, [log], **kwargs)


@contextlib.contextmanager
def running(process: Process, ready: Callable[[], bool], base: Path | None) -> Iterator[None]:
    """Wait for process to be ready, record its start time, then stop it and clean up."""
    started = time.monotonic()
    try:
        wait_until(ready, what=process.name, logs=process.logs, alive=process.alive)
        START_TIMES[process.name] = time.monotonic() - started
        yield
    finally:
        process.stop()
        if base is not None:
            shutil.rmtree(base, ignore_errors=True)


# --- TLS ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TLSMaterial:
    """A trustme CA and one server certificate for localhost, 127.0.0.1, ::1, the test names."""

    ca: Any
    cert: Any
    ca_pem: Path
    cert_pem: Path
    key_pem: Path

    def client_context(self) -> ssl.SSLContext:
        """An SSL context that trusts only the test CA (for STARTTLS at `verify`)."""
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        self.ca.configure_trust(ctx)
        return ctx

    def server_context(self) -> ssl.SSLContext:
        """An SSL context serving the test certificate (for aiosmtpd)."""
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.cert.configure_cert(ctx)
        return ctx


def make_tls(directory: Path) -> TLSMaterial:
    """Issue the test CA and server certificate into directory."""
    ca = trustme.CA(organization_name="smtpproto interop CA")
    cert = ca.issue_cert("localhost", "127.0.0.1", "::1", f"mail.{DOMAIN}", f"*.{ZONE}")
    ca_pem, cert_pem, key_pem = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    ca.cert_pem.write_to_path(str(ca_pem))
    cert.cert_chain_pems[0].write_to_path(str(cert_pem))
    for extra in cert.cert_chain_pems[1:]:
        extra.write_to_path(str(cert_pem), append=True)
    cert.private_key_pem.write_to_path(str(key_pem))
    return TLSMaterial(ca, cert, ca_pem, cert_pem, key_pem)


# --- maildir reading ------------------------------------------------------------------------


def maildir_messages(maildir: Path) -> list[bytes]:
    """Return the messages in maildir's new/ and cur/, oldest first."""
    files = [
        p for sub in ("new", "cur") if (maildir / sub).is_dir() for p in (maildir / sub).iterdir()
    ]
    files.sort(key=lambda p: (p.stat().st_mtime_ns, p.name))
    return [p.read_bytes() for p in files]


def wait_for_maildir(
    maildir: Path,
    *,
    count: int = 1,
    contains: bytes | None = None,
    timeout: float = DELIVERY_TIMEOUT,
    logs: Sequence[Path] = (),
) -> list[bytes]:
    """Wait until maildir holds count messages (containing `contains`); return them all."""
    deadline = time.monotonic() + timeout
    while True:
        found = [m for m in maildir_messages(maildir) if contains is None or contains in m]
        if len(found) >= count:
            return found
        if time.monotonic() >= deadline:
            fail_with_logs(
                f"{maildir}: {len(found)} of {count} expected message(s) delivered "
                f"within {timeout:.0f} s",
                logs,
            )
        time.sleep(0.05)


def mailbox_dir(root: Path, address: str) -> Path:
    """The maildir of address under root (root/domain/localpart, as both servers lay it out)."""
    local, _, domain = address.rpartition("@")
    if not local or not domain or "/" in address:
        raise ValueError(f"address: not a plain test address: {address!r}")
    return root / domain / local


# --- Dovecot --------------------------------------------------------------------------------


@dataclass(frozen=True)
class DovecotServer:
    """A private Dovecot: LMTP on a loopback port and a unix socket, and a SASL auth socket."""

    host: str
    lmtp_port: int
    lmtp_socket: Path
    auth_socket: Path
    base: Path
    users: dict[str, str]
    over_quota_user: str
    log: Path

    def wait_for_delivery(
        self,
        address: str,
        *,
        count: int = 1,
        contains: bytes | None = None,
        timeout: float = DELIVERY_TIMEOUT,
    ) -> list[bytes]:
        """Return the messages Dovecot stored for address once there are count of them."""
        return wait_for_maildir(
            mailbox_dir(self.base / "mail", address),
            count=count,
            contains=contains,
            timeout=timeout,
            logs=[self.log],
        )


def dovecot_available() -> bool:
    """Whether a private Dovecot can run here (binary and root), without skipping."""
    return os.geteuid() == 0 and shutil.which("dovecot", path=SBIN_PATH) is not None


@contextlib.contextmanager
def run_dovecot() -> Iterator[DovecotServer]:
    """Run a private Dovecot (protocols = lmtp) for as long as the context lasts."""
    binary = require_binary("dovecot", "dovecot-core dovecot-lmtpd")
    if not Path("/usr/lib/dovecot/lmtp").exists():
        unavailable("Dovecot LMTP not installed: apt-get install dovecot-lmtpd")
    require_root("dovecot")
    base = make_base("dovecot")
    mail_user = pwd.getpwnam("dovecot")
    for sub in ("run", "state"):
        (base / sub).mkdir()
    (base / "mail").mkdir()
    os.chown(base / "mail", mail_user.pw_uid, mail_user.pw_gid)
    port = free_port()
    conf = base / "dovecot.conf"
    render("dovecot.conf", conf, base=base, port=port, uid=mail_user.pw_uid, gid=mail_user.pw_gid)
    render("dovecot-users", base / "users")
    log = base / "dovecot.log"
    log.touch()
    process = launch(
        "dovecot",
        [binary, "-c", str(conf), "-F"],
        base / "dovecot.out",
        extra_pid_files=[base / "run" / "master.pid"],
    )
    process.logs.append(log)
    server = DovecotServer(
        host=HOST,
        lmtp_port=port,
        lmtp_socket=base / "run" / "lmtp",
        auth_socket=base / "run" / "auth-postfix",
        base=base,
        users=dict(DOVECOT_USERS),
        over_quota_user=DOVECOT_OVER_QUOTA_USER,
        log=log,
    )

    def ready() -> bool:
        return server.auth_socket.exists() and smtp_ready(HOST, port)()

    with running(process, ready, base):
        yield server


# --- Postfix --------------------------------------------------------------------------------


# What smtpd(8) logs of a session: "connect from H[A]" when it starts, "QUEUEID: client=H[A]"
# for each message it queues, "disconnect from H[A] ehlo=1 mail=2 rcpt=3/4 ..." when it ends.
# The line starts with the listener's syslog_name: "postfix" but for the Mailer's MX hosts.
SMTPD_LINE = re.compile(r"(postfix[-\w]*)/smtpd\[(\d+)\]: (.*)")
SMTPD_QUEUED = re.compile(r"(\w+): client=")
SMTPD_COUNT = re.compile(r" (\w+)=([\d/]+)")


@dataclass(frozen=True)
class SmtpdSession:
    """One finished smtpd(8) session as its log tells it."""

    pid: int
    counts: dict[str, str]
    """Command -> count from the disconnect line ("accepted/total" when some were refused)."""
    queue_ids: tuple[str, ...]
    """The messages it queued, in order."""


def smtpd_sessions(text: str, syslog_name: str = "postfix") -> list[SmtpdSession]:
    """The sessions that both start and end in `text` (a stretch of the Postfix log), of the
    listeners that log as `syslog_name`.

    An smtpd process serves one session at a time and is reused for the next, so a session
    is the stretch of its pid's lines from "connect from" to "disconnect from".
    """
    open_sessions: dict[int, list[str]] = {}
    finished = []
    for match in SMTPD_LINE.finditer(text):
        if match.group(1) != syslog_name:
            continue
        pid, event = int(match.group(2)), match.group(3)
        if event.startswith("connect from "):
            open_sessions[pid] = []
        elif event.startswith("disconnect from ") and pid in open_sessions:
            counts = dict(SMTPD_COUNT.findall(event))
            finished.append(SmtpdSession(pid, counts, tuple(open_sessions.pop(pid))))
        elif (queued := SMTPD_QUEUED.match(event)) and pid in open_sessions:
            open_sessions[pid].append(queued.group(1))
    return finished


@dataclass(frozen=True)
class PostfixServer:
    """A private Postfix: smtpd on two loopback ports, virtual(8) delivery into maildirs."""

    host: str
    port: int
    # Same instance, but EHLO does not advertise 8BITMIME (smtpd_discard_ehlo_keywords).
    port_no8bitmime: int
    # Same instance, implicit TLS (smtpd_tls_wrappermode, as on port 465).
    port_smtps: int
    # Same instance: the MX hosts of MAILER_DOMAINS, on 127.0.0.1-3 at this port.
    port_mailer: int
    base: Path
    tls: TLSMaterial
    message_size_limit: int
    # SASL AUTH through the private Dovecot's auth socket, offered only after STARTTLS.
    sasl: bool
    sasl_users: dict[str, str]
    mailboxes: tuple[str, ...]
    rejected_recipient: str
    deferred_recipient: str
    log: Path

    def wait_for_delivery(
        self,
        address: str,
        *,
        count: int = 1,
        contains: bytes | None = None,
        timeout: float = DELIVERY_TIMEOUT,
    ) -> list[bytes]:
        """Return the messages Postfix delivered to address once there are count of them."""
        return wait_for_maildir(
            mailbox_dir(self.base / "mail", address),
            count=count,
            contains=contains,
            timeout=timeout,
            logs=[self.log],
        )

    def log_text(self) -> str:
        """The tail of the Postfix log, for assertion messages."""
        return log_tail([self.log])

    def log_offset(self) -> int:
        """The current end of the Postfix log: a test reads only what it caused after it."""
        return self.log.stat().st_size

    def wait_for_sessions(
        self,
        since: int,
        *,
        queue_ids: Collection[str] = (),
        count: int = 1,
        timeout: float = DELIVERY_TIMEOUT,
        syslog_name: str = "postfix",
    ) -> list[SmtpdSession]:
        """The test's own smtpd sessions among those logged after `since` by the listeners
        that log as `syslog_name`.

        With `queue_ids`: the sessions that queued one of them, once all are logged. Without:
        the sessions that said EHLO or HELO, once there are `count`. Anything else in that
        stretch of log is another client's: the fixture's readiness probes (connect, read
        the greeting, close; smtpd logs their ``commands=0/0`` whenever it notices) or a
        session of an earlier test that ended late.
        """
        wanted = set(queue_ids)
        deadline = time.monotonic() + timeout
        while True:
            with self.log.open("rb") as log:
                log.seek(since)
                text = log.read().decode("utf-8", "replace")
            # Only whole lines: the last one may still be being written ("mail=5" of "mail=50").
            text = text[: text.rfind("\n") + 1]
            logged = smtpd_sessions(text, syslog_name)
            if wanted:
                sessions = [s for s in logged if wanted & set(s.queue_ids)]
                found = {q for s in sessions for q in s.queue_ids}
                if wanted <= found:
                    return sessions
                missing = f"queue ids {sorted(wanted - found)}"
            else:
                sessions = [s for s in logged if {"ehlo", "helo"} & set(s.counts)]
                if len(sessions) >= count:
                    return sessions
                missing = f"{count - len(sessions)} session(s) that said EHLO or HELO"
            if time.monotonic() >= deadline:
                fail_with_logs(
                    f"smtpd logged no session with {missing} in {timeout:.0f} s", [self.log]
                )
            time.sleep(0.05)


def _free_on_all(addresses: Sequence[str]) -> int:
    """A port free on every one of the loopback `addresses` (bounded tries)."""
    for _ in range(50):
        port = free_port(addresses[0])
        probes = [socket.socket(socket.AF_INET) for _ in addresses]
        try:
            for probe, address in zip(probes, addresses, strict=True):
                probe.bind((address, port))
        except OSError:
            continue
        finally:
            for probe in probes:
                probe.close()
        return port
    raise RuntimeError(f"no port free on all of {addresses}")


def launch_postfix(
    name: str, binary: str, base: Path, log: Path, *, wrapper: Sequence[str] = ()
) -> Process:
    """Start the Postfix instance configured in base/etc (master in the foreground), under
    the `wrapper` command when given (one that execs its arguments)."""
    etc = base / "etc"
    log.touch()
    process = launch(
        name,
        [*wrapper, binary, "-c", str(etc), "start-fg"],
        base / "postfix.out",
        stop_command=[binary, "-c", str(etc), "stop"],
        # "postfix start-fg" runs master -s, which calls setsid(): track it by its pid file.
        extra_pid_files=[base / "spool" / "pid" / "master.pid"],
    )
    process.logs.append(log)
    return process


@contextlib.contextmanager
def run_postfix(tls: TLSMaterial, dovecot: DovecotServer | None) -> Iterator[PostfixServer]:
    """Run a private Postfix instance (master in the foreground) while the context lasts."""
    binary = require_binary("postfix", "postfix")
    require_root("postfix")
    base = make_base("postfix")
    owner = pwd.getpwnam("postfix")
    etc, spool, data, mail = (base / d for d in ("etc", "spool", "data", "mail"))
    for d in (etc, spool, data, mail):
        d.mkdir()
    # master.lock lives in data_directory and virtual(8) writes as mail_owner.
    for d in (data, mail):
        os.chown(d, owner.pw_uid, owner.pw_gid)
    port, port_no8bitmime, port_smtps = free_port(), free_port(), free_port()
    port_mailer = _free_on_all(tuple(address for address, _ in MAILER_DOMAINS.values()))
    render(
        "postfix-main.cf",
        etc / "main.cf",
        base=base,
        uid=owner.pw_uid,
        gid=owner.pw_gid,
        message_size_limit=POSTFIX_MESSAGE_SIZE_LIMIT,
        sasl_enable="yes" if dovecot else "no",
        # smtpd refuses an empty smtpd_sasl_path even with SASL off.
        sasl_path=dovecot.auth_socket if dovecot else "unused",
        mailer_domains=" ".join(MAILER_DOMAINS),
    )
    render(
        "postfix-master.cf",
        etc / "master.cf",
        port=port,
        port_no8bitmime=port_no8bitmime,
        port_smtps=port_smtps,
        port_mailer=port_mailer,
        mailer_limit=MAILER_CONNECTION_LIMIT,
    )
    render("postfix-recipient_access", etc / "recipient_access")
    boxes = [(DOMAIN, box) for box in POSTFIX_MAILBOXES]
    boxes += [(domain, box) for domain in MAILER_DOMAINS for box in MAILER_MAILBOXES]
    (etc / "vmailbox").write_text("".join(f"{b}@{d} {d}/{b}/\n" for d, b in boxes))
    shutil.copyfile(tls.cert_pem, etc / "server.pem")
    shutil.copyfile(tls.key_pem, etc / "server.key")
    (etc / "server.key").chmod(0o600)
    log = base / "postfix.log"
    process = launch_postfix("postfix", binary, base, log)
    server = PostfixServer(
        host=HOST,
        port=port,
        port_no8bitmime=port_no8bitmime,
        port_smtps=port_smtps,
        port_mailer=port_mailer,
        base=base,
        tls=tls,
        message_size_limit=POSTFIX_MESSAGE_SIZE_LIMIT,
        sasl=dovecot is not None,
        sasl_users=dict(dovecot.users) if dovecot else {},
        mailboxes=POSTFIX_MAILBOXES,
        rejected_recipient=POSTFIX_REJECTED_RCPT,
        deferred_recipient=POSTFIX_DEFERRED_RCPT,
        log=log,
    )

    def ready() -> bool:
        return (
            smtp_ready(HOST, port)()
            and smtp_ready(HOST, port_no8bitmime)()
            and tcp_ready(HOST, port_smtps)()
            and all(tcp_ready(address, port_mailer)() for address, _ in MAILER_DOMAINS.values())
        )

    with running(process, ready, base):
        yield server


# --- smtp-sink ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SinkServer:
    """A Postfix smtp-sink (SMTP or LMTP) with the options it was started with."""

    host: str
    port: int
    lmtp: bool
    options: tuple[str, ...]
    dump_dir: Path
    log: Path

    def messages(self) -> list[bytes]:
        """The transactions smtp-sink dumped so far (one file each, oldest first)."""
        found: list[tuple[int, str, bytes]] = []
        for path in self.dump_dir.iterdir():
            try:
                found.append((path.stat().st_mtime_ns, path.name, path.read_bytes()))
            except FileNotFoundError:
                # Gone between the listing and the read: smtp-sink, the only writer here,
                # removed it (seen with -q DATA, a transaction that never completes). Skipping
                # it can only make a `sent` recipient look undelivered (a failure), never hide
                # a duplicate delivery.
                continue
        return [raw for _, _, raw in sorted(found)]

    def transactions(self) -> list[SinkTransaction]:
        """The dumped transactions, parsed (smtp-sink(1) "DUMP FILE FORMAT")."""
        return [parse_sink_dump(raw) for raw in self.messages()]


@dataclass(frozen=True)
class SinkTransaction:
    """One transaction smtp-sink dumped: MAIL and RCPT arguments, and the message as received."""

    mail_args: str
    rcpt_args: tuple[str, ...]
    # LF line ends; dot-stuffing already undone by smtp-sink.
    content: bytes


def parse_sink_dump(raw: bytes) -> SinkTransaction:
    """Split a dump into smtp-sink's own records and the client's message."""
    lines = raw.split(b"\n")
    mail_args, rcpt_args = "", []
    n = 0
    while n < len(lines) and not lines[n].startswith(b"Received: "):
        name, _, value = lines[n].decode("utf-8", "replace").partition(": ")
        if name == "X-Mail-Args":
            mail_args = value
        elif name == "X-Rcpt-Args":
            rcpt_args.append(value)
        n += 1
    # smtp-sink's Received: header ends its records: one line plus continuation lines.
    n += 1
    while n < len(lines) and lines[n][:1] in (b" ", b"\t"):
        n += 1
    # The dump adds one empty line after the message.
    content = b"\n".join(lines[n:]).removesuffix(b"\n")
    return SinkTransaction(mail_args, tuple(rcpt_args), content)


# The conftest factory: smtp_sink(*options, lmtp=False).
SinkFactory = Callable[..., SinkServer]


@contextlib.contextmanager
def run_smtp_sink(options: Sequence[str] = (), *, lmtp: bool = False) -> Iterator[SinkServer]:
    """Run smtp-sink with extra options (-f/-r/-q/-Q fault injection, -w delays, ...)."""
    binary = require_binary("smtp-sink", "postfix")
    base = make_base("smtp-sink")
    dump_dir = base / "dump"
    dump_dir.mkdir()
    argv = [binary, "-h", f"sink.{DOMAIN}"]
    if os.geteuid() == 0:
        # smtp-sink refuses to keep root privileges (smtp-sink(1) -u).
        nobody = pwd.getpwnam("nobody")
        os.chown(dump_dir, nobody.pw_uid, nobody.pw_gid)
        argv += ["-u", "nobody"]
    port = free_port()
    argv += ["-d", f"{dump_dir}/", *options]
    if lmtp:
        argv.append("-L")
    argv += [f"{HOST}:{port}", "128"]
    mode = "lmtp" if lmtp else "smtp"
    log = base / "smtp-sink.log"
    process = launch(f"smtp-sink-{mode}", argv, log)
    server = SinkServer(HOST, port, lmtp, tuple(options), dump_dir, log)
    # A probe connection is a session to smtp-sink: harmless, unless -f/-q/-Q names CONNECT.
    with running(process, tcp_ready(HOST, port), base):
        yield server


# --- dnsmasq --------------------------------------------------------------------------------


@dataclass(frozen=True)
class DnsServer:
    """dnsmasq answering for the test zone only, on a loopback port other than 53."""

    host: str
    port: int
    zone: str
    mx: tuple[MX, ...]
    hosts: tuple[Host, ...]
    log: Path

    def resolver(self) -> Any:
        """A dnspython resolver that asks only this server."""
        import dns.resolver

        res = dns.resolver.Resolver(configure=False)
        res.nameservers = [self.host]
        res.port = self.port
        res.timeout = res.lifetime = 5.0
        return res


def dnsmasq_records() -> str:
    """The zone as dnsmasq options."""
    lines = [f"mx-host={mx.domain},{mx.exchange},{mx.preference}" for mx in ZONE_MX]
    lines += [f"host-record={h.name},{','.join(h.addresses)}" for h in ZONE_HOSTS]
    lines += [f"cname={alias},{target}" for alias, target in ZONE_CNAMES.items()]
    return "\n".join(lines)


@contextlib.contextmanager
def run_dnsmasq() -> Iterator[DnsServer]:
    """Run dnsmasq serving the test zone while the context lasts."""
    binary = require_binary("dnsmasq", "dnsmasq-base")
    base = make_base("dnsmasq")
    port = free_port()
    conf = base / "dnsmasq.conf"
    # As root dnsmasq drops to "nobody" by default; say so, so the file works either way.
    user_line = "user=nobody" if os.geteuid() == 0 else ""
    render(
        "dnsmasq.conf", conf, port=port, zone=ZONE, user_line=user_line, records=dnsmasq_records()
    )
    log = base / "dnsmasq.log"
    process = launch("dnsmasq", [binary, f"--conf-file={conf}"], log)
    server = DnsServer(HOST, port, ZONE, ZONE_MX, ZONE_HOSTS, log)
    # dnsmasq answers TCP on the same port as UDP, and opens both before it reads the zone.
    with running(process, tcp_ready(HOST, port), base):
        yield server


# --- aiosmtpd -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedMessage:
    """One transaction aiosmtpd accepted."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    content: bytes
    mail_options: tuple[str, ...]
    login: str | None


class RecordingHandler:
    """aiosmtpd handler that keeps every accepted transaction."""

    def __init__(self) -> None:
        self.messages: list[ReceivedMessage] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """Record the transaction (aiosmtpd hook name)."""
        login = session.login_data.decode() if isinstance(session.login_data, bytes) else None
        message = ReceivedMessage(
            mail_from=envelope.mail_from,
            rcpt_tos=tuple(envelope.rcpt_tos),
            content=bytes(envelope.original_content or envelope.content),
            mail_options=tuple(envelope.mail_options),
            login=login,
        )
        with self._lock:
            self.messages.append(message)
        return "250 2.0.0 OK: recorded"


def check_login(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    """aiosmtpd authenticator accepting AIOSMTPD_USERS (PLAIN and LOGIN)."""
    if isinstance(auth_data, LoginPassword):
        user, password = auth_data.login.decode(), auth_data.password.decode()
        if AIOSMTPD_USERS.get(user) == password:
            return AuthResult(success=True, auth_data=auth_data.login)
    return AuthResult(success=False, handled=False)


@dataclass(frozen=True)
class AiosmtpdServer:
    """An in-process aiosmtpd server and the messages it received."""

    host: str
    port: int
    # The certificate offered after STARTTLS; None when STARTTLS is not offered.
    tls: TLSMaterial | None
    auth: bool
    handler: RecordingHandler

    @property
    def messages(self) -> list[ReceivedMessage]:
        """Transactions received so far."""
        return list(self.handler.messages)


# The conftest factory: aiosmtpd_server(starttls=, require_starttls=, auth=, host=).
AiosmtpdFactory = Callable[..., AiosmtpdServer]


@contextlib.contextmanager
def run_aiosmtpd(
    tls: TLSMaterial | None,
    *,
    host: str = HOST,
    require_starttls: bool = False,
    auth: bool = False,
    auth_require_tls: bool = True,
    data_size_limit: int = POSTFIX_MESSAGE_SIZE_LIMIT,
) -> Iterator[AiosmtpdServer]:
    """Run aiosmtpd in a thread, with STARTTLS when tls is given and AUTH when auth is true."""
    handler = RecordingHandler()
    port = free_port(host)
    kwargs: dict[str, Any] = {
        "data_size_limit": data_size_limit,
        "enable_SMTPUTF8": True,
        "decode_data": False,
        "ready_timeout": START_TIMEOUT,
    }
    if tls is not None:
        kwargs.update(tls_context=tls.server_context(), require_starttls=require_starttls)
    if auth:
        kwargs.update(authenticator=check_login, auth_require_tls=auth_require_tls)
    controller = Controller(handler, hostname=host, port=port, **kwargs)
    started = time.monotonic()
    controller.start()
    START_TIMES["aiosmtpd"] = time.monotonic() - started
    try:
        yield AiosmtpdServer(host, port, tls, auth, handler)
    finally:
        controller.stop()


# --- a listener that hangs up ---------------------------------------------------------------


@contextlib.contextmanager
def run_hangup_listener(host: str, port: int) -> Iterator[LoopbackServer]:
    """Listen on host:port (any loopback address) while the context lasts, closing every
    connection at once, before any greeting; ``len(server.connections)`` counts them."""
    with LoopbackServer(host=host, port=port, faults=Faults(close_at=0)) as server:
        yield server


# --- the client under test ------------------------------------------------------------------

# The adapters every client-side interop test runs with: all three.
ADAPTERS: tuple[str, ...] = ("blocking", "asyncio", "trio")
CLIENT_HELO = f"client.{DOMAIN}"
SENDER = f"sender@{DOMAIN}"
# Upper bound for one deliver() or session in the async adapters; the blocking adapter is
# bounded by the short per-command timeouts of client_config().
CLIENT_DEADLINE = 60.0
# Per-stage timeouts for loopback servers: a stuck exchange fails the test in seconds.
CLIENT_TIMEOUTS: dict[str, str] = {
    "connect_timeout": "5s",
    "helo_timeout": "10s",
    "mail_timeout": "10s",
    "rcpt_timeout": "10s",
    "data_init_timeout": "10s",
    "data_xfer_timeout": "20s",
    "data_done_timeout": "20s",
    "quit_timeout": "5s",
    "rset_timeout": "5s",
}


def client_config(*, lmtp: bool = False, **parameters: object) -> Any:
    """A ClientConfig built the way an MTA would, from Postfix parameter names (from_postconf).

    `parameters` are smtp(8) names without the ``smtp_``/``lmtp_`` prefix. TLS is off unless
    given: STARTTLS has its own interop tests, these check delivery itself.
    """
    from smtpproto.config import ClientConfig

    values: dict[str, object] = {
        "helo_name": CLIENT_HELO,
        "tls_security_level": "none",
        **CLIENT_TIMEOUTS,
        **parameters,
    }
    prefix = "lmtp_" if lmtp else "smtp_"
    # lmtp(8) spells the hello parameters lmtp_lhlo_*.
    renamed = {"helo_name": "lhlo_name", "helo_timeout": "lhlo_timeout"} if lmtp else {}
    return ClientConfig.from_postconf(
        {prefix + renamed.get(k, k): v for k, v in values.items()}, lmtp=lmtp
    )


def postconf_config(**parameters: object) -> Any:
    """A ClientConfig from full Postfix names (``smtp_header_checks``, ``minimal_backoff_time``)
    with the interop client's HELO name and timeouts, TLS off unless given; table files are
    read as the adapters read them."""
    from smtpproto.adapters.postfix import read_file

    from smtpproto.config import ClientConfig

    values: dict[str, object] = {
        "smtp_helo_name": CLIENT_HELO,
        "smtp_tls_security_level": "none",
        **{f"smtp_{name}": value for name, value in CLIENT_TIMEOUTS.items()},
        **parameters,
    }
    return ClientConfig.from_postconf(values, reader=read_file)


@dataclass(frozen=True)
class Transaction:
    """One mail transaction for a session: envelope and message."""

    recipients: tuple[str, ...]
    message: bytes
    sender: str = SENDER


@dataclass(frozen=True)
class Client:
    """One smtpproto adapter, called from a synchronous test; DNS goes to `dns` when given."""

    adapter: str
    dns: DnsServer | None = None

    def using_dns(self, dns: DnsServer) -> Client:
        """This adapter with its resolver pointed at the test zone's dnsmasq."""
        return Client(self.adapter, dns)

    def resolver(self) -> Any:
        """The adapter's own resolver class, asking only dnsmasq; None: the default."""
        if self.dns is None:
            return None
        from smtpproto.adapters import _dns

        kind = {
            "blocking": _dns.DefaultResolver,
            "asyncio": _dns.DefaultAsyncResolver,
            "trio": _dns.TrioResolver,
        }[self.adapter]
        return kind(nameservers=[self.dns.host], port=self.dns.port)

    def deliver(
        self,
        destination: str,
        *,
        recipients: Sequence[str],
        message: bytes,
        sender: str = SENDER,
        config: Any = None,
        arrival: float | None = None,
    ) -> Any:
        """Run the adapter's deliver() and return its DeliveryReport."""
        module = self._module()
        kwargs: dict[str, Any] = {
            "sender": sender,
            "recipients": list(recipients),
            "message": message,
            "config": config if config is not None else client_config(),
            "arrival": arrival,
            "resolver": self.resolver(),
        }
        if self.adapter == "blocking":
            return module.deliver(destination, **kwargs)
        return self._run(lambda: module.deliver(destination, **kwargs))

    def session(
        self, destination: str, transactions: Sequence[Transaction], *, config: Any = None
    ) -> list[Any]:
        """Run the transactions over one connect() session; one DeliveryReport each."""
        module = self._module()
        config = config if config is not None else client_config()
        resolver = self.resolver()
        if self.adapter == "blocking":
            with module.connect(destination, config=config, resolver=resolver) as session:
                return [
                    session.send(sender=t.sender, recipients=list(t.recipients), message=t.message)
                    for t in transactions
                ]

        async def run() -> list[Any]:
            async with module.connect(destination, config=config, resolver=resolver) as session:
                return [
                    await session.send(
                        sender=t.sender, recipients=list(t.recipients), message=t.message
                    )
                    for t in transactions
                ]

        reports: list[Any] = self._run(run)
        return reports

    def mail(
        self,
        sends: Sequence[Transaction],
        *,
        config: Any,
        resolver: Any = None,
        destination: str | None = None,
        at_once: bool = True,
    ) -> list[Any]:
        """Send every transaction through one Mailer at once (threads for the blocking
        adapter, tasks otherwise), or one after the other; one DeliveryReport each."""
        from support.mailers import send_all

        arguments = [
            {
                "sender": t.sender,
                "recipients": list(t.recipients),
                "message": t.message,
                "destination": destination,
            }
            for t in sends
        ]
        resolver = resolver if resolver is not None else self.resolver()
        return send_all(
            self.adapter,
            config,
            arguments,
            resolver=resolver,
            at_once=at_once,
            threads=16,
            deadline=CLIENT_DEADLINE,
        )

    def _module(self) -> Any:
        if self.adapter == "blocking":
            from smtpproto.adapters import blocking

            return blocking
        if self.adapter == "asyncio":
            from smtpproto.adapters import asyncio as asyncio_adapter

            return asyncio_adapter
        from smtpproto.adapters import trio as trio_adapter

        return trio_adapter

    def _run(self, make: Callable[[], Any]) -> Any:
        """Await make() under this adapter's event loop, within CLIENT_DEADLINE."""
        if self.adapter == "asyncio":
            import asyncio

            async def main_asyncio() -> Any:
                async with asyncio.timeout(CLIENT_DEADLINE):
                    return await make()

            return asyncio.run(main_asyncio())
        import trio

        async def main_trio() -> Any:
            with trio.fail_after(CLIENT_DEADLINE):
                return await make()

        return trio.run(main_trio)


def make_message(
    token: str, body: str = "Hello from the interop tests.\r\n", **headers: str
) -> bytes:
    """A small RFC 5322 message whose Subject is token (to find it among deliveries)."""
    fields = {
        "From": SENDER,
        "To": f"alice@{DOMAIN}",
        "Subject": token,
        "Message-ID": f"<{token}@{CLIENT_HELO}>",
        "Date": "Wed, 25 Nov 2026 10:00:00 +0000",
        **{name.replace("_", "-"): value for name, value in headers.items()},
    }
    header = "".join(f"{name}: {value}\r\n" for name, value in fields.items())
    return (header + "\r\n" + body).encode("utf-8")


def split_message(raw: bytes) -> tuple[email.message.Message, bytes]:
    """A stored message's parsed header, and its body bytes with line ends made LF."""
    text = raw.replace(b"\r\n", b"\n")
    head, _, body = text.partition(b"\n\n")
    return email.message_from_bytes(head + b"\n\n"), body
