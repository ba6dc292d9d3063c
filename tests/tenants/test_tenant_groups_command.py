"""manage.py tenant_groups: add, assign, map, list — each change audited."""

from __future__ import annotations

import uuid
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from audit.models import AuditEvent
from tenants.models import TenantGroup
from tests.personas import make_tenant

SOC_EMEA = "3b9e6f12-8c4d-4a57-9e21-6d0f3a8b5c74"


def run(*args: str) -> str:
    out = StringIO()
    call_command("tenant_groups", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_it_adds_assigns_maps_and_lists_a_group():
    northwind = make_tenant(display_name="Northwind")
    litware = make_tenant(display_name="Litware")
    assert (
        run("add", "EMEA", "--description", "SOC pod EMEA")
        == "created EMEA (only the tenants of this group)\n"
    )
    out = run("assign", "EMEA", str(northwind.tenant_id), str(litware.tenant_id))
    assert out == "EMEA: 2 tenants added\n"
    assert run("assign", "EMEA", str(northwind.tenant_id)) == (
        "EMEA: 0 tenants added, 1 was in it already\n"
    )
    assert run("map", "EMEA", "--entra-group", SOC_EMEA.upper()) == (
        f"EMEA: mapped to Entra group {SOC_EMEA.upper()}\n"
    )
    assert "already mapped" in run("map", "EMEA", "--entra-group", SOC_EMEA)
    run("map", "EMEA", "--app-role", "Portal.SOC.EMEA")
    group = TenantGroup.objects.get(name="EMEA")
    assert set(group.tenants.all()) == {northwind, litware}
    assert group.entra_group_ids == [SOC_EMEA] and group.app_roles == ["Portal.SOC.EMEA"]
    assert run("list") == (
        f"EMEA\tonly\t2 tenants\tentra-group {SOC_EMEA}, app-role Portal.SOC.EMEA\n"
    )
    actions = list(AuditEvent.objects.filter(actor="cli").values_list("action", flat=True))
    assert sorted(actions) == sorted(
        ["tenant_group.created"]
        + ["tenant_group.tenants_assigned"] * 2
        + ["tenant_group.mapped"] * 2
    )
    assigned = AuditEvent.objects.filter(action="tenant_group.tenants_assigned")
    assert {e.tenant_id for e in assigned} == {northwind.tenant_id, litware.tenant_id}


@pytest.mark.django_db
def test_it_adds_an_all_except_group():
    run("add", "Regulated", "--except")
    assert TenantGroup.objects.get(name="Regulated").scope == TenantGroup.Scope.EXCEPT
    assert run("list") == "Regulated\texcept\t0 tenants\tnot mapped\n"


@pytest.mark.django_db
def test_it_says_how_to_start_when_there_are_no_groups():
    assert run("list") == "No tenant groups. Create one with: manage.py tenant_groups add NAME\n"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("assign", "Nope", str(uuid.uuid4())), "No tenant group named 'Nope'"),
        (("assign", "EMEA", "not-a-guid"), "'not-a-guid' is not a tenant id"),
        (("assign", "EMEA", "00000000-0000-0000-0000-000000000001"), "Unknown tenant: "),
        (("map", "EMEA", "--entra-group", "SOC EMEA"), "takes the group's object id"),
        (("add", "EMEA"), "A tenant group named 'EMEA' exists"),
    ],
)
def test_it_refuses_bad_input_with_exit_status_2(args, message):
    run("add", "EMEA")
    with pytest.raises(CommandError) as error:
        run(*args)
    assert message in str(error.value)
    assert error.value.returncode == 2
    assert TenantGroup.objects.get(name="EMEA").tenants.count() == 0


def test_it_needs_exactly_one_mapping_kind():
    with pytest.raises(CommandError):
        run("map", "EMEA")


@pytest.mark.django_db
def test_it_sets_and_clears_the_manual_members(superuser):
    run("add", "EMEA")
    assert run("members", "EMEA", "breakglass") == "EMEA: manual members breakglass\n"
    assert list(TenantGroup.objects.get(name="EMEA").members.all()) == [superuser]
    with pytest.raises(CommandError, match="Unknown user: nobody"):
        run("members", "EMEA", "nobody")
    assert run("members", "EMEA") == "EMEA: manual members none\n"
    assert not TenantGroup.objects.get(name="EMEA").members.exists()
    assert AuditEvent.objects.filter(action="tenant_group.members_set").count() == 2
