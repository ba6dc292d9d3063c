"""Entra's error bodies (AADSTS codes) and the JSON responses carrying them."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

from werkzeug.wrappers import Response

# Codes for which the error lookup page has an entry; Entra adds `error_uri` for those.
ERROR_URI = "https://login.microsoftonline.com/error?code={code}"


class EntraError(Exception):
    """An STS error: OAuth `error`, AADSTS `code`, a description, the HTTP status."""

    def __init__(
        self,
        code: int,
        error: str,
        description: str,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"AADSTS{code}: {description}")
        self.code = code
        self.error = error
        self.description = description
        # Entra answers client authentication failures with 401, everything else with 400.
        self.status = status or (401 if error == "invalid_client" else 400)
        self.headers = headers or {}

    def body(self, now: int, correlation_id: str | None = None) -> dict[str, Any]:
        timestamp = dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        trace_id = str(uuid.uuid4())
        correlation_id = correlation_id or str(uuid.uuid4())
        return {
            "error": self.error,
            "error_description": (
                f"AADSTS{self.code}: {self.description}\r\nTrace ID: {trace_id}\r\n"
                f"Correlation ID: {correlation_id}\r\nTimestamp: {timestamp}"
            ),
            "error_codes": [self.code],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": ERROR_URI.format(code=self.code),
        }

    def response(self, now: int, correlation_id: str | None = None) -> Response:
        return json_response(
            self.body(now, correlation_id), status=self.status, headers=self.headers
        )


class ProbeError(Exception):
    """An error of a resource API (Graph, Defender, …), in that API's own shape."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    response = Response(
        json.dumps(data), status=status, mimetype="application/json", headers=headers
    )
    # Entra sends these on every token/discovery response; clients must not cache them.
    response.headers.setdefault("Cache-Control", "no-store, no-cache")
    response.headers.setdefault("Pragma", "no-cache")
    return response


# -- the catalogue ---------------------------------------------------------------------
# Texts follow Entra's wording where known; see README "Modelling choices" for the
# statuses and codes that are unconfirmed.


def missing_parameter(name: str) -> EntraError:
    return EntraError(
        900144,
        "invalid_request",
        f"The request body must contain the following parameter: '{name}'.",
    )


def malformed_request() -> EntraError:
    return EntraError(
        9002313, "invalid_request", "Invalid request. Request is malformed or invalid."
    )


def post_only(method: str) -> EntraError:
    return EntraError(
        900561,
        "invalid_request",
        f"The endpoint only accepts POST, OPTIONS requests. Received a {method} request.",
    )


def invalid_tenant(tenant: str) -> EntraError:
    return EntraError(
        90002,
        "invalid_tenant",
        f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are "
        "signing into the correct cloud. Check with your subscription administrator, this may "
        "happen if there are no active subscriptions for the tenant.",
    )


def malformed_tenant(tenant: str) -> EntraError:
    return EntraError(
        900023,
        "invalid_request",
        f"Specified tenant identifier '{tenant}' is neither a valid DNS name, nor a valid "
        "external domain.",
    )


def no_tenant_information() -> EntraError:
    return EntraError(
        50059,
        "invalid_request",
        "No tenant-identifying information found in either the request or implied by any "
        "provided credentials.",
    )


def unsupported_grant_type(grant_type: str) -> EntraError:
    return EntraError(
        70003,
        "unsupported_grant_type",
        f"The app requested an unsupported grant type '{grant_type}'.",
    )


def missing_client_credential() -> EntraError:
    return EntraError(
        7000218,
        "invalid_client",
        "The request body must contain the following parameter: 'client_assertion' or "
        "'client_secret'.",
    )


def client_secret_not_supported(client_id: str) -> EntraError:
    return EntraError(
        7000215,
        "invalid_client",
        "Invalid client secret provided. Ensure the secret being sent in the request is the "
        f"client secret value, not the client secret ID, for a secret added to app '{client_id}'.",
    )


def unexpected_assertion_type() -> EntraError:
    return EntraError(90011, "invalid_request", "Unexpected client assertion type.")


def malformed_assertion() -> EntraError:
    return EntraError(50027, "invalid_request", "JWT token is invalid or malformed.")


def application_not_found(client_id: str, directory_name: str) -> EntraError:
    return EntraError(
        700016,
        "unauthorized_client",
        f"Application with identifier '{client_id}' was not found in the directory "
        f"'{directory_name}'. This can happen if the application has not been installed by the "
        "administrator of the tenant or consented to by any user in the tenant. You may have "
        "sent your authentication request to the wrong tenant.",
    )


def assertion_signature_invalid() -> EntraError:
    return EntraError(700027, "invalid_client", "Client assertion failed signature validation.")


def assertion_time_range(now: str, nbf: str, exp: str) -> EntraError:
    return EntraError(
        700024,
        "invalid_client",
        f"Client assertion is not within its valid time range. Current time: {now}, assertion "
        f"valid from {nbf}, expiry time of assertion {exp}. Review the documentation at "
        "https://learn.microsoft.com/entra/identity-platform/certificate-credentials .",
    )


def cross_tenant_assertion(issuer: str) -> EntraError:
    return EntraError(
        700236,
        "invalid_client",
        f"Entra ID tokens issued by issuer '{issuer}' may not be used for federated identity "
        "credential flows for applications or managed identities registered in this tenant.",
    )


def no_federated_credentials() -> EntraError:
    return EntraError(
        70025, "invalid_client", "The client has no configured federated identity credentials."
    )


_FIC_HELP = (
    "Please check your federated identity credential Subject, Audience and Issuer against the "
    "presented assertion. https://learn.microsoft.com/entra/workload-id/workload-identity-federation"
)


def fic_issuer_mismatch(issuer: str) -> EntraError:
    return EntraError(
        700211,
        "invalid_client",
        f"No matching federated identity record found for presented assertion issuer "
        f"'{issuer}'. {_FIC_HELP}",
    )


def fic_audience_mismatch(audience: str) -> EntraError:
    return EntraError(
        700212,
        "invalid_client",
        f"No matching federated identity record found for presented assertion audience "
        f"'{audience}'. {_FIC_HELP}",
    )


def fic_subject_mismatch(subject: str) -> EntraError:
    return EntraError(
        700213,
        "invalid_client",
        f"No matching federated identity record found for presented assertion subject "
        f"'{subject}'. {_FIC_HELP}",
    )


def fic_no_match(issuer: str, subject: str, audience: str) -> EntraError:
    return EntraError(
        70021,
        "invalid_request",
        "No matching federated identity record found for presented assertion. Assertion "
        f"Issuer: '{issuer}'. Assertion Subject: '{subject}'. Assertion Audience: '{audience}'. "
        "https://learn.microsoft.com/entra/workload-id/workload-identity-federation",
    )


def application_disabled(client_id: str, name: str) -> EntraError:
    return EntraError(
        7000112, "unauthorized_client", f"Application '{client_id}'({name}) is disabled."
    )


def invalid_scope(scope: str) -> EntraError:
    return EntraError(
        70011,
        "invalid_scope",
        f"The provided request must include a 'scope' input parameter. The provided value for "
        f"the input parameter 'scope' is not valid. The scope {scope} is not valid.",
    )


def resource_not_found(resource: str, tenant: str) -> EntraError:
    return EntraError(
        500011,
        "invalid_resource",
        f"The resource principal named {resource} was not found in the tenant named {tenant}. "
        "This can happen if the application has not been installed by the administrator of the "
        "tenant or consented to by any user in the tenant. You might have sent your "
        "authentication request to the wrong tenant.",
    )


def service_principal_missing(resource: str, name: str, tenant: str) -> EntraError:
    # The wording Entra's redirects carry today; older ones said "…needs access to a
    # service ("{name}") that your organization "{tenant}" has not subscribed to or
    # enabled…". See README "Modelling choices".
    return EntraError(
        650052,
        "invalid_client",
        f"The app is trying to access a service '{resource}'({name}) that your organization "
        f"'{tenant}' lacks a service principal for. Contact your IT Admin to review the "
        "configuration of your service subscriptions or consent to the application in order "
        "to create the required service principal.",
    )


def invalid_grant_code(detail: str) -> EntraError:
    return EntraError(70000, "invalid_grant", detail)


def code_redeemed() -> EntraError:
    return EntraError(
        54005,
        "invalid_grant",
        "OAuth2 Authorization code was already redeemed, please retry with a new valid code or "
        "use an existing refresh token.",
    )


def code_expired() -> EntraError:
    return EntraError(
        70008,
        "invalid_grant",
        "The provided authorization code or refresh token has expired due to inactivity. Send a "
        "new interactive authorization request for this user and resource.",
    )


def pkce_mismatch() -> EntraError:
    return EntraError(
        501481,
        "invalid_grant",
        "The Code_Verifier does not match the code_challenge supplied in the authorization "
        "request.",
    )


def refresh_token_malformed() -> EntraError:
    # What Entra answers for a refresh token it cannot read (not one it issued).
    return EntraError(9002313, "invalid_grant", "Invalid request. Request is malformed or invalid.")


def refresh_token_expired(issued: str, inactive_days: int) -> EntraError:
    return EntraError(
        700082,
        "invalid_grant",
        f"The refresh token has expired due to inactivity. The token was issued on {issued} "
        f"and was inactive for {inactive_days}.00:00:00.",
    )


def refresh_token_revoked(issued: str, valid_from: str) -> EntraError:
    return EntraError(
        50173,
        "invalid_grant",
        "The provided grant has expired due to it being revoked, a fresh auth token is needed. "
        "The user might have changed or reset their password. The grant was issued on "
        f"'{issued}' and the TokensValidFrom date (before which tokens are not valid) for this "
        f"user is '{valid_from}'.",
    )


def user_disabled() -> EntraError:
    return EntraError(50057, "invalid_grant", "The user account is disabled.")


def user_not_found(tenant: str) -> EntraError:
    return EntraError(
        50034,
        "invalid_grant",
        f"The user account {{EUII Hidden}} does not exist in the {tenant} directory. To sign "
        "into this application, the account must be added to the directory.",
    )


def throttled(retry_after: int | None) -> EntraError:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return EntraError(
        90055,
        "temporarily_unavailable",
        "There are too many incoming requests. Please try again later.",
        status=429,
        headers=headers,
    )


def transient(status: int, retry_after: int | None) -> EntraError:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return EntraError(
        90033,
        "temporarily_unavailable" if status == 503 else "server_error",
        "A transient error has occurred. Please try again.",
        status=status,
        headers=headers,
    )
