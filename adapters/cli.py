"""The `smtpproto` command: `smtpproto deliver ...` and `smtpproto demo` (DESIGN.md)."""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import IO, Any, NoReturn

from smtpproto._errors import LocalProtocolError

__all__ = ["main"]

# sysexits.h, as Postfix's sendmail(1) uses them.
EX_OK, EX_USAGE, EX_NOINPUT, EX_UNAVAILABLE, EX_TEMPFAIL, EX_CONFIG = 0, 64, 66, 69, 75, 78

TLS_LEVELS = ("none", "may", "encrypt", "verify", "secure")
NOTIFY = ("NEVER", "SUCCESS", "FAILURE", "DELAY")


class UsageError(Exception):
    """Bad command-line input; `status` is the exit status to leave with."""

    def __init__(self, message: str, status: int = EX_USAGE) -> None:
        super().__init__(message)
        self.status = status


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="smtpproto", description="Deliver mail the way Postfix smtp(8) does.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    deliver = commands.add_parser("deliver", help="deliver one message")
    deliver.add_argument(
        "--from", dest="sender", required=True, metavar="SENDER", help="envelope sender (MAIL FROM)"
    )
    deliver.add_argument(
        "--to",
        dest="recipients",
        action="append",
        required=True,
        metavar="RCPT",
        help="envelope recipient; repeat for several",
    )
    deliver.add_argument(
        "--dest", help="Postfix destination (default: the first recipient's domain)"
    )
    deliver.add_argument("--lmtp", action="store_true", help="speak LMTP (lmtp_* parameters)")
    deliver.add_argument("--tls", choices=TLS_LEVELS, help="tls_security_level")
    deliver.add_argument("--tls-ca-file", metavar="F", help="tls_CAfile for verify/secure")
    deliver.add_argument("--sasl-user", metavar="U", help="SASL user name for this destination")
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
    deliver.add_argument("--transcript", action="store_true", help="the dialogue on stderr")
    deliver.add_argument("--json", action="store_true", help="results as JSON on stdout")
    deliver.add_argument(
        "file", nargs="?", default="-", metavar="FILE|-", help="the message (default: stdin)"
    )
    commands.add_parser("demo", help="real deliveries to embedded loopback servers")
    return parser


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


def _postconf(args: argparse.Namespace, destination: str) -> dict[str, Any]:
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
        try:
            with open(args.sasl_password_file, encoding="utf-8") as f:
                password = f.readline().rstrip("\r\n")
        except OSError as error:
            raise UsageError(f"--sasl-password-file: {error.strerror}", EX_NOINPUT) from None
        mapping[prefix + "sasl_auth_enable"] = "yes"
        # Postfix smtp_sasl_password_maps: looked up by next-hop destination, "user:password".
        mapping[prefix + "sasl_password_maps"] = {destination: f"{args.sasl_user}:{password}"}
        # The library's default (docs/security.md): PLAIN/LOGIN only inside TLS. Postfix's own
        # default refuses them even there, which would make --sasl-user useless with most
        # servers; -o smtp_sasl_tls_security_options=... still wins.
        mapping.setdefault(prefix + "sasl_tls_security_options", "noanonymous")
    return mapping


def _read_message(name: str) -> bytes:
    try:
        if name == "-":
            return sys.stdin.buffer.read()
        with open(name, "rb") as f:
            return f.read()
    except OSError as error:
        raise UsageError(f"{name}: {error.strerror}", EX_NOINPUT) from None


class _Progress:
    """The message as chunks; counts how far the latest pass over it has gone."""

    def __init__(self, data: bytes, chunk_size: int = 65536) -> None:
        self.data = data
        self.chunk_size = chunk_size
        self.position = 0

    def __iter__(self) -> Iterator[bytes]:
        for start in range(0, len(self.data), self.chunk_size):
            self.position = start
            yield self.data[start : start + self.chunk_size]
        self.position = len(self.data)

    def show(self, stream: IO[str], done: threading.Event) -> None:
        """After a second, rewrite one status line every half second until `done`."""
        if done.wait(1.0):
            return
        while not done.wait(0.5):
            stream.write(f"\rsmtpproto: sent {self.position}/{len(self.data)} bytes")
            stream.flush()
        stream.write("\n")


def _json(report: Any) -> str:
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
                }
                for r in report.recipients
            ]
        },
        indent=2,
    )


def _exit_status(report: Any) -> int:
    statuses = {r.status for r in report.recipients}
    if "bounced" in statuses:
        return EX_UNAVAILABLE
    return EX_TEMPFAIL if "deferred" in statuses else EX_OK


def _deliver(args: argparse.Namespace) -> int:
    _check_address("--from", args.sender)
    for address in args.recipients:
        _check_address("--to", address)
    notify = _notify(args.notify)
    destination = args.dest
    if destination is None:
        domain = args.recipients[0].rpartition("@")[2]
        if not domain:
            raise UsageError("--dest: no destination given and the first --to has no domain")
        destination = domain
    postconf = _postconf(args, destination)
    message = _Progress(_read_message(args.file))

    from smtpproto.config import ClientConfig, declaration
    from smtpproto.destinations import parse_destinations
    from smtpproto.envelope import Recipient
    from smtpproto.report import format_log_line

    from .postfix import read_file

    for name in list(postconf):
        declared = declaration(name)
        if declared is None or declared.lmtp_name is None:
            continue
        if name == (declared.name if args.lmtp else declared.lmtp_name):
            # Like main.cf, -o may hold the other client's settings: they change nothing.
            other = "smtp(8)" if args.lmtp else "lmtp(8) (--lmtp)"
            print(f"smtpproto: warning: {name}: ignored: only {other} reads it", file=sys.stderr)
            del postconf[name]
    try:
        config = ClientConfig.from_postconf(postconf, lmtp=args.lmtp, reader=read_file)
    except (ValueError, LocalProtocolError) as error:
        raise UsageError(f"configuration: {error}", EX_CONFIG) from None
    for name in postconf:
        # Accepted and checked, but changing nothing: say so rather than stay silent.
        declared = declaration(name)
        if declared is not None and declared.status != "supported":
            status = "not yet in effect" if declared.status == "declared" else declared.status
            print(f"smtpproto: warning: {name}: {status}: {declared.why}", file=sys.stderr)
    try:
        parse_destinations(destination, lmtp=args.lmtp, config=config)
        recipients = [Recipient(a, notify=notify) for a in args.recipients]
    except (ValueError, LocalProtocolError) as error:
        raise UsageError(str(error)) from None

    from . import blocking

    done = threading.Event()
    if sys.stderr.isatty():
        threading.Thread(target=message.show, args=(sys.stderr, done), daemon=True).start()
    try:
        report = blocking.deliver(
            destination,
            sender=args.sender,
            recipients=recipients,
            message=message,
            config=config,
            ret=args.ret,
            envid=args.envid,
        )
    except LocalProtocolError as error:
        raise UsageError(str(error)) from None
    finally:
        done.set()
    if args.transcript:
        for line in report.transcript:
            print(line, file=sys.stderr)
    if args.json:
        print(_json(report))
    else:
        for result in report.recipients:
            print(format_log_line(result, resolution=config.delay_logging_resolution_limit))
    return _exit_status(report)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (sysexits.h)."""
    try:
        args = _parser().parse_args(argv)
        if args.command == "demo":
            try:
                from . import demo
            except ImportError as error:
                raise UsageError(
                    f"demo: {error.name} is missing: pip install 'smtpproto[demo,trio,dns]'",
                    EX_UNAVAILABLE,
                ) from None
            return demo.main()
        return _deliver(args)
    except UsageError as error:
        print(f"smtpproto: {error}", file=sys.stderr)
        return error.status
    except KeyboardInterrupt:
        print("smtpproto: interrupted", file=sys.stderr)
        return EX_TEMPFAIL
