"""The console's CSV import: upload → preview (nothing created, by a task) → confirm (the
stored preview, not the form; by a task) → created; admins only, the uploader only, CSRF,
bad files refused clearly."""

from __future__ import annotations

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.urls import reverse

from accounts import roles
from audit.models import AuditEvent
from consent.models import Invitation
from tests.conftest import NORTHWIND, TAILSPIN, WOODGROVE
from tests.personas import csrf_client, csrf_token, make_staff, signed_in_client

IMPORT = reverse("console:invitation_import")
FILE = (
    "customer_name;tenant;profile;contact_email\n"
    f"Northwind <b>Traders</b>;{NORTHWIND};;ada@northwind.example\n"
    "Tailspin Toys;tailspin.example;;\n"
    f"Again;{NORTHWIND};;\n"
    f"Woodgrove;{WOODGROVE};god-mode;\n"
    "Nobody;nobody-has-this.example;;\n"
).encode()


def _upload(data: bytes = FILE, name: str = "fleet.csv") -> dict[str, object]:
    return {"file": SimpleUploadedFile(name, data, content_type="text/csv")}


def _rows(html: str) -> list[tuple[str, str]]:
    return re.findall(r'data-line="(\d+)" data-verdict="([a-z-]+)"', html)


@pytest.fixture
def post(transactional_db):
    """POST as the browser does, then let the task worker (`db_worker`) run what it queued
    (it manages its own database connection: the test is a transactional one)."""

    def send(client, url, data):
        response = client.post(url, data)
        call_command("db_worker", "--batch", "--no-startup-delay", "--no-reload", verbosity=0)
        return response

    return send


def test_the_preview_is_a_task_and_the_page_follows_it(admin_client, db):
    response = admin_client.post(IMPORT, _upload())  # no worker has run it yet
    page = admin_client.get(response.url).content.decode()
    assert 'id="import-progress"' in page and "Nothing is created until you confirm" in page
    assert 'data-live-active="1"' in page
    assert _rows(page) == []
    assert admin_client.post(response.url, {"confirm": "on"}).status_code == 302
    assert not Invitation.objects.exists()


def test_upload_preview_confirm_creates_only_the_valid_rows(admin_client, sandbox, post):
    response = post(admin_client, IMPORT, _upload())
    assert response.status_code == 302
    preview_url = response.url

    page = admin_client.get(preview_url).content.decode()
    assert _rows(page) == [
        ("2", "will-create"),
        ("3", "will-create"),
        ("4", "duplicate-in-file"),
        ("5", "invalid"),
        ("6", "invalid"),
    ]
    assert "Northwind &lt;b&gt;Traders&lt;/b&gt;" in page  # the file's text, escaped
    assert "unknown profile &#x27;god-mode&#x27;" in page
    assert "same tenant as line 2" in page
    assert not Invitation.objects.exists()

    response = post(admin_client, preview_url, {"confirm": "on"})
    assert response.status_code == 302
    assert sorted(str(i.expected_tenant_id) for i in Invitation.objects.all()) == sorted(
        [NORTHWIND, TAILSPIN]
    )
    assert AuditEvent.objects.filter(action="invitation.created").count() == 2
    assert AuditEvent.objects.filter(action="invitations.imported").count() == 1
    done = admin_client.get(preview_url).content.decode()
    assert "2 invitations created" in done

    # Confirming twice, or importing the same file again, creates nothing new.
    post(admin_client, preview_url, {"confirm": "on"})
    again = post(admin_client, IMPORT, _upload())
    page = admin_client.get(again.url).content.decode()
    assert _rows(page)[:2] == [("2", "already-onboarded"), ("3", "already-onboarded")]
    post(admin_client, again.url, {"confirm": "on"})
    assert Invitation.objects.count() == 2


def test_confirm_needs_the_box_ticked(admin_client, db, post):
    response = post(
        admin_client, IMPORT, _upload(f"customer_name,tenant\nN,{NORTHWIND}\n".encode())
    )

    assert admin_client.post(response.url, {}).status_code == 400
    assert not Invitation.objects.exists()


def test_confirm_ignores_verdicts_posted_with_the_form(admin_client, db, post):
    """The preview is the stored one; a posted row list is not read."""
    response = post(
        admin_client,
        IMPORT,
        _upload(f"customer_name,tenant,profile\nN,{NORTHWIND},god-mode\n".encode()),
    )

    post(
        admin_client,
        response.url,
        {
            "confirm": "on",
            "verdict": "will-create",
            "rows": '[{"line": 2, "verdict": "will-create"}]',
        },
    )
    assert not Invitation.objects.exists()


@pytest.mark.parametrize(
    "data, message",
    [
        (b"name,tenant\nx,y\n", "lacks the column(s) customer_name"),
        ("customer_name,tenant\nCafé,x\n".encode("latin-1"), "not UTF-8"),
        (b"PK\x03\x04\x00\x00", "not CSV text"),
        (b"", "empty"),
    ],
    ids=["no-header", "latin-1", "xlsx", "empty"],
)
def test_a_bad_file_is_refused_with_a_clear_error_and_nothing_created(
    admin_client, db, data, message
):
    response = admin_client.post(IMPORT, _upload(data))

    assert response.status_code == 400
    assert message in response.content.decode()
    assert 'class="field-error"' in response.content.decode()
    assert not Invitation.objects.exists()
    assert not AuditEvent.objects.exists()


def test_an_import_of_another_admin_is_not_found(admin_client, db, post):
    response = post(
        admin_client, IMPORT, _upload(f"customer_name,tenant\nN,{NORTHWIND}\n".encode())
    )

    other = signed_in_client(make_staff("second-admin@fabrikam-mssp.example", [roles.ADMIN_ROLE]))
    assert other.get(response.url).status_code == 404
    assert other.post(response.url, {"confirm": "on"}).status_code == 404
    assert not Invitation.objects.exists()


def test_it_refuses_the_import_to_operators(operator_client, db):
    assert operator_client.get(IMPORT).status_code == 403
    assert operator_client.post(IMPORT, _upload()).status_code == 403


def test_it_refuses_an_upload_without_csrf_token(admin_user, post):
    client = csrf_client(admin_user)
    data = f"customer_name,tenant\nN,{NORTHWIND}\n".encode()

    assert post(client, IMPORT, _upload(data)).status_code == 403

    token = csrf_token(client, IMPORT)
    response = post(client, IMPORT, {**_upload(data), "csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert post(client, response.url, {"confirm": "on"}).status_code == 403
    assert not Invitation.objects.exists()
    token = csrf_token(client, response.url)
    post(client, response.url, {"confirm": "on", "csrfmiddlewaretoken": token})
    assert Invitation.objects.count() == 1
