"""The Postfix client oracle: Postfix 3.7's own smtp(8)/lmtp(8) delivers one message for a test.

A differential test gives the same server (smtp-sink, a scripted dialogue, a real MTA) to
``smtpproto deliver`` and to Postfix's delivery agent, and compares what each reports per
recipient. This module runs that agent the way Postfix itself does: one private Postfix
instance (own config_directory, queue_directory and ``maillog_file`` through postlogd; nothing
read from /etc/postfix, nothing relayed), started once per test session and reused for every
delivery.

How one delivery works (:meth:`PostfixOracle.deliver`):

1. The message is submitted to the instance's smtpd on loopback. The submitting client's HELO
   names the transport and next hop (``oracle=<transport>=<nexthop>``); ``check_helo_access``
   answers ``FILTER <transport>:<nexthop>``, which routes this one message there whatever its
   recipients are. Header rewriting is off and smtpd's Received: header is dropped, so the next
   hop receives the submitted bytes.
2. qmgr hands it to smtp(8) (or lmtp(8)) at once; the agent logs one line per recipient:
   ``to=<a>, relay=..., dsn=X.Y.Z, status=sent|deferred|bounced (text)``.
3. ``maximal_queue_lifetime = 0``: there is exactly one attempt. A deferred recipient is
   returned to the sender at once (the notice is discarded), and the message leaves the queue;
   deliver() returns when the log says ``removed``, so nothing is retried behind the test's back.

Extra Postfix parameters (``params``, e.g. ``{"smtp_discard_ehlo_keywords": "pipelining"}``)
become ``-o`` options of a delivery service of their own in master.cf, added with one
``postfix reload`` the first time a set is used. The base configuration mirrors the interop
client's: HELO name ``client.example.test``, TLS off, the per-stage timeouts of
``servers.CLIENT_TIMEOUTS``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import smtplib
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from smtpproto.envelope import Recipient

from .servers import (
    CLIENT_HELO,
    CLIENT_TIMEOUTS,
    HOST,
    STOP_TIMEOUT,
    fail_with_logs,
    free_port,
    launch_postfix,
    make_base,
    render,
    require_binary,
    require_root,
    running,
    smtp_ready,
)

# One delivery agent log line (smtp(8)/lmtp(8), or qmgr when it defers without an attempt).
DELIVERY_LINE = re.compile(
    r"postfix/(?P<agent>[\w-]+)\[\d+\]: (?P<qid>[0-9A-F]+): to=<(?P<to>[^>]*)>,"
    r"(?: orig_to=<[^>]*>,)? relay=(?P<relay>[^,]+), .*?"
    r"dsn=(?P<dsn>\d\.\d{1,3}\.\d{1,3}), status=(?P<status>\w+) \((?P<text>.*)$"
)
# Postfix cuts a long log record short, closing parenthesis included.
TRUNCATED = "..."
QUEUED_AS = re.compile(r"queued as ([0-9A-F]+)")
RELOAD_LINE = re.compile(r"postfix/master\[\d+\]: reload ")
# Longer than any single stage timeout of servers.CLIENT_TIMEOUTS: a server that stalls shows
# as Postfix's own timeout result, not as the oracle giving up.
ORACLE_TIMEOUT = 60.0
STATUSES = frozenset({"sent", "deferred", "bounced"})


class PostfixResult(NamedTuple):
    """What Postfix's delivery agent logged for one recipient."""

    status: str
    """``sent``, ``deferred`` or ``bounced``."""
    dsn: str
    """The enhanced status code, e.g. ``5.1.1``."""
    text: str
    """The reason in parentheses, e.g. ``host H[A] said: 550 ... (in reply to RCPT TO command)``."""
    relay: str
    """``H[A]:port`` of the server that decided it, or ``none``."""


def _xtext(value: str) -> str:
    """RFC 3461 section 4 xtext: "+", "=" and anything outside 33..126 as +HH."""
    return "".join(c if 33 <= ord(c) <= 126 and c not in "+=" else f"+{ord(c):02X}" for c in value)


def _timeouts() -> str:
    """main.cf lines: the interop client's per-stage timeouts, for smtp(8) and lmtp(8) alike."""
    lines = []
    for name, value in CLIENT_TIMEOUTS.items():
        lines += [f"smtp_{name} = {value}", f"lmtp_{name} = {value}"]
    return "\n".join(lines)


@dataclass
class PostfixOracle:
    """A running private Postfix whose smtp(8)/lmtp(8) delivers messages for tests."""

    host: str
    port: int
    base: Path
    log: Path
    postfix: str
    # Frozen -o parameter sets -> the master.cf service that has them.
    services: dict[tuple[bool, tuple[tuple[str, str], ...]], str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def deliver(
        self,
        dest: str,
        sender: str,
        recipients: Sequence[str | Recipient],
        message: bytes,
        *,
        lmtp: bool = False,
        params: Mapping[str, str] | None = None,
        ret: str | None = None,
        envid: str | None = None,
        timeout: float = ORACLE_TIMEOUT,
    ) -> dict[str, PostfixResult]:
        """Make Postfix's smtp(8) (or lmtp(8)) deliver one message to `dest`; one result each.

        `dest` is a Postfix next hop: ``[127.0.0.1]:2525`` (no MX lookup), or for LMTP also
        ``inet:127.0.0.1:24`` or ``unix:/path/to/socket``. `params` are extra main.cf-style
        parameters for the delivery agent only (``smtp_*``/``lmtp_*`` names). Recipients may
        carry NOTIFY/ORCPT (smtpproto ``Recipient``); `ret` and `envid` go on MAIL FROM, and
        Postfix passes all of them on to a next hop that offers DSN.
        """
        if not recipients:
            raise ValueError("recipients: at least one is needed")
        with self._lock:
            transport = self._service(lmtp, dict(params or {}))
            since = self.log.stat().st_size
            queue_id = self._submit(
                f"oracle={transport}={dest}", sender, recipients, message, ret, envid
            )
            results = self._wait_results(queue_id, since, recipients, timeout)
            return results

    def log_text(self, since: int = 0) -> str:
        """The instance's log from byte offset `since` on."""
        with self.log.open("rb") as log:
            log.seek(since)
            return log.read().decode("utf-8", "replace")

    # -- submission -----------------------------------------------------------------------

    def _submit(
        self,
        helo: str,
        sender: str,
        recipients: Sequence[str | Recipient],
        message: bytes,
        ret: str | None,
        envid: str | None,
    ) -> str:
        """Submit over SMTP with the routing HELO; return Postfix's queue id."""
        addresses = [r.address if isinstance(r, Recipient) else r for r in recipients]
        mail_options = []
        if any(byte >= 0x80 for byte in message):
            mail_options.append("BODY=8BITMIME")
        if not (sender + "".join(addresses)).isascii():
            mail_options.append("SMTPUTF8")
        if ret is not None:
            mail_options.append(f"RET={ret}")
        if envid is not None:
            mail_options.append(f"ENVID={_xtext(envid)}")
        with smtplib.SMTP(self.host, self.port, local_hostname=helo, timeout=30) as smtp:
            smtp.ehlo()
            code, reply = smtp.mail(sender, mail_options)
            if code != 250:
                raise AssertionError(f"oracle smtpd refused MAIL FROM:<{sender}>: {code} {reply!r}")
            for recipient in recipients:
                address, options = recipient, []
                if isinstance(recipient, Recipient):
                    address = recipient.address
                    if recipient.notify is not None:
                        options.append("NOTIFY=" + ",".join(recipient.notify))
                    if recipient.orcpt is not None:
                        kind, _, original = recipient.orcpt.partition(";")
                        options.append(f"ORCPT={kind};{_xtext(original)}")
                code, reply = smtp.rcpt(str(address), options)
                if code != 250:
                    raise AssertionError(
                        f"oracle smtpd refused RCPT TO:<{address}>: {code} {reply!r}"
                    )
            code, reply = smtp.data(message)
        match = QUEUED_AS.search(reply.decode("utf-8", "replace"))
        if code != 250 or match is None:
            raise AssertionError(f"oracle smtpd did not queue the message: {code} {reply!r}")
        return match.group(1)

    def _wait_results(
        self, queue_id: str, since: int, recipients: Sequence[str | Recipient], timeout: float
    ) -> dict[str, PostfixResult]:
        """Wait for the agent's line for every recipient and for the queue file's removal."""
        wanted = {r.address if isinstance(r, Recipient) else r for r in recipients}
        deadline = time.monotonic() + timeout
        while True:
            log = self.log_text(since)
            results = {}
            for line in log.splitlines():
                match = DELIVERY_LINE.search(line)
                if match is None or match["qid"] != queue_id or match["status"] not in STATUSES:
                    continue
                reason = match["text"]
                reason = reason[:-1] if reason.endswith(")") else reason + TRUNCATED
                results[match["to"]] = PostfixResult(
                    match["status"], match["dsn"], reason, match["relay"]
                )
            if f" {queue_id}: removed" in log and wanted <= results.keys():
                return results
            if time.monotonic() >= deadline:
                fail_with_logs(
                    f"Postfix oracle: {queue_id} not done in {timeout:.0f} s; results so far "
                    f"{results}",
                    [self.log],
                )
            time.sleep(0.005)

    # -- delivery services with extra parameters -----------------------------------------

    def _service(self, lmtp: bool, params: dict[str, str]) -> str:
        """The master.cf service that delivers with these parameters, added on first use."""
        if not params:
            return "lmtp" if lmtp else "smtp"
        for name, value in params.items():
            # master.cf's "-o { name = value }" form takes spaces but not braces or newlines.
            if not re.fullmatch(r"[a-z0-9_]+", name) or any(c in value for c in "{}\r\n"):
                raise ValueError(f"params: cannot pass {name}={value!r} through master.cf")
        key = (lmtp, tuple(sorted(params.items())))
        service = self.services.get(key)
        if service is None:
            service = f"oracle{len(self.services) + 1}"
            options = "".join(f"\n  -o {{ {name} = {value} }}" for name, value in key[1])
            with (self.base / "etc" / "master.cf").open("a") as master_cf:
                master_cf.write(f"{service} unix - - n - - {'lmtp' if lmtp else 'smtp'}{options}\n")
            self._reload()
            self.services[key] = service
        return service

    def _reload(self) -> None:
        """postfix reload, and wait until master has re-read master.cf."""
        before = len(RELOAD_LINE.findall(self.log_text()))
        subprocess.run(
            [self.postfix, "-c", str(self.base / "etc"), "reload"],
            check=True,
            timeout=STOP_TIMEOUT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + STOP_TIMEOUT
        while len(RELOAD_LINE.findall(self.log_text())) <= before:
            if time.monotonic() >= deadline:
                fail_with_logs("Postfix oracle: reload not logged", [self.log])
            time.sleep(0.01)


# The conftest fixture postfix_deliver: PostfixOracle.deliver of the session's instance.
PostfixDeliver = Callable[..., dict[str, PostfixResult]]


def private_resolv_conf(resolv_conf: Path) -> list[str]:
    """A wrapper command that runs its arguments with `resolv_conf` as /etc/resolv.conf.

    Postfix's smtp(8) asks the system resolver (libc, /etc/resolv.conf, port 53) and trusts
    its AD bit (with glibc >= 2.31 only under ``options trust-ad``). A private mount
    namespace (unshare(1), propagation private) bind-mounts the test's file over
    /etc/resolv.conf for this Postfix and its children alone, as ``ip netns exec`` does with
    /etc/netns/NAME/resolv.conf, but keeps the machine's network namespace, so the oracle
    reaches the same loopback servers and the same validating resolver as smtpproto. The
    machine's own /etc/resolv.conf is never touched; the mount ends with the processes.
    """
    unshare = require_binary("unshare", "util-linux")
    return [
        unshare,
        "--mount",
        "--propagation",
        "private",
        "--",
        "sh",
        "-c",
        'mount --bind "$0" /etc/resolv.conf && exec "$@"',
        str(resolv_conf),
    ]


@contextlib.contextmanager
def run_postfix_oracle(
    helo_name: str = CLIENT_HELO, *, nameserver: str | None = None
) -> Iterator[PostfixOracle]:
    """Run the private oracle instance while the context lasts; with `nameserver`, its
    system resolver asks only that address (port 53), trusting the AD bit."""
    postfix = require_binary("postfix", "postfix")
    require_binary("smtp", "postfix")
    require_root("postfix")
    base = make_base("postfix-oracle")
    owner = pwd.getpwnam("postfix")
    etc, spool, data = (base / d for d in ("etc", "spool", "data"))
    for d in (etc, spool, data):
        d.mkdir()
    os.chown(data, owner.pw_uid, owner.pw_gid)
    port = free_port()
    values = {"base": base, "port": port, "helo_name": helo_name, "timeouts": _timeouts()}
    render("postfix-oracle-main.cf", etc / "main.cf", **values)
    render("postfix-oracle-master.cf", etc / "master.cf", **values)
    # The routing HELO (see the module docstring); any other HELO is refused, so a message can
    # never be silently discarded instead of delivered.
    (etc / "helo_filter").write_text(
        "/^oracle=([a-z0-9]+)=(.+)$/ FILTER $1:$2\n/./ REJECT oracle: HELO must name a next hop\n"
    )
    (etc / "header_checks").write_text("/^Received: from oracle=/ IGNORE\n")
    log = base / "postfix.log"
    wrapper: list[str] = []
    if nameserver is not None:
        resolv_conf = base / "resolv.conf"
        resolv_conf.write_text(f"nameserver {nameserver}\noptions trust-ad attempts:1\n")
        wrapper = private_resolv_conf(resolv_conf)
    process = launch_postfix("postfix-oracle", postfix, base, log, wrapper=wrapper)
    oracle = PostfixOracle(HOST, port, base, log, postfix)
    with running(process, smtp_ready(HOST, port), base):
        yield oracle
