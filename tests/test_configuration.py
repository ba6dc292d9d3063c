"""Every setting the portal reads from the environment is documented in .env.example."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import environ

ROOT = Path(__file__).resolve().parent.parent


def test_it_documents_every_environment_setting() -> None:
    settings_source = (ROOT / "mssp_portal/settings.py").read_text()
    read = set(re.findall(r"env(?:\.\w+)?\(\s*\"([A-Z][A-Z0-9_]+)\"", settings_source))
    documented = set(
        re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M)
    )
    assert len(read) > 30  # the pattern still finds the settings
    assert read - documented == set()


def _sourced() -> dict[str, str]:
    # What an operator gets from `set -a; . .env` in a shell, a common way to load it.
    script = "set -a; . ./.env.example; env -0"
    out = subprocess.run(
        ["bash", "-c", script], cwd=ROOT, env={"PATH": os.environ["PATH"]},
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    return dict(item.split("=", 1) for item in out.decode().split("\0") if "=" in item)


def test_the_example_loads_in_a_shell_and_in_django_environ_alike(tmp_path) -> None:
    shell = _sourced()
    assert shell["MSSP_NAME"] == "Fabrikam Security"
    copy = tmp_path / ".env"
    copy.write_text((ROOT / ".env.example").read_text())

    class Parsed(environ.Env):
        ENVIRON: dict[str, str] = {}  # read into this, not into os.environ

    Parsed.read_env(copy)
    assert Parsed.ENVIRON["MSSP_NAME"] == "Fabrikam Security"
    assert Parsed.ENVIRON["PORTAL_BASE_URL"] == shell["PORTAL_BASE_URL"]


def test_the_example_leaves_https_to_be_derived_from_the_base_url() -> None:
    # A copied PORTAL_HTTPS=False would silently turn HSTS and secure cookies off for an
    # https PORTAL_BASE_URL in production.
    assert "PORTAL_HTTPS" not in _sourced()
