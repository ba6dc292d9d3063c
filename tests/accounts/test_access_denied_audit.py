"""Probing is visible: 403 and 404 answered to signed-in staff are
`access.denied` audit events, rate-limited per actor so a flood cannot fill the table."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
import time_machine

from audit.models import AuditEvent

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def one_instant():
    """django-ratelimit's windows are fixed (each ends at a set second): all of a test's
    requests fall in one window, wherever the clock is when the test runs."""
    with time_machine.travel(datetime(2026, 12, 3, 12, 0, 0, tzinfo=UTC), tick=False):
        yield


def denied() -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action="access.denied").order_by("pk"))


def test_it_records_an_operator_on_an_admin_page(operator_client):
    assert operator_client.get("/invitations/").status_code == 403
    [event] = denied()
    assert (event.actor, event.outcome) == ("operator@fabrikam-mssp.example", "denied")
    assert event.detail == {"status": "403", "method": "GET", "path": "/invitations/"}


def test_it_records_a_tenant_that_does_not_exist_for_the_user(operator_client):
    path = f"/tenants/{uuid.uuid4()}/"
    assert operator_client.get(path).status_code == 404
    [event] = denied()
    assert event.detail["status"] == "404" and event.detail["path"] == path


def test_it_records_nothing_for_pages_served_or_anonymous_visitors(operator_client, client):
    assert operator_client.get("/").status_code == 200
    assert client.get("/no-such-page/").status_code == 404
    assert client.get("/invitations/").status_code == 302  # to the sign-in page
    assert denied() == []


def test_a_flood_writes_a_bounded_number_of_events(operator_client, admin_client, settings):
    settings.ACCESS_DENIED_AUDIT_RATE = "10/h"
    for _ in range(100):
        assert operator_client.get("/invitations/").status_code == 403
    events = denied()
    assert len(events) == 11
    assert "not_recorded" not in events[9].detail
    assert events[10].detail["not_recorded"].startswith("further refusals for ")
    # Another actor is still recorded.
    admin_client.get(f"/tenants/{uuid.uuid4()}/")
    assert denied()[-1].actor == "admin@fabrikam-mssp.example"
