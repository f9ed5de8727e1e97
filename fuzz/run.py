"""Run fuzz targets by name: ``python fuzz/run.py --target replies --seconds 60`` (or ``--all``)."""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, where the target modules would
# shadow nothing but could be imported twice under two names; the repository root is what counts.
_ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _ROOT / "fuzz"]
sys.path.insert(0, str(_ROOT))

from fuzz._harness import main  # noqa: E402
from fuzz.targets import TARGETS  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(TARGETS))
