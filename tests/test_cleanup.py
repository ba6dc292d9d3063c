"""A test run leaves nothing in the temp dir, even when it is ended by SIGTERM (`timeout`,
a cancelled CI job): no `entra-sandbox-*` dir, no test database file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD_CONFTEST = "from tests.conftest import *  # noqa: F403\n"
CHILD_TEST = """
import os, pathlib, time

def test_waits_with_the_sandbox_running(sandbox, db):
    pathlib.Path(os.environ["READY_FILE"]).write_text("ready")
    time.sleep(120)
"""


def test_a_run_ended_by_sigterm_removes_its_temp_files(tmp_path):
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "conftest.py").write_text(CHILD_CONFTEST)
    (suite / "test_wait.py").write_text(CHILD_TEST)
    temp = tmp_path / "temp"
    temp.mkdir()
    ready = tmp_path / "ready"
    env = {
        **os.environ,
        "TMPDIR": str(temp),
        "READY_FILE": str(ready),
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": "sqlite:///" + str(tmp_path / "unused.sqlite3"),
    }
    child = subprocess.Popen(  # noqa: S603 - our own interpreter and pytest
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(suite)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not ready.exists() and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.1)
        assert ready.exists(), child.communicate(timeout=30)[0]
        assert any(p.name.startswith("entra-sandbox-") for p in temp.iterdir())
        child.send_signal(signal.SIGTERM)
        output, _ = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode != 0
    assert "KeyboardInterrupt: signal 15" in output
    assert sorted(p.name for p in temp.iterdir()) == [], output
