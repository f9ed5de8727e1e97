"""TLS-RPT (RFC 8460) result records: what a delivery report says about each TLS attempt.

:class:`AttemptResult` is one connection attempt under a policy (DANE, MTA-STS or none) and
its outcome; `smtpproto.report.DeliveryReport.tls_attempts` holds one per attempt, and
`smtpproto.engine.tlsrpt.ReportAggregator` counts them into the JSON report of a domain.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, Protocol

from ._errors import LocalProtocolError

__all__ = [
    "FAILURE_TYPES",
    "AttemptResult",
    "PolicyType",
    "ReportPolicy",
    "ResultType",
    "STSText",
    "check_text",
    "domain_name",
]


class STSText(Protocol):
    """What a report needs of an MTA-STS policy (`smtpproto.engine.mtasts.STSPolicy`)."""

    @property
    def mode(self) -> str:
        """``enforce``, ``testing`` or ``none``."""
        ...

    @property
    def max_age(self) -> int:
        """Seconds the policy may be cached."""
        ...

    @property
    def mx(self) -> tuple[str, ...]:
        """The MX patterns."""
        ...

    @property
    def lines(self) -> tuple[str, ...]:
        """The policy file as served, one string per line (may be empty)."""
        ...


PolicyType = Literal["tlsa", "sts", "no-policy-found"]
ResultType = Literal[
    # RFC 8460 4.3.1: negotiation failures.
    "starttls-not-supported",
    "certificate-host-mismatch",
    "certificate-expired",
    "certificate-not-trusted",
    "validation-failure",
    # RFC 8460 4.3.2.1: DANE policy failures.
    "tlsa-invalid",
    "dnssec-invalid",
    "dane-required",
    # RFC 8460 4.3.2.2: MTA-STS policy failures.
    "sts-policy-fetch-error",
    "sts-policy-invalid",
    "sts-webpki-invalid",
]
FAILURE_TYPES: frozenset[str] = frozenset(ResultType.__args__)  # type: ignore[attr-defined]
"""Every RFC 8460 4.3 result type."""


def domain_name(domain: str, what: str) -> str:
    """`domain` lower case without a final dot; `LocalProtocolError` naming `what` if it is
    not a printable name."""
    if not isinstance(domain, str) or not domain.strip(". ") or not domain.isprintable():
        raise LocalProtocolError(f"{what}: expected a domain name, got {domain!r}")
    return domain.strip().rstrip(".").lower()


def check_text(value: str | None, what: str) -> None:
    """`LocalProtocolError` naming `what` unless `value` is ``None`` or printable text."""
    if value is not None and (not isinstance(value, str) or not value or not value.isprintable()):
        raise LocalProtocolError(f"{what}: expected printable text, got {value!r}")


@dataclass(frozen=True)
class ReportPolicy:
    """The ``policy`` object of a report (RFC 8460 4.4): type, text, domain, MX patterns."""

    policy_type: PolicyType
    domain: str
    strings: tuple[str, ...] = ()
    mx_host: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.policy_type not in ("tlsa", "sts", "no-policy-found"):
            raise LocalProtocolError(f"policy_type: unknown {self.policy_type!r}")
        if domain_name(self.domain, "domain") != self.domain:
            raise LocalProtocolError(
                f"domain: write it lower case, without a final dot: {self.domain!r}"
            )
        for text in (*self.strings, *self.mx_host):
            check_text(text, "policy")
        if self.policy_type == "no-policy-found" and (self.strings or self.mx_host):
            raise LocalProtocolError("no-policy-found carries no policy strings or MX hosts")

    @classmethod
    def tlsa(cls, domain: str, records: Iterable[object]) -> ReportPolicy:
        """A DANE policy: the TLSA records of the host (`domain`, the TLSA base domain), each
        in presentation form (``str()`` of a `smtpproto.engine.dane.TLSARecord`)."""
        return cls("tlsa", domain_name(domain, "domain"), tuple(str(r) for r in records))

    @classmethod
    def sts(cls, domain: str, policy: STSText) -> ReportPolicy:
        """An MTA-STS policy: its text, one string per line, and its MX patterns."""
        lines = policy.lines or (
            "version: STSv1",
            f"mode: {policy.mode}",
            *(f"mx: {mx}" for mx in policy.mx),
            f"max_age: {policy.max_age}",
        )
        return cls("sts", domain_name(domain, "domain"), tuple(lines), policy.mx)

    @classmethod
    def none(cls, domain: str) -> ReportPolicy:
        """No DANE or MTA-STS policy applied to `domain`."""
        return cls("no-policy-found", domain_name(domain, "domain"))

    def to_json(self) -> dict[str, object]:
        """The RFC 8460 4.4 ``policy`` object."""
        result: dict[str, object] = {"policy-type": self.policy_type}
        if self.policy_type != "no-policy-found":
            result["policy-string"] = list(self.strings)
        result["policy-domain"] = self.domain
        # RFC 8460 4.3 defines mx-host as the list of the policy's MX patterns (the example
        # in 4.4 shows a single string); reporters and parsers in use take the list.
        if self.mx_host:
            result["mx-host"] = list(self.mx_host)
        return result


@dataclass(frozen=True)
class AttemptResult:
    """One TLS session attempt under `policy`: success, or the RFC 8460 4.3 failure."""

    policy: ReportPolicy
    success: bool
    result_type: ResultType | None = None
    sending_mta_ip: str | None = None
    receiving_mx_hostname: str | None = None
    receiving_mx_helo: str | None = None
    receiving_ip: str | None = None
    additional_information: str | None = None
    failure_reason_code: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.policy, ReportPolicy):
            raise LocalProtocolError("policy: expected a ReportPolicy")
        if self.success != (self.result_type is None):
            raise LocalProtocolError("result_type: required for a failure, absent on success")
        if self.result_type is not None and self.result_type not in FAILURE_TYPES:
            raise LocalProtocolError(f"result_type: unknown {self.result_type!r}")
        for name in (
            "sending_mta_ip",
            "receiving_mx_hostname",
            "receiving_mx_helo",
            "receiving_ip",
            "additional_information",
            "failure_reason_code",
        ):
            check_text(getattr(self, name), name)

    def _detail_key(self) -> tuple[str | None, ...]:
        return (
            self.result_type,
            self.sending_mta_ip,
            self.receiving_mx_hostname,
            self.receiving_mx_helo,
            self.receiving_ip,
            self.additional_information,
            self.failure_reason_code,
        )
