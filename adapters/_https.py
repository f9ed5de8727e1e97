"""The MTA-STS policy fetch (RFC 8461 3.3) for every adapter: `fetch`, blocking, stdlib only.

The engine resolves ``mta-sts.<domain>`` itself (through the adapter's resolver, so the
lookup goes where every other lookup goes) and asks for one ``HTTPSGet`` per address. Here:
one ``GET`` over HTTPS to that address, the certificate verified for the host name (the
system store, or ``tls_CAfile``/``tls_CApath``), TLS 1.2 or newer, no redirect followed
(`http.client` follows none), at most ``max_bytes + 1`` body octets read, and the whole
exchange cut off at ``timeout`` seconds by a timer that shuts the socket down, so that a
server trickling its headers cannot hold it longer. The asyncio and trio adapters run it in
a worker thread; judging the response is the core's (`smtpproto.engine.mtasts`).
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading

from smtpproto.requests import HTTPResponse, HTTPSFailed, HTTPSGet

__all__ = ["fetch"]

_READ = 16384


class _Connection(http.client.HTTPSConnection):
    """An HTTPS connection to a given address, verifying the certificate for `host`."""

    def __init__(self, request: HTTPSGet, context: ssl.SSLContext) -> None:
        super().__init__(request.host, request.port, timeout=request.timeout, context=context)
        self._address = request.address
        self._context = context

    def connect(self) -> None:
        """TCP to the address the engine resolved, TLS with SNI and checks for the host."""
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)


def _context(request: HTTPSGet) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=request.ca_file, capath=request.ca_path)
    # RFC 8461 3.3: HTTPS with a certificate valid for the host name (check_hostname stays
    # on), TLS 1.2 or newer as for the SMTP sessions the policy will govern (RFC 8461 4.2).
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def fetch(request: HTTPSGet) -> HTTPResponse:
    """Perform `request`; `HTTPSFailed` for anything but an HTTP response (any status)."""
    try:
        connection = _Connection(request, _context(request))
    except (OSError, ValueError) as error:
        raise HTTPSFailed(f"TLS configuration: {error}") from None
    expired = threading.Event()
    timer = threading.Timer(request.timeout, _cut, (connection, expired))
    timer.daemon = True
    timer.start()
    try:
        connection.request("GET", request.path, headers={"Connection": "close"})
        response = connection.getresponse()
        body = bytearray()
        while len(body) <= request.max_bytes:
            chunk = response.read(min(_READ, request.max_bytes + 1 - len(body)))
            if not chunk:
                break
            body += chunk
        return HTTPResponse(response.status, response.getheader("Content-Type"), bytes(body))
    except ssl.SSLCertVerificationError as error:
        raise HTTPSFailed(
            f"certificate not valid: {error.verify_message}", certificate=True
        ) from None
    except (OSError, http.client.HTTPException) as error:
        late = expired.is_set() or isinstance(error, TimeoutError)
        reason = (
            f"timed out after {request.timeout}s" if late else str(error) or type(error).__name__
        )
        raise HTTPSFailed(reason) from None
    finally:
        timer.cancel()
        connection.close()


def _cut(connection: http.client.HTTPSConnection, expired: threading.Event) -> None:
    """The deadline passed: make the blocked read or write return now."""
    expired.set()
    sock = connection.sock
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
