"""Certificate signature verification with the standard library only, for DANE-TA chains.

A DANE-TA(2) record names a trust anchor that no CA file holds, often only by digest, so the
chain from the server's certificate up to it cannot be left to the adapters' ``ssl`` module
(it verifies against CA files fixed before the handshake). The core checks the chain itself,
which needs the signature arithmetic: RSASSA-PKCS1-v1_5 (RFC 8017 8.2.2) and ECDSA over
P-256 and P-384 (FIPS 186-4 6.4, SEC 1 4.1.4) with SHA-2, which cover the chains that mail
servers present. Anything else is not verified, so a chain using it fails (closed).

Only public data goes in (certificates and their signatures), so constant-time arithmetic is
not needed here; exactness is. The RSA check compares the whole re-encoded block instead of
parsing the decrypted one (no Bleichenbacher-2006 forgeries with small exponents), and every
ECDSA input is range- and curve-checked before use.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from ._errors import RemoteProtocolError
from ._x509 import BIT_STRING, INTEGER, NULL, OID, SEQUENCE, Reader, decode_oid

__all__ = ["SIGNATURE_ALGORITHMS", "verify_signature"]

_RSA_KEY = "1.2.840.113549.1.1.1"
_EC_KEY = "1.2.840.10045.2.1"
_NULL = bytes([NULL, 0])
# OID -> (key type, hash); RSA algorithms take NULL or absent parameters (RFC 4055 5),
# ECDSA ones take none (RFC 5758 3.2).
SIGNATURE_ALGORITHMS: dict[str, tuple[str, str]] = {
    "1.2.840.113549.1.1.11": ("rsa", "sha256"),
    "1.2.840.113549.1.1.12": ("rsa", "sha384"),
    "1.2.840.113549.1.1.13": ("rsa", "sha512"),
    "1.2.840.10045.4.3.2": ("ec", "sha256"),
    "1.2.840.10045.4.3.3": ("ec", "sha384"),
    "1.2.840.10045.4.3.4": ("ec", "sha512"),
}
"""The certificate signature algorithms verified, by OID: (key type, digest)."""

# RFC 8017 9.2 note 1: the DER DigestInfo prefixes.
_DIGEST_INFO = {
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}
_MIN_RSA_BITS = 2048


@dataclass(frozen=True)
class _Curve:
    p: int
    a: int
    b: int
    n: int
    gx: int
    gy: int
    size: int


# SEC 2 2.4.2 (secp256r1) and 2.5.1 (secp384r1).
_CURVES = {
    "1.2.840.10045.3.1.7": _Curve(
        p=2**256 - 2**224 + 2**192 + 2**96 - 1,
        a=-3,
        b=0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B,
        n=0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
        gx=0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
        gy=0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5,
        size=32,
    ),
    "1.3.132.0.34": _Curve(
        p=2**384 - 2**128 - 2**96 + 2**32 - 1,
        a=-3,
        b=0xB3312FA7E23EE7E4988E056BE3F82D19181D9C6EFE8141120314088F5013875AC656398D8A2ED19D2A85C8EDD3EC2AEF,
        n=0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973,
        gx=0xAA87CA22BE8B05378EB1C71EF320AD746E1D3B628BA79B9859F741E082542A385502F25DBF55296C3A545E3872760AB7,
        gy=0x3617DE4A96262C6F5D9E98BF9292DC29F8F41DBD289A147CE9DA3113B5F0B8C00A60B1CE1D7E819D7A431D7C90EA0E5F,
        size=48,
    ),
}

_Point = tuple[int, int, int]  # Jacobian (X, Y, Z); Z == 0 is the point at infinity
_INFINITY: _Point = (1, 1, 0)


def _double(curve: _Curve, point: _Point) -> _Point:
    x, y, z = point
    if z == 0 or y == 0:
        return _INFINITY
    p = curve.p
    # a = -3: M = 3 (X - Z^2)(X + Z^2)  (dbl-2001-b)
    zz = z * z % p
    m = 3 * (x - zz) * (x + zz) % p
    s = 4 * x * y * y % p
    x3 = (m * m - 2 * s) % p
    y3 = (m * (s - x3) - 8 * pow(y, 4, p)) % p
    return x3, y3, 2 * y * z % p


def _add(curve: _Curve, left: _Point, right: _Point) -> _Point:
    if left[2] == 0:
        return right
    if right[2] == 0:
        return left
    p = curve.p
    x1, y1, z1 = left
    x2, y2, z2 = right
    z1z1, z2z2 = z1 * z1 % p, z2 * z2 % p
    u1, u2 = x1 * z2z2 % p, x2 * z1z1 % p
    s1, s2 = y1 * z2 * z2z2 % p, y2 * z1 * z1z1 % p
    if u1 == u2:
        return _double(curve, left) if s1 == s2 else _INFINITY
    h, r = (u2 - u1) % p, (s2 - s1) % p
    hh = h * h % p
    hhh = h * hh % p
    v = u1 * hh % p
    x3 = (r * r - hhh - 2 * v) % p
    y3 = (r * (v - x3) - s1 * hhh) % p
    return x3, y3, z1 * z2 * h % p


def _twin_multiply(curve: _Curve, k1: int, p1: _Point, k2: int, p2: _Point) -> _Point:
    # Shamir's trick: k1*P1 + k2*P2 in one pass of doublings.
    both = _add(curve, p1, p2)
    result = _INFINITY
    for bit in range(max(k1.bit_length(), k2.bit_length()) - 1, -1, -1):
        result = _double(curve, result)
        pick = ((k1 >> bit) & 1, (k2 >> bit) & 1)
        if pick == (1, 1):
            result = _add(curve, result, both)
        elif pick == (1, 0):
            result = _add(curve, result, p1)
        elif pick == (0, 1):
            result = _add(curve, result, p2)
    return result


def _verify_ecdsa(curve: _Curve, key: bytes, digest: bytes, signature: bytes) -> bool:
    # SEC 1 2.3.4: only the uncompressed point form appears in certificates.
    if len(key) != 1 + 2 * curve.size or key[0] != 4:
        return False
    qx = int.from_bytes(key[1 : 1 + curve.size], "big")
    qy = int.from_bytes(key[1 + curve.size :], "big")
    p, n = curve.p, curve.n
    if not (qx < p and qy < p) or (qy * qy - qx**3 - curve.a * qx - curve.b) % p:
        return False
    pair = Reader(signature).inside(SEQUENCE)
    r = int.from_bytes(pair.value(INTEGER), "big", signed=True)
    s = int.from_bytes(pair.value(INTEGER), "big", signed=True)
    pair.finish("ECDSA signature")
    if not (0 < r < n and 0 < s < n):
        return False
    e = int.from_bytes(digest, "big")
    excess = 8 * len(digest) - n.bit_length()
    if excess > 0:
        e >>= excess  # FIPS 186-4 6.4: the leftmost bits of the hash
    w = pow(s, -1, n)
    point = _twin_multiply(curve, e * w % n, (curve.gx, curve.gy, 1), r * w % n, (qx, qy, 1))
    x, _, z = point
    if z == 0:
        return False
    return x * pow(z * z, -1, p) % p % n == r


def _verify_rsa(key: bytes, digest_name: str, digest: bytes, signature: bytes) -> bool:
    numbers = Reader(key).inside(SEQUENCE)
    modulus = int.from_bytes(numbers.value(INTEGER), "big", signed=True)
    exponent = int.from_bytes(numbers.value(INTEGER), "big", signed=True)
    numbers.finish("RSA public key")
    size = (modulus.bit_length() + 7) // 8
    if modulus.bit_length() < _MIN_RSA_BITS or exponent < 3 or exponent % 2 == 0:
        return False
    if len(signature) != size:
        return False
    value = int.from_bytes(signature, "big")
    if value >= modulus:
        return False
    encoded = pow(value, exponent, modulus).to_bytes(size, "big")
    body = _DIGEST_INFO[digest_name] + digest
    expected = b"\x00\x01" + b"\xff" * (size - len(body) - 3) + b"\x00" + body
    return encoded == expected


def verify_signature(
    spki: bytes, algorithm: str, parameters: bytes, tbs: bytes, signature: bytes
) -> bool:
    """Whether `signature` over `tbs` verifies with the key in `spki` under `algorithm`.

    `spki` is a DER SubjectPublicKeyInfo, `algorithm` a dotted OID from
    :data:`SIGNATURE_ALGORITHMS` with its DER `parameters`. An unsupported algorithm, key or
    curve is ``False``, never an error: an unverifiable chain is an untrusted one.
    """
    kind_digest = SIGNATURE_ALGORITHMS.get(algorithm)
    if kind_digest is None:
        return False
    kind, digest_name = kind_digest
    if parameters not in ((b"", _NULL) if kind == "rsa" else (b"",)):
        return False
    try:
        info = Reader(spki).inside(SEQUENCE)
        key_algorithm = info.inside(SEQUENCE)
        key_oid = decode_oid(key_algorithm.value(OID))
        key_parameters = key_algorithm.data[key_algorithm.offset : key_algorithm.end]
        bits = info.value(BIT_STRING)
        info.finish("SubjectPublicKeyInfo")
        if not bits or bits[0] != 0:
            return False
        digest = hashlib.new(digest_name, tbs).digest()
        if kind == "rsa":
            return (
                key_oid == _RSA_KEY
                and key_parameters in (b"", _NULL)
                and _verify_rsa(bits[1:], digest_name, digest, signature)
            )
        if key_oid != _EC_KEY:
            return False
        named = Reader(key_parameters)
        curve = _CURVES.get(decode_oid(named.value(OID)))
        named.finish("EC parameters")
        return curve is not None and _verify_ecdsa(curve, bits[1:], digest, signature)
    except RemoteProtocolError:
        return False
