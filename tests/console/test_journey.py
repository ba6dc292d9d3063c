"""The MSSP's journey through the staff console in a real browser: sign in with Entra (the
sandbox's sign-in page), invite Northwind, the customer consents in a second browser, the
verification proves access, consent is revoked and the console says so, the tenant is
offboarded. Then what an operator and a user without a role get."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from accounts.models import StaffIdentity
from consent.models import Invitation
from tenants.models import Tenant, Verification
from tenants.verification.runner import run_verification
from tests.conftest import NORTHWIND, PORTAL_APP
from tests.personas import make_tenant

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DESKTOP = {"width": 1280, "height": 900}


@pytest.fixture
def portal(live_server, sandbox, settings) -> str:
    """The portal on the live server, its consent and sign-in callbacks registered on the
    app in the sandbox."""
    settings.PORTAL_BASE_URL = live_server.url
    settings.CSRF_TRUSTED_ORIGINS = [live_server.url]
    sandbox.control.update_application(
        PORTAL_APP,
        redirect_uris=[
            f"{live_server.url}/consent/callback/",
            f"{live_server.url}/accounts/callback/",
        ],
    )
    return live_server.url


@pytest.fixture
def customer_page(browser) -> Iterator[object]:
    """The customer's administrator: another browser, no portal session."""
    context = browser.new_context(viewport=DESKTOP)
    yield context.new_page()
    context.close()


def sign_in(page: object, portal: str, upn: str) -> None:
    """Open the console signed out, press "Sign in with Microsoft", pick `upn` on the
    sandbox's sign-in page."""
    page.goto(f"{portal}/")
    page.wait_for_url(f"{portal}/accounts/login/**")
    page.get_by_role("button", name="Sign in with Microsoft").click()
    page.wait_for_selector("select[name=user]")
    page.select_option("select[name=user]", label=upn)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{portal}/**")


def run_queued_verification(tenant: Tenant) -> Verification:
    """What the worker (not running in tests) would do with the tenant's queued check."""
    queued = Verification.objects.get(tenant=tenant, state=Verification.State.QUEUED)
    finished = run_verification(str(queued.code))
    assert finished is not None
    assert finished.state == Verification.State.DONE
    return finished


def token_column(page: object) -> dict[str, str]:
    """The tenant page's "Access per resource" table: resource → what became of its token."""
    rows = page.locator("section[aria-labelledby=resources-h] tbody tr")
    return {
        row.locator("th").inner_text(): row.locator("td").nth(2).inner_text() for row in rows.all()
    }


def tenant_row(page: object) -> object:
    return page.locator("table.tenants tbody tr", has_text=NORTHWIND)


def test_an_admin_onboards_watches_and_offboards_a_customer(
    portal, sandbox, page, customer_page, artifacts_dir
):
    page.set_viewport_size(DESKTOP)

    # 1. Sign in through Entra (the sandbox) as a Portal.Admin: the dashboard, empty.
    sign_in(page, portal, "admin@fabrikam-mssp.example")
    assert page.url == f"{portal}/"
    assert page.get_by_role("heading", level=1).inner_text() == "Tenants"
    assert page.locator(".usermenu .user-name").inner_text() == "admin@fabrikam-mssp.example"
    assert page.locator(".usermenu .role-pill").text_content() == "Admin"
    assert "Invite a customer" in page.locator("table.tenants").inner_text()
    identity = StaffIdentity.objects.get(user__username="admin@fabrikam-mssp.example")
    assert identity.roles == ["Portal.Admin"]

    # 2. A new invitation for Northwind, by domain (looked up in Entra to its tenant id).
    page.get_by_role("link", name="New invitation").click()
    page.wait_for_url(f"{portal}/invitations/new/")
    page.get_by_label("Customer name").fill("Northwind Traders")
    page.get_by_label("Customer tenant ID or domain").fill("northwind.example")
    page.get_by_role("button", name="Create invitation").click()
    page.wait_for_url(re.compile(re.escape(portal) + r"/invitations/[0-9a-f-]{36}/$"))
    assert "Invitation created. Send the customer the link below." in page.content()
    expected = page.locator("dt:has-text('Expected tenant') + dd").inner_text()
    assert expected == f"{NORTHWIND} (northwind.example)"
    link = page.locator("#invitation-url").input_value()
    assert link.startswith(f"{portal}/consent/invite/")
    invitation = Invitation.objects.get()
    assert str(invitation.expected_tenant_id) == NORTHWIND
    assert invitation.created_by == "admin@fabrikam-mssp.example"

    # 3. The customer's administrator opens the link in their own browser and consents.
    customer_page.goto(link)
    customer_page.get_by_role("button", name="Grant admin consent").click()
    customer_page.wait_for_selector("select[name=user]")
    customer_page.select_option("select[name=user]", label="admin@northwind.example")
    customer_page.get_by_role("button", name="Accept").click()
    customer_page.wait_for_url(f"{portal}/consent/landing/**")
    assert "your consent is recorded" in customer_page.content()
    assert "Waiting to start" in customer_page.locator(".verification").inner_text()

    # The console shows it as reported, not yet verified.
    page.goto(f"{portal}/")
    assert "Consent reported" in tenant_row(page).inner_text()
    assert "Verifying" in tenant_row(page).inner_text()

    # 4. The verification runs: access proven, on the console and on the customer's page.
    tenant = Tenant.objects.get(tenant_id=NORTHWIND)
    assert run_queued_verification(tenant).outcome == Verification.Outcome.VERIFIED
    page.reload()
    row = tenant_row(page)
    assert row.locator(".badge.status-verified").inner_text() == "Verified"
    assert "Verifying" not in row.inner_text()
    assert row.get_by_role("link").inner_text() == "Northwind Traders"
    page.screenshot(path=artifacts_dir / "staff-dashboard.png", full_page=True)

    customer_page.reload()
    assert customer_page.locator(".verification .state.ok").inner_text() == (
        "Done: everything Fabrikam Security needs works. Nothing more is needed from you."
    )

    row.get_by_role("link", name="Northwind Traders").click()
    page.wait_for_url(f"{portal}/tenants/{tenant.code}/")
    assert page.get_by_role("heading", level=1).inner_text() == "Northwind Traders"
    assert page.locator(".status-line .badge.status-verified").inner_text() == "Verified"
    assert page.locator(".diag-title").inner_text() == "Access verified"
    assert token_column(page) == {
        "Microsoft Graph": "obtained",
        "Microsoft Defender XDR": "obtained",
    }
    page.screenshot(path=artifacts_dir / "staff-tenant.png", full_page=True)

    # 5. The customer removes the app; the admin re-verifies: no access, and what to do.
    sandbox.control.revoke(NORTHWIND)
    page.get_by_role("button", name="Re-verify now").click()
    page.wait_for_url(f"{portal}/tenants/{tenant.code}/")
    assert "Verification queued." in page.locator(".flash-list").inner_text()
    queued = Verification.objects.get(tenant=tenant, state=Verification.State.QUEUED)
    assert queued.trigger == Verification.Trigger.MANUAL
    assert queued.requested_by == "admin@fabrikam-mssp.example"

    finished = run_queued_verification(tenant)
    assert finished.outcome == Verification.Outcome.NO_ACCESS
    assert finished.diagnosis == "not_consented"
    page.reload()
    assert page.locator(".status-line .badge.status-no_access").inner_text() == "No access"
    diagnosis = page.locator(".diagnosis-panel")
    assert diagnosis.locator(".diag-title").inner_text() == "App not consented in the tenant"
    steps = diagnosis.locator("ol.steps li")
    assert steps.count() == 2
    assert "consent" in steps.nth(0).inner_text().lower()
    assert (
        steps.nth(1).inner_text()
        == "If the customer removed the app on purpose, offboard the tenant."
    )
    assert diagnosis.locator(".customer-text").is_visible()
    # Entra refused Graph's token; Defender's was not asked for after that.
    assert token_column(page) == {
        "Microsoft Graph": "refused AADSTS700016",
        "Microsoft Defender XDR": "not tried",
    }
    # The re-consent panel offers a fresh invitation bound to this tenant.
    assert page.get_by_role("button", name="Create re-consent invitation").is_visible()
    page.screenshot(path=artifacts_dir / "staff-tenant-no-access.png", full_page=True)

    page.goto(f"{portal}/")
    assert tenant_row(page).locator(".badge.status-no_access").inner_text() == "No access"

    # 6. Offboard, confirming on the way: the console says so and gives the customer's steps.
    page.goto(f"{portal}/tenants/{tenant.code}/")
    page.get_by_role("link", name="Offboard…").click()
    page.wait_for_url(f"{portal}/tenants/{tenant.code}/offboard/")
    page.get_by_label("I understand: offboard this tenant").check()
    page.get_by_role("button", name="Offboard tenant").click()
    page.wait_for_url(f"{portal}/tenants/{tenant.code}/")
    assert "is offboarded. Send the customer the steps below." in page.content()
    assert page.locator(".status-line .badge.status-offboarded").inner_text() == "Offboarded"
    offboarded = page.locator("section[aria-labelledby=offboarded-h]")
    assert offboarded.get_by_role("heading", level=2).inner_text().startswith("Offboarded on ")
    assert PORTAL_APP in offboarded.locator("ol.steps").inner_text()
    assert offboarded.locator("ol.steps li").count() == 4
    # Nothing left to act on.
    assert page.get_by_role("button", name="Re-verify now").count() == 0
    assert page.get_by_role("link", name="Offboard…").count() == 0
    page.screenshot(path=artifacts_dir / "staff-tenant-offboarded.png", full_page=True)

    tenant.refresh_from_db()
    assert tenant.status == Tenant.Status.OFFBOARDED
    assert tenant.offboarded_at is not None
    assert not Verification.objects.filter(tenant=tenant, state__in=Verification.OPEN_STATES)


def test_an_operator_sees_no_admin_actions_and_a_user_without_role_is_refused(
    portal, page, browser, artifacts_dir
):
    page.set_viewport_size(DESKTOP)
    tenant = make_tenant(
        NORTHWIND,
        display_name="Northwind Traders",
        primary_domain="northwind.example",
        status=Tenant.Status.NO_ACCESS,
        diagnosis="not_consented",
    )

    sign_in(page, portal, "operator@fabrikam-mssp.example")
    assert page.url == f"{portal}/"
    assert page.locator(".usermenu .role-pill").text_content() == "Operator"
    assert "Northwind Traders" in tenant_row(page).inner_text()
    for name in ("New invitation", "Re-verify all"):
        assert page.get_by_role("link", name=name).count() == 0
    # Operators re-verify (the selection too); nothing else of the admin's.
    assert page.get_by_role("button", name="Re-verify selected").count() == 1
    assert page.get_by_role("button", name="Add selected to group").count() == 0
    assert page.get_by_role("link", name="Invitations").count() == 0
    assert page.get_by_role("link", name="Groups").count() == 0

    page.get_by_role("link", name="Northwind Traders").click()
    page.wait_for_url(f"{portal}/tenants/{tenant.code}/")
    assert page.get_by_role("button", name="Re-verify now").count() == 1
    assert page.get_by_role("link", name="Offboard…").count() == 0
    assert page.get_by_role("button", name="Create re-consent invitation").count() == 0
    assert "Ask a portal admin to create a re-consent invitation" in page.content()
    page.screenshot(path=artifacts_dir / "staff-tenant-operator.png", full_page=True)

    # An admin page asked for by URL: refused.
    response = page.goto(f"{portal}/tenants/{tenant.code}/offboard/")
    assert response.status == 403

    # A home-tenant user without a portal role: a clear refusal, and no session.
    visitor = browser.new_context(viewport=DESKTOP)
    try:
        visitor_page = visitor.new_page()
        sign_in(visitor_page, portal, "visitor@fabrikam-mssp.example")
        assert visitor_page.url.startswith(f"{portal}/accounts/callback/")
        assert (
            visitor_page.get_by_role("heading", level=1).inner_text()
            == "You cannot sign in to the console"
        )
        assert "Your account has no role in the portal" in visitor_page.content()
        assert "Portal.Operator" in visitor_page.locator(".auth-card").inner_text()
        visitor_page.screenshot(path=artifacts_dir / "staff-refused.png", full_page=True)

        visitor_page.goto(f"{portal}/")
        visitor_page.wait_for_url(f"{portal}/accounts/login/**")
        assert visitor_page.get_by_role("button", name="Sign in with Microsoft").is_visible()
    finally:
        visitor.close()
    assert not StaffIdentity.objects.filter(user__username="visitor@fabrikam-mssp.example")
