"""What each kind of destination receives, and the shell command that manages them."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command

from audit.models import AuditEvent
from notifications import messages
from notifications.delivery import send_due
from notifications.events import emit
from notifications.models import Delivery, Destination, Event
from tests.conftest import NORTHWIND
from tests.notifications.receivers import WebhookReceiver, parts

HOSTILE = "Evil <b>Corp</b> *bold* [x](https://evil.example) <!channel> & co"


def _change(name: str = "Northwind Traders") -> Event:
    return emit(
        "tenant.status_changed",
        {
            "tenant_id": NORTHWIND,
            "customer_name": name,
            "previous_status": "verified",
            "status": "no_access",
            "diagnosis": {
                "key": "app_disabled",
                "title": "The app is disabled in this tenant",
                "remediation": "Ask the customer to enable it.\nThen re-verify.",
            },
            "url": "https://portal.fabrikam.example/tenants/x/",
        },
        tenant_id=NORTHWIND,
    )


@pytest.fixture
def chat(db):
    hook = WebhookReceiver().start()
    yield hook
    hook.stop()


def test_teams_gets_an_adaptive_card_with_the_fix_and_a_link(chat):
    Destination.objects.add(kind="teams", name="SOC channel", target=chat.url, actor="a")
    _change()
    send_due()

    (message,) = chat.received
    body = message.json
    assert body["type"] == "message"
    (attachment,) = body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    texts = [block["text"] for block in card["body"]]
    assert texts[0] == "Northwind Traders: verified → no access"
    assert "Ask the customer to enable it." in texts
    assert card["actions"][0]["url"] == "https://portal.fabrikam.example/tenants/x/"


def test_chat_markup_in_a_customer_name_is_shown_as_text(chat):
    Destination.objects.add(kind="teams", name="t", target=chat.url, actor="a")
    Destination.objects.add(kind="slack", name="s", target=chat.url, actor="a")
    _change(HOSTILE)
    send_due()

    teams, slack = sorted(chat.received, key=lambda m: "attachments" in m.json, reverse=True)
    headline = teams.json["attachments"][0]["content"]["body"][0]["text"]
    assert r"\*bold\*" in headline and r"\[x\]\(https://evil.example\)" in headline
    text = slack.json["blocks"][0]["text"]["text"]
    assert "&lt;!channel&gt;" in text and "<!channel>" not in text
    assert "&amp; co" in text


def test_email_has_a_subject_naming_customer_and_status_and_escaped_html(db, smtp):
    Destination.objects.add(kind="email", name="on-call", target="soc@fabrikam.example", actor="a")
    _change(HOSTILE)
    send_due()

    (mail,) = smtp.messages
    # (A long subject is folded onto a continuation line; unfolded, it is this.)
    assert str(mail["Subject"]).strip() == f"{HOSTILE}: verified → no access"
    bodies = dict(parts(mail))
    assert "<b>Corp</b>" not in bodies["text/html"]
    assert "&lt;b&gt;Corp&lt;/b&gt;" in bodies["text/html"]
    assert "Ask the customer to enable it." in bodies["text/plain"]
    assert "https://portal.fabrikam.example/tenants/x/" in bodies["text/plain"]


def test_the_webhook_payload_is_the_standard_webhooks_shape(db):
    event = _change()
    payload = json.loads(messages.webhook_body(event))
    assert set(payload) == {"type", "timestamp", "data"}
    assert payload["timestamp"].endswith("Z")
    assert set(payload["data"]) == {
        "tenant_id",
        "customer_name",
        "previous_status",
        "status",
        "diagnosis",
        "url",
    }


# -- manage.py notifications ---------------------------------------------------------------


def test_the_command_adds_lists_tests_and_removes(db, receiver, capsys):
    call_command(
        "notifications",
        "add",
        "webhook",
        receiver.url,
        "--events",
        "tenant.status_changed,notification.test",
    )
    out = capsys.readouterr().out
    destination = Destination.objects.get()
    assert f"signing secret (shown once; give it to the receiver): {destination.secret}" in out
    assert destination.event_types == ["notification.test", "tenant.status_changed"]
    assert AuditEvent.objects.filter(action="notification_destination.added").count() == 1

    call_command("notifications", "list")
    out = capsys.readouterr().out
    assert str(destination.code) in out and "1 destination" in out
    assert "/hooks/mssp" not in out  # the URL's path may be its credential

    receiver.secret = destination.secret
    call_command("notifications", "test", str(destination.code)[:8])
    assert "delivered (200)" in capsys.readouterr().out
    assert receiver.received[0].verification_error == ""

    call_command("notifications", "remove", str(destination.code))
    assert not Destination.objects.exists()


def test_the_command_refuses_bad_input_and_changes_nothing(db, settings):
    settings.NOTIFY_ALLOW_INSECURE_URLS = False
    with pytest.raises(CommandError, match="public addresses"):
        call_command("notifications", "add", "webhook", "https://127.0.0.1/x")
    settings.NOTIFY_ALLOW_INSECURE_URLS = True
    with pytest.raises(CommandError, match="Unknown event types: tenant.broke"):
        call_command(
            "notifications", "add", "email", "soc@fabrikam.example", "--events", "tenant.broke"
        )
    with pytest.raises(CommandError, match="valid email"):
        call_command("notifications", "add", "email", "not-an-address")
    with pytest.raises(CommandError, match="No destination"):
        call_command("notifications", "remove", "0123456789")
    assert not Destination.objects.exists()


def test_a_failed_test_says_so_and_exits_non_zero(db, capsys):
    dead = WebhookReceiver(statuses=[404]).start()
    try:
        call_command("notifications", "add", "webhook", dead.url, "--name", "old PSA")
        with pytest.raises(CommandError, match="1 destination failed"):
            call_command("notifications", "test")
    finally:
        dead.stop()
    assert "old PSA: not delivered (404; not retried)" in capsys.readouterr().out
    assert Delivery.objects.get().status == "failed"
