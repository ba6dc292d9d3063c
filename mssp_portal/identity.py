"""The portal's own identity towards Entra: the client assertion, and the HTTP session.

There is no client secret. The assertion that proves the portal is the multi-tenant app is
a token of the user-assigned managed identity for the federated-credential audience (or, on
Kubernetes, the projected workload-identity token). Verification (ClientAssertionCredential)
and staff sign-in (msal) both take it from here, so one managed-identity request serves every
exchange for the assertion's lifetime.
"""

from __future__ import annotations

import os
import ssl
import threading
from pathlib import Path
from typing import Any

import requests
from azure.identity import ManagedIdentityCredential
from django.conf import settings
from django.views.decorators.debug import sensitive_variables
from requests.adapters import HTTPAdapter
from requests.cookies import RequestsCookieJar
from requests.models import PreparedRequest
from requests.structures import CaseInsensitiveDict
from requests.utils import DEFAULT_CA_BUNDLE_PATH

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


# Every variable, here and in azure-identity's frames below, which hold the token.
@sensitive_variables()
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
        try:
            return credential.get_token(scope).token
        except Exception:
            # azure-identity's credential remembers a failed identity endpoint and never asks
            # it again: the endpoint back, this worker would fail until restarted. A new
            # credential next time asks again.
            _credentials.pop(key, None)
            raise


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


class _TrustAdapter(HTTPAdapter):
    """Verifies TLS against a context loaded once. Given a CA bundle path, requests makes
    urllib3 read the file again for every new connection; a fleet opens thousands."""

    def __init__(self, trust: str | bool, **kwargs: Any) -> None:
        self.trust = trust
        cafile = trust if isinstance(trust, str) else DEFAULT_CA_BUNDLE_PATH
        self.context = ssl.create_default_context(cafile=cafile)
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["ssl_context"] = self.context
        super().init_poolmanager(*args, **kwargs)

    def build_connection_pool_key_attributes(self, request, verify, cert=None):  # type: ignore[no-untyped-def]
        if verify == self.trust:
            verify = True  # no per-pool CA file: the context already trusts it
        return super().build_connection_pool_key_attributes(request, verify, cert)

    def cert_verify(self, conn, url, verify, cert):  # type: ignore[no-untyped-def]
        if verify == self.trust and url.lower().startswith("https"):
            conn.cert_reqs = "CERT_REQUIRED"
            conn.ca_certs = conn.ca_cert_dir = None
            return
        super().cert_verify(conn, url, verify, cert)


class _NoCookies(RequestsCookieJar):
    """A jar that keeps nothing: the verification threads share one session, and a cookie
    Entra sets in one customer's token response must never ride on another's request."""

    def set_cookie(self, cookie, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None

    def extract_cookies(self, response, request):  # type: ignore[no-untyped-def]
        return None


class _EngineSession(requests.Session):
    """The verification engine's session: no cookies, no environment, no redirects. A call
    that asks for none of those (every probe, every token request through azure-core) is
    prepared directly: requests' per-call merging of cookie jars, hooks and environment
    settings was a third of the CPU of each call. Anything else goes the usual way."""

    def __init__(self) -> None:
        super().__init__()
        self.trust_env = False
        self.cookies = _NoCookies()

    def request(  # type: ignore[override]
        self,
        method: str,
        url: str,
        params: Any = None,
        data: Any = None,
        headers: Any = None,
        cookies: Any = None,
        files: Any = None,
        auth: Any = None,
        timeout: Any = None,
        allow_redirects: bool = True,
        proxies: Any = None,
        hooks: Any = None,
        stream: Any = None,
        verify: Any = None,
        cert: Any = None,
        json: Any = None,
    ) -> requests.Response:
        if allow_redirects or cookies or auth or hooks or proxies or self.auth:
            return super().request(
                method, url, params, data, headers, cookies, files, auth, timeout,
                allow_redirects, proxies, hooks, stream, verify, cert, json,
            )  # fmt: skip
        merged = CaseInsensitiveDict(self.headers)
        for name, value in (headers or {}).items():
            if value is not None:
                merged[name] = value
        prepared = PreparedRequest()
        prepared.prepare_method(method.upper())
        prepared.prepare_url(url, params or {})
        prepared.prepare_headers(merged)
        prepared.prepare_body(data or {}, files, json)
        prepared.prepare_hooks({})
        return self.send(
            prepared,
            timeout=timeout,
            allow_redirects=False,
            stream=bool(stream),
            verify=self.verify if verify is None else verify,
            cert=cert or self.cert,
            proxies={},
        )


def pooled_session() -> requests.Session:
    """One session (`http_session()`'s trust, no cookies) shared by the verification threads
    of this process, with a connection pool as large as their number (connections are
    reused where the server keeps them open) and the trusted CAs loaded once. No retries
    at this level (the engine owns them); callers follow no redirects (a bearer token must
    not travel on)."""
    size = max(settings.VERIFY_CONCURRENCY, 1)
    key = (ca_bundle(), size)
    with _sessions_lock:
        session = _sessions.get(key)
        if session is None:
            session = _EngineSession()
            session.verify = ca_bundle()
            adapter = _TrustAdapter(
                ca_bundle(), pool_connections=8, pool_maxsize=size, max_retries=0
            )
            session.mount("https://", adapter)
            session.mount("http://", adapter)
            _sessions[key] = session
        return session
