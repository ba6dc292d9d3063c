"""Staff personas and a small fleet, built by fixtures (no JSON fixtures)."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from accounts import roles
from accounts.middleware import LAST_SEEN_AT, SIGNED_IN_AT
from accounts.models import StaffIdentity
from consent.models import Invitation
from tenants.models import Tenant, Verification
from tests.conftest import HOME_TENANT, NORTHWIND, TAILSPIN

PASSWORD = "correct horse battery staple 42"


def make_staff(username: str, portal_roles: list[str]) -> object:
    """A staff user as an Entra sign-in leaves it: linked identity, groups from roles."""
    User = get_user_model()
    user = User.objects.create(username=username)
    user.set_unusable_password()
    user.save()
    StaffIdentity.objects.create(
        user=user, tenant_id=HOME_TENANT, object_id=uuid.uuid4(), roles=portal_roles
    )
    roles.apply(user, portal_roles)
    return user


def signed_in_client(user: object) -> Client:
    client = Client()
    client.force_login(user, backend="accounts.backends.ThrottledModelBackend")
    session = client.session
    now = int(time.time())
    session[SIGNED_IN_AT] = now
    session[LAST_SEEN_AT] = now
    session.save()
    return client


@pytest.fixture
def admin_user(db) -> object:
    return make_staff("admin@fabrikam-mssp.example", [roles.ADMIN_ROLE])


@pytest.fixture
def operator_user(db) -> object:
    return make_staff("operator@fabrikam-mssp.example", [roles.OPERATOR_ROLE])


@pytest.fixture
def outsider_user(db) -> object:
    """Signed in once, but holds no portal role (e.g. visitor@…, or roles removed since)."""
    return make_staff("visitor@fabrikam-mssp.example", [])


@pytest.fixture
def superuser(db) -> object:
    return get_user_model().objects.create_superuser("breakglass", "", PASSWORD)


@pytest.fixture
def admin_client(admin_user) -> Client:
    return signed_in_client(admin_user)


@pytest.fixture
def operator_client(operator_user) -> Client:
    return signed_in_client(operator_user)


@pytest.fixture
def outsider_client(outsider_user) -> Client:
    return signed_in_client(outsider_user)


def make_tenant(tenant_id: str | uuid.UUID | None = None, **fields: object) -> Tenant:
    defaults = {
        "tenant_id": tenant_id or uuid.uuid4(),
        "display_name": "Contoso",
        "primary_domain": "contoso.example",
        "cloud": "sandbox",
        "access_profile": "defender-xdr-readonly",
    }
    defaults.update(fields)
    return Tenant.objects.create(**defaults)


@pytest.fixture
def northwind(db) -> Tenant:
    tenant = make_tenant(
        NORTHWIND,
        display_name="Northwind Traders",
        primary_domain="northwind.example",
        status=Tenant.Status.VERIFIED,
        last_checked_at=timezone.now(),
        last_verified_at=timezone.now(),
    )
    Verification.objects.create(
        tenant=tenant,
        trigger=Verification.Trigger.CONSENT,
        state=Verification.State.DONE,
        outcome=Verification.Outcome.VERIFIED,
        finished_at=timezone.now(),
        results={
            "graph": {
                "token": "ok",
                "tid_matches": True,
                "roles_seen": ["Organization.Read.All"],
                "roles_required": ["Organization.Read.All"],
                "roles_missing": [],
                "probe": {"status": 200, "ok": True, "detail": ""},
                "diagnosis": "",
            }
        },
    )
    return tenant


@pytest.fixture
def tailspin(db) -> Tenant:
    return make_tenant(
        TAILSPIN,
        display_name="Tailspin Toys",
        primary_domain="tailspin.example",
        status=Tenant.Status.INCOMPLETE,
        diagnosis="resource_not_provisioned",
    )


@pytest.fixture
def invitation(db, admin_user) -> Invitation:
    return Invitation.objects.create(
        customer_name="Northwind Traders",
        expected_tenant_id=NORTHWIND,
        access_profile="defender-xdr-readonly",
        expires_at=timezone.now() + timedelta(days=14),
        created_by=admin_user.get_username(),
    )


# --- Entra sign-in through the sandbox (test_signin.py, test_sessions.py) ---------------------


def sandbox_redirect(client: Client, upn: str, *, authorize_tenant: str | None = None) -> str:
    """Start a sign-in in `client` ("Sign in with Microsoft"), pick `upn` on the sandbox's
    sign-in page as a person would, and return the callback path and query Entra sends the
    browser back to. `authorize_tenant` swaps the tenant in the authorize URL (e.g.
    "organizations", where users of every tenant are offered)."""
    import requests
    from django.conf import settings as django_settings
    from django.urls import reverse

    started = client.post(reverse("accounts:start"))
    assert started.status_code == 302, started.status_code
    auth_uri = started["Location"]
    if authorize_tenant:
        auth_uri = auth_uri.replace(f"/{HOME_TENANT}/", f"/{authorize_tenant}/", 1)
    # The sign-in page is on the sandbox's https host, as Entra's is on its token host.
    ca = django_settings.ENTRA_CA_BUNDLE
    page = requests.get(auth_uri, timeout=10, verify=ca)
    assert page.status_code == 200 and upn in page.text, page.text[:500]
    answer = requests.post(
        auth_uri, data={"user": upn}, allow_redirects=False, timeout=10, verify=ca
    )
    assert answer.status_code == 302, answer.text[:500]
    location = answer.headers["Location"]
    callback = django_settings.PORTAL_BASE_URL + reverse("accounts:callback")
    assert location.startswith(callback + "?"), location
    return reverse("accounts:callback") + "?" + location.split("?", 1)[1]


@pytest.fixture
def entra(sandbox, settings) -> object:
    """The sandbox, with this portal's sign-in redirect URI registered on the portal app
    when PORTAL_BASE_URL is not the demo's."""
    from django.urls import reverse

    from tests.conftest import PORTAL_APP

    ours = settings.PORTAL_BASE_URL + reverse("accounts:callback")
    if ours != "http://localhost:8000/accounts/callback/":
        consent = settings.PORTAL_BASE_URL + reverse("consent:callback")
        sandbox.control.update_application(PORTAL_APP, redirect_uris=[consent, ours])
    return sandbox
