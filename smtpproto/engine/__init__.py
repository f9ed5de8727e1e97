"""The delivery engine: Postfix smtp(8)/lmtp(8) client policy as generators of I/O requests.

An adapter runs ``deliver`` (or ``open_session``/``transact``/``close_session``) to
completion, performing each :mod:`smtpproto.requests` request and sending back its result.
A Mailer shares one `ConnectionCache` between its deliveries (:mod:`.mailer` plans them)
and runs ``tend_cache`` beside them and ``close_cache`` at the end.
"""

from __future__ import annotations

from .cache import ConnectionCache
from .delivery import (
    abandon_delivery,
    close_cache,
    close_session,
    deliver,
    open_session,
    tend_cache,
    transact,
)
from .session import Session

__all__ = [
    "ConnectionCache",
    "Session",
    "abandon_delivery",
    "close_cache",
    "close_session",
    "deliver",
    "open_session",
    "tend_cache",
    "transact",
]
