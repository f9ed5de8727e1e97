"""The SMTP grammar the wire layer uses, as named compiled regexes (after h11's ``_abnf.py``).

Each rule cites the RFC section it comes from and says where it is deliberately more lenient
or stricter than the RFC. Byte patterns work on wire data, str patterns on caller arguments.
"""

from __future__ import annotations

import re

__all__ = [
    "ADDRESS_LITERAL",
    "BASE64",
    "CONTROL",
    "DOMAIN",
    "DOT_STRING",
    "ENHANCED_STATUS",
    "ESMTP_KEYWORD",
    "ESMTP_VALUE",
    "QUOTED_STRING",
    "REPLY_LINE",
    "SASL_MECHANISM",
    "UTF8_DOMAIN",
    "XTEXT",
]

# RFC 5321 4.2 (Reply-line, Reply-code) with the reply text of RFC 5321 4.2 widened by
# RFC 6531 3.7.4 (UTF-8) and by RP-15 (8-bit text from real servers: any byte >= 0x80).
# Code: %x32-35 %x30-35 %x30-39, explicit byte ranges (RP-08, RP-09: never int() on
# unchecked text). Separator "-" (continuation) or SP (last line), or nothing: "250" alone is
# legal (RP-02). Text: HT, SP and every byte but C0 controls; a CR reaching this pattern is a
# lone CR inside the line (RP-14). Applied to a line with its LF and one preceding CR removed.
REPLY_LINE = re.compile(rb"([2-5][0-5][0-9])(?:([ -])([^\x00-\x08\x0a-\x1f]*))?")


# RFC 3463 2 (enhanced status code, as RFC 2034 4 puts it at the start of the reply text):
# class "." subject "." detail, class 2/4/5, subject and detail 1-3 digits, followed by end of
# text or white space (Postfix dsn_valid(), rule 1.8). Leading spaces are skipped (rule 1.8
# table: "250  2.0.0 x"). Leading zeros are accepted, as Postfix does.
ENHANCED_STATUS = re.compile(r"[ ]*([245])\.([0-9]{1,3})\.([0-9]{1,3})(?=[ \t]|$)")

# C0 controls and DEL: never allowed in a caller's argument (CV-02, CV-03; aiosmtplib
# GHSA-v3q9-hj7j-63hq rejects the same set). TAB is included: no argument needs it.
CONTROL = re.compile(r"[\x00-\x1f\x7f]")

# RFC 5321 4.1.2 Dot-string, with atext widened as Postfix quote_821_local() does (rule 6.5):
# any character that is not a space, a control, or one of the specials <>()[]\,;:@" is
# literal, 8-bit included (RFC 6531 3.3 UTF-8 atext). No empty atom: no leading, trailing or
# doubled dot.
_ATOM = r'[^\x00-\x20\x7f<>()\[\]\\,;:@".]+'
DOT_STRING = re.compile(rf"{_ATOM}(?:\.{_ATOM})*")

# RFC 5321 4.1.2 Quoted-string: qtextSMTP is %d32-33 / %d35-91 / %d93-126 and quoted-pairSMTP
# is "\" %d32-126; RFC 6531 3.3 adds UTF-8 to qtextSMTP.
QUOTED_STRING = re.compile(r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|[^\x00-\x7f]|\\[\x20-\x7e])*"')

# RFC 5321 4.1.2 Domain: sub-domain *("." sub-domain), sub-domain = Let-dig [Ldh-str].
# Lenient like Postfix (which never checks): "_" is accepted anywhere in a label, because real
# host names carry it and it cannot change the syntax of a command line.
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?"
DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")

# RFC 6531 3.3: sub-domain =/ U-label; any non-ASCII character may appear in a label (IDNA
# validity is the name service's business, not the command encoder's).
_UCHAR = r"(?:[A-Za-z0-9_]|[^\x00-\x7f])"
_ULABEL = rf"{_UCHAR}(?:(?:{_UCHAR}|-)*{_UCHAR})?"
UTF8_DOMAIN = re.compile(rf"{_ULABEL}(?:\.{_ULABEL})*")

# RFC 5321 4.1.3 address-literal, in its general form: "[" 1*dcontent "]" with dcontent
# %d33-90 / %d94-126 (covers IPv4 and "IPv6:" literals).
ADDRESS_LITERAL = re.compile(r"\[[\x21-\x5a\x5e-\x7e]+\]")

# RFC 5321 4.1.2 esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-").
ESMTP_KEYWORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")

# RFC 5321 4.1.2 esmtp-value = 1*(%d33-60 / %d62-126): printable ASCII without "=" and SP.
ESMTP_VALUE = re.compile(r"[\x21-\x3c\x3e-\x7e]+")

# RFC 3461 4 xtext = *( xchar / hexchar ); xchar is %d33-42 / %d44-60 / %d62-126 and hexchar
# is "+" followed by two upper-case hex digits.
XTEXT = re.compile(r"(?:[\x21-\x2a\x2c-\x3c\x3e-\x7e]|\+[0-9A-F]{2})*")

# RFC 4422 3.1 sasl-mech = 1*20mech-char; mech-char = UPPER-ALPHA / DIGIT / "-" / "_".
# Matched case-insensitively by the caller: servers and users write "plain" too.
SASL_MECHANISM = re.compile(r"[A-Z0-9_-]{1,20}", re.IGNORECASE)

# RFC 4648 4 base64 with padding, as RFC 4954 4 requires on AUTH lines.
BASE64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")
