"""Clouds: where Entra and each probed resource API live, selected by one setting.

A cloud is an authority (token endpoint, https), a login host (the pages a browser opens:
admin consent, staff sign-in), the audience a federated identity credential trusts, and for each
resource its token audience and API base URL. Sovereign clouds differ only in these values
(reference: entra-protocol-facts.md §7); `sandbox` points every one of them at entra_sandbox
while keeping the real resource audiences, so scopes are the same strings as in production.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

RESOURCE_KEYS = ("graph", "defender", "mde", "arm", "loganalytics")


@dataclass(frozen=True)
class Resource:
    key: str
    title: str
    audience: str  # the resource's application ID URI; the token's `aud`
    base_url: str  # where its API is served
    app_id: str = ""  # its first-party application id, where Microsoft publishes one

    @property
    def scope(self) -> str:
        return f"{self.audience}/.default"


@dataclass(frozen=True)
class Cloud:
    name: str
    authority: str  # https://login.microsoftonline.com
    login_url: str  # the host browsers are sent to: the authority (sandbox: unless --login-port)
    fic_audience: str
    resources: Mapping[str, Resource] = field(default_factory=dict)
    # msal validates unknown authority hosts against login.microsoftonline.com; the sandbox's
    # host is unknown to it and that check would need Microsoft's network.
    instance_discovery: bool = True

    def resource_by_app_id(self, app_id: str) -> Resource | None:
        wanted = app_id.lower()
        return next((r for r in self.resources.values() if r.app_id and r.app_id == wanted), None)

    def issuer(self, tenant_id: str) -> str:
        """The `iss` of this cloud's v2.0 tokens for a tenant (a FIC's issuer)."""
        return f"{self.authority}/{tenant_id}/v2.0"


TITLES = {
    "graph": "Microsoft Graph",
    "defender": "Microsoft Defender XDR",
    "mde": "Microsoft Defender for Endpoint",
    "arm": "Azure Resource Manager",
    "loganalytics": "Azure Monitor Logs Ingestion",
}

# The first-party application ids of the resources (the same in every cloud). Entra names a
# resource by this id when it refuses a consent for it (AADSTS650052). Logs Ingestion has no
# published one.
APP_IDS = {
    "graph": "00000003-0000-0000-c000-000000000000",
    "defender": "8ee8fdad-f234-4243-8f3b-15c294843740",
    "mde": "fc780465-2017-40d4-a0c5-307022471b92",
    "arm": "797f4846-ba00-4fd7-ba43-dac1f8f63013",
}

# key -> (audience, base URL). A resource missing from a cloud is not offered there.
_PUBLIC = {
    "graph": ("https://graph.microsoft.com", "https://graph.microsoft.com"),
    "defender": ("https://api.security.microsoft.com", "https://api.security.microsoft.com"),
    "mde": (
        "https://api.securitycenter.microsoft.com",
        "https://api.securitycenter.microsoft.com",
    ),
    "arm": ("https://management.azure.com", "https://management.azure.com"),
    # Logs ingestion goes to each customer's own data collection endpoint; the probe reads
    # that endpoint from the tenant's probe settings and only falls back to this base.
    "loganalytics": ("https://monitor.azure.com", "https://monitor.azure.com"),
}
_USGOV = {
    "graph": ("https://graph.microsoft.us", "https://graph.microsoft.us"),
    "defender": ("https://api-gov.security.microsoft.us", "https://api-gov.security.microsoft.us"),
    "mde": (
        "https://api-gov.securitycenter.microsoft.us",
        "https://api-gov.securitycenter.microsoft.us",
    ),
    "arm": ("https://management.usgovcloudapi.net", "https://management.usgovcloudapi.net"),
    "loganalytics": ("https://monitor.azure.us", "https://monitor.azure.us"),
}
_CHINA = {
    "graph": ("https://microsoftgraph.chinacloudapi.cn", "https://microsoftgraph.chinacloudapi.cn"),
    "arm": ("https://management.chinacloudapi.cn", "https://management.chinacloudapi.cn"),
    "loganalytics": ("https://monitor.azure.cn", "https://monitor.azure.cn"),
}
_AUTHORITIES = {
    "public": ("https://login.microsoftonline.com", "api://AzureADTokenExchange", _PUBLIC),
    "usgov": ("https://login.microsoftonline.us", "api://AzureADTokenExchangeUSGov", _USGOV),
    "china": (
        "https://login.partner.microsoftonline.cn",
        "api://AzureADTokenExchangeChina",
        _CHINA,
    ),
}
CLOUD_NAMES = (*_AUTHORITIES, "sandbox")


def _resources(table: Mapping[str, tuple[str, str]]) -> dict[str, Resource]:
    return {
        key: Resource(
            key=key,
            title=TITLES[key],
            audience=audience,
            base_url=base,
            app_id=APP_IDS.get(key, ""),
        )
        for key, (audience, base) in table.items()
    }


def build(name: str, sandbox: Mapping[str, str] | None = None) -> Cloud:
    """The cloud called `name`; `sandbox` holds the sandbox's URLs (settings.SANDBOX)."""
    if name == "sandbox":
        sandbox = sandbox or {}
        authority = sandbox.get("authority", "").rstrip("/")
        return Cloud(
            name="sandbox",
            authority=authority,
            login_url=(sandbox.get("login") or authority).rstrip("/"),
            fic_audience="api://AzureADTokenExchange",
            resources=_resources(
                {
                    key: (audience, sandbox.get(key, "").rstrip("/"))
                    for key, (audience, _base) in _PUBLIC.items()
                }
            ),
            instance_discovery=False,
        )
    if name not in _AUTHORITIES:
        raise ValueError(f"unknown cloud {name!r}; choose one of {', '.join(CLOUD_NAMES)}")
    authority, fic_audience, table = _AUTHORITIES[name]
    return Cloud(
        name=name,
        authority=authority,
        login_url=authority,
        fic_audience=fic_audience,
        resources=_resources(table),
    )


def current() -> Cloud:
    """The cloud the portal is configured for (settings.ENTRA_CLOUD)."""
    from django.conf import settings

    return build(settings.ENTRA_CLOUD, settings.SANDBOX)
