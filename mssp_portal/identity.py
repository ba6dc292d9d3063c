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
from requests.adapters import HTTPAdapter

from mssp_portal import clouds

_lock = threading.Lock()
_credentials: dict[tuple[str, ...], ManagedIdentityCredential] = {}
_sessions_lock = threading.Lock()
_sessions: dict[tuple[object, ...], requests.Session] = {}


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
            timeout = settings.VERIFY_HTTP_TIMEOUT
            credential = ManagedIdentityCredential(
                client_id=settings.ENTRA_MANAGED_IDENTITY_CLIENT_ID,
                # Bounded: while this runs, every exchange of the process waits on the lock.
                connection_timeout=timeout,
                read_timeout=timeout,
                retry_total=settings.VERIFY_RETRIES,
                retry_backoff_factor=settings.VERIFY_RETRY_BASE_DELAY,
                retry_backoff_max=settings.VERIFY_RETRY_MAX_DELAY,
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


def pooled_session() -> requests.Session:
    """One `http_session()` shared by the verification threads of this process, with a
    connection pool as large as their number: a fleet reuses TLS connections instead of
    opening one per tenant. No retries at this level (the engine owns them) and no
    redirects are followed by callers (a bearer token must not travel on)."""
    size = max(settings.VERIFY_CONCURRENCY, 1)
    key = (ca_bundle(), size)
    with _sessions_lock:
        session = _sessions.get(key)
        if session is None:
            session = http_session()
            adapter = HTTPAdapter(pool_connections=8, pool_maxsize=size, max_retries=0)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
            _sessions[key] = session
        return session
