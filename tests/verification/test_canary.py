"""No token or assertion is ever stored, logged or sent to a browser.

Every path of the engine runs once against the sandbox (consent callback, worker, fleet
batch, every outcome, platform errors, transient errors, the commands); then every token the
sandbox ever issued — managed identity assertions and app-only tokens — is looked for in a
dump of every database table, in the logs captured at DEBUG from every logger, in the
commands' output, and in every page staff and customers can open.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import Iterator

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.urls import reverse

from accounts import roles
from consent.models import Invitation
from mssp_portal import identity
from notifications.delivery import send_due
from notifications.models import Destination
from tenants.models import Tenant, Verification
from tenants.verification import scheduler
from tests.conftest import (
    ADATUM,
    HOME_TENANT,
    MANAGED_IDENTITY_CLIENT_ID,
    NORTHWIND,
    PORTAL_APP,
    TAILSPIN,
    WOODGROVE,
)
from tests.consent.helpers import issue, make_invitation, success
from tests.notifications.receivers import SmtpReceiver, WebhookReceiver, parts
from tests.personas import make_staff, signed_in_client

TOKEN_EXCHANGE_APP_ID = "fb60f99c-7a34-4190-8149-302f77469936"
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}")


def _dump_database() -> str:
    rows = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608
            rows.append(f"{table}: {cursor.fetchall()!r}")
    return "\n".join(rows)


def _pages(client: Client) -> str:
    """Every page a staff member (admin) can open about the tenants and their checks."""
    pages = []
    urls = [
        reverse("console:dashboard"),
        reverse("console:dashboard_live"),
        reverse("console:export_csv"),
        reverse("console:status_json"),
        reverse("console:invitations"),
        reverse("console:audit_log"),
    ]
    urls += [reverse("console:detail", args=[t.code]) for t in Tenant.objects.all()]
    urls += [reverse("console:invitation", args=[i.code]) for i in Invitation.objects.all()]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        body = b"".join(response.streaming_content) if response.streaming else response.content
        pages.append(body.decode())
    return "\n".join(pages)


def _customer_pages() -> str:
    anonymous = Client()
    pages = []
    for invitation in Invitation.objects.filter(tenant__isnull=False):
        response = anonymous.get(reverse("consent:landing", args=[invitation.code]))
        assert response.status_code == 200
        pages.append(response.content.decode())
    return "\n".join(pages)


def _run_every_path(sandbox, consent, make_tenant, verify) -> None:
    control = sandbox.control
    # The consent flow: the customer's callback, then the worker.
    invitation = make_invitation(profile="full-soc")
    consent(NORTHWIND)
    response = Client().get(success(issue(invitation)))
    assert response.status_code == 303  # to the landing page
    call_command("db_worker", "--batch", "--no-startup-delay", "--no-reload", verbosity=0)
    northwind = Tenant.objects.get(tenant_id=NORTHWIND)
    assert northwind.status == Tenant.Status.VERIFIED

    # The other outcomes, through the CLI's parallel batch.
    consent(TAILSPIN)
    consent(WOODGROVE)
    make_tenant(TAILSPIN, "full-soc")
    woodgrove = make_tenant(WOODGROVE)
    make_tenant(ADATUM)
    control.disable(WOODGROVE)
    with pytest.raises(SystemExit):  # not every tenant verified
        call_command("verify_tenants", "--all")
    control.enable(WOODGROVE)

    # Role missing after a permission was added; transient; throttled probe.
    control.set_roles(WOODGROVE, {"graph": ["Organization.Read.All"]}, application=PORTAL_APP)
    verify(woodgrove)
    control.add_fault(target="token", tenant=NORTHWIND, status=503)
    control.add_fault(target="graph", tenant=WOODGROVE, status=429, retry_after=0, count=1)
    verify(northwind)
    verify(woodgrove)
    control.clear_faults()

    # Platform errors: FIC typo across the fleet (scheduler + worker), clock, identity down.
    control.update_application(
        PORTAL_APP,
        federated_credentials=[
            {
                "issuer": f"{{authority}}/{HOME_TENANT}/v2.0",
                "subject": MANAGED_IDENTITY_CLIENT_ID,
                "audiences": ["api://AzureADTokenExchange"],
            }
        ],
    )
    Tenant.objects.update(last_checked_at=None)
    scheduler.tick()
    call_command("db_worker", "--batch", "--no-startup-delay", "--no-reload", verbosity=0)
    with pytest.raises(SystemExit):
        call_command("doctor")
    control.reset()
    consent(NORTHWIND)
    control.set_clock_skew(2 * 86400)
    verify(northwind)
    control.set_clock_skew(0)
    control.add_fault(target="mi", status=503)
    identity.forget_assertion()
    verify(northwind)
    control.clear_faults()
    call_command("doctor")
    verify(northwind)
    assert Verification.objects.filter(outcome="platform_error").count() >= 5


@pytest.fixture
def receivers(settings) -> Iterator[tuple[WebhookReceiver, SmtpReceiver]]:
    """A webhook, a Teams channel and a mailbox receiving every event of the run."""
    settings.NOTIFY_ALLOW_INSECURE_URLS = True
    hook, smtp = WebhookReceiver().start(), SmtpReceiver().start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", smtp.port
    yield hook, smtp
    hook.stop()
    smtp.stop()


def _delivered(hook: WebhookReceiver, smtp: SmtpReceiver) -> str:
    send_due()
    bodies = [m.body.decode() for m in hook.received]
    bodies += [text for mail in smtp.messages for _type, text in parts(mail)]
    return "\n".join(bodies)


@pytest.mark.django_db(transaction=True)
def test_no_token_or_assertion_is_stored_logged_or_shown(
    sandbox, consent, make_tenant, verify, caplog, capsys, receivers
):
    caplog.set_level(logging.DEBUG)
    for name in ("azure", "msal", "urllib3", "django", "mssp_portal", "django_tasks"):
        caplog.set_level(logging.DEBUG, logger=name)
    before = set(sandbox.control.issued_tokens())
    hook, smtp = receivers
    for kind, target in (("webhook", hook.url), ("teams", hook.url), ("email", "soc@x.example")):
        Destination.objects.add(kind=kind, name=kind, target=target, actor="admin")

    _run_every_path(sandbox, consent, make_tenant, verify)

    admin = signed_in_client(make_staff("admin@fabrikam-mssp.example", [roles.ADMIN_ROLE]))
    surfaces = {
        "database": _dump_database(),
        "logs": caplog.text,
        "command output": capsys.readouterr().out,
        "staff pages": _pages(admin),
        "customer pages": _customer_pages(),
        "delivered notifications": _delivered(hook, smtp),
    }
    issued = [t for t in sandbox.control.issued_tokens() if t not in before]
    assert len(issued) > 20  # assertions and app-only tokens of this test
    assertions = [t for t in issued if _claims(t)["aud"] == TOKEN_EXCHANGE_APP_ID]
    assert len(assertions) >= 2  # the first one, and fresh ones after the clock scenes
    # Every kind of event the run causes reached the receivers.
    types = {json.loads(m.body).get("type") for m in hook.received}
    assert {"tenant.onboarded", "tenant.status_changed", "platform.alert_opened"} <= types
    assert len(smtp.messages) >= 3
    for surface, text in surfaces.items():
        assert text, surface
        for token in issued:
            header, payload, signature = token.split(".")
            for part in (token, payload, signature):
                assert part not in text, f"a token part appears in the {surface}"
        assert not JWT.search(text), f"something shaped like a JWT appears in the {surface}"


def _claims(token: str) -> dict:
    segment = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
