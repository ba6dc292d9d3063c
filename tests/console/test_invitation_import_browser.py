"""The CSV import in a real browser: an admin signed in through the sandbox uploads a file,
reads the preview, confirms, emails the invitations to their contacts (a real SMTP server
here) and finds them in the list."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from consent.models import Invitation
from tests.conftest import NORTHWIND, TAILSPIN
from tests.console.test_journey import portal, sign_in  # noqa: F401  (the fixture)
from tests.notifications.receivers import SmtpReceiver, parts

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


@pytest.fixture
def smtp(settings):
    server = SmtpReceiver().start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", server.port
    yield server
    server.stop()


def test_an_admin_imports_a_file_through_the_preview(page, portal, tmp_path, artifacts_dir, smtp):  # noqa: F811
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

    # The invitations go to their contacts (only Northwind's row has one), by a task.
    page.get_by_role("button", name="Email each invitation to its contact").click()
    page.wait_for_selector("text=Emailing 1 invitation in the background; 1 skipped")
    work()
    (mail,) = smtp.messages
    northwind = Invitation.objects.get(expected_tenant_id=NORTHWIND)
    assert mail["To"] == "ada@northwind.example"
    text = dict(parts(mail))["text/plain"]
    assert f"{portal}/consent/invite/{northwind.code}/" in text
    northwind.refresh_from_db()
    assert northwind.emailed_by == "admin@fabrikam-mssp.example"

    page.goto(f"{portal}/invitations/")
    assert page.get_by_role("link", name="Northwind Traders").is_visible()
