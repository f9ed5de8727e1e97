"""smtp_bind_address against Postfix: the server sees the configured source address."""

from __future__ import annotations

import pytest

from .servers import DOMAIN, Client, PostfixServer, client_config

pytestmark = pytest.mark.interop


def test_bind_address_is_the_source_the_server_sees(
    client: Client, postfix_server: PostfixServer
) -> None:
    # Any 127/8 address is local on Linux, so 127.0.0.2 can reach Postfix on 127.0.0.1.
    subject = f"bind-{client.adapter}".encode()
    report = client.deliver(
        f"[{postfix_server.host}]:{postfix_server.port}",
        recipients=[f"carol@{DOMAIN}"],
        message=b"Subject: " + subject + b"\r\n\r\nfrom 127.0.0.2\r\n",
        config=client_config(bind_address="127.0.0.2"),
    )
    assert [r.status for r in report.recipients] == ["sent"]
    (stored,) = postfix_server.wait_for_delivery(f"carol@{DOMAIN}", contains=subject)
    received = stored.split(b"\nReceived: ", 1)[1].split(b"\n\t", 2)
    assert b"[127.0.0.2]" in b"".join(received[:2]), stored[:400]
