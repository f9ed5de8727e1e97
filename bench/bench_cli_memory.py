"""Peak memory of the `smtpproto` command for a 1 GiB message against a 1 MiB one.

Run: ``.venv/bin/python bench/bench_cli_memory.py`` (about a minute; writes a 1 GiB temporary
file; needs Postfix's ``smtp-sink``). ``--sizes 1,64`` picks other sizes in MiB; ``--json``
prints the rows as JSON (the interop test runs it so).

The command runs as an admin runs it, ``python -m smtpproto deliver ... FILE`` and with the
message piped to standard input (``cat FILE | smtpproto deliver ...``, spooled to a temporary
file because the engine reads the message once to check it and once per server), against
smtp-sink on loopback. Each run is a fresh child; its peak resident set (``ru_maxrss``) is read
by a small parent that runs nothing else. Flat memory means the large rows match the small
ones within the size of the chunks in flight. No timing is asserted anywhere; elapsed seconds
are printed only to show the run was real.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import _harness

MIB = 2**20
LINE = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.\n"
# The parent that reports its child's peak resident set (KiB on Linux).
PEAK = (
    "import resource, subprocess, sys; done = subprocess.run(sys.argv[2:], shell=sys.argv[1] "
    "== 'shell'); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
    "sys.exit(done.returncode)"
)


def message(path: Path, size: int) -> None:
    """Write a mail-like message of `size` octets (text lines, LF line ends)."""
    block = LINE * (MIB // len(LINE) + 1)
    block = block[:MIB]
    with path.open("wb") as f:
        f.write(b"Subject: bench_cli_memory\n\n")
        for _ in range(size // MIB):
            f.write(block)


def peak(port: int, path: Path, *, piped: bool) -> tuple[int, float]:
    """(peak RSS in KiB, seconds) of one delivery of `path` by the command."""
    command = [
        sys.executable,
        "-m",
        "smtpproto",
        "deliver",
        "--from",
        "a@client.test",
        "--to",
        "b@sink.test",
        "--dest",
        f"[127.0.0.1]:{port}",
        "--tls",
        "none",
    ]
    if piped:
        argv = ["shell", f"cat {path} | " + " ".join(command)]
    else:
        argv = ["direct", *command, str(path)]
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", PEAK, *argv], capture_output=True, text=True, timeout=900
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0 or "status=sent" not in done.stdout:
        raise RuntimeError(f"delivery failed: {done.stdout}{done.stderr}")
    return int(done.stdout.splitlines()[-1]), elapsed


@dataclass
class Row:
    """One delivery: where the message came from, its size, the command's peak RSS."""

    input: str
    mib: int
    kib: int
    seconds: float
    growth_kib: int = 0


def main(argv: list[str] | None = None) -> int:
    """Print one row per size and input: peak RSS, and its growth over the smallest size."""
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--sizes", default="1,1024", help="message sizes in MiB (default 1,1024)")
    options.add_argument("--json", action="store_true", help="the rows as JSON")
    parsed = options.parse_args(argv)
    sizes = [int(s) for s in parsed.sizes.split(",")]
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp, _harness.smtp_sink() as port:
        for mib in sizes:
            path = Path(tmp) / f"{mib}.eml"
            message(path, mib * MIB)
            for piped in (False, True):
                kib, seconds = peak(port, path, piped=piped)
                rows.append(Row("stdin pipe" if piped else "file", mib, kib, seconds))
            path.unlink()
    base = {row.input: row.kib for row in rows if row.mib == sizes[0]}
    for row in rows:
        row.growth_kib = row.kib - base[row.input]
    if parsed.json:
        print(json.dumps([asdict(row) for row in rows]))
        return 0
    print(f"{'input':<11} {'message':>9} {'peak RSS':>10} {'growth':>9} {'seconds':>8}")
    for row in rows:
        print(
            f"{row.input:<11} {row.mib:>5} MiB {row.kib / 1024:>6.1f} MiB "
            f"{row.growth_kib / 1024:>5.1f} MiB {row.seconds:>8.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
