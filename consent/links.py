"""The two links of the consent flow: the invitation page the MSSP sends to a customer, and
Entra's admin-consent URL the "Grant admin consent" button leads to.

Both are built from configuration (PORTAL_BASE_URL, the cloud, the app's client id), never
from the request's Host header: a forged Host must not end up in a link or a redirect URI.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from django.conf import settings
from django.urls import reverse

from mssp_portal import clouds

if TYPE_CHECKING:
    from consent.models import Invitation


def portal_url(path: str) -> str:
    """An absolute URL on the portal's public origin."""
    return settings.PORTAL_BASE_URL + path


def callback_url() -> str:
    """The redirect URI registered on the app in Entra; it must match exactly."""
    return portal_url(reverse("consent:callback"))


def invitation_url(invitation: Invitation) -> str:
    return portal_url(reverse("consent:invitation", args=[invitation.code]))


def admin_consent_url(expected_tenant_id: uuid.UUID | None, state: str) -> str:
    """Entra's v2.0 admin-consent endpoint for the portal's app.

    The path names the expected tenant, so an administrator signed in elsewhere is sent to
    the right directory; only an invitation without an expected tenant uses `organizations`
    (`common` is not accepted by this endpoint). The scope is Graph's `.default`: admin
    consent grants everything the app registration requests, whatever the scope names.
    """
    cloud = clouds.current()
    tenant = str(expected_tenant_id) if expected_tenant_id else "organizations"
    query = urlencode(
        {
            "client_id": settings.ENTRA_APP_CLIENT_ID,
            "scope": cloud.resources["graph"].scope,
            "redirect_uri": callback_url(),
            "state": state,
        }
    )
    return f"{cloud.login_url}/{tenant}/v2.0/adminconsent?{query}"
