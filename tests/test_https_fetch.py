"""The MTA-STS policy fetch of every adapter (RFC 8461 3.3) against a loopback HTTPS server.

Certificate verified for the policy host, no redirect followed, the body bounded, the time
bounded: each shown on the wire with a stdlib server and a trustme certificate.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import ssl
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import trio
import trustme
from smtpproto.adapters import asyncio as aio_adapter
from smtpproto.adapters import blocking as blocking_adapter
from smtpproto.adapters import trio as trio_adapter

from smtpproto.requests import HTTPResponse, HTTPSFailed, HTTPSGet

HOST = "mta-sts.example.com"
PATH = "/.well-known/mta-sts.txt"
POLICY = b"version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: 86400\n"


class Handler(http.server.BaseHTTPRequestHandler):
    """Answers by path: the policy, a redirect, a large body, or nothing at all."""

    seen: list[str]
    release: threading.Event

    def do_GET(self) -> None:
        self.seen.append(self.path)
        if self.path == "/stall":
            self.release.wait(10)
            return
        if self.path == "/moved":
            self.send_response(301)
            self.send_header("Location", PATH)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = POLICY if self.path == PATH else b"x" * 100_000
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


CA = trustme.CA()


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[int, list[str]]]:
    """An HTTPS server on 127.0.0.1 with a certificate for HOST; yields (port, paths seen)."""
    seen: list[str] = []
    release = threading.Event()
    handler = type("H", (Handler,), {"seen": seen, "release": release})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    CA.issue_cert(HOST).configure_cert(context)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield httpd.server_address[1], seen
    finally:
        release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def ca_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    CA.cert_pem.write_to_path(str(path))
    return str(path)


def perform(adapter: str, request: HTTPSGet) -> Any:
    """`request` as each adapter performs it."""
    if adapter == "blocking":
        return blocking_adapter._IO(None).perform(request)
    if adapter == "asyncio":
        return asyncio.run(aio_adapter._IO(None).perform(request))
    return trio.run(trio_adapter._IO(None).perform, request)


def get(port: int, ca: str | None, *, path: str = PATH, host: str = HOST, **kw: Any) -> HTTPSGet:
    options = {"timeout": 10.0, "max_bytes": 65536, **kw}
    return HTTPSGet(host, "127.0.0.1", path, ca_file=ca, port=port, **options)


@pytest.fixture(params=["blocking", "asyncio", "trio"])
def adapter(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_fetch_returns_status_media_type_and_body(
    adapter: str, server: tuple[int, list[str]], ca_file: str
) -> None:
    response = perform(adapter, get(server[0], ca_file))
    assert response == HTTPResponse(200, "text/plain; charset=utf-8", POLICY)


def test_a_redirect_is_returned_not_followed(
    adapter: str, server: tuple[int, list[str]], ca_file: str
) -> None:
    # RFC 8461 3.3: "HTTP 3xx redirects MUST NOT be followed".
    port, seen = server
    before = len(seen)
    response = perform(adapter, get(port, ca_file, path="/moved"))
    assert response.status == 301
    assert seen[before:] == ["/moved"]


def test_the_body_is_read_up_to_one_octet_past_the_limit(
    adapter: str, server: tuple[int, list[str]], ca_file: str
) -> None:
    response = perform(adapter, get(server[0], ca_file, path="/big", max_bytes=1000))
    assert len(response.body) == 1001


@pytest.mark.parametrize("host", [HOST, "mta-sts.example.net"])
def test_an_unverified_certificate_is_a_certificate_failure(
    adapter: str, server: tuple[int, list[str]], ca_file: str, host: str
) -> None:
    # Without the CA (system store) the chain fails; with it, the name must match too.
    ca = None if host == HOST else ca_file
    with pytest.raises(HTTPSFailed) as failure:
        perform(adapter, get(server[0], ca, host=host))
    assert failure.value.certificate


def test_a_server_that_never_answers_is_cut_off_at_the_timeout(
    adapter: str, server: tuple[int, list[str]], ca_file: str
) -> None:
    with pytest.raises(HTTPSFailed, match="timed out") as failure:
        perform(adapter, get(server[0], ca_file, path="/stall", timeout=0.5))
    assert not failure.value.certificate


def test_nothing_listening_is_a_fetch_failure(adapter: str, ca_file: str) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(HTTPSFailed) as failure, contextlib.suppress(TimeoutError):
        perform(adapter, get(port, ca_file))
    assert not failure.value.certificate
