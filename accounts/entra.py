"""Staff sign-in with Entra ID of the home tenant: msal, authorization code + PKCE.

The portal authenticates to Entra as the multi-tenant app with the managed-identity
assertion (no secret). Only the id token's claims are used; the access token Entra returns
with them is dropped at once, msal's token cache keeps nothing, and no refresh token is
asked for (`offline_access` excluded). The flow (state, nonce, PKCE verifier) lives in the
server-side session between the two requests and is used once.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msal
from django.conf import settings
from django.urls import reverse
from django.views.decorators.debug import sensitive_variables

from accounts import roles as portal_roles
from mssp_portal import clouds, identity
from mssp_portal.untrusted import is_guid

logger = logging.getLogger(__name__)

# Entra's `error` values a refusal page may name; anything else is "unknown".
KNOWN_ERRORS = {
    "access_denied",
    "consent_required",
    "interaction_required",
    "invalid_grant",
    "invalid_request",
    "invalid_client",
    "login_required",
    "server_error",
    "temporarily_unavailable",
    "unauthorized_client",
}


# What a flow of ours always holds; a flow missing one of them is not one we started.
_FLOW_KEYS = ("state", "redirect_uri", "code_verifier", "nonce")


class _NoTokenCache(msal.TokenCache):
    """msal writes every token response into its cache; the portal keeps none of them."""

    def add(self, event: dict[str, Any], now: float | None = None) -> None:
        return None


class SignInRefused(Exception):
    """The sign-in did not prove a portal user. `reason` is a fixed code for the audit
    record and the refusal page; nothing in it comes from the request."""

    def __init__(
        self, reason: str, *, upn: str = "", tenant_id: str = "", object_id: str = ""
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.upn = upn
        self.tenant_id = tenant_id
        # Set only when the home tenant vouched for the user (a proven identity).
        self.object_id = object_id


class SignInUnavailable(Exception):
    """Entra could not be reached or answered with a server error."""


@dataclass(frozen=True)
class StaffClaims:
    tenant_id: str
    object_id: str
    username: str
    name: str
    roles: list[str]
    # Security group object ids from the `groups` claim; when Entra sent its overage form
    # instead (too many groups for a token), `groups_overage` and the list is read from
    # Graph (accounts.users.with_groups).
    groups: tuple[str, ...] = ()
    groups_overage: bool = False
    # Every app role value of the `roles` claim, the portal's and any other (tenant groups
    # may be mapped to those).
    app_roles: tuple[str, ...] = ()


def redirect_uri() -> str:
    """The sign-in redirect URI registered on the app (distinct from consent's)."""
    return settings.PORTAL_BASE_URL + reverse("accounts:callback")


def application() -> msal.ConfidentialClientApplication:
    """The portal app towards the home tenant (sign-in, and its own Graph token)."""
    cloud = clouds.current()
    return msal.ConfidentialClientApplication(
        client_id=settings.ENTRA_APP_CLIENT_ID,
        authority=f"{cloud.authority}/{settings.ENTRA_HOME_TENANT_ID}",
        client_credential={"client_assertion": identity.assertion},
        instance_discovery=cloud.instance_discovery,
        http_client=identity.http_session(),
        token_cache=_NoTokenCache(),
        exclude_scopes=["offline_access"],
    )


def start() -> dict[str, Any]:
    """A new auth-code flow: keep it in the session, send the browser to flow["auth_uri"]."""
    try:
        return application().initiate_auth_code_flow(
            scopes=[], redirect_uri=redirect_uri(), prompt="select_account"
        )
    except Exception as exc:  # msal raises ValueError/requests errors on discovery failure
        logger.warning("entra sign-in start failed: %s", type(exc).__name__)
        raise SignInUnavailable from exc


# Every variable, here and in msal's frames below: the code, the PKCE verifier, the token
# response.
@sensitive_variables()
def finish(flow: Mapping[str, Any], response: Mapping[str, str]) -> StaffClaims:
    """Redeem the code of `response` (the callback's query) for the flow started earlier
    and return who signed in, if they may. Raises SignInRefused or SignInUnavailable."""
    if response.get("error"):
        error = response["error"] if response["error"] in KNOWN_ERRORS else "unknown"
        raise SignInRefused(f"entra_{error}")
    if not all(isinstance(flow.get(key), str) and flow[key] for key in _FLOW_KEYS):
        # msal redeems a flow without a PKCE verifier by raising KeyError (which would read
        # as "Entra unavailable"), and one without a nonce without checking the id token's.
        raise SignInRefused("no_flow")
    try:
        result = application().acquire_token_by_auth_code_flow(dict(flow), dict(response))
    except ValueError as exc:
        # msal's words for a state mismatch echo both states: log the class only.
        logger.info("entra sign-in flow rejected: %s", type(exc).__name__)
        raise SignInRefused("state_mismatch") from exc
    except Exception as exc:
        logger.warning("entra sign-in redemption failed: %s", type(exc).__name__)
        raise SignInUnavailable from exc
    claims = dict(result.get("id_token_claims") or {})
    error = result.get("error", "")
    # Nothing of the token response outlives this function but the id token's claims.
    result.clear()
    if error:
        raise SignInRefused(f"entra_{error if error in KNOWN_ERRORS else 'unknown'}")
    return _check_claims(claims)


def _check_claims(claims: Mapping[str, Any]) -> StaffClaims:
    upn = str(claims.get("preferred_username") or "")[:150]
    tenant_id = str(claims.get("tid") or "")
    object_id = str(claims.get("oid") or "")
    if not _same_guid(tenant_id, settings.ENTRA_HOME_TENANT_ID):
        raise SignInRefused("wrong_tenant", upn=upn, tenant_id=tenant_id)
    if not is_guid(object_id) or not upn:
        raise SignInRefused("incomplete_claims", upn=upn, tenant_id=tenant_id)
    roles = claims.get("roles") or []
    roles = roles if isinstance(roles, list) else []
    granted = portal_roles.portal_roles(roles)
    if not granted:
        raise SignInRefused(
            "no_role", upn=upn, tenant_id=tenant_id, object_id=str(uuid.UUID(object_id))
        )
    groups, overage = _groups(claims)
    return StaffClaims(
        tenant_id=str(uuid.UUID(tenant_id)),
        object_id=str(uuid.UUID(object_id)),
        username=upn,
        name=str(claims.get("name") or "")[:150],
        roles=granted,
        groups=groups,
        groups_overage=overage,
        app_roles=tuple(sorted({r[:100] for r in roles if isinstance(r, str)})),
    )


def _groups(claims: Mapping[str, Any]) -> tuple[tuple[str, ...], bool]:
    """The `groups` claim's object ids, or Entra's overage form: `_claim_names` naming
    `groups` (a distributed claim, auth-code flow) or `hasgroups` (implicit flow)."""
    names = claims.get("_claim_names")
    if (isinstance(names, Mapping) and "groups" in names) or claims.get("hasgroups") is True:
        return (), True
    raw = claims.get("groups")
    if not isinstance(raw, list):
        return (), False
    return tuple(
        sorted({str(uuid.UUID(g)) for g in raw if isinstance(g, str) and is_guid(g)})
    ), False


def _same_guid(a: str, b: str) -> bool:
    return is_guid(a) and is_guid(b) and uuid.UUID(a) == uuid.UUID(b)
