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
from urllib.parse import urlencode

import requests
from azure.identity import ManagedIdentityCredential
from django.conf import settings
from django.views.decorators.debug import sensitive_variables
from requests.adapters import HTTPAdapter
from requests.cookies import RequestsCookieJar
from requests.structures import CaseInsensitiveDict
from requests.utils import DEFAULT_CA_BUNDLE_PATH, get_encoding_from_headers
from urllib3 import exceptions as urllib3_exceptions
from urllib3.exceptions import LocationValueError
from urllib3.util import Timeout

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
    that asks for none of those and sends a form, text or bytes (every probe, every token
    request through azure-core) goes straight to the adapter's urllib3 connection pool:
    requests' preparing, per-call merging of cookie jars, hooks and environment, connection
    lookup and response building were half of the CPU of each call. It keeps what the
    adapter would do: the same pools and TLS context, the same exceptions, no retries, no
    redirects. Anything else goes the usual way."""

    def __init__(self, adapter: _TrustAdapter) -> None:
        super().__init__()
        self.trust_env = False
        self.cookies = _NoCookies()
        self.adapter = adapter
        self.verify = adapter.trust
        self.mount("https://", adapter)
        self.mount("http://", adapter)

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
        direct = not (
            allow_redirects or params or cookies or files or auth or hooks or proxies or stream
        )
        if direct and json is None and cert is None and not self.auth:
            direct = verify is None or verify == self.verify
        if not direct or not isinstance(data, (dict, str, bytes, type(None))):
            return super().request(
                method, url, params, data, headers, cookies, files, auth, timeout,
                allow_redirects, proxies, hooks, stream, verify, cert, json,
            )  # fmt: skip
        # Case-insensitive, as requests merges them: a caller's "accept" replaces the
        # session's "Accept" instead of sending both.
        merged = CaseInsensitiveDict(self.headers)
        for name, value in (headers or {}).items():
            if value is not None:
                merged[name] = value
        body = data
        if isinstance(data, dict):
            body = urlencode(data) if data else None
            if body is not None and "Content-Type" not in merged:
                merged["Content-Type"] = "application/x-www-form-urlencoded"
        if isinstance(body, str):
            body = body.encode("utf-8")
        return _send(self.adapter, method.upper(), url, body, dict(merged), timeout)


def _timeout(timeout: Any) -> Timeout:
    if isinstance(timeout, tuple):
        connect, read = timeout
        return Timeout(connect=connect, read=read)
    return Timeout(connect=timeout, read=timeout)


def _send(
    adapter: _TrustAdapter,
    method: str,
    url: str,
    body: bytes | None,
    headers: dict[str, str],
    timeout: Any,
) -> requests.Response:
    """One request on the adapter's pools, mapped to what requests would return or raise."""
    try:
        pool = adapter.poolmanager.connection_from_url(url)
        raw = pool.urlopen(
            method,
            url,
            body=body,
            headers=headers,
            redirect=False,
            assert_same_host=False,
            retries=False,
            timeout=_timeout(timeout),
        )
    except LocationValueError as exc:
        raise requests.exceptions.InvalidURL(exc) from exc
    except urllib3_exceptions.NewConnectionError as exc:
        raise requests.ConnectionError(exc) from exc
    except urllib3_exceptions.ConnectTimeoutError as exc:
        raise requests.ConnectTimeout(exc) from exc
    except urllib3_exceptions.ReadTimeoutError as exc:
        raise requests.ReadTimeout(exc) from exc
    except urllib3_exceptions.SSLError as exc:
        raise requests.exceptions.SSLError(exc) from exc
    except (urllib3_exceptions.HTTPError, OSError) as exc:
        raise requests.ConnectionError(exc) from exc
    response = requests.Response()
    response.status_code = raw.status
    response.headers = CaseInsensitiveDict(raw.headers)
    response.encoding = get_encoding_from_headers(response.headers)
    response.reason = raw.reason
    response.url = url
    response.raw = raw
    response._content = raw.data
    response._content_consumed = True
    return response


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
            adapter = _TrustAdapter(
                ca_bundle(), pool_connections=8, pool_maxsize=size, max_retries=0
            )
            session = _EngineSession(adapter)
            _sessions[key] = session
        return session
