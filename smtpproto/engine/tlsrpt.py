"""TLS-RPT (RFC 8460) data: per-attempt results and the aggregate JSON report of a domain.

The engine records, for each TLS attempt, which policy applied (``tlsa``, ``sts`` or
``no-policy-found``), whether the session succeeded, and on failure the RFC 8460 4.3 result
type. :class:`ReportAggregator` counts those into the JSON report of RFC 8460 4.4 for one
policy domain; compressing, naming (:func:`report_filename`) and sending it is the
embedder's job, as is where the report goes (:func:`parse_record`, the ``_smtp._tls`` TXT).
Time comes in as seconds since the epoch, the report id as an argument: no clock, no
randomness here.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Sequence

from .._errors import LocalProtocolError, RemoteProtocolError
from ..report import DeliveryReport
from ..tlsreport import (
    FAILURE_TYPES,
    AttemptResult,
    PolicyType,
    ReportPolicy,
    ResultType,
    check_text,
    domain_name,
)

__all__ = [
    "FAILURE_TYPES",
    "AttemptResult",
    "PolicyType",
    "ReportAggregator",
    "ReportPolicy",
    "ResultType",
    "parse_record",
    "report_filename",
]

_TXT_VERSION = re.compile(r"v=TLSRPTv1(?:[ \t]*;|[ \t]*$)")


_DETAIL_FIELDS = (
    "result-type",
    "sending-mta-ip",
    "receiving-mx-hostname",
    "receiving-mx-helo",
    "receiving-ip",
    "additional-information",
    "failure-reason-code",
)


def _datetime(seconds: float, what: str) -> str:
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
        raise LocalProtocolError(f"{what}: expected seconds since the epoch, got {seconds!r}")
    moment = datetime.datetime.fromtimestamp(int(seconds), tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")  # RFC 3339 date-time, UTC


class ReportAggregator:
    """Counts attempt results per policy and turns them into RFC 8460 4.4 reports."""

    def __init__(self) -> None:
        self._success: dict[ReportPolicy, int] = {}
        self._failures: dict[ReportPolicy, dict[tuple[str | None, ...], int]] = {}

    def add(self, result: AttemptResult) -> None:
        """Count one attempt."""
        if not isinstance(result, AttemptResult):
            raise LocalProtocolError("result: expected an AttemptResult")
        self._success.setdefault(result.policy, 0)
        failures = self._failures.setdefault(result.policy, {})
        if result.success:
            self._success[result.policy] += 1
        else:
            key = result._detail_key()
            failures[key] = failures.get(key, 0) + 1

    def add_report(self, report: DeliveryReport) -> None:
        """Count every TLS attempt of a delivery (`DeliveryReport.tls_attempts`)."""
        for result in report.tls_attempts:
            self.add(result)

    def domains(self) -> tuple[str, ...]:
        """The policy domains with results, sorted: one report each."""
        return tuple(sorted({policy.domain for policy in self._success}))

    def report(
        self,
        domain: str,
        *,
        organization_name: str,
        contact_info: str,
        report_id: str,
        start: float,
        end: float,
    ) -> dict[str, object]:
        """The RFC 8460 4.4 report for policy domain `domain` over [`start`, `end`]."""
        for value, name in (
            (organization_name, "organization_name"),
            (contact_info, "contact_info"),
            (report_id, "report_id"),
        ):
            check_text(value, name)
        if end < start:
            raise LocalProtocolError("end: before start")
        wanted = domain_name(domain, "domain")
        policies = []
        for policy, successes in self._success.items():
            if policy.domain != wanted:
                continue
            details = []
            for key, count in self._failures[policy].items():
                detail: dict[str, object] = {
                    field: value for field, value in zip(_DETAIL_FIELDS, key, strict=True) if value
                }
                detail["failed-session-count"] = count
                details.append(detail)
            policies.append(
                {
                    "policy": policy.to_json(),
                    "summary": {
                        "total-successful-session-count": successes,
                        "total-failure-session-count": sum(self._failures[policy].values()),
                    },
                    "failure-details": details,
                }
            )
        return {
            "organization-name": organization_name,
            "date-range": {
                "start-datetime": _datetime(start, "start"),
                "end-datetime": _datetime(end, "end"),
            },
            "contact-info": contact_info,
            "report-id": report_id,
            "policies": policies,
        }

    def report_json(self, domain: str, **fields: object) -> bytes:
        """The report of :meth:`report` as UTF-8 JSON (RFC 8460 5.3: application/tlsrpt+json)."""
        report = self.report(domain, **fields)  # type: ignore[arg-type]
        return json.dumps(report, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def report_filename(
    sender: str,
    policy_domain: str,
    start: float,
    end: float,
    *,
    unique_id: str | None = None,
    gzip: bool = True,
) -> str:
    """``sender!policy-domain!begin!end[!unique-id].json[.gz]`` (RFC 8460 5.3)."""
    parts = [domain_name(sender, "sender"), domain_name(policy_domain, "policy_domain")]
    for value, name in ((start, "start"), (end, "end")):
        _datetime(value, name)
        parts.append(str(int(value)))
    if unique_id is not None:
        if not re.fullmatch(r"[A-Za-z0-9._-]+", unique_id):
            raise LocalProtocolError(f"unique_id: letters, digits, '.', '_', '-': {unique_id!r}")
        parts.append(unique_id)
    return "!".join(parts) + (".json.gz" if gzip else ".json")


def parse_record(texts: Sequence[str]) -> tuple[str, ...] | None:
    """The ``rua`` URIs of the one ``v=TLSRPTv1`` record among `texts` (RFC 8460 3), or ``None``.

    Only ``mailto:`` and ``https:`` URIs are kept; no record, several, or a malformed one:
    ``None`` (no reports requested).
    """
    candidates = [t for t in texts if _TXT_VERSION.match(t)]
    if len(candidates) != 1:
        return None
    try:
        return _rua(candidates[0])
    except RemoteProtocolError:
        return None


def _rua(text: str) -> tuple[str, ...]:
    fields = [f.strip(" \t") for f in text[len("v=TLSRPTv1") :].split(";")]
    fields = [f for f in fields if f]
    uris: tuple[str, ...] | None = None
    for item in fields:
        name, sep, value = item.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}", name):
            raise RemoteProtocolError(f"malformed TLS-RPT field {item!r}")
        if name == "rua" and uris is None:
            found = tuple(u.strip(" \t") for u in value.split(","))
            if not all(re.fullmatch(r"(?:mailto:|https://)[\x21-\x7e]+", u) for u in found):
                raise RemoteProtocolError(f"malformed TLS-RPT rua {value!r}")
            uris = found
    if not uris:
        raise RemoteProtocolError("TLS-RPT record without rua")
    return uris
