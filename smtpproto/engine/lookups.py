"""What the engine makes of a DNS answer: host lookup sources, the reply filter, CNAMEs.

Postfix smtp_addr.c and dns/dns_rr_filter.c (rules 14.2, 14.3):

- ``smtp_host_lookup``: addresses come from the DNS, from the system's name service
  (``native``: /etc/hosts, nsswitch.conf), or from the DNS and then natively for a host the
  DNS does not know (not found, or no resolver installed); with
  ``smtp_dns_support_level = disabled`` natively only. MX lookups are DNS lookups.
- ``smtp_dns_reply_filter``: each record of a DNS answer is looked up as Postfix prints it,
  ``name. ttl IN TYPE value`` (``example.com. 300 IN MX 10 mx.example.com.``, ``mx.example.com.
  300 IN A 192.0.2.1``; the TTL is 0 when the resolver does not report one). ``IGNORE`` drops
  the record; an answer whose every record is dropped is ``4.7.0 ... DNS reply filter drops
  all results``. Native answers are not filtered (they are not DNS).
- ``smtp_cname_overrides_servername``: the server name becomes the owner name the CNAMEs led
  to, for logging, SASL password lookup, TLS policy and certificate names (Postfix's
  ``SMTP_HNAME()``); off, the name looked up stays the server name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ..config import ClientConfig
from ..requests import DNSAnswer, MXRecord
from ..tables import KeyLookup
from .authtls import records_of

__all__ = ["Answer", "LookupSource", "filter_records", "host_lookup_sources", "read_answer"]

LookupSource = Literal["dns", "native"]


def host_lookup_sources(config: ClientConfig) -> tuple[LookupSource, ...]:
    """Where host addresses come from, in order: ``smtp_host_lookup`` (DNS before native,
    whatever the order written), natively only when DNS lookups are disabled."""
    if config.dns_support_level == "disabled":
        return ("native",)
    return tuple(source for source in ("dns", "native") if source in config.host_lookup)


@dataclass(frozen=True)
class Answer:
    """A `Resolve` result taken apart: the records, whether a validating resolver vouched for
    them (DNSSEC), the name a CNAME led to, the TTL."""

    records: tuple[Any, ...]
    authenticated: bool = False
    canonical: str | None = None
    ttl: int = 0


def read_answer(result: object, name: str) -> Answer:
    """The parts of a `Resolve` result, a tuple or a `DNSAnswer` (`records_of`'s reading:
    an adapter that knows nothing of DNSSEC validated nothing); `canonical` only when it
    names another host than `name`."""
    records, authenticated, canonical = records_of(result)
    if canonical is not None:
        canonical = canonical.lower().rstrip(".")
        if not canonical or canonical == name.lower().rstrip("."):
            canonical = None
    ttl = result.ttl if isinstance(result, DNSAnswer) else None
    return Answer(records, authenticated, canonical, ttl or 0)


def _record_text(owner: str, rrtype: str, ttl: int, record: object) -> str:
    # Postfix dns_strrecord(): "name. ttl IN TYPE value", names with their final dot.
    if isinstance(record, MXRecord):
        value = f"{record.preference} {record.exchange.rstrip('.')}."
    else:
        value = str(record)
    return f"{owner.rstrip('.')}. {ttl} IN {rrtype} {value}"


def filter_records(
    table: KeyLookup[str], answer: Answer, name: str, rrtype: str
) -> tuple[tuple[Any, ...], list[str]]:
    """The records of `answer` that ``smtp_dns_reply_filter`` keeps, and a transcript line for
    each one it drops (Postfix logs ``ignoring DNS RR: ...``).

    A result that is not an action (a ``$n`` result, a callable's) is a `LocalProtocolError`:
    Postfix fails the lookup then ("Invalid DNS reply filter syntax").
    """
    if not table or not answer.records:
        return answer.records, []
    owner = answer.canonical or name
    kept: list[Any] = []
    notes: list[str] = []
    for record in answer.records:
        text = _record_text(owner, rrtype, answer.ttl, record)
        if table.get(text) is not None:
            notes.append(f"ignoring DNS RR: {text}")
        else:
            kept.append(record)
    return tuple(kept), notes
