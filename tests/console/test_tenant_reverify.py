"""Re-verifying one tenant: one open verification however often asked, handed to the
worker, audited, admins only."""

from __future__ import annotations

import uuid

from django.urls import reverse

from audit.models import AuditEvent
from tenants.models import Tenant, Verification
from tests.personas import (
    ADMIN,
    csrf_client,
    csrf_token,
    make_tenant,
    open_verifications,
)


def test_it_queues_one_verification_per_tenant_however_often_it_is_asked(admin_client, northwind):
    url = reverse("console:reverify", args=[northwind.code])

    first = admin_client.post(url)
    for _ in range(9):
        admin_client.post(url)

    assert first.status_code == 302
    assert first.url == reverse("console:detail", args=[northwind.code])
    assert open_verifications(northwind) == 1
    queued = northwind.verifications.get(state=Verification.State.QUEUED)
    assert (queued.trigger, queued.requested_by) == (Verification.Trigger.MANUAL, ADMIN)
    events = AuditEvent.objects.filter(action="verification.requested")
    assert [e.detail["result"] for e in events.order_by("at", "pk")] == ["queued"] + [
        "already_queued"
    ] * 9
    assert {e.detail["verification"] for e in events} == {str(queued.code)}


def test_it_hands_the_new_verification_to_the_task_worker(
    admin_client, northwind, django_capture_on_commit_callbacks
):
    from django_tasks_db.models import DBTaskResult

    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            admin_client.post(reverse("console:reverify", args=[northwind.code]))

    queued = northwind.verifications.get(state=Verification.State.QUEUED)
    tasks = DBTaskResult.objects.all()
    assert [t.args_kwargs["args"] for t in tasks] == [[str(queued.code)]]


def test_it_lets_operators_re_verify_a_tenant_but_not_the_fleet(operator_client, northwind):
    selection = {"tenant": [northwind.code]}

    assert (
        operator_client.post(reverse("console:reverify_all"), {"confirm": "on"}).status_code == 403
    )
    assert open_verifications(northwind) == 0
    # Nothing done; only the refusals are recorded (probing is visible).
    assert set(AuditEvent.objects.values_list("action", flat=True)) == {"access.denied"}
    response = operator_client.post(reverse("console:reverify", args=[northwind.code]))
    assert response.status_code == 302
    assert open_verifications(northwind) == 1
    response = operator_client.post(reverse("console:reverify_selected"), selection)
    assert response.status_code == 302
    assert open_verifications(northwind) == 1  # already queued: not twice
    events = AuditEvent.objects.filter(action="verification.requested")
    assert {e.actor for e in events} == {"operator@fabrikam-mssp.example"}


def test_it_refuses_re_verification_by_get(admin_client, northwind):
    assert admin_client.get(reverse("console:reverify", args=[northwind.code])).status_code == 405
    assert admin_client.get(reverse("console:reverify_selected")).status_code == 405
    assert open_verifications(northwind) == 0


def test_it_refuses_re_verification_without_csrf_token(admin_user, northwind):
    client = csrf_client(admin_user)
    url = reverse("console:reverify", args=[northwind.code])

    assert client.post(url).status_code == 403
    assert client.post(url, HTTP_ORIGIN="https://evil.example").status_code == 403
    assert open_verifications(northwind) == 0

    token = csrf_token(client, reverse("console:detail", args=[northwind.code]))
    assert client.post(url, {"csrfmiddlewaretoken": token}).status_code == 302
    assert open_verifications(northwind) == 1


def test_it_answers_404_when_re_verifying_an_unknown_tenant(admin_client, db):
    assert admin_client.post(reverse("console:reverify", args=[uuid.uuid4()])).status_code == 404


def test_it_does_not_re_verify_an_offboarded_tenant(admin_client, db):
    gone = make_tenant(status=Tenant.Status.OFFBOARDED)

    response = admin_client.post(reverse("console:reverify", args=[gone.code]))

    assert response.status_code == 302
    assert open_verifications(gone) == 0
    assert not AuditEvent.objects.exists()
