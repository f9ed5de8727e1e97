"""A strict DER walk over X.509 certificates: just what DANE needs, and nothing it does not.

DANE (RFC 7671, RFC 7672) matches TLSA records against a whole certificate or its
SubjectPublicKeyInfo, and DANE-TA(2) builds a chain to the matched trust anchor and checks
names: so the core reads issuer and subject, the validity period, subjectAltName, basic
constraints and key usage, and the signed bytes with their signature. Everything else in a
certificate is skipped, except a critical extension we do not process, which is recorded so
a chain check can refuse it (RFC 5280 4.2).

The certificate comes from the peer: anything malformed is a `RemoteProtocolError`, and so
is anything DER forbids (indefinite or non-minimal lengths, trailing bytes), because two
parsers that disagree about one certificate are how signature checks get bypassed.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import re
from dataclasses import dataclass

from ._errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "MAX_CERTIFICATE_SIZE",
    "Certificate",
    "Reader",
    "TrustAnchors",
    "check_spki",
    "decode_oid",
]

MAX_CERTIFICATE_SIZE = 65536
"""Largest certificate accepted, in octets; real ones stay under 16 KiB."""

# ASN.1 universal tags (X.690 8.1.2) and the context tags RFC 5280 4.1 uses.
BOOLEAN, INTEGER, BIT_STRING, OCTET_STRING, NULL, OID = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06
SEQUENCE, SET = 0x30, 0x31
UTC_TIME, GENERALIZED_TIME = 0x17, 0x18
_STRING_CODECS = {
    0x0C: "utf-8",  # UTF8String
    0x13: "ascii",  # PrintableString
    0x14: "latin-1",  # TeletexString, as every X.509 library reads it in practice
    0x16: "ascii",  # IA5String
    0x1C: "utf-32-be",  # UniversalString
    0x1E: "utf-16-be",  # BMPString
}
_EXPLICIT_VERSION, _ISSUER_UID, _SUBJECT_UID, _EXTENSIONS = 0xA0, 0x81, 0x82, 0xA3
_DNS_NAME = 0x82  # GeneralName dNSName [2] IMPLICIT IA5String (RFC 5280 4.2.1.6)

_OID_COMMON_NAME = "2.5.4.3"
_OID_SUBJECT_ALT_NAME = "2.5.29.17"
_OID_BASIC_CONSTRAINTS = "2.5.29.19"
_OID_KEY_USAGE = "2.5.29.15"
# Extensions a DANE chain check processes (or, for the key identifiers and EKU, may safely
# ignore even when marked critical: they constrain nothing a DANE-TA chain relies on).
_HANDLED = frozenset(
    {
        _OID_SUBJECT_ALT_NAME,
        _OID_BASIC_CONSTRAINTS,
        _OID_KEY_USAGE,
        "2.5.29.14",  # subjectKeyIdentifier
        "2.5.29.35",  # authorityKeyIdentifier
        "2.5.29.37",  # extKeyUsage
    }
)
KEY_CERT_SIGN = 5
"""Bit number of keyCertSign in the KeyUsage BIT STRING (RFC 5280 4.2.1.3)."""


def _fail(what: str) -> RemoteProtocolError:
    return RemoteProtocolError(f"malformed certificate: {what}")


class Reader:
    """Walks the DER elements between `start` and `end` of `data`, one at a time."""

    __slots__ = ("data", "end", "offset")

    def __init__(self, data: bytes, start: int = 0, end: int | None = None) -> None:
        self.data = data
        self.offset = start
        self.end = len(data) if end is None else end

    def at_end(self) -> bool:
        """Whether every element has been read."""
        return self.offset >= self.end

    def peek(self) -> int | None:
        """The tag of the next element, or ``None`` at the end."""
        return None if self.at_end() else self.data[self.offset]

    def read(self, tag: int) -> tuple[int, int]:
        """Read the next element, which must carry `tag`; return its value's (start, end)."""
        found, start, end = self.next()
        if found != tag:
            raise _fail(f"expected tag 0x{tag:02x}, found 0x{found:02x}")
        return start, end

    def next(self) -> tuple[int, int, int]:
        """Read the next element: (tag, value start, value end), DER-strictly (X.690 10.1)."""
        data, offset, end = self.data, self.offset, self.end
        if offset + 2 > end:
            raise _fail("truncated element")
        tag = data[offset]
        if tag & 0x1F == 0x1F:
            raise _fail("multi-byte tag")  # X.509 uses none
        first = data[offset + 1]
        offset += 2
        if first < 0x80:
            length = first
        else:
            count = first & 0x7F
            # 0x80 is BER's indefinite length; more than 4 octets exceeds any certificate.
            if count == 0 or count > 4 or offset + count > end:
                raise _fail("bad length")
            length = int.from_bytes(data[offset : offset + count], "big")
            if data[offset] == 0 or length < 0x80:
                raise _fail("non-minimal length")
            offset += count
        if offset + length > end:
            raise _fail("element runs past its container")
        self.offset = offset + length
        return tag, offset, offset + length

    def element(self, tag: int) -> bytes:
        """Read the next element, which must carry `tag`, and return it whole (TLV)."""
        begin = self.offset
        self.read(tag)
        return self.data[begin : self.offset]

    def inside(self, tag: int) -> Reader:
        """Read the next element, which must carry `tag`, and return a reader over its value."""
        start, end = self.read(tag)
        return Reader(self.data, start, end)

    def value(self, tag: int) -> bytes:
        """Read the next element, which must carry `tag`, and return its value."""
        start, end = self.read(tag)
        return self.data[start:end]

    def finish(self, what: str) -> None:
        """Refuse anything left over: DER has one encoding, and no trailing bytes."""
        if not self.at_end():
            raise _fail(f"trailing data in {what}")


def decode_oid(value: bytes) -> str:
    """The dotted form of an OBJECT IDENTIFIER's contents (X.690 8.19)."""
    if not value or value[-1] & 0x80:
        raise _fail("truncated OID")
    arcs: list[int] = []
    current = 0
    for position, byte in enumerate(value):
        if current == 0 and byte == 0x80 and (position == 0 or not value[position - 1] & 0x80):
            raise _fail("non-minimal OID arc")
        current = (current << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(current)
            current = 0
    first = arcs[0]
    head = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    return ".".join(str(arc) for arc in head + arcs[1:])


def _integer(value: bytes) -> int:
    # X.690 8.3.2: no leading octet that only repeats the sign.
    if not value or (
        len(value) > 1
        and ((value[0] == 0 and value[1] < 0x80) or (value[0] == 0xFF and value[1] >= 0x80))
    ):
        raise _fail("non-minimal INTEGER")
    return int.from_bytes(value, "big", signed=True)


def _boolean(value: bytes) -> bool:
    # DER 11.1: TRUE is 0xFF; and a DEFAULT FALSE must be omitted, not encoded.
    if value != b"\xff":
        raise _fail("BOOLEAN other than DER TRUE")
    return True


def _string(tag: int, value: bytes) -> str:
    codec = _STRING_CODECS.get(tag)
    if codec is None:
        raise _fail(f"unknown string type 0x{tag:02x}")
    try:
        return value.decode(codec)
    except UnicodeDecodeError:
        raise _fail("undecodable string") from None


def _time(tag: int, value: bytes) -> int:
    # RFC 5280 4.1.2.5: UTCTime YYMMDDHHMMSSZ (YY >= 50 is 19YY), GeneralizedTime
    # YYYYMMDDHHMMSSZ; both in UTC, seconds present, no fractions.
    text = value.decode("ascii", "replace")
    if tag == UTC_TIME and len(text) == 13:
        year = int(text[:2]) if text[:2].isdigit() else -1
        text = ("19" if year >= 50 else "20") + text
    elif tag != GENERALIZED_TIME or len(text) != 15:
        raise _fail("bad time")
    digits, zulu = text[:14], text[14]
    if not digits.isdigit() or not digits.isascii() or zulu != "Z":
        raise _fail("bad time")
    year, month, day = int(digits[:4]), int(digits[4:6]), int(digits[6:8])
    hour, minute, second = int(digits[8:10]), int(digits[10:12]), int(digits[12:14])
    days = calendar.monthrange(year, month)[1] if 1 <= month <= 12 and year >= 1 else 0
    if not (1 <= day <= days and hour < 24 and minute < 60 and second < 60):
        raise _fail("bad time")
    return calendar.timegm((year, month, day, hour, minute, second))


def _algorithm(reader: Reader) -> tuple[str, bytes]:
    # AlgorithmIdentifier (RFC 5280 4.1.1.2): an OID and at most one parameters element,
    # returned whole so that the inner and outer copies can be compared byte for byte.
    inner = reader.inside(SEQUENCE)
    oid = decode_oid(inner.value(OID))
    begin = inner.offset
    if not inner.at_end():
        inner.next()
    inner.finish("algorithm identifier")
    return oid, inner.data[begin : inner.end]


def _common_names(name: bytes) -> tuple[str, ...]:
    found: list[str] = []
    rdns = Reader(name).inside(SEQUENCE)
    while not rdns.at_end():
        attributes = rdns.inside(SET)
        while not attributes.at_end():
            pair = attributes.inside(SEQUENCE)
            oid = decode_oid(pair.value(OID))
            tag, start, end = pair.next()
            pair.finish("name attribute")
            if oid == _OID_COMMON_NAME:
                found.append(_string(tag, pair.data[start:end]))
    return tuple(found)


def _dns_names(value: bytes) -> tuple[str, ...]:
    names: list[str] = []
    general = Reader(value).inside(SEQUENCE)
    while not general.at_end():
        tag, start, end = general.next()
        if tag == _DNS_NAME:
            names.append(_string(0x16, general.data[start:end]))
    return tuple(names)


def _key_usage(value: bytes) -> frozenset[int]:
    bits = Reader(value).value(BIT_STRING)
    if not bits or bits[0] > 7 or (len(bits) == 1 and bits[0] != 0):
        raise _fail("bad KeyUsage")
    return frozenset(
        index * 8 + bit
        for index, byte in enumerate(bits[1:])
        for bit in range(8)
        if byte & (0x80 >> bit)
    )


@dataclass(frozen=True, slots=True)
class Certificate:
    """The parts of one X.509 certificate that DANE matching and DANE-TA chains use."""

    der: bytes
    tbs: bytes
    signature_algorithm: str
    signature_parameters: bytes
    signature: bytes
    issuer: bytes
    subject: bytes
    spki: bytes
    not_before: int
    not_after: int
    dns_names: tuple[str, ...]
    common_names: tuple[str, ...]
    is_ca: bool
    path_length: int | None
    key_usage: frozenset[int] | None
    unhandled_critical: tuple[str, ...]

    @classmethod
    def from_der(cls, data: bytes) -> Certificate:
        """Parse one DER certificate; anything malformed is a `RemoteProtocolError`."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise RemoteProtocolError("certificate: expected bytes")
        data = bytes(data)
        if len(data) > MAX_CERTIFICATE_SIZE:
            raise _fail(f"larger than {MAX_CERTIFICATE_SIZE} octets")
        outer = Reader(data)
        certificate = outer.inside(SEQUENCE)
        outer.finish("certificate")
        tbs_der = certificate.element(SEQUENCE)
        algorithm, parameters = _algorithm(certificate)
        signature_bits = certificate.value(BIT_STRING)
        certificate.finish("certificate")
        if not signature_bits or signature_bits[0] != 0:
            raise _fail("signature is not a whole number of octets")
        tbs = Reader(tbs_der).inside(SEQUENCE)
        version = 0
        if tbs.peek() == _EXPLICIT_VERSION:
            explicit = tbs.inside(_EXPLICIT_VERSION)
            version = _integer(explicit.value(INTEGER))
            explicit.finish("version")
            if version not in (1, 2):  # v2, v3; an explicit v1 is not DER (DEFAULT)
                raise _fail("bad version")
        tbs.value(INTEGER)  # the serial number: nothing DANE needs
        # RFC 5280 4.1.1.2: the signed algorithm must equal the outer one.
        if _algorithm(tbs) != (algorithm, parameters):
            raise _fail("signature algorithm differs inside and outside the signed part")
        issuer = tbs.element(SEQUENCE)
        validity = tbs.inside(SEQUENCE)
        times = []
        for _ in range(2):
            tag, start, end = validity.next()
            times.append(_time(tag, validity.data[start:end]))
        validity.finish("validity")
        subject = tbs.element(SEQUENCE)
        spki = tbs.element(SEQUENCE)
        for unique in (_ISSUER_UID, _SUBJECT_UID):
            if tbs.peek() == unique:
                tbs.next()
        extensions: dict[str, tuple[bool, bytes]] = {}
        if tbs.peek() == _EXTENSIONS:
            if version != 2:
                raise _fail("extensions in a certificate older than v3")
            explicit = tbs.inside(_EXTENSIONS)
            sequence = explicit.inside(SEQUENCE)
            explicit.finish("extensions")
            while not sequence.at_end():
                extension = sequence.inside(SEQUENCE)
                oid = decode_oid(extension.value(OID))
                critical = extension.peek() == BOOLEAN and _boolean(extension.value(BOOLEAN))
                value = extension.value(OCTET_STRING)
                extension.finish("extension")
                if oid in extensions:
                    raise _fail(f"extension {oid} appears twice")  # RFC 5280 4.2
                extensions[oid] = (critical, value)
        tbs.finish("tbsCertificate")
        is_ca, path_length = False, None
        if _OID_BASIC_CONSTRAINTS in extensions:
            constraints = Reader(extensions[_OID_BASIC_CONSTRAINTS][1]).inside(SEQUENCE)
            if constraints.peek() == BOOLEAN:
                is_ca = _boolean(constraints.value(BOOLEAN))
            if constraints.peek() == INTEGER:
                path_length = _integer(constraints.value(INTEGER))
                if path_length < 0:
                    raise _fail("negative pathLenConstraint")
            constraints.finish("basicConstraints")
        key_usage = None
        if _OID_KEY_USAGE in extensions:
            key_usage = _key_usage(extensions[_OID_KEY_USAGE][1])
        dns_names: tuple[str, ...] = ()
        if _OID_SUBJECT_ALT_NAME in extensions:
            dns_names = _dns_names(extensions[_OID_SUBJECT_ALT_NAME][1])
        return cls(
            der=data,
            tbs=tbs_der,
            signature_algorithm=algorithm,
            signature_parameters=parameters,
            signature=signature_bits[1:],
            issuer=issuer,
            subject=subject,
            spki=spki,
            not_before=times[0],
            not_after=times[1],
            dns_names=dns_names,
            common_names=_common_names(subject),
            is_ca=is_ca,
            path_length=path_length,
            key_usage=key_usage,
            unhandled_critical=tuple(
                sorted(oid for oid, (crit, _) in extensions.items() if crit and oid not in _HANDLED)
            ),
        )

    @property
    def self_issued(self) -> bool:
        """Whether issuer and subject are the same name (RFC 5280 3.2)."""
        return self.issuer == self.subject

    def valid_at(self, now: int) -> bool:
        """Whether `now` (seconds since the epoch, UTC) lies in the validity period."""
        return self.not_before <= now <= self.not_after

    def peercert(self) -> dict[str, object]:
        """The names in `ssl.SSLSocket.getpeercert()`'s shape, for `tlspolicy.matched_name`."""
        return {
            "subject": tuple((("commonName", cn),) for cn in self.common_names),
            "subjectAltName": tuple(("DNS", name) for name in self.dns_names),
        }


def check_spki(data: bytes) -> None:
    """`RemoteProtocolError` unless `data` is one DER SubjectPublicKeyInfo (RFC 5280 4.1)."""
    reader = Reader(data)
    info = reader.inside(SEQUENCE)
    reader.finish("SubjectPublicKeyInfo")
    info.inside(SEQUENCE)
    info.next()
    info.finish("SubjectPublicKeyInfo")


_PEM = re.compile(
    r"-----BEGIN ([A-Z0-9 ]+)-----\s*([A-Za-z0-9+/=\s]*?)\s*-----END \1-----", re.ASCII
)


@dataclass(frozen=True)
class TrustAnchors:
    """Trust-anchor certificates and public keys (``smtp_tls_trust_anchor_file``), DER.

    Read from PEM by :meth:`from_pem`; Postfix accepts ``CERTIFICATE`` and ``PUBLIC KEY``
    blocks and nothing else (no private key material belongs in such a file).
    """

    certificates: tuple[bytes, ...] = ()
    keys: tuple[bytes, ...] = ()

    def __bool__(self) -> bool:
        """Whether there is any anchor: an empty set means the CAs apply as usual."""
        return bool(self.certificates or self.keys)

    @classmethod
    def from_pem(cls, text: str, *, what: str = "trust anchors") -> TrustAnchors:
        """The anchors in PEM `text`; a malformed or foreign block is a `LocalProtocolError`
        naming `what` (the anchors are the caller's configuration, not the peer's)."""
        certificates: list[bytes] = []
        keys: list[bytes] = []
        for match in _PEM.finditer(text):
            label, body = match[1], "".join(match[2].split())
            try:
                der = base64.b64decode(body, validate=True)
                if label == "CERTIFICATE":
                    Certificate.from_der(der)
                    certificates.append(der)
                elif label == "PUBLIC KEY":
                    check_spki(der)
                    keys.append(der)
                else:
                    raise LocalProtocolError(f"{what}: {label} is not a trust anchor")
            except (binascii.Error, RemoteProtocolError) as error:
                raise LocalProtocolError(f"{what}: malformed {label}: {error}") from None
        if "-----BEGIN" in _PEM.sub("", text):
            raise LocalProtocolError(
                f"{what}: a PEM block that cannot be read (no END line, or not base64)"
            )
        return cls(tuple(certificates), tuple(keys))

    def __add__(self, other: TrustAnchors) -> TrustAnchors:
        """The anchors of both, as several files in one parameter give."""
        return TrustAnchors(self.certificates + other.certificates, self.keys + other.keys)
