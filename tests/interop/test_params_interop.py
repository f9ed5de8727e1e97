"""smtp(8) parameters against the private Postfix: implicit TLS on its port-465 style service,
lookup tables, and loading the instance's own configuration (``postconf -n``, master.cf).

Every test runs once per adapter where an adapter is involved (the ``client`` fixture).
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from smtpproto.adapters import cli
from smtpproto.adapters.postfix import load, read_file

from smtpproto.config import ClientConfig

from . import servers
from .servers import DOMAIN, Client, PostfixServer

pytestmark = pytest.mark.interop

RECIPIENT = f"carol@{DOMAIN}"


def _tag() -> str:
    return f"params-{uuid.uuid4().hex}"


def _smtps(server: PostfixServer) -> str:
    return f"[{server.host}]:{server.port_smtps}"


def _wrapper_config(server: PostfixServer, **parameters: str) -> ClientConfig:
    return servers.client_config(
        tls_wrappermode="yes",
        tls_security_level="encrypt",
        tls_CAfile=str(server.tls.ca_pem),
        starttls_timeout="10s",
        **parameters,
    )


# -- smtp_tls_wrappermode -------------------------------------------------------------------


@pytest.mark.parameter("smtp_tls_wrappermode")
def test_wrappermode_delivers_over_implicit_tls(
    client: Client, postfix_server: PostfixServer
) -> None:
    marker = _tag()
    report = client.deliver(
        _smtps(postfix_server),
        recipients=[RECIPIENT],
        message=servers.make_message(marker),
        config=_wrapper_config(postfix_server),
    )
    (result,) = report.recipients
    assert result.status == "sent", result.diagnostic
    assert result.tls is not None and result.tls.version in ("TLSv1.2", "TLSv1.3")
    assert not any("STARTTLS" in line for line in report.transcript)
    assert report.transcript[0].endswith(
        "TLS connection established to "
        f"{postfix_server.host}[{postfix_server.host}]:"
        f"{postfix_server.port_smtps}: {result.tls.version} "
        f"with cipher {result.tls.cipher}"
    )
    assert report.transcript[1].startswith("In: 220 ")  # the greeting came inside TLS
    (message,) = postfix_server.wait_for_delivery(RECIPIENT, contains=marker.encode())
    assert b"(using TLS" in message  # smtpd_tls_received_header: Postfix saw TLS


@pytest.mark.parameter("smtp_tls_wrappermode")
def test_wrappermode_verifies_the_certificate_with_a_policy_table(
    client: Client, postfix_server: PostfixServer
) -> None:
    destination = _smtps(postfix_server)
    config = _wrapper_config(
        postfix_server,
        tls_policy_maps=f"inline:{{ {{ {destination} = verify match=mail.{DOMAIN} }} }}",
    )
    report = client.deliver(
        destination, recipients=[RECIPIENT], message=servers.make_message(_tag()), config=config
    )
    (result,) = report.recipients
    assert result.status == "sent", result.diagnostic
    assert result.tls is not None and result.tls.trust == "Verified"


@pytest.mark.parameter("smtp_tls_wrappermode")
def test_wrappermode_against_a_plaintext_service_fails_the_handshake(
    client: Client, postfix_server: PostfixServer
) -> None:
    # The STARTTLS port greets in plaintext: the handshake fails, nothing is sent in clear.
    report = client.deliver(
        f"[{postfix_server.host}]:{postfix_server.port}",
        recipients=[RECIPIENT],
        message=servers.make_message(_tag()),
        config=_wrapper_config(postfix_server),
    )
    (result,) = report.recipients
    assert (result.status, result.dsn) == ("deferred", "4.7.5")
    assert not any(line.startswith("Out:") for line in report.transcript)


@pytest.mark.parameter("smtp_tls_wrappermode", "smtp_sasl_auth_enable")
def test_wrappermode_then_auth_through_dovecot(
    client: Client, postfix_server: PostfixServer
) -> None:
    if not postfix_server.sasl:
        servers.unavailable("Postfix runs without Dovecot SASL: apt-get install dovecot-core")
    user, password = next(iter(postfix_server.sasl_users.items()))
    destination = _smtps(postfix_server)
    config = _wrapper_config(
        postfix_server,
        sasl_auth_enable="yes",
        sasl_tls_security_options="noanonymous",
        sasl_password_maps=f"inline:{{ {{ {destination} = {user}:{password} }} }}",
    )
    marker = _tag()
    report = client.deliver(
        destination, recipients=[RECIPIENT], message=servers.make_message(marker), config=config
    )
    (result,) = report.recipients
    assert result.status == "sent", result.diagnostic
    assert any(line.startswith("In: 235 ") for line in report.transcript)
    assert password not in "\n".join(report.transcript)
    postfix_server.wait_for_delivery(RECIPIENT, contains=marker.encode())


@pytest.mark.parameter("smtp_tls_wrappermode")
def test_the_command_talks_implicit_tls_with_o_options(
    postfix_server: PostfixServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = _tag()
    message = tmp_path / "message.eml"
    message.write_bytes(servers.make_message(marker))
    status = cli.main(
        [
            "deliver",
            "--from", servers.SENDER,
            "--to", RECIPIENT,
            "--dest", _smtps(postfix_server),
            "-o", "smtp_tls_wrappermode=yes",
            "-o", "smtp_tls_security_level=encrypt",
            "-o", "smtp_helo_name=client.example.test",
            "-o", "smtp_starttls_timeout=10s",
            str(message),
        ]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert status == 0, out
    assert "status=sent" in out
    postfix_server.wait_for_delivery(RECIPIENT, contains=marker.encode())


# -- Postfix's own configuration ------------------------------------------------------------


def _postconf(server: PostfixServer, *arguments: str) -> str:
    binary = shutil.which("postconf") or servers.unavailable(
        "postconf is missing: apt-get install postfix"
    )
    done = subprocess.run(
        [binary, "-c", str(server.base / "etc"), *arguments],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout


def test_postconf_n_of_the_running_instance_loads(postfix_server: PostfixServer) -> None:
    text = _postconf(postfix_server, "-n")
    assert "smtpd_tls_security_level = may" in text  # other programs' settings are in it
    config = ClientConfig.from_main_cf(text, reader=read_file)
    assert config.myhostname == config.helo_name == f"mail.{DOMAIN}"
    assert config.inet_protocols == frozenset({"ipv4"})
    assert config.inet_interfaces == ("127.0.0.1", "::1")
    assert config.dns_support_level == "disabled"  # smtp_dns_support_level = disabled
    assert config.minimal_backoff_time == 1


def test_the_instances_own_configuration_delivers_to_it(
    client: Client, postfix_server: PostfixServer
) -> None:
    # main.cf and master.cf as Postfix reads them, through the adapters' loader.
    relay = load(str(postfix_server.base / "etc"), service="relay")
    assert not relay.lmtp and relay.dns_support_level == "disabled"
    config = dataclasses.replace(
        relay, tls_CAfile=str(postfix_server.tls.ca_pem), helo_timeout=10.0, mail_timeout=10.0
    )
    marker = _tag()
    report = client.deliver(
        f"[{postfix_server.host}]:{postfix_server.port}",
        recipients=[RECIPIENT],
        message=servers.make_message(marker),
        config=config,
    )
    (result,) = report.recipients
    assert result.status == "sent", result.diagnostic
    assert result.tls is not None  # the library's default level (may) against smtpd's STARTTLS
    postfix_server.wait_for_delivery(RECIPIENT, contains=marker.encode())


def test_the_instances_texthash_table_is_read_through_the_reader(
    postfix_server: PostfixServer,
) -> None:
    # recipient_access is a smtpd table; read as a client table it shows texthash: parsing.
    path = postfix_server.base / "etc" / "recipient_access"
    config = ClientConfig.from_postconf({"smtp_generic_maps": f"texthash:{path}"}, reader=read_file)
    entries = [
        line.split(None, 1)
        for line in path.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert entries
    for key, value in entries:
        assert config.generic_maps.get(key.upper()) == value.strip()
