"""The CSV import in a real browser: an admin signed in through the sandbox uploads a file,
reads the preview, confirms, and finds the invitations created."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from consent.models import Invitation
from tests.conftest import NORTHWIND, TAILSPIN
from tests.console.test_journey import portal, sign_in  # noqa: F401  (the fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

FILE = (
    "\ufeffcustomer_name;tenant;profile;contact_email\n"
    f"Northwind Traders;{NORTHWIND};;ada@northwind.example\n"
    "Tailspin Toys;tailspin.example;;\n"
    f"Northwind again;{NORTHWIND};;\n"
    "Nobody;nobody-has-this.example;;\n"
).encode()


def work() -> None:
    """What `manage.py db_worker` does: run the queued tasks (here, in the test's thread)."""
    call_command("db_worker", "--batch", "--no-startup-delay", "--no-reload", verbosity=0)


def test_an_admin_imports_a_file_through_the_preview(page, portal, tmp_path, artifacts_dir):  # noqa: F811
    upload = tmp_path / "fleet.csv"
    upload.write_bytes(FILE)
    sign_in(page, portal, "admin@fabrikam-mssp.example")

    page.goto(f"{portal}/invitations/")
    page.get_by_role("link", name="Import CSV…").click()
    page.set_input_files("input[type=file]", str(upload))
    page.get_by_role("button", name="Preview").click()
    # The page follows the preview task: progress first, the verdicts once a worker ran it.
    page.wait_for_selector("#import-progress")
    work()
    page.wait_for_selector("#import-rows")

    verdicts = page.locator("#import-rows tbody tr").evaluate_all(
        "rows => rows.map(r => [r.dataset.line, r.dataset.verdict])"
    )
    assert verdicts == [
        ["2", "will-create"],
        ["3", "will-create"],
        ["4", "duplicate-in-file"],
        ["5", "invalid"],
    ]
    assert "does not resolve" in page.locator("tr[data-line='5']").inner_text()
    assert not Invitation.objects.exists()
    page.screenshot(path=str(artifacts_dir / "import-preview.png"), full_page=True)

    page.get_by_label("Create these invitations").check()
    page.get_by_role("button", name="Confirm import").click()
    page.wait_for_selector("#import-progress")
    work()
    page.wait_for_selector("text=2 invitations created")

    assert sorted(str(i.expected_tenant_id) for i in Invitation.objects.all()) == sorted(
        [NORTHWIND, TAILSPIN]
    )
    page.get_by_role("link", name="invitations list").click()
    assert page.get_by_role("link", name="Northwind Traders").is_visible()
