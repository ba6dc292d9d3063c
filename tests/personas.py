"""The staff personas and the small fleet the tests build (no JSON fixtures): plain
functions here, the fixtures that wrap them in tests/conftest.py."""

from __future__ import annotations

import time
import uuid

import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken

from accounts import roles, second_factor
from accounts.middleware import LAST_SEEN_AT, SIGNED_IN_AT
from accounts.models import StaffIdentity
from tenants.models import Tenant, Verification

PASSWORD = "correct horse battery staple 42"
ADMIN = "admin@fabrikam-mssp.example"
OPERATOR = "operator@fabrikam-mssp.example"
VISITOR = "visitor@fabrikam-mssp.example"


def make_staff(
    username: str, portal_roles: list[str], *, entra_groups: list[str] | None = None
) -> object:
    """A staff user as an Entra sign-in leaves it: linked identity with the app roles (and
    Entra group object ids) the id token carried, portal groups from the roles."""
    User = get_user_model()
    user = User.objects.create(username=username)
    user.set_unusable_password()
    user.save()
    StaffIdentity.objects.create(
        user=user,
        tenant_id=settings.ENTRA_HOME_TENANT_ID,
        object_id=uuid.uuid4(),
        roles=portal_roles,
        groups=entra_groups or [],
        roles_checked_at=timezone.now(),
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


def enrol_break_glass(user: object) -> object:
    """The second factor an administrator enrols (manage.py break_glass enrol)."""
    return second_factor.enrol(user, actor="test")


def break_glass_form(user: object, password: str = PASSWORD, **extra: str) -> dict[str, str]:
    """The break-glass form as its holder fills it in: name, password and a recovery code
    (a fresh one each time; the TOTP path has tests of its own)."""
    device = StaticDevice.objects.filter(user=user).first()
    code = "no-device"
    if device is not None:
        code = StaticToken.random_token()
        device.token_set.create(token=code)
    return {"username": user.get_username(), "password": password, "otp_token": code, **extra}


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


def sandbox_redirect(
    client: Client, upn: str, *, authorize_tenant: str | None = None, next_url: str | None = None
) -> str:
    """Start a sign-in in `client` ("Sign in with Microsoft"), pick `upn` on the sandbox's
    sign-in page as a person would, and return the callback path and query Entra sends the
    browser back to. `authorize_tenant` swaps the tenant in the authorize URL (e.g.
    "organizations", where users of every tenant are offered). `next_url` is the page the
    sign-in form carries on ("next")."""
    started = client.post(reverse("accounts:start"), {"next": next_url} if next_url else {})
    assert started.status_code == 302, started.status_code
    auth_uri = started["Location"]
    if authorize_tenant:
        auth_uri = auth_uri.replace(
            f"/{settings.ENTRA_HOME_TENANT_ID}/", f"/{authorize_tenant}/", 1
        )
    # The sign-in page is on the sandbox's https host, as Entra's is on its token host.
    ca = settings.ENTRA_CA_BUNDLE
    page = requests.get(auth_uri, timeout=10, verify=ca)
    assert page.status_code == 200 and upn in page.text, page.text[:500]
    answer = requests.post(
        auth_uri, data={"user": upn}, allow_redirects=False, timeout=10, verify=ca
    )
    assert answer.status_code == 302, answer.text[:500]
    location = answer.headers["Location"]
    callback = settings.PORTAL_BASE_URL + reverse("accounts:callback")
    assert location.startswith(callback + "?"), location
    return reverse("accounts:callback") + "?" + location.split("?", 1)[1]


def csrf_client(user: object) -> Client:
    """A signed-in client that enforces CSRF checks, as a browser session would."""
    client = signed_in_client(user)
    client.handler.enforce_csrf_checks = True
    return client


def csrf_token(client: Client, url: str) -> str:
    """The token a page the user opened carries (the form's hidden field)."""
    client.get(url)
    return client.cookies["csrftoken"].value


def open_verifications(tenant: Tenant) -> int:
    return tenant.verifications.filter(state__in=Verification.OPEN_STATES).count()
