"""The benchmark harness runs end to end: structure and counts, never speed.

``bench/run.py --quick`` runs every section with tiny sizes against Postfix smtp-sink. Timings
from it are noise and nothing here looks at them; what is checked is that every cell produced
figures and that the counted round trips obey the protocol (smtplib's lock-step 3 + one per
recipient; smtpproto's two flights with PIPELINING, and one with CHUNKING as well).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "bench" / "run.py"
SBIN = os.pathsep.join(("/usr/sbin", "/sbin", "/usr/bin", "/usr/lib/postfix/sbin"))
QUICK_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
OURS = ("smtpproto-blocking", "smtpproto-asyncio", "smtpproto-trio")
PEERS = ("smtplib", "aiosmtplib", "smtp-source")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    missing = [t for t in ("smtp-sink", "smtp-source") if shutil.which(t, path=SBIN) is None]
    if missing:
        reason = f"{', '.join(missing)} not found: apt-get install postfix"
        if os.environ.get("CI"):
            pytest.fail(reason, pytrace=False)
        print(reason)
        pytest.skip(reason)
    out = tmp_path_factory.mktemp("bench") / "quick.json"
    process = subprocess.Popen(
        [sys.executable, str(RUN), "--quick", "--json", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        stdout, stderr = process.communicate(timeout=QUICK_TIMEOUT)
    except subprocess.TimeoutExpired:
        # SIGINT first: run.py's context managers then stop the servers it started.
        process.send_signal(signal.SIGINT)
        try:
            process.communicate(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
        pytest.fail(f"bench/run.py --quick took more than {QUICK_TIMEOUT:.0f} s")
    assert process.returncode == 0, stderr
    assert "\nTargets:\n" in stdout
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def test_every_section_has_every_client(quick_run: dict[str, Any]) -> None:
    seen: dict[str, set[str]] = {}
    for row in quick_run["rows"]:
        seen.setdefault(row["section"], set()).add(row["client"])
    # The floor clients (bench/floor.py, bench/adapter_floor.py) are yardsticks in the 1 KiB
    # 1-recipient cells only.
    floors = {"floor-asyncio", "floor-smtpproto-asyncio", "floor-smtpproto-trio"}
    assert seen["loopback"] == {*OURS, *PEERS, *floors}
    assert seen["rtt20"] == {*OURS, *PEERS}
    concurrent = {"smtpproto-asyncio", "smtpproto-trio", *floors, *PEERS} - {"smtplib"}
    assert seen["concurrent"] == concurrent
    floor_scenarios = {r["scenario"] for r in quick_run["rows"] if r["client"] in floors}
    assert all("1 KiB 1 rcpt" in scenario for scenario in floor_scenarios)
    assert seen["lmtp"] == {*OURS, "smtplib", "smtp-source"}


def test_every_cell_delivered(quick_run: dict[str, Any]) -> None:
    for row in quick_run["rows"]:
        if row["section"] == "lmtp" and row["client"] == "smtplib" and row["rcpts"] > 1:
            # DESIGN.md: smtplib.LMTP reads one reply after DATA and falls out of step.
            assert row["error"] and "out of step" in row["error"]
            continue
        assert row["error"] is None, row
        assert row["messages"] > 0 and row["wall"] > 0 and row["cpu"] >= 0, row


def test_ratios_are_against_peers_in_the_same_scenario(quick_run: dict[str, Any]) -> None:
    for row in quick_run["rows"]:
        if row["client"] == "aiosmtplib":
            assert row["ratios"]["x aiosmtplib"] == pytest.approx(1.0)
            assert row["ratios"]["cpu/aio"] == pytest.approx(1.0)
        if row["section"] == "loopback" and row["client"] in OURS:
            assert set(row["ratios"]) == {"x smtplib", "x aiosmtplib", "x smtp-source", "cpu/aio"}


def test_counted_round_trips(quick_run: dict[str, Any]) -> None:
    flights = {(f["client"], f["extensions"], f["rcpts"]): f for f in quick_run["flights"]}
    assert not [f for f in flights.values() if "error" in f]
    for extensions in ("PIPELINING", "none", "PIPE+CHUNK"):
        for rcpts in (1, 10):
            # RFC 5321 lock-step: MAIL, each RCPT, DATA, then the message with its dot.
            assert flights["smtplib", extensions, rcpts]["per_transaction"] == 3 + rcpts
    for rcpts in (1, 10):
        # Without PIPELINING smtpproto is in lock-step too, and QUIT waits for the end's reply.
        none = flights["smtpproto-blocking", "none", rcpts]
        assert (none["per_transaction"], none["per_fresh_delivery"]) == (3 + rcpts, 5 + rcpts)
        for client in OURS:
            # RFC 2920, rule 7.3: MAIL, the RCPTs and DATA in one flight, the content, "." and
            # QUIT in the next; a fresh delivery adds EHLO.
            piped = flights[client, "PIPELINING", rcpts]
            assert (piped["per_transaction"], piped["per_fresh_delivery"]) == (2, 3)
            # RFC 3030 4.2: a small message goes as BDAT n LAST in the envelope's flight
            # (chunking_one_flight_limit): one flight per message.
            chunked = flights[client, "PIPE+CHUNK", rcpts]
            assert (chunked["per_transaction"], chunked["per_fresh_delivery"]) == (1, 2)


def test_memory_figures_present(quick_run: dict[str, Any]) -> None:
    memory = quick_run["memory"]
    assert set(memory["rss_growth"]) == {"smtpproto-blocking", "smtplib", "aiosmtplib"}
    assert all(isinstance(v, int) for v in memory["rss_growth"].values()), memory
    per_object = memory["idle"]["bytes_per_object"]
    assert per_object["ClientConnection after EHLO"] > 0


MAILER = ROOT / "bench" / "bench_mailer.py"


def test_the_mailer_benchmark_runs_every_cell_within_the_limits(tmp_path: Path) -> None:
    # bench/bench_mailer.py --quick: 20 messages over 2 destinations through the delay relay.
    if shutil.which("smtp-sink", path=SBIN) is None:
        reason = "smtp-sink not found: apt-get install postfix"
        if os.environ.get("CI"):
            pytest.fail(reason, pytrace=False)
        print(reason)
        pytest.skip(reason)
    out = tmp_path / "mailer.json"
    done = subprocess.run(
        [sys.executable, str(MAILER), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=QUICK_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    cells = json.loads(out.read_text())
    assert set(cells) == {
        "mailer-blocking",
        "mailer-asyncio",
        "mailer-trio",
        "deliver-sequential",
        "aiosmtplib-per-message",
    }
    for name, cell in cells.items():
        assert cell["messages"] > 0 and cell["wall"] > 0, name
        hosts = cell["relay"]["by_host"]
        assert set(hosts) == {"127.0.0.1", "127.0.0.2"}, name
        # Postfix's default destination concurrency limit, as the relay counted it.
        assert all(h["most_active"] <= 20 for h in hosts.values()), (name, hosts)
    # One connection per message without a Mailer.
    assert (
        cells["deliver-sequential"]["relay"]["connections"]
        == cells["deliver-sequential"]["messages"]
    )
    assert cells["aiosmtplib-per-message"]["relay"]["connections"] == 20
