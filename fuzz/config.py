"""Fuzz target ``config``: Postfix destination syntax and ``postconf`` parameter values.

`parse_destinations` gets grammar-aware text (brackets, ports, ``inet:``/``unix:``, IPv6
literals, lists, controls, IDNA, huge numbers) for SMTP and LMTP; `ClientConfig.from_postconf`
gets random known (and unknown) parameter names with random values in postconf syntax (time
units, booleans, lists, ``$name`` expansion, numbers out of range, non-strings). Checked:
only `LocalProtocolError` escapes; parsed destinations are valid (`Destination` checks itself
on construction: known kind, host, port 1..65535 or none for unix sockets); a configuration
that was accepted also parses destinations the same way twice (no hidden state).
"""

from __future__ import annotations

import sys
from typing import Any

from hypothesis import strategies as st

from smtpproto import LocalProtocolError
from smtpproto.config import ClientConfig, declarations
from smtpproto.destinations import Destination, parse_destinations

from ._harness import Target, main

_NAMES = sorted({name for d in declarations() for name in d.names()})
_NAME = st.one_of(
    st.sampled_from(_NAMES),
    st.sampled_from(_NAMES).map(lambda n: "lmtp_" + n[5:] if n.startswith("smtp_") else n),
    st.sampled_from(["myhostname", "smtp_nonexistent", "", "SMTP_HELO_NAME", "lmtp_tcp_port"]),
)
_VALUE_WORD = st.sampled_from(
    ["300s", "5m", "1h", "2d", "1w", "0", "0s", "-1", "-5s", "10", "yes", "no", "true", "maybe",
     "$myhostname", "${myhostname}", "$smtp_helo_name", "$undefined", "$", "a, b", "a b,c",
     "may", "encrypt", "none", "secure", "verify", "dane", "ipv4", "ipv6", "all", "dns", "native",
     "noplaintext", "noanonymous", "[127.0.0.1]:25", "example.com", "9" * 30, "1e3", "0x10",
     "", " ", "\t", "\x00", "\u00e9", "=", "{", "}", "/etc/postfix/x", "hash:/etc/x"]
)  # fmt: skip
_VALUE: st.SearchStrategy[Any] = st.one_of(
    st.lists(_VALUE_WORD, max_size=4).map(" ".join),
    st.lists(_VALUE_WORD, max_size=3).map(", ".join),
    st.text(max_size=12),
    st.integers(-(2**70), 2**70),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=True),
    st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
    st.lists(st.text(max_size=4), max_size=3).map(tuple),
)
_DEST_PIECE = st.sampled_from(
    ["[", "]", ":", "inet:", "unix:", "ipv6:", "IPv6:", "192.0.2.1", "::1", "2001:db8::1",
     "example.com", "xn--bcher-kva.example", "b\u00fccher.example", "mx", ".", "..", "25", "0",
     "65535", "65536", "99999999999999999999", "smtp", "lmtp", "nosuchservice", ",", " ", "\t",
     "/var/run/lmtp", "-", "_", "\x00", "\x7f", "a" * 70, "*"]
)  # fmt: skip
_DEST = st.one_of(st.lists(_DEST_PIECE, max_size=8).map("".join), st.text(max_size=20))


def _destinations(
    text: str, lmtp: bool, config: ClientConfig | None
) -> tuple[Destination, ...] | None:
    try:
        found = parse_destinations(text, lmtp=lmtp, config=config)
    except LocalProtocolError:
        return None
    assert isinstance(found, tuple) and found
    for dest in found:
        assert isinstance(dest, Destination)
        assert dest.kind in ("mx", "address", "host", "unix"), dest
        assert (dest.port is None) == (dest.kind == "unix"), dest
        assert dest.port is None or 1 <= dest.port <= 65535, dest
        assert dest.kind == "unix" or dest.host.isascii(), dest  # A-labels for DNS
    return found


def check(case: tuple[str, bool, list[tuple[str, Any]]]) -> None:
    """The properties in the module docstring, for one destination and parameter set."""
    text, lmtp, parameters = case
    config: ClientConfig | None = None
    try:
        config = ClientConfig.from_postconf(dict(parameters), lmtp=lmtp)
    except LocalProtocolError:
        config = None
    else:
        assert isinstance(config, ClientConfig) and config.lmtp == lmtp
    first = _destinations(text, lmtp, config)
    assert _destinations(text, lmtp, config) == first


TARGET = Target(
    "config",
    "parse_destinations and ClientConfig.from_postconf on hostile text",
    strategy=st.tuples(_DEST, st.booleans(), st.lists(st.tuples(_NAME, _VALUE), max_size=4)),
    check=check,
)

if __name__ == "__main__":
    sys.exit(main({TARGET.name: TARGET}, only=TARGET.name))
