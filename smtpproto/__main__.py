"""``python -m smtpproto``: runs the `smtpproto` command.

The command does I/O, so it lives with the adapters (``smtpproto.adapters.cli``); this entry
point is only executed by ``-m``, never imported by ``import smtpproto``.
"""

import importlib
import sys

sys.exit(importlib.import_module("smtpproto.adapters.cli").main())
