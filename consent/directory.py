"""Looking a customer's domain up in Entra: domain → tenant id, by OIDC discovery.

An invitation is bound to a tenant GUID. When an admin knows only the customer's domain,
Entra's discovery document for that domain names the tenant in its `issuer`.
"""

from __future__ import annotations

import re
import uuid
from urllib.parse import urlsplit

import requests
from django.conf import settings

from mssp_portal import clouds, identity
from mssp_portal.untrusted import for_log

# A DNS name as customers type it (lower-cased first): labels of letters, digits and hyphens.
DOMAIN_PATTERN = re.compile(r"\A(?=.{1,253}\Z)(?:(?!-)[a-z0-9-]{1,63}(?<!-)\.)+[a-z]{2,63}\Z")


class TenantLookupError(Exception):
    """The domain does not lead to a tenant; the message says why, for the admin."""


def tenant_id_for_domain(domain: str) -> uuid.UUID:
    """The tenant id of the Entra tenant that has verified `domain`.

    Raises TenantLookupError when the domain is malformed, no tenant has it, or Entra cannot
    be asked right now.
    """
    domain = domain.strip().lower()
    if not DOMAIN_PATTERN.match(domain):
        raise TenantLookupError(f"'{for_log(domain, 80)}' is not a domain name.")
    cloud = clouds.current()
    url = f"{cloud.authority}/{domain}/v2.0/.well-known/openid-configuration"
    try:
        # The shared pool: CAs loaded once and connections kept, which is what lets an
        # import of thousands of domains look them up in seconds.
        response = identity.pooled_session().get(
            url, timeout=settings.VERIFY_HTTP_TIMEOUT, allow_redirects=False
        )
    except requests.RequestException as exc:
        raise TenantLookupError(
            f"Could not reach Microsoft Entra to look up {domain} ({type(exc).__name__}). "
            "Try again, or give the tenant ID instead."
        ) from exc
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    if response.status_code == 400 and body.get("error") in {"invalid_tenant", "invalid_request"}:
        raise TenantLookupError(
            f"No Microsoft Entra tenant has verified the domain {domain} "
            f"(cloud: {cloud.name}). Check the spelling, or give the tenant ID instead."
        )
    if response.status_code != 200:
        raise TenantLookupError(
            f"Microsoft Entra answered HTTP {response.status_code} when looking up {domain}. "
            "Try again, or give the tenant ID instead."
        )
    tenant_id = _tenant_of_issuer(str(body.get("issuer", "")))
    if tenant_id is None or body.get("issuer") != cloud.issuer(str(tenant_id)):
        raise TenantLookupError(
            f"Microsoft Entra's discovery document for {domain} does not name a tenant."
        )
    return tenant_id


def _tenant_of_issuer(issuer: str) -> uuid.UUID | None:
    # https://login.microsoftonline.com/{tenant id}/v2.0
    segments = urlsplit(issuer).path.strip("/").split("/")
    try:
        return uuid.UUID(segments[0])
    except ValueError:
        return None
