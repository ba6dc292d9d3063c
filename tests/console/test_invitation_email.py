"""Sending invitations: to the contact through the real mail path (an SMTP server listening
here), recorded and audited; refused with the reason when it cannot be sent; many at once as
a task; the links as CSV for MSSPs who send through their own tools."""

from __future__ import annotations

import csv
import io

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from consent.models import Invitation
from consent.tasks import email_invitations
from tests.conftest import NORTHWIND, TAILSPIN
from tests.notifications.receivers import SmtpReceiver, parts


@pytest.fixture
def smtp(settings):
    server = SmtpReceiver().start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", server.port
    settings.PORTAL_BASE_URL = "https://portal.fabrikam.example"
    settings.ENTRA_APP_DISPLAY_NAME = "Fabrikam MSSP Portal"
    yield server
    server.stop()


def _invitation(tenant_id=NORTHWIND, **fields) -> Invitation:
    values = {
        "customer_name": "Northwind Traders",
        "access_profile": "defender-xdr-readonly",
        "days": 14,
        "actor": "admin@fabrikam-mssp.example",
        "expected_tenant_id": tenant_id,
        "contact_name": "Ada Lovelace",
        "contact_email": "ada@northwind.example",
    }
    return Invitation.objects.create_invitation(**{**values, **fields})


def test_an_admin_emails_an_invitation_to_its_contact(admin_client, smtp):
    invitation = _invitation()

    response = admin_client.post(reverse("console:invitation_email", args=[invitation.code]))

    assert response.status_code == 302
    (mail,) = smtp.messages
    assert mail["To"] == "ada@northwind.example"
    assert mail["Subject"] == "Fabrikam Security asks for access to your Microsoft tenant"
    text = dict(parts(mail))["text/plain"]
    assert f"https://portal.fabrikam.example/consent/invite/{invitation.code}/" in text
    assert "Hello Ada Lovelace," in text
    assert "Incident.Read.All" in text
    assert '"Fabrikam MSSP Portal" (application id c4b1f0de-6a3e-4f27-8d59-2e8a7c1b9f30)' in text
    assert f"only for your organisation's tenant ({NORTHWIND})" in text
    invitation.refresh_from_db()
    assert (invitation.emailed_by, invitation.emails_sent) == ("admin@fabrikam-mssp.example", 1)
    event = AuditEvent.objects.get(action="invitation.emailed")
    assert (event.outcome, event.detail["to"]) == ("success", "ada@northwind.example")
    page = admin_client.get(reverse("console:invitation", args=[invitation.code])).content.decode()
    assert "Email it again" in page and "by admin@fabrikam-mssp.example" in page


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"contact_email": ""}, "no contact email: copy its link and send it yourself"),
        ({"status": "revoked"}, "This invitation is revoked: its link does not work any more"),
    ],
)
def test_an_invitation_that_cannot_be_sent_says_why_and_sends_nothing(
    admin_client, smtp, fields, reason
):
    invitation = _invitation()
    Invitation.objects.filter(pk=invitation.pk).update(**fields)

    response = admin_client.post(
        reverse("console:invitation_email", args=[invitation.code]), follow=True
    )

    assert reason in response.content.decode()
    assert smtp.messages == []
    invitation.refresh_from_db()
    assert invitation.emailed_at is None


def test_a_mail_server_that_is_down_is_a_clear_error_and_nothing_recorded_as_sent(
    admin_client, settings, db
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", 9
    invitation = _invitation()

    response = admin_client.post(
        reverse("console:invitation_email", args=[invitation.code]), follow=True
    )

    assert "The mail server did not take the message" in response.content.decode()
    invitation.refresh_from_db()
    assert invitation.emailed_at is None
    assert AuditEvent.objects.get(action="invitation.emailed").outcome == "failure"


def test_a_selection_is_emailed_by_a_task_skipping_those_without_a_contact(admin_client, smtp):
    with_contact = _invitation()
    without = _invitation(TAILSPIN, customer_name="Tailspin", contact_email="")

    response = admin_client.post(
        reverse("console:invitations_email"),
        {"invitation": [with_contact.code, without.code]},
        follow=True,
    )

    assert "Emailing 1 invitation in the background; 1 skipped" in response.content.decode()
    assert smtp.messages == []  # queued, not sent inside the request
    # What the worker runs:
    assert email_invitations([str(with_contact.code)], actor="admin") == (1, 0)
    assert [m["To"] for m in smtp.messages] == ["ada@northwind.example"]


def test_the_links_export_as_csv_with_formula_cells_defused(admin_client, settings, db):
    settings.PORTAL_BASE_URL = "https://portal.fabrikam.example"
    usable = _invitation(customer_name="=HYPERLINK(evil)")
    revoked = _invitation(TAILSPIN, customer_name="Tailspin")
    revoked.revoke(actor="admin")

    response = admin_client.get(reverse("console:invitation_export"))

    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    by_tenant = {r["tenant"]: r for r in rows}
    assert by_tenant[NORTHWIND]["customer_name"] == "'=HYPERLINK(evil)"
    assert (
        by_tenant[NORTHWIND]["link"]
        == f"https://portal.fabrikam.example/consent/invite/{usable.code}/"
    )
    assert by_tenant[TAILSPIN]["link"] == ""  # a revoked link is not handed out
    assert AuditEvent.objects.get(action="invitations.exported").detail["rows"] == "2"
