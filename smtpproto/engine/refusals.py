"""Decisions about a message before and while it is sent: typed refusals, not exceptions to parse.

Each helper answers one question the engine asks, from a `MessageInfo` (one `scan` pass) and
what the server advertised, and returns a `Refusal` (a local, permanent-class status the
delivery layer reports as ``bounced``) or None. The one refusal that can only be found while
the content streams (hostile MIME met by the 8bit->7bit conversion, `smtpproto.mime`) is
raised as `MessageRefused`, a `LocalProtocolError` carrying the same `Refusal`; the engine
then drops the connection without sending ``.`` (rule 8.5: no partial message is delivered). ::

    | Helper | Status | Rule |
    |---|---|---|
    | `size_refusal` | 5.3.4 | rule 6.8, RFC 1870 6 |
    | `smtputf8_refusal` | 5.6.7 | rule 3.10, RFC 6531 3.4 |
    | `eightbit_refusal` | 5.6.3 | quirk Q7, RFC 6152 3, RFC 3463 X.6.3 |
    | `MessageRefused` from `smtpproto.mime` | 5.6.0 / 5.6.3 | rule 8.5 |

Deliberate difference from Postfix (rules 8.5 (c)-(e), 8.6, quirk Q7): Postfix sends 8-bit
octets raw to a server without 8BITMIME when conversion is disabled or the content is not
labelled 8bit. This library never sends an 8-bit octet to such a server: `needs_downgrade`
converts all 8-bit content, and where conversion is disabled or impossible (8-bit header
octets, which MIME cannot encode without rewriting the header) `eightbit_refusal` refuses
with ``5.6.3`` (RFC 3463: conversion required but not supported).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from .._errors import Refusal

if TYPE_CHECKING:
    from ..body import MessageInfo

__all__ = [
    "eightbit_refusal",
    "needs_downgrade",
    "size_refusal",
    "smtputf8_refusal",
]


def size_refusal(info: MessageInfo, server_size: int | None, server: str) -> Refusal | None:
    """Rule 6.8: ``5.3.4`` when the server's SIZE limit is above 0 and below the message size.

    `server_size` is `Capabilities.size` (None: no SIZE; 0: SIZE without a limit); `server`
    is the ``host[address]`` label used in the text.
    """
    if server_size is None or server_size <= 0 or server_size >= info.size:
        return None
    return Refusal(
        "5.3.4", f"message size {info.size} exceeds size limit {server_size} of server {server}"
    )


def needs_downgrade(
    info: MessageInfo, server_8bitmime: bool, disable_mime_output_conversion: bool
) -> bool:
    """Rule 8.5: convert to 7bit (`smtpproto.mime.downgrade_8bit`) before sending?

    `server_8bitmime` is true when the server advertised 8BITMIME or SMTPUTF8 (rule 3.10).
    When this is true no ``SIZE=`` goes on MAIL (rule 6.1 (1): conversion changes the size).
    """
    return info.has_8bit and not server_8bitmime and not disable_mime_output_conversion


def eightbit_refusal(
    info: MessageInfo, server_8bitmime: bool, disable_mime_output_conversion: bool
) -> Refusal | None:
    """``5.6.3`` when 8-bit content would reach a server without 8BITMIME (quirk Q7).

    That is: conversion is disabled, or the top-level header has 8-bit octets (MIME has no
    transfer encoding for header fields). Check it before MAIL.
    """
    if not info.has_8bit or server_8bitmime:
        return None
    if disable_mime_output_conversion:
        return Refusal(
            "5.6.3",
            "message has 8-bit content, but the server does not support 8BITMIME and "
            "disable_mime_output_conversion is set",
        )
    if info.header_8bit:
        return Refusal(
            "5.6.3",
            "message header has 8-bit octets, which cannot be converted for a server "
            "without 8BITMIME",
        )
    return None


def smtputf8_refusal(
    addresses: Iterable[str],
    info: MessageInfo,
    *,
    requested: bool,
    server_smtputf8: bool,
    server: str,
) -> Refusal | None:
    """Rule 3.10: ``5.6.7`` when the message needs SMTPUTF8 and the server lacks it.

    A non-ASCII envelope address always needs it (RFC 6531 3.4); 8-bit header octets need it
    when the sender asked for SMTPUTF8 (Postfix: the request plus UTF-8 in a header).
    Postfix treats this as a soft failure until the last MX (SOFT_NON_FINAL).
    """
    if server_smtputf8:
        return None
    utf8_address = not all(address.isascii() for address in addresses)
    if not utf8_address and not (requested and info.header_8bit):
        return None
    return Refusal(
        "5.6.7",
        "message requires SMTPUTF8, but no server was found that supports SMTPUTF8. "
        f"The last attempted server was {server}",
    )
