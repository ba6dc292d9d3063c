"""Notification destinations in a real browser: an admin adds a webhook, copies the secret
shown once, sends a test that a real receiver verifies, and reads it in the delivery log; an
operator finds no way to the destinations."""

from __future__ import annotations

import pytest

from notifications.models import Destination
from tests.console.test_journey import portal, sign_in  # noqa: F401  (the fixture)
from tests.notifications.receivers import WebhookReceiver

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def receiver(settings):
    settings.NOTIFY_ALLOW_INSECURE_URLS = True  # the receiver listens on 127.0.0.1
    hook = WebhookReceiver().start()
    yield hook
    hook.stop()


def test_an_admin_adds_a_webhook_sends_a_test_and_reads_the_log(
    page,
    portal,  # noqa: F811
    receiver,
    artifacts_dir,
):
    sign_in(page, portal, "admin@fabrikam-mssp.example")
    page.get_by_role("link", name="Notifications").click()
    page.get_by_role("link", name="Add destination").click()
    page.get_by_label("Kind").select_option("webhook")
    page.get_by_label("Name").fill("PSA webhook")
    page.get_by_label("URL or email address").fill(receiver.url)
    page.get_by_role("button", name="Add destination").click()

    secret = page.locator("#webhook-secret").input_value()
    destination = Destination.objects.get()
    assert secret == destination.secret and secret.startswith("whsec_")
    receiver.secret = secret
    page.screenshot(path=str(artifacts_dir / "notification-created.png"), full_page=True)

    page.get_by_role("link", name="Open PSA webhook").click()
    assert secret not in page.content()  # shown once, on the page before
    page.get_by_role("button", name="Send test").click()
    page.wait_for_selector("text=Test delivered: the receiver answered 200.")

    (message,) = receiver.received
    assert message.verification_error == ""
    assert message.payload["type"] == "notification.test"
    log = page.locator("table.data").inner_text()
    assert "notification.test" in log and "HTTP 200" in log and "Delivered" in log
    assert message.headers["webhook-id"] in log
    page.screenshot(path=str(artifacts_dir / "notification-log.png"), full_page=True)

    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(artifacts_dir / "notification-log-phone.png"), full_page=True)


def test_an_operator_cannot_see_or_change_destinations(page, portal, receiver):  # noqa: F811
    destination = Destination.objects.add(
        kind="webhook", name="PSA webhook", target=receiver.url, actor="admin"
    )
    sign_in(page, portal, "operator@fabrikam-mssp.example")

    assert page.get_by_role("link", name="Notifications").count() == 0
    for path in (
        "notifications/",
        f"notifications/{destination.code}/",
        f"notifications/{destination.code}/edit/",
    ):
        response = page.goto(f"{portal}/{path}")
        assert response.status == 403
        assert destination.secret not in page.content()
        assert receiver.url not in page.content()
