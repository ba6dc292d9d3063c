"""The Microsoft Graph directory calls an app can make with an app-only token about the
users of its token's tenant: what a portal needs to re-check a signed-in user's app role
assignments and group memberships.

* ``GET /v1.0/servicePrincipals(appId='{appId}')``, ``GET /v1.0/servicePrincipals/{id}``:
  the service principal with its ``appRoles`` (role id ↔ value); an app reads its own
  without any permission;
* ``GET /v1.0/servicePrincipals/{id}/appRoleAssignedTo``: who holds the app's roles;
* ``GET /v1.0/users/{id | userPrincipalName}``: ``accountEnabled`` and the names;
* ``GET /v1.0/users/{id | userPrincipalName}/appRoleAssignments`` (``$filter=resourceId eq
  {guid}`` supported);
* ``POST /v1.0/users/{id | userPrincipalName}/checkMemberGroups`` ``{"groupIds": [...]}``
  (at most 20) and ``.../getMemberObjects`` ``{"securityEnabledOnly": bool}`` (the
  endpoint the groups overage claim names).

Each needs one of the application permissions Microsoft's Graph reference lists for it;
checkMemberGroups and getMemberObjects need a user-reading and a group-reading one.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Iterable
from typing import Any

from werkzeug.wrappers import Request, Response

from .directory import Application, ServicePrincipal, Tenant, User
from .errors import ProbeError, json_response
from .state import SandboxState

CONTEXT = "https://graph.microsoft.com/v1.0/$metadata"
_DIRECTORY = {"Directory.Read.All", "Directory.ReadWrite.All"}
APPLICATION_READ = {"Application.Read.All", "Application.ReadWrite.All", *_DIRECTORY}
ASSIGNED_TO_READ = {*APPLICATION_READ, "AppRoleAssignment.ReadWrite.All"}
USER_ASSIGNMENTS_READ = {*_DIRECTORY, "AppRoleAssignment.ReadWrite.All"}
USER_READ = {"User.Read.All", "User.ReadWrite.All", *_DIRECTORY}
GROUP_MEMBER_READ = {"GroupMember.Read.All", "Group.Read.All", "Group.ReadWrite.All", *_DIRECTORY}
MAX_CHECKED_GROUPS = 20  # checkMemberGroups' documented limit per request
# Assignments have no creation time in the sandbox; Graph always sends one.
_CREATED = "2024-01-01T00:00:00Z"
_BY_APP_ID = re.compile(r"^servicePrincipals\(appId='([^']*)'\)$")
_RESOURCE_FILTER = re.compile(r"^\s*resourceId\s+eq\s+([0-9a-fA-F-]{36})\s*$")


def _deny() -> ProbeError:
    return ProbeError(
        403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
    )


def _require(claims: dict[str, Any], *accepted: set[str]) -> None:
    """One role of every set in `accepted` (Graph's permission tables, one row each)."""
    roles = set(claims.get("roles", []))
    if not all(roles & wanted for wanted in accepted):
        raise _deny()


def _not_found(ref: str) -> ProbeError:
    return ProbeError(
        404,
        "Request_ResourceNotFound",
        f"Resource '{ref}' does not exist or one of its queried reference-property objects "
        "are not present.",
    )


def _bad_request(message: str) -> ProbeError:
    return ProbeError(400, "Request_BadRequest", message)


def app_role_id(client_id: str, role: str) -> str:
    """The id of an app role: the sandbox's roles are names, Graph's have GUIDs."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"approle:{client_id}:{role}"))


def _assignment_id(principal: str, role_id: str) -> str:
    raw = uuid.uuid5(uuid.NAMESPACE_URL, f"assignment:{principal}:{role_id}").bytes
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _service_principal_json(app: Application | None, sp: ServicePrincipal) -> dict[str, Any]:
    roles = app.app_roles if app else []
    return {
        "id": sp.object_id,
        "appId": sp.application,
        "accountEnabled": sp.enabled,
        "appDisplayName": app.name if app else None,
        "displayName": app.name if app else sp.application,
        "appOwnerOrganizationId": app.tenant if app else None,
        "servicePrincipalType": "Application",
        "appRoles": [
            {
                "allowedMemberTypes": ["User"],
                "description": role,
                "displayName": role,
                "id": app_role_id(sp.application, role),
                "isEnabled": True,
                "origin": "Application",
                "value": role,
            }
            for role in roles
        ],
    }


def _assignments(
    state: SandboxState, tenant: Tenant, users: Iterable[User], sp_filter: str | None = None
) -> list[dict[str, Any]]:
    """App role assignments of `users`, to apps with a service principal in `tenant`."""
    out = []
    for user in users:
        for ref in user.app_roles:
            client_id, _, role = ref.partition("/")
            sp = tenant.service_principals.get(client_id)
            if sp is None or (sp_filter and sp.object_id != sp_filter):
                continue
            app = state.directory.applications.get(client_id)
            role_id = app_role_id(client_id, role)
            out.append(
                {
                    "id": _assignment_id(user.object_id, role_id),
                    "deletedDateTime": None,
                    "appRoleId": role_id,
                    "createdDateTime": _CREATED,
                    "principalDisplayName": user.display_name,
                    "principalId": user.object_id,
                    "principalType": "User",
                    "resourceDisplayName": app.name if app else client_id,
                    "resourceId": sp.object_id,
                }
            )
    return out


def _find_sp(tenant: Tenant, segment: str) -> ServicePrincipal:
    by_app = _BY_APP_ID.match(segment)
    for sp in tenant.service_principals.values():
        if (by_app and sp.application == by_app.group(1).lower()) or sp.object_id == segment:
            return sp
    raise _not_found(by_app.group(1) if by_app else segment)


def _find_user(tenant: Tenant, ref: str) -> User:
    wanted = ref.lower()
    for user in tenant.users:
        if wanted in (user.object_id, user.upn.lower()):
            return user
    raise _not_found(ref)


def _body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(request.get_data(cache=False) or b"null")
    except (ValueError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict):
        raise _bad_request("The request body must be a JSON object.")
    return body


def _check_member_groups(request: Request, user: User) -> Response:
    ids = _body(request).get("groupIds")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise _bad_request("Invalid value for 'groupIds': a non-empty list of group ids.")
    if len(ids) > MAX_CHECKED_GROUPS:
        raise _bad_request(f"At most {MAX_CHECKED_GROUPS} group ids can be checked at once.")
    try:
        wanted = [str(uuid.UUID(i)) for i in ids]
    except ValueError:
        raise _bad_request("Invalid value for 'groupIds': not a GUID.") from None
    member = set(user.groups)
    return json_response(
        {
            "@odata.context": f"{CONTEXT}#Collection(Edm.String)",
            "value": [g for g in wanted if g in member],
        }
    )


def _get_member_objects(request: Request, user: User) -> Response:
    if not isinstance(_body(request).get("securityEnabledOnly"), bool):
        raise _bad_request("Invalid value for 'securityEnabledOnly': true or false.")
    # Sandbox groups are all security groups, so the flag changes nothing.
    return json_response(
        {"@odata.context": f"{CONTEXT}#Collection(Edm.String)", "value": list(user.groups)}
    )


def handle(
    state: SandboxState, request: Request, parts: list[str], claims: dict[str, Any], tenant: Tenant
) -> Response | None:
    """Answer a directory call (`parts`: the path after ``/v1.0``), or None when the path
    is not one of them."""
    method = request.method
    with state.directory.lock:
        if parts and (parts[0] == "servicePrincipals" or _BY_APP_ID.match(parts[0])):
            if _BY_APP_ID.match(parts[0]):
                parts = ["servicePrincipals", parts[0], *parts[1:]]
            if method != "GET" or len(parts) not in (2, 3):
                return None
            if len(parts) == 2:
                sp = _find_sp(tenant, parts[1])
                # "A service principal can retrieve its own application and service
                # principal details without being granted any application permissions."
                if sp.application != str(claims.get("appid", "")).lower():
                    _require(claims, APPLICATION_READ)
                app = state.directory.applications.get(sp.application)
                context = f"{CONTEXT}#servicePrincipals/$entity"
                return json_response(
                    {"@odata.context": context, **_service_principal_json(app, sp)}
                )
            if parts[2] != "appRoleAssignedTo":
                return None
            _require(claims, ASSIGNED_TO_READ)
            sp = _find_sp(tenant, parts[1])
            value = _assignments(state, tenant, tenant.users, sp_filter=sp.object_id)
            context = f"{CONTEXT}#servicePrincipals('{sp.object_id}')/appRoleAssignedTo"
            return json_response({"@odata.context": context, "value": value})
        if len(parts) in (2, 3) and parts[0] == "users":
            operation = parts[2] if len(parts) == 3 else None
            if len(parts) == 2 and method == "GET":
                _require(claims, USER_READ)
                user = _find_user(tenant, parts[1])
                return json_response(
                    {
                        "@odata.context": f"{CONTEXT}#users/$entity",
                        "id": user.object_id,
                        "userPrincipalName": user.upn,
                        "displayName": user.display_name,
                        "accountEnabled": user.enabled,
                    }
                )
            if operation == "appRoleAssignments" and method == "GET":
                _require(claims, USER_ASSIGNMENTS_READ)
                user = _find_user(tenant, parts[1])
                sp_filter = None
                if "$filter" in request.args:
                    match = _RESOURCE_FILTER.match(request.args["$filter"])
                    if match is None:
                        raise ProbeError(
                            400,
                            "Request_UnsupportedQuery",
                            "The sandbox supports only $filter=resourceId eq {guid}.",
                        )
                    sp_filter = match.group(1).lower()
                value = _assignments(state, tenant, [user], sp_filter=sp_filter)
                context = f"{CONTEXT}#users('{user.object_id}')/appRoleAssignments"
                return json_response({"@odata.context": context, "value": value})
            if operation in ("checkMemberGroups", "getMemberObjects") and method == "POST":
                _require(claims, USER_READ, GROUP_MEMBER_READ)
                user = _find_user(tenant, parts[1])
                if operation == "checkMemberGroups":
                    return _check_member_groups(request, user)
                return _get_member_objects(request, user)
    return None
