"""Interop tests against real mail and DNS servers started on loopback (issue 7)."""
