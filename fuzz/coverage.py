"""Coverage-guided fuzzing of the same hypothesis properties, with the figures to compare.

``python fuzz/coverage.py --target replies --seconds 60`` runs one target in a child process
under coverage.py (branch coverage of the core, ``smtpproto/``) with one of two engines:

- ``atheris`` (the default): libFuzzer's coverage-guided mutation through atheris, driving
  hypothesis's ``fuzz_one_input`` of the target's ``@given`` property, so hypothesis still
  turns each byte string into a well-formed input and shrinks nothing (atheris keeps the
  crashing input instead). The core is instrumented for atheris at import.
- ``hypothesis``: the hand-written runner (``fuzz/_harness.py``), for comparison.

Each run prints one line: executions, the core's branch coverage reached (covered
branches and lines as coverage.py counts them, and the percentage), and the time at which
the last new branch appeared. ``--all`` runs every target, ``--engine both`` each engine in
turn. A failure prints the target's traceback and makes the exit status 1.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "smtpproto"
_SAMPLE_SECONDS = 1.0


def _targets() -> dict[str, Any]:
    from fuzz.targets import TARGETS

    return dict(TARGETS)


class _Meter:
    """Counts executions and, about once a second, the branches covered so far."""

    def __init__(self, cov: Any) -> None:
        self.cov = cov
        self.start = time.monotonic()
        self.executions = 0
        self.arcs = 0
        self.reached = 0.0
        self._next = self.start + _SAMPLE_SECONDS

    def tick(self) -> None:
        self.executions += 1
        now = time.monotonic()
        if now >= self._next:
            self._next = now + _SAMPLE_SECONDS
            self.sample(now)

    def sample(self, now: float) -> None:
        data = self.cov.get_data()
        arcs = sum(len(data.arcs(f) or ()) for f in data.measured_files())
        if arcs > self.arcs:
            self.arcs = arcs
            self.reached = now - self.start


def _child(name: str, engine: str, seconds: float, out: str) -> int:
    import coverage

    cov = coverage.Coverage(branch=True, source=[str(CORE)], data_file=None)
    cov.start()
    if engine == "atheris":
        import atheris

        with atheris.instrument_imports(include=["smtpproto"]):
            targets = _targets()
    else:
        targets = _targets()
    target = targets[name]
    meter = _Meter(cov)
    failure: str | None = None
    deadline = meter.start + seconds

    def finish() -> None:
        meter.sample(time.monotonic())
        cov.stop()
        total = cov.report(file=open(os.devnull, "w"), show_missing=False)  # noqa: SIM115
        analysis = [cov._analyze(f) for f in cov.get_data().measured_files()]
        branches = sum(a.numbers.n_branches for a in analysis)
        partial = sum(a.numbers.n_missing_branches for a in analysis)
        statements = sum(a.numbers.n_statements for a in analysis)
        missing = sum(a.numbers.n_missing for a in analysis)
        Path(out).write_text(
            json.dumps(
                {
                    "target": name,
                    "engine": engine,
                    "executions": meter.executions,
                    "seconds": round(time.monotonic() - meter.start, 1),
                    "branches_covered": branches - partial,
                    "branches_measured": branches,
                    "lines_covered": statements - missing,
                    "percent": round(total, 1),
                    "last_new_branch_at": round(meter.reached, 1),
                    "failure": failure,
                }
            )
        )

    if target.cases is not None:
        # An enumeration (faults): no input to guide; run the cases in order, measured.
        for case in target.cases():
            if time.monotonic() >= deadline:
                break
            meter.tick()
            try:
                case.run()
            except Exception:
                failure = f"{case.description}\n{traceback.format_exc()}"
                break
        finish()
        return 0 if failure is None else 1

    from hypothesis import HealthCheck, Phase, given, settings

    check = target.check

    def prop(value: Any) -> None:
        meter.tick()
        check(value)

    if engine == "hypothesis":
        from fuzz import _harness

        def counted(value: Any) -> None:
            meter.tick()
            check(value)

        stats = _harness.run(
            _harness.Target(target.name, target.description, target.strategy, counted),
            seconds=seconds,
            max_examples=10**9,
            database=False,
        )
        failure = stats.failure
        finish()
        return 0 if failure is None else 1

    import atheris

    test = settings(
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.generate],
    )(given(target.strategy)(prop))
    fuzz_one_input = test.hypothesis.fuzz_one_input  # type: ignore[attr-defined]

    def one_input(data: bytes) -> None:
        nonlocal failure
        if time.monotonic() >= deadline:
            finish()
            os._exit(0)
        try:
            fuzz_one_input(data)
        except Exception:
            failure = traceback.format_exc()
            finish()
            os._exit(1)

    # libFuzzer ends the process itself; the deadline above ends it first, with the figures.
    options = [f"-max_total_time={int(seconds) + 60}", "-rss_limit_mb=4096", "-len_control=0"]
    atheris.Setup([sys.argv[0], *options], one_input)
    atheris.Fuzz()
    return 0


def _run(name: str, engine: str, seconds: float) -> dict[str, Any]:
    out = ROOT / "fuzz" / f".coverage-{name}-{engine}.json"
    command = [sys.executable, __file__, "--child", name, "--engine", engine]
    command += ["--seconds", str(seconds), "--out", str(out)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=seconds + 600)
    if not out.exists():
        return {"target": name, "engine": engine, "failure": done.stderr[-4000:] or "no result"}
    result: dict[str, Any] = json.loads(out.read_text())
    out.unlink()
    return result


def _line(r: dict[str, Any]) -> str:
    if "executions" not in r:
        return f"{r['target']:<13} {r['engine']:<10} FAILED to run"
    verdict = "FAILED" if r["failure"] else "ok"
    return (
        f"{r['target']:<13} {r['engine']:<10} {r['executions']:>8} executions in "
        f"{r['seconds']:6.1f} s; core branches {r['branches_covered']:>4}/"
        f"{r['branches_measured']:<4} ({r['percent']:5.1f} % of measured files), "
        f"last new branch at {r['last_new_branch_at']:6.1f} s  {verdict}"
    )


def main(argv: list[str] | None = None) -> int:
    """The command line (module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--target", action="append", default=[])
    parser.add_argument("--all", action="store_true")
    parser.add_argument("--engine", choices=("atheris", "hypothesis", "both"), default="atheris")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(args.child, args.engine, args.seconds, args.out)
    names = sorted(_targets()) if args.all else args.target
    if not names or any(n not in _targets() for n in names):
        parser.error(f"choose targets among: {', '.join(sorted(_targets()))}")
    engines = ("atheris", "hypothesis") if args.engine == "both" else (args.engine,)
    failed = False
    for name in names:
        for engine in engines:
            result = _run(name, engine, args.seconds)
            print(_line(result), flush=True)
            if result.get("failure"):
                failed = True
                print(result["failure"], file=sys.stderr, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "fuzz"]
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
