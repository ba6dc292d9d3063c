"""One cheap call per resource with the tenant's app-only token: the call that decides.

Graph organization (which also names the tenant), Defender XDR incidents, Defender for
Endpoint indicators, ARM subscriptions, and a Logs Ingestion POST of an empty batch to the
customer's data collection rule (writes nothing). Redirects are never followed: the bearer
token goes to the resource's own URL and nowhere else. What a service answers is outside
text: only its HTTP status, a short error code and the organisation's name and domain are
kept, the last two as data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from django.conf import settings
from django.views.decorators.debug import sensitive_variables

from mssp_portal import clouds
from tenants.models import Tenant
from tenants.verification import classify
from tenants.verification.retry import retry_after_seconds

ARM_API_VERSION = "2022-12-01"
INGESTION_API_VERSION = "2023-01-01"
# The sandbox's stand-in for a customer's data collection rule and stream.
SANDBOX_DCR = "dcr-00000000000000000000000000000000"
SANDBOX_STREAM = "Custom-MSSPPortalProbe_CL"
# Data collection endpoints per cloud: the token goes to no other host.
INGESTION_HOST_SUFFIX = {
    "public": ".ingest.monitor.azure.com",
    "usgov": ".ingest.monitor.azure.us",
    "china": ".ingest.monitor.azure.cn",
}
_DCR = re.compile(r"^dcr-[0-9a-f]{32}$")
_STREAM = re.compile(r"^(Custom|Microsoft)-[A-Za-z0-9_]{1,100}$")
_ERROR_CODE = re.compile(r"[^A-Za-z0-9_.\-]")


@dataclass
class ProbeAnswer:
    status: int | None
    ok: bool
    detail: str
    retry_after: float | None = None
    network_error: bool = False
    # Graph only: the organisation's name and default domain (customer-controlled text).
    organization: dict[str, str] = field(default_factory=dict)
    # ARM only: the call worked but no subscription is visible to the app.
    empty: bool = False

    @property
    def retryable(self) -> bool:
        return self.network_error or classify.is_retryable_status(self.status)

    def as_result(self) -> dict[str, Any]:
        return {"status": self.status, "ok": self.ok, "detail": self.detail}


class NotConfigured(Exception):
    """The tenant's probe settings do not say where to probe (Logs Ingestion)."""


def loganalytics_url(tenant: Tenant, cloud: clouds.Cloud) -> str:
    """The Logs Ingestion URL of the tenant's data collection rule stream; raises
    NotConfigured when the settings are missing or point anywhere unexpected."""
    raw = (tenant.probe_settings or {}).get("loganalytics")
    config = raw if isinstance(raw, dict) else {}
    base = cloud.resources["loganalytics"].base_url
    if cloud.name == "sandbox":
        config = {"endpoint": base, "dcr": SANDBOX_DCR, "stream": SANDBOX_STREAM, **config}
    endpoint = str(config.get("endpoint") or "").rstrip("/")
    dcr = str(config.get("dcr") or config.get("dcr_immutable_id") or "")
    stream = str(config.get("stream") or "")
    if not (endpoint and dcr and stream):
        raise NotConfigured("endpoint, dcr and stream are required")
    parts = urlsplit(endpoint)
    if parts.scheme != "https" or parts.username or parts.password or parts.query:
        raise NotConfigured("the endpoint must be a plain https URL")
    if cloud.name == "sandbox":
        if not endpoint.startswith(base):
            raise NotConfigured("the endpoint must be the sandbox's")
    elif not (parts.hostname or "").endswith(INGESTION_HOST_SUFFIX.get(cloud.name, "\0")):
        raise NotConfigured("the endpoint must be a data collection endpoint of this cloud")
    if not _DCR.match(dcr) or not _STREAM.match(stream):
        raise NotConfigured("the rule id or stream name is malformed")
    return (
        f"{endpoint}/dataCollectionRules/{quote(dcr)}/streams/{quote(stream)}"
        f"?api-version={INGESTION_API_VERSION}"
    )


# Every variable, here and in requests' frames below: the bearer token and its header.
@sensitive_variables()
def probe(
    resource: str, token: str, tenant: Tenant, cloud: clouds.Cloud, session: requests.Session
) -> ProbeAnswer:
    """One probe call. Raises NotConfigured (Logs Ingestion without settings)."""
    base = cloud.resources[resource].base_url
    method, body = "GET", None
    if resource == "graph":
        url = f"{base}/v1.0/organization?$select=id,displayName,verifiedDomains"
    elif resource == "defender":
        url = f"{base}/api/incidents?$top=1"
    elif resource == "mde":
        url = f"{base}/api/indicators?$top=1"
    elif resource == "arm":
        url = f"{base}/subscriptions?api-version={ARM_API_VERSION}"
    elif resource == "loganalytics":
        url, method, body = loganalytics_url(tenant, cloud), "POST", "[]"
    else:
        raise ValueError(f"no probe for resource {resource!r}")
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    try:
        response = session.request(
            method,
            url,
            headers=headers,
            data=body,
            timeout=settings.VERIFY_HTTP_TIMEOUT,
            allow_redirects=False,
        )
    except requests.Timeout:
        return ProbeAnswer(None, False, "timed out", network_error=True)
    except requests.RequestException:
        return ProbeAnswer(None, False, "connection failed", network_error=True)
    return _read(resource, response)


def _read(resource: str, response: requests.Response) -> ProbeAnswer:
    status = response.status_code
    if not 200 <= status < 300:
        return ProbeAnswer(
            status,
            False,
            f"HTTP {status} {_error_code(response)}".strip(),
            retry_after=retry_after_seconds(response.headers.get("Retry-After")),
        )
    if resource == "graph":
        organization = _organization(_json(response))
        return ProbeAnswer(status, True, f"HTTP {status}", organization=organization)
    if resource == "arm":
        value = _json(response).get("value")
        count = len(value) if isinstance(value, list) else 0
        if count == 0:
            return ProbeAnswer(status, False, f"HTTP {status}, no subscription", empty=True)
        return ProbeAnswer(status, True, f"HTTP {status}, {count} subscription(s)")
    return ProbeAnswer(status, True, f"HTTP {status}")


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _error_code(response: requests.Response) -> str:
    error = _json(response).get("error")
    code = error.get("code") if isinstance(error, dict) else None
    return _ERROR_CODE.sub("", code)[:64] if isinstance(code, str) else ""


def _organization(data: dict[str, Any]) -> dict[str, str]:
    value = data.get("value")
    if not isinstance(value, list) or not value or not isinstance(value[0], dict):
        return {}
    org = value[0]
    out: dict[str, str] = {}
    if isinstance(org.get("displayName"), str):
        out["display_name"] = org["displayName"][:256]
    domains = [d for d in org.get("verifiedDomains") or [] if isinstance(d, dict)]
    default = next((d for d in domains if d.get("isDefault") is True), None)
    default = default or next(iter(domains), None)
    if default and isinstance(default.get("name"), str):
        out["primary_domain"] = default["name"][:253]
    return out
