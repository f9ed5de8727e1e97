"""SASL mechanisms, challenge decoding and Postfix's mechanism choice (AU-*)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpproto import LocalProtocolError, RemoteProtocolError
from smtpproto.sasl import (
    DEFAULT_SECURITY_OPTIONS,
    DEFAULT_TLS_SECURITY_OPTIONS,
    DEFAULT_TLS_VERIFIED_SECURITY_OPTIONS,
    PREFERENCE,
    CramMD5,
    External,
    Login,
    Plain,
    SaslCredentials,
    ScramSHA1,
    ScramSHA256,
    XOAuth2,
    create_mechanism,
    decode_challenge,
    encode_response,
    lookup_credentials,
    parse_mechanism_filter,
    parse_security_options,
    saslprep,
    security_options_for,
    select_mechanism,
)

PENCIL = SaslCredentials("user", "pencil")
FAST = settings(max_examples=200, deadline=None)

# RFC 7677 3 (SCRAM-SHA-256) and RFC 5802 5 (SCRAM-SHA-1), user "user", password "pencil".
SHA256_NONCE = "rOprNGfwEbeRWgbNEkqO"
SHA256_SERVER_FIRST = (
    b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
)
SHA256_CLIENT_FINAL = (
    b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
)
SHA256_SERVER_FINAL = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
SHA1_NONCE = "fyko+d2lbbFgONRv9qkxdawL"
SHA1_SERVER_FIRST = b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096"
SHA1_CLIENT_FINAL = (
    b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
)
SHA1_SERVER_FINAL = b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ="


def scram256() -> ScramSHA256:
    return ScramSHA256(PENCIL, nonce=SHA256_NONCE)


# -- challenge decoding (AU-07) ----------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["====", "AAA=BBB", "=AAA", "ab cd", "***", "Password:", "QQ", "QQ=", "QR==", "A"]
)
def test_au07_garbage_challenge_is_remote_error(text: str) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_challenge(text)


def test_au07_login_never_answers_an_undecodable_prompt() -> None:
    mechanism = Login(PENCIL)
    with pytest.raises(RemoteProtocolError):
        mechanism.respond(decode_challenge("Password:"))
    assert mechanism.respond(decode_challenge("VXNlcm5hbWU6")) == b"user"


def test_empty_challenge_and_prompts_decode() -> None:
    assert decode_challenge("") == b""
    assert decode_challenge("VXNlcm5hbWU6") == b"Username:"
    assert decode_challenge("UGFzc3dvcmQ6") == b"Password:"


def test_oversized_challenge_is_remote_error() -> None:
    with pytest.raises(RemoteProtocolError, match="limit 8"):
        decode_challenge("QUFBQUFBQUFB", max_len=8)


def test_encode_response_of_empty_is_empty_line() -> None:
    assert encode_response(b"") == ""
    assert encode_response(b"\0user\0pencil") == "AHVzZXIAcGVuY2ls"


@FAST
@given(st.binary(max_size=300))
def test_challenge_round_trip(data: bytes) -> None:
    assert decode_challenge(encode_response(data)) == data


@FAST
@given(st.text(alphabet="ABCDabcd0189+/= *:\n\x00é", max_size=40))
def test_challenge_decoding_accepts_only_canonical_base64(text: str) -> None:
    try:
        decoded = decode_challenge(text)
    except RemoteProtocolError:
        return
    assert encode_response(decoded) == text


# -- initial response and the AUTH line (AU-06, rule 11.5) --------------------------------


def test_au06_long_xoauth2_token_goes_after_the_first_empty_challenge() -> None:
    mechanism = XOAuth2(SaslCredentials("u@example.com", token="t" * 2000))
    assert mechanism.initial_response(max_line=512) is None
    response = mechanism.respond(b"")
    assert response == b"user=u@example.com\x01auth=Bearer " + b"t" * 2000 + b"\x01\x01"
    mechanism.verify_success()


def test_au06_initial_response_limit_is_postfix_formula() -> None:
    # Rule 11.5: len("PLAIN") + len(base64) + 8 <= limit; 369 raw octets are 492 in base64.
    credentials = SaslCredentials("u", "p" * 366)
    assert len(encode_response(b"\0u\0" + b"p" * 366)) == 492
    assert Plain(credentials).initial_response(max_line=505) == b"\0u\0" + b"p" * 366
    assert Plain(credentials).initial_response(max_line=504) is None
    assert Plain(credentials).initial_response() is not None


def test_au06_empty_external_initial_response_is_empty_bytes() -> None:
    # commands.Auth encodes b"" as "=" (RFC 4954 4): "AUTH EXTERNAL =".
    assert External(SaslCredentials("")).initial_response() == b""


def test_initial_response_not_sent_needs_an_empty_first_challenge() -> None:
    mechanism = Plain(PENCIL)
    with pytest.raises(RemoteProtocolError, match="non-empty initial challenge"):
        mechanism.respond(b"hello")
    with pytest.raises(RemoteProtocolError, match="already failed"):
        mechanism.respond(b"")


def test_initial_response_twice_is_local_error() -> None:
    mechanism = Plain(PENCIL)
    mechanism.initial_response()
    with pytest.raises(LocalProtocolError):
        mechanism.initial_response()


# -- PLAIN, LOGIN, round trips (AU-08, AU-11) ----------------------------------------------


def test_plain_initial_response_bytes() -> None:
    credentials = SaslCredentials("tim", "tanstaaftanstaaf", authzid="admin")
    assert Plain(credentials).initial_response() == b"admin\0tim\0tanstaaftanstaaf"
    assert Plain(PENCIL).initial_response() == b"\0user\0pencil"


@pytest.mark.parametrize(
    "credentials",
    [SaslCredentials("us\0er", "p"), SaslCredentials("user", "p\0w"), SaslCredentials("user")],
)
def test_plain_rejects_unusable_credentials(credentials: SaslCredentials) -> None:
    with pytest.raises(LocalProtocolError):
        Plain(credentials)


def test_au08_plain_second_challenge_fails() -> None:
    mechanism = Plain(PENCIL)
    assert mechanism.initial_response() == b"\0user\0pencil"
    with pytest.raises(RemoteProtocolError, match="AU-08"):
        mechanism.respond(b"")
    with pytest.raises(RemoteProtocolError):
        mechanism.verify_success()


def test_au08_round_trip_cap() -> None:
    mechanism = Login(PENCIL, max_rounds=1)
    assert mechanism.respond(b"Username:") == b"user"
    with pytest.raises(RemoteProtocolError, match="more than 1 challenges"):
        mechanism.respond(b"Password:")


@pytest.mark.parametrize(
    "prompts", [(b"Username:", b"Password:"), (b"Password:", b"Username:"), (b"x", b"")]
)
def test_au11_login_answers_by_position(prompts: tuple[bytes, bytes]) -> None:
    mechanism = Login(PENCIL)
    assert mechanism.initial_response() is None
    assert mechanism.respond(prompts[0]) == b"user"
    assert mechanism.respond(prompts[1]) == b"pencil"
    with pytest.raises(RemoteProtocolError):
        mechanism.respond(b"Again:")


def test_au11_login_success_after_two_answers() -> None:
    mechanism = Login(PENCIL)
    mechanism.respond(b"Username:")
    mechanism.respond(b"Password:")
    mechanism.verify_success()
    with pytest.raises(LocalProtocolError):
        mechanism.respond(b"")


# -- CRAM-MD5 (AU-12) -----------------------------------------------------------------------


def test_au12_cram_md5_rfc2195_vector() -> None:
    mechanism = CramMD5(SaslCredentials("tim", "tanstaaftanstaaf"))
    assert mechanism.initial_response() is None
    challenge = decode_challenge("PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+")
    assert challenge == b"<1896.697170952@postoffice.reston.mci.net>"
    response = mechanism.respond(challenge)
    assert response == b"tim b913a602c7eda7a495b4e6e7334d3890"
    assert encode_response(response) == "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw"


def test_au12_cram_md5_empty_or_second_challenge_fails() -> None:
    with pytest.raises(RemoteProtocolError):
        CramMD5(PENCIL).respond(b"")
    mechanism = CramMD5(PENCIL)
    mechanism.respond(b"<1@x>")
    with pytest.raises(RemoteProtocolError):
        mechanism.respond(b"<2@x>")


# -- SCRAM (AU-13) ------------------------------------------------------------------------


def test_au13_scram_sha256_rfc7677_vector() -> None:
    mechanism = scram256()
    assert mechanism.initial_response() == b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
    assert mechanism.respond(SHA256_SERVER_FIRST) == SHA256_CLIENT_FINAL
    assert mechanism.respond(SHA256_SERVER_FINAL) == b""
    mechanism.verify_success()


def test_au13_scram_sha1_rfc5802_vector() -> None:
    mechanism = ScramSHA1(PENCIL, nonce=SHA1_NONCE)
    assert mechanism.initial_response() == b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL"
    assert mechanism.respond(SHA1_SERVER_FIRST) == SHA1_CLIENT_FINAL
    assert mechanism.respond(SHA1_SERVER_FINAL) == b""
    mechanism.verify_success()


def test_au13_scram_without_initial_response_sends_client_first_on_empty_challenge() -> None:
    mechanism = scram256()
    assert mechanism.respond(b"") == b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
    assert mechanism.respond(SHA256_SERVER_FIRST) == SHA256_CLIENT_FINAL


@pytest.mark.parametrize(
    ("server_first", "reason"),
    [
        (b"r=XXXXNGfwEbeRWgbNEkqO%hvYD,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", "nonce"),
        (b"r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", "no nonce of its own"),
        (b"r=rOprNGfwEbeRWgbNEkqOab,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1", "iteration"),
        (b"r=rOprNGfwEbeRWgbNEkqOab,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0", "not a number"),
        (b"r=rOprNGfwEbeRWgbNEkqOab,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4095", "iteration"),
        (b"r=rOprNGfwEbeRWgbNEkqOab,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=2000000000", "iteration"),
        (b"r=rOprNGfwEbeRWgbNEkqOab,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=04096", "not a number"),
        (b"r=rOprNGfwEbeRWgbNEkqOab,s=not base64!,i=4096", "salt"),
        (b"r=rOprNGfwEbeRWgbNEkqOab,s=,i=4096", "salt"),
        (b"m=ext,r=rOprNGfwEbeRWgbNEkqOab,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", "m="),
        (b"s=W22ZaJ0SNY7soEsUEjb6gQ==,r=rOprNGfwEbeRWgbNEkqOab,i=4096", "r=,s=,i="),
        (b"r=rOprNGfwEbeRWgbNEkqOab,s=W22ZaJ0SNY7soEsUEjb6gQ==", "r=,s=,i="),
        (b"r=rOprNGfwEbeRWgbNEkqO\xff,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", "UTF-8"),
        (b"garbage", "malformed"),
    ],
)
def test_au13_bad_server_first_fails(server_first: bytes, reason: str) -> None:
    mechanism = scram256()
    mechanism.initial_response()
    with pytest.raises(RemoteProtocolError, match=reason):
        mechanism.respond(server_first)
    with pytest.raises(RemoteProtocolError):
        mechanism.verify_success()


@pytest.mark.parametrize(
    ("server_final", "reason"),
    [
        (b"e=invalid-proof", "server error 'invalid-proof'"),
        (b"v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "wrong server signature"),
        (b"v=", "no verifier"),
        (b"v=***", "no verifier"),
        (b"x=1", "no verifier"),
        (b"", "malformed"),
    ],
)
def test_au13_bad_server_final_fails(server_final: bytes, reason: str) -> None:
    mechanism = scram256()
    mechanism.initial_response()
    mechanism.respond(SHA256_SERVER_FIRST)
    with pytest.raises(RemoteProtocolError, match=reason):
        mechanism.respond(server_final)
    with pytest.raises(RemoteProtocolError):
        mechanism.verify_success()


def test_au13_235_without_server_final_is_failure() -> None:
    mechanism = scram256()
    mechanism.initial_response()
    mechanism.respond(SHA256_SERVER_FIRST)
    with pytest.raises(RemoteProtocolError, match="AU-13"):
        mechanism.verify_success()


def test_au13_235_right_after_client_first_is_failure() -> None:
    mechanism = scram256()
    mechanism.initial_response()
    with pytest.raises(RemoteProtocolError):
        mechanism.verify_success()


def test_au13_challenge_after_server_final_fails() -> None:
    mechanism = scram256()
    mechanism.initial_response()
    mechanism.respond(SHA256_SERVER_FIRST)
    mechanism.respond(SHA256_SERVER_FINAL)
    with pytest.raises(RemoteProtocolError):
        mechanism.respond(b"")


def test_au13_iteration_bounds_are_configurable() -> None:
    mechanism = ScramSHA256(PENCIL, nonce=SHA256_NONCE, min_iterations=1, max_iterations=4096)
    mechanism.initial_response()
    assert mechanism.respond(SHA256_SERVER_FIRST) == SHA256_CLIENT_FINAL
    strict = ScramSHA256(PENCIL, nonce=SHA256_NONCE, min_iterations=5000)
    strict.initial_response()
    with pytest.raises(RemoteProtocolError, match="5000"):
        strict.respond(SHA256_SERVER_FIRST)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"nonce": "a,b"},
        {"nonce": ""},
        {"nonce": "ünicode"},
        {"nonce": "abc", "min_iterations": 0},
        {"nonce": "abc", "min_iterations": 10, "max_iterations": 9},
    ],
)
def test_scram_rejects_bad_arguments(kwargs: dict[str, object]) -> None:
    with pytest.raises(LocalProtocolError):
        ScramSHA256(PENCIL, **kwargs)  # type: ignore[arg-type]


def test_au13_username_escaping() -> None:
    mechanism = ScramSHA256(SaslCredentials("u,=ser", "pencil"), nonce="abc")
    assert mechanism.initial_response() == b"n,,n=u=2C=3Dser,r=abc"


def test_scram_authzid_in_gs2_header() -> None:
    credentials = SaslCredentials("user", "pencil", authzid="ad,min")
    mechanism = ScramSHA256(credentials, nonce="abc")
    assert mechanism.initial_response() == b"n,a=ad=2Cmin,n=user,r=abc"


def test_scram_saslpreps_the_password() -> None:
    # RFC 4013 3: SOFT HYPHEN maps to nothing, so "pen\xadcil" proves the same as "pencil".
    mechanism = ScramSHA256(SaslCredentials("user", "pen\u00adcil"), nonce=SHA256_NONCE)
    mechanism.initial_response()
    assert mechanism.respond(SHA256_SERVER_FIRST) == SHA256_CLIENT_FINAL


class ScramServer:
    """A SCRAM server straight from RFC 5802 3, for round trips (checked against the vectors)."""

    def __init__(self, hash_name: str, password: str, salt: bytes, iterations: int, nonce: str):
        self.hash_name = hash_name
        salted = hashlib.pbkdf2_hmac(hash_name, password.encode(), salt, iterations)
        client_key = hmac.new(salted, b"Client Key", hash_name).digest()
        self.stored_key = hashlib.new(hash_name, client_key).digest()
        self.server_key = hmac.new(salted, b"Server Key", hash_name).digest()
        self.salt, self.iterations, self.server_nonce = salt, iterations, nonce
        self.username = ""

    def first(self, client_first: bytes) -> bytes:
        assert client_first.startswith(b"n,,")
        self.gs2, self.bare = client_first[:3], client_first[3:]
        attributes = dict(part.split("=", 1) for part in self.bare.decode().split(","))
        self.username = attributes["n"].replace("=2C", ",").replace("=3D", "=")
        self.nonce = attributes["r"] + self.server_nonce
        salt = base64.b64encode(self.salt).decode()
        self.server_first = f"r={self.nonce},s={salt},i={self.iterations}".encode()
        return self.server_first

    def final(self, client_final: bytes) -> bytes:
        without_proof, _, proof = client_final.rpartition(b",p=")
        assert without_proof == b"c=" + base64.b64encode(self.gs2) + b",r=" + self.nonce.encode()
        message = self.bare + b"," + self.server_first + b"," + without_proof
        signature = hmac.new(self.stored_key, message, self.hash_name).digest()
        client_key = bytes(a ^ b for a, b in zip(base64.b64decode(proof), signature, strict=True))
        if hashlib.new(self.hash_name, client_key).digest() != self.stored_key:
            return b"e=invalid-proof"
        return b"v=" + base64.b64encode(hmac.new(self.server_key, message, self.hash_name).digest())


def test_scram_test_server_reproduces_the_rfc_vectors() -> None:
    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    server = ScramServer("sha256", "pencil", salt, 4096, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0")
    assert server.first(b"n,,n=user,r=" + SHA256_NONCE.encode()) == SHA256_SERVER_FIRST
    assert server.final(SHA256_CLIENT_FINAL) == SHA256_SERVER_FINAL
    sha1 = ScramServer(
        "sha1", "pencil", base64.b64decode("QSXCR+Q6sek8bf92"), 4096, "3rfcNHYJY1ZVvWVs7j"
    )
    assert sha1.first(b"n,,n=user,r=" + SHA1_NONCE.encode()) == SHA1_SERVER_FIRST
    assert sha1.final(SHA1_CLIENT_FINAL) == SHA1_SERVER_FINAL


_NONCE = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters=","),
    min_size=1,
    max_size=32,
)
_SECRET = st.text(
    alphabet="abcXYZ019 !#$%&'()*+,-./:;<=>?@[]^_`{|}~πéß€ж漢", min_size=1, max_size=24
).filter(lambda s: s.strip(" ") == s)


@FAST
@given(
    hash_name=st.sampled_from(["sha1", "sha256"]),
    username=_SECRET,
    password=_SECRET,
    salt=st.binary(min_size=1, max_size=32),
    iterations=st.integers(min_value=1, max_value=64),
    client_nonce=_NONCE,
    server_nonce=_NONCE,
    send_initial_response=st.booleans(),
)
def test_scram_round_trip_against_test_server(
    hash_name: str,
    username: str,
    password: str,
    salt: bytes,
    iterations: int,
    client_nonce: str,
    server_nonce: str,
    send_initial_response: bool,
) -> None:
    cls = ScramSHA256 if hash_name == "sha256" else ScramSHA1
    mechanism = cls(
        SaslCredentials(username, password), nonce=client_nonce, min_iterations=1, max_iterations=64
    )
    server = ScramServer(hash_name, password, salt, iterations, server_nonce)
    # Without the AUTH-line initial response the client-first goes after an empty 334.
    first = mechanism.initial_response if send_initial_response else lambda: mechanism.respond(b"")
    client_first = first()
    assert client_first is not None
    server_first = server.first(client_first)
    assert server.username == username
    server_final = server.final(mechanism.respond(server_first))
    assert server_final.startswith(b"v=")
    assert mechanism.respond(server_final) == b""
    mechanism.verify_success()


@FAST
@given(password=_SECRET, wrong=_SECRET, salt=st.binary(min_size=1, max_size=16))
def test_scram_wrong_password_never_verifies(password: str, wrong: str, salt: bytes) -> None:
    mechanism = ScramSHA256(
        SaslCredentials("user", wrong), nonce="abc", min_iterations=1, max_iterations=8
    )
    server = ScramServer("sha256", password, salt, 2, "def")
    server_final = server.final(
        mechanism.respond(server.first(mechanism.initial_response() or b""))
    )
    if password == wrong:
        mechanism.respond(server_final)
        mechanism.verify_success()
    else:
        assert server_final == b"e=invalid-proof"
        with pytest.raises(RemoteProtocolError):
            mechanism.respond(server_final)


# -- SASLprep (RFC 4013 3) -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "prepared"),
    [("I\u00adX", "IX"), ("user", "user"), ("USER", "USER"), ("\u00aa", "a"), ("\u2168", "IX")],
)
def test_saslprep_rfc4013_examples(text: str, prepared: str) -> None:
    assert saslprep(text) == prepared


@pytest.mark.parametrize("text", ["\u0007", "\u0627\u0031"])
def test_saslprep_rfc4013_errors(text: str) -> None:
    with pytest.raises(LocalProtocolError):
        saslprep(text)


# -- XOAUTH2 (AU-14), EXTERNAL ----------------------------------------------------------------


def test_au14_xoauth2_error_challenge_gets_empty_line() -> None:
    mechanism = XOAuth2(SaslCredentials("u@example.com", token="ya29.TOKEN"))
    assert mechanism.initial_response() == b"user=u@example.com\x01auth=Bearer ya29.TOKEN\x01\x01"
    error = json.dumps({"status": "400", "schemes": "Bearer", "scope": "https://mail"})
    assert mechanism.respond(decode_challenge(encode_response(error.encode()))) == b""
    assert mechanism.error == error
    with pytest.raises(RemoteProtocolError):
        mechanism.respond(b"again")
    with pytest.raises(RemoteProtocolError):
        mechanism.verify_success()


@pytest.mark.parametrize(
    "credentials",
    [
        SaslCredentials("u", token="a\x01b"),
        SaslCredentials("u\x01", token="t"),
        SaslCredentials("u", "password-only"),
    ],
)
def test_au14_xoauth2_rejects_unusable_credentials(credentials: SaslCredentials) -> None:
    with pytest.raises(LocalProtocolError):
        XOAuth2(credentials)


def test_external_sends_authzid_and_takes_no_challenge() -> None:
    mechanism = External(SaslCredentials("", authzid="admin"))
    assert mechanism.initial_response() == b"admin"
    with pytest.raises(RemoteProtocolError):
        mechanism.respond(b"more?")


def test_external_without_initial_response_answers_empty_challenge() -> None:
    mechanism = External(SaslCredentials(""))
    assert mechanism.respond(b"") == b""
    mechanism.verify_success()


# -- credentials ----------------------------------------------------------------------------


def test_au15_credentials_repr_hides_secrets() -> None:
    credentials = SaslCredentials("user", "S3cr3t-π", token="ya29.TOKEN")
    for text in (repr(credentials), str(credentials), repr(Plain(credentials))):
        assert "S3cr3t" not in text
        assert "ya29" not in text


def test_credentials_type_checked() -> None:
    with pytest.raises(LocalProtocolError, match="password"):
        SaslCredentials("user", b"pw")  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError, match="username"):
        SaslCredentials(None)  # type: ignore[arg-type]


MAPS = {
    "a@sender.example": "alice:pw-a",
    "@sender.example": "domain:pw-d",
    "MX.Example.COM": "host:pw:with:colons",
    "[smtp.example.com]:587": "dest:pw-dest",
    "nopass.example": "onlyuser",
    "empty.example": ":pw",
}


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"host": "mx.example.com", "destination": "example.com"}, ("host", "pw:with:colons")),
        (
            {"host": "smtp.example.com", "destination": "[smtp.example.com]:587"},
            ("dest", "pw-dest"),
        ),
        (
            {
                "host": "mx.example.com",
                "destination": "x",
                "sender": "a@sender.example",
                "sender_dependent": True,
            },
            ("alice", "pw-a"),
        ),
        (
            {
                "host": "mx.example.com",
                "destination": "x",
                "sender": "b@sender.example",
                "sender_dependent": True,
            },
            ("domain", "pw-d"),
        ),
        (
            {"host": "mx.example.com", "destination": "x", "sender": "a@sender.example"},
            ("host", "pw:with:colons"),
        ),
        (
            {"host": "mx.example.com", "destination": "x", "sender": "", "sender_dependent": True},
            ("host", "pw:with:colons"),
        ),
        ({"host": "nopass.example", "destination": "x"}, ("onlyuser", "")),
        ({"host": "other.example", "destination": "x"}, None),
    ],
)
def test_password_maps_lookup_order(
    kwargs: dict[str, object], expected: tuple[str, str] | None
) -> None:
    found = lookup_credentials(MAPS, **kwargs)  # type: ignore[arg-type]
    if expected is None:
        assert found is None
    else:
        assert found is not None
        assert (found.username, found.password) == expected


def test_password_maps_empty_user_is_configuration_error() -> None:
    with pytest.raises(ValueError, match=r"empty\.example"):
        lookup_credentials(MAPS, host="empty.example", destination="x")


def test_password_maps_custom_delimiter() -> None:
    found = lookup_credentials({"h": "user|pw:x"}, host="h", destination="d", delimiter="|")
    assert found == SaslCredentials("user", "pw:x")


# -- security options and mechanism choice (rule 11.4; AU-17, NS-09) -----------------------


def test_security_options_parse() -> None:
    assert parse_security_options("noplaintext, noanonymous") == DEFAULT_SECURITY_OPTIONS
    assert parse_security_options("") == frozenset()
    assert parse_security_options(["NOACTIVE", "mutual_auth forward_secrecy"]) == {
        "noactive",
        "mutual_auth",
        "forward_secrecy",
    }
    with pytest.raises(ValueError, match="'nosuch'"):
        parse_security_options("noplaintext, nosuch")


def test_mechanism_filter_parse() -> None:
    assert parse_mechanism_filter("scram-sha-256, plain") == ("SCRAM-SHA-256", "PLAIN")
    assert parse_mechanism_filter("!gssapi !ntlm login") == ("!GSSAPI", "!NTLM", "LOGIN")
    with pytest.raises(ValueError, match="hash:/etc/postfix/filter"):
        parse_mechanism_filter("hash:/etc/postfix/filter")


def test_default_options_differ_from_postfix_only_under_verified_tls() -> None:
    # Quirk Q9: stock Postfix uses the cleartext options under TLS too; AU-20: the library
    # lifts noplaintext only for a verified peer.
    assert parse_security_options("noplaintext, noanonymous") == DEFAULT_SECURITY_OPTIONS
    assert DEFAULT_TLS_SECURITY_OPTIONS == DEFAULT_SECURITY_OPTIONS
    assert parse_security_options("noanonymous") == DEFAULT_TLS_VERIFIED_SECURITY_OPTIONS


def test_au05_options_follow_the_channel_not_the_server() -> None:
    assert security_options_for(tls=False, verified=True) == DEFAULT_SECURITY_OPTIONS
    assert security_options_for(tls=True, verified=False) == DEFAULT_TLS_SECURITY_OPTIONS
    verified = frozenset({"nodictionary"})
    assert security_options_for(tls=True, verified=True, tls_verified_options=verified) == verified
    assert security_options_for(tls=True, verified=True) == DEFAULT_TLS_VERIFIED_SECURITY_OPTIONS
    unset = security_options_for(tls=True, verified=True, tls_verified_options=None)
    assert unset == DEFAULT_TLS_SECURITY_OPTIONS


def choose(
    offered: str, options: frozenset[str], credentials: SaslCredentials = PENCIL, **kw: object
) -> str | None:
    return select_mechanism(
        offered.split(),
        security_options=options,
        credentials=credentials,
        **kw,  # type: ignore[arg-type]
    ).mechanism


def test_au17_filter_keeps_scram_first() -> None:
    chosen = choose(
        "GSSAPI NTLM PLAIN SCRAM-SHA-256",
        DEFAULT_TLS_VERIFIED_SECURITY_OPTIONS,
        mechanism_filter=parse_mechanism_filter("scram-sha-256, plain"),
    )
    assert chosen == "SCRAM-SHA-256"


def test_au01_plain_login_never_chosen_in_cleartext_by_default() -> None:
    selection = select_mechanism(
        ["PLAIN", "LOGIN"], security_options=DEFAULT_SECURITY_OPTIONS, credentials=PENCIL
    )
    assert selection.mechanism is None
    assert "no compatible authentication mechanisms" in selection.reason
    assert "PLAIN (noplaintext)" in selection.reason


def test_au02_plain_chosen_under_verified_tls_defaults() -> None:
    assert choose("PLAIN LOGIN", DEFAULT_TLS_VERIFIED_SECURITY_OPTIONS) == "PLAIN"
    assert choose("login", DEFAULT_TLS_VERIFIED_SECURITY_OPTIONS) == "LOGIN"


def test_au04_explicit_opt_in_allows_plain_in_cleartext() -> None:
    assert choose("PLAIN", parse_security_options("noanonymous")) == "PLAIN"


EAST_X1 = (
    "0SNET ANONYMOUS CRAM-MD5 DIGEST-MD5 EXTERNAL GSSAPI LOGIN LOGIN_MYSQL NTLM OTP PLAIN "
    "SCRAM-SHA-1 SCRAM-SHA-256 SCRAM-SHA-256-PLUS XOAUTH2 OAUTHBEARER"
)


def test_ns09_east_x1_list_no_credential_in_clear() -> None:
    # Only mechanisms that never put the password or token on the wire stay in cleartext.
    both = SaslCredentials("user", "pencil", token="tok")
    assert choose(EAST_X1, DEFAULT_SECURITY_OPTIONS, both) == "SCRAM-SHA-256"
    assert (
        choose(
            EAST_X1, DEFAULT_SECURITY_OPTIONS, both, mechanism_filter=("PLAIN", "LOGIN", "XOAUTH2")
        )
        is None
    )


def test_preference_order_and_unknown_names() -> None:
    options = DEFAULT_TLS_VERIFIED_SECURITY_OPTIONS
    assert choose("LOGIN PLAIN CRAM-MD5", options) == "CRAM-MD5"
    assert choose("LOGIN PLAIN CRAM-MD5 SCRAM-SHA-1", options) == "SCRAM-SHA-1"
    assert choose("NTLM GSSAPI X-WEIRD", options) is None
    no_scram = tuple(n for n in PREFERENCE if not n.startswith("SCRAM"))
    assert choose("SCRAM-SHA-256 PLAIN", options, preference=no_scram) == "PLAIN"


def test_xoauth2_needs_a_token_and_wins_over_plain() -> None:
    options = DEFAULT_TLS_VERIFIED_SECURITY_OPTIONS
    assert choose("PLAIN XOAUTH2", options) == "PLAIN"
    token = SaslCredentials("u@example.com", token="ya29.TOKEN")
    assert choose("PLAIN XOAUTH2", options, token) == "XOAUTH2"
    assert choose("PLAIN XOAUTH2", DEFAULT_SECURITY_OPTIONS, token) is None


def test_external_only_with_certificate_and_by_name() -> None:
    options = DEFAULT_TLS_VERIFIED_SECURITY_OPTIONS
    assert choose("EXTERNAL PLAIN", options) == "PLAIN"
    assert choose("EXTERNAL PLAIN", options, client_certificate=True) == "PLAIN"
    wanted = ("EXTERNAL", "PLAIN")
    assert choose("EXTERNAL PLAIN", options, mechanism_filter=wanted) == "PLAIN"
    assert (
        choose("EXTERNAL PLAIN", options, mechanism_filter=wanted, client_certificate=True)
        == "EXTERNAL"
    )


@pytest.mark.parametrize(
    ("options", "chosen"),
    [
        ("mutual_auth", "SCRAM-SHA-256"),
        ("nodictionary", None),
        ("noactive", "SCRAM-SHA-256"),
        ("forward_secrecy", None),
        ("noplaintext nodictionary", None),
    ],
)
def test_security_options_filter_by_property(options: str, chosen: str | None) -> None:
    offered = "PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256"
    assert choose(offered, parse_security_options(options)) == chosen


def test_mutual_auth_excludes_cram_md5() -> None:
    assert choose("PLAIN CRAM-MD5", parse_security_options("mutual_auth")) is None


def test_filter_negation_and_no_match() -> None:
    options = DEFAULT_TLS_VERIFIED_SECURITY_OPTIONS
    assert choose("PLAIN LOGIN", options, mechanism_filter=("!PLAIN", "LOGIN")) == "LOGIN"
    assert choose("PLAIN LOGIN", options, mechanism_filter=("CRAM-MD5",)) is None


def test_no_mechanisms_offered() -> None:
    selection = select_mechanism([], security_options=frozenset(), credentials=PENCIL)
    assert selection.mechanism is None
    assert selection.reason == "server offered no SASL mechanisms"


def test_select_rejects_unknown_option() -> None:
    with pytest.raises(LocalProtocolError, match="security_options"):
        select_mechanism(["PLAIN"], security_options=frozenset({"bogus"}), credentials=PENCIL)


@pytest.mark.parametrize("name", ["PLAIN", "LOGIN", "CRAM-MD5", "scram-sha-1", "SCRAM-SHA-256"])
def test_create_mechanism_by_name(name: str) -> None:
    mechanism = create_mechanism(name, PENCIL, nonce="abc")
    assert mechanism.name == name.upper()


def test_create_mechanism_errors() -> None:
    with pytest.raises(LocalProtocolError, match="nonce"):
        create_mechanism("SCRAM-SHA-256", PENCIL)
    with pytest.raises(LocalProtocolError, match="NTLM"):
        create_mechanism("NTLM", PENCIL)


@FAST
@given(
    server_first=st.one_of(
        st.binary(max_size=120),
        st.builds(
            lambda tail, salt, count: (
                b"r=" + SHA256_NONCE.encode() + tail + b",s=" + salt + b",i=" + count
            ),
            st.binary(max_size=8),
            st.binary(max_size=12),
            st.binary(max_size=12),
        ),
    ),
    server_final=st.binary(max_size=60),
)
def test_scram_peer_garbage_raises_only_remote_errors(
    server_first: bytes, server_final: bytes
) -> None:
    mechanism = ScramSHA256(PENCIL, nonce=SHA256_NONCE, min_iterations=1, max_iterations=16)
    mechanism.initial_response()
    try:
        mechanism.respond(server_first)
        mechanism.respond(server_final)
        mechanism.verify_success()
    except RemoteProtocolError:
        return
    raise AssertionError("a forged exchange verified")
