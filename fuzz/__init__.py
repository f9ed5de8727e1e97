"""Long-running property-based fuzz targets for smtpproto (hypothesis), runnable on their own.

Each module is one target: ``python -m fuzz.<target> --seconds N`` or
``python fuzz/run.py --target <target> --seconds N``. ``fuzz/README.md`` lists the targets,
what each one checks, and the figures measured.
"""

import sys
from pathlib import Path

# The simulated servers live in tests/support, shared with the tests and the benchmarks.
_TESTS = str(Path(__file__).resolve().parent.parent / "tests")
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)
