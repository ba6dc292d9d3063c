"""Revoking an invitation: confirmed, once, audited, admins only."""

from __future__ import annotations

import uuid

from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from consent.models import Invitation
from tests.conftest import NORTHWIND
from tests.personas import ADMIN, csrf_client


def test_it_revokes_an_invitation_after_confirmation(admin_client, invitation):
    url = reverse("console:invitation_revoke", args=[invitation.code])

    assert admin_client.get(url).status_code == 200  # the confirmation page
    unconfirmed = admin_client.post(url)
    invitation.refresh_from_db()
    assert unconfirmed.status_code == 400
    assert invitation.status == Invitation.Status.OPEN
    assert not AuditEvent.objects.exists()

    response = admin_client.post(url, {"confirm": "on"})

    invitation.refresh_from_db()
    assert response.status_code == 302
    assert invitation.status == Invitation.Status.REVOKED
    event = AuditEvent.objects.get(action="invitation.revoked")
    assert (event.actor, str(event.tenant_id)) == (ADMIN, NORTHWIND)
    # The customer's link stops working.
    assert Client().get(reverse("consent:invitation", args=[invitation.code])).status_code == 410


def test_it_revokes_only_once(admin_client, invitation):
    url = reverse("console:invitation_revoke", args=[invitation.code])
    admin_client.post(url, {"confirm": "on"})
    admin_client.post(url, {"confirm": "on"})

    assert AuditEvent.objects.filter(action="invitation.revoked").count() == 1


def test_it_refuses_revocation_to_operators(operator_client, invitation):
    url = reverse("console:invitation_revoke", args=[invitation.code])

    assert operator_client.post(url, {"confirm": "on"}).status_code == 403
    invitation.refresh_from_db()
    assert invitation.status == Invitation.Status.OPEN


def test_it_answers_404_for_an_unknown_invitation(admin_client, db):
    url = reverse("console:invitation_revoke", args=[uuid.uuid4()])

    assert admin_client.post(url, {"confirm": "on"}).status_code == 404


def test_it_refuses_revocation_without_csrf_token(admin_user, invitation):
    client = csrf_client(admin_user)
    url = reverse("console:invitation_revoke", args=[invitation.code])

    assert client.post(url, {"confirm": "on"}).status_code == 403
    invitation.refresh_from_db()
    assert invitation.status == Invitation.Status.OPEN
