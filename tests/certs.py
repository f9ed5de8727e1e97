"""Certificates for the DANE and X.509 tests, made with trustme and the cryptography package.

trustme makes the ordinary chains (root, intermediate, server); `issue` builds the odd ones
a hostile or broken server might present (a non-CA issuer, a critical extension nobody
knows, an expired certificate, an Ed25519 signature), all DER.
"""

from __future__ import annotations

import datetime
import ssl
from dataclasses import dataclass
from typing import Any

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

NOW = datetime.datetime(2026, 6, 1, tzinfo=datetime.UTC)
NOW_TS = int(NOW.timestamp())
DAY = datetime.timedelta(days=1)


def der_of(pem: bytes) -> bytes:
    """The DER form of one PEM certificate."""
    return ssl.PEM_cert_to_DER_cert(pem.decode("ascii"))


@dataclass(frozen=True)
class TrustmeChain:
    """A trustme root, intermediate and server certificate, each DER."""

    root: bytes
    intermediate: bytes
    server: bytes


def trustme_chain(*names: str, key_type: trustme.KeyType = trustme.KeyType.ECDSA) -> TrustmeChain:
    """root -> intermediate -> server certificate for `names`, by trustme."""
    root = trustme.CA(key_type=key_type)
    intermediate = root.create_child_ca(key_type=key_type)
    leaf = intermediate.issue_cert(*names, key_type=key_type)
    pems = [blob.bytes() for blob in leaf.cert_chain_pems]
    return TrustmeChain(der_of(root.cert_pem.bytes()), der_of(pems[1]), der_of(pems[0]))


def spki_of(der: bytes) -> bytes:
    """The DER SubjectPublicKeyInfo of a certificate, as cryptography sees it."""
    return (
        x509.load_der_x509_certificate(der)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


@dataclass
class Issued:
    """A certificate made by `issue`, with its key so it can sign the next one."""

    der: bytes
    key: Any
    name: x509.Name


def new_key(kind: str = "ec") -> Any:
    """A fresh private key: ``ec`` (P-256), ``p384``, ``rsa`` (2048) or ``ed25519``."""
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "p384":
        return ec.generate_private_key(ec.SECP384R1())
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ed25519.Ed25519PrivateKey.generate()


def issue(
    common_name: str,
    *,
    issuer: Issued | None = None,
    key: Any = None,
    dns_names: tuple[str, ...] = (),
    ca: bool = False,
    path_length: int | None = None,
    key_usage: bool = True,
    not_before: datetime.datetime = NOW - 30 * DAY,
    not_after: datetime.datetime = NOW + 30 * DAY,
    critical_unknown: bool = False,
    issuer_name: x509.Name | None = None,
) -> Issued:
    """A certificate for `common_name`, signed by `issuer` (self-signed when ``None``)."""
    key = key if key is not None else new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    signer_key = issuer.key if issuer is not None else key
    signer_name = issuer_name or (issuer.name if issuer is not None else name)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(signer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
    )
    if key_usage:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    if dns_names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names]), critical=False
        )
    if critical_unknown:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x05\x00"),
            critical=True,
        )
    algorithm = None if isinstance(signer_key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    certificate = builder.sign(signer_key, algorithm)
    return Issued(certificate.public_bytes(serialization.Encoding.DER), key, name)
