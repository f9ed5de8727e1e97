"""Body encoding benchmark: throughput against smtplib, and peak memory for a 100 MiB file.

Run: ``.venv/bin/python bench/bench_body.py`` (about ten seconds; writes a 100 MiB temporary
file; Linux, for /proc/self/status). One timed run per size, each repeating the encoding
enough times to last at least 0.2 s. The baseline is what smtplib does to a message:
``_fix_eols`` (str) and ``_quote_periods`` plus the terminator, on the whole message in
memory. Ours streams the same bytes through `iter_wire` (64 KiB chunks: CRLF normalization,
dot-stuffing, the 998 fold). The last column is the 8bit->7bit conversion alone.
"""

from __future__ import annotations

import os
import smtplib
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

from smtpproto.body import iter_wire, scan
from smtpproto.mime import downgrade_8bit

MIB = 2**20
SIZES = {"1 KiB": 1024, "100 KiB": 100 * 1024, "10 MiB": 10 * MIB}
MIN_SECONDS = 0.2


def sample(size: int) -> bytes:
    """Mail-like text: LF line ends, some lines starting with a dot, some 8-bit."""
    lines = [
        b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod\n",
        b".tempor incididunt ut labore et dolore magna aliqua.\n",
        b"Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi\n",
        "Grüße, café, naïve: ut aliquip ex ea commodo consequat.\n".encode(),
        b"\n",
    ]
    block = b"".join(lines)
    return (block * (size // len(block) + 1))[:size]


def smtplib_way(data: bytes) -> int:
    # smtplib.SMTP.sendmail (str message) then SMTP.data.
    fixed = smtplib._fix_eols(data.decode("latin-1")).encode("latin-1")  # type: ignore[attr-defined]
    quoted = smtplib._quote_periods(fixed)  # type: ignore[attr-defined]
    if quoted[-2:] != b"\r\n":
        quoted += b"\r\n"
    quoted += b".\r\n"
    return len(quoted)


def ours(data: bytes) -> int:
    return sum(map(len, iter_wire(data)))


def downgrade(data: bytes) -> int:
    head = b"Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
    return sum(map(len, downgrade_8bit([head, data])))


def throughput(function: Callable[[bytes], int], data: bytes) -> float:
    runs = 0
    start = time.perf_counter()
    while True:
        function(data)
        runs += 1
        elapsed = time.perf_counter() - start
        if elapsed >= MIN_SECONDS:
            return runs * len(data) / elapsed / MIB


_CHILD = """
import sys, tracemalloc
from smtpproto.body import iter_wire, scan

def hwm():  # VmHWM: peak resident set of this exec'd process (ru_maxrss survives exec)
    with open("/proc/self/status") as status:
        return next(int(l.split()[1]) for l in status if l.startswith("VmHWM:"))

before = hwm()
tracemalloc.start()
with open(sys.argv[1], "rb") as f:
    info = scan(f)
    total = sum(map(len, iter_wire(f)))
peak = tracemalloc.get_traced_memory()[1]
tracemalloc.stop()
print(info.wire_size == total, total, peak, hwm() - before, hwm())
"""


def memory(size: int) -> None:
    with tempfile.NamedTemporaryFile(suffix=".eml", delete=False) as f:
        block = sample(MIB)
        for _ in range(size // MIB):
            f.write(block)
        name = f.name
    try:
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, name], capture_output=True, text=True, check=True
        ).stdout.split()
    finally:
        os.unlink(name)
    same, total, peak, grew, maxrss = out
    print(f"\n{size // MIB} MiB file streamed (scan + send) in a subprocess:")
    print(f"  wire octets {total} (scan.wire_size matches: {same})")
    print(f"  tracemalloc peak   {int(peak) / MIB:6.2f} MiB")
    print(f"  peak RSS growth    {int(grew) / 1024:6.2f} MiB (VmHWM {int(maxrss) / 1024:.1f} MiB)")


def main() -> None:
    print(f"Python {sys.version.split()[0]}; one run per size, >= {MIN_SECONDS}s each\n")
    print(f"{'size':>8} {'smtplib MB/s':>13} {'ours MB/s':>10} {'ratio':>6} {'7bit MB/s':>10}")
    for label, size in SIZES.items():
        data = sample(size)
        assert scan(data).wire_size == ours(data)
        base = throughput(smtplib_way, data)
        mine = throughput(ours, data)
        down = throughput(downgrade, data)
        print(f"{label:>8} {base:13.1f} {mine:10.1f} {mine / base:6.2f} {down:10.1f}")
    memory(100 * MIB)


if __name__ == "__main__":
    main()
