"""The one place that turns the engine's `TLSParameters` into an `ssl.SSLContext`."""

from __future__ import annotations

import _ssl
import contextlib
import ssl
import warnings
from collections.abc import Iterator

from smtpproto.requests import TLSFailed, TLSInfo, TLSParameters

__all__ = ["client_context", "handshake_failure", "peer_chain", "tls_info"]

_VERSIONS = {
    "TLSv1": ssl.TLSVersion.TLSv1,
    "TLSv1.1": ssl.TLSVersion.TLSv1_1,
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}


def client_context(parameters: TLSParameters) -> ssl.SSLContext:
    """Build a client context: chain verification only when asked, never host-name checks."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # The engine matches TLSInfo.peer_certificate against its policy's names itself (Postfix
    # smtp_tls_verify_cert_match), so the library check would be both redundant and wrong.
    context.check_hostname = False
    if parameters.verify:
        context.verify_mode = ssl.CERT_REQUIRED
        if parameters.ca_file is None and parameters.ca_path is None:
            context.load_default_certs(ssl.Purpose.SERVER_AUTH)
        else:
            with _naming("tls_CAfile", parameters.ca_file or parameters.ca_path):
                context.load_verify_locations(cafile=parameters.ca_file, capath=parameters.ca_path)
    else:
        # Opportunistic TLS ("may", "encrypt"): Postfix does not require a valid chain there.
        context.verify_mode = ssl.CERT_NONE
    try:
        version = _VERSIONS[parameters.min_version]
    except KeyError:
        raise ValueError(f"TLSParameters.min_version: unknown {parameters.min_version!r}") from None
    with warnings.catch_warnings():
        # Postfix's opportunistic floor (smtp_tls_protocols >=TLSv1) is asked for on purpose:
        # at "may" an old TLS beats plaintext. Mandatory levels never go below TLSv1.2.
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = version
    if parameters.ciphers is not None:
        context.set_ciphers(parameters.ciphers)
    if parameters.cert_file is not None:
        with _naming("tls_cert_file", parameters.cert_file):
            context.load_cert_chain(parameters.cert_file, parameters.key_file)
    return context


@contextlib.contextmanager
def _naming(parameter: str, path: str | None) -> Iterator[None]:
    # "[Errno 2] No such file or directory" alone does not say which file; a local mistake
    # must be told apart from a server's TLS failure at a glance.
    try:
        yield
    except OSError as error:
        raise ValueError(f"{parameter} {path}: {error.strerror or error}") from None


def peer_chain(ssl_object: ssl.SSLObject | ssl.SSLSocket) -> tuple[bytes, ...]:
    """The certificates the server sent, DER, its own first, whether or not they verified.

    Python 3.13 has ``get_unverified_chain()``; 3.10 to 3.12 have it on the private
    ``_sslobj`` of both `ssl.SSLSocket` and `ssl.SSLObject` (asyncio's, and the one inside
    trio's ``SSLStream``), as certificate objects. Without either, the server's own
    certificate alone, which DANE-EE and the ``fingerprint`` level need.
    """
    # trio's SSLStream forwards only some attributes to the SSLObject it wraps.
    ssl_object = getattr(ssl_object, "_ssl_object", ssl_object)
    public = getattr(ssl_object, "get_unverified_chain", None)
    private = getattr(getattr(ssl_object, "_sslobj", None), "get_unverified_chain", None)
    chain = (public or private or (lambda: None))()
    if chain:
        return tuple(
            c if isinstance(c, bytes) else c.public_bytes(_ssl.ENCODING_DER) for c in chain
        )
    leaf = ssl_object.getpeercert(binary_form=True)
    return (leaf,) if leaf else ()


def tls_info(ssl_object: ssl.SSLObject | ssl.SSLSocket, parameters: TLSParameters) -> TLSInfo:
    """Describe a completed handshake; the peer certificate is reported only once verified."""
    cipher = ssl_object.cipher()
    return TLSInfo(
        version=ssl_object.version() or "",
        cipher=cipher[0] if cipher else "",
        chain_verified=parameters.verify,
        peer_certificate=dict(ssl_object.getpeercert() or {}) if parameters.verify else None,
        peer_chain=peer_chain(ssl_object),
    )


def handshake_failure(error: BaseException) -> TLSFailed:
    """The `TLSFailed` for an exception of a handshake, telling a chain that did not verify
    (trio wraps the `ssl` error as the cause of its own) from other failures."""
    cause: BaseException | None = error
    for _ in range(4):
        if cause is None:
            break
        if isinstance(cause, ssl.SSLCertVerificationError):
            # Its own words: trio's wrapper around it says only that the stream broke.
            return TLSFailed(
                f"TLS handshake failed: certificate verify failed: {cause.verify_message}",
                certificate=True,
            )
        cause = cause.__cause__ or cause.__context__
    return TLSFailed(f"TLS handshake failed: {error or 'timed out'}")
