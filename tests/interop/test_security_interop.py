"""STARTTLS levels and SASL AUTH against the private Postfix (and Dovecot SASL), per adapter.

``may``/``encrypt``/``verify`` with the interop trustme CA, a CA Postfix's
certificate does not chain to, and AUTH PLAIN under TLS through Dovecot's auth socket.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from typing import Any

import pytest
import trio
import trustme
from smtpproto.adapters import asyncio as aio_adapter
from smtpproto.adapters import blocking as blocking_adapter
from smtpproto.adapters import trio as trio_adapter

from smtpproto.config import ClientConfig

from . import servers
from .servers import DOMAIN, PostfixServer

pytestmark = pytest.mark.interop

ADAPTERS = ["blocking", "asyncio", "trio"]
RECIPIENT = f"carol@{DOMAIN}"


@pytest.fixture(params=ADAPTERS)
def adapter(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def deliver(adapter: str, destination: str, config: ClientConfig, tag: str) -> Any:
    message = f"Subject: {tag}\r\nMessage-ID: <{tag}@client.test>\r\n\r\nhello\r\n".encode()
    arguments: dict[str, Any] = {
        "sender": f"sender@{DOMAIN}",
        "recipients": [RECIPIENT],
        "message": message,
        "config": config,
    }
    if adapter == "blocking":
        return blocking_adapter.deliver(destination, **arguments)
    if adapter == "asyncio":
        return asyncio.run(aio_adapter.deliver(destination, **arguments))
    return trio.run(functools.partial(trio_adapter.deliver, destination, **arguments))


def destination(server: PostfixServer) -> str:
    return f"[{server.host}]:{server.port}"


def config(server: PostfixServer, **parameters: Any) -> ClientConfig:
    values = {
        "smtp_helo_name": "client.test",
        "smtp_tls_CAfile": str(server.tls.ca_pem),
        "smtp_helo_timeout": "15s",
        "smtp_starttls_timeout": "15s",
    }
    values.update({"smtp_" + k: v for k, v in parameters.items()})
    return ClientConfig.from_postconf(values)


def tag() -> str:
    return f"sec-{uuid.uuid4().hex}"


@pytest.mark.parametrize("level", ["may", "encrypt"])
def test_starttls_opportunistic_and_mandatory(
    adapter: str, level: str, postfix_server: PostfixServer
) -> None:
    marker = tag()
    report = deliver(
        adapter,
        destination(postfix_server),
        config(postfix_server, tls_security_level=level),
        marker,
    )
    (result,) = report.recipients
    assert result.status == "sent", result.diagnostic
    assert result.tls is not None and result.tls.trust == "Untrusted"
    assert result.tls.version in ("TLSv1.2", "TLSv1.3")
    (message,) = postfix_server.wait_for_delivery(RECIPIENT, contains=marker.encode())
    assert b"(using TLS" in message  # smtpd_tls_received_header: Postfix saw TLS


def test_starttls_verify_with_the_test_ca(adapter: str, postfix_server: PostfixServer) -> None:
    marker = tag()
    cfg = config(
        postfix_server,
        tls_security_level="may",
        tls_policy_maps={destination(postfix_server): f"verify match=mail.{DOMAIN}"},
    )
    report = deliver(adapter, destination(postfix_server), cfg, marker)
    (result,) = report.recipients
    assert result.status == "sent", result.diagnostic
    assert result.tls is not None and result.tls.trust == "Verified"
    postfix_server.wait_for_delivery(RECIPIENT, contains=marker.encode())


def test_starttls_verify_with_another_ca_defers(
    adapter: str, postfix_server: PostfixServer, tmp_path: Any
) -> None:
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    cfg = config(
        postfix_server,
        tls_CAfile=str(other),
        tls_policy_maps={destination(postfix_server): f"verify match=mail.{DOMAIN}"},
    )
    report = deliver(adapter, destination(postfix_server), cfg, tag())
    (result,) = report.recipients
    assert (result.status, result.dsn) == ("deferred", "4.7.5")
    # Postfix's words for a chain it does not trust, not a bare "handshake failure".
    assert result.diagnostic == "Server certificate not trusted"
    assert any("certificate verify failed" in line.lower() for line in report.transcript)


def test_starttls_verify_with_a_name_the_certificate_lacks_quits(
    adapter: str, postfix_server: PostfixServer
) -> None:
    cfg = config(
        postfix_server,
        tls_policy_maps={destination(postfix_server): "verify match=elsewhere.example.net"},
    )
    report = deliver(adapter, destination(postfix_server), cfg, tag())
    (result,) = report.recipients
    assert (result.status, result.dsn) == ("deferred", "4.7.5")
    assert result.diagnostic.startswith(
        "Server certificate not verified (expected elsewhere.example.net; presented "
    )
    assert report.transcript[-1] == "Out: QUIT"


def require_sasl(server: PostfixServer) -> None:
    if not server.sasl:
        servers.unavailable("Postfix runs without Dovecot SASL: apt-get install dovecot-core")


def sasl_config(server: PostfixServer, password: str, **extra: Any) -> ClientConfig:
    user = next(iter(server.sasl_users))
    values: dict[str, Any] = {"tls_security_level": "encrypt", **extra}
    return config(
        server,
        sasl_auth_enable="yes",
        # The library's default (PLAIN under TLS); from_postconf alone keeps Postfix's.
        sasl_tls_security_options="noanonymous",
        sasl_password_maps={destination(server): f"{user}:{password}"},
        **values,
    )


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256"])
def test_auth_under_tls_via_dovecot(
    adapter: str, mechanism: str, postfix_server: PostfixServer
) -> None:
    require_sasl(postfix_server)
    user, password = next(iter(postfix_server.sasl_users.items()))
    marker = tag()
    cfg = sasl_config(postfix_server, password, sasl_mechanism_filter=mechanism.lower())
    report = deliver(adapter, destination(postfix_server), cfg, marker)
    (result,) = report.recipients
    assert result.status == "sent", result.diagnostic
    assert any(line.startswith(f"Out: AUTH {mechanism}") for line in report.transcript)
    assert any(line.startswith("In: 235 ") for line in report.transcript)
    assert password not in "\n".join(report.transcript)
    postfix_server.wait_for_delivery(RECIPIENT, contains=marker.encode())
    log = postfix_server.log.read_text(errors="replace")
    assert f"sasl_method={mechanism}, sasl_username={user}" in log


def test_auth_wrong_password_defers(adapter: str, postfix_server: PostfixServer) -> None:
    require_sasl(postfix_server)
    report = deliver(
        adapter, destination(postfix_server), sasl_config(postfix_server, "not-the-password"), tag()
    )
    (result,) = report.recipients
    assert (result.status, result.dsn) == ("deferred", "4.7.8")
    assert result.diagnostic.startswith("SASL authentication failed; server ")
    assert "not-the-password" not in "\n".join(report.transcript) + result.diagnostic


def test_auth_is_not_offered_before_tls_so_none_level_goes_on_unauthenticated(
    adapter: str, postfix_server: PostfixServer
) -> None:
    require_sasl(postfix_server)
    password = next(iter(postfix_server.sasl_users.values()))
    cfg = sasl_config(postfix_server, password, tls_security_level="none")
    marker = tag()
    report = deliver(adapter, destination(postfix_server), cfg, marker)
    (result,) = report.recipients
    assert result.status == "sent", result.diagnostic  # relayed as $mynetworks, rule 11.3
    assert result.tls is None
    assert not any(line.startswith("Out: AUTH") for line in report.transcript)
    postfix_server.wait_for_delivery(RECIPIENT, contains=marker.encode())
