"""The DER walk over certificates (smtpproto._x509) and stdlib signature checks.

Checked against the cryptography package's view of the same certificates, and fuzzed: the
walker sees the peer's bytes, so nothing but `RemoteProtocolError` may come out of it.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib

import pytest
import trustme
from certs import NOW, issue, new_key, spki_of, trustme_chain
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smtpproto import RemoteProtocolError
from smtpproto._signatures import verify_signature
from smtpproto._x509 import MAX_CERTIFICATE_SIZE, Certificate, decode_oid
from smtpproto.engine.tlspolicy import matched_name

CHAIN = trustme_chain("mx.example.test", "*.example.net")
RSA_CHAIN = trustme_chain("mx.example.test", key_type=trustme.KeyType.RSA)


@pytest.mark.parametrize("chain", [CHAIN, RSA_CHAIN], ids=["ecdsa", "rsa"])
@pytest.mark.parametrize("which", ["server", "intermediate", "root"])
def test_fields_agree_with_cryptography(chain: object, which: str) -> None:
    der = getattr(chain, which)
    ours = Certificate.from_der(der)
    theirs = x509.load_der_x509_certificate(der)
    assert ours.der == der
    assert ours.tbs == theirs.tbs_certificate_bytes
    assert ours.signature == theirs.signature
    assert ours.signature_algorithm == theirs.signature_algorithm_oid.dotted_string
    assert ours.spki == spki_of(der)
    assert ours.not_before == int(theirs.not_valid_before_utc.timestamp())
    assert ours.not_after == int(theirs.not_valid_after_utc.timestamp())
    assert ours.issuer == theirs.issuer.public_bytes()
    assert ours.subject == theirs.subject.public_bytes()
    constraints = theirs.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert ours.is_ca == constraints.ca
    assert ours.path_length == constraints.path_length
    assert ours.unhandled_critical == ()


def test_server_certificate_names_and_key_usage() -> None:
    server = Certificate.from_der(CHAIN.server)
    assert server.dns_names == ("mx.example.test", "*.example.net")
    assert server.is_ca is False
    assert server.key_usage is not None and 5 not in server.key_usage
    intermediate = Certificate.from_der(CHAIN.intermediate)
    assert intermediate.key_usage is not None and 5 in intermediate.key_usage
    assert intermediate.issuer == Certificate.from_der(CHAIN.root).subject


def test_peercert_feeds_the_shared_name_matcher() -> None:
    # RFC 6125 6.4.4: the CN counts only without a DNS-ID; one wildcard label at most.
    server = Certificate.from_der(CHAIN.server)
    assert matched_name(server.peercert(), ["mx.example.test"]) == "mx.example.test"
    assert matched_name(server.peercert(), ["a.example.net"]) == "a.example.net"
    assert matched_name(server.peercert(), ["a.b.example.net"]) is None
    cn_only = Certificate.from_der(issue("cn.example.test").der)
    assert cn_only.common_names == ("cn.example.test",)
    assert matched_name(cn_only.peercert(), ["cn.example.test"]) == "cn.example.test"


def test_unknown_critical_extension_is_recorded() -> None:
    odd = Certificate.from_der(issue("odd.example.test", critical_unknown=True).der)
    assert odd.unhandled_critical == ("1.3.6.1.4.1.99999.1",)


@pytest.mark.parametrize(
    ("when", "tag"),
    [
        (datetime.datetime(2049, 12, 31, 23, 59, 59, tzinfo=datetime.UTC), 0x17),
        (datetime.datetime(2050, 1, 1, tzinfo=datetime.UTC), 0x18),
    ],
)
def test_utctime_and_generalizedtime(when: datetime.datetime, tag: int) -> None:
    # RFC 5280 4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050 on.
    der = issue("t.example.test", not_after=when).der
    assert bytes([tag]) in der
    assert Certificate.from_der(der).not_after == int(when.timestamp())


def test_validity_window() -> None:
    server = Certificate.from_der(issue("v.example.test").der)
    now = int(NOW.timestamp())
    assert server.valid_at(now)
    assert not server.valid_at(server.not_after + 1)
    assert not server.valid_at(server.not_before - 1)


@pytest.mark.parametrize(
    ("value", "dotted"),
    [
        (bytes.fromhex("2a864886f70d01010b"), "1.2.840.113549.1.1.11"),
        (bytes.fromhex("550403"), "2.5.4.3"),
        (bytes.fromhex("8837"), "2.999"),
        (bytes.fromhex("00"), "0.0"),
    ],
)
def test_decode_oid(value: bytes, dotted: str) -> None:
    assert decode_oid(value) == dotted


@pytest.mark.parametrize("value", [b"", b"\x86", bytes.fromhex("2a80")[:1] + b"\x80\x01"])
def test_decode_oid_refuses_truncated_or_padded_arcs(value: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_oid(value)


def _mutations() -> list[bytes]:
    der = CHAIN.server
    return [
        der + b"\x00",  # trailing data
        der[:-1],  # truncated
        b"\x30\x80" + der[2:],  # BER indefinite length
        b"\x30\x82\x00" + der[3:],  # non-minimal length
        b"\x31" + der[1:],  # SET instead of SEQUENCE
        b"",
    ]


@pytest.mark.parametrize("data", _mutations())
def test_der_violations_are_refused(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        Certificate.from_der(data)


def test_oversized_input_is_refused_before_parsing() -> None:
    with pytest.raises(RemoteProtocolError, match="larger than"):
        Certificate.from_der(b"\x30" + b"\x00" * MAX_CERTIFICATE_SIZE)


@given(st.binary(max_size=512))
def test_arbitrary_bytes_raise_only_our_error(data: bytes) -> None:
    with contextlib.suppress(RemoteProtocolError):
        Certificate.from_der(data)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_certificates_raise_only_our_error(data: st.DataObject) -> None:
    # Small edits of a real certificate reach deep into the walker, unlike random bytes.
    der = bytearray(data.draw(st.sampled_from([CHAIN.server, RSA_CHAIN.intermediate])))
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(der) - 1))
        action = data.draw(st.sampled_from(["flip", "drop", "insert"]))
        if action == "flip":
            der[position] = data.draw(st.integers(0, 255))
        elif action == "drop":
            del der[position]
        else:
            der.insert(position, data.draw(st.integers(0, 255)))
    try:
        certificate = Certificate.from_der(bytes(der))
    except RemoteProtocolError:
        return
    certificate.peercert()


# --- signatures: stdlib arithmetic against cryptography's ------------------------------------

_EC_KEYS = {"p256": new_key("ec"), "p384": new_key("p384")}
_RSA_KEY = new_key("rsa")
_HASHES = {"sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}
_EC_OIDS = {
    "sha256": "1.2.840.10045.4.3.2",
    "sha384": "1.2.840.10045.4.3.3",
    "sha512": "1.2.840.10045.4.3.4",
}
_RSA_OIDS = {
    "sha256": "1.2.840.113549.1.1.11",
    "sha384": "1.2.840.113549.1.1.12",
    "sha512": "1.2.840.113549.1.1.13",
}


def _spki(key: object) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.public_key().public_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@settings(max_examples=30, deadline=None)
@given(
    message=st.binary(max_size=300),
    curve=st.sampled_from(sorted(_EC_KEYS)),
    digest=st.sampled_from(sorted(_HASHES)),
    flip=st.integers(0, 10_000),
)
def test_ecdsa_agrees_with_cryptography(message: bytes, curve: str, digest: str, flip: int) -> None:
    key = _EC_KEYS[curve]
    signature = key.sign(message, ec.ECDSA(_HASHES[digest]))
    spki = _spki(key)
    assert verify_signature(spki, _EC_OIDS[digest], b"", message, signature)
    assert not verify_signature(spki, _EC_OIDS[digest], b"", message + b"!", signature)
    tampered = bytearray(signature)
    tampered[flip % len(tampered)] ^= 0x01
    try:
        key.public_key().verify(bytes(tampered), message, ec.ECDSA(_HASHES[digest]))
        theirs = True
    except Exception:
        theirs = False
    assert verify_signature(spki, _EC_OIDS[digest], b"", message, bytes(tampered)) is theirs


@settings(max_examples=20, deadline=None)
@given(message=st.binary(max_size=300), digest=st.sampled_from(sorted(_HASHES)))
def test_rsa_pkcs1v15_agrees_with_cryptography(message: bytes, digest: str) -> None:
    signature = _RSA_KEY.sign(message, padding.PKCS1v15(), _HASHES[digest])
    spki = _spki(_RSA_KEY)
    for parameters in (b"", b"\x05\x00"):
        assert verify_signature(spki, _RSA_OIDS[digest], parameters, message, signature)
    assert not verify_signature(spki, _RSA_OIDS[digest], b"", message + b"!", signature)
    assert not verify_signature(spki, _RSA_OIDS[digest], b"\x01\x01\xff", message, signature)


def test_unsupported_algorithms_fail_closed() -> None:
    ed = issue("ed.example.test", key=new_key("ed25519"))
    certificate = Certificate.from_der(ed.der)
    assert certificate.signature_algorithm == "1.3.101.112"
    assert not verify_signature(
        certificate.spki, "1.3.101.112", b"", certificate.tbs, certificate.signature
    )
    # RSASSA-PSS (RFC 4055 3.1) is not among the algorithms verified.
    message = b"tbs"
    pss = _RSA_KEY.sign(message, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())
    assert not verify_signature(_spki(_RSA_KEY), "1.2.840.113549.1.1.10", b"", message, pss)
    # An ECDSA key on a curve outside P-256/P-384.
    p521 = ec.generate_private_key(ec.SECP521R1())
    signature = p521.sign(message, ec.ECDSA(hashes.SHA256()))
    assert not verify_signature(_spki(p521), _EC_OIDS["sha256"], b"", message, signature)


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _tlv(tag: int, value: bytes) -> bytes:
    return bytes([tag]) + _der_length(len(value)) + value


def _int(value: int) -> bytes:
    return _tlv(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def _rsa_spki(modulus: int, exponent: int) -> bytes:
    algorithm = _tlv(0x30, _tlv(0x06, bytes.fromhex("2a864886f70d010101")) + b"\x05\x00")
    key = _tlv(0x30, _int(modulus) + _int(exponent))
    return _tlv(0x30, algorithm + _tlv(0x03, b"\x00" + key))


def test_bleichenbacher_2006_forgery_is_refused() -> None:
    # With e = 3, a cube root of 00 01 FF 00 DigestInfo H || garbage "verifies" in a checker
    # that parses the block and ignores what follows the hash. Ours re-encodes and compares.
    modulus = (1 << 2047) + 0x1F3  # only its size matters: the forged value is below it
    message = b"forged"
    prefix = (
        b"\x00\x01\xff\x00"
        + bytes.fromhex("3031300d060960864801650304020105000420")
        + hashlib.sha256(message).digest()
    )
    garbage_bits = 8 * (256 - len(prefix))
    target = int.from_bytes(prefix, "big") << garbage_bits
    low, high = 0, 1 << (target.bit_length() // 3 + 2)
    while low < high:  # the least integer whose cube reaches the target
        middle = (low + high) // 2
        low, high = (middle + 1, high) if middle**3 < target else (low, middle)
    root = low
    forged = root.to_bytes(256, "big")
    assert (root**3).to_bytes(256, "big").startswith(prefix)  # the forgery is real
    assert not verify_signature(_rsa_spki(modulus, 3), _RSA_OIDS["sha256"], b"", message, forged)


def test_ecdsa_range_and_curve_checks() -> None:
    key = _EC_KEYS["p256"]
    spki = _spki(key)
    message = b"range"
    n = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    for r, s in ((0, 1), (1, 0), (n, 1), (1, n)):
        assert not verify_signature(
            spki, _EC_OIDS["sha256"], b"", message, _tlv(0x30, _int(r) + _int(s))
        )
    assert not verify_signature(spki, _EC_OIDS["sha256"], b"", message, b"\x30\x00")
    # A public point moved off the curve.
    off_curve = bytearray(spki)
    off_curve[-1] ^= 0x01
    signature = key.sign(message, ec.ECDSA(hashes.SHA256()))
    assert not verify_signature(bytes(off_curve), _EC_OIDS["sha256"], b"", message, signature)
