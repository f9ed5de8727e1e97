"""smtpproto: a sans-I/O SMTP and LMTP client core modelled on Postfix smtp(8).

The names below are the stable public surface, with four public submodules:
:mod:`smtpproto.engine` (the delivery generators an embedder drives), :mod:`smtpproto.requests`
(their I/O contract), :mod:`smtpproto.config` and :mod:`smtpproto.report`. Every other module
is internal. Adapters that supply sockets, TLS and DNS live in :mod:`smtpproto.adapters`, which
this package never imports.
"""

from smtpproto._errors import (
    LocalProtocolError,
    MessageRefused,
    ProtocolError,
    Refusal,
    RemoteProtocolError,
)
from smtpproto._failures import (
    AuthenticationFailed,
    ConnectionFailed,
    SessionFailed,
    TLSPolicyFailed,
)
from smtpproto.body import BodyEncoder, MessageInfo, MessageSource, scan
from smtpproto.capabilities import Capabilities
from smtpproto.commands import (
    Auth,
    AuthResponse,
    Bdat,
    Command,
    Data,
    Ehlo,
    EndOfData,
    Helo,
    Lhlo,
    Mail,
    MessageData,
    Noop,
    Quit,
    Rcpt,
    Rset,
    StartTLS,
    Xforward,
)
from smtpproto.config import ClientConfig
from smtpproto.connection import NEED_DATA, ClientConnection, State
from smtpproto.destinations import Destination, parse_destinations
from smtpproto.envelope import Envelope, Recipient
from smtpproto.events import (
    CommandReply,
    ConnectionClosed,
    Event,
    Greeting,
    RecipientReply,
    ServerClosing,
)
from smtpproto.replies import EnhancedStatus, Reply, ReplyLimits, ReplyParser
from smtpproto.report import DeliveryReport, RecipientResult

__all__ = [
    "NEED_DATA",
    "Auth",
    "AuthResponse",
    "AuthenticationFailed",
    "Bdat",
    "BodyEncoder",
    "Capabilities",
    "ClientConfig",
    "ClientConnection",
    "Command",
    "CommandReply",
    "ConnectionClosed",
    "ConnectionFailed",
    "Data",
    "DeliveryReport",
    "Destination",
    "Ehlo",
    "EndOfData",
    "EnhancedStatus",
    "Envelope",
    "Event",
    "Greeting",
    "Helo",
    "Lhlo",
    "LocalProtocolError",
    "Mail",
    "MessageData",
    "MessageInfo",
    "MessageRefused",
    "MessageSource",
    "Noop",
    "ProtocolError",
    "Quit",
    "Rcpt",
    "Recipient",
    "RecipientReply",
    "RecipientResult",
    "Refusal",
    "RemoteProtocolError",
    "Reply",
    "ReplyLimits",
    "ReplyParser",
    "Rset",
    "ServerClosing",
    "SessionFailed",
    "StartTLS",
    "State",
    "TLSPolicyFailed",
    "Xforward",
    "parse_destinations",
    "scan",
]
