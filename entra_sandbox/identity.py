"""The managed identity endpoint, in its two shapes on one plain-http listener:

* App Service / Functions: ``GET {IDENTITY_ENDPOINT}?api-version=2019-08-01&resource=…``
  with ``X-IDENTITY-HEADER``; answers ``expires_on`` (epoch seconds);
* IMDS: ``GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=…`` with
  ``Metadata: true``; answers string ``expires_in``.

Only user-assigned identities exist in the sandbox, so a request must select one.
"""

from __future__ import annotations

import hmac
import uuid

from werkzeug.wrappers import Request, Response

from .catalog import TOKEN_EXCHANGE_APP_ID, TOKEN_EXCHANGE_AUDIENCE, resource_for_identifier
from .directory import ManagedIdentity
from .errors import json_response
from .routing import Route
from .state import SandboxState


class _MIError(Exception):
    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error, self.message = status, error, message


def _select_identity(
    state: SandboxState, request: Request, resource_id_params: tuple[str, ...]
) -> ManagedIdentity:
    args = request.args
    client_id = args.get("client_id")
    object_id = args.get("object_id") or args.get("principal_id")
    resource_id = next((args[p] for p in resource_id_params if args.get(p)), None)
    if not (client_id or object_id or resource_id):
        raise _MIError(
            400,
            "invalid_request",
            "No system-assigned managed identity is enabled; select a user-assigned identity "
            "with client_id, object_id or a resource id.",
        )
    mi = state.directory.managed_identity(
        client_id=client_id, object_id=object_id, resource_id=resource_id
    )
    if mi is None:
        raise _MIError(400, "invalid_request", "Identity not found")
    return mi


def _check_resource(resource: str | None) -> str:
    if not resource:
        raise _MIError(400, "invalid_request", "Required audience parameter not specified")
    value = resource.strip()
    if value.rstrip("/").lower() in (TOKEN_EXCHANGE_AUDIENCE.lower(), TOKEN_EXCHANGE_APP_ID):
        return TOKEN_EXCHANGE_AUDIENCE
    if resource_for_identifier(value) is None:
        raise _MIError(
            400,
            "invalid_resource",
            f"AADSTS500011: The resource principal named {value} was not found in the tenant.",
        )
    return value


def _mint(state: SandboxState, mi: ManagedIdentity, resource: str) -> tuple[str, int, int]:
    lifetime = state.setting("mi_token_lifetime")
    token, exp = state.tokens.managed_identity_token(mi, resource, lifetime)
    return token, exp, lifetime


def app_service_token(state: SandboxState, request: Request) -> Response:
    try:
        header = request.headers.get("X-IDENTITY-HEADER", "")
        if not hmac.compare_digest(header.encode(), state.identity_header.encode()):
            raise _MIError(401, "unauthorized", "Invalid or missing X-IDENTITY-HEADER.")
        if request.args.get("api-version") != "2019-08-01":
            raise _MIError(400, "invalid_request", "Unsupported or missing api-version.")
        resource = _check_resource(request.args.get("resource"))
        mi = _select_identity(state, request, ("mi_res_id", "msi_res_id", "resource_id"))
    except _MIError as exc:
        return app_service_error(exc.status, exc.message)
    token, exp, _ = _mint(state, mi, resource)
    return json_response(
        {
            "access_token": token,
            "expires_on": str(exp),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": mi.client_id,
        }
    )


def app_service_error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return json_response(
        {"statusCode": status, "message": message, "correlationId": str(uuid.uuid4())},
        status=status,
        headers=headers,
    )


def imds_token(state: SandboxState, request: Request) -> Response:
    try:
        if request.headers.get("Metadata", "").lower() != "true":
            raise _MIError(400, "invalid_request", "Required metadata header not specified")
        if not request.args.get("api-version"):
            raise _MIError(
                400, "invalid_request", "Required query variable 'api-version' is missing"
            )
        resource = _check_resource(request.args.get("resource"))
        mi = _select_identity(state, request, ("msi_res_id", "mi_res_id", "resource_id"))
    except _MIError as exc:
        return imds_error(exc.status, exc.error, exc.message)
    token, exp, lifetime = _mint(state, mi, resource)
    # IMDS answers every field as a string.
    return json_response(
        {
            "access_token": token,
            "refresh_token": "",
            "expires_in": str(lifetime),
            "expires_on": str(exp),
            "ext_expires_in": str(lifetime),
            "not_before": str(exp - lifetime),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": mi.client_id,
        }
    )


def imds_error(
    status: int, error: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    return json_response(
        {"error": error, "error_description": message}, status=status, headers=headers
    )


def _mi_tenant(state: SandboxState, request: Request, args: dict) -> str | None:
    a = request.args
    mi = state.directory.managed_identity(
        client_id=a.get("client_id"),
        object_id=a.get("object_id"),
        resource_id=a.get("msi_res_id") or a.get("mi_res_id") or a.get("resource_id"),
    )
    return mi.tenant if mi else None


def _fault(state: SandboxState, request: Request, status: int, retry_after: int | None) -> Response:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    message = (
        "Too many requests" if status == 429 else "The managed identity endpoint is unavailable."
    )
    if request.path.startswith("/metadata/"):
        return imds_error(
            status, "service_unavailable" if status >= 500 else "throttled", message, headers
        )
    return app_service_error(status, message, headers)


def routes() -> list[Route]:
    return [
        Route("/msi/token", "mi", app_service_token, _mi_tenant, _fault),
        Route("/metadata/identity/oauth2/token", "mi", imds_token, _mi_tenant, _fault),
    ]
