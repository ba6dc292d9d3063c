"""Scoped operators: what each sees (union of groups, all except, manual members, none),
through every list a tenant appears in; tenant groups managed by admins."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts import roles
from accounts.models import ApiToken
from audit.models import AuditEvent
from consent.models import Invitation
from tenants.models import Tenant, TenantGroup
from tests.personas import make_staff, make_tenant, signed_in_client

EMEA_GROUP = "3b9e6f12-8c4d-4a57-9e21-6d0f3a8b5c74"
AMERICAS_ROLE = "Portal.SOC.Americas"
CONTRACTORS_GROUP = "9d2a7c45-1e6b-4f83-a0d9-5c8e2b4f7a16"


@pytest.fixture
def fleet(db) -> dict[str, Tenant]:
    """Four tenants: one per "only" group, one regulated (in an "except" group), one loose."""
    now = timezone.now()
    tenants = {
        "alpha": make_tenant(display_name="Marker Alpha EMEA", status=Tenant.Status.VERIFIED),
        "bravo": make_tenant(display_name="Marker Bravo Americas", status=Tenant.Status.INCOMPLETE),
        "zulu": make_tenant(
            display_name="Marker Zulu Regulated",
            primary_domain="zulu-regulated.example",
            status=Tenant.Status.NO_ACCESS,
            stale_since=now,
        ),
        "yankee": make_tenant(display_name="Marker Yankee Loose", status=Tenant.Status.VERIFIED),
    }
    TenantGroup.objects.create(name="EMEA", entra_group_ids=[EMEA_GROUP]).tenants.add(
        tenants["alpha"]
    )
    TenantGroup.objects.create(name="Americas", app_roles=[AMERICAS_ROLE]).tenants.add(
        tenants["bravo"]
    )
    TenantGroup.objects.create(
        name="Regulated", scope=TenantGroup.Scope.EXCEPT, entra_group_ids=[CONTRACTORS_GROUP]
    ).tenants.add(tenants["zulu"])
    for tenant in tenants.values():
        AuditEvent.objects.create(
            actor="admin",
            action="tenant.status_changed",
            tenant_id=tenant.tenant_id,
            outcome="success",
            detail={"name": tenant.display_name},
        )
    return tenants


def names_on_dashboard(client, query: str = "") -> set[str]:
    body = client.get(reverse("console:dashboard") + query).content.decode()
    return {name for name in MARKERS if name in body}


MARKERS = (
    "Marker Alpha EMEA",
    "Marker Bravo Americas",
    "Marker Zulu Regulated",
    "Marker Yankee Loose",
)


def csv_names(client) -> set[str]:
    response = client.get(reverse("console:export_csv"))
    rows = csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode()))
    return {row["name"] for row in rows}


def api(client, **headers) -> dict:
    response = client.get(reverse("console:status_json"), **headers)
    assert response.status_code == 200
    return json.loads(response.content)


def test_a_user_in_two_scoped_groups_sees_their_union_everywhere(fleet):
    user = make_staff(
        "pod@fabrikam-mssp.example",
        [roles.OPERATOR_ROLE, AMERICAS_ROLE],
        entra_groups=[EMEA_GROUP],
    )
    client = signed_in_client(user)
    both = {"Marker Alpha EMEA", "Marker Bravo Americas"}

    assert names_on_dashboard(client) == both
    body = client.get(reverse("console:dashboard")).content.decode()
    assert '<span class="stat-value">2</span><span class="stat-label">All active' in body
    assert csv_names(client) == both
    document = api(client)
    assert {t["name"] for t in document["tenants"]} == both
    assert document["counts"]["total"] == 2
    assert document["counts"]["no_access"] == 0 and document["counts"]["stale"] == 0


def test_all_except_shows_every_tenant_but_the_excluded_groups(fleet):
    user = make_staff(
        "contractor@fabrikam-mssp.example", [roles.OPERATOR_ROLE], entra_groups=[CONTRACTORS_GROUP]
    )
    client = signed_in_client(user)
    seen = {"Marker Alpha EMEA", "Marker Bravo Americas", "Marker Yankee Loose"}

    assert names_on_dashboard(client) == seen
    assert csv_names(client) == seen
    assert api(client)["counts"]["total"] == 3
    detail = reverse("console:detail", args=[fleet["zulu"].code])
    assert client.get(detail).status_code == 404


def test_an_exclusion_wins_over_an_inclusion(fleet):
    TenantGroup.objects.get(name="EMEA").tenants.add(fleet["zulu"])
    user = make_staff(
        "both@fabrikam-mssp.example",
        [roles.OPERATOR_ROLE],
        entra_groups=[EMEA_GROUP, CONTRACTORS_GROUP],
    )
    assert names_on_dashboard(signed_in_client(user)) == {"Marker Alpha EMEA"}


def test_search_finds_nothing_out_of_scope(fleet):
    client = signed_in_client(
        make_staff("pod@fabrikam-mssp.example", [roles.OPERATOR_ROLE], entra_groups=[EMEA_GROUP])
    )
    zulu = fleet["zulu"]
    for q in ("Zulu", "zulu-regulated", str(zulu.tenant_id)):
        assert names_on_dashboard(client, f"?q={q}") == set(), q
        live = client.get(reverse("console:dashboard_live") + f"?q={q}").content.decode()
        assert "Marker Zulu" not in live
    assert names_on_dashboard(client, "?q=Alpha") == {"Marker Alpha EMEA"}


def test_the_audit_log_stays_with_admins_and_the_tenant_trail_is_the_tenants_own(fleet):
    client = signed_in_client(
        make_staff("pod@fabrikam-mssp.example", [roles.OPERATOR_ROLE], entra_groups=[EMEA_GROUP])
    )
    response = client.get(reverse("console:audit_log") + "?action=tenant.status_changed")
    assert response.status_code == 403
    assert "Marker" not in response.content.decode()
    page = client.get(reverse("console:detail", args=[fleet["alpha"].code])).content.decode()
    assert "Marker Zulu" not in page


def test_an_api_token_reads_its_creators_scope_while_they_keep_their_role(fleet):
    user = make_staff("pod@fabrikam-mssp.example", [roles.OPERATOR_ROLE], entra_groups=[EMEA_GROUP])
    _token, value = ApiToken.issue(
        name="Pod", scope="status:read", created_by=user.get_username(), owner=user
    )
    from django.test import Client

    machine = Client()
    header = {"HTTP_AUTHORIZATION": f"Bearer {value}"}
    document = api(machine, **header)
    assert [t["name"] for t in document["tenants"]] == ["Marker Alpha EMEA"]
    assert document["counts"]["total"] == 1
    roles.apply(user, [])  # the role removed in Entra (sign-in or re-check)
    refused = machine.get(reverse("console:status_json"), **header)
    assert refused.status_code == 401
    assert json.loads(refused.content) == {"error": "token_owner_without_role"}
    # A token from before scoping (no owner) was an admin's: it reads the fleet.
    _legacy, legacy = ApiToken.issue(name="Old", scope="status:read", created_by="admin")
    assert api(machine, HTTP_AUTHORIZATION=f"Bearer {legacy}")["counts"]["total"] == 4


def test_a_manual_member_is_scoped_without_entra_groups(fleet, superuser):
    user = make_staff("breakglass-op", [roles.OPERATOR_ROLE])
    TenantGroup.objects.get(name="Americas").set_members([user], actor="admin")
    assert names_on_dashboard(signed_in_client(user)) == {"Marker Bravo Americas"}
    assert AuditEvent.objects.filter(action="tenant_group.members_set").count() == 1


def test_an_unmapped_operator_sees_nothing_once_scoping_is_in_use(fleet, settings):
    assert settings.STAFF_UNMAPPED_SCOPE == "auto"
    client = signed_in_client(make_staff("new@fabrikam-mssp.example", [roles.OPERATOR_ROLE]))
    body = client.get(reverse("console:dashboard")).content.decode()
    assert names_on_dashboard(client) == set()
    assert "Your access covers no tenant yet: ask a portal administrator" in body
    assert api(client)["counts"]["total"] == 0
    settings.STAFF_UNMAPPED_SCOPE = "all"
    assert names_on_dashboard(client) == set(MARKERS)


def test_an_unmapped_operator_sees_every_tenant_while_no_group_is_mapped(fleet, settings):
    TenantGroup.objects.update(entra_group_ids=[], app_roles=[])
    client = signed_in_client(make_staff("new@fabrikam-mssp.example", [roles.OPERATOR_ROLE]))
    assert names_on_dashboard(client) == set(MARKERS)
    settings.STAFF_UNMAPPED_SCOPE = "none"
    assert names_on_dashboard(client) == set()


def test_an_except_group_without_tenants_grants_every_tenant(fleet):
    TenantGroup.objects.create(
        name="All tenants", scope=TenantGroup.Scope.EXCEPT, app_roles=["Portal.AllTenants"]
    )
    user = make_staff("lead@fabrikam-mssp.example", [roles.OPERATOR_ROLE, "Portal.AllTenants"])
    assert names_on_dashboard(signed_in_client(user)) == set(MARKERS)


def test_admins_are_unscoped_and_filter_by_group(fleet, admin_client):
    assert names_on_dashboard(admin_client) == set(MARKERS)
    emea = TenantGroup.objects.get(name="EMEA")
    assert names_on_dashboard(admin_client, f"?group={emea.code}") == {"Marker Alpha EMEA"}
    body = admin_client.get(reverse("console:dashboard") + f"?group={emea.code}").content.decode()
    # The cards count the group's tenants, and keep the group when they filter by status.
    assert '<span class="stat-value">1</span><span class="stat-label">All active' in body
    assert f'href="?status=verified&amp;group={emea.code}"' in body
    response = admin_client.get(reverse("console:export_csv") + f"?group={emea.code}")
    assert b"Marker Bravo" not in b"".join(response.streaming_content)


def test_a_scoped_operator_is_offered_only_their_groups_as_filter(fleet):
    client = signed_in_client(
        make_staff("pod@fabrikam-mssp.example", [roles.OPERATOR_ROLE], entra_groups=[EMEA_GROUP])
    )
    body = client.get(reverse("console:dashboard")).content.decode()
    assert ">EMEA</option>" in body and ">Americas</option>" not in body
    americas = TenantGroup.objects.get(name="Americas")
    # A hand-written ?group= of another group is dropped, never widens the scope.
    assert names_on_dashboard(client, f"?group={americas.code}") == {"Marker Alpha EMEA"}


def test_admins_put_a_tenant_in_groups_on_its_page(fleet, admin_client):
    yankee = fleet["yankee"]
    emea, americas = TenantGroup.objects.get(name="EMEA"), TenantGroup.objects.get(name="Americas")
    path = reverse("console:tenant_groups", args=[yankee.code])
    both = {"groups": [str(emea.code), str(americas.code)]}
    response = admin_client.post(path, both, follow=True)
    assert "Marker Yankee Loose is now in: Americas, EMEA." in response.content.decode()
    assert set(yankee.tenant_groups.all()) == {emea, americas}
    response = admin_client.post(path, both, follow=True)
    assert "No change: the tenant is in the same groups." in response.content.decode()
    admin_client.post(path, {"groups": [str(emea.code)]})
    assert set(yankee.tenant_groups.all()) == {emea}
    actions = AuditEvent.objects.filter(tenant_id=yankee.tenant_id).values_list("action", flat=True)
    assert sorted(a for a in actions if a.startswith("tenant_group.")) == [
        "tenant_group.tenants_assigned",
        "tenant_group.tenants_assigned",
        "tenant_group.tenants_removed",
    ]
    page = admin_client.get(reverse("console:detail", args=[yankee.code])).content.decode()
    assert "Save groups" in page
    bad = admin_client.post(path, {"groups": ["not-a-code"]}, follow=True)
    assert "Choose groups from the list." in bad.content.decode()


def test_admins_add_the_dashboard_selection_to_a_group(fleet, admin_client):
    emea = TenantGroup.objects.get(name="EMEA")
    selection = [str(fleet["alpha"].code), str(fleet["yankee"].code)]
    response = admin_client.post(
        reverse("console:assign_selected"),
        {"tenant": selection, "assign_group": str(emea.code)},
        follow=True,
    )
    assert "1 tenant added to EMEA; 1 was in it already." in response.content.decode()
    assert set(emea.tenants.all()) == {fleet["alpha"], fleet["yankee"]}
    response = admin_client.post(
        reverse("console:assign_selected"), {"tenant": selection}, follow=True
    )
    assert "Choose the group to put the selected tenants in." in response.content.decode()


def test_admins_create_and_edit_groups(db, admin_client):
    empty = admin_client.get(reverse("console:groups")).content.decode()
    assert "No tenant groups yet: every operator sees every tenant." in empty
    response = admin_client.post(
        reverse("console:group_create"),
        {
            "name": "  SOC   APAC ",
            "description": "Pod in Singapore",
            "scope": "only",
            "entra_group_ids": EMEA_GROUP.upper(),
            "app_roles": "Portal.SOC.APAC",
        },
    )
    group = TenantGroup.objects.get()
    assert response.status_code == 302
    created = admin_client.get(response["Location"]).content.decode()
    assert (
        "Group “SOC APAC” created. Add tenants to it on their pages or from the "
        "dashboard&#x27;s selection." in created
    )
    assert "No tenant in this group yet." in created
    assert (group.name, group.entra_group_ids, group.app_roles) == (
        "SOC APAC",
        [EMEA_GROUP],
        ["Portal.SOC.APAC"],
    )
    listing = admin_client.get(reverse("console:groups")).content.decode()
    assert "SOC APAC" in listing and "Portal.SOC.APAC" in listing
    path = reverse("console:group", args=[group.code])
    assert admin_client.get(path).status_code == 200
    saved = admin_client.post(
        path, {"name": "SOC APAC", "scope": "except", "app_roles": ""}, follow=True
    )
    assert "Group “SOC APAC” saved." in saved.content.decode()
    again = admin_client.post(path, {"name": "SOC APAC", "scope": "except"}, follow=True)
    assert "Nothing changed." in again.content.decode()
    group.refresh_from_db()
    assert (group.scope, group.entra_group_ids, group.app_roles) == ("except", [], [])
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"tenant_group.created", "tenant_group.mapped", "tenant_group.updated"} <= actions
    bad = admin_client.post(
        reverse("console:group_create"),
        {"name": "SOC APAC", "scope": "only", "entra_group_ids": "x"},
    )
    assert bad.status_code == 400
    body = bad.content.decode()
    assert "A group with this name exists" in body and "is not an object id" in body


def test_a_new_tenant_lands_in_the_groups_chosen_at_invitation_time(db, admin_client):
    from consent.views import CUSTOMER

    group = TenantGroup.objects.create(name="EMEA")
    admin_client.post(
        reverse("console:invitation_create"),
        {
            "customer_name": "Fresh Co",
            "tenant": "6f1d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a4b",
            "access_profile": "defender-xdr-readonly",
            "days": "7",
            "tenant_groups": [str(group.code)],
        },
    )
    invitation = Invitation.objects.get()
    assert list(invitation.tenant_groups.all()) == [group]
    tenant = make_tenant(display_name="Fresh Co")
    invitation.mark_used(tenant, actor=CUSTOMER)
    assert list(tenant.tenant_groups.all()) == [group]


def test_a_scoped_dashboard_makes_as_many_queries_for_60_tenants_as_for_5(fleet):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    user = make_staff(
        "pod@fabrikam-mssp.example",
        [roles.OPERATOR_ROLE, AMERICAS_ROLE],
        entra_groups=[EMEA_GROUP, CONTRACTORS_GROUP],
    )
    client = signed_in_client(user)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(reverse("console:dashboard")).status_code == 200
        return len(captured.captured_queries)

    small = queries()
    emea = TenantGroup.objects.get(name="EMEA")
    emea.tenants.add(*[make_tenant(display_name=f"Pod tenant {i}") for i in range(60)])
    assert queries() == small
