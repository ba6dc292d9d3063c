"""The token exchange in a customer tenant: the managed identity's assertion presented by the
MSSP's app to `{authority}/{tenant}/oauth2/v2.0/token` (azure-identity's
ClientAssertionCredential, configured, never patched).

One `Exchange` serves one verification. It is built fresh each time, so its token cache is
empty and every verification gets its tokens from Entra: a cached token would hide consent
revoked since. The assertion itself is shared (`mssp_portal.identity`), so a fleet costs one
managed-identity request per assertion lifetime. azure-core's retries are off (`retry_total=0`):
the engine retries itself (`retry`), so a throttled tenant costs a bounded wait.

Tokens never leave this module's return values: results keep their claims' `tid` and `roles`,
read without verifying the signature (diagnostics only; the probe call is the proof).
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from typing import Any

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.pipeline.transport import RequestsTransport
from azure.identity import ClientAssertionCredential
from django.conf import settings
from django.views.decorators.debug import sensitive_variables

from mssp_portal import clouds, identity
from tenants.verification import classify
from tenants.verification.retry import retry_after_seconds

# OAuth `error` values are lower-case words joined by underscores; anything else is dropped.
_OAUTH_ERROR = re.compile(r"[^a-z_]")
# The assertion's claims worth keeping: they name the FIC the home tenant needs.
ASSERTION_CLAIMS = ("iss", "sub", "aud", "tid", "oid", "azp", "nbf", "exp")


class IdentityUnavailable(Exception):
    """The managed identity (or workload identity file) gave no assertion."""


@sensitive_variables("token", "payload")
def unverified_claims(token: str) -> dict[str, Any]:
    """A JWT's claims without checking its signature: for diagnostics, never for trust.

    The payload segment decoded directly: PyJWT's unverified decode validates the header
    and every character in Python, which is most of a fleet verification's CPU time."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, TypeError):
        return {}
    return claims if isinstance(claims, dict) else {}


@sensitive_variables("token")
def assertion_claims(token: str) -> dict[str, Any]:
    claims = unverified_claims(token)
    return {name: claims[name] for name in ASSERTION_CLAIMS if name in claims}


class AssertionSource:
    """The `func` ClientAssertionCredential calls before each token request: the identity's
    current assertion. It remembers the assertion's claims, never the assertion."""

    def __init__(self) -> None:
        self.claims: dict[str, Any] = {}
        self.failure = ""

    @sensitive_variables("token")
    def __call__(self) -> str:
        try:
            token = identity.assertion()
        except Exception as exc:  # any failure of the identity source is the same fact
            # The class name only: the message may quote the endpoint's response.
            self.failure = type(exc).__name__
            raise IdentityUnavailable(f"managed identity: {self.failure}") from None
        self.claims = assertion_claims(token)
        return token


@dataclass
class TokenAnswer:
    """One token request's answer. `token` is for the probe call only; it is never stored,
    logged or shown (and kept out of repr)."""

    kind: str  # "ok", "entra" (an error body), "identity", "network", "config"
    token: str = field(default="", repr=False)
    error: str = ""
    code: int | None = None
    status: int | None = None
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.kind == "ok"

    @property
    def retryable(self) -> bool:
        if self.kind == "network":
            return True
        return self.kind == "entra" and classify.is_retryable_status(self.status)

    @property
    def error_code(self) -> str:
        return f"AADSTS{self.code}" if self.code else ""


class Exchange:
    """Token requests for one verification of one tenant."""

    def __init__(self, tenant_id: str, cloud: clouds.Cloud, client_id: str) -> None:
        self.source = AssertionSource()
        timeout = settings.VERIFY_HTTP_TIMEOUT
        transport = RequestsTransport(
            session=identity.pooled_session(),
            session_owner=False,
            connection_verify=identity.ca_bundle(),
            connection_timeout=timeout,
            read_timeout=timeout,
        )
        self.credential = ClientAssertionCredential(
            tenant_id,
            client_id,
            self.source,
            authority=cloud.authority,
            transport=transport,
            retry_total=0,
        )

    def close(self) -> None:
        self.credential.close()

    # Every variable, here and in azure-identity's frames below: they hold the assertion
    # and the token response.
    @sensitive_variables()
    def request(self, scope: str) -> TokenAnswer:
        """One token request, no retries."""
        try:
            token = self.credential.get_token(scope)
        except IdentityUnavailable:
            return TokenAnswer("identity")
        except ClientAuthenticationError as exc:
            if exc.response is None:
                # Raised before any response: the assertion callable's failure wrapped, or
                # a response without a body.
                return TokenAnswer("entra", error="no_response")
            return _answer_from_response(exc.response)
        except (ServiceRequestError, ServiceResponseError):
            return TokenAnswer("network")
        except HttpResponseError as exc:  # a body azure-core could not decode
            return TokenAnswer("entra", status=getattr(exc.response, "status_code", None))
        except ValueError:  # e.g. an authority that is not https
            return TokenAnswer("config")
        return TokenAnswer("ok", token=token.token)


def _answer_from_response(response: Any) -> TokenAnswer:
    status = getattr(response, "status_code", None)
    retry_after = retry_after_seconds(response.headers.get("Retry-After"))
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return TokenAnswer("entra", status=status, retry_after=retry_after)
    error = body.get("error")
    codes = body.get("error_codes")
    code = None
    if isinstance(codes, list) and codes and isinstance(codes[0], int):
        code = codes[0]
    return TokenAnswer(
        "entra",
        error=_OAUTH_ERROR.sub("", error)[:64] if isinstance(error, str) else "",
        code=code,
        status=status,
        retry_after=retry_after,
    )
