"""The fuzz runner: runs a target for a bounded time and count, and reports the figures.

A target is either a hypothesis property (a strategy and a check of one drawn value) run in
batches until the time or the example budget is spent, or an enumeration of cases (the fault
injector) run in order. Failures come back with hypothesis's minimal falsifying example and a
``@reproduce_failure`` blob, or with the enumerated case's description.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase, ExampleDatabase

DATABASE_DIR = Path(__file__).resolve().parent / ".hypothesis"
"""Where long runs keep the examples hypothesis found interesting (ignored by git)."""

# Batches aim at this many seconds each, so the time budget is kept within a few seconds
# while hypothesis's per-run setup stays a small share of the run.
_BATCH_SECONDS = 4.0


@dataclass(frozen=True)
class Case:
    """One enumerated input of a target: a description for the report and the check to run."""

    description: str
    run: Callable[[], None]


@dataclass(frozen=True)
class Target:
    """A fuzz target: either `strategy` + `check`, or `cases` (an enumeration)."""

    name: str
    description: str
    strategy: st.SearchStrategy[Any] | None = None
    check: Callable[[Any], None] | None = None
    cases: Callable[[], Iterator[Case]] | None = None


@dataclass
class Stats:
    """What one run did."""

    target: str
    executions: int = 0
    seconds: float = 0.0
    failure: str | None = None

    @property
    def rate(self) -> float:
        """Executions per second."""
        return self.executions / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        """One summary line for the terminal and the README."""
        verdict = "FAILED" if self.failure else "ok"
        return (
            f"{self.target:<13} {self.executions:>9} executions in {self.seconds:7.1f} s"
            f" = {self.rate:8.1f}/s  {verdict}"
        )


def run(
    target: Target,
    *,
    seconds: float,
    max_examples: int,
    seed_value: int | None = None,
    derandomize: bool = False,
    database: bool = True,
    verbose: bool = False,
) -> Stats:
    """Run `target` until `seconds` pass or `max_examples` inputs were tried, or it fails."""
    if target.cases is not None:
        return _run_cases(target, seconds=seconds, max_examples=max_examples, verbose=verbose)
    return _run_property(
        target,
        seconds=seconds,
        max_examples=max_examples,
        seed_value=seed_value,
        derandomize=derandomize,
        database=database,
    )


def _run_property(
    target: Target,
    *,
    seconds: float,
    max_examples: int,
    seed_value: int | None,
    derandomize: bool,
    database: bool,
) -> Stats:
    assert target.strategy is not None and target.check is not None
    check = target.check
    stats = Stats(target.name)
    counter = [0]

    def prop(value: Any) -> None:
        counter[0] += 1
        check(value)

    db: ExampleDatabase | None = None
    if database:
        db = DirectoryBasedExampleDatabase(str(DATABASE_DIR / target.name))
    start = time.monotonic()
    deadline = start + seconds
    # A derandomized run is one batch: the same seed would only replay the same examples.
    batch = max_examples if derandomize else 50
    tried = 0
    rounds = 0
    while tried < max_examples and time.monotonic() < deadline:
        size = min(batch, max_examples - tried)
        configured = settings(
            max_examples=size,
            deadline=None,
            database=db,
            derandomize=derandomize,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
            print_blob=True,
        )(given(target.strategy)(prop))
        if seed_value is not None and not derandomize:
            configured = seed(seed_value + rounds)(configured)
        rounds += 1
        before, began = counter[0], time.monotonic()
        try:
            configured()
        except Exception:  # the property failed: hypothesis has shrunk it and printed it
            stats.failure = traceback.format_exc()
            break
        tried += size
        spent = time.monotonic() - began
        done = max(1, counter[0] - before)
        left = deadline - time.monotonic()
        batch = max(10, int(done / max(spent, 1e-3) * min(_BATCH_SECONDS, max(left, 0.0))))
        if derandomize:
            break
    stats.executions = counter[0]
    stats.seconds = time.monotonic() - start
    return stats


def _run_cases(target: Target, *, seconds: float, max_examples: int, verbose: bool) -> Stats:
    assert target.cases is not None
    stats = Stats(target.name)
    start = time.monotonic()
    deadline = start + seconds
    for case in target.cases():
        if stats.executions >= max_examples or time.monotonic() >= deadline:
            break
        stats.executions += 1
        if verbose:
            print(case.description, flush=True)
        try:
            case.run()
        except Exception:
            stats.failure = f"case: {case.description}\n{traceback.format_exc()}"
            break
    stats.seconds = time.monotonic() - start
    return stats


def main(
    targets: dict[str, Target], argv: list[str] | None = None, *, only: str | None = None
) -> int:
    """The command line shared by ``fuzz/run.py`` and ``python -m fuzz.<target>``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    if only is None:
        parser.add_argument("positional", nargs="?", metavar="TARGET", help="target to run")
        parser.add_argument("--target", action="append", choices=sorted(targets), default=[])
        parser.add_argument("--all", action="store_true", help="run every target in turn")
    parser.add_argument("--seconds", type=float, default=None, help="time budget per target")
    parser.add_argument("--minutes", type=float, default=None, help="time budget per target")
    parser.add_argument("--max-examples", type=int, default=10**9, help="input budget per target")
    parser.add_argument("--seed", type=int, default=None, help="reproducible random run")
    parser.add_argument("--no-database", action="store_true", help="do not use fuzz/.hypothesis")
    parser.add_argument("--verbose", action="store_true", help="print each enumerated case")
    args = parser.parse_args(argv)
    if only is not None:
        names = [only]
    else:
        names = list(args.target) + ([args.positional] if args.positional else [])
        if args.all:
            names = sorted(targets)
        unknown = [n for n in names if n not in targets]
        if unknown or not names:
            parser.error(f"choose targets among: {', '.join(sorted(targets))}")
    seconds = 60.0
    if args.seconds is not None:
        seconds = args.seconds
    elif args.minutes is not None:
        seconds = args.minutes * 60
    failed = False
    for name in names:
        target = targets[name]
        print(f"== {name}: {target.description} ({seconds:g} s)", flush=True)
        stats = run(
            target,
            seconds=seconds,
            max_examples=args.max_examples,
            seed_value=args.seed,
            database=not args.no_database,
            verbose=args.verbose,
        )
        if stats.failure:
            failed = True
            print(stats.failure, file=sys.stderr, flush=True)
        print(stats.line(), flush=True)
    return 1 if failed else 0
