"""What the home tenant's directory says about a staff member now, read with the portal's
own app-only Graph token (client credentials with the managed-identity assertion, no
secret): their app roles on the portal's app and their security groups.

Used at sign-in when the id token carries Entra's groups overage form instead of the
`groups` claim, and every STAFF_ROLE_RECHECK seconds for signed-in users. The token is
asked for each time and dropped at once (never cached, stored or logged).

Graph application permissions, granted to the portal's service principal in the home
tenant only: Application.Read.All (`appRoleAssignedTo` of the portal's service principal),
User.Read.All and GroupMember.Read.All (`getMemberObjects`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import requests
from django.conf import settings
from django.views.decorators.debug import sensitive_variables

from accounts import entra
from mssp_portal import clouds, identity

logger = logging.getLogger(__name__)

# Pages of appRoleAssignedTo followed at most (999 assignments each).
_MAX_PAGES = 50


class DirectoryUnavailable(Exception):
    """Graph could not say (no token, an error, a time-out): the caller must not guess."""


@dataclass(frozen=True)
class DirectoryAccess:
    enabled: bool
    # Values of the portal app's roles assigned to the user or to one of their groups.
    roles: list[str]
    # Object ids of the security groups the user is a member of (nested ones included).
    groups: list[str]


@sensitive_variables("result", "token")
def _token() -> str:
    graph = clouds.current().resources["graph"]
    try:
        result = entra.application().acquire_token_for_client(scopes=[graph.scope])
    except Exception as exc:
        logger.warning("graph token for the staff re-check failed: %s", type(exc).__name__)
        raise DirectoryUnavailable from exc
    token = result.get("access_token")
    error = result.get("error", "")
    result.clear()
    if not token:
        logger.warning("graph token for the staff re-check refused: %s", error or "no token")
        raise DirectoryUnavailable
    return token


@sensitive_variables("token")
def _call(session: requests.Session, token: str, method: str, url: str, body: object = None):
    try:
        response = session.request(
            method,
            url,
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=settings.VERIFY_HTTP_TIMEOUT,
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        logger.warning("graph %s failed: %s", url.split("?")[0], type(exc).__name__)
        raise DirectoryUnavailable from exc
    if response.status_code == 404:
        return None
    if response.status_code != 200:
        logger.warning("graph %s answered %s", url.split("?")[0], response.status_code)
        raise DirectoryUnavailable
    try:
        return response.json()
    except ValueError as exc:
        raise DirectoryUnavailable from exc


@sensitive_variables("token")
def member_groups(object_id: str, *, token: str | None = None) -> list[str]:
    """The user's security groups (object ids), as the overage claim's endpoint lists them."""
    token = token or _token()
    base = clouds.current().resources["graph"].base_url
    session = identity.http_session()
    answer = _call(
        session,
        token,
        "POST",
        f"{base}/v1.0/users/{object_id}/getMemberObjects",
        {"securityEnabledOnly": True},
    )
    if answer is None:
        return []
    return sorted({str(g).lower() for g in answer.get("value", []) if isinstance(g, str)})


@sensitive_variables("token")
def directory_access(object_id: str) -> DirectoryAccess:
    """The user's account state, portal app roles and groups, now. A user the home tenant
    no longer has reads as disabled with nothing."""
    token = _token()
    base = clouds.current().resources["graph"].base_url
    session = identity.http_session()
    user = _call(session, token, "GET", f"{base}/v1.0/users/{object_id}?$select=id,accountEnabled")
    if user is None:
        return DirectoryAccess(enabled=False, roles=[], groups=[])
    groups = member_groups(object_id, token=token)
    app = settings.ENTRA_APP_CLIENT_ID
    sp = _call(session, token, "GET", f"{base}/v1.0/servicePrincipals(appId='{app}')")
    if sp is None:
        raise DirectoryUnavailable  # the portal's own service principal: never expected gone
    values = {
        r.get("id"): r.get("value") for r in sp.get("appRoles", []) if r.get("isEnabled", True)
    }
    principals = {object_id.lower(), *groups}
    roles: set[str] = set()
    url: str | None = f"{base}/v1.0/servicePrincipals/{sp['id']}/appRoleAssignedTo?$top=999"
    for _page in range(_MAX_PAGES):
        if url is None:
            break
        page = _call(session, token, "GET", url)
        if page is None:
            raise DirectoryUnavailable
        for assignment in page.get("value", []):
            if str(assignment.get("principalId", "")).lower() in principals:
                value = values.get(assignment.get("appRoleId"))
                if isinstance(value, str):
                    roles.add(value)
        url = page.get("@odata.nextLink")
        if url and not url.startswith(base + "/"):
            raise DirectoryUnavailable  # a bearer token never follows a link elsewhere
    else:
        raise DirectoryUnavailable
    return DirectoryAccess(
        enabled=bool(user.get("accountEnabled", False)), roles=sorted(roles), groups=groups
    )
