"""A loopback SMTP server that advertises PIPELINING and CHUNKING, for counting flights.

smtp-sink cannot advertise CHUNKING (DESIGN.md), so the PIPELINING + CHUNKING round-trip count
runs against this instead: ``python bench/_chunking_server.py`` prints its port and serves until
stdin closes. It is the tests' reactive server (``tests/support``) on a loopback socket: it
accepts every sender and recipient, takes DATA and BDAT bodies, and keeps no content. It runs
in its own process so that its CPU never counts against a client; it is a counterpart for
counting, not a server to time anything against.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support.model import Canonical, Expect
from support.sockets import LoopbackServer

KEYWORDS = ("PIPELINING", "CHUNKING", "8BITMIME", "ENHANCEDSTATUSCODES")
MAX_LINE = 4096


def main() -> None:
    """Serve on a free loopback port until stdin reaches end of file."""
    behaviour = Canonical(
        KEYWORDS, banner=b"220 bench.example.test ESMTP\r\n", domain="bench.example.test"
    )
    # Backlog 512: the 64-connection runs open sessions faster than one accept loop drains.
    with LoopbackServer(
        behaviour, expect=Expect(line_length_limit=MAX_LINE), keep=False, backlog=512
    ) as server:
        print(server.port, flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
