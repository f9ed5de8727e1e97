"""I/O adapters that run the sans-I/O engine: `blocking`, `asyncio` and `trio`.

Each module has the same public API, `deliver(...)` and `connect(...)`; import the one that
matches your program (``from smtpproto.adapters import blocking``). Importing this package
imports no backend.
"""
