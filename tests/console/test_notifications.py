"""The notification pages: every action audited, bad input refused without a change, and the
last notification about a tenant on its page and the dashboard."""

from __future__ import annotations

from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from notifications.models import Delivery, Destination, Event
from tests.conftest import NORTHWIND
from tests.personas import make_tenant


def _webhook(**fields) -> Destination:
    values = {
        "kind": "webhook",
        "name": "PSA",
        "target": "https://psa.example.com/hooks/secret-path-123",
        "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "created_by": "admin",
    }
    return Destination.objects.create(**{**values, **fields})


def test_an_address_inside_the_network_is_refused_with_the_reason(admin_client, settings, db):
    settings.NOTIFY_ALLOW_INSECURE_URLS = False
    response = admin_client.post(
        reverse("console:notification_create"),
        {"kind": "webhook", "name": "x", "target": "https://169.254.169.254/metadata"},
    )
    assert response.status_code == 400
    assert "private, loopback or link-local" in response.content.decode()
    assert not Destination.objects.exists()


def test_the_list_masks_url_paths_which_can_be_credentials(admin_client, db):
    _webhook()
    page = admin_client.get(reverse("console:notifications")).content.decode()
    assert "https://psa.example.com/…" in page
    assert "secret-path-123" not in page


def test_edit_toggle_and_delete_are_audited(admin_client, db, settings):
    settings.NOTIFY_ALLOW_INSECURE_URLS = True
    destination = _webhook(target="http://127.0.0.1:9/hook")  # resolvable without DNS
    base = f"/notifications/{destination.code}/"
    response = admin_client.post(
        base + "edit/",
        {
            "name": "PSA prod",
            "target": destination.target,
            "event_types": ["tenant.status_changed"],
        },
    )
    assert response.status_code == 302
    destination.refresh_from_db()
    assert (destination.name, destination.event_types) == ("PSA prod", ["tenant.status_changed"])
    admin_client.post(base + "toggle/")
    destination.refresh_from_db()
    assert destination.enabled is False
    assert admin_client.post(base + "delete/", {}).status_code == 400  # not confirmed
    assert Destination.objects.exists()
    admin_client.post(base + "delete/", {"confirm": "on"})
    assert not Destination.objects.exists()
    actions = list(
        AuditEvent.objects.filter(action__startswith="notification_destination.")
        .order_by("at")
        .values_list("action", "detail__fields")
    )
    assert actions == [
        ("notification_destination.changed", "event_types,name"),
        ("notification_destination.changed", "enabled"),
        ("notification_destination.removed", None),
    ]


def test_the_tenant_page_and_dashboard_say_who_was_told_last(admin_client, operator_client, db):
    tenant = make_tenant(NORTHWIND, display_name="Northwind Traders")
    destination = _webhook(name="SOC webhook")
    for kind, minutes in (("tenant.onboarded", 60), ("tenant.status_changed", 5)):
        event = Event.objects.create(type=kind, tenant_id=tenant.tenant_id, data={})
        Delivery.objects.create(
            event=event,
            destination=destination,
            status="delivered",
            delivered_at=timezone.now() - timezone.timedelta(minutes=minutes),
        )

    for client in (admin_client, operator_client):
        page = client.get(reverse("console:detail", args=[tenant.code])).content.decode()
        assert "Told SOC webhook" in page and "(tenant.status_changed)" in page
        assert "psa.example.com" not in page  # operators never see where it points
        dashboard = client.get(reverse("console:dashboard")).content.decode()
        assert "Told SOC webhook" in dashboard


def test_a_tenant_nobody_was_told_about_says_so(admin_client, db):
    tenant = make_tenant(NORTHWIND)
    page = admin_client.get(reverse("console:detail", args=[tenant.code])).content.decode()
    assert "none sent about this tenant" in page


def test_a_test_to_a_disabled_destination_says_to_enable_it_and_sends_nothing(admin_client, db):
    destination = _webhook(enabled=False)
    response = admin_client.post(
        reverse("console:notification_test", args=[destination.code]), follow=True
    )
    assert "This destination is disabled: enable it, then send a test." in response.content.decode()
    assert not Delivery.objects.exists() and not Event.objects.exists()
