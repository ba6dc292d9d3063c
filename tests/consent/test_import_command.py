"""manage.py import_invitations: a verdict per row, the exit statuses, --dry-run."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from consent.models import Invitation
from tests.conftest import NORTHWIND, TAILSPIN

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent.parent


def _file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "fleet.csv"
    path.write_text(text, encoding="utf-8")
    return str(path)


def _run(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    try:
        call_command("import_invitations", *args, stdout=out)
    except CommandError as exc:
        return exc.returncode, out.getvalue() + str(exc)
    return 0, out.getvalue()


def test_it_creates_the_invitations_and_exits_0(tmp_path):
    path = _file(tmp_path, f"customer_name,tenant\nNorthwind,{NORTHWIND}\nTailspin,{TAILSPIN}\n")

    status, out = _run(path)

    assert status == 0
    assert f"line 2: created Northwind {NORTHWIND}" in out
    assert f"line 3: created Tailspin {TAILSPIN}" in out
    assert "2 rows: 2 created, 0 already onboarded" in out
    assert Invitation.objects.count() == 2

    status, out = _run(path)  # the same file again
    assert status == 0
    assert "line 2: already-onboarded" in out and "0 created" in out
    assert Invitation.objects.count() == 2


def test_some_invalid_rows_exit_1_and_the_valid_ones_are_created(tmp_path):
    path = _file(
        tmp_path, f"customer_name,tenant,profile\nNorthwind,{NORTHWIND},\nX,{TAILSPIN},nope\n"
    )

    status, out = _run(path)

    assert status == 1
    assert "line 3: invalid X" in out and "unknown profile 'nope'" in out
    assert "1 row(s) invalid" in out
    assert list(Invitation.objects.values_list("customer_name", flat=True)) == ["Northwind"]


def test_a_dry_run_prints_the_verdicts_and_creates_nothing(tmp_path):
    path = _file(tmp_path, f"customer_name,tenant\nNorthwind,{NORTHWIND}\nAgain,{NORTHWIND}\n")

    status, out = _run(path, "--dry-run")

    assert status == 0
    assert "line 2: will-create Northwind" in out
    assert "line 3: duplicate-in-file Again" in out and "same tenant as line 2" in out
    assert "0 created (dry run; 1 would be)" in out
    assert not Invitation.objects.exists()


@pytest.mark.parametrize(
    "content", [None, "tenant_id,name\nx,y\n"], ids=["missing-file", "wrong-header"]
)
def test_an_unreadable_file_exits_2_and_creates_nothing(tmp_path, content):
    path = str(tmp_path / "absent.csv") if content is None else _file(tmp_path, content)

    status, out = _run(path)

    assert status == 2
    assert "Nothing created" in out
    assert not Invitation.objects.exists()


def test_the_exit_statuses_reach_the_shell(tmp_path):
    """Through manage.py itself: 2 for a usage error (argparse) and a missing file."""
    env_python = str(ROOT / ".venv/bin/python")
    python = env_python if Path(env_python).exists() else sys.executable
    env = {"DJANGO_SETTINGS_MODULE": "tests.settings", "PATH": "/usr/bin:/bin"}
    usage = subprocess.run(
        [python, "manage.py", "import_invitations"], cwd=ROOT, env=env, capture_output=True
    )
    missing = subprocess.run(
        [python, "manage.py", "import_invitations", str(tmp_path / "absent.csv")],
        cwd=ROOT,
        env=env,
        capture_output=True,
    )

    assert usage.returncode == 2
    assert missing.returncode == 2
    assert b"Cannot read" in missing.stderr
