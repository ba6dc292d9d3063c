"""Bulk invitations from CSV (consent/imports.py): every verdict, what confirming creates,
idempotence, and the file shapes spreadsheets write (BOM, semicolons)."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from consent import imports
from consent.imports import ImportFileError, Verdict
from consent.models import Invitation
from tests.conftest import ADATUM, HOME_TENANT, NORTHWIND, TAILSPIN, WOODGROVE
from tests.personas import make_tenant

pytestmark = pytest.mark.django_db

MIXED = f"""customer_name,tenant,profile,contact_email,contact_name,days
Northwind Traders,{NORTHWIND},,ada@northwind.example,Ada Admin,
Tailspin Toys,Tailspin.example,graph-reporting,,,30
Tailspin again,{TAILSPIN},,,,
Ourselves,fabrikam-mssp.example,,,,
Woodgrove Bank,{WOODGROVE},god-mode,,,
Nobody,nobody-has-this.example,,,,
Adatum,{ADATUM},,not-an-email,,
Bad tenant,not a tenant!,,,,
,{NORTHWIND.replace("2c8f", "3c8f")},,,,
Too long,{HOME_TENANT.replace("7d3e", "7d3f")},,,,400
""".encode()


def verdicts(preview: imports.Preview) -> list[tuple[int, str]]:
    return [(row.line, row.verdict) for row in preview.rows]


def test_it_previews_every_row_with_its_verdict_and_changes_nothing(sandbox):
    preview = imports.preview(MIXED, filename="fleet.csv")

    assert verdicts(preview) == [
        (2, Verdict.WILL_CREATE),
        (3, Verdict.WILL_CREATE),
        (4, Verdict.DUPLICATE),
        (5, Verdict.INVALID),
        (6, Verdict.INVALID),
        (7, Verdict.INVALID),
        (8, Verdict.INVALID),
        (9, Verdict.INVALID),
        (10, Verdict.INVALID),
        (11, Verdict.INVALID),
    ]
    reasons = {row.line: row.reason for row in preview.rows}
    assert reasons[4] == "same tenant as line 3"
    assert "home tenant" in reasons[5]
    assert "unknown profile 'god-mode'" in reasons[6]
    assert "domain does not resolve" in reasons[7] and "nobody-has-this.example" in reasons[7]
    assert "malformed contact_email 'not-an-email'" in reasons[8]
    assert "neither a tenant ID" in reasons[9]
    assert "customer_name" in reasons[10]
    assert "days" in reasons[11]
    tailspin = preview.rows[1]
    assert (tailspin.tenant_id, tailspin.domain, tailspin.profile, tailspin.days) == (
        TAILSPIN,
        "tailspin.example",
        "graph-reporting",
        30,
    )
    assert not Invitation.objects.exists()
    assert not AuditEvent.objects.exists()


def test_confirm_creates_only_the_valid_rows_and_audits_each(sandbox):
    created = imports.confirm(imports.preview(MIXED, filename="fleet.csv"), actor="admin@x")

    assert sorted(str(i.expected_tenant_id) for i in created) == sorted([NORTHWIND, TAILSPIN])
    northwind = Invitation.objects.get(expected_tenant_id=NORTHWIND)
    assert (northwind.contact_name, northwind.contact_email) == (
        "Ada Admin",
        "ada@northwind.example",
    )
    assert northwind.access_profile == "defender-xdr-readonly"  # the default profile
    assert Invitation.objects.get(expected_tenant_id=TAILSPIN).expected_domain == (
        "tailspin.example"
    )
    assert AuditEvent.objects.filter(action="invitation.created").count() == 2
    event = AuditEvent.objects.get(action="invitations.imported")
    assert event.actor == "admin@x"
    detail = event.detail
    assert (detail["rows"], detail["created"], detail["invalid"]) == ("10", "2", "7")
    assert event.detail["file"] == "fleet.csv"


def test_importing_the_same_file_again_creates_nothing(sandbox):
    imports.confirm(imports.preview(MIXED), actor="admin@x")

    again = imports.preview(MIXED)

    assert again.count(Verdict.WILL_CREATE) == 0
    assert [r.line for r in again.rows if r.verdict == Verdict.ALREADY_ONBOARDED] == [2, 3]
    assert "open invitation" in again.rows[0].reason
    assert imports.confirm(again, actor="admin@x") == []
    assert Invitation.objects.count() == 2


def test_a_row_made_stale_between_preview_and_confirm_is_not_created(db):
    preview = imports.preview(f"customer_name,tenant\nNorthwind,{NORTHWIND}\n".encode())
    make_tenant(NORTHWIND, display_name="Northwind Traders")

    assert imports.confirm(preview, actor="admin@x") == []
    assert preview.rows[0].verdict == Verdict.ALREADY_ONBOARDED
    assert not Invitation.objects.exists()


def test_an_onboarded_tenant_is_already_onboarded_and_an_offboarded_one_is_invited(db):
    make_tenant(NORTHWIND, display_name="Northwind Traders")
    make_tenant(TAILSPIN, display_name="Tailspin", status="offboarded")

    preview = imports.preview(
        f"customer_name,tenant\nNorthwind,{NORTHWIND}\nTailspin,{TAILSPIN}\n".encode()
    )

    assert verdicts(preview) == [(2, Verdict.ALREADY_ONBOARDED), (3, Verdict.WILL_CREATE)]


@pytest.mark.parametrize(
    "data",
    [
        f"\ufeffcustomer_name;tenant;days\nNorthwind; {NORTHWIND} ;7\n".encode(),
        f"customer_name;tenant;days\r\nNorthwind;{NORTHWIND};7\r\n".encode(),
        f'\ufeffCustomer_Name,Tenant,Days\n\n"Northwind, Inc.",{NORTHWIND},7\n'.encode(),
    ],
    ids=["bom-semicolon", "semicolon-crlf", "bom-comma-blank-line"],
)
def test_it_reads_bom_and_semicolon_files(db, data):
    (row,) = imports.preview(data).rows

    assert row.verdict == Verdict.WILL_CREATE, row.reason
    assert (row.tenant_id, row.days) == (NORTHWIND, 7)


def test_lines_count_blank_lines_and_quoted_line_breaks(db):
    data = (
        f'customer_name,tenant\n\n"Two\nlines",{NORTHWIND}\nTailspin,{TAILSPIN}\n'
        f"Extra,{WOODGROVE},surplus\n"
    ).encode()

    rows = imports.preview(data).rows

    assert [row.line for row in rows] == [3, 5, 6]
    assert rows[0].customer_name == "Two lines"
    assert rows[2].verdict == Verdict.INVALID and "more cells" in rows[2].reason


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "header"),
        (f"name,tenant\nNorthwind,{NORTHWIND}\n".encode(), "customer_name"),
        (b"customer_name,tenant,colour\n", "unknown or repeated"),
        ("customer_name,tenant\nCafé,x\n".encode("latin-1"), "not UTF-8"),
        (b"customer_name,tenant\nA,\0B\n", "not CSV text"),
    ],
    ids=["empty", "no-customer-column", "unknown-column", "latin-1", "nul-byte"],
)
def test_it_refuses_an_unreadable_file_as_a_whole(db, data, message):
    with pytest.raises(ImportFileError, match=message):
        imports.preview(data)
