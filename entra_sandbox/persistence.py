"""What ``serve --state-dir`` keeps across restarts, as real Entra does: the directory
(``directory.json``), the token-signing key (``signing-key.pem``) and the TLS CA (``ca.pem``
with ``ca-key.pem``).

Faults, clock skew, counters, issued tokens and pending authorization codes are test
instruments, not directory facts: they stay in memory and start empty.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import trustme
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from .directory import Directory
from .keys import SigningKey

logger = logging.getLogger("entra_sandbox")

# Bumped when Directory.to_json changes shape; a file of another format is discarded.
FORMAT = 1
DIRECTORY_FILE = "directory.json"
CORRUPT_DIRECTORY_FILE = "directory.json.corrupt"
SIGNING_KEY_FILE = "signing-key.pem"
CA_FILE = "ca.pem"
CA_KEY_FILE = "ca-key.pem"

_UNREADABLE = (OSError, ValueError, TypeError, UnsupportedAlgorithm)


def scenario_sha256(scenario: Mapping[str, Any]) -> str:
    """SHA-256 of the parsed scenario, canonically serialised: an edit of its comments or
    layout keeps the saved directory, a change of any value discards it."""
    canonical = json.dumps(scenario, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def write_atomically(path: Path, data: bytes, private: bool = False) -> None:
    """Replace `path` in one step, so a reader (or the next start after a crash) sees the
    old content or the new, never a torn file. `private` files are readable by the owner
    only (private keys)."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        if not private:
            # mkstemp creates 0600; the rest of the state dir is ordinary files.
            os.chmod(temp, 0o644)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


class StateDir:
    """The persisted part of one sandbox. ``notices`` collects one line per thing worth
    telling whoever started it (a discarded or unreadable file)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.path.mkdir(parents=True, exist_ok=True)
        self.notices: list[str] = []

    # -- the directory -------------------------------------------------------------------

    def open_directory(self, fresh: Directory, scenario: Mapping[str, Any]) -> Directory:
        """The saved directory if it was saved for this scenario, else `fresh` (built from
        the scenario). Either way it is saved now and after every change from here on."""
        digest = scenario_sha256(scenario)
        directory = self._saved_directory(digest) or fresh

        def save(changed: Directory) -> None:
            self._save_directory(changed, digest)

        with directory.lock:
            directory.on_change = save
            save(directory)
        return directory

    def _saved_directory(self, digest: str) -> Directory | None:
        path = self.path / DIRECTORY_FILE
        if not path.exists():
            return None
        try:
            saved = json.loads(path.read_bytes())
            if saved.get("format") != FORMAT:
                why = "it was written by another version of the sandbox"
            elif saved.get("scenario_sha256") != digest:
                why = "the scenario changed since it was saved"
            else:
                return Directory.from_json(saved["directory"])
        except (*_UNREADABLE, KeyError, AttributeError) as exc:
            why = f"it is not a saved directory ({type(exc).__name__}: {exc})"
            # Kept aside rather than overwritten: it may hold consents worth recovering.
            with contextlib.suppress(OSError):
                path.replace(path.with_name(CORRUPT_DIRECTORY_FILE))
                why += f"; kept as {CORRUPT_DIRECTORY_FILE}"
        self._notice(f"discarded the saved directory {path}: {why}; starting from the scenario")
        return None

    def _save_directory(self, directory: Directory, digest: str) -> None:
        # Called with the directory's lock held (Directory.on_change): saves are serialised
        # and each one sees the latest change.
        document = {"format": FORMAT, "scenario_sha256": digest, "directory": directory.to_json()}
        try:
            write_atomically(
                self.path / DIRECTORY_FILE, json.dumps(document, indent=1).encode("utf-8")
            )
        except OSError as exc:
            # The change stands in memory; a full disk must not fail the consent or API call.
            logger.error("entra_sandbox: cannot save the directory in %s: %s", self.path, exc)

    # -- keys ----------------------------------------------------------------------------

    def signing_key(self) -> SigningKey:
        """The saved token-signing key, or a new one, saved."""
        path = self.path / SIGNING_KEY_FILE
        if path.exists():
            try:
                return SigningKey.from_pem(path.read_bytes())
            except _UNREADABLE as exc:
                self._notice(
                    f"replaced {path}, not a signing key ({exc}): tokens issued before this "
                    "start no longer validate"
                )
        key = SigningKey()
        write_atomically(path, key.to_pem(), private=True)
        return key

    def ca(self) -> trustme.CA:
        """The saved CA (so ``ca.pem`` keeps its content), or a new one. The caller writes
        ``ca.pem``; the CA's private key is saved here."""
        cert_path, key_path = self.path / CA_FILE, self.path / CA_KEY_FILE
        if cert_path.exists() and key_path.exists():
            try:
                return _load_ca(cert_path.read_bytes(), key_path.read_bytes())
            except _UNREADABLE as exc:
                self._notice(f"replaced the CA in {cert_path}, unreadable ({exc})")
        ca = trustme.CA()
        write_atomically(key_path, ca.private_key_pem.bytes(), private=True)
        return ca

    def _notice(self, message: str) -> None:
        self.notices.append(f"entra_sandbox: {message}")


def _load_ca(cert_pem: bytes, key_pem: bytes) -> trustme.CA:
    certificate = x509.load_pem_x509_certificate(cert_pem)
    private_key = serialization.load_pem_private_key(key_pem, password=None)
    public = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if certificate.public_key().public_bytes(*public) != private_key.public_key().public_bytes(
        *public
    ):
        raise ValueError("the CA key does not match ca.pem")
    return trustme.CA.from_pem(cert_pem, key_pem)
