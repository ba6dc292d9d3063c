"""What `check --deploy` says, asserted on responses: the Entra sign-in's `next` stays on
site, sign-out needs POST and the CSRF token, and under production settings (an https
origin) the cookies are `__Host-`, Secure, HttpOnly (session) and SameSite, and HSTS and
nosniff are on every answer, 404 and 500 included."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest
from django.contrib.auth import SESSION_KEY
from django.contrib.auth.signals import user_logged_in
from django.test import Client
from django.urls import reverse

from tests.personas import (
    ADMIN,
    break_glass_form,
    csrf_client,
    csrf_token,
    sandbox_redirect,
)

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.filterwarnings("ignore:response_mode=.form_post. is recommended"),
]

SETTINGS_FILE = Path(__file__).resolve().parents[2] / "mssp_portal/settings.py"
HOST = "portal.example.com"
BREAK_GLASS = "/accounts/break-glass/"


# --- The Entra sign-in's `next` ----------------------------------------------------------------


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example/", "/\\evil.example/", "http:evil.example"]
)
def test_it_does_not_redirect_off_site_after_an_entra_sign_in(entra, target):
    client = Client()
    response = client.get(sandbox_redirect(client, ADMIN, next_url=target))
    assert response.status_code == 302
    assert response["Location"] == reverse("console:dashboard")
    assert client.session.get(SESSION_KEY)


def test_it_follows_a_next_on_site_after_an_entra_sign_in(entra):
    client = Client()
    response = client.get(sandbox_redirect(client, ADMIN, next_url="/invitations/"))
    assert response.status_code == 302
    assert response["Location"] == "/invitations/"


def test_the_sign_in_page_does_not_carry_an_off_site_next(client):
    body = client.get(reverse("accounts:login"), {"next": "https://evil.example/"}).content
    assert b"evil.example" not in body


# --- Sign-out needs POST and the CSRF token ---------------------------------------------------


def test_it_refuses_a_sign_out_without_the_csrf_token(operator_user):
    client = csrf_client(operator_user)
    response = client.post(reverse("accounts:logout"))
    assert response.status_code == 403
    assert client.get("/").status_code == 200  # still signed in


def test_it_signs_out_with_the_csrf_token(operator_user):
    client = csrf_client(operator_user)
    token = csrf_token(client, "/")
    response = client.post(reverse("accounts:logout"), {"csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert client.get("/").status_code == 302  # to the sign-in page


# --- Production settings: cookies and headers ------------------------------------------------


@pytest.fixture
def production(settings, monkeypatch):
    """The security settings the settings module derives for an https deployment (what
    scripts/check-deploy.sh checks), applied to this test."""
    monkeypatch.setenv("PORTAL_BASE_URL", f"https://{HOST}")
    monkeypatch.setenv("ALLOWED_HOSTS", HOST)
    monkeypatch.setenv("DEBUG", "False")
    derived = runpy.run_path(str(SETTINGS_FILE))
    assert derived["PORTAL_HTTPS"] is True
    for name, value in derived.items():
        if name.startswith(("SECURE_", "SESSION_COOKIE_", "CSRF_COOKIE_")) or name in (
            "ALLOWED_HOSTS",
            "CSRF_TRUSTED_ORIGINS",
            "PORTAL_BASE_URL",
        ):
            setattr(settings, name, value)
    return Client(HTTP_HOST=HOST)


def _assert_secure_headers(response) -> None:
    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]


def _assert_host_cookie(cookie, *, http_only: bool) -> None:
    assert cookie.key.startswith("__Host-")
    assert cookie["secure"] is True
    assert cookie["samesite"] == "Lax"
    assert cookie["path"] == "/"
    assert cookie["domain"] == ""  # __Host-: no Domain attribute
    assert bool(cookie["httponly"]) is http_only


def test_it_sends_plain_http_to_https(production):
    response = production.get("/accounts/login/")
    assert response.status_code == 301
    assert response["Location"] == f"https://{HOST}/accounts/login/"


def test_it_sets_host_only_secure_cookies(production, superuser):
    page = production.get(BREAK_GLASS, secure=True)
    _assert_host_cookie(page.cookies["__Host-csrftoken"], http_only=False)
    _assert_secure_headers(page)
    response = production.post(BREAK_GLASS, break_glass_form(superuser), secure=True)
    assert response.status_code == 302
    _assert_host_cookie(response.cookies["__Host-sessionid"], http_only=True)
    assert "sessionid" not in response.cookies and "csrftoken" not in response.cookies


def test_a_404_carries_hsts_and_nosniff(production):
    response = production.get("/no-such-page/", secure=True)
    assert response.status_code == 404
    assert "<h1>Page not found</h1>" in response.content.decode()
    _assert_secure_headers(response)


def test_a_500_carries_hsts_and_nosniff(production, superuser):
    def fail(sender, **kwargs):
        raise RuntimeError("the session store is down")

    client = Client(HTTP_HOST=HOST, raise_request_exception=False)
    user_logged_in.connect(fail)
    try:
        response = client.post(BREAK_GLASS, break_glass_form(superuser), secure=True)
    finally:
        user_logged_in.disconnect(fail)
    assert response.status_code == 500
    assert "<h1>Something went wrong on our side</h1>" in response.content.decode()
    _assert_secure_headers(response)
