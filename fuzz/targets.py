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
    )
}
"""name -> target, for ``fuzz/run.py`` and the smoke test."""

PENDING: dict[str, Target] = {hostile.TARGET.name: hostile.TARGET}
"""Targets that fail today on a known engine bug, kept out of ``--all`` (and so out of CI's
bounded run) until it is fixed: ``hostile`` finds a recipient reported ``sent`` that the
server never accepted (tests/test_fuzz_smoke.py keeps the minimal input, a strict xfail).
Run them by name with ``python -m fuzz.hostile`` or ``fuzz/coverage.py --target hostile``."""
