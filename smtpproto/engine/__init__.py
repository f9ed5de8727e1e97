"""The delivery engine: Postfix smtp(8)/lmtp(8) client policy as generators of I/O requests.

An adapter runs ``deliver`` (or ``open_session``/``transact``/``close_session``) to
completion, performing each :mod:`smtpproto.requests` request and sending back its result.
"""

from __future__ import annotations

from .delivery import close_session, deliver, open_session, transact
from .session import Session

__all__ = ["Session", "close_session", "deliver", "open_session", "transact"]
