"""The CSV export of the tenant list: columns, filters, formula neutralising, audit, roles."""

from __future__ import annotations

import csv
import io

import pytest
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from tenants.models import Tenant
from tests.personas import make_tenant

EXPORT = reverse("console:export_csv")
EVENTS = reverse("console:audit_log")
HEADER = [
    "tenant_id",
    "name",
    "domain",
    "status",
    "status_since",
    "stale_since",
    "last_checked_at",
    "last_verified_at",
    "access_profile",
    "diagnosis",
    "offboarded_at",
    "contact_name",
    "contact_email",
]


def _csv(response) -> list[list[str]]:
    assert response.status_code == 200
    body = b"".join(response.streaming_content).decode("utf-8")
    return list(csv.reader(io.StringIO(body)))


def test_it_exports_one_row_per_tenant(operator_client, northwind, tailspin):
    gone = make_tenant(display_name="Gone Ltd", status=Tenant.Status.OFFBOARDED)
    gone.offboarded_at = timezone.now()
    gone.save(update_fields=["offboarded_at"])

    response = operator_client.get(EXPORT, {"status": "all"})

    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="tenants-')
    assert response["Content-Disposition"].endswith('.csv"')
    rows = _csv(response)
    assert rows[0] == HEADER
    by_id = {row[0]: dict(zip(HEADER, row, strict=True)) for row in rows[1:]}
    assert len(rows) == 4
    assert set(by_id) == {str(northwind.tenant_id), str(tailspin.tenant_id), str(gone.tenant_id)}
    row = by_id[str(northwind.tenant_id)]
    assert row["name"] == "Northwind Traders"
    assert row["domain"] == "northwind.example"
    assert row["status"] == "verified"
    assert row["status_since"] == northwind.status_since.isoformat()
    assert row["stale_since"] == ""
    assert row["access_profile"] == "defender-xdr-readonly"
    assert by_id[str(tailspin.tenant_id)]["diagnosis"] == "resource_not_provisioned"
    assert by_id[str(gone.tenant_id)]["offboarded_at"] == gone.offboarded_at.isoformat()


def test_it_exports_with_the_dashboard_filters(admin_client, northwind, tailspin):
    rows = _csv(admin_client.get(EXPORT, {"status": "incomplete"}))

    assert [row[1] for row in rows[1:]] == ["Tailspin Toys"]
    rows = _csv(admin_client.get(EXPORT, {"q": "northwind", "sort": "nonsense"}))
    assert [row[1] for row in rows[1:]] == ["Northwind Traders"]


def test_it_audits_each_export(operator_client, northwind):
    _csv(operator_client.get(EXPORT, {"status": "verified"}))

    event = AuditEvent.objects.get(action="tenants.exported")
    assert event.actor == "operator@fabrikam-mssp.example"
    assert event.detail == {"filter": "status=verified"}


@pytest.mark.parametrize(
    "name",
    [
        '=HYPERLINK("http://evil.example","Click")',
        "+1+cmd|' /C calc'!A0",
        "-2+3",
        "@SUM(1,1)",
        "\tTabbed",
        "\rReturn",
    ],
)
def test_it_neutralises_formulas_in_cells(admin_client, db, name):
    make_tenant(display_name=name, primary_domain=name[:1] + "evil.example")

    rows = _csv(admin_client.get(EXPORT))

    assert rows[1][1] == "'" + name
    assert rows[1][2] == "'" + name[:1] + "evil.example"


def test_it_leaves_ordinary_text_alone(admin_client, db):
    make_tenant(display_name='Fabrikam, Inc. "East" 50% = ok', primary_domain="x-y.example")

    rows = _csv(admin_client.get(EXPORT))

    assert rows[1][1:3] == ['Fabrikam, Inc. "East" 50% = ok', "x-y.example"]


def test_it_exports_only_the_header_when_there_are_no_tenants(admin_client, db):
    assert _csv(admin_client.get(EXPORT)) == [HEADER]


def test_it_refuses_the_export_to_staff_without_a_role(outsider_client, northwind):
    response = outsider_client.get(EXPORT)

    assert response.status_code == 403
    assert not AuditEvent.objects.filter(action="tenants.exported").exists()


def test_it_refuses_the_export_by_post(admin_client, northwind):
    assert admin_client.post(EXPORT).status_code == 405


def test_it_refuses_the_export_to_anonymous_visitors(client, northwind):
    response = client.get(EXPORT)

    assert response.status_code == 302
    assert response.url.startswith(reverse("accounts:login"))


def test_it_exports_the_customer_contact(operator_client, db):
    make_tenant(contact_name="Ada Admin", contact_email="ada@northwind.example")

    rows = _csv(operator_client.get(EXPORT))

    assert rows[1][-2:] == ["Ada Admin", "ada@northwind.example"]
