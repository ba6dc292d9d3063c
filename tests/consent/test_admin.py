"""Django admin for invitations: superusers read them and revoke them."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from accounts.middleware import LAST_SEEN_AT, SIGNED_IN_AT
from audit.models import AuditEvent
from consent.models import Invitation
from tests.consent.helpers import issue, make_invitation

pytestmark = pytest.mark.django_db


def signed_in(user) -> Client:
    """A client with a fresh sign-in, as accounts.middleware expects it."""
    client = Client()
    client.force_login(user)
    session = client.session
    session[SIGNED_IN_AT] = session[LAST_SEEN_AT] = int(time.time())
    session.save()
    return client


@pytest.fixture
def superuser_client(db) -> Client:
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw-not-used")
    return signed_in(user)


def test_it_lists_invitations(superuser_client):
    make_invitation(customer="Northwind Traders")
    response = superuser_client.get("/admin/consent/invitation/")
    assert response.status_code == 200
    assert "Northwind Traders" in response.content.decode()


def test_it_shows_an_invitation_with_its_link_and_tickets_but_no_state_hash(superuser_client):
    invitation = make_invitation()
    issue(invitation)
    ticket = invitation.tickets.get()
    response = superuser_client.get(f"/admin/consent/invitation/{invitation.pk}/change/")
    body = response.content.decode()
    assert response.status_code == 200
    assert f"/consent/invite/{invitation.code}/" in body
    assert ticket.state_hash not in body


def test_it_escapes_the_customer_name(superuser_client):
    make_invitation(customer="<script>alert(1)</script>")
    body = superuser_client.get("/admin/consent/invitation/").content.decode()
    assert "<script>alert(1)</script>" not in body
    assert "&lt;script&gt;" in body


def test_it_offers_no_add_or_delete(superuser_client):
    invitation = make_invitation()
    assert superuser_client.get("/admin/consent/invitation/add/").status_code == 403
    response = superuser_client.get(f"/admin/consent/invitation/{invitation.pk}/delete/")
    assert response.status_code == 403


def test_it_revokes_open_invitations_and_audits_each(superuser_client):
    open_one, other = make_invitation(), make_invitation(customer="Tailspin")
    other.revoke(actor="admin@fabrikam-mssp.example")
    response = superuser_client.post(
        "/admin/consent/invitation/",
        {"action": "revoke", "_selected_action": [open_one.pk, other.pk]},
    )
    assert response.status_code == 302
    open_one.refresh_from_db()
    assert open_one.status == Invitation.Status.REVOKED
    event = AuditEvent.objects.get(actor="root")  # the already revoked one: no second event
    assert event.action == "invitation.revoked"
    assert event.detail["invitation"] == str(open_one.code)


def test_it_is_for_superusers_only(client, db):
    assert client.get("/admin/consent/invitation/").status_code == 302  # to sign-in
    operator = signed_in(get_user_model().objects.create_user("operator"))
    assert operator.get("/admin/consent/invitation/").status_code == 403
