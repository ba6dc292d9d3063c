"""Start the sandbox inside a test (threads) or as a child process (benchmarks).

with run_sandbox("entra_sandbox/scenarios/demo.toml") as sb:
    monkeypatch.setenv("AZURE_AUTHORITY_HOST", sb.authority)
    sb.control.add_fault(target="token", status=429, retry_after=1, count=1)
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import shutil
import subprocess as sp
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .catalog import RESOURCES
from .control import ControlClient
from .directory import load_directory, read_scenario
from .server import Sandbox, shared_ca

ENV_NAMES = (
    "AZURE_AUTHORITY_HOST",
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "AZURE_POD_IDENTITY_AUTHORITY_HOST",
    "REQUESTS_CA_BUNDLE",
    "SANDBOX_LOGIN_URL",
    "SANDBOX_CONTROL_URL",
    "SANDBOX_GRAPH_URL",
    "SANDBOX_DEFENDER_URL",
    "SANDBOX_MDE_URL",
    "SANDBOX_ARM_URL",
    "SANDBOX_LOGANALYTICS_URL",
)
STARTUP_TIMEOUT = 60


@dataclass
class SandboxProcess:
    """A sandbox in a child process (``python -m entra_sandbox serve``), same attributes
    as an in-process Sandbox."""

    process: sp.Popen[str]
    env: dict[str, str]
    control: ControlClient = field(init=False)

    def __post_init__(self) -> None:
        self.control = ControlClient(self.env["SANDBOX_CONTROL_URL"], self.ca_path)

    @property
    def authority(self) -> str:
        return self.env["AZURE_AUTHORITY_HOST"]

    @property
    def login_url(self) -> str:
        return self.env["SANDBOX_LOGIN_URL"]

    @property
    def identity_endpoint(self) -> str:
        return self.env["IDENTITY_ENDPOINT"]

    @property
    def identity_header(self) -> str:
        return self.env["IDENTITY_HEADER"]

    @property
    def imds_url(self) -> str:
        return self.env["AZURE_POD_IDENTITY_AUTHORITY_HOST"]

    @property
    def ca_path(self) -> str:
        return self.env["REQUESTS_CA_BUNDLE"]

    @property
    def resource_urls(self) -> dict[str, str]:
        return {key: self.env[f"SANDBOX_{key.upper()}_URL"] for key in RESOURCES}

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except sp.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _scenario_file(scenario: str | Path | Mapping[str, Any], state_dir: Path) -> Path:
    if isinstance(scenario, Mapping) or (isinstance(scenario, str) and "\n" in scenario):
        path = state_dir / "scenario.json"
        path.write_text(json.dumps(read_scenario(scenario)), encoding="utf-8")
        return path
    return Path(scenario).resolve()


def _start_process(
    scenario: str | Path | Mapping[str, Any],
    state_dir: Path,
    host: str,
    port: int,
    persist: bool,
    login_port: int | None,
) -> SandboxProcess:
    load_directory(scenario)  # fail fast, in the caller's process, on an invalid scenario
    command = [
        sys.executable, "-m", "entra_sandbox", "serve",
        "--scenario", str(_scenario_file(scenario, state_dir)),
        "--host", host, "--port", str(port), "--state-dir", str(state_dir),
        *([] if persist else ["--no-persist"]),
        *([] if login_port is None else ["--login-port", str(login_port)]),
    ]  # fmt: skip
    # stderr goes to a file: an undrained pipe would block the child once it fills up.
    log_path = state_dir / "sandbox.log"
    with log_path.open("w", encoding="utf-8") as log:
        process = sp.Popen(  # noqa: S603 - our own interpreter and module
            command,
            stdout=sp.PIPE,
            stderr=log,
            text=True,
            cwd=str(Path(__file__).resolve().parent.parent),
        )
    env: dict[str, str] = {}
    done = threading.Event()

    def read_env() -> None:
        assert process.stdout is not None
        for line in process.stdout:  # read to the end, so the child never blocks on stdout
            name, sep, value = line.rstrip("\n").partition("=")
            if sep and name in ENV_NAMES:
                env[name] = value
            if all(n in env for n in ENV_NAMES):
                done.set()
        done.set()

    threading.Thread(target=read_env, daemon=True).start()
    if not done.wait(STARTUP_TIMEOUT) or len(env) < len(ENV_NAMES):
        process.kill()
        process.wait()
        raise RuntimeError(f"entra_sandbox did not start:\n{log_path.read_text()}")
    return SandboxProcess(process, env)


@contextlib.contextmanager
def run_sandbox(
    scenario: str | Path | Mapping[str, Any],
    state_dir: str | Path | None = None,
    subprocess: bool = False,
    host: str = "127.0.0.1",
    port: int = 0,
    login_port: int | None = None,
) -> Iterator[Sandbox | SandboxProcess]:
    """Run the sandbox for the duration of the block. `scenario`: a TOML file path, TOML
    text, or a dict of the same shape. `subprocess=True` runs it in a child process.
    `login_port` (0: any free port) adds the plain-http browser pages (``serve
    --login-port``); by default they are on the https authority, as in Entra.

    With a `state_dir` the directory, signing key and CA are kept there and restored by
    the next sandbox on the same dir (as ``serve --state-dir`` does); without one nothing
    outlives the block (its temp dir is removed)."""
    persist = state_dir is not None
    directory = Path(state_dir) if state_dir else Path(tempfile.mkdtemp(prefix="entra-sandbox-"))
    directory.mkdir(parents=True, exist_ok=True)
    try:
        if subprocess:
            handle = _start_process(scenario, directory, host, port, persist, login_port)
            try:
                yield handle
            finally:
                handle.stop()
        else:
            with Sandbox(
                scenario, directory, host=host, port=port, login_port=login_port, persist=persist
            ) as sandbox:
                yield sandbox
    finally:
        if state_dir is None:
            shutil.rmtree(directory, ignore_errors=True)


# -- control helpers: one call per change a test makes to the sandbox's Entra ------------------


def set_user_access(
    sb: Sandbox | SandboxProcess,
    user: str,
    *,
    app_roles: list[str] | None = None,
    groups: list[str] | None = None,
    enabled: bool | None = None,
) -> dict[str, Any]:
    """What an Entra administrator changes about a user (object id or UPN): app role
    assignments (``"<app client id>/<role>"``, replacing), group memberships (group object
    ids, replacing), account enabled. The next sign-in, refresh and Graph call see it."""
    fields: dict[str, Any] = {}
    if app_roles is not None:
        fields["app_roles"] = app_roles
    if groups is not None:
        fields["groups"] = groups
    if enabled is not None:
        fields["enabled"] = enabled
    return sb.control.update_user(user, **fields)


def group_ids(count: int, label: str = "group") -> list[str]:
    """`count` distinct group object ids, the same each run (e.g. 201 for the groups
    overage: id tokens carry at most 200)."""
    return [str(uuid.uuid5(uuid.NAMESPACE_URL, f"{label}:{i}")) for i in range(count)]


def issue_tokens_for_another_tenant(
    sb: Sandbox | SandboxProcess, tenant: str, other_tenant: str, count: int | None = None
) -> str:
    """Token requests to `tenant` succeed, but their tokens name `other_tenant` (`tid` and
    the issuer): what a check that the token's tenant is the one asked for must refuse.
    Returns the fault id; `clear_faults()` ends it."""
    fault: dict[str, Any] = {"target": "token", "tenant": tenant, "tid": other_tenant}
    if count is not None:
        fault["count"] = count
    return sb.control.add_fault(**fault)


def set_consent_propagation(
    sb: Sandbox | SandboxProcess, seconds: int | None, tenant: str | None = None
) -> dict[str, Any]:
    """How long after an admin consent app-only tokens still answer AADSTS700016 (for
    every tenant, or one tenant's override; None removes the override)."""
    return sb.control.set_consent_propagation(seconds, tenant)


def spki_sha256(ca_pem: bytes) -> str:
    """Base64 SHA-256 of the certificate's SubjectPublicKeyInfo: the form Chromium's
    ``--ignore-certificate-errors-spki-list`` takes."""
    certificate = x509.load_pem_x509_certificate(ca_pem)
    der = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(der).digest()).decode("ascii")


def browser_trust_args(*ca_paths: str | Path) -> list[str]:
    """Chromium flags that trust the sandbox's TLS certificates and nothing else: the key of
    its CA, pinned (the sandbox sends the CA in its chain). Without arguments, the CA every
    in-process sandbox without a state dir uses (one per process); give the ``ca.pem`` of
    other sandboxes (a state dir's, a child process's) to trust those too."""
    pins = [spki_sha256(shared_ca().cert_pem.bytes())]
    pins += [spki_sha256(Path(p).read_bytes()) for p in ca_paths]
    return [f"--ignore-certificate-errors-spki-list={','.join(pins)}"]


__all__ = [
    "ENV_NAMES",
    "Sandbox",
    "SandboxProcess",
    "browser_trust_args",
    "group_ids",
    "issue_tokens_for_another_tenant",
    "run_sandbox",
    "set_consent_propagation",
    "set_user_access",
    "spki_sha256",
]
