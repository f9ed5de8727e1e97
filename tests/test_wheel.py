"""The wheel as a user gets it: built from a clean checkout, installed into a fresh venv.

An editable install hides packaging mistakes (the wheel once lacked ``smtpproto.engine`` while
every other test passed), so this test copies only the files git tracks, builds the sdist and
the wheel from it with ``python -m build``, installs the wheel with its extras into a new venv,
and from a directory outside the source tree runs ``smtpproto demo``, ``smtpproto deliver
--help`` and ``mypy --strict`` on a small user script.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

USER_SCRIPT = '''\
"""What a user writes first: the README's example, typed."""

import smtpproto
from smtpproto.adapters import asyncio as aio
from smtpproto.adapters import blocking


def send(destination: str) -> list[str]:
    cfg = smtpproto.ClientConfig(tls_security_level="may")
    report = blocking.deliver(
        destination,
        sender="a@x.example",
        recipients=["b@example.com"],
        message=b"Subject: hi\\r\\n\\r\\nhello\\r\\n",
        config=cfg,
    )
    return [r.status for r in report.recipients]


async def hold(destination: str) -> str | None:
    try:
        async with aio.connect(destination) as session:
            report = await session.send(sender="", recipients=["b@example.com"], message=b"x")
            return report.recipients[0].dsn
    except smtpproto.SessionFailed as failure:
        return failure.dsn
'''


def run(argv: list[str | Path], cwd: Path, timeout: float = 300) -> str:
    done = subprocess.run(
        [str(a) for a in argv], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"{argv}\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def tracked_files() -> list[str]:
    done = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60
    )
    return [name for name in done.stdout.decode().split("\0") if name]


@pytest.mark.slow
def test_wheel_from_a_clean_checkout_installs_runs_and_type_checks(tmp_path: Path) -> None:
    source = tmp_path / "checkout"
    tracked = tracked_files()
    for name in tracked:
        target = source / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if (ROOT / name).is_file():
            shutil.copy2(ROOT / name, target)
    dist = tmp_path / "dist"
    # No --wheel: the sdist is built first and the wheel from it, so both must be complete.
    run([sys.executable, "-m", "build", "--outdir", dist, source], cwd=tmp_path)
    (wheel,) = dist.glob("smtpproto_client-*.whl")

    # Every module of both source roots is in the wheel, where the design puts it.
    with zipfile.ZipFile(wheel) as archive:
        shipped = {name for name in archive.namelist() if name.endswith(".py")}
    expected = {
        name if name.startswith("smtpproto/") else "smtpproto/" + name
        for name in tracked
        if name.endswith(".py") and name.startswith(("smtpproto/", "adapters/"))
    }
    assert shipped == expected
    with zipfile.ZipFile(wheel) as archive:
        assert "smtpproto/py.typed" in archive.namelist()

    env = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env)
    python = env / "bin" / "python"
    run([python, "-m", "pip", "install", "-q", f"{wheel}[demo,trio,dns,idna]"], cwd=tmp_path)
    outside = tmp_path / "elsewhere"
    outside.mkdir()

    where = run([python, "-c", "import smtpproto.adapters as a; print(a.__file__)"], cwd=outside)
    assert str(env) in where and str(ROOT) not in where

    command = env / "bin" / "smtpproto"
    demo = subprocess.run(
        [command, "demo"],
        cwd=outside,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert demo.stderr == ""
    assert "every delivery ended as expected" in demo.stdout

    help_text = run([command, "deliver", "--help"], cwd=outside)
    assert "exit status:" in help_text and "--transcript" in help_text
    version = run([command, "--version"], cwd=outside)
    assert "(distribution smtpproto-client)" in version

    (outside / "user.py").write_text(USER_SCRIPT, encoding="utf-8")
    checked = run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-incremental",
            "--python-executable",
            python,
            "user.py",
        ],
        cwd=outside,
    )
    assert "Success: no issues found in 1 source file" in checked
