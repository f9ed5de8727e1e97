"""The `smtpproto` command: `smtpproto deliver ...` and `smtpproto demo` (DESIGN.md).

``deliver`` checks everything local before it connects anywhere (a bad argument exits 64, a
local configuration problem 78), streams the message from its file (or a spool of standard
input), delivers once per destination, and prints one Postfix-style line per recipient.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, BinaryIO, NoReturn

from smtpproto._errors import LocalProtocolError
from smtpproto.config import ClientConfig

from ._terminal import MessageFile, Progress, Terminal

__all__ = ["EXIT_STATUSES", "main"]

# sysexits.h, as Postfix's sendmail(1) uses them; 130 is the shell's 128 + SIGINT.
EX_OK, EX_USAGE, EX_NOINPUT, EX_UNAVAILABLE, EX_SOFTWARE = 0, 64, 66, 69, 70
EX_TEMPFAIL, EX_CONFIG, EX_INTERRUPTED = 75, 78, 130

EXIT_STATUSES: tuple[tuple[int, str], ...] = (
    (EX_OK, "every recipient was sent"),
    (EX_USAGE, "bad command line: option, address, destination, not UTF-8 (nothing sent)"),
    (EX_NOINPUT, "the message or the password file cannot be read (nothing sent)"),
    (EX_UNAVAILABLE, "some recipient bounced"),
    (EX_SOFTWARE, "a bug in smtpproto, with a traceback; or `demo` ended unexpectedly"),
    (EX_TEMPFAIL, "some recipient was deferred, none bounced: try again later"),
    (EX_CONFIG, "bad local configuration: -o value, TLS file, missing extra (nothing sent)"),
    (EX_INTERRUPTED, "interrupted (Ctrl-C): the delivery under way has no known outcome"),
)
"""Every exit status of the command, with its meaning, as ``--help`` and the guide show it."""

DISTRIBUTION = "smtpproto-client"
TLS_LEVELS = ("none", "may", "encrypt", "verify", "secure")
NOTIFY = ("NEVER", "SUCCESS", "FAILURE", "DELAY")
# Every per-phase timeout; not tls_session_cache_timeout, which is a lifetime.
TIMEOUTS = tuple(
    f.name
    for f in fields(ClientConfig)
    if f.name.endswith("_timeout") and f.name != "tls_session_cache_timeout"
)
# An address, possibly with a quoted local part holding commas or spaces (RFC 5321 4.1.2).
# Only spaces and tabs separate: a CR or LF stays inside the address, which is then refused.
_ADDRESS = re.compile(r'(?:[^ \t,"]|"(?:[^"\\]|\\.)*")+')
_SECONDS = re.compile(r"(\d+(?:\.\d+)?)([smh]?)", re.ASCII)


class UsageError(Exception):
    """A reason not to go on; `status` is the exit status to leave with."""

    def __init__(self, message: str, status: int = EX_USAGE) -> None:
        super().__init__(message)
        self.status = status


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)

    def _print_message(self, message: str, file: Any = None) -> None:
        # --help and --version, quiet when the reader left (smtpproto --help | head -1).
        if message:
            Terminal().write(file or sys.stderr, message)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"smtpproto {version(DISTRIBUTION)} (distribution {DISTRIBUTION})"
    except PackageNotFoundError:
        return f"smtpproto (not installed as {DISTRIBUTION})"


def _statuses() -> str:
    rows = "\n".join(f"  {status:>3}  {meaning}" for status, meaning in EXIT_STATUSES)
    return f"exit status:\n{rows}"


def _seconds(text: str) -> float:
    match = _SECONDS.fullmatch(text.strip())
    if match is None or float(match[1]) <= 0:
        raise argparse.ArgumentTypeError(f"expected seconds (or 30s, 2m, 1h), got {text!r}")
    return float(match[1]) * {"": 1, "s": 1, "m": 60, "h": 3600}[match[2]]


def _parser() -> argparse.ArgumentParser:
    raw = argparse.RawDescriptionHelpFormatter
    parser = _Parser(
        prog="smtpproto",
        description="Deliver mail the way Postfix smtp(8) does.",
        epilog=_statuses(),
        formatter_class=raw,
    )
    parser.add_argument("--version", action="version", version=_version())
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    deliver = commands.add_parser(
        "deliver",
        help="deliver one message",
        description="Deliver one message; one Postfix-style line per recipient on stdout.",
        epilog=_statuses(),
        formatter_class=raw,
    )
    deliver.add_argument("--version", action="version", version=_version())
    deliver.add_argument(
        "--from", dest="sender", required=True, metavar="SENDER", help="envelope sender (MAIL FROM)"
    )
    deliver.add_argument(
        "--to",
        dest="recipients",
        action="append",
        required=True,
        metavar="RCPT",
        help="envelope recipients, separated by commas or spaces; repeat for more",
    )
    deliver.add_argument(
        "--dest",
        help="Postfix destination for every recipient (default: each recipient's domain, "
        "one delivery per domain)",
    )
    deliver.add_argument("--lmtp", action="store_true", help="speak LMTP (lmtp_* parameters)")
    deliver.add_argument("--tls", choices=TLS_LEVELS, help="tls_security_level")
    deliver.add_argument("--tls-ca-file", metavar="F", help="tls_CAfile for verify/secure")
    deliver.add_argument("--sasl-user", metavar="U", help="SASL user name for the destination")
    deliver.add_argument(
        "--sasl-password-file", metavar="F", help="file whose first line is the SASL password"
    )
    deliver.add_argument("--notify", metavar="LIST", help="NEVER or SUCCESS,FAILURE,DELAY")
    deliver.add_argument("--ret", choices=("full", "hdrs"), help="DSN RET (RFC 3461)")
    deliver.add_argument("--envid", help="DSN ENVID (RFC 3461)")
    deliver.add_argument(
        "-o",
        dest="parameters",
        action="append",
        default=[],
        metavar="smtp_name=value",
        help="a Postfix parameter, as postconf writes it; repeat for several",
    )
    deliver.add_argument(
        "-v",
        "--transcript",
        action="store_true",
        help="show the dialogue and connection events on stderr as they happen, secrets redacted",
    )
    deliver.add_argument(
        "--timeout",
        type=_seconds,
        metavar="SECONDS",
        help="every per-phase timeout at once (connect, greeting and EHLO, STARTTLS, MAIL, "
        "RCPT, DATA, end of data, RSET, QUIT); an -o for one phase wins",
    )
    deliver.add_argument("--json", action="store_true", help="results as JSON on stdout")
    deliver.add_argument(
        "file", nargs="?", default="-", metavar="FILE|-", help="the message (default: stdin)"
    )
    commands.add_parser("demo", help="a short tour: real deliveries to loopback servers")
    return parser


# -- checks before anything is sent ----------------------------------------------------------


def _check_utf8(argv: Sequence[str]) -> None:
    # Undecodable bytes arrive as lone surrogates; the engine would fail on them only after
    # EHLO and MAIL went out.
    for argument in argv:
        try:
            argument.encode("utf-8")
        except UnicodeEncodeError:
            shown = argument.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
            raise UsageError(f"argument '{shown}' is not valid UTF-8") from None


def _recipients(values: Sequence[str]) -> list[str]:
    addresses = [m.group(0) for value in values for m in _ADDRESS.finditer(value)]
    if not addresses:
        raise UsageError("--to: no recipient address given")
    return addresses


def _check_address(option: str, address: str) -> None:
    # RFC 5321 4.1.2: no control characters in a path; a CR/LF would inject commands.
    if any(c in address for c in "\r\n\0"):
        raise UsageError(f"{option}: address {address!r} contains CR, LF or NUL")


def _notify(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    words = tuple(w.strip().upper() for w in text.split(","))
    if not set(words) <= set(NOTIFY) or ("NEVER" in words and len(words) > 1):
        raise UsageError(f"--notify: expected NEVER or a list of {','.join(NOTIFY[1:])}")
    return words


def _local_error(error: LocalProtocolError) -> UsageError:
    from smtpproto.destinations import IDNA_MISSING

    # A missing extra is local configuration (78), not a mistake on the command line (64).
    return UsageError(str(error), EX_CONFIG if IDNA_MISSING in str(error) else EX_USAGE)


@dataclass(frozen=True)
class _Group:
    """One delivery: a destination and the positions of its recipients on the command line."""

    destination: str
    members: tuple[int, ...]


def _groups(args: argparse.Namespace, addresses: list[str]) -> list[_Group]:
    if args.dest is not None:
        return [_Group(args.dest, tuple(range(len(addresses))))]
    from smtpproto.destinations import normalize_domain

    from ._driver import idna_encoder

    found: dict[str, list[int]] = {}
    for n, address in enumerate(addresses):
        domain = address.rpartition("@")[2]
        if "@" not in address or not domain:
            raise UsageError(f"--to {address}: no domain to deliver to; give --dest")
        try:
            # A domain literal ([192.0.2.1]) is already a destination; a name is grouped by
            # its A-label, so Example.COM and example.com make one delivery.
            key = domain if domain.startswith("[") else normalize_domain(domain, idna_encoder())
        except LocalProtocolError as error:
            raise _local_error(error) from None
        found.setdefault(key, []).append(n)
    return [_Group(destination, tuple(members)) for destination, members in found.items()]


def _password(path: str) -> str:
    try:
        with open(path, "rb") as f:
            first = f.readline()
    except OSError as error:
        raise UsageError(f"--sasl-password-file {path}: {error.strerror}", EX_NOINPUT) from None
    try:
        return first.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError as error:
        raise UsageError(
            f"--sasl-password-file {path}: not valid UTF-8 ({error.reason} at byte {error.start})",
            EX_CONFIG,
        ) from None


def _postconf(args: argparse.Namespace, destinations: Sequence[str]) -> dict[str, Any]:
    prefix = "lmtp_" if args.lmtp else "smtp_"
    mapping: dict[str, Any] = {}
    for item in args.parameters:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"-o {item!r}: expected name=value")
        mapping[name.strip()] = value.strip()
    if args.tls is not None:
        mapping[prefix + "tls_security_level"] = args.tls
    if args.tls_ca_file is not None:
        mapping[prefix + "tls_CAfile"] = args.tls_ca_file
    if (args.sasl_user is None) != (args.sasl_password_file is None):
        raise UsageError("--sasl-user and --sasl-password-file go together")
    if args.sasl_user is not None:
        password = _password(args.sasl_password_file)
        mapping[prefix + "sasl_auth_enable"] = "yes"
        # Postfix smtp_sasl_password_maps: looked up by next-hop destination, "user:password".
        credentials = f"{args.sasl_user}:{password}"
        mapping[prefix + "sasl_password_maps"] = dict.fromkeys(destinations, credentials)
        # The library's default (AU-20): PLAIN/LOGIN only to a verified peer (--tls verify or
        # secure). Postfix's own default refuses them even there, which would make --sasl-user
        # useless with most servers; an -o for either option still wins.
        mapping.setdefault(prefix + "sasl_tls_verified_security_options", "noanonymous")
    return mapping


def _config(
    args: argparse.Namespace, destinations: Sequence[str], terminal: Terminal
) -> ClientConfig:
    from smtpproto.config import declaration

    from .postfix import read_file

    mapping = _postconf(args, destinations)
    client = "lmtp" if args.lmtp else "smtp"
    for name in list(mapping):
        declared = declaration(name)
        if declared is not None and declared.client_of(name) not in (None, client):
            # Like main.cf, -o may hold the other client's settings: they change nothing.
            other = "smtp(8)" if args.lmtp else "lmtp(8) (--lmtp)"
            terminal.err(f"smtpproto: warning: {name}: ignored: only {other} reads it")
            del mapping[name]
    try:
        config = ClientConfig.from_postconf(mapping, lmtp=args.lmtp, reader=read_file)
        if args.timeout is not None:
            named = {declared.field for declared in map(declaration, mapping) if declared}
            config = replace(config, **{f: args.timeout for f in TIMEOUTS if f not in named})
    except (ValueError, LocalProtocolError) as error:
        raise UsageError(f"configuration: {error}", EX_CONFIG) from None
    for name in mapping:
        # Accepted and checked, but changing nothing: say so rather than stay silent.
        declared = declaration(name)
        if declared is not None and declared.status != "supported":
            status = "not yet in effect" if declared.status == "declared" else declared.status
            terminal.err(f"smtpproto: warning: {name}: {status}: {declared.why}")
    return config


def _check_destinations(
    args: argparse.Namespace, groups: list[_Group], config: ClientConfig
) -> None:
    from smtpproto.destinations import parse_destinations

    from ._dns import _have_dnspython
    from ._driver import idna_encoder

    for group in groups:
        try:
            hops = parse_destinations(
                group.destination, lmtp=args.lmtp, config=config, idna=idna_encoder()
            )
        except LocalProtocolError as error:
            raise _local_error(error) from None
        if any(hop.mx_lookup for hop in hops) and not _have_dnspython():
            raise UsageError(
                f"{group.destination}: MX lookups need dnspython: "
                f"pip install '{DISTRIBUTION}[dns]' (or give --dest [host])",
                EX_CONFIG,
            )


def _check_tls_files(args: argparse.Namespace, config: ClientConfig) -> None:
    # A file that cannot be loaded would otherwise surface as "Cannot start TLS: handshake
    # failure", deferred (75), and a script would retry a local mistake forever.
    from smtpproto.requests import TLSParameters

    from ._tls import client_context

    prefix = "lmtp_" if args.lmtp else "smtp_"
    files = {
        "tls_CAfile": config.tls_CAfile,
        "tls_CApath": config.tls_CApath,
        "tls_cert_file": config.tls_cert_file,
        "tls_key_file": config.tls_key_file,
    }
    if not any(files.values()):
        return
    for name, path in files.items():
        if path is None:
            continue
        label = "--tls-ca-file" if name == "tls_CAfile" and args.tls_ca_file else prefix + name
        try:
            if name == "tls_CApath":
                os.listdir(path)
            else:
                open(path, "rb").close()
        except OSError as error:
            raise UsageError(f"{label} {path}: {error.strerror}", EX_CONFIG) from None
    parameters = TLSParameters(
        verify=bool(config.tls_CAfile or config.tls_CApath),
        ca_file=config.tls_CAfile,
        ca_path=config.tls_CApath,
        cert_file=config.tls_cert_file,
        key_file=config.tls_key_file,
    )
    try:
        client_context(parameters)
    except (OSError, ValueError) as error:
        raise UsageError(f"TLS configuration: {error}", EX_CONFIG) from None


@contextlib.contextmanager
def _message(name: str) -> Iterator[MessageFile]:
    """The message, seekable: the file itself, or standard input spooled to a temporary
    file when it is a pipe. Never read whole into memory."""
    try:
        file: BinaryIO = sys.stdin.buffer if name == "-" else open(name, "rb")  # noqa: SIM115
    except OSError as error:
        raise UsageError(f"{name}: {error.strerror}", EX_NOINPUT) from None
    with contextlib.ExitStack() as stack:
        if name != "-":
            stack.callback(file.close)
        try:
            if not file.seekable():
                spool = stack.enter_context(tempfile.TemporaryFile(prefix="smtpproto-"))
                shutil.copyfileobj(file, spool, 2**20)
                spool.seek(0)
                file = spool
            start = file.tell()
            size = file.seek(0, 2) - start
            file.seek(start)
        except OSError as error:
            raise UsageError(f"{name}: {error.strerror}", EX_NOINPUT) from None
        yield MessageFile(file, size)


# -- output ----------------------------------------------------------------------------------


class _Dialogue(logging.Handler):
    """The `smtpproto` log records the command shows: the dialogue of the delivery under way
    (kept for an interrupt), and with ``-v`` everything but the result lines, live."""

    def __init__(self, terminal: Terminal, live: bool) -> None:
        super().__init__(logging.DEBUG)
        self.terminal = terminal
        self.live = live
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        """Keep a transcript line; show it, or a connection event, with ``-v``."""
        if record.name == "smtpproto.delivery":
            return  # the command prints results itself, on stdout
        text = record.getMessage()
        if record.name == "smtpproto.transcript":
            self.lines.append(text)
        else:
            text = f"* {text}"
        if self.live:
            self.terminal.err(text)


def _json(results: Sequence[Any]) -> str:
    return json.dumps(
        {
            "recipients": [
                {
                    "address": r.address,
                    "status": r.status,
                    "dsn": r.dsn,
                    "code": None if r.reply is None else r.reply.code,
                    "text": r.diagnostic if r.reply is None else r.reply.text,
                    "relay": r.relay,
                    # What the log line says in parentheses, "(in reply to ...)" included.
                    "diagnostic": r.diagnostic,
                    "delay": round(r.delay, 3),
                }
                for r in results
            ]
        },
        indent=2,
    )


def _show(
    terminal: Terminal, results: Sequence[Any], args: argparse.Namespace, config: ClientConfig
) -> None:
    from smtpproto.report import format_log_line

    if args.json:
        terminal.out(_json(results))
        return
    for result in results:
        terminal.out(format_log_line(result, resolution=config.delay_logging_resolution_limit))


def _exit_status(results: Sequence[Any]) -> int:
    statuses = {r.status for r in results}
    if "bounced" in statuses:
        return EX_UNAVAILABLE
    return EX_TEMPFAIL if "deferred" in statuses else EX_OK


# -- deliver ---------------------------------------------------------------------------------


def _deliver(args: argparse.Namespace, terminal: Terminal) -> int:
    addresses = _recipients(args.recipients)
    _check_address("--from", args.sender)
    for address in addresses:
        _check_address("--to", address)
    notify = _notify(args.notify)
    groups = _groups(args, addresses)
    config = _config(args, [group.destination for group in groups], terminal)
    _check_destinations(args, groups, config)
    _check_tls_files(args, config)

    from smtpproto.envelope import Recipient

    from . import blocking

    try:
        recipients = [Recipient(a, notify=notify) for a in addresses]
    except LocalProtocolError as error:
        raise UsageError(str(error)) from None
    dialogue = _Dialogue(terminal, live=args.transcript)
    logger = logging.getLogger("smtpproto")
    # main() may run inside another program (or a test run): its logging is put back after.
    level, propagate = logger.level, logger.propagate
    logger.addHandler(dialogue)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False  # the command decides what is shown
    results: list[Any] = [None] * len(addresses)
    try:
        with _message(args.file) as message:
            progress = Progress(terminal, message)
            progress.start()
            try:
                for group in groups:
                    dialogue.lines.clear()
                    report = blocking.deliver(
                        group.destination,
                        sender=args.sender,
                        recipients=[recipients[n] for n in group.members],
                        message=message,
                        config=config,
                        ret=args.ret,
                        envid=args.envid,
                    )
                    for n, result in zip(group.members, report.recipients, strict=True):
                        results[n] = result
            finally:
                progress.stop()
    except KeyboardInterrupt:
        terminal.err("smtpproto: interrupted")
        if not args.transcript and dialogue.lines:
            terminal.err("smtpproto: the dialogue so far:\n" + "\n".join(dialogue.lines))
        _show(terminal, [r for r in results if r is not None], args, config)
        return EX_INTERRUPTED
    except LocalProtocolError as error:
        _show(terminal, [r for r in results if r is not None], args, config)
        raise UsageError(str(error)) from None
    finally:
        logger.removeHandler(dialogue)
        logger.setLevel(level)
        logger.propagate = propagate
    _show(terminal, results, args, config)
    return _exit_status(results)


def _demo() -> int:
    try:
        # The demo imports trio only when it reaches the trio adapter: ask for it up front.
        import trio  # noqa: F401

        from . import demo
    except ImportError as error:
        raise UsageError(
            f"demo: {(error.name or 'a module').partition('.')[0]} is missing: "
            f"pip install '{DISTRIBUTION}[demo]'",
            EX_CONFIG,
        ) from None
    return EX_OK if demo.main() == 0 else EX_SOFTWARE


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (`EXIT_STATUSES`)."""
    terminal = Terminal()
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        _check_utf8(argv)
        args = _parser().parse_args(argv)
        return _demo() if args.command == "demo" else _deliver(args, terminal)
    except UsageError as error:
        terminal.err(f"smtpproto: {error}")
        return error.status
    except KeyboardInterrupt:
        terminal.err("smtpproto: interrupted before anything was sent")
        return EX_INTERRUPTED
    except Exception:
        terminal.err(traceback.format_exc().rstrip())
        terminal.err("smtpproto: this is a bug in smtpproto; please report the traceback above")
        return EX_SOFTWARE
