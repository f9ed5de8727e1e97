"""TLS-RPT data in the core (smtpproto.engine.tlsrpt): the RFC 8460 4.4 report rebuilt from
individual attempts, the report file name, and the ``_smtp._tls`` record."""

from __future__ import annotations

import calendar
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtpproto import LocalProtocolError
from smtpproto.engine.dane import TLSARecord
from smtpproto.engine.mtasts import STSPolicy
from smtpproto.engine.tlsrpt import (
    FAILURE_TYPES,
    AttemptResult,
    ReportAggregator,
    ReportPolicy,
    parse_record,
    report_filename,
)

# RFC 8460 4.4's example report, as JSON (its mx-host is shown as one string there; this
# library writes the list RFC 8460 4.3 describes, see ReportPolicy.to_json).
RFC_EXAMPLE = {
    "organization-name": "Company-X",
    "date-range": {
        "start-datetime": "2016-04-01T00:00:00Z",
        "end-datetime": "2016-04-01T23:59:59Z",
    },
    "contact-info": "sts-reporting@company-x.example",
    "report-id": "5065427c-23d3-47ca-b6e0-946ea0e8c4be",
    "policies": [
        {
            "policy": {
                "policy-type": "sts",
                "policy-string": [
                    "version: STSv1",
                    "mode: testing",
                    "mx: *.mail.company-y.example",
                    "max_age: 86400",
                ],
                "policy-domain": "company-y.example",
                "mx-host": ["*.mail.company-y.example"],
            },
            "summary": {
                "total-successful-session-count": 5326,
                "total-failure-session-count": 303,
            },
            "failure-details": [
                {
                    "result-type": "certificate-expired",
                    "sending-mta-ip": "2001:db8:abcd:0012::1",
                    "receiving-mx-hostname": "mx1.mail.company-y.example",
                    "failed-session-count": 100,
                },
                {
                    "result-type": "starttls-not-supported",
                    "sending-mta-ip": "2001:db8:abcd:0013::1",
                    "receiving-mx-hostname": "mx2.mail.company-y.example",
                    "receiving-ip": "203.0.113.56",
                    "failed-session-count": 200,
                    "additional-information": "https://reports.company-x.example/"
                    "report_info?id=5065427c-23d3#StarttlsNotSupported",
                },
                {
                    "result-type": "validation-failure",
                    "sending-mta-ip": "198.51.100.62",
                    "receiving-ip": "203.0.113.58",
                    "receiving-mx-hostname": "mx-backup.mail.company-y.example",
                    "failed-session-count": 3,
                    "failure-reason-code": "X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED",
                },
            ],
        }
    ],
}
START = calendar.timegm((2016, 4, 1, 0, 0, 0))
END = calendar.timegm((2016, 4, 1, 23, 59, 59))
POLICY = ReportPolicy.sts(
    "company-y.example",
    STSPolicy.parse(
        "version: STSv1\nmode: testing\nmx: *.mail.company-y.example\nmax_age: 86400\n"
    ),
)


def _rfc_attempts() -> list[AttemptResult]:
    details = RFC_EXAMPLE["policies"][0]["failure-details"]  # type: ignore[index]
    attempts = [AttemptResult(POLICY, True) for _ in range(5326)]
    for detail in details:
        attempt = AttemptResult(
            POLICY,
            False,
            result_type=detail["result-type"],
            sending_mta_ip=detail["sending-mta-ip"],
            receiving_mx_hostname=detail["receiving-mx-hostname"],
            receiving_ip=detail.get("receiving-ip"),
            additional_information=detail.get("additional-information"),
            failure_reason_code=detail.get("failure-reason-code"),
        )
        attempts += [attempt] * detail["failed-session-count"]
    return attempts


def test_rfc8460_example_report_from_individual_attempts() -> None:
    aggregator = ReportAggregator()
    for attempt in _rfc_attempts():
        aggregator.add(attempt)
    fields: dict[str, object] = {
        "organization_name": "Company-X",
        "contact_info": "sts-reporting@company-x.example",
        "report_id": "5065427c-23d3-47ca-b6e0-946ea0e8c4be",
        "start": START,
        "end": END,
    }
    report = aggregator.report("company-y.example", **fields)  # type: ignore[arg-type]
    assert report == RFC_EXAMPLE
    assert list(report) == list(RFC_EXAMPLE)  # the member order of the RFC's example
    encoded = aggregator.report_json("company-y.example", **fields)
    assert json.loads(encoded) == RFC_EXAMPLE


def test_reports_are_per_policy_domain() -> None:
    aggregator = ReportAggregator()
    record = TLSARecord(3, 1, 1, bytes(range(32)))
    dane = ReportPolicy.tlsa("MX.Example.org.", [record])
    aggregator.add(AttemptResult(dane, True))
    aggregator.add(AttemptResult(dane, False, result_type="dnssec-invalid"))
    aggregator.add(AttemptResult(ReportPolicy.none("other.example"), True))
    aggregator.add(AttemptResult(POLICY, True))
    assert aggregator.domains() == ("company-y.example", "mx.example.org", "other.example")
    report = aggregator.report(
        "mx.example.org", organization_name="o", contact_info="c", report_id="r", start=0, end=1
    )
    (entry,) = report["policies"]  # type: ignore[misc]
    assert entry["policy"] == {
        "policy-type": "tlsa",
        "policy-string": [str(record)],
        "policy-domain": "mx.example.org",
    }
    assert entry["summary"] == {
        "total-successful-session-count": 1,
        "total-failure-session-count": 1,
    }
    assert entry["failure-details"] == [
        {"result-type": "dnssec-invalid", "failed-session-count": 1}
    ]
    none = aggregator.report(
        "other.example", organization_name="o", contact_info="c", report_id="r", start=0, end=1
    )
    assert none["policies"][0]["policy"] == {  # type: ignore[index]
        "policy-type": "no-policy-found",
        "policy-domain": "other.example",
    }


@given(st.lists(st.tuples(st.booleans(), st.sampled_from(sorted(FAILURE_TYPES))), max_size=40))
def test_counts_add_up(outcomes: list[tuple[bool, str]]) -> None:
    aggregator = ReportAggregator()
    for success, result_type in outcomes:
        aggregator.add(
            AttemptResult(POLICY, success, result_type=None if success else result_type)  # type: ignore[arg-type]
        )
    if not outcomes:
        assert aggregator.domains() == ()
        return
    report = aggregator.report(
        "company-y.example", organization_name="o", contact_info="c", report_id="r", start=0, end=0
    )
    (entry,) = report["policies"]  # type: ignore[misc]
    failures = [t for ok, t in outcomes if not ok]
    assert entry["summary"]["total-successful-session-count"] == len(outcomes) - len(failures)
    assert entry["summary"]["total-failure-session-count"] == len(failures)
    assert sum(d["failed-session-count"] for d in entry["failure-details"]) == len(failures)
    assert {d["result-type"] for d in entry["failure-details"]} == set(failures)


def test_attempt_validation() -> None:
    with pytest.raises(LocalProtocolError):
        AttemptResult(POLICY, False)
    with pytest.raises(LocalProtocolError):
        AttemptResult(POLICY, True, result_type="dane-required")
    with pytest.raises(LocalProtocolError):
        AttemptResult(POLICY, False, result_type="mx-mismatch")  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError):
        AttemptResult(POLICY, False, result_type="dane-required", receiving_ip="a\nb")
    with pytest.raises(LocalProtocolError):
        ReportPolicy("no-policy-found", "example.com", ("x",))
    with pytest.raises(LocalProtocolError):
        ReportPolicy("sts", "Example.com")
    with pytest.raises(LocalProtocolError):
        ReportAggregator().report(
            "x.example", organization_name="o", contact_info="c", report_id="r", start=2, end=1
        )


def test_report_filename_rfc8460_5_3() -> None:
    assert (
        report_filename("mail.sender.example", "Company-Y.example", START, END, unique_id="001")
        == f"mail.sender.example!company-y.example!{START}!{END}!001.json.gz"
    )
    assert (
        report_filename("s.example", "d.example", 0, 1, gzip=False)
        == "s.example!d.example!0!1.json"
    )
    with pytest.raises(LocalProtocolError):
        report_filename("s.example", "d.example", 0, 1, unique_id="a!b")


def test_tlsrpt_record_rfc8460_3() -> None:
    assert parse_record(["v=TLSRPTv1;rua=mailto:reports@example.com"]) == (
        "mailto:reports@example.com",
    )
    assert parse_record(
        ["v=spf1 -all", "v=TLSRPTv1; rua=mailto:a@example.com, https://r.example/tlsrpt; x=1;"]
    ) == ("mailto:a@example.com", "https://r.example/tlsrpt")
    for bad in (
        ["v=TLSRPTv1"],
        ["v=TLSRPTv1; rua=ftp://example.com"],
        ["v=TLSRPTv1; rua=mailto:a@b", "v=TLSRPTv1; rua=mailto:c@d"],
        ["v=TLSRPTv1; rua"],
        [],
    ):
        assert parse_record(bad) is None
