"""The probed resource APIs, served under ``/resources/{key}/…``: one cheap call each,
validating the bearer token like the real service (signature, audience, tenant, expiry on
the STS clock, then roles or RBAC)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable
from typing import Any

import jwt
from werkzeug.wrappers import Request, Response

from . import graph
from .catalog import RESOURCES, Resource
from .directory import Tenant
from .errors import ProbeError, json_response
from .routing import Route
from .state import SandboxState
from .tokens import unverified_claims

GRAPH_ORG_ROLES = {
    "Organization.Read.All",
    "Organization.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
}
DEFENDER_INCIDENT_ROLES = {"Incident.Read.All", "Incident.ReadWrite.All"}
MDE_INDICATOR_ROLES = {"Ti.ReadWrite", "Ti.ReadWrite.All", "Ti.Read.All"}
INGESTION_ROLE = "Monitoring Metrics Publisher"
MAX_INGESTION_BYTES = 1024 * 1024  # the Logs Ingestion API's documented call limit


def _bearer(request: Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _authenticate(
    state: SandboxState, request: Request, resource: Resource
) -> tuple[dict[str, Any], Tenant]:
    token = _bearer(request)
    if token is None:
        raise ProbeError(401, "InvalidAuthenticationToken", "Access token is empty.")
    try:
        claims = state.tokens.verify(token)
    except jwt.InvalidTokenError:
        raise ProbeError(
            401, "InvalidAuthenticationToken", "Access token validation failure. Invalid signature."
        ) from None
    aud = str(claims.get("aud", "")).rstrip("/").lower()
    if aud not in (i.lower() for i in resource.identifiers):
        raise ProbeError(
            401, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience."
        )
    tid = str(claims.get("tid", ""))
    if claims.get("iss") != state.tokens.v1_issuer(tid):
        raise ProbeError(
            401, "InvalidAuthenticationToken", "Access token validation failure. Invalid issuer."
        )
    problem = state.tokens.time_error(claims)
    if problem:
        raise ProbeError(
            401,
            "InvalidAuthenticationToken",
            f"Lifetime validation failed, the token is {problem}.",
        )
    tenant = state.directory.tenant(tid)
    if tenant is None or resource.key not in tenant.services:
        raise ProbeError(
            401,
            "InvalidAuthenticationToken",
            f"The tenant '{tid}' is not provisioned for this service.",
        )
    return claims, tenant


def _require_role(claims: dict[str, Any], accepted: set[str], code: str, message: str) -> None:
    if not accepted & set(claims.get("roles", [])):
        raise ProbeError(403, code, message)


# -- the APIs ----------------------------------------------------------------------------


def _graph(
    state: SandboxState, request: Request, path: str, claims: dict, tenant: Tenant
) -> Response:
    parts = path.strip("/").split("/")
    if parts[0] == "v1.0" and parts[1:] != ["organization"]:
        answer = graph.handle(state, request, parts[1:], claims, tenant)
        if answer is not None:
            return answer
    if request.method != "GET" or parts != ["v1.0", "organization"]:
        segment = parts[-1] or path
        raise ProbeError(400, "BadRequest", f"Resource not found for the segment '{segment}'.")
    _require_role(
        claims,
        GRAPH_ORG_ROLES,
        "Authorization_RequestDenied",
        "Insufficient privileges to complete the operation.",
    )
    return json_response(
        {
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#organization",
            "value": [
                {
                    "id": tenant.id,
                    "displayName": tenant.name,
                    "tenantType": "AAD",
                    "countryLetterCode": "US",
                    "verifiedDomains": [
                        {
                            "capabilities": "Email, OfficeCommunicationsOnlineService",
                            "isDefault": True,
                            "isInitial": False,
                            "name": tenant.domain,
                            "type": "Managed",
                        },
                        {
                            "capabilities": "Email, OfficeCommunicationsOnlineService",
                            "isDefault": False,
                            "isInitial": True,
                            "name": tenant.initial_domain,
                            "type": "Managed",
                        },
                    ],
                }
            ],
        }
    )


def _defender(
    state: SandboxState, request: Request, path: str, claims: dict, tenant: Tenant
) -> Response:
    if request.method != "GET" or path.strip("/").lower() != "api/incidents":
        raise ProbeError(404, "NotFound", f"No HTTP resource was found that matches /{path}.")
    _require_role(
        claims,
        DEFENDER_INCIDENT_ROLES,
        "Forbidden",
        "The application does not have any of the required application permissions "
        "(Incident.ReadWrite.All, Incident.Read.All) to access the resource.",
    )
    return json_response(
        {
            "@odata.context": "https://api.security.microsoft.com/api/$metadata#Incidents",
            "value": [],
        }
    )


def _mde(
    state: SandboxState, request: Request, path: str, claims: dict, tenant: Tenant
) -> Response:
    if request.method != "GET" or path.strip("/").lower() != "api/indicators":
        raise ProbeError(404, "NotFound", f"No HTTP resource was found that matches /{path}.")
    _require_role(
        claims,
        MDE_INDICATOR_ROLES,
        "Forbidden",
        "The application does not have any of the required application permissions "
        "(Ti.ReadWrite, Ti.ReadWrite.All, Ti.Read.All) to access the resource.",
    )
    return json_response(
        {
            "@odata.context": "https://api.securitycenter.microsoft.com/api/$metadata#Indicators",
            "value": [],
        }
    )


def _rbac_roles(tenant: Tenant, client_id: str) -> dict[str, list[str]]:
    return {s.id: s.roles_for(client_id) for s in tenant.subscriptions if s.roles_for(client_id)}


def _arm(
    state: SandboxState, request: Request, path: str, claims: dict, tenant: Tenant
) -> Response:
    if request.method != "GET" or path.strip("/").lower() != "subscriptions":
        raise ProbeError(
            404, "InvalidResourceType", f"The resource type '{path}' could not be found."
        )
    if not request.args.get("api-version"):
        raise ProbeError(
            400,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        )
    with state.directory.lock:
        assigned = _rbac_roles(tenant, str(claims.get("appid", "")))
        subscriptions = [s for s in tenant.subscriptions if s.id in assigned]
        value = [
            {
                "id": f"/subscriptions/{s.id}",
                "authorizationSource": "RoleBased",
                "managedByTenants": [],
                "subscriptionId": s.id,
                "tenantId": tenant.id,
                "displayName": s.name,
                "state": "Enabled",
                "subscriptionPolicies": {
                    "locationPlacementId": "Public_2014-09-01",
                    "quotaId": "PayAsYouGo_2014-09-01",
                    "spendingLimit": "Off",
                },
            }
            for s in subscriptions
        ]
    return json_response({"value": value, "count": {"type": "Total", "value": len(value)}})


def _loganalytics(
    state: SandboxState, request: Request, path: str, claims: dict, tenant: Tenant
) -> Response:
    parts = path.strip("/").split("/")
    if (
        request.method != "POST"
        or len(parts) != 4
        or parts[0] != "dataCollectionRules"
        or parts[2] != "streams"
    ):
        raise ProbeError(404, "NotFound", "The requested resource was not found.")
    if not request.args.get("api-version"):
        raise ProbeError(400, "MissingApiVersion", "The api-version query parameter is required.")
    if request.content_length and request.content_length > MAX_INGESTION_BYTES:
        raise ProbeError(413, "ContentLengthLimitExceeded", "The request body exceeds 1 MB.")
    request.max_content_length = MAX_INGESTION_BYTES  # above the STS's 64 KiB default
    try:
        body = json.loads(request.get_data(cache=False) or b"null")
    except (ValueError, UnicodeDecodeError):
        body = None
    if not isinstance(body, list):
        raise ProbeError(400, "InvalidRequestBody", "The request body must be a JSON array.")
    with state.directory.lock:
        roles = _rbac_roles(tenant, str(claims.get("appid", "")))
    if not any(INGESTION_ROLE in r for r in roles.values()):
        raise ProbeError(
            403,
            "OperationFailed",
            "The authentication token provided does not have access to ingest data for the data "
            f"collection rule with immutable Id '{parts[1]}'.",
        )
    return Response(status=204)


_HANDLERS: dict[str, Callable[..., Response]] = {
    "graph": _graph,
    "defender": _defender,
    "mde": _mde,
    "arm": _arm,
    "loganalytics": _loganalytics,
}


def _error(state: SandboxState, request: Request, resource: Resource, exc: ProbeError) -> Response:
    headers = {}
    if exc.status == 401:
        headers["WWW-Authenticate"] = (
            f'Bearer realm="", authorization_uri="{state.authority}/common/oauth2/authorize", '
            f'client_id="{resource.app_ids[0] if resource.app_ids else resource.uri}", '
            f'error="invalid_token", error_description="{exc.message}"'
        )
    error: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if resource.key == "graph":
        error["innerError"] = {
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S"),
            "request-id": str(uuid.uuid4()),
            "client-request-id": request.headers.get("client-request-id", str(uuid.uuid4())),
        }
    return json_response({"error": error}, status=exc.status, headers=headers)


def _handler(key: str) -> Callable[..., Response]:
    resource = RESOURCES[key]

    def handle(state: SandboxState, request: Request, path: str = "") -> Response:
        try:
            claims, tenant = _authenticate(state, request, resource)
            return _HANDLERS[key](state, request, path, claims, tenant)
        except ProbeError as exc:
            return _error(state, request, resource, exc)

    return handle


def _token_tenant(state: SandboxState, request: Request, args: dict) -> str | None:
    token = _bearer(request)
    tid = unverified_claims(token).get("tid") if token else None
    return str(tid).lower() if tid else None


def _fault(key: str) -> Callable[..., Response]:
    resource = RESOURCES[key]

    def respond(
        state: SandboxState, request: Request, status: int, retry_after: int | None
    ) -> Response:
        code = {429: "TooManyRequests", 503: "ServiceUnavailable"}.get(
            status, "InternalServerError"
        )
        response = _error(
            state, request, resource, ProbeError(status, code, f"Injected fault: HTTP {status}.")
        )
        if retry_after is not None:
            response.headers["Retry-After"] = str(retry_after)
        return response

    return respond


def routes() -> list[Route]:
    out = []
    for key in RESOURCES:
        for rule in (f"/resources/{key}/<path:path>", f"/resources/{key}"):
            out.append(Route(rule, key, _handler(key), _token_tenant, _fault(key)))
    return out
