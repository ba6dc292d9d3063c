"""Re-verifying the tenants ticked on the dashboard."""

from __future__ import annotations

import uuid

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from tenants.models import Tenant
from tests.personas import make_tenant, open_verifications


def test_it_re_verifies_a_selection(admin_client, northwind, tailspin):
    other = make_tenant(display_name="Untouched")
    gone = make_tenant(display_name="Gone", status=Tenant.Status.OFFBOARDED)
    url = reverse("console:reverify_selected")
    selection = {
        "tenant": [northwind.code, tailspin.code, gone.code],
        "status": "attention",
        "q": "t",
    }

    response = admin_client.post(url, selection)
    admin_client.post(url, selection)

    assert response.status_code == 302
    # Back to the dashboard view the admin came from.
    assert response.url == reverse("console:dashboard") + "?q=t&status=attention"
    assert (
        open_verifications(northwind),
        open_verifications(tailspin),
        open_verifications(other),
        open_verifications(gone),
    ) == (1, 1, 0, 0)
    results = sorted(
        e.detail["result"] for e in AuditEvent.objects.filter(action="verification.requested")
    )
    assert results == ["already_queued", "already_queued", "queued", "queued"]


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"tenant": ["not-a-uuid"]},
        {"tenant": [str(uuid.uuid4()), "x"]},
        {"tenant": [str(uuid.uuid4()) for _ in range(501)]},
    ],
)
def test_it_rejects_a_bad_selection(admin_client, northwind, data):
    response = admin_client.post(reverse("console:reverify_selected"), data)

    assert response.status_code == 302
    assert response.url == reverse("console:dashboard")
    assert open_verifications(northwind) == 0
    assert not AuditEvent.objects.exists()
    messages = [str(m) for m in response.wsgi_request._messages]
    assert messages and all(m for m in messages)


def test_the_message_counts_right_and_says_why_nothing_was_queued(admin_client, northwind):
    gone = make_tenant(display_name="Gone", status=Tenant.Status.OFFBOARDED)
    url = reverse("console:reverify_selected")

    first = admin_client.post(url, {"tenant": [northwind.code]}, follow=True)
    again = admin_client.post(url, {"tenant": [northwind.code, gone.code]}, follow=True)

    assert "1 verification queued." in first.content.decode()
    text = again.content.decode()
    assert (
        "No verification queued; 1 tenant already has one queued or running; 1 tenant is "
        "offboarded and is never verified again."
    ) in text
    assert "(s)" not in text
