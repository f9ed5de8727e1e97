"""The two configuration parsers authenticated TLS added: PEM trust anchors and fingerprints.

Unit cases beside hypothesis properties: whatever text comes in, the result is the
anchors or fingerprints it holds, or a `LocalProtocolError` (the text is the caller's
configuration), never half of it and never another exception.
"""

from __future__ import annotations

import base64
import ssl
import textwrap

import pytest
import trustme
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpproto import LocalProtocolError
from smtpproto._x509 import Certificate, TrustAnchors
from smtpproto.engine.tlspolicy import parse_fingerprints

FAST = settings(max_examples=300, deadline=None)
CA_DER = ssl.PEM_cert_to_DER_cert(trustme.CA().cert_pem.bytes().decode())
KEY_DER = Certificate.from_der(CA_DER).spki


def pem(label: str, der: bytes) -> str:
    body = "\n".join(textwrap.wrap(base64.b64encode(der).decode(), 64))
    return f"-----BEGIN {label}-----\n{body}\n-----END {label}-----\n"


def test_certificates_and_keys_are_read_in_order_with_text_around_them() -> None:
    text = f"# anchors\n{pem('CERTIFICATE', CA_DER)}comment\n{pem('PUBLIC KEY', KEY_DER)}"
    anchors = TrustAnchors.from_pem(text + pem("CERTIFICATE", CA_DER))
    assert anchors.certificates == (CA_DER, CA_DER)
    assert anchors.keys == (KEY_DER,)
    assert anchors and not TrustAnchors.from_pem("no PEM at all")


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (pem("RSA PRIVATE KEY", b"\x30\x00"), "not a trust anchor"),
        (pem("CERTIFICATE", b"\x30\x03\x02\x01\x00"), "malformed CERTIFICATE"),
        (pem("PUBLIC KEY", CA_DER), "malformed PUBLIC KEY"),
        ("-----BEGIN CERTIFICATE-----\nMIIB\n", "cannot be read"),
        ("-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n", "not base64"),
    ],
)
def test_anything_but_anchors_is_refused_whole(text: str, error: str) -> None:
    with pytest.raises(LocalProtocolError, match=error):
        TrustAnchors.from_pem(pem("CERTIFICATE", CA_DER) + text, what="/etc/ta.pem")


@FAST
@given(st.text(alphabet=st.sampled_from("-BEGINCRTFAKYUL \n=+/AZaz09"), max_size=400))
def test_any_text_gives_anchors_or_a_local_error(text: str) -> None:
    try:
        anchors = TrustAnchors.from_pem(text)
    except LocalProtocolError:
        return
    assert anchors == TrustAnchors()  # no real certificate can come out of noise


@FAST
@given(st.lists(st.sampled_from(["CERTIFICATE", "PUBLIC KEY"]), max_size=5), st.text(max_size=20))
def test_generated_files_read_back_exactly(labels: list[str], noise: str) -> None:
    noise = noise.replace("-", "")
    text = noise.join(pem(label, CA_DER if label == "CERTIFICATE" else KEY_DER) for label in labels)
    anchors = TrustAnchors.from_pem(text)
    assert len(anchors.certificates) == labels.count("CERTIFICATE")
    assert len(anchors.keys) == labels.count("PUBLIC KEY")


def test_fingerprints_accept_colons_case_and_postfix_separators() -> None:
    # postconf(5): colons optional since Postfix 3.6; "|" joins several in one match=.
    assert parse_fingerprints("AB:CD:EF, abcdef|01:02") == ("abcdef", "0102")
    with pytest.raises(LocalProtocolError, match="hexadecimal"):
        parse_fingerprints("AB:C")


@FAST
@given(st.binary(min_size=1, max_size=64), st.booleans(), st.booleans())
def test_a_digest_reads_back_however_it_is_written(
    digest: bytes, colons: bool, upper: bool
) -> None:
    text = digest.hex(":") if colons else digest.hex()
    assert parse_fingerprints(text.upper() if upper else text) == (digest.hex(),)


@FAST
@given(st.text(max_size=60))
def test_any_fingerprint_text_gives_hex_or_a_local_error(text: str) -> None:
    try:
        found = parse_fingerprints(text)
    except LocalProtocolError:
        return
    assert all(f and len(f) % 2 == 0 and int(f, 16) >= 0 for f in found)
