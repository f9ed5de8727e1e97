"""``python -m smtpproto.adapters``: the `smtpproto` command without the console script."""

import sys

from .cli import main

sys.exit(main())
