"""What admins do from the console: invitations, re-verification, offboarding. Every action
is a POST, CSRF-protected, confirmed where it is destructive or fleet-wide, audited, and
refused to operators."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from consent.models import Invitation
from mssp_portal import identity
from tenants.models import Tenant, Verification
from tests.conftest import NORTHWIND, PORTAL_APP, TAILSPIN
from tests.staff.conftest import make_tenant, signed_in_client

APP_PERMISSIONS = {
    "graph": ["Organization.Read.All"],
    "defender": ["Incident.Read.All"],
    "mde": ["Ti.ReadWrite.All"],
}
ADMIN = "admin@fabrikam-mssp.example"


def _open(tenant: Tenant) -> int:
    return tenant.verifications.filter(state__in=Verification.OPEN_STATES).count()


def _csrf_client(user) -> Client:
    client = signed_in_client(user)
    client.handler.enforce_csrf_checks = True
    return client


def _csrf_token(client: Client, url: str) -> str:
    """The token a page the admin opened carries (the form's hidden field)."""
    client.get(url)
    return client.cookies["csrftoken"].value


# --- Create invitation -------------------------------------------------------------------------

CREATE = reverse("tenants:invitation_create")


def _invitation_form(**fields: object) -> dict[str, object]:
    return {
        "customer_name": "Northwind Traders",
        "tenant": NORTHWIND,
        "access_profile": "defender-xdr-readonly",
        "days": 14,
        **fields,
    }


def test_it_creates_an_invitation_bound_to_a_tenant_id(admin_client, db):
    response = admin_client.post(CREATE, _invitation_form(tenant=NORTHWIND.upper()))

    invitation = Invitation.objects.get()
    assert response.status_code == 302
    assert response.url == reverse("tenants:invitation", args=[invitation.code])
    assert str(invitation.expected_tenant_id) == NORTHWIND
    assert invitation.customer_name == "Northwind Traders"
    assert invitation.created_by == ADMIN
    assert (
        timedelta(days=13, hours=23) < invitation.expires_at - timezone.now() <= timedelta(days=14)
    )
    event = AuditEvent.objects.get(action="invitation_create")
    assert (event.outcome, event.actor, str(event.tenant_id)) == ("success", ADMIN, NORTHWIND)
    assert event.detail["invitation"] == str(invitation.code)
    # The link to send is on the page it lands on.
    detail = admin_client.get(response.url).content.decode()
    assert f"/{invitation.code}/" in detail


def test_it_resolves_a_domain_to_its_tenant_through_entra(admin_client, sandbox):
    response = admin_client.post(CREATE, _invitation_form(tenant="Tailspin.example"))

    assert response.status_code == 302
    invitation = Invitation.objects.get()
    assert str(invitation.expected_tenant_id) == TAILSPIN
    assert invitation.expected_domain == "tailspin.example"


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"tenant": "not a tenant!"}, "tenant"),
        ({"tenant": "{" + NORTHWIND + "}"}, "tenant"),
        ({"tenant": "nobody-has-this.example"}, "tenant"),  # looked up: no such tenant
        ({"customer_name": "   "}, "customer_name"),
        ({"customer_name": "North\u202ewind"}, "customer_name"),
        ({"access_profile": "god-mode"}, "access_profile"),
        ({"days": 0}, "days"),
        ({"days": 366}, "days"),
        ({"days": "soon"}, "days"),
    ],
)
def test_it_rejects_bad_invitation_input(admin_client, sandbox, fields, field):
    response = admin_client.post(CREATE, _invitation_form(**fields))

    assert response.status_code == 400
    assert response.context["form"].errors[field]
    assert 'class="field-error"' in response.content.decode()
    assert not Invitation.objects.exists()
    assert not AuditEvent.objects.exists()


def test_it_shows_the_invitation_form(admin_client, db):
    response = admin_client.get(CREATE)

    assert response.status_code == 200
    assert 'name="csrfmiddlewaretoken"' in response.content.decode()


def test_it_refuses_invitations_to_operators(operator_client, db):
    assert operator_client.get(CREATE).status_code == 403
    assert operator_client.post(CREATE, _invitation_form()).status_code == 403
    assert not Invitation.objects.exists()


def test_it_refuses_an_invitation_post_without_csrf_token(admin_user, db):
    client = _csrf_client(admin_user)

    assert client.post(CREATE, _invitation_form()).status_code == 403
    assert not Invitation.objects.exists()

    token = _csrf_token(client, CREATE)
    response = client.post(CREATE, _invitation_form(csrfmiddlewaretoken=token))
    assert response.status_code == 302
    assert Invitation.objects.count() == 1


# --- Revoke invitation -------------------------------------------------------------------------


def test_it_revokes_an_invitation_after_confirmation(admin_client, invitation):
    url = reverse("tenants:invitation_revoke", args=[invitation.code])

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
    event = AuditEvent.objects.get(action="invitation_revoke")
    assert (event.actor, str(event.tenant_id)) == (ADMIN, NORTHWIND)
    # The customer's link stops working.
    assert Client().get(reverse("consent:invitation", args=[invitation.code])).status_code == 410


def test_it_revokes_only_once(admin_client, invitation):
    url = reverse("tenants:invitation_revoke", args=[invitation.code])
    admin_client.post(url, {"confirm": "on"})
    admin_client.post(url, {"confirm": "on"})

    assert AuditEvent.objects.filter(action="invitation_revoke").count() == 1


def test_it_refuses_revocation_to_operators(operator_client, invitation):
    url = reverse("tenants:invitation_revoke", args=[invitation.code])

    assert operator_client.post(url, {"confirm": "on"}).status_code == 403
    invitation.refresh_from_db()
    assert invitation.status == Invitation.Status.OPEN


def test_it_answers_404_for_an_unknown_invitation(admin_client, db):
    url = reverse("tenants:invitation_revoke", args=[uuid.uuid4()])

    assert admin_client.post(url, {"confirm": "on"}).status_code == 404


def test_it_refuses_revocation_without_csrf_token(admin_user, invitation):
    client = _csrf_client(admin_user)
    url = reverse("tenants:invitation_revoke", args=[invitation.code])

    assert client.post(url, {"confirm": "on"}).status_code == 403
    invitation.refresh_from_db()
    assert invitation.status == Invitation.Status.OPEN


# --- Re-verify -------------------------------------------------------------------------------


def test_it_queues_one_verification_per_tenant_however_often_it_is_asked(admin_client, northwind):
    url = reverse("tenants:reverify", args=[northwind.code])

    first = admin_client.post(url)
    for _ in range(9):
        admin_client.post(url)

    assert first.status_code == 302
    assert first.url == reverse("tenants:detail", args=[northwind.code])
    assert _open(northwind) == 1
    queued = northwind.verifications.get(state=Verification.State.QUEUED)
    assert (queued.trigger, queued.requested_by) == (Verification.Trigger.MANUAL, ADMIN)
    events = AuditEvent.objects.filter(action="reverify")
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
            admin_client.post(reverse("tenants:reverify", args=[northwind.code]))

    queued = northwind.verifications.get(state=Verification.State.QUEUED)
    tasks = DBTaskResult.objects.all()
    assert [t.args_kwargs["args"] for t in tasks] == [[str(queued.code)]]


def test_it_refuses_re_verification_to_operators(operator_client, northwind):
    selection = {"tenant": [northwind.code]}

    assert (
        operator_client.post(reverse("tenants:reverify", args=[northwind.code])).status_code == 403
    )
    assert operator_client.post(reverse("tenants:reverify_selected"), selection).status_code == 403
    assert (
        operator_client.post(reverse("tenants:reverify_all"), {"confirm": "on"}).status_code == 403
    )
    assert _open(northwind) == 0
    assert not AuditEvent.objects.exists()


def test_it_refuses_re_verification_by_get(admin_client, northwind):
    assert admin_client.get(reverse("tenants:reverify", args=[northwind.code])).status_code == 405
    assert admin_client.get(reverse("tenants:reverify_selected")).status_code == 405
    assert _open(northwind) == 0


def test_it_refuses_re_verification_without_csrf_token(admin_user, northwind):
    client = _csrf_client(admin_user)
    url = reverse("tenants:reverify", args=[northwind.code])

    assert client.post(url).status_code == 403
    assert client.post(url, HTTP_ORIGIN="https://evil.example").status_code == 403
    assert _open(northwind) == 0

    token = _csrf_token(client, reverse("tenants:detail", args=[northwind.code]))
    assert client.post(url, {"csrfmiddlewaretoken": token}).status_code == 302
    assert _open(northwind) == 1


def test_it_answers_404_when_re_verifying_an_unknown_tenant(admin_client, db):
    assert admin_client.post(reverse("tenants:reverify", args=[uuid.uuid4()])).status_code == 404


def test_it_re_verifies_a_selection(admin_client, northwind, tailspin):
    other = make_tenant(display_name="Untouched")
    gone = make_tenant(display_name="Gone", status=Tenant.Status.OFFBOARDED)
    url = reverse("tenants:reverify_selected")
    selection = {
        "tenant": [northwind.code, tailspin.code, gone.code],
        "status": "attention",
        "q": "t",
    }

    response = admin_client.post(url, selection)
    admin_client.post(url, selection)

    assert response.status_code == 302
    # Back to the dashboard view the admin came from.
    assert response.url == reverse("tenants:dashboard") + "?q=t&status=attention"
    assert (_open(northwind), _open(tailspin), _open(other), _open(gone)) == (1, 1, 0, 0)
    results = sorted(e.detail["result"] for e in AuditEvent.objects.filter(action="reverify"))
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
    response = admin_client.post(reverse("tenants:reverify_selected"), data)

    assert response.status_code == 302
    assert response.url == reverse("tenants:dashboard")
    assert _open(northwind) == 0
    assert not AuditEvent.objects.exists()
    messages = [str(m) for m in response.wsgi_request._messages]
    assert messages and all(m for m in messages)


def test_it_re_verifies_all_active_tenants_after_confirmation(admin_client, northwind, tailspin):
    gone = make_tenant(display_name="Gone", status=Tenant.Status.OFFBOARDED)
    url = reverse("tenants:reverify_all")

    page = admin_client.get(url)
    assert page.status_code == 200
    assert page.context["count"] == 2
    unconfirmed = admin_client.post(url)
    assert unconfirmed.status_code == 400
    assert Verification.objects.filter(state=Verification.State.QUEUED).count() == 0

    response = admin_client.post(url, {"confirm": "on"})
    again = admin_client.post(url, {"confirm": "on"})

    assert response.status_code == again.status_code == 302
    assert (_open(northwind), _open(tailspin), _open(gone)) == (1, 1, 0)
    events = AuditEvent.objects.filter(action="reverify_all").order_by("at", "pk")
    assert [e.detail for e in events] == [
        {"queued": "2", "already_queued": "0"},
        {"queued": "0", "already_queued": "2"},
    ]
    assert events[0].actor == ADMIN


def test_it_refuses_re_verify_all_without_csrf_token(admin_user, northwind):
    client = _csrf_client(admin_user)

    assert client.post(reverse("tenants:reverify_all"), {"confirm": "on"}).status_code == 403
    assert _open(northwind) == 0


def test_it_does_not_re_verify_an_offboarded_tenant(admin_client, db):
    gone = make_tenant(status=Tenant.Status.OFFBOARDED)

    response = admin_client.post(reverse("tenants:reverify", args=[gone.code]))

    assert response.status_code == 302
    assert _open(gone) == 0
    assert not AuditEvent.objects.exists()


# --- Offboarding -------------------------------------------------------------------------------


def test_it_offboards_after_confirmation_and_keeps_the_record(admin_client, northwind, invitation):
    url = reverse("tenants:offboard", args=[northwind.code])
    confirm = admin_client.get(url)
    assert confirm.status_code == 200
    assert 'name="confirm"' in confirm.content.decode()

    unconfirmed = admin_client.post(url)
    northwind.refresh_from_db()
    assert unconfirmed.status_code == 400
    assert northwind.status == Tenant.Status.VERIFIED

    response = admin_client.post(url, {"confirm": "on"})

    assert response.status_code == 302
    northwind.refresh_from_db()
    assert northwind.status == Tenant.Status.OFFBOARDED
    assert timezone.now() - northwind.offboarded_at < timedelta(minutes=1)
    assert northwind.verifications.count() == 1  # history kept
    invitation.refresh_from_db()
    assert invitation.status == Invitation.Status.REVOKED
    event = AuditEvent.objects.get(action="offboard")
    assert (event.actor, str(event.tenant_id), event.detail) == (
        ADMIN,
        NORTHWIND,
        {"invitations_revoked": "1"},
    )
    # The customer is told how to remove the enterprise application.
    page = admin_client.get(response.url).content.decode()
    assert "Enterprise applications" in page
    assert f"appId eq '{PORTAL_APP}'" in page
    assert "Re-verify now" not in page
    # The diagnosis from before offboarding is not presented as a to-do any more.
    assert "the tenant is offboarded and no longer verified" in page


def test_it_offboards_only_once(admin_client, northwind):
    url = reverse("tenants:offboard", args=[northwind.code])
    admin_client.post(url, {"confirm": "on"})
    first = Tenant.objects.get(pk=northwind.pk).offboarded_at

    admin_client.post(url, {"confirm": "on"})

    assert Tenant.objects.get(pk=northwind.pk).offboarded_at == first
    assert AuditEvent.objects.filter(action="offboard").count() == 1


def test_it_refuses_offboarding_to_operators(operator_client, northwind):
    url = reverse("tenants:offboard", args=[northwind.code])

    assert operator_client.get(url).status_code == 403
    assert operator_client.post(url, {"confirm": "on"}).status_code == 403
    northwind.refresh_from_db()
    assert northwind.status == Tenant.Status.VERIFIED


def test_it_refuses_offboarding_without_csrf_token(admin_user, northwind):
    client = _csrf_client(admin_user)

    response = client.post(reverse("tenants:offboard", args=[northwind.code]), {"confirm": "on"})

    assert response.status_code == 403
    northwind.refresh_from_db()
    assert northwind.status == Tenant.Status.VERIFIED


def test_it_answers_404_when_offboarding_an_unknown_tenant(admin_client, db):
    url = reverse("tenants:offboard", args=[uuid.uuid4()])

    assert admin_client.post(url, {"confirm": "on"}).status_code == 404


def test_it_needs_a_new_invitation_to_onboard_an_offboarded_tenant_again(
    admin_client, northwind, invitation
):
    old_link = reverse("consent:invitation", args=[invitation.code])
    assert Client().get(old_link).status_code == 200
    admin_client.post(reverse("tenants:offboard", args=[northwind.code]), {"confirm": "on"})

    # The old link is closed; no re-consent invitation for an offboarded tenant...
    assert Client().get(old_link).status_code == 410
    response = admin_client.post(reverse("tenants:invite", args=[northwind.code]))
    assert response.status_code == 302
    assert Invitation.objects.count() == 1
    # ... a new invitation, made on purpose.
    page = admin_client.get(reverse("tenants:detail", args=[northwind.code])).content.decode()
    assert reverse("tenants:invitation_create") in page
    assert admin_client.post(CREATE, _invitation_form()).status_code == 302
    new = Invitation.objects.exclude(pk=invitation.pk).get()
    assert new.is_usable
    assert Client().get(reverse("consent:invitation", args=[new.code])).status_code == 200


@pytest.fixture
def engine(sandbox, settings) -> Iterator[object]:
    settings.VERIFY_RETRIES = 2
    settings.VERIFY_RETRY_BASE_DELAY = 0.01
    settings.VERIFY_HTTP_TIMEOUT = 5
    settings.VERIFY_INTERVAL = 0  # every tenant is due at once
    identity.forget_assertion()
    yield sandbox
    identity.forget_assertion()


@pytest.mark.django_db(transaction=True)
def test_it_requests_no_token_for_an_offboarded_tenant(engine, admin_user):
    control = engine.control
    for tenant_id in (NORTHWIND, TAILSPIN):
        control.set_roles(tenant_id, APP_PERMISSIONS, application=PORTAL_APP)
    northwind = make_tenant(NORTHWIND, display_name="Northwind")
    tailspin = make_tenant(TAILSPIN, display_name="Tailspin")
    client = signed_in_client(admin_user)
    # A verification queued before the offboarding must not run either.
    client.post(reverse("tenants:reverify", args=[tailspin.code]))
    client.post(reverse("tenants:offboard", args=[tailspin.code]), {"confirm": "on"})
    control.reset_counters()

    call_command("run_scheduler", "--once", stdout=open("/dev/null", "w"))  # noqa: SIM115
    call_command("db_worker", "--batch", "--no-startup-delay", "--no-reload", verbosity=0)
    call_command("verify_tenants", "--all", stdout=open("/dev/null", "w"))  # noqa: SIM115

    by_tenant = control.counters()["by_tenant"]
    assert by_tenant.get(NORTHWIND, {}).get("token", 0) >= 2  # the scheduler and the CLI
    assert TAILSPIN not in by_tenant
    tailspin.refresh_from_db()
    assert tailspin.status == Tenant.Status.OFFBOARDED
    assert not tailspin.verifications.filter(state__in=Verification.OPEN_STATES).exists()
    assert set(tailspin.verifications.values_list("outcome", flat=True)) == {
        Verification.Outcome.CANCELLED
    }
    northwind.refresh_from_db()
    assert northwind.status == Tenant.Status.VERIFIED
