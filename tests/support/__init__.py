"""The simulated servers every test, fuzz target and benchmark of smtpproto shares.

- `support.model`: a reactive SMTP/LMTP server, sans I/O (`ServerModel`), what it says at
  each point (`Behaviour`: `Canonical`, `Scripted`, `Dialogue`, or hostile ones) and
  transport `Faults`.
- `support.world`: the engine's generators run in memory against DNS tables and scripted
  (`Session`) or reactive (`ServerModel`) connections; `Record` of every request; `go`.
- `support.sockets`: the same model on real loopback sockets, with TLS (`LoopbackServer`).
- `support.connection`: the server side of `ClientConnection` tests (`feed`, `converse`).
- `support.invariants`: DESIGN.md's invariants on one reactive run (`check_outcome`).
- `support.mailers`: many sends through one adapter's Mailer (`send_all`), and a static DNS
  zone for its next hops (`zone`).

Importable as ``support`` with ``tests/`` on ``sys.path``: pytest's ``pythonpath`` setting
does it for the tests, ``fuzz/__init__.py`` and the benchmarks that need it for themselves.
"""
