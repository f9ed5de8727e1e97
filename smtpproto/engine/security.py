"""STARTTLS at Postfix's TLS security levels and SASL AUTH: the session's security policy.

Postfix smtp_proto.c ``smtp_helo()``/``smtp_start_tls()`` and smtp_sasl_proto.c/_glue.c
(rules 5, 11). :class:`SecurityPolicy` plugs into :func:`.session.handshake` as its
``SessionPolicy``; :func:`default_policy` builds one per connection.

Everything here fails closed. At ``encrypt`` and above nothing but QUIT follows a missing,
refused or failed STARTTLS, or a certificate that does not pass the policy; a password is
offered only when the security options in force for the channel's *actual* TLS state allow
the mechanism (AU-05); an AUTH that does not end in a 2xx reply ends the session. None of
these failures bounces a recipient: each is a soft site failure, so the next MX host is
tried, or the recipients are deferred at the last one (rules 2.2, 14.7).

A deliberate difference from Postfix, towards deferring rather than losing mail: a 5xx reply
to STARTTLS at a required level defers (Postfix bounces; a man in the middle could otherwise
turn a downgrade attempt into bounces).

A failed handshake at ``may`` is retried on the same address in plaintext as Postfix does
(`SecurityPolicy.plaintext_retry`, rule 5.5): only for a message queued at least
``minimal_backoff_time`` (a message of unknown arrival counts as just queued, so a caller that
does not say when the message arrived never gets the retry), and never with SASL credentials
for the server (rule 11.9). A TLS session that fails after the handshake is not retried.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from .._errors import LocalProtocolError, RemoteProtocolError
from ..capabilities import Capabilities
from ..commands import MAX_COMMAND_LINE, Auth, AuthResponse
from ..commands import StartTLS as StartTLSCommand
from ..config import ClientConfig
from ..replies import Reply
from ..report import TLSState
from ..requests import IOFailure, IOTimeout, StartTLS, TLSFailed, TLSInfo, TLSParameters
from ..sasl import (
    PREFERENCE,
    Mechanism,
    SaslCredentials,
    create_mechanism,
    decode_challenge,
    encode_response,
    lookup_credentials,
    security_options_for,
    select_mechanism,
)
from ..tables import Lookup
from ..tlsreport import AttemptResult, ResultType
from .authtls import Refusal, ServerDNS, ServerTLS, STSState, attempt, judge, server_policy
from .redact import Secrets
from .session import IO, Session, fail_stream, hello
from .tlspolicy import (
    CHAIN_LEVELS,
    TLSPolicy,
    check_peer,
    established_message,
    match_names,
    matched_name,
    policy_for,
    server_name,
    tls_parameters,
    tls_required,
    trust_word,
)
from .trouble import Stage, Trouble, handshake_trouble, is_protocol_error_code, local_trouble

__all__ = ["MAX_AUTH_ROUNDS", "SecurityPolicy", "default_policy", "without_auth"]

MAX_AUTH_ROUNDS = 10
"""``334`` round trips allowed per AUTH (AU-08; smtplib stops at 5, Postfix at 100)."""

_CONFIG_PROBLEM = "client TLS configuration problem"  # rule 5.10


def without_auth(capabilities: Capabilities) -> Capabilities:
    """`capabilities` minus every AUTH keyword (AU-03: learned in plaintext, then distrusted)."""
    keywords: Mapping[str, tuple[str, ...]] = {
        k: v for k, v in capabilities.keywords.items() if k != "AUTH" and not k.startswith("AUTH=")
    }
    return Capabilities(capabilities.domain, keywords)


@dataclass
class SecurityPolicy:
    """The STARTTLS and AUTH steps for one connection to a server of next hop `nexthop`.

    `nexthop` is the destination as given (``example.com``, ``[mx.example.com]:587``): the
    key of ``tls_policy_maps`` and ``sasl_password_maps`` and the ``nexthop`` of ``secure``
    name matching. `sender` is the envelope sender for ``sender_dependent_authentication``
    (``None`` on a session opened before any envelope). `unix` downgrades ``may`` to ``none``
    (rule 5.11). One object serves one connection: it remembers a refused STARTTLS.
    """

    config: ClientConfig
    nexthop: str
    sender: str | None = None
    unix: bool = False
    tls_policy: TLSPolicy | None = field(default=None, init=False)
    """The policy found for `nexthop`; ``None`` until :meth:`starttls` ran, or on a bad entry."""
    starttls_refused: bool = field(default=False, init=False)
    """The server refused STARTTLS at ``may``: AUTH is off for this connection (AU-03)."""
    tls_state: TLSState | None = field(default=None, init=False)
    """The TLS this connection established, kept for the report even when it then failed."""
    wrapped: bool = field(default=False, init=False)
    """TLS began with the connection (``smtp_tls_wrappermode``): there is no STARTTLS."""
    handshake_failed: bool = field(default=False, init=False)
    """This connection's TLS handshake failed (rule 5.5)."""
    plaintext: bool = False
    """The plaintext retry after a failed handshake at ``may``: TLS is off (rule 5.5)."""
    deferred_auth: bool = False
    """AUTH waits for the first transaction's sender (a held session with
    ``sender_dependent_authentication``; see ``smtpproto.engine.open_session``)."""
    server: ServerTLS | None = field(default=None, init=False)
    """The server's policy after DANE and MTA-STS (:meth:`resolve_server`)."""
    dns: ServerDNS | None = field(default=None, init=False)
    """What DNS said about the server, for the TLS-RPT results."""
    attempts: list[AttemptResult] = field(default_factory=list, init=False)
    """The TLS-RPT result of this connection's TLS attempt (RFC 8460), when it made one."""

    # -- STARTTLS -------------------------------------------------------------------------

    def nexthop_policy(self) -> TLSPolicy:
        """The TLS policy for `nexthop` (``tls_policy_maps``, then the level), before DANE
        and MTA-STS; may raise `LocalProtocolError` for an unreadable entry (rule 5.10)."""
        maps = self.config.tls_policy_maps
        if isinstance(maps, Lookup) and not maps.tables:
            # No table: a function of the next hop and the configuration alone, remembered
            # with the latter (a table may be a caller's mapping, which can change).
            return self.config._derived(("nexthop_policy", self.nexthop), self._nexthop_policy)
        return self._nexthop_policy()

    def _nexthop_policy(self) -> TLSPolicy:
        config = self.config
        return policy_for(
            self.nexthop,
            default_level=config.tls_security_level or "none",
            policy_maps=config.tls_policy_maps,
            verify_match=config.tls_verify_cert_match,
            secure_match=config.tls_secure_cert_match,
            fingerprint_match=config.tls_fingerprint_cert_match,
        )

    def resolve_server(self, dns: ServerDNS, *, sts: STSState | None, now: int | None) -> IO:
        """Before connecting: the policy for this server (DANE's TLSA lookups, MTA-STS);
        ``None``, or the site Trouble that skips the server (its TLS-RPT result noted)."""
        self.dns = dns
        try:
            policy = self.nexthop_policy()
        except LocalProtocolError:
            return None  # reported where the policy is used (rule 5.10)
        decided = yield from server_policy(
            policy, dns, config=self.config, nexthop=self.nexthop, sts=sts, now=now
        )
        if isinstance(decided, Refusal):
            if decided.result is not None:
                self.attempts.append(decided.result)
            return decided.trouble
        self.server = decided
        return None

    def lookup(self) -> TLSPolicy:
        """The TLS policy for this connection: the server's, once :meth:`resolve_server`
        ran, else `nexthop`'s; may raise `LocalProtocolError` (rule 5.10)."""
        policy = self.server.policy if self.server is not None else self.nexthop_policy()
        if self.server is None and policy.level in CHAIN_LEVELS:
            # The core authenticates these from DNS or configured fingerprints: without the
            # server's resolution there is nothing to check, and nothing may be skipped.
            raise LocalProtocolError(f"level {policy.level!r} needs the server resolved first")
        if (self.unix or self.plaintext) and policy.level == "may":
            return TLSPolicy("none")
        return policy

    def _note(self, session: Session, *, result_type: ResultType | None, reason: str) -> None:
        """The TLS-RPT result of this attempt (not for level ``none``)."""
        if self.server is None or self.dns is None:
            return
        caps = session.capabilities
        # MTA-STS testing: TLS went as configured; only a verified chain says what enforce
        # would have decided (RFC 8461 5), so an unverified success is not reported.
        verified = session.tls is not None and session.tls.chain_verified
        unknown = result_type is None and self.server.failure is None and not verified
        if self.server.testing and unknown:
            return
        self.attempts.append(
            attempt(
                self.server,
                self.dns,
                result_type=result_type,
                reason=reason or None,
                helo=caps.domain if caps is not None else None,
            )
        )

    def credentials_for(self, host: str, sender: str | None) -> SaslCredentials | None:
        """The SASL credentials this connection would use for `sender` (rule 11.2), or None
        (also when SASL is off); `LocalProtocolError` for a table that cannot be read."""
        config = self.config
        if not config.sasl_auth_enable:
            return None
        return lookup_credentials(
            config.sasl_password_maps,
            host=host,
            destination=self.nexthop,
            sender=sender,
            sender_dependent=config.sender_dependent_authentication,
        )

    def plaintext_retry(self, host: str, *, queued_long: bool) -> bool:
        """Rule 5.5: after this connection's handshake failed, try the same address again
        without TLS? Only at ``may``, for a message queued at least ``minimal_backoff_time``
        (`queued_long`), and without SASL credentials for the server (rule 11.9)."""
        policy = self.tls_policy
        if not self.handshake_failed or policy is None or policy.level != "may" or not queued_long:
            return False
        try:
            return self.credentials_for(host, self.sender) is None
        except LocalProtocolError:
            return False

    def _parameters(self, policy: TLSPolicy) -> TLSParameters:
        # A function of the policy and the configuration alone: remembered with the latter.
        parameters = self.config._derived(
            ("tls_parameters", policy), lambda: _tls_parameters(policy, self.config)
        )
        if self.server is not None and self.server.records:
            # DANE, fingerprints, trust anchors: the core checks the chain, not the CAs.
            parameters = replace(parameters, verify=False)
        return parameters

    def refuse_wrapper(self) -> Trouble | None:
        """Before connecting in ``smtp_tls_wrappermode``: ``None``, or why not to connect.

        Implicit TLS needs a level of ``encrypt`` or above for this next hop (Postfix
        smtp_connect.c skips the server otherwise): a lower level would mean a server that
        fails the handshake gets the mail in plaintext, which wrapper mode cannot do.
        """
        try:
            policy = self.lookup()
        except LocalProtocolError as error:
            return local_trouble("4.7.0", f"{_CONFIG_PROBLEM}: {error}", site=True)
        if not tls_required(policy.level):
            return local_trouble(
                "4.7.0",
                f"{_CONFIG_PROBLEM}: smtp_tls_wrappermode requires smtp_tls_security_level "
                f"= encrypt or stronger (it is {policy.level} for {self.nexthop})",
                site=True,
            )
        return None

    def wrap(self, session: Session) -> IO:
        """Implicit TLS (RFC 8314 3, port 465): the handshake before the greeting.

        Returns ``None`` or the site Trouble; afterwards `starttls` does nothing and the
        greeting and EHLO travel inside TLS. Call `refuse_wrapper` first.
        """
        try:
            policy = self.lookup()
            parameters = self._parameters(policy)
        except LocalProtocolError as error:
            session.note(f"Warning: {_CONFIG_PROBLEM}: {error}")
            return local_trouble("4.7.0", _CONFIG_PROBLEM, site=True)
        self.tls_policy = policy
        self.wrapped = True
        failure = yield from self._handshake(session, policy, parameters, required=True)
        if failure is not None:
            # No greeting was read, so not even QUIT may follow: close.
            session.forbidden = True
        return failure

    def _handshake(
        self, session: Session, policy: TLSPolicy, parameters: TLSParameters, *, required: bool
    ) -> IO:
        """The TLS handshake and the certificate check; ``None`` or the site Trouble."""
        server = session.server
        sni = server_name(
            policy,
            hostname=server.host,
            nexthop=self.nexthop,
            default=self.config.tls_servername,
        )
        if self.server is not None and self.server.sni is not None:
            sni = self.server.sni  # RFC 7672 8.1: DANE sends the TLSA base domain
        try:
            info: TLSInfo = yield StartTLS(
                session.channel, sni, parameters, self.config.starttls_timeout
            )
            if not self.wrapped:
                session.connection.tls_established()
        except (IOFailure, RemoteProtocolError) as exc:
            # Rule 5.5: no more I/O, not even QUIT; NS-13.
            self.handshake_failed = True
            session.forbidden = True
            session.cacheable = False
            detail = getattr(exc, "reason", str(exc))
            session.note(f"Warning: TLS handshake with {server.label}: {detail}")
            certificate = isinstance(exc, TLSFailed) and exc.certificate
            self._note(
                session,
                result_type="certificate-not-trusted" if certificate else "validation-failure",
                reason=detail,
            )
            if certificate:
                # The adapter's handshake checks the chain itself (TLSParameters.verify); this
                # is Postfix's verdict on a chain it does not trust, said as Postfix says it.
                return local_trouble("4.7.5", "Server certificate not trusted", site=required)
            return local_trouble("4.7.5", "Cannot start TLS: handshake failure", site=required)
        session.tls = info
        session.capabilities = None
        session.pix_delay_dotcrlf = False  # rule 5.7: pre-TLS features are gone, PIX flags too
        result_type: ResultType | None = None
        detail = ""
        if self.server is not None and self.server.records:
            verdict = judge(self.server, info)
            failure, word, matched = verdict.failure, verdict.trust, verdict.matched
            result_type, detail = verdict.result_type, verdict.detail
            if detail:
                session.note(f"{server.relay}: {detail}")
        else:
            names = match_names(policy, hostname=server.host, nexthop=self.nexthop)
            failure = check_peer(policy, info, names)
            matched = matched_name(info.peer_certificate, names) if failure is None else None
            word = trust_word(info, matched is not None)
            if failure is not None:
                result_type = (
                    "certificate-host-mismatch"
                    if info.chain_verified
                    else "certificate-not-trusted"
                )
        session.tls_state = self.tls_state = TLSState(
            word, info.version, info.cipher, level=policy.level, matched=matched
        )
        session.note(
            established_message(info, matched=matched is not None, peer=server.relay, trust=word)
        )
        self._note(session, result_type=result_type, reason=detail or failure or "")
        if failure is not None:
            # Rule 5.6, NS-14: the TLS session works, so QUIT goes over it (delivery does it).
            session.cacheable = False
            return local_trouble("4.7.5", failure, site=True)
        return None

    def starttls(self, session: Session) -> IO:
        """Rules 5.2-5.8; NS-03..NS-08, NS-13, NS-14. Returns ``None`` or the site Trouble."""
        if self.wrapped:
            return None
        server = session.server
        try:
            policy = self.lookup()
            parameters = None if policy.level == "none" else self._parameters(policy)
        except LocalProtocolError as error:
            # Rule 5.10: a policy that cannot be read is never weakened to plaintext.
            session.note(f"Warning: {_CONFIG_PROBLEM}: {error}")
            return local_trouble("4.7.0", _CONFIG_PROBLEM, site=True)
        self.tls_policy = policy
        required = tls_required(policy.level)
        caps = session.capabilities
        offered = caps is not None and caps.starttls
        if parameters is None:
            if offered and self.config.tls_note_starttls_offer:
                session.note(f"Host offered STARTTLS: [{server.host}]")
            return None
        if not offered:
            text = f"TLS is required, but was not offered by host {server.label}"
            self._note(session, result_type="starttls-not-supported", reason=text)
            if required:
                # NS-03, NS-08 (HELO only: no STARTTLS can exist).
                return local_trouble("4.7.4", text, site=True)
            return None
        timeout = self.config.starttls_timeout
        try:
            reply: Reply = yield from session.command(StartTLSCommand(), timeout)
        except (IOFailure, RemoteProtocolError) as exc:
            # NS-01 (bytes after the 220) and NS-06 (a 3xx) arrive here as protocol errors.
            return fail_stream(session, exc, Stage.STARTTLS)
        if not reply.is_positive:
            self._note(session, result_type="starttls-not-supported", reason=str(reply))
            if required:
                # Rule 5.3, NS-04/05/07; 5xx softened on purpose (module docstring).
                return Trouble(
                    _soft(reply),
                    f"TLS is required, but host {server.label} refused to start TLS: {reply}",
                    reply,
                    site=True,
                    protocol_error=is_protocol_error_code(reply.code),
                )
            if reply.code == 421:
                session.cacheable = False
                return handshake_trouble(server, reply)
            # Rule 5.3: plaintext on the same connection, but never AUTH with what the
            # plaintext EHLO said (AU-03, Postfix smtp_starttls_sasl_test).
            self.starttls_refused = True
            if caps is not None:
                session.capabilities = without_auth(caps)
            return None
        failure = yield from self._handshake(session, policy, parameters, required=required)
        if failure is not None:
            return failure
        trouble: Trouble | None = yield from hello(session, esmtp=True)
        return trouble

    # -- AUTH -----------------------------------------------------------------------------

    def _credentials(self, session: Session) -> SaslCredentials | None:
        """The ``sasl_password_maps`` entry for this server, as AUTH will send it; may raise
        `LocalProtocolError`."""
        config = self.config
        credentials = self.credentials_for(session.server.host, self.sender)
        if credentials is not None and config.send_cyrus_sasl_authzid:
            # Postfix send_cyrus_sasl_authzid: the authorization ID is the login name.
            credentials = replace(credentials, authzid=credentials.username)
        return credentials

    def prepare(self, session: Session) -> None:
        """Before the greeting: the credentials this server may get are secrets from now on,
        whatever the server sends (AU-18). A bad entry is reported by `authenticate`."""
        if not self.config.sasl_auth_enable:
            return
        try:
            credentials = self._credentials(session)
        except LocalProtocolError:
            return
        if credentials is not None:
            session.redactor.learn(Secrets.from_credentials(credentials))

    def authenticate(self, session: Session) -> IO:
        """Rules 11.1-11.6; AU-01..AU-10. Returns ``None`` or the site Trouble."""
        config = self.config
        server = session.server
        if not config.sasl_auth_enable or self.starttls_refused or self.deferred_auth:
            return None
        policy = self.tls_policy
        # Wrapper mode: TLS from the first byte, so the connection never saw a STARTTLS.
        is_tls = (session.connection.is_tls or self.wrapped) and session.tls is not None
        if policy is None or (tls_required(policy.level) and not is_tls):
            # Unreachable through handshake(); here so that no caller can skip STARTTLS.
            return local_trouble("4.7.4", f"TLS is required for host {server.label}", site=True)
        caps = session.capabilities
        if caps is None or not caps.auth_mechanisms:
            return None  # rule 11.3: go on unauthenticated
        try:
            credentials = self._credentials(session)
        except LocalProtocolError as error:
            return local_trouble("4.3.0", f"SASL configuration problem: {error}", site=True)
        if credentials is None:
            return None  # rule 11.3
        session.redactor.learn(Secrets.from_credentials(credentials))
        options = security_options_for(
            tls=is_tls,
            verified=session.tls_state is not None and session.tls_state.verified,
            options=config.sasl_security_options,
            tls_options=config.sasl_tls_security_options,
            tls_verified_options=config.sasl_tls_verified_security_options,
        )
        preference = PREFERENCE
        if session.nonce is None:
            preference = tuple(p for p in PREFERENCE if not p.startswith("SCRAM-"))
        selection = select_mechanism(
            caps.auth_mechanisms,
            security_options=options,
            credentials=credentials,
            mechanism_filter=config.sasl_mechanism_filter,
            client_certificate=is_tls and config.client_certificate is not None,
            preference=preference,
        )
        if selection.mechanism is None:
            # Rule 11.4: Postfix's words; no credential byte has been written.
            return local_trouble(
                "4.7.0",
                f"SASL authentication failed: server {server.label} {selection.reason}",
                site=True,
            )
        trouble = yield from self._exchange(session, selection.mechanism, credentials)
        if trouble is not None:
            session.cacheable = False
            return trouble
        session.identity = credentials.username
        if (
            config.sender_dependent_authentication
            and self.sender is not None
            and not session.pinned
        ):
            # Rule 11.8: authenticated for this sender only; never reused for another. A held
            # session is never used for another login: transact opens a new connection.
            session.cacheable = False
        return None

    def _exchange(self, session: Session, name: str, credentials: SaslCredentials) -> IO:
        """One AUTH exchange (rules 11.5, 11.6); ``None`` on success, else the Trouble.

        Every line is a secret before it is written (AU-18), and a SCRAM key derivation above
        `INLINE_ITERATIONS` is a `DeriveKey` request for the adapter (AU-19).
        """
        server = session.server
        timeout = self.config.helo_timeout
        redactor = session.redactor
        try:
            nonce = session.nonce() if name.startswith("SCRAM-") and session.nonce else None
            mechanism: Mechanism = create_mechanism(
                name,
                credentials,
                nonce=nonce,
                max_iterations=self.config.sasl_scram_max_iterations,
            )
            initial = mechanism.initial_response(max_line=MAX_COMMAND_LINE)
        except LocalProtocolError as error:
            return _auth_trouble(f"cannot authenticate to server {server.label}: {error}")
        if initial is not None:
            redactor.hide_sent(encode_response(initial).encode())
        try:
            reply: Reply = yield from session.command(Auth(name, initial), timeout)
            for _ in range(MAX_AUTH_ROUNDS + 1):
                if reply.code != 334:
                    break
                try:
                    if len(reply.lines) != 1:
                        raise RemoteProtocolError("multi-line 334 challenge")
                    challenge = decode_challenge(reply.lines[0])
                    derivation = mechanism.key_derivation(challenge)
                    if derivation is not None and derivation.blocking:
                        key: bytes = yield derivation
                        mechanism.use_derived_key(derivation, key)
                    response = mechanism.respond(challenge)
                except RemoteProtocolError as error:
                    # RFC 4954 4, AU-07: cancel, and read the server's 501 before giving up.
                    yield from _cancel(session, timeout)
                    return _auth_trouble(f"cannot authenticate to server {server.label}: {error}")
                redactor.hide_sent(encode_response(response).encode())
                for secret in mechanism.revealed():
                    redactor.hide(secret)
                reply = yield from session.command(AuthResponse(response), timeout)
            else:
                # Unreachable while mechanisms cap their own rounds; kept as the engine's bound.
                yield from _cancel(session, timeout)
                return _auth_trouble(f"authentication protocol loop with server {server.label}")
        except (IOFailure, RemoteProtocolError) as exc:
            return _auth_stream_trouble(session, exc)
        if reply.is_positive:
            try:
                mechanism.verify_success()
            except RemoteProtocolError as error:
                # AU-13: the server never proved itself; the session is not used.
                return _auth_trouble(f"server {server.label} not authenticated: {error}")
            return None
        # Rule 11.6: any other final reply (503 included, AU-10) fails; never "*" after it.
        # The reply may echo a credential: the ledger masks it with the diagnostic (AU-18).
        hard = not self.config.sasl_auth_soft_bounce and reply.code // 100 == 5
        return Trouble(
            # smtp_sasl_auth_soft_bounce (default yes): a 5xx AUTH reply defers, never bounces.
            reply.dsn if hard else _soft(reply),
            f"SASL authentication failed; server {server.label} said: {reply}",
            reply,
            site=True,
            protocol_error=is_protocol_error_code(reply.code),
        )


def _cancel(session: Session, timeout: float | None) -> IO:
    """Send ``*`` and read the answer; a server that challenges again gets no more bytes."""
    reply: Reply = yield from session.command(AuthResponse(None), timeout)
    if reply.code == 334:
        # The AUTH never ends, so not even QUIT can follow it on this connection.
        session.forbidden = True


def _soft(reply: Reply) -> str:
    """The reply's status with class 5 made 4: a security failure defers, never bounces."""
    dsn = reply.dsn
    if dsn[0] == "5":
        return "4" + dsn[1:]
    return dsn if dsn[0] == "4" else "4.7.0"


def _auth_trouble(text: str) -> Trouble:
    return local_trouble("4.7.0", f"SASL authentication failed; {text}", site=True)


def _auth_stream_trouble(session: Session, exc: Exception) -> Trouble:
    """A lost connection, timeout or unreadable reply during AUTH: 4.4.2 / 4.5.0, soft."""
    session.cacheable = False
    # Either way nothing more can be written: the stream is gone, or the connection refuses
    # every command after a protocol error (CV-10a), QUIT included.
    session.forbidden = True
    label = session.server.label
    if isinstance(exc, IOFailure):
        if isinstance(exc, IOTimeout):
            what = f"conversation with {label} timed out"
        else:
            what = f"lost connection with {label}"
        return Trouble("4.4.2", f"{what} while performing SASL authentication", site=True)
    return Trouble(
        "4.5.0",
        f"protocol error with {label} while performing SASL authentication: {exc}",
        site=True,
        protocol_error=True,
    )


def default_policy(
    config: ClientConfig, *, unix: bool, nexthop: str, sender: str | None = None
) -> SecurityPolicy:
    """A fresh policy for one connection to a server of `nexthop` (rules 5, 11)."""
    return SecurityPolicy(config, nexthop, sender=sender, unix=unix)


def _tls_parameters(policy: TLSPolicy, config: ClientConfig) -> TLSParameters:
    """The adapter's TLS parameters for `policy` under `config`'s TLS settings."""
    cert_file, key_file = config.client_certificate or (None, None)
    return tls_parameters(
        policy,
        ca_file=config.tls_CAfile,
        ca_path=config.tls_CApath,
        cert_file=cert_file,
        key_file=key_file,
        mandatory_protocols=config.tls_mandatory_protocols,
        protocols=config.tls_protocols,
        mandatory_ciphers=config.tls_mandatory_ciphers,
        ciphers=config.tls_ciphers,
        cipherlists={
            "high": config.tls_high_cipherlist,
            "medium": config.tls_medium_cipherlist,
            "low": config.tls_low_cipherlist,
            "null": config.tls_null_cipherlist,
        },
        exclude_ciphers=config.tls_exclude_ciphers,
        mandatory_exclude_ciphers=config.tls_mandatory_exclude_ciphers,
    )
