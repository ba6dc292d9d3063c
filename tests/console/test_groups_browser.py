"""Tenant groups in the browser: an admin creates a group, puts a tenant in it on the
tenant page and filters the dashboard by it; an operator mapped to it by their Entra group
sees that tenant only."""

from __future__ import annotations

import pytest

from tenants.models import TenantGroup
from tests.console.test_journey import DESKTOP, portal, sign_in  # noqa: F401 (fixture)
from tests.personas import make_tenant

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SOC_EMEA = "3b9e6f12-8c4d-4a57-9e21-6d0f3a8b5c74"


def test_an_admin_scopes_the_operator_to_a_group(portal, browser, artifacts_dir):  # noqa: F811
    emea_tenant = make_tenant(display_name="Northwind Traders", primary_domain="northwind.example")
    make_tenant(display_name="Woodgrove Bank", primary_domain="woodgrove.example")
    admin = browser.new_context(viewport=DESKTOP).new_page()
    sign_in(admin, portal, "admin@fabrikam-mssp.example")
    admin.get_by_role("link", name="Groups").click()
    assert "No tenant groups yet: every operator sees every tenant." in admin.content()
    admin.get_by_role("link", name="New group").first.click()
    admin.get_by_label("Name").fill("SOC EMEA")
    admin.get_by_label("Entra security groups (object ids, one a line)").fill(SOC_EMEA)
    admin.get_by_role("button", name="Create group").click()
    assert "Group “SOC EMEA” created." in admin.content()
    admin.screenshot(path=artifacts_dir / "staff-group-created.png", full_page=True)

    admin.goto(f"{portal}/tenants/{emea_tenant.code}/")
    admin.get_by_label("SOC EMEA").check()
    admin.get_by_role("button", name="Save groups").click()
    assert "Northwind Traders is now in: SOC EMEA." in admin.content()
    admin.screenshot(path=artifacts_dir / "staff-tenant-groups.png", full_page=True)

    admin.goto(f"{portal}/")
    admin.select_option("select[name=group]", label="SOC EMEA")
    admin.get_by_role("button", name="Apply").click()
    rows = admin.locator("table.tenants tbody tr")
    assert rows.count() == 1 and "Northwind Traders" in rows.first.inner_text()
    admin.screenshot(path=artifacts_dir / "staff-dashboard-group-filter.png", full_page=True)
    assert list(TenantGroup.objects.get().tenants.all()) == [emea_tenant]

    operator = browser.new_context(viewport=DESKTOP).new_page()
    sign_in(operator, portal, "operator@fabrikam-mssp.example")  # in SOC EMEA in Entra
    body = operator.locator("table.tenants tbody").inner_text()
    assert "Northwind Traders" in body and "Woodgrove Bank" not in body
    assert operator.get_by_role("button", name="Re-verify selected").count() == 1
    operator.screenshot(path=artifacts_dir / "staff-dashboard-scoped.png", full_page=True)
