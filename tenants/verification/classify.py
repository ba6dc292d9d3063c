"""From what Entra or a service answered to a diagnosis key and an outcome.

Entra's answer is classified on the OAuth `error`, the HTTP status and the AADSTS code
(`error_codes`), never on `error_description`: that text is free-form, localised, can change,
and names customer-controlled things (the directory's name). The code is a hint Microsoft
says may change, so an unknown code falls back on the `error` family and the status.
"""

from __future__ import annotations

from tenants.models import Verification
from tenants.verification import diagnosis

Outcome = Verification.Outcome

# Unknown AADSTS codes: what their OAuth `error` says about whose side is wrong.
_ERROR_FAMILIES = {
    "invalid_tenant": Outcome.NO_ACCESS,
    "unauthorized_client": Outcome.NO_ACCESS,
    "invalid_resource": Outcome.INCOMPLETE,
    # Client authentication is the MSSP's own app and identity.
    "invalid_client": Outcome.PLATFORM_ERROR,
    "temporarily_unavailable": Outcome.TRANSIENT,
    "server_error": Outcome.TRANSIENT,
}

# Resources authorised by Azure role assignments rather than app roles in the token.
RBAC_RESOURCES = frozenset({"arm", "loganalytics"})


def is_retryable_status(status: int | None) -> bool:
    return status is not None and (status == 429 or status == 408 or status >= 500)


def token_error(error: str, status: int | None, code: int | None) -> tuple[str, str]:
    """(diagnosis key, outcome) for a failed token request."""
    if status == 429:
        return "throttled", Outcome.TRANSIENT
    if status is not None and status >= 500:
        key = diagnosis.BY_CODE.get(code or 0)
        if key == "throttled":
            return key, Outcome.TRANSIENT
        return "entra_unavailable", Outcome.TRANSIENT
    key = diagnosis.BY_CODE.get(code or 0)
    if key is not None:
        return key, diagnosis.get(key).outcome
    family = _ERROR_FAMILIES.get(error)
    if family == Outcome.TRANSIENT:
        return "entra_unavailable", family
    return "unclassified", family or Outcome.INCOMPLETE


def probe_error(resource: str, status: int, roles_missing: bool) -> tuple[str, str]:
    """(diagnosis key, outcome) for a probe call that did not succeed."""
    if status == 429:
        return "probe_throttled", Outcome.TRANSIENT
    if status >= 500 or status == 408:
        return "probe_unavailable", Outcome.TRANSIENT
    if status == 403:
        if resource in RBAC_RESOURCES:
            return "rbac_role_missing", Outcome.INCOMPLETE
        if roles_missing:
            return "role_missing", Outcome.INCOMPLETE
        return "probe_forbidden", Outcome.INCOMPLETE
    if status == 401:
        return "probe_unauthorized", Outcome.INCOMPLETE
    return "probe_failed", Outcome.INCOMPLETE


def is_definitive_stop(outcome: str) -> bool:
    """Outcomes that end a tenant's check at the first resource: a fault that applies to
    the whole tenant (no access), to the whole platform, or a tenant that keeps failing."""
    return outcome in (Outcome.NO_ACCESS, Outcome.PLATFORM_ERROR, Outcome.TRANSIENT)
