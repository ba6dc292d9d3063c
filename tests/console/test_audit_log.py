"""The audit log page: newest first, filters, escaping, admins only."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from audit.log import record
from audit.models import AuditEvent

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
]


def _csv(response) -> list[list[str]]:
    assert response.status_code == 200
    body = b"".join(response.streaming_content).decode("utf-8")
    return list(csv.reader(io.StringIO(body)))


@pytest.fixture
def trail(db) -> dict[str, uuid.UUID]:
    first, second = uuid.uuid4(), uuid.uuid4()
    record("reverify", "success", actor="admin@fabrikam-mssp.example", tenant_id=first)
    record("offboard", "success", actor="admin@fabrikam-mssp.example", tenant_id=second)
    record("consent.reported", "failure", actor="customer", tenant_id=first)
    record("signin", "denied", actor="visitor@fabrikam-mssp.example")
    old = record("invitation_create", "success", actor="old@fabrikam-mssp.example")
    AuditEvent.objects.filter(pk=old.pk).update(at=timezone.now() - timedelta(days=30))
    return {"first": first, "second": second}


def _actions(response) -> list[str]:
    assert response.status_code == 200
    return [event.action for event in response.context["page"].object_list]


def test_it_lists_the_audit_log_newest_first(admin_client, trail):
    actions = _actions(admin_client.get(EVENTS))

    assert actions == ["signin", "consent.reported", "offboard", "reverify", "invitation_create"]


@pytest.mark.parametrize(
    "params, expected",
    [
        ({"action": "offboard"}, ["offboard"]),
        ({"action": " offboard "}, ["offboard"]),
        ({"outcome": "denied"}, ["signin"]),
        ({"outcome": "failure"}, ["consent.reported"]),
        ({"actor": "VISITOR"}, ["signin"]),
        ({"action": "reverify", "outcome": "failure"}, []),
    ],
)
def test_it_filters_the_audit_log(admin_client, trail, params, expected):
    assert _actions(admin_client.get(EVENTS, params)) == expected


def test_it_filters_the_audit_log_by_tenant(admin_client, trail):
    actions = _actions(admin_client.get(EVENTS, {"tenant": str(trail["first"])}))

    assert actions == ["consent.reported", "reverify"]


def test_it_filters_the_audit_log_by_date(admin_client, trail):
    today = timezone.now().date()
    old = (timezone.now() - timedelta(days=30)).date()

    assert _actions(admin_client.get(EVENTS, {"until": old.isoformat()})) == ["invitation_create"]
    assert "invitation_create" not in _actions(admin_client.get(EVENTS, {"since": today}))


@pytest.mark.parametrize(
    "params",
    [
        {"tenant": "not-a-uuid"},
        {"outcome": "exploded"},
        {"since": "yesterday"},
        {"page": "zzz"},
        {"page": "999"},
    ],
)
def test_it_ignores_bad_audit_filters_and_says_so(admin_client, trail, params):
    response = admin_client.get(EVENTS, params)

    assert response.status_code == 200
    assert len(_actions(response)) == 5
    if "page" not in params:
        assert "Some filters are invalid and were ignored" in response.content.decode()


def test_it_escapes_detail_text_in_the_audit_log(admin_client, db):
    record(
        "consent.callback",
        "failure",
        actor="customer",
        detail={"<b>key</b>": '<script>alert(1)</script>"><img src=x onerror=alert(2)>'},
    )

    body = admin_client.get(EVENTS).content.decode()

    assert "<script>alert(1)" not in body
    assert "<img src=x" not in body
    assert "<b>key</b>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "&lt;b&gt;key&lt;/b&gt;" in body


def test_it_keeps_the_audit_log_from_operators(operator_client, trail):
    response = operator_client.get(EVENTS)

    assert response.status_code == 403
    assert "visitor@" not in response.content.decode()


def test_it_refuses_a_post_to_the_audit_log(admin_client, trail):
    assert admin_client.post(EVENTS).status_code == 405
    assert AuditEvent.objects.count() == 5


# -- readable by a person --------------------------------------------------------------------


def test_an_action_prefix_selects_every_action_of_one_kind(admin_client, db):
    record("invitation.created", "success", actor="a")
    record("invitation.revoked", "success", actor="a")
    record("invitations.imported", "success", actor="a")  # another kind, despite the letters
    record("tenant.offboarded", "success", actor="a")

    def actions(value: str) -> set[str]:
        page = admin_client.get(EVENTS, {"action": value}).content.decode()
        return {
            a
            for a in (
                "invitation.created",
                "invitation.revoked",
                "invitations.imported",
                "tenant.offboarded",
            )
            if f"<code>{a}</code>" in page
        }

    assert actions("invitation.*") == {"invitation.created", "invitation.revoked"}
    assert actions("invitation*") == {
        "invitation.created",
        "invitation.revoked",
        "invitations.imported",
    }
    assert actions("invitation") == {"invitation.created", "invitation.revoked"}
    assert actions("invitation.revoked") == {"invitation.revoked"}


def test_tenant_names_stand_beside_their_ids_and_details_are_labelled(admin_client, db):
    from tests.personas import make_tenant

    tenant = make_tenant(display_name="Northwind <Traders>")
    record(
        "consent.declined",
        "failure",
        actor="customer",
        tenant_id=tenant.tenant_id,
        detail={"missing_services": "defender", "code": "650052"},
    )
    page = admin_client.get(EVENTS).content.decode()
    link = reverse("console:detail", args=[tenant.code])
    assert f'href="{link}"><bdi>Northwind &lt;Traders&gt;</bdi></a>' in page
    assert "<dt>missing services</dt><dd>defender</dd>" in page
    assert "missing_services=" not in page


def test_the_trail_exports_as_csv_with_the_filters_and_is_audited(admin_client, db):
    record("invitation.created", "success", actor="=cmd|' /C calc'!A0", detail={"customer": "x"})
    record("tenant.offboarded", "success", actor="a")

    response = admin_client.get(reverse("console:audit_log_export"), {"action": "invitation.*"})

    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [r["action"] for r in rows] == ["invitation.created"]
    assert rows[0]["actor"].startswith("'=")  # a formula is shown as text
    assert rows[0]["detail"] == "customer=x"
    exported = AuditEvent.objects.get(action="audit_log.exported")
    assert exported.detail["rows"] == "1"
