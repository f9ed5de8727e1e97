"""Every fuzz target by name."""

from __future__ import annotations

from . import body, capabilities, config, connection, faults, hostile, replies, session
from ._harness import Target

TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        replies.TARGET,
        connection.TARGET,
        body.TARGET,
        capabilities.TARGET,
        config.TARGET,
        session.TARGET,
        faults.TARGET,
        hostile.TARGET,
    )
}
"""name -> target, for ``fuzz/run.py`` and the smoke test."""
