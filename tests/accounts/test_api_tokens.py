"""The JSON status endpoint for monitoring, and the API tokens admins issue for it."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import ApiToken
from audit.models import AuditEvent
from tests.conftest import NORTHWIND, TAILSPIN

STATUS = "/api/status/"
TOKENS = "/accounts/tokens/"
NEW_TOKEN = "/accounts/tokens/new/"
SHOWN = re.compile(r'id="token-value"[^>]*value="(?P<value>[^"]+)"')


def create_token(client: Client, name: str = "Nagios on mon-01", days: int = 30) -> str:
    """Create a token through the admin's form; the value as the page shows it, once."""
    response = client.post(
        NEW_TOKEN, {"name": name, "scope": "status:read", "expires_in_days": str(days)}
    )
    assert response.status_code == 200, response.content[:500]
    assert "no-store" in response["Cache-Control"]
    return SHOWN.search(response.content.decode())["value"]


def bearer(value: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {value}"}


@pytest.fixture
def fleet(northwind, tailspin) -> None:
    return None


def test_it_serves_statuses_to_a_staff_session(operator_client, fleet):
    response = operator_client.get(STATUS)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert "no-store" in response["Cache-Control"]
    data = response.json()
    statuses = {t["tenant_id"]: t["status"] for t in data["tenants"]}
    assert statuses == {NORTHWIND: "verified", TAILSPIN: "incomplete"}
    assert data["counts"]["total"] == 2
    assert data["counts"]["verified"] == 1 and data["counts"]["incomplete"] == 1
    tailspin = next(t for t in data["tenants"] if t["tenant_id"] == TAILSPIN)
    assert tailspin["diagnosis"] == "resource_not_provisioned"
    assert tailspin["name"] == "Tailspin Toys"


def test_it_issues_a_token_shown_once_and_stored_hashed(admin_client):
    value = create_token(admin_client)
    assert value.startswith(ApiToken.PREFIX) and len(value) >= 40
    token = ApiToken.objects.get()
    assert token.token_hash == hashlib.sha256(value.encode()).hexdigest()
    assert token.hint == value[: len(token.hint)] and len(token.hint) < 12
    assert (token.name, token.scope, token.created_by) == (
        "Nagios on mon-01",
        "status:read",
        "admin@fabrikam-mssp.example",
    )
    assert timedelta(days=29) < token.expires_at - timezone.now() <= timedelta(days=30)
    # Nowhere else: not on the list page, not in the session, not in the audit trail.
    listing = admin_client.get(TOKENS).content.decode()
    assert "Nagios on mon-01" in listing and value not in listing
    stored = " ".join(str(s.get_decoded()) for s in Session.objects.all())
    assert value not in stored
    event = AuditEvent.objects.get(action="api_token.created")
    assert value not in str(event.detail) and event.detail["token"] == str(token.code)


def test_it_gives_each_token_a_different_value(admin_client):
    assert create_token(admin_client, "one") != create_token(admin_client, "two")
    assert ApiToken.objects.count() == 2


def test_it_serves_statuses_to_a_token(admin_client, fleet):
    value = create_token(admin_client)
    machine = Client()
    response = machine.get(STATUS, **bearer(value))
    assert response.status_code == 200
    assert {t["tenant_id"] for t in response.json()["tenants"]} == {NORTHWIND, TAILSPIN}
    assert ApiToken.objects.get().last_used_at is not None
    # The token opens the JSON endpoint only, not the console.
    assert machine.get(reverse("console:dashboard"), **bearer(value)).status_code == 302
    assert machine.get(reverse("console:export_csv"), **bearer(value)).status_code == 302


def test_it_refuses_a_revoked_token(admin_client, fleet):
    value = create_token(admin_client)
    token = ApiToken.objects.get()
    assert Client().get(STATUS, **bearer(value)).status_code == 200
    confirm = admin_client.get(reverse("accounts:token_revoke", kwargs={"token_code": token.code}))
    assert confirm.status_code == 200
    assert Client().get(STATUS, **bearer(value)).status_code == 200  # GET only asks
    admin_client.post(reverse("accounts:token_revoke", kwargs={"token_code": token.code}))
    response = Client().get(STATUS, **bearer(value))
    assert response.status_code == 401
    assert response.json() == {"error": "invalid_token"}
    assert AuditEvent.objects.filter(action="api_token.revoked").count() == 1


def test_it_refuses_an_expired_token(admin_client):
    value = create_token(admin_client, days=1)
    ApiToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert Client().get(STATUS, **bearer(value)).status_code == 401


@pytest.mark.parametrize(
    "header",
    [
        "Bearer mssp_" + "A" * 43,  # well-formed, unknown
        "Bearer " + "A" * 48,  # no prefix
        "Bearer mssp_" + "A" * 200,  # too long
        "Bearer ",
        "Bearer",
        "Basic YWRtaW46YWRtaW4=",
        "mssp_" + "A" * 43,  # no scheme
    ],
)
def test_it_refuses_unknown_and_malformed_tokens(header, db, fleet):
    response = Client().get(STATUS, HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert "tenants" not in response.json()


def test_it_refuses_a_token_in_the_url(admin_client, fleet):
    # URLs end up in logs and browser histories: the header is the only place for a token.
    value = create_token(admin_client)
    assert Client().get(STATUS, {"access_token": value, "token": value}).status_code == 401


def test_it_answers_401_with_a_challenge_to_nobody(db):
    response = Client().get(STATUS)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert response.json() == {"error": "authentication_required"}


def test_it_answers_403_to_a_session_without_a_role(outsider_client, fleet):
    response = outsider_client.get(STATUS)
    assert response.status_code == 403
    assert "tenants" not in response.json()


def test_it_refuses_a_wrong_token_even_beside_a_staff_session(operator_client, fleet):
    # A header that is sent is checked: a bad token is not excused by a cookie.
    assert operator_client.get(STATUS, **bearer("mssp_" + "B" * 43)).status_code == 401


def test_it_lets_operators_create_and_revoke_only_their_own_tokens(
    operator_client, admin_client, operator_user
):
    response = operator_client.post(
        NEW_TOKEN, {"name": "mine", "scope": "status:read", "expires_in_days": "30"}
    )
    assert response.status_code == 200
    mine = ApiToken.objects.get()
    assert mine.owner == operator_user
    create_token(admin_client)
    theirs = ApiToken.objects.exclude(pk=mine.pk).get()
    listing = operator_client.get(TOKENS).content.decode()
    assert mine.hint in listing and theirs.hint not in listing
    # Another's token does not exist for an operator: 404, and it stays active.
    path = reverse("accounts:token_revoke", kwargs={"token_code": theirs.code})
    assert operator_client.post(path).status_code == 404
    theirs.refresh_from_db()
    assert theirs.revoked_at is None
    path = reverse("accounts:token_revoke", kwargs={"token_code": mine.code})
    assert operator_client.post(path).status_code == 302
    mine.refresh_from_db()
    assert mine.revoked_at is not None


@pytest.mark.parametrize(
    "data",
    [
        {"name": "", "scope": "status:read", "expires_in_days": "30"},
        {"name": "x", "scope": "tenants:write", "expires_in_days": "30"},
        {"name": "x", "scope": "status:read", "expires_in_days": "0"},
        {"name": "x", "scope": "status:read", "expires_in_days": "100000"},
        {"name": "x" * 101, "scope": "status:read", "expires_in_days": "30"},
    ],
)
def test_it_refuses_a_bad_token_form(admin_client, data):
    response = admin_client.post(NEW_TOKEN, data)
    assert response.status_code == 400
    assert not ApiToken.objects.exists()
    assert not SHOWN.search(response.content.decode())


def test_it_puts_no_token_in_the_status_json(admin_client, fleet):
    value = create_token(admin_client)
    body = Client().get(STATUS, **bearer(value)).content.decode()
    assert value not in body
    assert ApiToken.PREFIX not in body
    assert not re.search(r"eyJ[\w-]+\.eyJ", body)
    assert "token_hash" not in body and ApiToken.objects.get().token_hash not in body
