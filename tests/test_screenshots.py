"""A screenshot pass over the pages whose words follow a tenant's state, at desktop and phone
widths: the customer's invitation, used-invitation, landing and refusal pages, and the
staff dashboard, tenant pages and invitation form. Each is saved to test-artifacts/ for a
person to look at, and checked for what must never show: a debug page, an unfilled
placeholder, a "(s)" pluralisation, a Python None."""

from __future__ import annotations

import re

import pytest
from django.utils import timezone

from consent.models import Campaign, Invitation
from notifications.models import Destination
from tenants.models import Tenant, Verification
from tenants.verification.runner import run_verification
from tests.conftest import NORTHWIND, PORTAL_APP, TAILSPIN, WOODGROVE
from tests.consent.helpers import callback_url, make_invitation
from tests.console.test_journey import portal, sign_in  # noqa: F401  (the fixture)
from tests.personas import make_tenant

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WIDTHS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}
ROLES = {
    "graph": ["Organization.Read.All"],
    "defender": ["Incident.Read.All"],
    "mde": ["Ti.ReadWrite.All"],
}
NEVER = [
    (re.compile(r"Traceback|Page not found \(404\)|Server Error \(500\)"), "a debug page"),
    (re.compile(r"\{\{|\{%|%\}|\}\}"), "an unfilled placeholder"),
    (re.compile(r"\(s\)"), "a (s) pluralisation"),
    (re.compile(r"\bNone\b"), "a Python None"),
]


def _verified_by_the_engine(sandbox, tenant_id: str, name: str, **fields) -> Tenant:
    sandbox.control.set_roles(tenant_id, ROLES, application=PORTAL_APP)
    tenant = make_tenant(
        tenant_id,
        display_name=name,
        access_profile="full-soc",
        status=Tenant.Status.CONSENT_REPORTED,
        consent_reported_at=timezone.now(),
        **fields,
    )
    verification, _ = tenant.request_verification(Verification.Trigger.CONSENT, "customer")
    assert run_verification(str(verification.code)) is not None
    tenant.refresh_from_db()
    return tenant


def _used_by(tenant: Tenant, customer: str) -> Invitation:
    invitation = make_invitation(
        customer=customer, tenant=str(tenant.tenant_id), profile="full-soc"
    )
    invitation.mark_used(tenant, actor="customer")
    return invitation


def _shoot(page, url: str, name: str, artifacts_dir) -> None:
    for width, viewport in WIDTHS.items():
        page.set_viewport_size(viewport)
        page.goto(url)
        page.wait_for_load_state("networkidle")
        page.evaluate("document.querySelectorAll('details').forEach(d => { d.open = true; })")
        text = page.inner_text("body")
        for pattern, what in NEVER:
            assert not pattern.search(text), (name, width, what, pattern.search(text).group(0))
        page.screenshot(path=str(artifacts_dir / f"truth-{name}-{width}.png"), full_page=True)


def test_the_pages_read_right_at_desktop_and_phone_widths(
    portal,  # noqa: F811
    sandbox,
    browser,
    page,
    artifacts_dir,
):
    northwind = _verified_by_the_engine(sandbox, NORTHWIND, "Northwind Traders")
    tailspin = _verified_by_the_engine(sandbox, TAILSPIN, "Tailspin Toys")  # no Defender
    sandbox.control.set_roles(WOODGROVE, ROLES, application=PORTAL_APP)
    sandbox.control.disable(WOODGROVE)
    woodgrove = _verified_by_the_engine(
        sandbox, WOODGROVE, "Woodgrove Bank", primary_domain="woodgrove.example"
    )
    assert (northwind.status, tailspin.status, woodgrove.status) == (
        "verified",
        "incomplete",
        "no_access",
    )
    reported = make_tenant(
        display_name="Contoso",
        status=Tenant.Status.CONSENT_REPORTED,
        consent_reported_at=timezone.now(),
    )
    invitations = {
        "verified": _used_by(northwind, "Northwind Traders"),
        "incomplete": _used_by(tailspin, "Tailspin Toys"),
        "disabled": _used_by(woodgrove, "Woodgrove Bank"),
    }
    open_one = make_invitation(customer="Adatum", tenant="f9a2c5e8-0b7d-4c14-8e63-1a5f9d2b7c40")
    _ticket, refused_state = open_one.issue_ticket()

    customer = browser.new_context().new_page()
    _shoot(customer, f"{portal}/consent/invite/{open_one.code}/", "invitation", artifacts_dir)
    _shoot(
        customer,
        f"{portal}/consent/invite/{invitations['incomplete'].code}/",
        "used-invitation-incomplete",
        artifacts_dir,
    )
    for state, invitation in invitations.items():
        _shoot(
            customer,
            f"{portal}/consent/landing/{invitation.code}/",
            f"landing-{state}",
            artifacts_dir,
        )
    _shoot(
        customer,
        portal
        + callback_url(
            ("error", "unauthorized_client"),
            ("error_description", "AADSTS7000112: Application is disabled."),
            ("state", refused_state),
        ),
        "declined-unauthorized-client",
        artifacts_dir,
    )

    sign_in(page, portal, "admin@fabrikam-mssp.example")
    _shoot(page, f"{portal}/", "dashboard", artifacts_dir)
    for tenant in (tailspin, woodgrove, reported):
        _shoot(page, f"{portal}/tenants/{tenant.code}/", f"tenant-{tenant.status}", artifacts_dir)
    _shoot(page, f"{portal}/invitations/new/", "invitation-form", artifacts_dir)
    # The fleet's pages: profile change with its diff, a re-consent campaign, notifications,
    # the audit log.
    _shoot(
        page,
        f"{portal}/tenants/{northwind.code}/profile/?profile=mde-indicators",
        "tenant-profile-change",
        artifacts_dir,
    )
    Tenant.objects.filter(pk=tailspin.pk).update(diagnosis="role_missing")
    Verification.objects.filter(tenant=tailspin).update(
        results={"graph": {"token": "ok", "roles_missing": ["AuditLog.Read.All"]}}
    )
    campaign, _created = Campaign.objects.start(actor="admin@fabrikam-mssp.example")
    _shoot(page, f"{portal}/campaigns/", "campaigns", artifacts_dir)
    _shoot(page, f"{portal}/campaigns/{campaign.code}/", "campaign", artifacts_dir)
    Destination.objects.create(
        kind="teams", name="SOC channel", target="https://example.webhook.office.com/x/y",
        created_by="admin",
    )  # fmt: skip
    _shoot(page, f"{portal}/notifications/", "notifications", artifacts_dir)
    _shoot(page, f"{portal}/notifications/new/", "notification-form", artifacts_dir)
    _shoot(page, f"{portal}/audit/", "audit-log", artifacts_dir)
