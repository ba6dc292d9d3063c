"""The portal's own identity towards Entra: the client assertion, and the HTTP session.

There is no client secret. The assertion that proves the portal is the multi-tenant app is
a token of the user-assigned managed identity for the federated-credential audience (or, on
Kubernetes, the projected workload-identity token). Verification (ClientAssertionCredential)
and staff sign-in (msal) both take it from here, so one managed-identity request serves every
exchange for the assertion's lifetime.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import requests
from azure.identity import ManagedIdentityCredential
from django.conf import settings

from mssp_portal import clouds

_lock = threading.Lock()
_credentials: dict[tuple[str, ...], ManagedIdentityCredential] = {}


def _credential_key() -> tuple[str, ...]:
    # azure-identity picks the managed-identity source from these variables when the
    # credential is built; a change of them (tests, a reconfigured host) needs a new one.
    env = (
        "IDENTITY_ENDPOINT",
        "IDENTITY_HEADER",
        "AZURE_POD_IDENTITY_AUTHORITY_HOST",
        "MSI_ENDPOINT",
        "IMDS_ENDPOINT",
    )
    return (settings.ENTRA_MANAGED_IDENTITY_CLIENT_ID, *(os.environ.get(v, "") for v in env))


def assertion() -> str:
    """A current client assertion for the app's federated identity credential."""
    token_file = settings.ENTRA_WORKLOAD_IDENTITY_TOKEN_FILE
    if token_file:
        # The kubelet rotates the projected token; read it every time.
        return Path(token_file).read_text().strip()
    scope = f"{clouds.current().fic_audience}/.default"
    with _lock:
        key = _credential_key()
        credential = _credentials.get(key)
        if credential is None:
            credential = ManagedIdentityCredential(
                client_id=settings.ENTRA_MANAGED_IDENTITY_CLIENT_ID
            )
            _credentials[key] = credential
        # Under the lock: concurrent first calls would otherwise each ask the identity
        # endpoint before the credential's cache holds the token.
        return credential.get_token(scope).token


def forget_assertion() -> None:
    """Drop the cached assertion, so the next call asks the identity endpoint again (used
    when Entra says the assertion is outside its validity window)."""
    with _lock:
        _credentials.clear()


def ca_bundle() -> str | bool:
    """What TLS verification trusts: the configured CA bundle, else the system's."""
    return settings.ENTRA_CA_BUNDLE or True


def http_session() -> requests.Session:
    """A session for Entra and the resource APIs. It ignores REQUESTS_CA_BUNDLE and proxy
    variables from the environment: what it trusts is the portal's own configuration."""
    session = requests.Session()
    session.trust_env = False
    session.verify = ca_bundle()
    return session
