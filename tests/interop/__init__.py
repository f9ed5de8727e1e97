"""Interop tests against real mail and DNS servers started on loopback (docs/testing.md)."""
