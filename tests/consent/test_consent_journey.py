"""The customer's journey in a real browser: invitation page → the sandbox's consent page →
back to the portal, with the tenant in the database."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django_tasks_db.models import DBTaskResult

from consent.models import ConsentTicket, Invitation
from tenants.models import Tenant, Verification
from tests.conftest import NORTHWIND, PORTAL_APP

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}


@pytest.fixture
def portal(live_server, sandbox, settings) -> str:
    """The portal on the live server, its callback registered on the app in the sandbox."""
    settings.PORTAL_BASE_URL = live_server.url
    settings.CSRF_TRUSTED_ORIGINS = [live_server.url]
    sandbox.control.update_application(
        PORTAL_APP,
        redirect_uris=[
            f"{live_server.url}/consent/callback/",
            "http://localhost:8000/consent/callback/",
            "http://localhost:8000/accounts/callback/",
        ],
    )
    return live_server.url


def invite_northwind() -> str:
    out = StringIO()
    call_command(
        "create_invitation", "--customer", "Northwind Traders", "--tenant", "northwind.example",
        stdout=out,
    )  # fmt: skip
    return out.getvalue().strip()


def test_a_customer_admin_grants_consent_and_lands_back_on_the_portal(
    portal, page, browser, artifacts_dir
):
    url = invite_northwind()
    assert url.startswith(f"{portal}/consent/invite/")

    phone = browser.new_context(viewport=PHONE, device_scale_factor=2)
    phone_page = phone.new_page()
    phone_page.goto(url)
    phone_page.screenshot(path=artifacts_dir / "consent-invitation-phone.png", full_page=True)
    phone.close()

    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(url)
    assert (
        page.get_by_role("heading", level=1)
        .inner_text()
        .endswith("asks for access to your Microsoft tenant")
    )
    page.screenshot(path=artifacts_dir / "consent-invitation.png", full_page=True)

    page.get_by_role("button", name="Grant admin consent").click()
    page.wait_for_selector("select[name=user]")
    page.screenshot(path=artifacts_dir / "consent-sandbox-consent-page.png", full_page=True)
    page.select_option("select[name=user]", label="admin@northwind.example")
    page.get_by_role("button", name="Accept").click()

    page.wait_for_url(f"{portal}/consent/landing/**")
    assert "your consent is recorded" in page.content()
    assert NORTHWIND in page.content()
    page.screenshot(path=artifacts_dir / "consent-landing.png", full_page=True)

    tenant = Tenant.objects.get()
    assert str(tenant.tenant_id) == NORTHWIND
    assert tenant.status == Tenant.Status.CONSENT_REPORTED
    assert Invitation.objects.get().status == Invitation.Status.USED
    verification = Verification.objects.get(tenant=tenant)
    assert verification.state == Verification.State.QUEUED
    assert verification.trigger == Verification.Trigger.CONSENT
    task = DBTaskResult.objects.get()
    assert task.args_kwargs["args"] == [str(verification.code)]

    # Refreshing the landing page replays nothing.
    page.reload()
    assert Tenant.objects.count() == 1
    assert Verification.objects.count() == 1


def test_a_customer_admin_cancels_and_can_start_again(portal, page, artifacts_dir):
    url = invite_northwind()
    page.goto(url)
    page.get_by_role("button", name="Grant admin consent").click()
    page.wait_for_selector("select[name=user]")
    page.get_by_role("button", name="Cancel").click()

    page.wait_for_url(f"{portal}/consent/callback/**")
    assert "Consent was not granted" in page.content()
    page.screenshot(path=artifacts_dir / "consent-declined.png", full_page=True)

    assert Tenant.objects.count() == 0
    assert Verification.objects.count() == 0
    assert ConsentTicket.objects.get().result == ConsentTicket.Result.DECLINED
    invitation = Invitation.objects.get()
    assert invitation.is_usable

    page.get_by_role("link", name="Try again").click()
    page.wait_for_url(url)
    assert page.get_by_role("button", name="Grant admin consent").is_visible()


def test_the_landing_page_shows_the_verdict_in_place_as_soon_as_the_worker_has_it(
    portal, page, browser, artifacts_dir
):
    page.goto(invite_northwind())
    page.get_by_role("button", name="Grant admin consent").click()
    page.wait_for_selector("select[name=user]")
    page.select_option("select[name=user]", label="admin@northwind.example")
    page.get_by_role("button", name="Accept").click()
    page.wait_for_url(f"{portal}/consent/landing/**")
    assert "Waiting to start" in page.inner_text("#landing-live")
    landing = page.url
    page.evaluate("window.stillTheSamePage = true")

    call_command("db_worker", "--batch", "--no-startup-delay", "--no-reload", verbosity=0)

    # refresh.js swaps the card in (no reload: the marker survives) and then stops asking.
    page.locator("#landing-live[data-live-active='0']").wait_for(timeout=15000)
    assert "everything Fabrikam Security needs works" in page.inner_text("#landing-live")
    assert page.evaluate("window.stillTheSamePage") is True
    assert page.url == landing
    page.screenshot(path=artifacts_dir / "consent-landing-verified.png", full_page=True)

    # Without JavaScript the page still follows a check: it reloads itself meanwhile.
    Verification.objects.create(tenant=Tenant.objects.get(), trigger=Verification.Trigger.MANUAL)
    quiet = browser.new_context(java_script_enabled=False)
    plain = quiet.new_page()
    plain.goto(landing)
    assert '<noscript><meta http-equiv="refresh" content="3"></noscript>' in plain.content()
    quiet.close()


def test_a_consent_refused_for_a_missing_service_names_it(portal, page, artifacts_dir):
    # Tailspin has no Defender: Entra refuses the whole consent (AADSTS650052).
    out = StringIO()
    call_command(
        "create_invitation", "--customer", "Tailspin Toys", "--tenant", "tailspin.example",
        "--profile", "graph-reporting", stdout=out,
    )  # fmt: skip
    page.goto(out.getvalue().strip())
    page.get_by_role("button", name="Grant admin consent").click()
    page.wait_for_selector("select[name=user]")
    page.select_option("select[name=user]", label="admin@tailspin.example")
    page.get_by_role("button", name="Accept").click()

    page.wait_for_url(f"{portal}/consent/callback/**")
    heading = page.get_by_role("heading", level=1).inner_text()
    assert heading == "Microsoft refused the consent: a service is missing in your organisation"
    body = page.content()
    assert "Microsoft Defender XDR" in body
    assert "AADSTS" not in body
    page.screenshot(path=artifacts_dir / "consent-missing-service.png", full_page=True)
    assert Tenant.objects.count() == 0
    assert Invitation.objects.get().is_usable
