"""smtpproto: a sans-I/O SMTP and LMTP client core modelled on Postfix smtp(8)."""

from smtpproto._errors import LocalProtocolError, ProtocolError, RemoteProtocolError

__all__ = ["LocalProtocolError", "ProtocolError", "RemoteProtocolError"]
