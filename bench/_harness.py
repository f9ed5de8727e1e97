"""Servers and processes the benchmarks share: Postfix smtp-sink, the counting relay, children.

Every wait is bounded; every process started here runs in its own session and is killed, by
its own process group, when its block ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support.sockets import HOST, free_port

BENCH_DIR = Path(__file__).resolve().parent
SBIN_PATH = os.pathsep.join(("/usr/sbin", "/sbin", "/usr/bin", "/usr/lib/postfix/sbin"))
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0


class Unavailable(RuntimeError):
    """A tool the benchmark needs (smtp-sink, smtp-source) is not installed here."""


def postfix_tool(name: str) -> str:
    """The path of a Postfix test program, or `Unavailable` naming the package."""
    found = shutil.which(name, path=SBIN_PATH + os.pathsep + os.environ.get("PATH", ""))
    if found is None:
        raise Unavailable(f"{name} not found: apt-get install postfix")
    return found


def _wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited during start-up with status {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1.0):
            return
        time.sleep(0.02)
    raise RuntimeError(f"nothing listening on {HOST}:{port} after {START_TIMEOUT:.0f} s")


def _stop(process: subprocess.Popen[Any]) -> None:
    # The child leads its own process group (start_new_session), so this reaches only it.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(STOP_TIMEOUT)


@contextlib.contextmanager
def smtp_sink(*, lmtp: bool = False, pipelining: bool = True) -> Iterator[int]:
    """Run Postfix smtp-sink on a free loopback port (nothing stored); yield the port."""
    argv = [postfix_tool("smtp-sink"), "-h", "sink.example.test"]
    if os.geteuid() == 0:
        # smtp-sink refuses to keep root privileges (smtp-sink(1) -u).
        argv += ["-u", pwd.getpwnam("nobody").pw_name]
    if lmtp:
        argv.append("-L")
    if not pipelining:
        argv.append("-p")
    port = free_port()
    # Backlog 512: the 64-connection runs open sessions faster than one accept loop drains.
    argv += [f"{HOST}:{port}", "512"]
    process = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True
    )
    try:
        _wait_listening(port, process)
        yield port
    finally:
        _stop(process)


@contextlib.contextmanager
def _child_server(argv: list[str]) -> Iterator[tuple[int, subprocess.Popen[str]]]:
    """Run a Python server script that prints its port and serves until its stdin closes."""
    process = subprocess.Popen(
        [sys.executable, *argv],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        _wait_listening(port, process)  # type: ignore[arg-type]
        yield port, process
    finally:
        if process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()
        _stop(process)


@dataclass
class Relay:
    """The counting, delaying relay of ``_proxy.py`` in front of a server."""

    port: int
    process: subprocess.Popen[str]

    def _ask(self, command: str) -> str:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self.process.stdout.readline().strip()

    def reset(self) -> None:
        """Zero the counters (after the relay has passed on everything in flight)."""
        if self._ask("reset") != "ok":
            raise RuntimeError("relay did not acknowledge reset")

    def stats(self) -> dict[str, Any]:
        """Connections, client flights and bytes since the last reset; ``by_host``: per
        listening address, its connections and the most open at once."""
        counters: dict[str, Any] = json.loads(self._ask("stats"))
        return counters


@contextlib.contextmanager
def relay(
    target_port: int, delay: float = 0.0, hosts: tuple[str, ...] = (HOST,)
) -> Iterator[Relay]:
    """Run ``_proxy.py`` in front of `target_port`, adding `delay` seconds each way, listening
    on each of `hosts` (loopback addresses) at one port."""
    argv = [str(BENCH_DIR / "_proxy.py"), str(target_port), str(delay), ",".join(hosts)]
    with _child_server(argv) as child:
        yield Relay(*child)


@contextlib.contextmanager
def postfix_smtpd() -> Iterator[int]:
    """Run the interop suite's private Postfix (smtpd offers PIPELINING and CHUNKING); yield
    its SMTP port. It delivers into maildirs under a temporary directory, rcpt0..rcpt199 of
    example.test included (tests/interop/servers.py), and needs root, as Postfix does."""
    postfix_tool("postfix")
    if os.geteuid() != 0:
        raise Unavailable("the private Postfix needs root: it switches to its own users")
    from interop import servers

    with tempfile.TemporaryDirectory() as tls_dir:
        material = servers.make_tls(Path(tls_dir))
        with servers.run_postfix(material, None) as server:
            yield server.port


def run_child(args: list[str], timeout: float) -> dict[str, Any]:
    """Run ``clients.py`` with `args` in a fresh interpreter; return its JSON result."""
    command = [sys.executable, str(BENCH_DIR / "clients.py"), *args]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"no result within {timeout:.0f} s"}
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {"error": f"exit {done.returncode}: {tail}"}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result
