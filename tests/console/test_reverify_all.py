"""Re-verifying every active tenant, after confirmation."""

from __future__ import annotations

from django.urls import reverse

from audit.models import AuditEvent
from tenants.models import Tenant, Verification
from tests.personas import (
    ADMIN,
    csrf_client,
    make_tenant,
    open_verifications,
)


def test_it_re_verifies_all_active_tenants_after_confirmation(admin_client, northwind, tailspin):
    gone = make_tenant(display_name="Gone", status=Tenant.Status.OFFBOARDED)
    url = reverse("console:reverify_all")

    page = admin_client.get(url)
    assert page.status_code == 200
    assert page.context["count"] == 2
    unconfirmed = admin_client.post(url)
    assert unconfirmed.status_code == 400
    assert Verification.objects.filter(state=Verification.State.QUEUED).count() == 0

    response = admin_client.post(url, {"confirm": "on"})
    again = admin_client.post(url, {"confirm": "on"})

    assert response.status_code == again.status_code == 302
    assert (
        open_verifications(northwind),
        open_verifications(tailspin),
        open_verifications(gone),
    ) == (1, 1, 0)
    events = AuditEvent.objects.filter(action="fleet.verification_requested").order_by("at", "pk")
    assert [e.detail for e in events] == [
        {"queued": "2", "already_queued": "0"},
        {"queued": "0", "already_queued": "2"},
    ]
    assert events[0].actor == ADMIN


def test_it_refuses_re_verify_all_without_csrf_token(admin_user, northwind):
    client = csrf_client(admin_user)

    assert client.post(reverse("console:reverify_all"), {"confirm": "on"}).status_code == 403
    assert open_verifications(northwind) == 0
